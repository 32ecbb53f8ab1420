"""Scratch temporaries (ugcodec.scratch): reused storage inside reusing_scratch() only,
per role and thread; and the GDN, machine adapter and bottleneck residual block that
take their temporaries from it."""
import threading

import pytest
import torch

import ugcodec.scratch as scratch_module
from ugcodec.layers import GDN, BottleneckResidualBlock, MachineAdapter
from ugcodec.scratch import MIN_AREA, ScratchBottleneckBlock, ScratchGDN, ScratchMachineAdapter, reusing_scratch, scratch


def test_inside_the_block_a_role_gets_the_same_storage_and_outside_new():
    with reusing_scratch():
        first = scratch(0, (1, 3, 4, 5))
        assert scratch(0, (1, 3, 4, 5)).data_ptr() == first.data_ptr()
        assert scratch(1, (1, 3, 4, 5)).data_ptr() != first.data_ptr()
        smaller = scratch(0, (1, 3, 2, 5))
        assert smaller.data_ptr() == first.data_ptr() and smaller.shape == (1, 3, 2, 5)
        larger = scratch(0, (1, 3, 8, 5))
        assert larger.shape == (1, 3, 8, 5) and larger.is_contiguous()
        larger.fill_(1.0)  # all of it is writable storage of its own
        assert scratch(0, (1, 3, 8, 5)).data_ptr() == larger.data_ptr(), "grown once, then kept"
    outside = [scratch(0, (1, 3, 4, 5)) for _ in range(2)]
    assert outside[0].data_ptr() != outside[1].data_ptr()


def test_nested_blocks_share_the_pool_until_the_outer_one_ends():
    with reusing_scratch():
        first = scratch(0, (2, 3))
        with reusing_scratch():
            assert scratch(0, (2, 3)).data_ptr() == first.data_ptr()
        assert scratch(0, (2, 3)).data_ptr() == first.data_ptr()
        kept = first  # keeps the storage alive, so a new one cannot reuse its address
    assert scratch(0, (2, 3)).data_ptr() != kept.data_ptr()


def test_channels_last_scratch_has_that_layout():
    with reusing_scratch():
        x = scratch(0, (2, 3, 4, 5), channels_last=True)
        assert x.shape == (2, 3, 4, 5)
        assert x.is_contiguous(memory_format=torch.channels_last)
        x.copy_(torch.arange(120.0).reshape(2, 3, 4, 5))
        assert torch.equal(x, torch.arange(120.0).reshape(2, 3, 4, 5))


def test_threads_never_share_scratch():
    addresses = {}

    def worker(name):
        with reusing_scratch():
            tensor = scratch(0, (64, 64))
            barrier.wait()  # both hold their scratch at once
            addresses[name] = tensor.data_ptr()
            barrier.wait()

    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=worker, args=(name,)) for name in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert addresses["a"] != addresses["b"]


def _gdn(channels: int, inverse: bool) -> GDN:
    torch.manual_seed(1)
    gdn = GDN(channels, inverse=inverse).eval()
    with torch.no_grad():  # away from the identity initialisation
        gdn.gamma.add_(0.05 * torch.rand(gdn.gamma.shape))
        gdn.beta.add_(0.05 * torch.rand(gdn.beta.shape))
    return gdn


def _channels_last_input(channels: int = 6, height: int = 66, width: int = 70):
    assert height * width >= MIN_AREA
    return torch.randn(2, channels, height, width).contiguous(memory_format=torch.channels_last)


LAYOUTS = {"channels_last": torch.channels_last, "nchw": torch.contiguous_format}


def _strided_input():
    """Neither channels-last nor NCHW-contiguous: every other column of a wider tensor."""
    return torch.randn(1, 6, 66, 140)[..., ::2]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("inverse", [True, False], ids=["inverse", "forward"])
def test_scratch_gdn_computes_the_gdn_into_its_input(inverse, layout):
    gdn = _gdn(6, inverse)
    x = _channels_last_input().contiguous(memory_format=LAYOUTS[layout])
    with torch.no_grad():
        expected = gdn(x.clone())
        with reusing_scratch():
            got = ScratchGDN(gdn)(x)
    assert got is x, "the result is written into the input"
    assert got.is_contiguous(memory_format=LAYOUTS[layout])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("band", [1, 150, 100_000], ids=["one row", "partial last band", "one band"])
@pytest.mark.parametrize("inverse", [True, False], ids=["inverse", "forward"])
def test_scratch_gdn_takes_nchw_activations_band_by_band(band, inverse, monkeypatch):
    """However many rows a band holds (GDN_BAND positions), the GDN in place and the GDN
    written space-to-depth give the GDN of every position, in every sample."""
    monkeypatch.setattr(scratch_module, "GDN_BAND", band)
    gdn = _gdn(6, inverse)
    x = torch.randn(2, 6, 82, 70)
    with torch.no_grad():
        expected = gdn(x.clone())
        with reusing_scratch():
            in_place = ScratchGDN(gdn)(x.clone())
            rearranged = ScratchGDN(gdn).space_to_depth(x.clone())
    torch.testing.assert_close(in_place, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(rearranged, torch.nn.functional.pixel_unshuffle(expected, 2), rtol=1e-5, atol=1e-5)


def test_scratch_gdn_gives_the_same_result_on_every_call_within_one_pool():
    gdn = ScratchGDN(_gdn(6, True))
    x = _channels_last_input()
    with torch.no_grad(), reusing_scratch():
        results = [gdn(x.clone()) for _ in range(3)]
        smaller = gdn(x[:, :, :64, :64].contiguous(memory_format=torch.channels_last))
    assert torch.equal(results[0], results[1]) and torch.equal(results[1], results[2])
    torch.testing.assert_close(smaller, results[0][:, :, :64, :64], rtol=1e-5, atol=1e-5)


def test_scratch_gdn_runs_the_gdn_itself_elsewhere():
    gdn = _gdn(6, True)
    fast = ScratchGDN(gdn)
    small = torch.randn(1, 6, 8, 9).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), reusing_scratch():
        for x in (small, _strided_input()):
            kept = x.clone()
            assert torch.equal(fast(x), gdn(kept))
            assert torch.equal(x, kept), "the input is left alone"
        wide = _channels_last_input().double()
        assert torch.equal(ScratchGDN(_gdn(6, True).double())(wide), _gdn(6, True).double()(wide))
    x = _channels_last_input().requires_grad_(True)
    out = fast(x)  # with gradients: the GDN's own differentiable path
    assert torch.equal(out, gdn(x))
    out.sum().backward()
    assert x.grad is not None


def _adapter(width: int) -> MachineAdapter:
    torch.manual_seed(2)
    adapter = MachineAdapter(6, width).eval()
    with torch.no_grad():  # the last convolution starts at zero: give it something to do
        for parameter in adapter.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape))
    return adapter


@pytest.mark.parametrize("layout", LAYOUTS)
def test_scratch_adapter_adds_the_gated_residual_into_its_input(layout):
    adapter = _adapter(4)
    x = _channels_last_input().contiguous(memory_format=LAYOUTS[layout])
    gate = torch.tensor([0.0, 0.5])  # per sample: the first is left as it is
    with torch.no_grad():
        expected = adapter(x.clone(), gate)
        with reusing_scratch():
            got = ScratchMachineAdapter(adapter)(x, gate)
    assert got is x, "the result is written into the input"
    assert got.is_contiguous(memory_format=LAYOUTS[layout])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(got[0], expected[0])
    assert not torch.equal(got[1], _channels_last_input()[1])


def test_scratch_adapter_with_gate_zero_returns_its_input_untouched():
    x = _channels_last_input()
    kept = x.clone()
    with torch.no_grad(), reusing_scratch():
        assert ScratchMachineAdapter(_adapter(4))(x, torch.tensor([0.0])) is x
    assert torch.equal(x, kept)


def test_scratch_adapter_runs_the_adapter_itself_elsewhere():
    gate = torch.tensor([1.0])
    small = torch.randn(1, 6, 8, 9).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), reusing_scratch():
        for adapter, x in ((_adapter(4), small), (_adapter(4), _strided_input()), (_adapter(0), _channels_last_input())):
            kept = x.clone()
            assert torch.equal(ScratchMachineAdapter(adapter)(x, gate), adapter(kept, gate))
    adapter = _adapter(4)
    x = _channels_last_input().requires_grad_(True)
    out = ScratchMachineAdapter(adapter)(x, gate)  # with gradients: the adapter's own path
    assert torch.equal(out, adapter(x, gate))
    out.sum().backward()
    assert x.grad is not None


def _bottleneck_block() -> BottleneckResidualBlock:
    torch.manual_seed(4)
    block = BottleneckResidualBlock(6, 3, embedding_dim=5).eval()
    with torch.no_grad():  # the shifts' projections start at zero: give them something to do
        for parameter in block.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape))
    return block


@pytest.mark.parametrize("layout", LAYOUTS)
def test_scratch_bottleneck_block_adds_its_residual_into_its_input(layout):
    block = _bottleneck_block()
    x = _channels_last_input().contiguous(memory_format=LAYOUTS[layout])
    embedding = torch.randn(2, 5)  # per sample: its own shifts
    with torch.no_grad():
        expected = block(x.clone(), embedding)
        with reusing_scratch():
            got = ScratchBottleneckBlock(block)(x, embedding)
    assert got is x, "the result is written into the input"
    assert got.is_contiguous(memory_format=LAYOUTS[layout])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert not torch.equal(got, _channels_last_input())


def test_scratch_bottleneck_block_runs_its_convolution_through_the_given_module():
    block = _bottleneck_block()
    seen = []

    class Recording(torch.nn.Module):
        def forward(self, hidden):
            seen.append(tuple(hidden.shape))
            return block.conv(hidden)

    with torch.no_grad(), reusing_scratch():
        ScratchBottleneckBlock(block, Recording())(_channels_last_input().contiguous(), torch.randn(2, 5))
    assert seen == [(2, 3, 66, 70)]


def test_scratch_bottleneck_block_runs_the_block_itself_elsewhere():
    block = _bottleneck_block()
    embedding = torch.randn(1, 5)
    with torch.no_grad(), reusing_scratch():
        for x in (torch.randn(1, 6, 8, 9), _strided_input()):
            kept = x.clone()
            assert torch.equal(ScratchBottleneckBlock(block)(x, embedding), block(kept, embedding))
            assert torch.equal(x, kept), "the block's own path leaves its input alone"
        wide = _channels_last_input()[:1].double()
        assert torch.equal(ScratchBottleneckBlock(block.double())(wide.clone(), embedding.double()), block(wide, embedding.double()))
    block = _bottleneck_block()
    x = _channels_last_input().requires_grad_(True)
    out = ScratchBottleneckBlock(block)(x, torch.randn(2, 5))  # with gradients: the block's own path
    out.sum().backward()
    assert x.grad is not None
