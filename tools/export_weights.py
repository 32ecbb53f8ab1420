#!/usr/bin/env python3
"""Export a training checkpoint as the package's compact (fp16) weights file.

    python -m tools.export_weights runs/cpu_small/checkpoint.pt [--out ugcodec/weights/ugc-hyperprior-pcdm.pt]

Prints the new weights' fingerprint. A checkpoint of adapter fine-tuning (its config has
``base_weights``) exports as that weights file plus the trained machine adapters
(``--base`` names another copy of it). After exporting, regenerate the golden vectors
(``python -m tools.make_golden``): files made with other weights no longer decode.
"""
from __future__ import annotations

import argparse
import os
import sys


import torch

from tools.training import model_from_checkpoint
from tools.export import export_weights
from ugcodec.weights import DEFAULT_WEIGHTS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="checkpoint.pt written by tools/train.py")
    parser.add_argument("--out", default=DEFAULT_WEIGHTS, help="weights file to write")
    parser.add_argument("--base", help="weights file the adapters were fine-tuned on (default: the checkpoint's base_weights)")
    args = parser.parse_args(argv)
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    model = model_from_checkpoint(state)
    base = args.base or state["config"].get("base_weights")
    fingerprint = export_weights(model, args.out, base=base)
    size = os.path.getsize(args.out)
    print(f"step {state['step']} -> {args.out} ({size / 1e6:.1f} MB), fingerprint {fingerprint.hex()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
