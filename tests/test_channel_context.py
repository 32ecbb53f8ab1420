"""Model ids 2 and 3: channel-conditional scales, and means and scales
(ugcodec.channel_context, bitstream_spec.md §8.3)."""
from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest
import torch

import reference_parser as ref
from conftest import make_photo_like, write_photos
from tools import model_card as card

import ugcodec
from ugcodec.codec import _analyze, decode_pixels, encode_latents, latent_residuals
from ugcodec.entropy_coding import join_streams, split_streams
from ugcodec.errors import FormatError, UgcError
from ugcodec.weights import load_model, read_bundle
from tools import train_channel_context as train
from tools.context_model import ChannelContext, integerize_channel_context
from tools.export import with_channel_context, write_bundle

SLICES = 2
BOTH = pytest.mark.parametrize("means", [False, True], ids=["model2", "model3"])


def _random_context(channels: int, largest_index: int, seed: int = 7, means: bool = False) -> ChannelContext:
    """A context whose corrections are not all zero (a trained one starts from zero)."""
    torch.manual_seed(seed)
    context = ChannelContext(channels, SLICES, largest_index, hidden=(12, 8), means=means)
    for network in context.networks:
        torch.nn.init.normal_(network[-1].weight, std=0.3)
        torch.nn.init.normal_(network[-1].bias, std=0.5)
    return context


def _context_weights(tiny_model, directory, means: bool) -> str:
    base = read_bundle(tiny_model.path)
    context = integerize_channel_context(_random_context(tiny_model.config.M, len(tiny_model.y_tables) - 1, means=means))
    path = str(directory / f"tiny-context-{int(means)}.pt")
    write_bundle(with_channel_context(base, context), path)
    return path


@pytest.fixture(scope="module")
def context_model(tiny_model, tmp_path_factory):
    """The tiny model with a random scale context: (model 1, model 2, path of model 2)."""
    path = _context_weights(tiny_model, tmp_path_factory.mktemp("context"), means=False)
    return tiny_model, load_model(path), path


@pytest.fixture(scope="module")
def means_model(tiny_model, tmp_path_factory):
    """The tiny model with a random means-and-scales context: (model 1, model 3, its path)."""
    path = _context_weights(tiny_model, tmp_path_factory.mktemp("means"), means=True)
    return tiny_model, load_model(path), path


@pytest.fixture(params=[False, True], ids=["model2", "model3"])
def either_model(request, context_model, means_model):
    return means_model if request.param else context_model


def _hyper_indexes(shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    residual = torch.randn(shape, generator=generator, dtype=torch.float64) * 4
    return torch.randint(10, 50, shape, generator=generator), residual


@BOTH
def test_integer_context_follows_the_float_one(means):
    context = _random_context(16, 63, means=means)
    hyper_index, residual = _hyper_indexes((2, 16, 8, 8))
    if not means:
        residual = torch.round(residual)
    with torch.no_grad():
        float_delta, float_index = context(hyper_index, residual.float())
    symbols, shift, index = integerize_channel_context(context).encode(hyper_index, residual)
    # Weight rounding may tip a value that lies on a half (and, with means, a symbol
    # that then feeds the next slice); nothing more.
    assert (index - float_index.to(torch.int64)).abs().max() <= 1
    assert (index == float_index.to(torch.int64)).float().mean() > 0.97
    assert (shift - float_delta).abs().float().mean() < 0.02
    assert not torch.equal(index, hyper_index), "a random context corrects some indexes"
    assert int(index.min()) >= 0 and int(index.max()) <= 63
    # The symbols are the rounding of the residual around the corrected mean.
    assert (residual - shift - symbols).abs().max() <= 0.5
    assert bool(shift.any()) == means


@BOTH
def test_a_slice_depends_only_on_the_slices_before_it(means):
    """What makes the section decodable slice by slice."""
    integer = integerize_channel_context(_random_context(16, 63, means=means))
    hyper_index, residual = _hyper_indexes((1, 16, 6, 6))
    first = integer.encode(hyper_index, residual)
    changed = residual.clone()
    changed[:, 8:] = -changed[:, 8:] + 3
    second = integer.encode(hyper_index, changed)
    for before, after in zip(first, second):
        assert torch.equal(before[:, :8], after[:, :8])
    changed[:, :8] += 2
    third = integer.encode(hyper_index, changed)
    assert not torch.equal(third[2][:, 8:], first[2][:, 8:])
    if means:
        assert not torch.equal(third[1][:, 8:], first[1][:, 8:])


@BOTH
def test_the_shared_hyper_prior_products_give_the_same_parameters(means, monkeypatch):
    """The slices' first layers summed over the hyper-prior indexes once for all slices
    (where int8 products do not run them) give every slice's parameters bit for bit."""
    import ugcodec.channel_context as channel_context

    integer = integerize_channel_context(_random_context(16, 63, means=means))
    hyper_index, residual = _hyper_indexes((1, 16, 7, 9), seed=4)
    monkeypatch.setattr(channel_context, "has_int8_products", lambda device: False)
    sums = integer.hyper_products(hyper_index)
    assert sums is not None
    earlier = integer.deviations(torch.round(residual[:, :8]), torch.zeros(1, 8, 7, 9, dtype=torch.int64))
    for k, before in ((0, earlier[:, :0]), (1, earlier)):
        separate = integer.slice_parameters(hyper_index, before, k)
        together = integer.slice_parameters(hyper_index, before, k, sums)
        assert all(torch.equal(a, b) for a, b in zip(separate, together))
    huge = channel_context.IntegerChannelContext(integer.networks, 1 << 30, means)
    assert huge.hyper_products(hyper_index) is None, "sums that could leave 2**53: the whole layers"
    monkeypatch.setattr(channel_context, "has_int8_products", lambda device: True)
    assert integer.hyper_products(hyper_index) is None, "the int8 path runs the first layers whole"


def test_model_2_codes_the_same_symbols_and_pixels_as_its_base(context_model):
    plain, context, _ = context_model
    image = make_photo_like(80, 120, seed=3)
    for quality in (1, plain.num_qualities):
        data_plain, latents_plain = encode_latents(image, quality, model=plain)
        data, latents = encode_latents(image, quality, model=context)
        assert ugcodec.read_header(data).model_id == 2
        assert torch.equal(latents.y, latents_plain.y)
        assert not torch.equal(latents.scale_index, latents_plain.scale_index)
        parsed = ugcodec.parse_latents(data, context)
        assert torch.equal(parsed.y, latents.y) and torch.equal(parsed.scale_index, latents.scale_index)
        assert np.array_equal(np.asarray(ugcodec.decode(data, model=context)), np.asarray(ugcodec.decode(data_plain, model=plain)))


def test_context_weights_decode_the_plain_files_of_their_base(either_model):
    # Spec 2.1, check 8: the context's weights list their base in also_decodes and parse
    # its model id 1 files with the hyperprior's tables: the same symbols and pixels.
    plain, context, _ = either_model
    assert plain.fingerprint in context.also_decodes
    image = make_photo_like(72, 100, seed=5)
    data, latents = encode_latents(image, 2, model=plain)
    parsed = ugcodec.parse_latents(data, context)
    assert torch.equal(parsed.y, latents.y) and torch.equal(parsed.scale_index, latents.scale_index)
    assert np.array_equal(np.asarray(ugcodec.decode(data, model=context)), np.asarray(ugcodec.decode(data, model=plain)))
    reference = ref.parse_full(data, context.path)
    assert np.array_equal(reference.y, latents.y.numpy())
    # The other way round stays a mismatch: plain weights cannot parse a context's file.
    with pytest.raises(ugcodec.ModelMismatchError, match="model id"):
        ugcodec.decode(encode_latents(image, 2, model=context)[0], model=plain)


def test_context_weights_refuse_plain_files_of_weights_they_do_not_list(context_model):
    plain, context, _ = context_model
    data = bytearray(encode_latents(make_photo_like(64, 64, seed=6), 1, model=plain)[0])
    data[12:20] = bytes(8)  # another fingerprint; header CRC made right again below
    data[28:32] = struct.pack(">I", zlib.crc32(bytes(data[:28])))
    with pytest.raises(ugcodec.ModelMismatchError, match="model id 1"):
        ugcodec.decode(bytes(data), model=context)
    with pytest.raises(ref.ReferenceFormatError, match="model id"):
        ref.parse_full(bytes(data), context.path)


def test_the_plain_weights_come_back_from_the_context_weights(either_model):
    from tools.export import without_channel_context
    from ugcodec.weights import fingerprint_of

    plain, context, path = either_model
    assert fingerprint_of(without_channel_context(read_bundle(path))) == plain.fingerprint
    bundle = read_bundle(plain.path)
    assert without_channel_context(bundle) is bundle


def test_model_3_codes_the_latent_around_the_corrected_means(means_model):
    plain, context, _ = means_model
    image = make_photo_like(80, 120, seed=3)
    for quality in (1, plain.num_qualities):
        data, latents = encode_latents(image, quality, model=context)
        assert ugcodec.read_header(data).model_id == 3
        _, plain_latents = encode_latents(image, quality, model=plain)
        assert not torch.equal(latents.mu, plain_latents.mu), "a random context moves the means"
        # The decoder's latent y + mu is the analysis output rounded to the nearest
        # point of the corrected grid: within half a step of it.
        y = _analyze(context.network.g_a, image)
        residual, mu_hyper, _ = latent_residuals(context, y, latents.z, quality)
        assert float((latents.y + latents.mu - (residual + mu_hyper)).abs().max()) <= 0.5 + 1e-6
        parsed = ugcodec.parse_latents(data, context)
        assert torch.equal(parsed.y, latents.y) and torch.equal(parsed.scale_index, latents.scale_index)
        assert torch.equal(parsed.mu, latents.mu)
        assert np.array_equal(np.asarray(ugcodec.decode(data, model=context)), decode_pixels(latents, model=context))


def test_bands_of_rows_code_and_parse_exactly_the_whole_latents(either_model, monkeypatch):
    """The integer networks run on bands of rows widened by their reach (however small the
    bands): the same file, symbols, means and tables as the whole latent at once, and no
    layer ever sees the whole latent."""
    import ugcodec.integer_net as integer_net
    from ugcodec.integer_net import IntegerConv

    _, context, _ = either_model
    image = make_photo_like(640, 48, seed=6)
    whole_data, whole = encode_latents(image, 2, model=context)
    monkeypatch.setattr(integer_net, "_BAND_BUDGET", 1)
    rows = []
    real_call, real_sums = IntegerConv.__call__, IntegerConv.sums
    monkeypatch.setattr(IntegerConv, "__call__",
                        lambda self, x, partial=None: (rows.append(x.shape[-2]), real_call(self, x, partial))[1])
    monkeypatch.setattr(IntegerConv, "sums", lambda self, x: (rows.append(x.shape[-2]), real_sums(self, x))[1])
    data, banded = encode_latents(image, 2, model=context)
    parsed = ugcodec.parse_latents(data, context)
    assert data == whole_data
    for latents in (banded, parsed):
        assert torch.equal(latents.y, whole.y) and torch.equal(latents.scale_index, whole.scale_index)
        assert torch.equal(latents.mu, whole.mu)
    assert max(rows) <= whole.y.shape[-2] // 2


def test_reference_parser_reads_models_2_and_3(either_model):
    _, context, path = either_model
    data, latents = encode_latents(make_photo_like(70, 130, seed=5), 2, model=context)
    parsed = ref.parse_full(data, path)
    np.testing.assert_array_equal(parsed.y, latents.y.numpy())
    np.testing.assert_array_equal(parsed.scale_index, latents.scale_index.numpy())
    np.testing.assert_array_equal(parsed.mu, latents.mu.numpy())


def test_refined_files_of_models_2_and_3_parse_to_what_was_coded(either_model):
    """Refinement holds the context's tables and means fixed while it works; the coder
    then derives them again from the refined symbols, as the decoder does."""
    _, context, path = either_model
    image = make_photo_like(64, 96, seed=4)
    data, latents = encode_latents(image, 2, model=context, refine=2)
    assert data != encode_latents(image, 2, model=context)[0]
    parsed = ref.parse_full(data, path)
    np.testing.assert_array_equal(parsed.y, latents.y.numpy())
    np.testing.assert_array_equal(parsed.scale_index, latents.scale_index.numpy())
    np.testing.assert_array_equal(parsed.mu, latents.mu.numpy())


def _with_y_section(data: bytes, y_section: bytes) -> bytes:
    """``data`` with another y section, lengths and CRCs made consistent."""
    header = bytearray(data[:32])
    z_length = struct.unpack(">I", header[20:24])[0]
    z_section = data[32 : 32 + z_length]
    header[24:28] = struct.pack(">I", len(y_section))
    header[28:32] = struct.pack(">I", zlib.crc32(bytes(header[:28])))
    payload = z_section + y_section
    return bytes(header) + payload + struct.pack(">I", zlib.crc32(payload))


def test_stream_lengths_that_do_not_fit_are_refused(either_model):
    _, context, path = either_model
    data = ugcodec.encode(make_photo_like(64, 64, seed=1), 2, model=context)
    z_length = struct.unpack(">I", data[20:24])[0]
    y_section = data[32 + z_length : -4]
    for length in (len(y_section), 6):  # past the end; not a multiple of 4
        bad = _with_y_section(data, struct.pack(">I", length) + y_section[4:])
        with pytest.raises(FormatError):
            ugcodec.parse_latents(bad, context)
        with pytest.raises(ref.ReferenceFormatError):
            ref.parse_full(bad, path)


def test_join_and_split_streams_invert_each_other():
    streams = [b"\x01\x02\x03\x04", b"", b"\x05\x06\x07\x08" * 3]
    assert split_streams(join_streams(streams), 3) == streams
    assert split_streams(join_streams([b"abcd"]), 1) == [b"abcd"]
    with pytest.raises(FormatError):
        split_streams(b"\x00\x00", 2)
    with pytest.raises(ValueError):
        join_streams([b"abc"])


def test_context_weights_are_checked(context_model, means_model, tmp_path):
    plain, context, path = context_model
    bundle = read_bundle(path)
    with pytest.raises(ValueError):  # already model 2
        with_channel_context(bundle, context.channel_context)
    missing = {key: value for key, value in bundle.items() if key != "scale_context"}
    write_bundle(missing, str(tmp_path / "missing.pt"))
    with pytest.raises(UgcError, match="no channel context"):
        load_model(str(tmp_path / "missing.pt"))
    other = integerize_channel_context(_random_context(plain.config.M * 2, len(plain.y_tables) - 1))
    with pytest.raises(ValueError, match="does not fit"):  # made for twice the channels
        with_channel_context(read_bundle(plain.path), other)
    means_bundle = read_bundle(means_model[2])
    for name, stray in {
        "stray": {**read_bundle(plain.path), "scale_context": bundle["scale_context"]},
        "both": {**means_bundle, "scale_context": bundle["scale_context"]},
        # a scales-only context under model id 3: its networks give C outputs, not 2C
        "outputs": {**means_bundle, "channel_context": bundle["scale_context"]},
        "unknown": {**bundle, "model_id": 4},
    }.items():
        write_bundle(stray, str(tmp_path / f"{name}.pt"))
        with pytest.raises(UgcError):
            load_model(str(tmp_path / f"{name}.pt"))


def test_training_learns_a_dependence_between_slices():
    """Slice 1's symbols are large exactly where slice 0's are: the context must learn
    it and code them in fewer bits than the hyper-prior's flat indexes."""
    torch.manual_seed(0)
    context = ChannelContext(8, 2, 63, hidden=(16, 16))
    optimizer = torch.optim.Adam(context.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(1)

    def batch():
        loud = torch.rand((16, 1, 8, 8), generator=generator) < 0.5
        magnitude = torch.where(loud, 8.0, 0.3)
        symbols = torch.round(torch.randn((16, 8, 8, 8), generator=generator) * magnitude).long()
        return symbols, torch.full_like(symbols, 25)  # one flat hyper-prior index

    for _ in range(150):
        symbols, hyper_index = batch()
        loss = train.training_bits(context, symbols.float(), hyper_index)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    symbols, hyper_index = batch()
    with torch.no_grad():
        plain = train.symbol_bits(symbols[:, 4:].float(), train.table_scales(hyper_index[:, 4:].float())).mean()
        learned = train.symbol_bits(
            symbols[:, 4:].float(), train.table_scales(context(hyper_index, symbols.float())[1][:, 4:])
        ).mean()
    assert float(learned) < 0.8 * float(plain)


def test_training_learns_to_predict_means_from_earlier_slices():
    """Slice 1 repeats slice 0 up to small noise: a means context must predict it from
    slice 0 and code it in far fewer bits than the hyper-prior's zero mean; the exported
    integer context must keep that."""
    torch.manual_seed(0)
    context = ChannelContext(8, 2, 63, hidden=(16, 16), means=True)
    optimizer = torch.optim.Adam(context.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(1)

    def batch():
        first = torch.randn((16, 4, 8, 8), generator=generator) * 3
        second = first + 0.2 * torch.randn((16, 4, 8, 8), generator=generator)
        residual = torch.cat([first, second], dim=1)
        return residual, torch.full(residual.shape, 27, dtype=torch.int64)  # table scale about 3

    for _ in range(400):
        residual, hyper_index = batch()
        loss = train.training_bits(context, residual, hyper_index)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    residual, hyper_index = batch()
    symbols, _, index = integerize_channel_context(context).encode(hyper_index, residual.to(torch.float64))
    plain = train.symbol_bits(torch.round(residual[:, 4:]), train.table_scales(hyper_index[:, 4:].float())).mean()
    learned = train.symbol_bits(symbols[:, 4:].float(), train.table_scales(index[:, 4:].float())).mean()
    assert float(learned) < 0.8 * float(plain)


def test_a_means_context_can_start_from_a_scales_context(tmp_path):
    """--init-from: the means context starts exactly where the scales context ended
    (the same tables for the same inputs, no mean correction)."""
    scales = _random_context(16, 63)
    torch.save({"context": scales.state_dict()}, tmp_path / "scales.pt")
    means = ChannelContext(16, SLICES, 63, hidden=(12, 8), means=True)
    train.start_from_scales(means, str(tmp_path / "scales.pt"))
    hyper_index, residual = _hyper_indexes((1, 16, 6, 6))
    with torch.no_grad():
        _, expected = scales(hyper_index, torch.round(residual).float())
        mean_delta, index = means(hyper_index, residual.float())
    assert torch.equal(index, expected) and not mean_delta.any()
    symbols, integer_delta, integer_index = integerize_channel_context(means).encode(hyper_index, residual)
    assert torch.equal(symbols, torch.round(residual).long()) and not integer_delta.any()
    assert torch.equal(integer_index, integerize_channel_context(scales).encode(hyper_index, residual)[2])
    with pytest.raises(ValueError, match="does not fit"):
        train.start_from_scales(ChannelContext(16, SLICES, 63, hidden=(12, 9), means=True), str(tmp_path / "scales.pt"))


@BOTH
def test_training_tool_writes_context_weights_and_resumes(tiny_model, tmp_path, capsys, means):
    corpus = tmp_path / "corpus"
    write_photos(corpus, 2, 160, 160)
    out, checkpoint = str(tmp_path / "context.pt"), str(tmp_path / "checkpoint.pt")
    common = ["--corpus", str(corpus), "--weights", tiny_model.path, "--out", out, "--slices", "2",
              "--crops", "3", "--held-out", "2", "--crop", "128", "--batch", "2", "--threads", "1",
              "--checkpoint", checkpoint] + (["--means"] if means else [])
    threads = torch.get_num_threads()
    try:
        assert train.main(common + ["--steps", "2"]) == 0
        assert load_model(out).model_id == (3 if means else 2)
        assert train.main(common + ["--steps", "3"]) == 0
    finally:
        torch.set_num_threads(threads)
    output = capsys.readouterr().out
    assert "resumed at step 2" in output and "trained 3 steps" in output
    assert load_model(out).channel_context.slices == 2
    # A compact copy (fp16, no optimiser moments) resumes the run elsewhere.
    compact = str(tmp_path / "compact.pt")
    assert train.main(["--checkpoint", checkpoint, "--save-compact", compact]) == 0
    state = torch.load(compact, weights_only=True)
    assert state["step"] == 3 and "optimizer" not in state
    assert all(value.dtype == torch.float16 for value in state["context"].values() if value.is_floating_point())
    moved = [compact if argument == checkpoint else argument for argument in common]
    try:
        assert train.main(moved + ["--steps", "4"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert "resumed at step 3" in capsys.readouterr().out


def test_model_card_traces_models_2_and_3_to_the_weights_they_were_trained_on(either_model):
    plain, context, _ = either_model
    assert card.transforms_fingerprint(plain) == plain.fingerprint
    assert card.transforms_fingerprint(context) == plain.fingerprint != context.fingerprint
    assert card.context_lines(plain) == []
    assert f"{SLICES} slices" in card.context_lines(context)[0]
    assert ("means and scales" in card.context_lines(context)[0]) == context.channel_context.means


def test_model_card_facts_of_the_transforms_serve_the_context_model(context_model, tmp_path):
    # The facts are recorded from the run (plain transforms); the channel context added
    # afterwards keeps them valid, other transforms do not.
    plain, context, _ = context_model
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps({"transforms": plain.fingerprint.hex()}))
    assert card.read_facts(str(facts), context)["transforms"] == plain.fingerprint.hex()
    facts.write_text(json.dumps({"transforms": "0123456789abcdef"}))
    with pytest.raises(ValueError, match="record them with --run"):
        card.read_facts(str(facts), context)


def test_model_card_facts_of_a_synthesis_fine_tune_serve_the_context_model(context_model, tmp_path):
    # A context added to fine-tuned weights keeps the fine-tune's facts, which name the
    # weights without the context.
    plain, context, _ = context_model
    assert card.fingerprint_before_context(context) == plain.fingerprint == card.fingerprint_before_context(plain)
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps({"transforms": "0123456789abcdef", "synthesis_finetune": {"weights": plain.fingerprint.hex()}}))
    assert card.read_facts(str(facts), context)["synthesis_finetune"]["weights"] == plain.fingerprint.hex()
    # g_s trained on after a recorded context names the weights with it.
    recorded = {"synthesis_finetune": {"weights": context.fingerprint.hex()},
                "channel_context": {"weights": context.fingerprint.hex(), "before": plain.fingerprint.hex()}}
    facts.write_text(json.dumps(recorded))
    assert card.read_facts(str(facts), context) == recorded
    facts.write_text(json.dumps({"synthesis_finetune": {"weights": context.fingerprint.hex()}}))
    with pytest.raises(ValueError, match="record it with --synthesis-run"):
        card.read_facts(str(facts), context)
