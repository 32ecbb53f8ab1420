"""Start-up: a command imports only what it needs, and compressai's own import still works
after ugcodec loaded its layers without compressai's package __init__."""
import json
import subprocess
import sys


def _modules_after(code: str) -> set:
    script = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(json.loads(completed.stdout.strip().splitlines()[-1]))


def test_version_and_header_need_no_torch():
    modules = _modules_after(
        "import ugcodec, ugcodec.cli\n"
        "from click.testing import CliRunner\n"
        "assert CliRunner().invoke(ugcodec.cli.main, ['--version']).exit_code == 0"
    )
    assert "torch" not in modules and not any(name.startswith("compressai") for name in modules)


def test_coding_imports_no_training_parts_of_compressai():
    modules = _modules_after("import ugcodec\nugcodec.load_model()")
    assert "compressai.layers" in modules
    unwanted = {"compressai", "compressai.entropy_models", "compressai.zoo", "compressai.datasets", "scipy",
                "torch_geometric", "ugcodec.training", "ugcodec.teachers"}
    assert not unwanted & modules


def test_compressai_imports_normally_after_ugcodec():
    script = (
        "import ugcodec, torch\n"
        "ugcodec.load_model()\n"
        "import compressai, compressai.models.utils\n"
        "from compressai.models import MeanScaleHyperprior\n"
        "from ugcodec import _compressai\n"
        "assert compressai.layers.GDN is _compressai.GDN\n"
        "assert callable(compressai.models.utils.conv) and compressai.get_entropy_coder()\n"
        "network = MeanScaleHyperprior(8, 16).eval()\n"
        "network.update(force=True)\n"
        "with torch.inference_mode():\n"
        "    out = network.compress(torch.rand(1, 3, 64, 64))\n"
        "    assert network.decompress(out['strings'], out['shape'])['x_hat'].shape == (1, 3, 64, 64)\n"
        "assert _compressai.EntropyBottleneck is compressai.entropy_models.EntropyBottleneck\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
