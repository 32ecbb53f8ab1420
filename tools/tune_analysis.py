#!/usr/bin/env python3
"""Train a weights file's analysis g_a on for the decoder it ships with.

    python -m tools.tune_analysis --run runs/gatune --corpus data/corpus_broad --threads 1
    python -m tools.tune_analysis --run runs/gatune --export runs/gatune/candidate.pt

Only g_a trains. h_a, the hyper-prior, the latent coder (its channel context included)
and g_s stay the base's (``--base``, default: the shipped weights), so the exported
weights decode the base's files exactly as the base does (they list it in
``also_decodes``). The
loss is the rate–distortion objective the levels were trained with, ``bpp + λ ·
255²·MSE(x_hat, x)`` (human decoding), measured through the coder's own path:

- the symbols, means and coding tables are those the coder chooses for the current g_a
  (:func:`tools.training.coded_latents`), held fixed for the step;
- the rate is the symbols' cost under their tables' Gaussians
  (:func:`ugcodec.scales.symbol_bits`) at the residual plus uniform noise, so its
  gradient reaches y;
- g_s decodes the coded latent, with a straight-through gradient to y.

Every ``--checkpoint-every`` steps the run and the base's own g_a are scored on the same
fixed crops (``--validation`` of them, every level alike, the rate at the coded symbols
themselves), and the log records the differences: ``validation_gain``, the base's loss
minus the run's (positive when the run is ahead), the change in bits per pixel and the
human decoding's PSNR change in dB.

``RUN/checkpoint.pt`` holds g_a, the optimiser and the step; ``RUN/log.jsonl`` a record
every ``--log-every`` steps. ``--save-compact PATH`` writes a compact copy (g_a in fp16,
no optimiser state) that ``--init-from PATH`` resumes on another machine. ``--export
PATH`` writes the run's g_a into the base file (:func:`tools.export.export_analysis_bundle`).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import sys
import time
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from ugcodec.integer_net import GAIN_BITS
from ugcodec.models import UGHyperprior
from ugcodec.scales import scale_table, symbol_bits
from ugcodec.weights import DEFAULT_WEIGHTS, CodecModel, load_model, read_bundle

from .export import export_analysis_bundle, save_atomically, write_bundle
from .losses import mse_255
from .training import CropSampler, add_run_arguments, append_record, coded_latents, cosine_rate, half_parameters

__all__ = ["AnalysisTuneConfig", "AnalysisTuner", "coded_rate_distortion"]


@dataclasses.dataclass
class AnalysisTuneConfig:
    """An analysis fine-tune's settings (stored in its checkpoint).

    Raises:
        ValueError: (on creation) ``crop`` is not a multiple of 64.
    """

    base: str = DEFAULT_WEIGHTS
    seed: int = 0
    corpus: str = "data/corpus_broad"
    crop: int = 128
    crop_detail: float = 14.0
    #: Relative draw of each level (None: all alike).
    quality_weights: Optional[Sequence[float]] = None
    steps: int = 3000
    batch: int = 8
    lr: float = 2e-5
    #: Fixed crops scored at every checkpoint (a multiple of the levels is best).
    validation: int = 32
    log_every: int = 25
    checkpoint_every: int = 100

    def __post_init__(self) -> None:
        if self.quality_weights is not None:
            self.quality_weights = tuple(float(weight) for weight in self.quality_weights)
        if self.crop % 64:
            raise ValueError("crop must be a multiple of 64")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "AnalysisTuneConfig":
        return cls(**data)


def coded_rate_distortion(
    coder: CodecModel,
    g_a: torch.nn.Module,
    x: Tensor,
    quality: Tensor,
    noisy: bool = True,
    generator: Optional[torch.Generator] = None,
) -> Dict[str, Tensor]:
    """Rate and distortion of crops coded by ``coder`` with analysis ``g_a``.

    Args:
        coder: the weights whose h_a, coding parts and g_s (human decoding) are used.
        g_a: the analysis transform to score (gradients flow into it).
        x: crops ``(B, 3, H, W)`` in [0, 1], H and W multiples of 64.
        quality: level index per crop ``(B,)``, 0-based.
        noisy: the rate at the residual plus uniform noise in [-1/2, 1/2) (training's
            estimate, with a gradient); False: at the coded symbols (what they cost).
        generator: the noise's generator (None: torch's default one).

    Returns:
        ``bpp`` and ``distortion`` (255²·MSE of the human decoding), ``(B,)`` each, and
        ``loss``, ``(B,)``: ``bpp + λ · distortion`` with each crop's level's λ.
    """
    network = coder.network
    y = g_a(x)
    coded = coded_latents(coder, network, y, quality)
    levels = [level for level, _ in coded]
    symbols = torch.cat([latent.symbols for _, latent in coded]).to(torch.float32)
    means = torch.cat([latent.mu.to(torch.float32).expand_as(latent.symbols) for _, latent in coded])
    scale = scale_table().to(x.device)[torch.cat([latent.scale_index for _, latent in coded])]
    gains = torch.stack([coder.gain(level) for level in levels]).to(torch.float32) / float(1 << GAIN_BITS)
    inverse_gains = torch.stack([coder.inverse_gain(level) for level in levels])
    residual = y * gains[:, :, None, None] - means
    if noisy:
        noise = torch.rand(y.shape, generator=generator, device=y.device) - 0.5
        bits = symbol_bits(residual + noise, scale)
    else:
        bits = symbol_bits(symbols, scale)
    bits = bits.flatten(1).sum(dim=1)
    bpp = bits / (x.shape[-2] * x.shape[-1])
    coded = residual + (symbols - residual).detach()  # the coder's symbols, gradient to y
    y_hat = (coded + means) * inverse_gains[:, :, None, None]
    x_hat = network.g_s(y_hat, torch.zeros(x.shape[0], device=x.device))
    distortion = mse_255(x_hat, x)
    lambdas = torch.tensor([coder.rate_weight(level) for level in levels], device=x.device)
    return {"bpp": bpp, "distortion": distortion, "loss": bpp + lambdas * distortion}


class AnalysisTuner:
    """Runs (and resumes) an :class:`AnalysisTuneConfig` in ``run_dir``."""

    def __init__(self, config: AnalysisTuneConfig, run_dir: str) -> None:
        self.config = config
        self.run_dir = run_dir
        os.makedirs(run_dir, exist_ok=True)
        self.coder = load_model(config.base)
        self.coder.network.requires_grad_(False)
        self.base_g_a = self.coder.network.g_a
        self.g_a = copy.deepcopy(self.base_g_a).requires_grad_(True)
        self.step = 0
        self.checkpoint_path = os.path.join(run_dir, "checkpoint.pt")
        self.sampler = CropSampler(config.corpus, config.crop, config.seed, "image", config.crop_detail)
        self.generator = torch.Generator().manual_seed(config.seed)
        weights = config.quality_weights or (1.0,) * self.coder.num_qualities
        if len(weights) != self.coder.num_qualities:
            raise ValueError(f"quality_weights needs {self.coder.num_qualities} entries")
        self.probabilities = torch.tensor(weights, dtype=torch.float64)
        self.optimizer = torch.optim.Adam(self.g_a.parameters(), lr=config.lr)
        self.validation_x = self.sampler.sample(config.validation, np.random.default_rng(config.seed + 1_000_003))
        self.validation_quality = torch.arange(config.validation) % self.coder.num_qualities
        self._base_validation: Optional[Dict[str, Tensor]] = None
        if os.path.exists(self.checkpoint_path):
            self.load()

    def _learning_rate(self) -> float:
        return cosine_rate(self.config.lr, self.step, self.config.steps)

    def step_loss(self) -> Dict[str, Tensor]:
        """One training batch's loss (with gradients), bits per pixel and PSNR."""
        x = self.sampler.sample(self.config.batch)
        quality = torch.multinomial(self.probabilities, x.shape[0], replacement=True, generator=self.generator)
        scored = coded_rate_distortion(self.coder, self.g_a, x, quality, generator=self.generator)
        return {
            "loss": scored["loss"].mean(),
            "bpp": scored["bpp"].detach().mean(),
            "psnr": (10 * torch.log10(255.0**2 / scored["distortion"].detach().clamp(min=1e-10))).mean(),
        }

    @torch.no_grad()
    def validate(self) -> Dict[str, float]:
        """The run against the base on the fixed crops: ``validation_gain`` (the base's
        mean loss minus the run's), ``validation_bpp_change`` (run minus base) and
        ``validation_human_db`` (the run's PSNR gain, mean over crops)."""

        def score(g_a: torch.nn.Module) -> Dict[str, Tensor]:
            parts = [
                coded_rate_distortion(self.coder, g_a, self.validation_x[i : i + self.config.batch],
                                      self.validation_quality[i : i + self.config.batch], noisy=False)
                for i in range(0, self.config.validation, self.config.batch)
            ]
            return {name: torch.cat([part[name] for part in parts]) for name in parts[0]}

        if self._base_validation is None:
            self._base_validation = score(self.base_g_a)
        base, ours = self._base_validation, score(self.g_a)
        return {
            "validation_gain": float((base["loss"] - ours["loss"]).mean()),
            "validation_bpp_change": float((ours["bpp"] - base["bpp"]).mean()),
            "validation_human_db": float((10 * torch.log10(base["distortion"] / ours["distortion"].clamp(min=1e-10))).mean()),
        }

    def train(self, max_seconds: Optional[float] = None) -> None:
        """Runs the remaining steps, checkpointing; stops early (with a checkpoint) after
        ``max_seconds`` of training."""
        started = time.time()
        sums: Dict[str, float] = {}
        count = 0
        self.g_a.train()
        while self.step < self.config.steps:
            if max_seconds is not None and time.time() - started >= max_seconds:
                break
            for group in self.optimizer.param_groups:
                group["lr"] = self._learning_rate()
            logs = self.step_loss()
            self.optimizer.zero_grad(set_to_none=True)
            logs["loss"].backward()
            torch.nn.utils.clip_grad_norm_(self.g_a.parameters(), 1.0)
            if torch.isfinite(logs["loss"]):
                self.optimizer.step()
            self.step += 1
            count += 1
            for name, value in logs.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
            if self.step % self.config.log_every == 0 or self.step == self.config.steps:
                record = {"step": self.step, "lr": self._learning_rate(), "seconds": round(time.time() - started, 1)}
                record.update({name: round(total / count, 5) for name, total in sums.items()})
                sums, count = {}, 0
                self._log(record)
            if self.step % self.config.checkpoint_every == 0:
                self._save()
                self._log({"step": self.step, **{name: round(value, 5) for name, value in self.validate().items()}})
        self._save()
        self.g_a.eval()

    def network(self) -> UGHyperprior:
        """The base's network with the run's g_a."""
        network = copy.deepcopy(self.coder.network)
        network.g_a.load_state_dict(self.g_a.state_dict())
        return network.eval()

    # -- state -----------------------------------------------------------------------
    def _log(self, record: dict) -> None:
        append_record(self.run_dir, record)

    def _state(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "g_a": self.g_a.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "sampler_rng": self.sampler.rng.bit_generator.state,
            "generator": self.generator.get_state(),
        }

    def save_compact(self, path: str) -> None:
        """Writes a compact resume checkpoint (g_a in fp16, no optimiser state) to ``path``."""
        state = self._state()
        del state["optimizer"]
        state["g_a"] = half_parameters(state["g_a"], self.g_a)
        save_atomically(state, path)

    def _save(self) -> None:
        save_atomically(self._state(), self.checkpoint_path)

    def load(self, path: Optional[str] = None) -> None:
        """Resumes from ``path`` (default: the run's own checkpoint); a compact one
        (:meth:`save_compact`) restarts the optimiser's moments."""
        state = torch.load(path or self.checkpoint_path, map_location="cpu", weights_only=False)
        self.g_a.load_state_dict({name: value.float() for name, value in state["g_a"].items()})
        self.step = int(state["step"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
        self.sampler.rng.bit_generator.state = state["sampler_rng"]
        self.generator.set_state(state["generator"])
        print(f"resumed at step {self.step}", file=sys.stderr)


def _config_of(path: str) -> AnalysisTuneConfig:
    return AnalysisTuneConfig.from_dict(torch.load(path, map_location="cpu", weights_only=False)["config"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="folder for checkpoint.pt and log.jsonl")
    parser.add_argument("--base", help="weights file whose g_a trains (default: the shipped one; a resumed run: its own)")
    parser.add_argument("--corpus", help="training images (default data/corpus_broad; a resumed run: its own)")
    parser.add_argument("--seed", type=int, default=0, help="a new run's seed: its crops, levels and noise")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--quality-weights", help="relative draw of each level, comma-separated")
    parser.add_argument("--steps", type=int, help="steps (default 3000; a resumed run: its own)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--validation", type=int, default=32, help="fixed crops scored at every checkpoint")
    parser.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints and validations")
    add_run_arguments(parser, "the base weights with the run's g_a")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint = os.path.join(args.run, "checkpoint.pt")
    if args.export:
        source = args.checkpoint or checkpoint
        config = _config_of(source)
        config.base = args.base or config.base
        network = load_model(config.base).network
        state = torch.load(source, map_location="cpu", weights_only=False)["g_a"]
        network.g_a.load_state_dict({name: value.float() for name, value in state.items()})
        fingerprint = write_bundle(export_analysis_bundle(network, read_bundle(config.base)), args.export)
        print(f"{args.export}: fingerprint {fingerprint.hex()}")
        return 0
    resume_from = checkpoint if os.path.exists(checkpoint) else args.init_from
    if resume_from:
        config = _config_of(resume_from)
        config.steps = config.steps if args.steps is None else args.steps
        config.base = config.base if args.base is None else args.base  # e.g. another machine's checkout
        config.corpus = args.corpus or config.corpus
    else:
        config = AnalysisTuneConfig(
            base=args.base or DEFAULT_WEIGHTS,
            seed=args.seed,
            corpus=args.corpus or "data/corpus_broad",
            crop=args.crop,
            quality_weights=None if not args.quality_weights else [float(v) for v in args.quality_weights.split(",")],
            steps=3000 if args.steps is None else args.steps,
            batch=args.batch,
            lr=args.lr,
            validation=args.validation,
            checkpoint_every=args.checkpoint_every,
        )
    tuner = AnalysisTuner(config, args.run)
    if resume_from and resume_from != checkpoint:
        tuner.load(resume_from)
    if args.save_compact:
        tuner.save_compact(args.save_compact)
        print(f"step {tuner.step} -> {args.save_compact}")
        return 0
    tuner.train(None if args.max_minutes is None else 60.0 * args.max_minutes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
