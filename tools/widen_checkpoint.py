#!/usr/bin/env python3
"""Grow a training checkpoint: more channels, more latent channels, more quality levels.

    python -m tools.widen_checkpoint runs/cpu_small/checkpoint.pt runs/wide/init.pt --channels 128 \
        --latent-channels 192 --lambdas 0.0018,0.0035,0.0067,0.0130,0.0250,0.0483,0.0932,0.18
    python -m tools.train --config tools/configs/wide.toml --run runs/wide --init-from runs/wide/init.pt

The new channels get fresh weights into them and zero weights out of them
(``tools.widening.widen``), so training goes on from what the checkpoint knows instead
of from scratch (``tools.widening``: ``widen``, ``widen_latent``, ``add_levels``). Writes
a checkpoint without optimiser moments at the same step; the config it trains on must
have the new ``model.N``, ``model.M`` and ``model.lambdas``.
"""
from __future__ import annotations

import argparse
import sys


from tools.training import widen_checkpoint


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="checkpoint written by tools/train.py (full or compact)")
    parser.add_argument("out", help="compact checkpoint to write")
    parser.add_argument("--channels", type=int, help="the new N (the transforms' and z's channels)")
    parser.add_argument("--latent-channels", type=int, help="the new M (the latent y's channels)")
    parser.add_argument("--lambdas", help="comma-separated lambdas of every level, the checkpoint's first")
    parser.add_argument("--seed", type=int, default=0, help="seeds the new channels' fresh weights")
    args = parser.parse_args(argv)
    if args.channels is None and args.latent_channels is None and args.lambdas is None:
        parser.error("nothing to grow: give --channels, --latent-channels or --lambdas")
    try:
        lambdas = None if args.lambdas is None else [float(value) for value in args.lambdas.split(",")]
        step = widen_checkpoint(args.checkpoint, args.out, args.channels, seed=args.seed,
                                latent_channels=args.latent_channels, lambdas=lambdas)
    except (FileNotFoundError, KeyError, ValueError) as error:
        parser.error(f"{args.checkpoint}: {error}")
    print(f"step {step} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
