"""Exact parsing, tolerant pixels: the same file decoded in processes with 1 and 2 threads."""
import json
import os
import subprocess
import sys

import numpy as np

from pixels import assert_pixels_close

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "golden.ugc")

SCRIPT = r"""
import hashlib, json, sys
import numpy as np
import torch
torch.set_num_threads(int(sys.argv[1]))
import ugcodec
from ugcodec.codec import decode_pixels
data = open(sys.argv[2], "rb").read()
latents = ugcodec.parse_latents(data)
symbols = hashlib.sha256(latents.z.numpy().tobytes() + latents.y.numpy().tobytes() + latents.scale_index.numpy().tobytes()).hexdigest()
np.save(sys.argv[3], np.stack([decode_pixels(latents, p) for p in ("human", "machine")]))
print(json.dumps({"threads": torch.get_num_threads(), "symbols": symbols}))
"""


def test_symbols_exact_and_pixels_tolerant_across_thread_counts(tmp_path):
    results, pixels = [], []
    for threads in (1, 2):
        out = tmp_path / f"pixels{threads}.npy"
        completed = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(threads), GOLDEN, str(out)],
            check=True, capture_output=True, text=True,
        )
        results.append(json.loads(completed.stdout.strip().splitlines()[-1]))
        pixels.append(np.load(out))
    assert [r["threads"] for r in results] == [1, 2]
    assert results[0]["symbols"] == results[1]["symbols"]
    assert_pixels_close(pixels[0], pixels[1])
