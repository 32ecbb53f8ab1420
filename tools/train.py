#!/usr/bin/env python3
"""Train a ugcodec model (both stages, every quality level) from a TOML config.

    python -m tools.train --config tools/configs/cpu_small.toml --run runs/cpu_small

Re-running the same command resumes from ``RUN/checkpoint.pt``; on a new machine,
``--init-from checkpoints/wide.pt`` resumes from the committed compact checkpoint,
and ``--save-compact PATH`` writes one (once a session, overwriting). Options override the
config: ``--teacher clip:ViT-B-32 --teacher-weights PATH_OR_TAG``, ``--device cuda``,
``--set KEY=VALUE`` (a top-level entry or ``model.N``, ``model.M``, ...),
``--max-steps N`` (stop after N more steps, e.g. to share a session), ``--max-minutes M``
(stop after M minutes of wall time, e.g. on a lent GPU).
"""
from __future__ import annotations

import argparse
import sys


import torch

from tools.training import Trainer, TrainConfig


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="TOML file (see tools/configs/)")
    parser.add_argument("--run", required=True, help="folder for checkpoint.pt and log.jsonl")
    parser.add_argument("--teacher", help="mobilenet_v2 or clip:MODEL_NAME")
    parser.add_argument("--teacher-weights", help="local checkpoint path or open_clip hub tag")
    parser.add_argument("--corpus", help="folder of training images (default: the config's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--max-steps", type=int, help="stop after this many more steps")
    parser.add_argument("--max-minutes", type=float, help="stop (with a checkpoint) after this much wall time")
    parser.add_argument("--init-from", help="compact checkpoint to resume from when RUN has none")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a top-level config entry, VALUE in TOML syntax (e.g. --set lr=1e-5 --set batch=32)",
    )
    parser.add_argument("--save-compact", help="write a compact resume checkpoint here and stop")
    parser.add_argument("--bfloat16", action="store_true",
                        help="forward passes under bfloat16 autocast (float32 parameters and losses): "
                             "faster on CPUs with AMX and on GPUs")
    args = parser.parse_args(argv)
    if args.max_minutes is not None and args.max_minutes <= 0:
        parser.error("--max-minutes must be positive")

    config = TrainConfig.from_toml(args.config)
    try:
        for assignment in args.set:
            config.override(assignment)
    except ValueError as error:
        parser.error(str(error))
    if args.teacher:
        config.teacher = args.teacher
    if args.teacher_weights:
        config.teacher_weights = args.teacher_weights
    if args.corpus:
        config.corpus = args.corpus
    if args.threads:
        torch.set_num_threads(args.threads)
    trainer = Trainer(config, args.run, device=args.device)
    if args.init_from and trainer.step == 0:
        trainer.load_checkpoint(args.init_from)
    if args.save_compact:
        trainer.save_checkpoint(args.save_compact, compact=True)
        print(f"step {trainer.step} -> {args.save_compact}")
        return 0
    trainer.run(max_steps=args.max_steps, max_seconds=None if args.max_minutes is None else 60.0 * args.max_minutes,
                bfloat16=args.bfloat16)
    return 0


if __name__ == "__main__":
    sys.exit(main())
