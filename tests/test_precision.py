"""g_s in float32 or with its residual branches in bfloat16 (ugcodec.precision): same
symbols, pixels within bitstream_spec.md §11's tolerance, float32 left untouched."""
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import ugcodec
from ugcodec import precision as precision_module
from ugcodec.cli import main
from ugcodec.codec import decode_pixels, encode_latents, parse_latents
from ugcodec.layers import GDN, BottleneckResidualBlock, MachineAdapter, ShiftedResidualBlock
from ugcodec.precision import bfloat16_analysis, bfloat16_synthesis, float32_analysis, resolve_precision
from ugcodec.winograd import WinogradAnalysis, nnpack_available
from ugcodec.scratch import ScratchGDN

from conftest import make_photo_like
from pixels import assert_pixels_close


def _nudge(module: torch.nn.Module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))


@pytest.mark.parametrize("block", [ShiftedResidualBlock(6, 4), BottleneckResidualBlock(6, 2, 4)], ids=["full", "bottleneck"])
def test_a_residual_block_is_its_branch_plus_the_identity(block):
    _nudge(block)
    x, embedding = torch.randn(2, 6, 5, 7), torch.randn(2, 4)
    with torch.no_grad():
        branch = block.branch(x, embedding)
        coded = block(x.clone(), embedding)
    assert torch.equal(coded, branch + x)
    trained = block(x, embedding)
    assert trained.requires_grad and torch.equal(trained.detach(), coded)


@pytest.mark.parametrize("width", [0, 2])
def test_a_machine_adapter_is_its_gated_residual_plus_the_identity(width):
    adapter = MachineAdapter(4, width)
    _nudge(adapter)
    x, gate = torch.randn(2, 4, 6, 6), torch.tensor([1.0, 0.25])
    with torch.no_grad():
        expected = adapter.residual(x) * gate[:, None, None, None] + x
        coded = adapter(x.clone(), gate)
    assert torch.equal(coded, expected)


def test_precision_names():
    assert resolve_precision("float32") == "float32"
    assert resolve_precision("bfloat16") == "bfloat16"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("float16")


@pytest.mark.parametrize("native, expected", [(True, "bfloat16"), (False, "float32")])
def test_auto_picks_bfloat16_only_where_the_cpu_has_amx(monkeypatch, native, expected):
    monkeypatch.setattr(precision_module, "native_bfloat16", lambda: native)
    assert resolve_precision("auto") == expected


@pytest.mark.parametrize("isa, allowed", [("AVX2", False), ("AVX512_CORE", False), ("AVX512_CORE_AMX", True),
                                          ("ALL", True)])
def test_amx_is_not_used_where_onednn_is_told_not_to(monkeypatch, isa, allowed):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
    assert precision_module.native_bfloat16() is allowed


def test_bfloat16_copy_leaves_the_float32_synthesis_alone(tiny_model):
    g_s = tiny_model.network.g_s
    before = {name: value.clone() for name, value in g_s.state_dict().items()}
    fast = bfloat16_synthesis(g_s)
    assert fast is not g_s
    in_bfloat16 = [index for index, layer in enumerate(fast.up)
                   if {parameter.dtype for parameter in layer.parameters()} == {torch.bfloat16}]
    assert in_bfloat16 == list(precision_module.BFLOAT16_DECONVOLUTIONS) and 3 not in in_bfloat16
    assert all(value.dtype == before[name].dtype and torch.equal(value, before[name])
               for name, value in g_s.state_dict().items())
    assert tiny_model.synthesis("float32") is tiny_model.synthesis("float32"), "built once"
    assert [getattr(up, "deconv", up) for up in tiny_model.synthesis("float32").up] == list(g_s.up), \
        "the float32 form shares g_s's layers"
    assert tiny_model.synthesis("bfloat16") is tiny_model.synthesis("bfloat16"), "built once"
    assert list(tiny_model.analysis("float32").parameters()) == list(tiny_model.network.g_a.parameters()), \
        "the float32 form shares g_a's parameters"
    assert tiny_model.analysis("bfloat16") is tiny_model.analysis("bfloat16") is not tiny_model.synthesis("bfloat16")
    with pytest.raises(ValueError):
        tiny_model.synthesis("half")
    with pytest.raises(ValueError):
        tiny_model.analysis("half")


def test_bfloat16_analysis_keeps_the_first_convolution_and_the_gdns_float32(tiny_model):
    g_a = tiny_model.network.g_a
    fast = bfloat16_analysis(g_a)
    dtypes = [{parameter.dtype for parameter in layer.parameters()} for layer in fast]
    assert dtypes[0] == {torch.float32} and dtypes[-1] == {torch.bfloat16}
    assert all(types == {torch.float32} for layer, types in zip(g_a, dtypes) if not isinstance(layer, torch.nn.Conv2d))
    assert all(parameter.dtype == torch.float32 for parameter in g_a.parameters()), "the original is untouched"
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        exact, approximate = g_a(x), fast(x)
    assert approximate.dtype == torch.float32 and not torch.equal(approximate, exact)
    torch.testing.assert_close(approximate, exact, atol=0.05 * float(exact.abs().max()), rtol=0)


def test_float32_analysis_is_g_a_with_its_gdns_as_matrix_products(tiny_model):
    g_a = tiny_model.network.g_a
    fast = float32_analysis(g_a)
    assert isinstance(fast, WinogradAnalysis) == nnpack_available()
    sequence = fast.fallback if isinstance(fast, WinogradAnalysis) else fast
    assert [type(layer) for layer in sequence] == [
        ScratchGDN if isinstance(layer, GDN) else type(layer) for layer in g_a]
    assert any(isinstance(layer, ScratchGDN) for layer in sequence)
    assert {id(p) for p in fast.parameters()} == {id(p) for p in g_a.parameters()}, "shares g_a's parameters"
    x = torch.rand(1, 3, 256, 192, generator=torch.Generator().manual_seed(3))  # GDNs over >= MIN_AREA positions
    before = x.clone()
    with torch.no_grad():
        exact, fast_out = g_a(x), fast(x)
    assert torch.equal(x, before), "the input is not overwritten"
    torch.testing.assert_close(fast_out, exact, atol=1e-4 * float(exact.abs().max()), rtol=0)
    assert tiny_model.analysis("float32") is tiny_model.analysis("float32"), "built once"


@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_bfloat16_synthesis_stay_close_to_float32(tiny_model, beta):
    g_s = tiny_model.network.g_s
    y_hat = 4 * torch.randn(1, tiny_model.config.M, 5, 6, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        exact = g_s(y_hat, torch.tensor([beta]))
        approximate = bfloat16_synthesis(g_s)(y_hat, torch.tensor([beta]))
    assert approximate.dtype == torch.float32 and approximate.shape == exact.shape
    assert not torch.equal(approximate, exact), "the branches really ran in bfloat16"
    torch.testing.assert_close(approximate, exact, atol=0.02, rtol=0)


def test_shipped_model_in_bfloat16_same_symbols_pixels_within_tolerance(shipped_model):
    """The end-to-end contract of ``precision``: parsing never changes; each preference's
    pixels stay within the spec's tolerance of the float32 reference decoder's."""
    image = make_photo_like(96, 160, seed=4)
    data, _ = encode_latents(image, 4, shipped_model)
    latents = parse_latents(data, shipped_model)
    for preference in ("human", "machine"):
        reference = np.asarray(ugcodec.decode(data, preference, model=shipped_model, precision="float32"))
        fast = np.asarray(ugcodec.decode(data, preference, model=shipped_model, precision="bfloat16"))
        assert_pixels_close(fast, reference)
        assert np.array_equal(decode_pixels(latents, preference, shipped_model, precision="float32"), reference)


def test_bfloat16_encoding_is_a_valid_file_close_to_float32s(shipped_model):
    image = make_photo_like(96, 160, seed=5)
    exact, exact_latents = encode_latents(image, 3, shipped_model, precision="float32")
    fast, fast_latents = encode_latents(image, 3, shipped_model, precision="bfloat16")
    assert fast == encode_latents(image, 3, shipped_model, precision="bfloat16")[0], "deterministic"
    parsed = parse_latents(fast, shipped_model)
    assert torch.equal(parsed.y, fast_latents.y), "the decoder reads what the bfloat16 encoder wrote"
    flipped = float((fast_latents.y != exact_latents.y).double().mean())
    assert flipped < 0.02, f"{flipped:.2%} of the symbols changed"
    assert abs(len(fast) - len(exact)) <= 0.02 * len(exact)


def test_unknown_precision_fails_before_any_work(tiny_model):
    data, latents = encode_latents(make_photo_like(16, 16), 1, tiny_model)
    with pytest.raises(ValueError, match="precision"):
        ugcodec.encode(b"not an image", model=tiny_model, precision="fp16")
    with pytest.raises(ValueError, match="precision"):
        ugcodec.decode(b"not a ugc file", model=tiny_model, precision="fp16")
    with pytest.raises(ValueError, match="precision"):
        decode_pixels(latents, "human", tiny_model, precision="fp16")


def test_cli_precision_option(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(make_photo_like(40, 56)).save("photo.png")
    runner = CliRunner()
    for precision in ("bfloat16", "float32"):  # the float32 file is decoded below
        result = runner.invoke(main, ["encode", "photo.png", "photo.ugc", "-q", "2", "--precision", precision, "-f"])
        assert result.exit_code == 0, result.output
    outputs = {}
    for precision in ("float32", "bfloat16", "auto"):
        result = runner.invoke(main, ["decode", "photo.ugc", f"{precision}.png", "--precision", precision])
        assert result.exit_code == 0, result.output
        outputs[precision] = np.asarray(Image.open(f"{precision}.png"))
    assert_pixels_close(outputs["bfloat16"], outputs["float32"])
    expected = outputs[resolve_precision("auto")]
    assert np.array_equal(outputs["auto"], expected)
    refused = runner.invoke(main, ["decode", "photo.ugc", "x.png", "--precision", "half"])
    assert refused.exit_code == 2 and "half" in refused.output
