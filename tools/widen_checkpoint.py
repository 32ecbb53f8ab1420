#!/usr/bin/env python3
"""Widen a training checkpoint's transforms to more channels, decoding as before.

    python -m tools.widen_checkpoint checkpoints/cpu_small.pt runs/cpu_wide/init.pt --channels 128
    python -m tools.train --config tools/configs/cpu_wide.toml --run runs/cpu_wide --init-from runs/cpu_wide/init.pt

The new channels get fresh weights into them and zero weights out of them
(``tools.widening.widen``), so training goes on from what the checkpoint knows instead
of from scratch. Writes a compact checkpoint (no optimiser moments) at the same step;
the config it trains on must have ``model.N`` equal to ``--channels``.
"""
from __future__ import annotations

import argparse
import sys


from tools.training import widen_checkpoint


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="checkpoint written by tools/train.py (full or compact)")
    parser.add_argument("out", help="compact checkpoint to write")
    parser.add_argument("--channels", type=int, required=True, help="the new N (the transforms' and z's channels)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the new channels' fresh weights")
    args = parser.parse_args(argv)
    try:
        step = widen_checkpoint(args.checkpoint, args.out, args.channels, seed=args.seed)
    except (FileNotFoundError, KeyError, ValueError) as error:
        parser.error(f"{args.checkpoint}: {error}")
    print(f"step {step}, N={args.channels} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
