"""Two-stage training of :class:`ugcodec.models.UGHyperprior` (used by ``tools/train.py``).

Stage 1 (the paper's recipe): each sample draws beta in {0, 1} and a quality level q;
    L = bpp + lambda_q * (255^2 MSE(x_hat_0, x)                       for beta = 0
                          lambda_1 * 255^2 MSE(x_hat_1, x)
                          + lambda_s * L_global(x_hat_1, x))          for beta = 1
Stage 2: everything but g_s is frozen (the bitstream stays fixed); g_s is tuned with
    L = lambda_q * (255^2 MSE(x_hat_0, x) + lambda_1 * 255^2 MSE(x_hat_1, x)
                    + lambda_s2 * (global + local + instance)(x_hat_1, x)),
    where lambda_s2 is the config's ``stage2_lambda_semantic`` (default: lambda_s).
Adapter fine-tuning (config ``base_weights``): a shipped weights file is the start, and
    only g_s's beta-gated machine adapters train, on latents made exactly as the coder
    makes them (integer hyper-synthesis), with stage 2's machine terms and every level
    weighed alike, L = lambda_1 * 255^2 MSE(x_hat_1, x) + lambda_s2 * (global + local + instance),
    so the bitstream and the human decoding of the weights stay exactly what they were.

The run is resumable: one checkpoint file, overwritten, holds model, optimiser, step and
random state.
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import random
import sys
import time
import tomllib
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ugcodec.codec import latent_residuals, synthesis_input
from ugcodec.latent_coders import CodedLatent
from ugcodec.models import ModelConfig, UGHyperprior
from ugcodec.weights import CodecModel, load_model

from .export import save_atomically
from .losses import MultiScaleSemanticLoss, bits_per_pixel, mse_255
from .teachers import Teacher, load_teacher
from .widening import add_levels, widen, widen_latent

__all__ = [
    "TrainConfig",
    "CropSampler",
    "Trainer",
    "add_run_arguments",
    "append_record",
    "coded_latents",
    "coded_synthesis_input",
    "compact_checkpoint",
    "cosine_rate",
    "crop_detail",
    "half_parameters",
    "model_from_checkpoint",
]


#: Consecutive steps with a non-finite loss or gradient after which training stops.
MAX_NONFINITE_STEPS = 10


@dataclass
class TrainConfig:
    """Everything a run needs; read from a TOML file (see ``tools/configs/``)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    corpus: str = "data/corpus"
    crop: int = 128
    crop_weighting: str = "pixel"
    crop_detail: float = 0.0
    batch: int = 8
    stage1_steps: int = 20000
    stage2_steps: int = 2000
    lr: float = 1e-4
    stage2_lr: float = 5e-5
    lambda_machine_mse: float = 0.5
    lambda_semantic: float = 100.0
    stage2_lambda_semantic: Optional[float] = None
    semantic_weights: Dict[str, float] = field(
        default_factory=lambda: {"global": 1.0, "local": 1.0, "instance": 1.0}
    )
    teacher: str = "mobilenet_v2"
    teacher_weights: Optional[str] = None
    # Instance regions: segment crops shrunk to this side (None: full size), in this many
    # worker processes (0: in the training process); see MultiScaleSemanticLoss.
    region_max_side: Optional[int] = None
    region_workers: int = 0
    # Crops drawn in this many worker processes (0: in the training process). A GPU is
    # otherwise starved by the one-threaded sampler; the workers' draws are not part of
    # the resume state, so a resumed run draws other crops than an uninterrupted one.
    sampler_workers: int = 0
    # Compare the teacher's features of a random view (mirror, shift, downscale) of both
    # images, the same for both (losses.paired_augment), so as not to overfit one network.
    semantic_augment: bool = False
    # "cosine" (the paper's) or "kl" (teacher class scores; see losses.embedding_distance).
    semantic_distance: str = "cosine"
    # A weights file to fine-tune instead of training from scratch: only the machine
    # adapters of g_s train (needs model.machine_adapter = true and stage1_steps = 0).
    base_weights: Optional[str] = None
    # With base_weights: the levels of g_s (0: lowest resolution) whose adapters train;
    # the others are set to the identity (their last convolution zeroed) and stay so,
    # which lets a decoder skip them. None: all levels.
    adapter_levels: Optional[List[int]] = None
    # Relative frequency of each quality level in stage 1's draws (None: all alike). The
    # high levels added by widening start untrained; drawing them more often trains them
    # without changing the loss each level sees.
    quality_weights: Optional[List[float]] = None
    log_every: int = 50
    checkpoint_every: int = 500
    seed: int = 0

    @property
    def total_steps(self) -> int:
        return self.stage1_steps + self.stage2_steps

    @classmethod
    def from_toml(cls, path: str) -> "TrainConfig":
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
        model = ModelConfig.from_dict({**ModelConfig().to_dict(), **data.pop("model", {})})
        return cls(model=model, **data)

    def override(self, assignment: str) -> None:
        """Applies ``"key=value"`` (value in TOML syntax; a bare word is a string) to a
        top-level entry or a ``model.`` one (as ``model.M=192``), checking the value's
        type against the current one: an entry that is None takes any value, a float
        entry takes an int.

        Raises:
            ValueError: no ``=``, an unknown or nested key, or a value of another type.
        """
        key, separator, text = assignment.partition("=")
        key = key.strip()
        target, field_name = (self.model, key[len("model."):]) if key.startswith("model.") else (self, key)
        names = {name for name in target.__dataclass_fields__ if name != "model"}
        if not separator or field_name not in names:
            known = sorted(self.__dataclass_fields__.keys() - {"model"}) + [f"model.{name}" for name in ModelConfig.__dataclass_fields__]
            raise ValueError(f"cannot set {assignment!r}: use KEY=VALUE with KEY one of {', '.join(known)}")
        try:
            value = tomllib.loads(f"value = {text.strip()}")["value"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        current = getattr(target, field_name)
        if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)  # model sequences (lambdas, bottlenecks) are tuples
        if current is not None and type(value) is not type(current):
            raise ValueError(f"cannot set {key} to {value!r}: expected {type(current).__name__}")
        if target is self.model:
            self.model = ModelConfig.from_dict({**self.model.to_dict(), field_name: value})
        else:
            setattr(self, key, value)

    def to_dict(self) -> dict:
        data = dict(self.__dict__)
        data["model"] = self.model.to_dict()
        return data


def crop_detail(crop: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels (grey, 0-255 units, both
    directions summed) of an ``(H, W, 3)`` uint8 crop: about 2 for sky, 10 for a photo."""
    grey = crop.astype(np.float32).mean(axis=2)
    return float(np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean())


class CropSampler:
    """Random crops (with random flips) from every image in a folder, held in memory.

    Args:
        folder: PNG and JPEG images; those smaller than ``crop`` are skipped.
        crop: side of the square crops.
        seed: seed of the sampler's own random generator.
        weighting: ``"pixel"`` draws images in proportion to their area (every pixel
            equally likely); ``"image"`` draws every image equally often, so the small,
            strongly downscaled copies (denser in detail per pixel) are not drowned by
            the large ones.
        detail: 0 keeps every crop; above 0, a crop is kept with probability
            ``min(1, crop_detail(crop) / detail)``, so flat crops (sky, blur) are drawn
            less often and the crops look more like ordinary photos, which are far
            busier than wallpapers.

    Raises:
        FileNotFoundError: when the folder holds no PNG or JPEG large enough to crop.
        ValueError: for an unknown ``weighting``.
    """

    WEIGHTINGS = ("pixel", "image")

    #: Draws per crop before the detail test gives up and keeps the last one.
    MAX_DRAWS = 20

    def __init__(
        self, folder: str, crop: int, seed: int = 0, weighting: str = "pixel", detail: float = 0.0
    ) -> None:
        if weighting not in self.WEIGHTINGS:
            raise ValueError(f"unknown crop weighting {weighting!r}: use one of {', '.join(self.WEIGHTINGS)}")
        paths = sorted(glob.glob(os.path.join(folder, "*.png")) + glob.glob(os.path.join(folder, "*.jpg")))
        self.images: List[np.ndarray] = []
        for path in paths:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"))
            if min(array.shape[:2]) >= crop:
                self.images.append(array)
        if not self.images:
            raise FileNotFoundError(f"no training image of at least {crop}x{crop} in {folder!r}")
        if weighting == "pixel":
            mass = np.array([image.shape[0] * image.shape[1] for image in self.images], dtype=np.float64)
        else:
            mass = np.ones(len(self.images))
        self.weights = mass / mass.sum()
        self.crop = crop
        self.detail = detail
        self.rng = np.random.default_rng(seed)

    def _draw(self, rng: np.random.Generator) -> np.ndarray:
        image = self.images[rng.choice(len(self.images), p=self.weights)]
        top = rng.integers(0, image.shape[0] - self.crop + 1)
        left = rng.integers(0, image.shape[1] - self.crop + 1)
        return image[top : top + self.crop, left : left + self.crop]

    def sample(self, batch: int, rng: Optional[np.random.Generator] = None) -> Tensor:
        """Returns ``batch`` crops as a float tensor ``(batch, 3, crop, crop)`` in [0, 1],
        drawn with ``rng`` (default: the sampler's own generator), e.g. a fixed set of
        crops from the same images without a second copy of them in memory."""
        rng = self.rng if rng is None else rng
        crops = []
        for _ in range(batch):
            for _ in range(self.MAX_DRAWS):
                crop = self._draw(rng)
                if self.detail <= 0 or rng.random() * self.detail < crop_detail(crop):
                    break
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            crops.append(np.ascontiguousarray(crop))
        array = np.stack(crops).astype(np.float32) / 255.0
        return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()


class _CropBatches(torch.utils.data.IterableDataset):
    """Endless batches of crops, one :class:`CropSampler` per worker, seeded apart."""

    def __init__(self, config: "TrainConfig", seed: int) -> None:
        self.config, self.seed = config, seed

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        config = self.config
        sampler = CropSampler(
            config.corpus, config.crop, self.seed + 1 + (worker.id if worker else 0),
            config.crop_weighting, config.crop_detail,
        )
        while True:
            yield sampler.sample(config.batch)


class PrefetchingSampler:
    """A :class:`CropSampler` stand-in that draws batches in ``workers`` processes.

    ``rng`` is the wrapped sampler's, which the workers do not advance: checkpoints keep
    a valid state, but a resumed run draws other crops than an uninterrupted one.
    """

    def __init__(self, sampler: CropSampler, config: "TrainConfig", workers: int) -> None:
        self.rng = sampler.rng
        seed = int(sampler.rng.integers(0, 2**31 - 1))
        loader = torch.utils.data.DataLoader(
            _CropBatches(config, seed), batch_size=None, num_workers=workers, prefetch_factor=4,
            persistent_workers=True, pin_memory=torch.cuda.is_available(),
        )
        self._batches = iter(loader)

    def sample(self, batch: int) -> Tensor:
        """The next batch (of the config's size; ``batch`` is accepted for the interface)."""
        return next(self._batches)


def psnr(mse: Tensor) -> Tensor:
    return 10.0 * torch.log10(1.0 / mse.clamp(min=1e-10))


class Trainer:
    """Runs (and resumes) both stages of a :class:`TrainConfig`.

    Args:
        config: the run's settings.
        run_dir: folder for ``checkpoint.pt`` and ``log.jsonl``.
        device: torch device string.
        teacher: a ready teacher (tests pass a tiny one); default: built from the config.
    """

    def __init__(
        self, config: TrainConfig, run_dir: str, device: str = "cpu", teacher: Optional[Teacher] = None
    ) -> None:
        weights = config.quality_weights
        if weights is not None and (
            len(weights) != config.model.num_qualities or min(weights) < 0 or sum(weights) <= 0
        ):
            raise ValueError(
                f"quality_weights needs {config.model.num_qualities} non-negative numbers, "
                f"not all zero; got {weights}"
            )
        self.config = config
        self.run_dir = run_dir
        self.device = torch.device(device)
        os.makedirs(run_dir, exist_ok=True)
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        self.model = UGHyperprior(config.model).to(self.device)
        self.coder: Optional[CodecModel] = self._load_base_weights() if config.base_weights else None
        self.teacher = (teacher or load_teacher(config.teacher, config.teacher_weights)).to(self.device)
        self.semantic = MultiScaleSemanticLoss(
            self.teacher,
            config.semantic_weights,
            region_max_side=config.region_max_side,
            region_workers=config.region_workers,
            augment=config.semantic_augment,
            distance=config.semantic_distance,
        )
        self.sampler = CropSampler(
            config.corpus, config.crop, config.seed, config.crop_weighting, config.crop_detail
        )
        if config.sampler_workers > 0:
            self.sampler = PrefetchingSampler(self.sampler, config, config.sampler_workers)
        self.lambdas = torch.tensor(config.model.lambdas, device=self.device)
        self.step = 0
        self.optimizer = self._make_optimizer()
        self.checkpoint_path = os.path.join(run_dir, "checkpoint.pt")
        if os.path.exists(self.checkpoint_path):
            self.load_checkpoint()

    def _load_base_weights(self) -> CodecModel:
        """The weights file that adapter fine-tuning starts from; copies its float
        transforms into the model.

        Raises:
            ValueError: the config cannot fine-tune adapters, or its model sizes differ
                from the file's.
            UgcError: the file cannot be read.
        """
        config = self.config
        if config.stage1_steps != 0 or not config.model.machine_adapter:
            raise ValueError("base_weights fine-tunes the machine adapters only: set stage1_steps = 0 and model.machine_adapter = true")
        coder = load_model(config.base_weights)
        sizes = ("N", "M", "lambdas", "embedding_dim")
        if any(getattr(coder.config, name) != getattr(config.model, name) for name in sizes):
            raise ValueError(f"the model config differs from {config.base_weights}'s ({coder.config})")
        shipped = {
            name: value for name, value in coder.network.state_dict().items() if name.startswith(("g_a.", "h_a.", "g_s."))
        }
        missing = set(self.model.load_state_dict(shipped, strict=False).missing_keys)
        if any(name.startswith(("g_a.", "h_a.", "g_s.")) and not name.startswith("g_s.adapters.") for name in missing):
            raise ValueError(f"{config.base_weights} lacks some of the transforms' parameters")
        with torch.no_grad():
            for index in self._frozen_adapter_levels():
                last = self.model.g_s.adapters[index].last
                last.weight.zero_()
                last.bias.zero_()
        return coder

    def _frozen_adapter_levels(self) -> List[int]:
        """The levels whose adapters stay the identity (``adapter_levels``).

        Raises:
            ValueError: ``adapter_levels`` names a level g_s does not have.
        """
        levels = range(len(self.model.g_s.adapters))
        chosen = self.config.adapter_levels
        if chosen is None:
            return []
        if any(level not in levels for level in chosen):
            raise ValueError(f"adapter_levels {chosen} names a level outside 0..{len(levels) - 1}")
        return [level for level in levels if level not in chosen]

    # -- stages ----------------------------------------------------------------------
    @property
    def stage(self) -> int:
        return 1 if self.step < self.config.stage1_steps else 2

    def _make_optimizer(self) -> torch.optim.Optimizer:
        if self.stage == 1:
            self.model.requires_grad_(True)
            return torch.optim.Adam(self.model.parameters(), lr=self.config.lr)
        self.model.requires_grad_(False)
        tuned = self.model.g_s.adapters if self.coder is not None else self.model.g_s
        tuned.requires_grad_(True)
        if self.coder is not None:
            for index in self._frozen_adapter_levels():
                tuned[index].requires_grad_(False)
        return torch.optim.Adam([p for p in tuned.parameters() if p.requires_grad], lr=self.config.stage2_lr)

    def _learning_rate(self) -> float:
        # Constant, then a tenfold decay over the last 10 % of each stage.
        config = self.config
        if self.stage == 1:
            base, start, length = config.lr, 0, config.stage1_steps
        else:
            base, start, length = config.stage2_lr, config.stage1_steps, config.stage2_steps
        progress = (self.step - start) / max(1, length)
        return base * (0.1 if progress >= 0.9 else 1.0)

    @property
    def stage2_lambda_semantic(self) -> float:
        """Stage 2's weight of the multi-scale semantic loss (default: stage 1's)."""
        value = self.config.stage2_lambda_semantic
        return self.config.lambda_semantic if value is None else value

    def draw_qualities(self, batch: int) -> Tensor:
        """Stage 1's quality level per crop, 0-based, drawn by ``quality_weights``."""
        weights = self.config.quality_weights
        if weights is None:
            return torch.randint(0, self.config.model.num_qualities, (batch,), device=self.device)
        probabilities = torch.tensor(weights, dtype=torch.float64)
        return torch.multinomial(probabilities, batch, replacement=True).to(self.device)

    def stage1_loss(self, x: Tensor) -> Dict[str, Tensor]:
        batch = x.shape[0]
        quality = self.draw_qualities(batch)
        beta = (torch.arange(batch, device=self.device) >= batch // 2).to(x.dtype)
        out = self.model(x, quality, beta)
        bpp = bits_per_pixel(out["likelihoods"], x.shape[-2] * x.shape[-1])
        distortion = mse_255(out["x_hat"], x)
        machine = beta > 0.5
        semantic = torch.zeros_like(distortion)
        if machine.any():
            semantic[machine] = self.semantic.global_term(out["x_hat"][machine], x[machine])
        weighted = torch.where(
            machine,
            self.config.lambda_machine_mse * distortion + self.config.lambda_semantic * semantic,
            distortion,
        )
        loss = (bpp + self.lambdas[quality] * weighted).mean()
        human = ~machine
        return {
            "loss": loss,
            "bpp": bpp.mean(),
            "psnr_human": psnr((distortion[human] / 255.0**2).mean()),
            "psnr_machine": psnr((distortion[machine] / 255.0**2).mean()),
            "semantic_global": semantic[machine].mean(),
        }

    def stage2_loss(self, x: Tensor) -> Dict[str, Tensor]:
        if self.coder is not None:
            return self.adapter_loss(x)
        batch = x.shape[0]
        quality = torch.randint(0, self.config.model.num_qualities, (batch,), device=self.device)
        # The bitstream is frozen: quantise once, without gradients, as the coder does.
        with torch.no_grad():
            self.model.eval()
            y_hat_scaled, likelihoods = self.model.quantize(x, quality)
            self.model.train()
            bpp = bits_per_pixel(likelihoods, x.shape[-2] * x.shape[-1])
        x_human = self.model.synthesize(y_hat_scaled, quality, torch.zeros(batch, device=self.device))
        x_machine = self.model.synthesize(y_hat_scaled, quality, torch.ones(batch, device=self.device))
        human, machine = mse_255(x_human, x), mse_255(x_machine, x)
        semantic = self.semantic(x_machine, x)
        weighted = human + self.config.lambda_machine_mse * machine + self.stage2_lambda_semantic * semantic["total"]
        loss = (self.lambdas[quality] * weighted).mean()
        logs = {
            "loss": loss,
            "bpp": bpp.mean(),
            "psnr_human": psnr((human / 255.0**2).mean()),
            "psnr_machine": psnr((machine / 255.0**2).mean()),
        }
        logs.update({f"semantic_{name}": value.mean() for name, value in semantic.items()})
        return logs

    def adapter_loss(self, x: Tensor) -> Dict[str, Tensor]:
        """Stage 2 with ``base_weights``: only the machine decoding's terms (the adapters
        cannot change the human one). Every level weighs the same: with no rate or human
        term to balance, lambda_q would only make the low rates, where machine use
        suffers most, count up to 27 times less."""
        batch = x.shape[0]
        quality = torch.randint(0, self.config.model.num_qualities, (batch,), device=self.device)
        y_hat = coded_synthesis_input(self.coder, self.model, x, quality)
        with torch.no_grad():
            human = mse_255(self.model.g_s(y_hat, torch.zeros(batch, device=self.device)), x)
        x_machine = self.model.g_s(y_hat, torch.ones(batch, device=self.device))
        machine = mse_255(x_machine, x)
        semantic = self.semantic(x_machine, x)
        loss = (self.config.lambda_machine_mse * machine + self.stage2_lambda_semantic * semantic["total"]).mean()
        logs = {
            "loss": loss,
            "psnr_human": psnr((human / 255.0**2).mean()),
            "psnr_machine": psnr((machine / 255.0**2).mean()),
        }
        logs.update({f"semantic_{name}": value.mean() for name, value in semantic.items()})
        return logs

    # -- loop ------------------------------------------------------------------------
    def run(self, max_steps: Optional[int] = None, progress: bool = True, max_seconds: Optional[float] = None,
            bfloat16: bool = False) -> None:
        """Trains until the config's total steps, checkpointing; ``max_steps`` more steps
        or ``max_seconds`` of wall time end it earlier (with a log record and a checkpoint
        at the step where it stops). ``bfloat16``: the losses' forward passes (model and
        teacher) under bfloat16 autocast; parameters, optimiser, rate and distortion sums
        stay float32."""
        autocast_device = torch.device(self.device).type
        stop = self.config.total_steps if max_steps is None else min(self.config.total_steps, self.step + max_steps)
        self.model.train()
        sums: Dict[str, float] = {}
        counts: Dict[str, int] = {}
        nonfinite = skipped = 0
        started = time.time()
        try:
            while self.step < stop:
                if max_seconds is not None and time.time() - started >= max_seconds:
                    stop = self.step + 1  # one more step, so the usual end-of-run log and checkpoint happen
                stage_before = self.stage
                for group in self.optimizer.param_groups:
                    group["lr"] = self._learning_rate()
                x = self.sampler.sample(self.config.batch).to(self.device)
                with torch.autocast(autocast_device, dtype=torch.bfloat16, enabled=bfloat16):
                    logs = self.stage1_loss(x) if self.stage == 1 else self.stage2_loss(x)
                self.optimizer.zero_grad(set_to_none=True)
                logs["loss"].backward()
                norm = torch.nn.utils.clip_grad_norm_(
                    [p for group in self.optimizer.param_groups for p in group["params"]], 1.0
                )
                # One non-finite loss or gradient would turn every weight into NaN, and the
                # next checkpoint with them: skip such a step, and stop if they persist.
                if torch.isfinite(logs["loss"]) and torch.isfinite(norm):
                    self.optimizer.step()
                    nonfinite = 0
                else:
                    nonfinite += 1
                    skipped += 1
                    if nonfinite >= MAX_NONFINITE_STEPS:
                        raise FloatingPointError(
                            f"loss or gradient not finite for {nonfinite} steps in a row at step {self.step}; "
                            "the last checkpoint is kept: resume from it with a lower lr"
                        )
                self.step += 1
                for name, value in logs.items():
                    if torch.isfinite(value):
                        sums[name] = sums.get(name, 0.0) + float(value.detach())
                        counts[name] = counts.get(name, 0) + 1
                if self.step % self.config.log_every == 0 or self.step == stop:
                    # Averages over the steps since the last record, however many (a resumed
                    # run's first record covers fewer than log_every).
                    record = {"step": self.step, "stage": stage_before, "seconds": round(time.time() - started, 1)}
                    if bfloat16:
                        record["autocast"] = "bfloat16"
                    record.update({name: round(total / counts[name], 5) for name, total in sums.items()})
                    if skipped:
                        record["skipped"] = skipped
                    sums, counts, skipped = {}, {}, 0
                    append_record(self.run_dir, record, echo=progress)
                if self.stage != stage_before:
                    self.optimizer = self._make_optimizer()
                if self.step % self.config.checkpoint_every == 0 or self.step == stop:
                    self.save_checkpoint()
        finally:
            # Segmentation workers would otherwise outlive the run (leaked-semaphore warnings at exit).
            self.semantic.close()

    def save_checkpoint(self, path: Optional[str] = None, compact: bool = False) -> None:
        """Writes the resume state (atomically). ``compact`` leaves out the optimiser's
        moments and stores the weights in fp16, for the copy committed between sessions."""
        path = path or self.checkpoint_path
        state = {
            "step": self.step,
            "config": self.config.to_dict(),
            "model": self.model.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "sampler_rng": self.sampler.rng.bit_generator.state,
            "teacher": self.teacher.description,
        }
        if compact:
            state = _compact(state)
        else:
            state["optimizer"] = self.optimizer.state_dict()
        save_atomically(state, path)

    def load_checkpoint(self, path: Optional[str] = None) -> None:
        """Resumes from ``path`` (default: the run's own checkpoint); a compact one
        restarts the optimiser's moments."""
        path = path or self.checkpoint_path
        state = torch.load(path, map_location=self.device, weights_only=False)
        self.model.load_state_dict(state["model"])
        self.step = int(state["step"])
        self.optimizer = self._make_optimizer()
        try:
            if "optimizer" in state:
                self.optimizer.load_state_dict(state["optimizer"])
        except ValueError:
            pass  # the checkpoint was written at a stage boundary: start the new optimiser
        torch.set_rng_state(state["torch_rng"].cpu())  # map_location may have moved it to the GPU
        self.sampler.rng.bit_generator.state = state["sampler_rng"]
        print(f"resumed from {path} at step {self.step}", file=sys.stderr)


@torch.no_grad()
def coded_synthesis_input(coder: CodecModel, network: UGHyperprior, x: Tensor, quality: Tensor) -> Tensor:
    """What g_s receives when the coder codes and decodes crops ``x``.

    The latent goes through the coder's own path (bitstream_spec.md §8-§9): g_a and h_a
    of ``network``, z rounded, the integer hyper-synthesis and exact means of ``coder``,
    the symbols its latent coder chooses, then the level's inverse gain; only the entropy
    coding itself is skipped (it is lossless).

    Args:
        coder: the weights whose integer parts code the latents.
        network: the float transforms (g_a, h_a) to analyse with, on x's device.
        x: crops ``(B, 3, H, W)`` in [0, 1], H and W multiples of 64.
        quality: level index per crop ``(B,)``, 0-based.

    Returns:
        float32 ``(B, M, H/16, W/16)``, no gradient.
    """
    y = network.g_a(x)
    out = torch.empty_like(y)
    for index, (level, latent) in enumerate(coded_latents(coder, network, y, quality)):
        out[index : index + 1] = synthesis_input(coder, latent.symbols, latent.mu, level)
    return out


@torch.no_grad()
def coded_latents(coder: CodecModel, network: UGHyperprior, y: Tensor, quality: Tensor) -> List[Tuple[int, CodedLatent]]:
    """How ``coder`` codes each latent of ``y`` (bitstream_spec.md §8): z from ``network``'s
    h_a, rounded; the integer hyper-synthesis, exact means and the latent coder's
    symbols, means and tables.

    Args:
        coder: the weights whose integer parts code the latents.
        network: the float transforms whose h_a analyses ``y``.
        y: latents ``(B, M, h, w)``; quality: level index per latent ``(B,)``, 0-based.

    Returns:
        ``(level, latent)`` per latent, in order (no gradient).
    """
    z_symbols = torch.round(network.h_a(y))
    coded = []
    for index, row in enumerate(quality.tolist()):
        sample, level = slice(index, index + 1), coder.qualities[row]
        residual, mu, hyper_index = latent_residuals(coder, y[sample], z_symbols[sample], level)
        coded.append((level, coder.latent_coder.encode(residual, mu, hyper_index)))
    return coded


def add_run_arguments(parser: "argparse.ArgumentParser", exports: str) -> None:
    """The options a fine-tuning tool's run shares (``tools.distill_synthesis``,
    ``tools.tune_analysis``): threads, a time limit, export (``exports``: what it
    writes), the checkpoint to export, and compact checkpoints to write and resume from."""
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--max-minutes", type=float, help="stop (with a checkpoint) after this much training time")
    parser.add_argument("--export", metavar="PATH", help=f"write {exports} and stop")
    parser.add_argument("--checkpoint", help="with --export: this checkpoint (or a compact one) instead of RUN/checkpoint.pt")
    parser.add_argument("--save-compact", metavar="PATH", help="write the run's compact resume checkpoint and stop")
    parser.add_argument("--init-from", metavar="PATH", help="compact checkpoint to resume from when RUN has none")


def append_record(run_dir: str, record: dict, echo: bool = True) -> None:
    """Appends ``record`` as one JSON line to ``run_dir/log.jsonl`` (and prints it)."""
    line = json.dumps(record)
    with open(os.path.join(run_dir, "log.jsonl"), "a") as handle:
        handle.write(line + "\n")
    if echo:
        print(line, flush=True)


def cosine_rate(base: float, step: int, length: int) -> float:
    """A learning rate falling from ``base`` at step 0 to a tenth of it at step
    ``length`` (and after) along half a cosine."""
    progress = min(1.0, step / max(1, length))
    return base * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def half_parameters(state: Dict[str, Tensor], module: torch.nn.Module) -> Dict[str, Tensor]:
    """``state`` (``module``'s state dict) with the module's parameters in fp16, what a
    compact checkpoint keeps; its buffers stay exact."""
    parameters = {name for name, _ in module.named_parameters()}
    return {name: value.half() if name in parameters else value for name, value in state.items()}


def compact_checkpoint(source: str, destination: str) -> int:
    """Copies a checkpoint written by ``Trainer.save_checkpoint`` without the optimiser's
    moments (what ``compact=True`` writes), without building a Trainer; returns its step.

    Raises:
        FileNotFoundError: no ``source``.
        KeyError: ``source`` is not such a checkpoint (no ``step``).
    """
    state = torch.load(source, map_location="cpu", weights_only=False)
    save_atomically(_compact(state), destination)
    return int(state["step"])


def _compact(state: dict) -> dict:
    """The resume state without the optimiser's moments and with fp16 weights: what is
    committed between sessions (training restarts the moments and trains in fp32)."""
    state = dict(state)
    state.pop("optimizer", None)
    state["model"] = {name: value.half() if value.is_floating_point() else value for name, value in state["model"].items()}
    return state


def widen_checkpoint(
    source: str,
    destination: str,
    channels: Optional[int] = None,
    seed: int = 0,
    latent_channels: Optional[int] = None,
    lambdas: Optional[List[float]] = None,
) -> int:
    """Writes a compact checkpoint of ``source``'s model grown by
    :mod:`tools.widening`: N = ``channels`` (:func:`~tools.widening.widen`: it decodes as
    before), M = ``latent_channels`` (:func:`~tools.widening.widen_latent`) and the quality
    levels ``lambdas`` (:func:`~tools.widening.add_levels`), each only when given, at the
    same step and with the same random states, so training resumes from it with
    ``--init-from`` and a config of the new sizes; returns its step.

    Raises:
        FileNotFoundError: no ``source``.
        KeyError: ``source`` is not a checkpoint written by ``Trainer.save_checkpoint``.
        ValueError: a size below the checkpoint's, or levels that do not extend its own.
    """
    state = torch.load(source, map_location="cpu", weights_only=False)
    model = model_from_checkpoint(state)
    if channels is not None:
        model = widen(model, channels, seed=seed)
    if latent_channels is not None:
        model = widen_latent(model, latent_channels, seed=seed + 1)
    if lambdas is not None:
        model = add_levels(model, tuple(lambdas))
    state.pop("optimizer", None)
    state["model"] = model.state_dict()
    state["config"] = {**state["config"], "model": model.config.to_dict()}
    save_atomically(state, destination)
    return int(state["step"])


def model_from_checkpoint(state: dict) -> UGHyperprior:
    """The trained model of a checkpoint written by ``Trainer.save_checkpoint`` (the
    loaded dict: ``torch.load(path, weights_only=False)``), in eval mode on the CPU.

    Raises:
        KeyError: ``state`` is not such a checkpoint (no ``config.model`` or ``model``).
    """
    model = UGHyperprior(ModelConfig.from_dict(state["config"]["model"]))
    model.load_state_dict(state["model"])
    return model.eval()
