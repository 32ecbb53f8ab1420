#!/usr/bin/env python3
"""Distil a weights file's synthesis g_s into one with cheaper residual blocks, or train it on.

    python -m tools.distill_synthesis --run runs/fastgs --bottlenecks 0,64,48 \\
        --corpus data/corpus_broad --threads 1
    python -m tools.distill_synthesis --run runs/fastgs --export runs/fastgs/candidate.pt
    python -m tools.distill_synthesis --run runs/gsft --bottlenecks 0,0,0 --teacher-weight 0 \\
        --lr 2e-5    # no block replaced: train the shipped g_s on for the same bitstream

The student is the teacher (``--base``, default: the shipped weights) with the residual
block of each level whose ``--bottlenecks`` entry is not 0 replaced by a
:class:`ugcodec.layers.BottleneckResidualBlock` of that width
(:attr:`ugcodec.models.ModelConfig.bottlenecks`); with every entry 0 (and ``--tune
g_s``) the student is the teacher itself, and the finetune below trains its g_s further
for the same latents. g_a, h_a and every coding part stay
the teacher's, so the bitstream (and the rate) is exactly the same; only the pixels that
g_s makes of it change. Three phases, each resumable (re-run the same command):

1. pool: ``--pool`` random crops of the corpus, each with a quality level (drawn by
   ``--quality-weights``), the latent g_s receives when the teacher's coder codes it
   (:func:`tools.training.coded_synthesis_input`), and the teacher's human (beta = 0)
   and machine (beta = 1) decodings; the first ``--feature-pool`` crops also keep the
   input and output of each replaced block for one random beta. Written in shards under
   ``RUN/pool/``.
2. features (``--feature-steps``): only the new blocks train, each to map the teacher's
   input of its level to the teacher's block output (MSE relative to the block's
   residual energy).
3. finetune (``--steps``): the whole g_s (``--tune g_s``) or only the new blocks
   (``--tune blocks``) trains on the final image. beta = 0: ``MSE(x_hat, x) +
   --teacher-weight * MSE(x_hat, teacher_0)``; beta = 1: ``MSE(x_hat, teacher_1)``
   plus, with ``--semantic-weight``, that weight times the multi-scale semantic distance
   (:class:`tools.losses.MultiScaleSemanticLoss`, teacher ``--semantic-teacher``) between
   the machine decoding and x. Each sample's MSE terms are divided by the teacher's own
   MSE to x, so every level counts by its relative (dB) change rather than by its
   absolute error.

``RUN/checkpoint.pt`` holds the student, optimiser, phase and step; ``RUN/log.jsonl`` a
record every ``--log-every`` steps. ``--save-compact PATH`` writes a compact copy (g_s in
fp16, no optimiser state) for another machine, where ``--init-from PATH`` resumes from it
(the pool is built again: the same crops, from the same seed and corpus). ``--export
PATH`` writes the student as a weights file (:func:`tools.export.export_synthesis_bundle`:
the base file with the new g_s).
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import math
import os
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from ugcodec.models import ModelConfig, PreferenceConditionalSynthesis, UGHyperprior
from ugcodec.weights import DEFAULT_WEIGHTS, CodecModel, load_model

from .export import export_synthesis_bundle, save_atomically, write_bundle
from .losses import MultiScaleSemanticLoss
from .teachers import load_teacher
from .training import (
    CropSampler, add_run_arguments, append_record, coded_synthesis_input, cosine_rate, half_parameters,
)

__all__ = [
    "DistillConfig",
    "Distiller",
    "block_features",
    "student_network",
]

#: The default draw of quality levels (rows, lowest rate first): the high levels, where
#: g_s has the most detail to reproduce, more often.
DEFAULT_QUALITY_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.5, 2.0, 2.5, 3.0)
SHARD = 32


@dataclasses.dataclass
class DistillConfig:
    """A distillation run's settings (stored in its checkpoint).

    Raises:
        ValueError: (on creation) ``tune`` is neither ``"g_s"`` nor ``"blocks"``, ``crop``
            is not a multiple of 64, or no level has a positive bottleneck width.
    """

    bottlenecks: Sequence[int]
    base: str = DEFAULT_WEIGHTS
    seed: int = 0
    # The pool of coded crops both phases draw from.
    corpus: str = "data/corpus_broad"
    crop: int = 128
    crop_detail: float = 14.0
    pool: int = 1024
    quality_weights: Optional[Sequence[float]] = None
    # Phase 1: the new blocks learn the old blocks' outputs.
    feature_pool: int = 384
    feature_steps: int = 1500
    feature_batch: int = 16
    feature_lr: float = 1e-3
    # Phase 2: g_s (or only the new blocks, tune="blocks") learns the image.
    tune: str = "g_s"
    steps: int = 3000
    batch: int = 8
    lr: float = 1e-4
    block_lr_scale: float = 1.0
    teacher_weight: float = 1.0
    # beta = 1: weight of the semantic distance (global + local + instance) between the
    # frozen image encoder's view of the machine decoding and of the image.
    semantic_weight: float = 0.0
    semantic_teacher: str = "mobilenet_v2"
    log_every: int = 25
    checkpoint_every: int = 100

    def __post_init__(self) -> None:
        self.bottlenecks = tuple(int(width) for width in self.bottlenecks)
        self.feature_pool = min(self.feature_pool, self.pool)
        if self.quality_weights is not None:
            self.quality_weights = tuple(float(weight) for weight in self.quality_weights)
        if self.tune not in ("g_s", "blocks"):
            raise ValueError(f"tune must be g_s or blocks, not {self.tune!r}")
        if self.crop % 64:
            raise ValueError("crop must be a multiple of 64")
        if not any(self.bottlenecks) and self.tune != "g_s":
            raise ValueError("no level is replaced, so there are no new blocks to tune: use tune g_s")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DistillConfig":
        return cls(**data)


def student_network(coder: CodecModel, bottlenecks: Sequence[int], seed: int = 0) -> UGHyperprior:
    """The teacher's coding-only network with the blocks of the levels whose width is
    not 0 replaced by new (randomly initialised) bottleneck blocks; the rest is a copy of
    the teacher's parameters.

    Raises:
        ValueError: the teacher already has bottleneck blocks of other widths, or one of
            ``bottlenecks`` is negative.
    """
    teacher_config = coder.config
    replaced = [level for level, width in enumerate(bottlenecks) if width]
    for level, (old, new) in enumerate(zip(teacher_config.bottlenecks, bottlenecks)):
        if old and not new:
            raise ValueError(f"level {level} of the teacher is a bottleneck block: keep its width")
    config = ModelConfig.from_dict({**teacher_config.to_dict(), "bottlenecks": list(bottlenecks)})
    torch.manual_seed(seed)
    student = UGHyperprior(config, coding_only=True)
    prefixes = tuple(f"g_s.blocks.{level}." for level in replaced)
    state = {name: value for name, value in coder.network.state_dict().items() if not name.startswith(prefixes)}
    missing, unexpected = student.load_state_dict(state, strict=False)
    if unexpected or any(not name.startswith(prefixes + ("log_gain", "log_inverse_gain")) for name in missing):
        raise ValueError(f"the teacher's parameters do not fit the student ({unexpected or missing})")
    return student.eval()


def block_features(g_s: PreferenceConditionalSynthesis, y_hat: Tensor, beta: Tensor, levels: Sequence[int]) -> Dict[int, "tuple[Tensor, Tensor]"]:
    """The input and output of g_s's residual block at each of ``levels`` (as g_s runs
    on ``y_hat`` with preference ``beta``)."""
    beta = beta.to(y_hat.device)
    embedding = g_s.preference_embedding(beta, y_hat.shape[0])
    features = {}
    x = y_hat
    for index in range(max(levels) + 1):
        inner, block_output, x = g_s.level(index, x, embedding, beta)
        if index in levels:
            features[index] = (inner, block_output)
    return features


class Distiller:
    """Runs (and resumes) the three phases of a :class:`DistillConfig` in ``run_dir``."""

    def __init__(self, config: DistillConfig, run_dir: str) -> None:
        self.config = config
        self.run_dir = run_dir
        os.makedirs(os.path.join(run_dir, "pool"), exist_ok=True)
        self.coder = load_model(config.base)
        self.teacher = self.coder.network
        self.levels = [level for level, width in enumerate(config.bottlenecks) if width]
        self.student = student_network(self.coder, config.bottlenecks, config.seed)
        self.phase = "features" if self.levels else "finetune"  # no new blocks: nothing to match
        self.step = 0
        self.checkpoint_path = os.path.join(run_dir, "checkpoint.pt")
        self.rng = np.random.default_rng(config.seed)
        self.optimizer = self._make_optimizer()
        self.semantic: Optional[MultiScaleSemanticLoss] = None
        if config.semantic_weight:
            self.semantic = MultiScaleSemanticLoss(load_teacher(config.semantic_teacher).freeze())
        if os.path.exists(self.checkpoint_path):
            self.load()

    # -- pool ------------------------------------------------------------------------
    def _shard_paths(self) -> List[str]:
        return sorted(glob.glob(os.path.join(self.run_dir, "pool", "shard_*.pt")))

    @torch.no_grad()
    def build_pool(self) -> None:
        """Writes the missing shards of crops, latents and teacher outputs."""
        config = self.config
        shards = math.ceil(config.pool / SHARD)
        done = len(self._shard_paths())
        if done >= shards:
            return
        sampler = CropSampler(config.corpus, config.crop, config.seed + 1000 * (done + 1), "image", config.crop_detail)
        weights = config.quality_weights or DEFAULT_QUALITY_WEIGHTS[: self.coder.num_qualities]
        if len(weights) != self.coder.num_qualities:
            raise ValueError(f"quality_weights needs {self.coder.num_qualities} entries")
        probabilities = torch.tensor(weights, dtype=torch.float64)
        generator = torch.Generator().manual_seed(config.seed + done)
        for shard in range(done, shards):
            started = time.time()
            count = min(SHARD, config.pool - shard * SHARD)
            x = sampler.sample(count)
            quality = torch.multinomial(probabilities, count, replacement=True, generator=generator)
            y_hat = coded_synthesis_input(self.coder, self.teacher, x, quality)
            teacher = [self.teacher.g_s(y_hat, torch.full((count,), beta)) for beta in (0.0, 1.0)]
            entry = {
                "x": torch.round(x * 255).to(torch.uint8),
                "quality": quality,
                "y_hat": y_hat,
                "human": teacher[0].half(),
                "machine": teacher[1].half(),
            }
            first = shard * SHARD
            features = max(0, min(count, config.feature_pool - first)) if self.levels else 0
            if features:
                beta = (torch.rand(features, generator=generator) < 0.5).float()
                found = block_features(self.teacher.g_s, y_hat[:features], beta, self.levels)
                entry["feature_beta"] = beta
                for level, (inner, out) in found.items():
                    entry[f"in{level}"] = inner.half()
                    entry[f"out{level}"] = out.half()
            save_atomically(entry, os.path.join(self.run_dir, "pool", f"shard_{shard:04d}.pt"))
            self._log({"phase": "pool", "shard": shard + 1, "of": shards, "seconds": round(time.time() - started, 1)})

    def _load_pool(self) -> Dict[str, Tensor]:
        parts = [torch.load(path, weights_only=True) for path in self._shard_paths()]
        pool = {}
        for key in parts[0]:
            pool[key] = torch.cat([part[key] for part in parts if key in part])
        return pool

    # -- training --------------------------------------------------------------------
    def _new_parameters(self) -> List[torch.nn.Parameter]:
        return [p for level in self.levels for p in self.student.g_s.blocks[level].parameters()]

    def _make_optimizer(self) -> torch.optim.Optimizer:
        self.student.requires_grad_(False)
        for level in self.levels:
            self.student.g_s.blocks[level].requires_grad_(True)
        new = self._new_parameters()
        if self.phase == "features":
            groups = [{"params": new, "scale": 1.0}]
        else:
            groups = [{"params": new, "scale": self.config.block_lr_scale}]
            if self.config.tune == "g_s":
                self.student.g_s.requires_grad_(True)
                chosen = {id(p) for p in new}
                groups.append({"params": [p for p in self.student.g_s.parameters() if id(p) not in chosen], "scale": 1.0})
        groups = [group for group in groups if group["params"]]
        return torch.optim.Adam(groups, lr=self.config.feature_lr if self.phase == "features" else self.config.lr)

    def _learning_rate(self) -> float:
        config = self.config
        if self.phase == "features":
            return cosine_rate(config.feature_lr, self.step, config.feature_steps)
        return cosine_rate(config.lr, self.step, config.steps)

    def feature_loss(self, pool: Dict[str, Tensor]) -> Dict[str, Tensor]:
        count = pool["feature_beta"].shape[0]
        index = torch.from_numpy(self.rng.integers(0, count, self.config.feature_batch))
        embedding = self.student.g_s.embedding(pool["feature_beta"][index])
        logs, total = {}, 0.0
        for level in self.levels:
            inner, target = pool[f"in{level}"][index].float(), pool[f"out{level}"][index].float()
            out = self.student.g_s.blocks[level](inner, embedding).float()
            energy = (target - inner).square().mean()
            relative = (out - target).square().mean() / energy
            total = total + relative
            logs[f"relative{level}"] = relative
        logs["loss"] = total
        return logs

    def image_loss(self, pool: Dict[str, Tensor]) -> Dict[str, Tensor]:
        count = pool["x"].shape[0]
        index = torch.from_numpy(self.rng.integers(0, count, self.config.batch))
        x = pool["x"][index].float() / 255.0
        y_hat = pool["y_hat"][index]
        human_teacher, machine_teacher = pool["human"][index].float(), pool["machine"][index].float()
        batch = x.shape[0]

        def mse(a: Tensor, b: Tensor) -> Tensor:
            return (a - b).square().mean(dim=(1, 2, 3))

        reference_human = mse(human_teacher.clamp(0, 1), x).clamp(min=1e-6)
        reference_machine = mse(machine_teacher.clamp(0, 1), x).clamp(min=1e-6)
        human = self.student.g_s(y_hat, torch.zeros(batch)).float()
        machine = self.student.g_s(y_hat, torch.ones(batch)).float()
        human_to_x = mse(human, x)
        loss_human = (human_to_x + self.config.teacher_weight * mse(human, human_teacher)) / reference_human
        loss_machine = mse(machine, machine_teacher) / reference_machine
        logs = {}
        if self.semantic is not None:
            semantic = self.semantic(machine, x)
            loss_machine = loss_machine + self.config.semantic_weight * semantic["total"]
            logs = {f"semantic_{name}": value.detach().mean() for name, value in semantic.items()}
        machine_to_x = mse(machine.detach(), x)
        return {
            **logs,
            "loss": (loss_human + loss_machine).mean(),
            # dB against the teacher's own decoding (negative: worse than the teacher)
            "human_db": (10 * torch.log10(reference_human / human_to_x.detach().clamp(min=1e-10))).mean(),
            "machine_db": (10 * torch.log10(reference_machine / machine_to_x.clamp(min=1e-10))).mean(),
        }

    def train(self, max_seconds: Optional[float] = None, bfloat16: bool = False) -> None:
        """Runs the remaining steps of both training phases, checkpointing.

        ``bfloat16``: forward passes under bfloat16 autocast (parameters, optimiser and
        losses stay float32), several times faster on CPUs with AMX.
        """
        pool = self._load_pool()
        started = time.time()
        sums: Dict[str, float] = {}
        count = 0
        self.student.train()
        for phase, length in (("features", self.config.feature_steps), ("finetune", self.config.steps)):
            if self.phase != phase:
                continue
            while self.step < length:
                if max_seconds is not None and time.time() - started >= max_seconds:
                    self._save()
                    return
                for group in self.optimizer.param_groups:
                    group["lr"] = self._learning_rate() * group.get("scale", 1.0)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
                    logs = self.feature_loss(pool) if phase == "features" else self.image_loss(pool)
                self.optimizer.zero_grad(set_to_none=True)
                logs["loss"].backward()
                torch.nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], 1.0)
                if torch.isfinite(logs["loss"]):
                    self.optimizer.step()
                self.step += 1
                count += 1
                for name, value in logs.items():
                    sums[name] = sums.get(name, 0.0) + float(value.detach())
                if self.step % self.config.log_every == 0 or self.step == length:
                    record = {"phase": phase, "step": self.step, "lr": self._learning_rate(),
                              "seconds": round(time.time() - started, 1)}
                    if bfloat16:
                        record["autocast"] = "bfloat16"
                    record.update({name: round(total / count, 5) for name, total in sums.items()})
                    sums, count = {}, 0
                    self._log(record)
                if self.step % self.config.checkpoint_every == 0 or self.step == length:
                    self._save()
            if phase == "features":
                self.phase, self.step = "finetune", 0
                self.optimizer = self._make_optimizer()
                self._save()
        self.student.eval()

    # -- state -----------------------------------------------------------------------
    def _log(self, record: dict) -> None:
        append_record(self.run_dir, record)

    def _state(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "model_config": self.student.config.to_dict(),
            "g_s": self.student.g_s.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "phase": self.phase,
            "step": self.step,
            "rng": self.rng.bit_generator.state,
        }

    def save_compact(self, path: str) -> None:
        """Writes a compact resume checkpoint (g_s in fp16, no optimiser state) to
        ``path``, for a new machine: ``--init-from PATH`` resumes from it."""
        state = self._state()
        del state["optimizer"]
        state["g_s"] = half_parameters(state["g_s"], self.student.g_s)
        save_atomically(state, path)

    def _save(self) -> None:
        state = self._state()
        save_atomically(state, self.checkpoint_path)
        if self.phase == "finetune" and self.step:
            # Keep the step in the name of a milestone copy, so a later step that is worse
            # does not lose it.
            if self.step % (10 * self.config.checkpoint_every) == 0:
                save_atomically(state, os.path.join(self.run_dir, f"checkpoint_{self.step}.pt"))

    def load(self, path: Optional[str] = None) -> None:
        """Resumes from ``path`` (default: the run's own checkpoint); a compact one
        (:meth:`save_compact`) restarts the optimiser's moments."""
        state = torch.load(path or self.checkpoint_path, map_location="cpu", weights_only=False)
        self.student.g_s.load_state_dict(state["g_s"])
        self.phase, self.step = state["phase"], int(state["step"])
        self.optimizer = self._make_optimizer()
        scales = [group["scale"] for group in self.optimizer.param_groups]
        try:
            if "optimizer" in state:
                self.optimizer.load_state_dict(state["optimizer"])
        except ValueError:  # other parameter groups: fresh moments
            print("optimiser state does not fit: restarting its moments", file=sys.stderr)
        for group, scale in zip(self.optimizer.param_groups, scales):
            group["scale"] = scale  # the config's, which a resumed run may change
        self.rng.bit_generator.state = state["rng"]
        print(f"resumed {self.phase} at step {self.step}", file=sys.stderr)


def load_student(checkpoint: str, base: Optional[str] = None) -> "tuple[UGHyperprior, str]":
    """The student network of a distillation checkpoint (full or compact) and the base
    weights it was distilled from: ``base`` if given (the same weights elsewhere), else
    the path its run recorded."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    config = DistillConfig.from_dict(state["config"])
    base = base or config.base
    student = student_network(load_model(base), config.bottlenecks)
    student.g_s.load_state_dict(state["g_s"])
    return student.eval(), base


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="folder for the pool, checkpoint.pt and log.jsonl")
    parser.add_argument("--bottlenecks", help="width per level of g_s, 0 = keep (e.g. 0,64,48); a new run needs it")
    parser.add_argument("--base", help="teacher weights file (default: the shipped one; a resumed run: its own)")
    parser.add_argument("--corpus", default="data/corpus_broad", help="training images")
    parser.add_argument("--seed", type=int, default=0, help="a new run's seed: its pool's crops and its draws")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--pool", type=int, default=1024, help="crops in the pool")
    parser.add_argument("--feature-pool", type=int, default=384, help="crops of the pool that keep block features")
    parser.add_argument("--quality-weights", help="relative draw of each level, comma-separated")
    parser.add_argument("--feature-steps", type=int, help="features steps (default 1500; a resumed run: its own)")
    parser.add_argument("--steps", type=int, help="finetune steps (default 3000; a resumed run: its own)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--block-lr-scale", type=float,
                        help="finetune: the new blocks' learning rate over the rest's (default 1; a resumed run: its own)")
    parser.add_argument("--tune", default="g_s", choices=("g_s", "blocks"))
    parser.add_argument("--teacher-weight", type=float, default=1.0,
                        help="finetune, beta = 0: weight of the distance to the teacher's decoding against the image's")
    parser.add_argument("--semantic-weight", type=float, default=0.0,
                        help="finetune, beta = 1: weight of the semantic distance to the image (0: none)")
    parser.add_argument("--semantic-teacher", default="mobilenet_v2",
                        help="the frozen image encoder of --semantic-weight (tools.teachers.load_teacher)")
    parser.add_argument("--bfloat16", action="store_true",
                        help="train under bfloat16 autocast (float32 parameters and losses): faster on CPUs with AMX")
    add_run_arguments(parser, "the run's student as a weights file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.export:
        student, base = load_student(args.checkpoint or os.path.join(args.run, "checkpoint.pt"), args.base)
        from ugcodec.weights import read_bundle

        fingerprint = write_bundle(export_synthesis_bundle(student, read_bundle(base)), args.export)
        print(f"{args.export}: fingerprint {fingerprint.hex()}")
        return 0
    checkpoint = os.path.join(args.run, "checkpoint.pt")
    resume_from = checkpoint if os.path.exists(checkpoint) else args.init_from
    if resume_from:
        config = DistillConfig.from_dict(torch.load(resume_from, map_location="cpu", weights_only=False)["config"])
        config.feature_steps = config.feature_steps if args.feature_steps is None else args.feature_steps
        config.steps = config.steps if args.steps is None else args.steps
        config.block_lr_scale = config.block_lr_scale if args.block_lr_scale is None else args.block_lr_scale
        config.base = config.base if args.base is None else args.base  # e.g. another machine's checkout
    else:
        if not args.bottlenecks:
            parser.error("a new run needs --bottlenecks")
        config = DistillConfig(
            bottlenecks=[int(v) for v in args.bottlenecks.split(",")],
            base=args.base or DEFAULT_WEIGHTS,
            seed=args.seed,
            corpus=args.corpus,
            crop=args.crop,
            pool=args.pool,
            feature_pool=args.feature_pool,
            quality_weights=None if not args.quality_weights else [float(v) for v in args.quality_weights.split(",")],
            feature_steps=1500 if args.feature_steps is None else args.feature_steps,
            steps=3000 if args.steps is None else args.steps,
            batch=args.batch,
            lr=args.lr,
            block_lr_scale=1.0 if args.block_lr_scale is None else args.block_lr_scale,
            tune=args.tune,
            teacher_weight=args.teacher_weight,
            semantic_weight=args.semantic_weight,
            semantic_teacher=args.semantic_teacher,
        )
    distiller = Distiller(config, args.run)
    if resume_from and resume_from != checkpoint:
        distiller.load(resume_from)
    if args.save_compact:
        distiller.save_compact(args.save_compact)
        print(f"{distiller.phase} step {distiller.step} -> {args.save_compact}")
        return 0
    distiller.build_pool()
    distiller.train(None if args.max_minutes is None else 60.0 * args.max_minutes, bfloat16=args.bfloat16)
    return 0


if __name__ == "__main__":
    sys.exit(main())
