"""Model id 2: channel-conditional scales (ugcodec.channel_context, bitstream_spec.md §8.3)."""
from __future__ import annotations

import os
import struct
import sys
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_parser as ref  # noqa: E402
from conftest import load_script, make_photo_like  # noqa: E402

import ugcodec  # noqa: E402
from ugcodec.codec import encode_latents  # noqa: E402
from ugcodec.channel_context import ChannelScaleContext, integerize_scale_context  # noqa: E402
from ugcodec.entropy_coding import join_streams, split_streams  # noqa: E402
from ugcodec.errors import FormatError, UgcError  # noqa: E402
from ugcodec.weights import load_model, read_bundle, with_scale_context, write_bundle  # noqa: E402

SLICES = 2


def _random_context(channels: int, largest_index: int, seed: int = 7) -> ChannelScaleContext:
    """A context whose corrections are not all zero (a trained one starts from zero)."""
    torch.manual_seed(seed)
    context = ChannelScaleContext(channels, SLICES, largest_index, hidden=(12, 8))
    for network in context.networks:
        torch.nn.init.normal_(network[-1].weight, std=0.3)
        torch.nn.init.normal_(network[-1].bias, std=0.5)
    return context


@pytest.fixture(scope="module")
def context_model(tiny_model, tmp_path_factory):
    """The tiny model with a random channel context: (model 1, model 2, path of model 2)."""
    base = read_bundle(tiny_model.path)
    context = integerize_scale_context(_random_context(tiny_model.config.M, len(tiny_model.y_tables) - 1))
    path = str(tmp_path_factory.mktemp("context") / "tiny-context.pt")
    write_bundle(with_scale_context(base, context), path)
    return tiny_model, load_model(path), path


def _hyper_indexes(shape, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(10, 50, shape, generator=generator), torch.randint(-6, 7, shape, generator=generator)


def test_integer_context_follows_the_float_one():
    context = _random_context(16, 63)
    hyper_index, symbols = _hyper_indexes((2, 16, 8, 8))
    with torch.no_grad():
        expected = context(hyper_index, symbols).to(torch.int64)
    got = integerize_scale_context(context).indexes(hyper_index, symbols)
    # Weight rounding may tip an index that lies on a half; nothing more.
    assert (got - expected).abs().max() <= 1
    assert (got == expected).float().mean() > 0.99
    assert not torch.equal(got, hyper_index), "a random context corrects some indexes"
    assert int(got.min()) >= 0 and int(got.max()) <= 63


def test_a_slice_depends_only_on_the_slices_before_it():
    """What makes the section decodable slice by slice."""
    integer = integerize_scale_context(_random_context(16, 63))
    hyper_index, symbols = _hyper_indexes((1, 16, 6, 6))
    first = integer.indexes(hyper_index, symbols)
    changed = symbols.clone()
    changed[:, 8:] = -changed[:, 8:] + 3
    second = integer.indexes(hyper_index, changed)
    assert torch.equal(first[:, :8], second[:, :8])
    changed[:, :8] += 2
    assert not torch.equal(integer.indexes(hyper_index, changed)[:, 8:], first[:, 8:])


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


def test_reference_parser_reads_model_2(context_model):
    _, context, path = context_model
    data, latents = encode_latents(make_photo_like(70, 130, seed=5), 2, model=context)
    parsed = ref.parse_full(data, path)
    np.testing.assert_array_equal(parsed.y, latents.y.numpy())
    np.testing.assert_array_equal(parsed.scale_index, latents.scale_index.numpy())


def _with_y_section(data: bytes, y_section: bytes) -> bytes:
    """``data`` with another y section, lengths and CRCs made consistent."""
    header = bytearray(data[:32])
    z_length = struct.unpack(">I", header[20:24])[0]
    z_section = data[32 : 32 + z_length]
    header[24:28] = struct.pack(">I", len(y_section))
    header[28:32] = struct.pack(">I", zlib.crc32(bytes(header[:28])))
    payload = z_section + y_section
    return bytes(header) + payload + struct.pack(">I", zlib.crc32(payload))


def test_stream_lengths_that_do_not_fit_are_refused(context_model):
    _, context, path = context_model
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


def test_context_weights_are_checked(context_model, tmp_path):
    plain, context, path = context_model
    bundle = read_bundle(path)
    with pytest.raises(ValueError):  # already model 2
        with_scale_context(bundle, context.scale_context)
    missing = {key: value for key, value in bundle.items() if key != "scale_context"}
    write_bundle(missing, str(tmp_path / "missing.pt"))
    with pytest.raises(UgcError, match="no channel context"):
        load_model(str(tmp_path / "missing.pt"))
    other = integerize_scale_context(_random_context(plain.config.M * 2, len(plain.y_tables) - 1))
    with pytest.raises(ValueError, match="does not fit"):  # made for twice the channels
        with_scale_context(read_bundle(plain.path), other)
    stray = {**read_bundle(plain.path), "scale_context": bundle["scale_context"]}
    write_bundle(stray, str(tmp_path / "stray.pt"))
    with pytest.raises(UgcError):
        load_model(str(tmp_path / "stray.pt"))


def test_training_learns_a_dependence_between_slices():
    """Slice 1's symbols are large exactly where slice 0's are: the context must learn
    it and code them in fewer bits than the hyper-prior's flat indexes."""
    train = load_script("tools/train_scale_context.py")
    torch.manual_seed(0)
    context = ChannelScaleContext(8, 2, 63, hidden=(16, 16))
    optimizer = torch.optim.Adam(context.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(1)

    def batch():
        loud = torch.rand((16, 1, 8, 8), generator=generator) < 0.5
        magnitude = torch.where(loud, 8.0, 0.3)
        symbols = torch.round(torch.randn((16, 8, 8, 8), generator=generator) * magnitude).long()
        return symbols, torch.full_like(symbols, 25)  # one flat hyper-prior index

    for _ in range(150):
        symbols, hyper_index = batch()
        loss = train.mean_bits(context, symbols, hyper_index)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    symbols, hyper_index = batch()
    with torch.no_grad():
        plain = float(train.mean_bits(None, symbols[:, 4:], hyper_index[:, 4:]))
        learned = train.symbol_bits(
            symbols[:, 4:].float(), train.table_scales(context(hyper_index, symbols)[:, 4:])
        ).mean()
    assert float(learned) < 0.8 * plain


def test_training_tool_writes_model_2_weights_and_resumes(tiny_model, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for seed in range(2):
        Image.fromarray(make_photo_like(160, 160, seed=seed)).save(corpus / f"photo{seed}.png")
    train = load_script("tools/train_scale_context.py")
    out, checkpoint = str(tmp_path / "context.pt"), str(tmp_path / "checkpoint.pt")
    common = ["--corpus", str(corpus), "--weights", tiny_model.path, "--out", out, "--slices", "2",
              "--crops", "3", "--held-out", "2", "--crop", "128", "--batch", "2", "--threads", "1",
              "--checkpoint", checkpoint]
    threads = torch.get_num_threads()
    try:
        assert train.main(common + ["--steps", "2"]) == 0
        assert load_model(out).model_id == 2
        assert train.main(common + ["--steps", "3"]) == 0
    finally:
        torch.set_num_threads(threads)
    output = capsys.readouterr().out
    assert "resumed at step 2" in output and "trained 3 steps" in output
    assert load_model(out).scale_context.slices == 2


def test_model_card_traces_model_2_to_the_weights_it_was_trained_on(context_model):
    plain, context, _ = context_model
    card = load_script("tools/model_card.py")
    assert card.transforms_fingerprint(plain) == plain.fingerprint
    assert card.transforms_fingerprint(context) == plain.fingerprint != context.fingerprint
    assert card.context_lines(plain) == []
    assert f"{SLICES} slices" in card.context_lines(context)[0]


def test_model_card_carries_the_training_sections_over_for_the_same_transforms(context_model, tmp_path):
    plain, context, _ = context_model
    card = load_script("tools/model_card.py")
    old = tmp_path / "card.md"
    old.write_text(
        f"# Model card\n\nWeights fingerprint `{plain.fingerprint.hex()}` (written in every .ugc header).\n\n"
        "## Model\n- Mean-scale hyperprior.\n\n## Training\n- Stage 1: 5 steps.\n\n## Targets\n- old figures\n"
    )
    lines = card.card_training_lines(str(old), context)
    assert f"`{context.fingerprint.hex()}`" in lines[2] and plain.fingerprint.hex() in lines[2]
    assert lines.index("## Model") < lines.index("- Mean-scale hyperprior.") < lines.index("## Training")
    assert any(line.startswith("- Channel-conditional scales") for line in lines[: lines.index("## Training")])
    assert "- Stage 1: 5 steps." in lines and "- old figures" not in lines
    old.write_text(old.read_text().replace(plain.fingerprint.hex(), "0123456789abcdef"))
    with pytest.raises(ValueError, match="not these transforms"):
        card.card_training_lines(str(old), context)
