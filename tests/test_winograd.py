"""g_s's residual blocks and upsamplings by Winograd convolution (ugcodec.winograd) and the float32
synthesis that uses them (ugcodec.precision.float32_synthesis): the same function as the
direct convolutions to float rounding, on the layouts and sizes the decoder uses, and the
direct blocks wherever NNPACK is missing."""
import numpy as np
import pytest
import torch

from ugcodec import winograd
from ugcodec.codec import decode_pixels, encode_latents
from ugcodec.folding import FoldedSynthesis
from ugcodec._compressai import conv, deconv
from ugcodec.layers import GDN, BottleneckResidualBlock, ShiftedResidualBlock
from ugcodec.models import PreferenceConditionalSynthesis
from ugcodec.precision import float32_synthesis
from ugcodec.scratch import UPSAMPLING_ROLES, ScratchBottleneckBlock, ScratchGDN, reusing_scratch, scratch
from ugcodec.winograd import (MIN_AREA, WinogradAnalysis, WinogradConvolution, WinogradResidualBlock,
                              WinogradUpsampling, polyphase_convolution, subpixel_convolution)

from conftest import make_photo_like
from pixels import assert_pixels_close

needs_nnpack = pytest.mark.skipif(not winograd.nnpack_available(), reason="NNPACK does not run on this CPU")


@pytest.fixture(autouse=True)
def nnpack_thread_count():
    """Each test runs at the thread count of NNPACK's pool, where the Winograd path runs."""
    before = torch.get_num_threads()
    torch.set_num_threads(winograd.nnpack_threads() or before)
    yield
    torch.set_num_threads(before)


def _block(channels: int = 6, seed: int = 0) -> ShiftedResidualBlock:
    torch.manual_seed(seed)
    block = ShiftedResidualBlock(channels, 4).eval()
    with torch.no_grad():  # the shifts start at zero: give them something to do
        for parameter in block.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape))
    return block


def _inputs(channels: int = 6, height: int = 70, width: int = 61, batch: int = 2):
    assert height * width >= MIN_AREA
    return torch.randn(batch, channels, height, width), torch.randn(batch, 4)


@needs_nnpack
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last], ids=["nchw", "channels-last"])
@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_the_block_computes_the_direct_blocks_function(layout, mode):
    block = _block()
    x, embedding = _inputs()
    x = x.contiguous(memory_format=layout)
    context = torch.no_grad if mode == "no_grad" else torch.inference_mode
    with context():
        expected = block(x.clone(), embedding)
        got = WinogradResidualBlock(block)(x.clone(), embedding)
    assert got.shape == expected.shape
    difference = (got - expected).abs().max().item()
    assert 0 < difference < 1e-4, "by another algorithm, to float rounding"
    assert got.is_contiguous(memory_format=layout), "the output keeps the input's layout"


@needs_nnpack
def test_outside_inference_mode_the_input_is_left_alone():
    block = _block()
    x, embedding = _inputs()
    x = x.contiguous(memory_format=torch.channels_last)
    before = x.clone()
    with torch.no_grad():
        WinogradResidualBlock(block)(x, embedding)
    assert torch.equal(x, before)


@needs_nnpack
def test_at_another_thread_count_than_nnpacks_the_block_runs_directly():
    block = _block()
    x, embedding = _inputs()
    torch.set_num_threads(winograd.nnpack_threads() % 2 + 1)  # 1 <-> 2
    assert not winograd.winograd_runs_now()
    with torch.no_grad():
        assert torch.equal(WinogradResidualBlock(block)(x.clone(), embedding), block(x.clone(), embedding))


def test_small_grids_gradients_and_other_dtypes_run_the_block_itself():
    block = _block()
    fast = WinogradResidualBlock(block)
    x, embedding = torch.randn(1, 6, 8, 9), torch.randn(1, 4)  # below MIN_AREA
    with torch.no_grad():
        assert torch.equal(fast(x.clone(), embedding), block(x.clone(), embedding))
    large, embedding = _inputs(batch=1)
    large.requires_grad_(True)
    out = fast(large, embedding)  # with gradients: the direct path, differentiable
    assert torch.equal(out, block(large, embedding))
    out.sum().backward()
    assert large.grad is not None
    with torch.no_grad():
        doubled = large.detach().double()
        assert fast.double()(doubled, embedding.double()).dtype == torch.float64


@needs_nnpack
def test_the_float32_synthesis_shares_g_s_and_replaces_blocks_gdns_and_adapters():
    torch.manual_seed(3)
    g_s = PreferenceConditionalSynthesis(
        N=8, M=12, embedding_dim=8, bottlenecks=(0, 4, 0), machine_adapter=True, adapter_width=4
    ).eval()
    with torch.no_grad():  # the adapters start as the identity: give them something to do
        for adapter in g_s.adapters:
            adapter.expand.weight.normal_(0, 0.1)
    before = {name: value.clone() for name, value in g_s.state_dict().items()}
    folded = float32_synthesis(g_s)
    assert isinstance(folded, FoldedSynthesis), "the last adapter, a bottleneck, is folded into the last upsampling"
    fast = folded.g_s
    assert fast is not g_s
    assert folded.output.adapter is fast.adapters[-1] and folded.output.upsampling is fast.up[-1]
    assert isinstance(folded.output.branch, WinogradUpsampling)
    assert all(isinstance(adapter.convolution, WinogradConvolution) for adapter in fast.adapters)
    assert [up.deconv for up in fast.up] == list(g_s.up)
    assert [up.role for up in fast.up] == [*UPSAMPLING_ROLES, UPSAMPLING_ROLES[0], None], "the image gets its own tensor"
    assert [gdn.gdn for gdn in fast.gdn] == list(g_s.gdn)
    assert all(isinstance(gdn, ScratchGDN) for gdn in fast.gdn)
    assert [adapter.adapter for adapter in fast.adapters] == list(g_s.adapters)
    assert isinstance(fast.blocks[0], WinogradResidualBlock) and fast.blocks[0].block is g_s.blocks[0]
    assert isinstance(fast.blocks[1], ScratchBottleneckBlock) and fast.blocks[1].block is g_s.blocks[1]
    assert isinstance(fast.blocks[1].convolution, WinogradConvolution)
    assert isinstance(fast.blocks[2], WinogradResidualBlock)
    assert all(isinstance(block, (ShiftedResidualBlock, BottleneckResidualBlock)) for block in g_s.blocks)
    y_hat = torch.randn(1, 12, 20, 24).contiguous(memory_format=torch.channels_last)
    kept = y_hat.clone()
    for beta in (0.0, 1.0):
        with torch.inference_mode(), reusing_scratch():
            exact, approximate = g_s(y_hat, torch.tensor([beta])), folded(y_hat, torch.tensor([beta]))
        assert 0 < (approximate - exact).abs().max().item() < 1e-4
    assert torch.equal(y_hat, kept), "inner layers overwrite their inputs, never g_s's input"
    assert all(torch.equal(value, before[name]) for name, value in g_s.state_dict().items())


def test_without_nnpack_the_blocks_stay_direct(monkeypatch):
    g_s = PreferenceConditionalSynthesis(N=8, M=12, embedding_dim=8).eval()
    monkeypatch.setattr("ugcodec.precision.nnpack_available", lambda: False)
    fast = float32_synthesis(g_s)
    assert fast.blocks is g_s.blocks and fast.up is g_s.up
    assert all(isinstance(gdn, ScratchGDN) for gdn in fast.gdn)
    g_s = PreferenceConditionalSynthesis(N=8, M=12, embedding_dim=8, bottlenecks=(0, 4, 0)).eval()
    blocks = float32_synthesis(g_s).blocks
    assert blocks[0] is g_s.blocks[0] and blocks[2] is g_s.blocks[2]
    assert isinstance(blocks[1], ScratchBottleneckBlock) and blocks[1].convolution is g_s.blocks[1].conv


@needs_nnpack
def test_float32_decoding_stays_within_the_pixel_tolerance_of_the_direct_synthesis(tiny_model, monkeypatch):
    # Large enough that g_s's two upper blocks run by Winograd.
    _, latents = encode_latents(make_photo_like(320, 384, seed=5), 2, tiny_model)
    fast = decode_pixels(latents, "human", tiny_model, precision="float32")
    # The cached float32 form swapped for g_s itself: the direct convolutions.
    monkeypatch.setitem(tiny_model._forms, "g_s-float32", tiny_model.network.g_s)
    direct = decode_pixels(latents, "human", tiny_model, precision="float32")
    assert_pixels_close(fast, direct)
    assert np.array_equal(fast.shape, direct.shape)


def _deconv(inputs: int = 5, outputs: int = 7, seed: int = 4) -> torch.nn.ConvTranspose2d:
    torch.manual_seed(seed)
    return deconv(inputs, outputs).eval()


@pytest.mark.parametrize("size", [(9, 11), (1, 1), (6, 4)])
def test_the_subpixel_convolution_pixel_shuffled_is_the_transposed_convolution(size):
    layer = _deconv()
    weight, bias = subpixel_convolution(layer)
    assert weight.shape == (28, 5, 3, 3) and bias.shape == (28,)
    x = torch.randn(2, 5, *size, dtype=torch.float64)
    with torch.no_grad():
        expected = layer.double()(x)
        got = torch.nn.functional.pixel_shuffle(
            torch.nn.functional.conv2d(x, weight.double(), bias.double(), padding=1), 2)
    assert got.shape == expected.shape == (2, 7, 2 * size[0], 2 * size[1])
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("change", [dict(stride=1), dict(padding=1), dict(output_padding=0), dict(bias=False)])
def test_the_subpixel_convolution_refuses_other_transposed_convolutions(change):
    settings = {**dict(kernel_size=5, stride=2, padding=2, output_padding=1, bias=True), **change}
    if settings["stride"] == 1:
        settings["output_padding"] = 0
    with pytest.raises(ValueError, match="5x5 stride-2"):
        subpixel_convolution(torch.nn.ConvTranspose2d(3, 4, **settings))


@needs_nnpack
@pytest.mark.parametrize("layout", [torch.channels_last, torch.contiguous_format], ids=["channels_last", "nchw"])
def test_winograd_upsampling_writes_the_transposed_convolution_into_its_role(layout):
    layer = _deconv()
    x = torch.randn(2, 5, 33, 40).contiguous(memory_format=layout)
    kept = x.clone()
    with torch.no_grad():
        expected = layer(x)
        with reusing_scratch():
            got = WinogradUpsampling(layer, role=UPSAMPLING_ROLES[1])(x)
            held = scratch(UPSAMPLING_ROLES[1], got.shape)
        fresh = WinogradUpsampling(layer)(x)
    assert got.is_contiguous() and got.data_ptr() == held.data_ptr(), "in the role's storage, NCHW"
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert torch.equal(fresh, got) and torch.equal(x, kept)


@needs_nnpack
def test_winograd_upsampling_runs_the_transposed_convolution_itself_elsewhere():
    layer = _deconv()
    fast = WinogradUpsampling(layer, role=UPSAMPLING_ROLES[0])
    x = torch.randn(1, 5, 12, 10, requires_grad=True)
    out = fast(x)  # with gradients: the transposed convolution, differentiable
    assert torch.equal(out, layer(x))
    out.sum().backward()
    assert x.grad is not None
    with torch.no_grad():
        before = torch.get_num_threads()
        torch.set_num_threads(before + 1)  # NNPACK's pool has another count: direct
        try:
            assert torch.equal(fast(x.detach()), layer(x.detach()))
        finally:
            torch.set_num_threads(before)
        doubled = x.detach().double()
        assert torch.equal(fast.double()(doubled), layer(doubled))


@pytest.mark.parametrize("size", [(10, 12), (2, 2), (6, 4)])
def test_the_polyphase_convolution_of_the_space_to_depth_input_is_the_strided_convolution(size):
    torch.manual_seed(5)
    layer = torch.nn.Conv2d(5, 7, kernel_size=5, stride=2, padding=2).eval()
    weight, bias = polyphase_convolution(layer)
    assert weight.shape == (7, 20, 3, 3) and bias.shape == (7,)
    x = torch.randn(2, 5, *size, dtype=torch.float64)
    with torch.no_grad():
        expected = layer.double()(x)
        got = torch.nn.functional.conv2d(
            torch.nn.functional.pixel_unshuffle(x, 2), weight.double(), bias.double(), padding=1)
    assert got.shape == expected.shape == (2, 7, size[0] // 2, size[1] // 2)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("change", [dict(stride=1), dict(padding=1), dict(kernel_size=3), dict(bias=False)])
def test_the_polyphase_convolution_refuses_other_convolutions(change):
    settings = {**dict(kernel_size=5, stride=2, padding=2, bias=True), **change}
    with pytest.raises(ValueError, match="5x5 stride-2"):
        polyphase_convolution(torch.nn.Conv2d(3, 4, **settings))


@pytest.mark.parametrize("size", [(80, 64), (4, 6)], ids=["scratch path", "small"])
def test_the_gdn_writes_its_output_space_to_depth(size):
    torch.manual_seed(6)
    gdn = GDN(6).eval()
    with torch.no_grad():
        gdn.gamma.add_(0.1 * torch.rand_like(gdn.gamma))
        x = torch.randn(1, 6, *size)
        expected = torch.nn.functional.pixel_unshuffle(gdn(x), 2)
        with reusing_scratch():
            got = ScratchGDN(gdn).space_to_depth(x.clone(), role=UPSAMPLING_ROLES[0])
    assert got.shape == (1, 24, size[0] // 2, size[1] // 2) and got.is_contiguous()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def _analysis(seed: int = 7) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(conv(3, 8), GDN(8), conv(8, 8), GDN(8), conv(8, 8), GDN(8), conv(8, 12)).eval()


@needs_nnpack
def test_the_winograd_analysis_is_g_a_to_float_rounding_and_leaves_its_input():
    g_a = _analysis()
    analysis = WinogradAnalysis(g_a, fallback=g_a)
    x = torch.rand(1, 3, 192, 256)
    kept = x.clone()
    with torch.inference_mode(), reusing_scratch():
        expected, got = g_a(x), analysis(x)
    assert got.shape == expected.shape == (1, 12, 12, 16)
    assert 0 < (got - expected).abs().max().item() < 1e-4 * expected.abs().max().item()
    assert torch.equal(x, kept)


def test_the_winograd_analysis_runs_its_fallback_on_small_inputs_and_for_gradients():
    g_a = _analysis()
    calls = []
    fallback = torch.nn.Sequential(*g_a)
    fallback.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape))
    analysis = WinogradAnalysis(g_a, fallback=fallback)
    with torch.no_grad():
        analysis(torch.rand(1, 3, 64, 64))  # the first layer's output below MIN_AREA
    analysis(torch.rand(1, 3, 192, 256))  # gradients recorded
    assert calls == [(1, 3, 64, 64), (1, 3, 192, 256)]
    with pytest.raises(ValueError, match="alternate"):
        WinogradAnalysis(torch.nn.Sequential(conv(3, 8), conv(8, 8)), fallback=g_a)
