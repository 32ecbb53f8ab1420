"""The last machine adapter folded into the last upsampling (ugcodec.folding): the same
synthesis to float rounding for any gate, and the human decoding's very numbers."""
import pytest
import torch

from ugcodec import winograd
from ugcodec.folding import FoldedAdapterUpsampling, FoldedSynthesis, folds
from ugcodec.models import PreferenceConditionalSynthesis
from ugcodec.precision import bfloat16_synthesis, float32_synthesis
from ugcodec.scratch import ScratchMachineAdapter, reusing_scratch


def _synthesis(width: int = 4, seed: int = 0) -> PreferenceConditionalSynthesis:
    torch.manual_seed(seed)
    g_s = PreferenceConditionalSynthesis(N=8, M=12, embedding_dim=8, machine_adapter=True, adapter_width=width).eval()
    with torch.no_grad():  # new adapters are the identity: give them something to do
        for adapter in g_s.adapters:
            last = adapter.expand if width else adapter.conv2
            last.weight.normal_(0, 0.2)
            last.bias.normal_(0, 0.2)
    return g_s


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (20, 24)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_the_folded_synthesis_is_the_synthesis_for_every_gate(size, channels_last):
    g_s = _synthesis()
    folded = FoldedSynthesis(g_s)
    y_hat = torch.randn(2, 12, *size)
    if channels_last:
        y_hat = y_hat.contiguous(memory_format=torch.channels_last)
    for gates in ([0.0, 1.0], [0.7, 0.0], [1.0, 0.25]):
        beta = torch.tensor(gates)
        with torch.no_grad():
            exact, approximate = g_s(y_hat, beta), folded(y_hat, beta)
        # Near the border the bias's folded taps differ from the interior's: a constant would not do.
        assert exact.shape == approximate.shape
        assert (approximate - exact).abs().max().item() < 1e-4


def test_the_human_decoding_is_the_same_numbers():
    g_s = _synthesis(seed=1)
    y_hat, human = torch.randn(1, 12, 6, 7), torch.tensor([0.0])
    with torch.no_grad():
        assert torch.equal(FoldedSynthesis(g_s)(y_hat, human), g_s(y_hat, human))


@pytest.mark.skipif(not winograd.nnpack_available(), reason="NNPACK does not run on this CPU")
def test_the_decoders_float32_synthesis_folds_and_agrees_on_large_windows():
    g_s = _synthesis(seed=2)
    before = torch.get_num_threads()
    torch.set_num_threads(winograd.nnpack_threads() or before)
    try:
        folded = float32_synthesis(g_s)
        assert isinstance(folded, FoldedSynthesis)
        assert isinstance(folded.output.adapter, ScratchMachineAdapter)
        y_hat = torch.randn(1, 12, 20, 24).contiguous(memory_format=torch.channels_last)
        beta = torch.tensor([1.0])
        with torch.inference_mode(), reusing_scratch():
            exact, approximate = g_s(y_hat, beta), folded(y_hat, beta)
        assert 0 < (approximate - exact).abs().max().item() < 1e-4
    finally:
        torch.set_num_threads(before)


def test_full_adapters_do_not_fold():
    g_s = _synthesis(width=0)
    assert not folds(g_s) and not folds(PreferenceConditionalSynthesis(N=8, M=12, embedding_dim=8))
    assert folds(_synthesis())
    with pytest.raises(ValueError, match="bottleneck"):
        FoldedSynthesis(g_s)
    with pytest.raises(ValueError, match="bottleneck"):
        FoldedAdapterUpsampling(g_s.adapters[-1], g_s.up[-1])
    assert not isinstance(float32_synthesis(g_s), FoldedSynthesis)


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (7, 2)])
def test_the_bias_map_is_the_transposed_convolution_of_ones(size):
    g_s = _synthesis(seed=3)
    upsampling = FoldedAdapterUpsampling(g_s.adapters[-1], g_s.up[-1])
    deconv = g_s.up[-1]
    ones = torch.ones((1, 1, *size))
    expected = torch.nn.functional.conv_transpose2d(
        ones, upsampling.bias_weight, None, deconv.stride, deconv.padding, deconv.output_padding
    )
    assert expected.shape == upsampling.bias_map(*size).shape
    assert torch.allclose(upsampling.bias_map(*size), expected, atol=1e-6)
    assert expected.std() > 0, "border taps make the map vary"


def test_an_identity_last_adapter_is_skipped_not_folded():
    g_s = _synthesis(seed=4)
    with torch.no_grad():
        g_s.adapters[-1].expand.weight.zero_()
        g_s.adapters[-1].expand.bias.zero_()
    assert g_s.adapters[-1].is_identity() and not g_s.adapters[0].is_identity()
    assert not folds(g_s)
    fast = float32_synthesis(g_s)
    assert not isinstance(fast, FoldedSynthesis) and fast.adapters[-1].identity
    assert bfloat16_synthesis(g_s).adapters[-1].identity and not bfloat16_synthesis(g_s).adapters[0].identity
    calls = []
    g_s.adapters[-1].reduce.register_forward_hook(lambda *args: calls.append(1))
    y_hat, beta = torch.randn(1, 12, 20, 24), torch.tensor([1.0])
    with torch.inference_mode(), reusing_scratch():
        exact, skipped = g_s(y_hat, beta), fast(y_hat, beta)
    assert len(calls) == 1, "the training form runs it; the decoder's skips it"
    assert (skipped - exact).abs().max().item() < 1e-4
