import subprocess
import sys

import pytest
import torch

import ugcodec.integer_net as integer_net
from ugcodec.integer_net import (
    ACTIVATION_BITS,
    ACTIVATION_LIMIT,
    GAIN_BITS,
    IntegerConv,
    IntegerHyperSynthesis,
    IntegerNetwork,
    WINOGRAD_FORMS,
    entropy_parameters,
    hyper_parameters,
    integerize_hyper_synthesis,
    scale_thresholds,
)
from ugcodec.models import UGHyperprior
from ugcodec.scales import scale_table

from conftest import TINY_CONFIG


@pytest.fixture(scope="module")
def float_model():
    torch.manual_seed(0)
    return UGHyperprior(TINY_CONFIG).eval()


def test_integer_network_tracks_the_float_one(float_model):
    integer = integerize_hyper_synthesis(float_model.h_s)
    z = torch.round(torch.randn(1, TINY_CONFIG.N, 3, 5) * 4)
    means, scales = integer(z)
    reference_means, reference_scales = float_model.h_s(z).chunk(2, dim=1)
    unit = float(1 << ACTIVATION_BITS)
    assert means.dtype == torch.int64
    assert torch.allclose(means / unit, reference_means, atol=5e-3)
    assert torch.allclose(scales / unit, reference_scales, atol=5e-3)


def test_state_dict_round_trip(float_model):
    integer = integerize_hyper_synthesis(float_model.h_s)
    again = IntegerHyperSynthesis.from_state_dict(integer.state_dict())
    z = torch.round(torch.randn(1, TINY_CONFIG.N, 2, 2) * 4)
    for a, b in zip(integer(z), again(z)):
        assert torch.equal(a, b)


def test_overflow_risk_is_refused():
    weight = torch.full((1, 9), (1 << 15) - 1, dtype=torch.int64)
    bias = torch.tensor([1 << 60])
    with pytest.raises(ValueError):
        IntegerHyperSynthesis([IntegerConv(weight, bias, 8, False, 1)])


def test_scale_index_follows_the_table():
    table = scale_table().tolist()
    thresholds = scale_thresholds(table)
    unit = 1 << ACTIVATION_BITS
    gain = torch.full((1,), 1 << GAIN_BITS)
    scales = torch.tensor([0, int(table[0] * unit), int(table[5] * unit) + 1, 10**9]).view(1, 1, 1, 4)
    _, index = entropy_parameters(torch.zeros_like(scales), scales, gain, thresholds)
    assert index.flatten().tolist() == [0, 0, 6, len(table) - 1]



def test_scale_index_counts_thresholds_below_even_at_ties():
    thresholds = scale_thresholds(scale_table().tolist())
    generator = torch.Generator().manual_seed(3)
    scales = torch.randint(0, int(thresholds[-1]) * 2, (2, 3, 7, 5), generator=generator)
    scales.view(-1)[: len(thresholds)] = thresholds  # exactly on a threshold: not above it
    gain = torch.ones(3, dtype=torch.int64)  # so that scale * gain lands on the thresholds
    _, index = entropy_parameters(torch.zeros_like(scales), scales, gain, thresholds)
    brute_force = (scales[..., None] > thresholds).sum(dim=-1)
    assert torch.equal(index, brute_force)


def test_row_bands_give_the_same_bits(float_model, monkeypatch):
    """Large images build im2col a band of rows at a time; the split must not matter."""

    integer = integerize_hyper_synthesis(float_model.h_s)
    z = torch.round(torch.randn(1, TINY_CONFIG.N, 7, 6, generator=torch.Generator().manual_seed(1)) * 5)
    whole = integer(z)
    monkeypatch.setattr(integer_net, "_IM2COL_BUDGET", 1)  # one row per band
    banded = integer(z)
    assert all(torch.equal(a, b) for a, b in zip(whole, banded))


def exact_layer(conv, x):
    """One integer layer in int64 arithmetic, as bitstream_spec.md §7.3 writes it."""
    batch, channels, height, width = x.shape
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    cols = torch.stack([padded[:, :, dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3)], dim=2)
    acc = torch.matmul(conv.weight, cols.reshape(batch, channels * 9, height * width)) + conv.bias[:, None]
    out = torch.div(acc, 1 << conv.shift, rounding_mode="floor")
    if conv.relu:
        out = out.clamp(min=0)
    return out.clamp(-ACTIVATION_LIMIT, ACTIVATION_LIMIT).reshape(batch, -1, height, width)


@pytest.mark.parametrize("form", WINOGRAD_FORMS, ids=lambda form: f"F{form.tile}")
def test_each_winograd_form_computes_the_scaled_correlation(form):
    """In one dimension, A^T [(G' g) ⊙ (B^T d)] is s times the correlation of d with g:
    the two-dimensional forms are this on rows, then on columns."""
    generator = torch.Generator().manual_seed(form.tile)
    a, g, b = (torch.tensor(matrix, dtype=torch.int64) for matrix in (form.output, form.kernel, form.input))
    for _ in range(20):
        kernel = torch.randint(-50, 51, (3,), generator=generator)
        patch = torch.randint(-50, 51, (form.size,), generator=generator)
        correlation = torch.stack([patch[i : i + 3] @ kernel for i in range(form.tile)])
        assert torch.equal(a @ ((g @ kernel) * (b @ patch)), form.kernel_scale * correlation)


@pytest.mark.parametrize("form", WINOGRAD_FORMS, ids=lambda form: f"F{form.tile}")
@pytest.mark.parametrize("shape", [(1, 5, 7, 9), (2, 5, 4, 4), (1, 5, 1, 1), (1, 5, 2, 3), (1, 5, 6, 1), (1, 5, 9, 13)])
def test_winograd_gives_the_exact_integers_up_to_its_limit(shape, form, monkeypatch):
    """Each form, forced, on inputs as large as its limit allows (all of them where its
    limit reaches the activation limit)."""
    generator = torch.Generator().manual_seed(sum(shape) + form.tile)
    weight = torch.randint(-32767, 32768, (6, 5 * 9), generator=generator)
    bias = torch.randint(-(1 << 36), 1 << 36, (6,), generator=generator)
    conv = IntegerConv(weight, bias, 20, True, 1)
    conv.check_exact()
    limit = conv._winograd_operands(torch.device("cpu"), form)[2]
    assert limit > 0
    largest = min(limit, ACTIVATION_LIMIT)
    monkeypatch.setattr(integer_net, "WINOGRAD_FORMS", (form,))
    monkeypatch.setattr(integer_net, "_MIN_WINOGRAD_BLOCKS", 1)  # even a single block
    calls = []
    winograd = IntegerConv._by_winograd
    monkeypatch.setattr(IntegerConv, "_by_winograd", lambda *args: calls.append(args[2]) or winograd(*args))
    x = torch.randint(-largest, largest + 1, shape, generator=generator)
    x.view(-1)[0] = -largest
    assert torch.equal(conv(x.to(torch.float64)).to(torch.int64), exact_layer(conv, x)) and calls == [form]


def test_small_weights_keep_f2_exact_up_to_the_activation_limit():
    conv = IntegerConv(torch.randint(-32767, 32768, (6, 5 * 9), generator=torch.Generator().manual_seed(1)),
                       torch.zeros(6, dtype=torch.int64), 20, True, 1)
    assert conv._winograd_operands(torch.device("cpu"), WINOGRAD_FORMS[-1])[2] >= ACTIVATION_LIMIT  # always exact


def test_inputs_take_the_cheapest_exact_form_then_the_columns():
    """Equal weights of the largest size make the Winograd sums grow fastest: every
    form's limit falls below ACTIVATION_LIMIT, larger blocks' the lowest. An input takes
    the form with the largest blocks whose limit covers it, and beyond them all is
    multiplied column by column."""
    weight = torch.full((2, 64 * 9), 32767, dtype=torch.int64)
    weight[1] *= -1
    conv = IntegerConv(weight, torch.tensor([5, -7]), 16, False, 1)
    conv.check_exact()
    limits = [conv._winograd_operands(torch.device("cpu"), form)[2] for form in WINOGRAD_FORMS]
    assert 0 < limits[0] < limits[1] < limits[2] < ACTIVATION_LIMIT
    generator = torch.Generator().manual_seed(4)
    cases = [(limits[0], WINOGRAD_FORMS[0]), (limits[0] + 1, WINOGRAD_FORMS[1]), (limits[1] + 1, WINOGRAD_FORMS[2]),
             (limits[2], WINOGRAD_FORMS[2]), (limits[2] + 1, None), (ACTIVATION_LIMIT, None)]
    for largest, form in cases:
        x = torch.randint(largest // 2, largest + 1, (1, 64, 16, 17), generator=generator)
        x.view(-1)[3] = largest
        assert conv.winograd_form(x.to(torch.float64)) == form
        assert torch.equal(conv(x.to(torch.float64)).to(torch.int64), exact_layer(conv, x))


def test_small_inputs_take_smaller_blocks_or_none():
    """A form needs _MIN_WINOGRAD_BLOCKS blocks: an 8 x 8 input takes F(2x2, 3x3) where
    the others are exact too, and a 4 x 4 one the direct products."""
    conv = IntegerConv(torch.ones((2, 3 * 9), dtype=torch.int64), torch.zeros(2, dtype=torch.int64), 4, False, 1)
    assert conv.winograd_form(torch.ones((1, 3, 16, 16), dtype=torch.float64)) is WINOGRAD_FORMS[0]
    assert conv.winograd_form(torch.ones((1, 3, 8, 8), dtype=torch.float64)) is WINOGRAD_FORMS[-1]
    assert conv.winograd_form(torch.ones((1, 3, 4, 4), dtype=torch.float64)) is None
    x = torch.randint(-99, 100, (1, 3, 4, 4), generator=torch.Generator().manual_seed(0))
    assert torch.equal(conv(x.to(torch.float64)).to(torch.int64), exact_layer(conv, x))


@pytest.mark.parametrize("largest", [1 << 16, ACTIVATION_LIMIT], ids=["winograd", "columns"])
def test_a_layer_split_at_its_inputs_gives_the_same_integers(largest):
    """rest(x[:, c:], partial=head.sums(x[:, :c])) is the layer on x, however it is split
    and whichever path (Winograd or columns) each part takes."""
    generator = torch.Generator().manual_seed(largest % 97)
    weight = torch.full((3, 64 * 9), 32767, dtype=torch.int64)  # large: Winograd's limit below ACTIVATION_LIMIT
    weight[1] *= -1
    conv = IntegerConv(weight, torch.tensor([1 << 30, -5, 7]), 17, True, 1)
    conv.check_exact()
    x = torch.randint(-largest, largest + 1, (2, 64, 5, 7), generator=generator)
    x.view(-1)[0] = largest
    assert (conv.winograd_form(x.to(torch.float64)) is not None) == (largest < ACTIVATION_LIMIT)
    expected = exact_layer(conv, x)
    for channels in (0, 20, 64):
        head, rest = conv.split_inputs(channels)
        partial = head.sums(x[:, :channels].to(torch.float64))
        assert torch.equal(rest(x[:, channels:].to(torch.float64), partial).to(torch.int64), expected)
    with pytest.raises(ValueError, match="split"):
        conv.split_inputs(65)


def test_sums_are_the_exact_products_alone():
    generator = torch.Generator().manual_seed(3)
    conv = IntegerConv(torch.randint(-32767, 32768, (4, 6 * 9), generator=generator), torch.tensor([9, 8, 7, 6]),
                       12, True, 1)
    x = torch.randint(-(1 << 20), 1 << 20, (1, 6, 4, 5), generator=generator)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    cols = torch.stack([padded[:, :, dy : dy + 4, dx : dx + 5] for dy in range(3) for dx in range(3)], dim=2)
    products = torch.matmul(conv.weight, cols.reshape(1, 6 * 9, 20)).reshape(1, 4, 4, 5)
    assert torch.equal(conv.sums(x.to(torch.float64)).to(torch.int64), products)


def test_reach_counts_input_rows_through_the_shuffles():
    def layer(upscale):
        return IntegerConv(torch.zeros(4 * upscale**2, 36, dtype=torch.int64), torch.zeros(4 * upscale**2, dtype=torch.int64),
                           8, False, upscale)

    assert IntegerHyperSynthesis([layer(2), layer(2), layer(1)]).reach == 2  # 1 + 1/2 + 1/4
    assert IntegerHyperSynthesis([layer(1)] * 3).reach == 3
    assert IntegerHyperSynthesis([layer(2), layer(2), layer(1)]).upscale == 4


@pytest.mark.parametrize("budget", [1, 3000])
def test_bands_of_rows_give_the_same_integers_as_the_whole_image(float_model, monkeypatch, budget):
    """h_s runs on bands of z rows widened by its reach: exactly the whole image's means,
    scales and entropy parameters, however small the bands."""

    integer = integerize_hyper_synthesis(float_model.h_s)
    z = torch.round(torch.randn(1, TINY_CONFIG.N, 9, 5, generator=torch.Generator().manual_seed(2)) * 6)
    gain = torch.randint(1 << 14, 1 << 17, (TINY_CONFIG.M,), generator=torch.Generator().manual_seed(3))
    thresholds = scale_thresholds(scale_table().tolist())
    whole = integer(z)
    whole_mu, whole_index = entropy_parameters(*whole, gain, thresholds)
    monkeypatch.setattr(integer_net, "_BAND_BUDGET", budget)
    assert len(list(integer.row_bands(9, 5))) > 1
    assert all(torch.equal(a, b) for a, b in zip(whole, integer(z)))
    mu, index = hyper_parameters(integer, z, gain, thresholds)
    assert torch.equal(mu, whole_mu) and torch.equal(index, whole_index)


def test_integer_networks_never_hold_the_whole_latent(tiny_model, monkeypatch):
    """Parsing runs every integer layer (h_s and the channel context) on bands of rows,
    so its float64 activations stay bounded instead of growing with the image."""
    import ugcodec
    from conftest import make_photo_like

    data = ugcodec.encode(make_photo_like(640, 64, seed=2), 2, model=tiny_model)
    latent_rows = 640 // 16
    monkeypatch.setattr(integer_net, "_BAND_BUDGET", 1)  # bands of one row
    rows = []
    real_call, real_sums = IntegerConv.__call__, IntegerConv.sums
    monkeypatch.setattr(IntegerConv, "__call__",
                        lambda self, x, partial=None: (rows.append(x.shape[-2]), real_call(self, x, partial))[1])
    monkeypatch.setattr(IntegerConv, "sums", lambda self, x: (rows.append(x.shape[-2]), real_sums(self, x))[1])
    ugcodec.parse_latents(data, tiny_model)
    # One z row and 2 of reach on either side: 5 z rows, 20 latent rows at h_s's last layer.
    assert rows and max(rows) <= latent_rows // 2


SCRIPT = """
import sys, hashlib, torch
torch.manual_seed(0)
from ugcodec.models import ModelConfig, UGHyperprior
from ugcodec.integer_net import integerize_hyper_synthesis
TINY_CONFIG = ModelConfig.from_dict({config!r})
torch.set_num_threads(int(sys.argv[1]))
integer = integerize_hyper_synthesis(UGHyperprior(TINY_CONFIG).h_s)
generator = torch.Generator().manual_seed(5)
z = torch.round(torch.randn(1, TINY_CONFIG.N, 9, 11, generator=generator) * 6)
means, scales = integer(z)
print(hashlib.sha256(means.numpy().tobytes() + scales.numpy().tobytes()).hexdigest())
"""


def test_identical_in_other_processes_and_thread_counts():
    digests = {
        subprocess.run(
            [sys.executable, "-c", SCRIPT.format(config=TINY_CONFIG.to_dict()), str(threads)],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        for threads in (1, 2)
    }
    assert len(digests) == 1


def _small_input_layer(inputs: int, outputs: int, seed: int) -> IntegerConv:
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randint(-32767, 32768, (outputs, inputs * 9), generator=generator)
    weight[0, :9] = torch.tensor([32767, -32767, 1, -1, 0, 64, -64, 8191, -8192])  # limb edges
    bias = torch.randint(-(1 << 40), 1 << 40, (outputs,), generator=generator)
    conv = IntegerConv(weight, bias, 20, True, 1)
    conv.check_exact()
    return conv


@pytest.fixture
def int8_cpu(monkeypatch):
    """The int8 path as on a CPU with VNNI, so that its exactness is tested on any CPU."""
    monkeypatch.setattr(torch.cpu, "_is_vnni_supported", lambda: True, raising=False)


@pytest.mark.parametrize("shape", [(1, 40, 7, 9), (2, 40, 4, 5), (1, 40, 1, 1), (1, 40, 6, 1)])
def test_int8_products_give_the_exact_integers_of_small_inputs(shape, int8_cpu):
    conv = _small_input_layer(shape[1], 6, sum(shape))
    generator = torch.Generator().manual_seed(len(shape))
    s = torch.randint(-64, 65, shape, generator=generator)
    s.view(-1)[:2] = torch.tensor([64, -64])
    out = conv.on_small_integers(s)
    assert out is not None and out.dtype == torch.float64
    assert torch.equal(out.to(torch.int64), exact_layer(conv, s << ACTIVATION_BITS))


def test_int8_products_are_left_to_float64_where_they_do_not_pay(monkeypatch, int8_cpu):
    conv = _small_input_layer(40, 6, 1)
    s = torch.full((1, 40, 3, 3), 7)
    assert conv.on_small_integers(s) is not None
    assert conv.on_small_integers(s.clone().fill_(65)) is None  # more than one limb of input
    assert _small_input_layer(4, 40, 2).on_small_integers(s[:, :4]) is None  # 3 limbs x 40 outputs > 36 inputs

    def no_kernel(*args):
        raise RuntimeError("no int8 kernel")

    monkeypatch.setattr(torch.cpu, "_is_vnni_supported", lambda: False, raising=False)
    assert conv.on_small_integers(s) is None  # a CPU without int8 dot products
    monkeypatch.setattr(torch.cpu, "_is_vnni_supported", lambda: True, raising=False)
    monkeypatch.setattr("ugcodec.integer_net._int8_product", no_kernel)
    assert conv.on_small_integers(s) is None
    monkeypatch.setattr("ugcodec.integer_net._int8_product", None)
    assert conv.on_small_integers(s) is None


def test_networks_give_the_same_integers_with_and_without_int8_products(monkeypatch, int8_cpu):
    first = _small_input_layer(40, 6, 3)
    second = IntegerConv(torch.randint(-30000, 30000, (5, 6 * 9)), torch.randint(-1000, 1000, (5,)), 16, False, 1)
    network = IntegerNetwork([first, second])
    s = torch.randint(-20, 21, (1, 40, 5, 6))
    with_int8 = network.run(s)
    monkeypatch.setattr("ugcodec.integer_net._int8_product", None)
    assert torch.equal(with_int8, network.run(s))

