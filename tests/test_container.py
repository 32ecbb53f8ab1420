import struct
import zlib

import pytest

from ugcodec.container import HEADER_SIZE, MAGIC, Container, Header
from ugcodec.errors import FormatError


def make_container(**changes) -> Container:
    fields = dict(
        model_id=1, color_mode=1, quality=2, width=33, height=17,
        fingerprint=bytes(range(8)), z_length=8, y_length=12,
    )
    fields.update(changes)
    return Container(Header(**fields), b"Z" * fields["z_length"], b"Y" * fields["y_length"])


def with_valid_crc(header_bytes: bytearray) -> bytes:
    """A hostile file recomputes the header CRC: field checks must still hold."""
    struct.pack_into(">I", header_bytes, HEADER_SIZE - 4, zlib.crc32(bytes(header_bytes[: HEADER_SIZE - 4])))
    return bytes(header_bytes)


def test_parse_then_serialise_gives_the_same_bytes():
    data = make_container().to_bytes()
    assert len(data) == HEADER_SIZE + 8 + 12 + 4
    parsed = Container.from_bytes(data)
    assert parsed.to_bytes() == data
    assert parsed.header.width == 33 and parsed.header.height == 17 and parsed.header.mode == "RGB"


def test_truncated_at_every_offset():
    data = make_container().to_bytes()
    for length in range(len(data)):
        with pytest.raises(FormatError):
            Container.from_bytes(data[:length])


def test_every_flipped_byte_is_caught():
    data = make_container().to_bytes()
    for offset in range(len(data)):
        broken = bytearray(data)
        broken[offset] ^= 0x5A
        with pytest.raises(FormatError):
            Container.from_bytes(bytes(broken))


def test_trailing_bytes_and_wrong_magic():
    data = make_container().to_bytes()
    with pytest.raises(FormatError, match="unexpected bytes"):
        Container.from_bytes(data + b"\0")
    with pytest.raises(FormatError, match="magic"):
        Container.from_bytes(b"\x89PNG" + data[4:])
    with pytest.raises(FormatError):
        Container.from_bytes(b"")


@pytest.mark.parametrize(
    "offset, value, message",
    [
        (4, 3, "version"),
        (5, 9, "model id"),
        (6, 7, "colour mode"),
        (7, 0, "quality"),
    ],
)
def test_invalid_fields_with_a_valid_crc(offset, value, message):
    header = bytearray(make_container().to_bytes()[:HEADER_SIZE])
    header[offset] = value
    with pytest.raises(FormatError, match=message):
        Header.unpack(with_valid_crc(header))


def test_absurd_dimensions_and_lengths():
    header = bytearray(make_container().to_bytes()[:HEADER_SIZE])
    struct.pack_into(">H", header, 8, 0)
    with pytest.raises(FormatError, match="size"):
        Header.unpack(with_valid_crc(header))
    header = bytearray(make_container().to_bytes()[:HEADER_SIZE])
    struct.pack_into(">I", header, 20, 0xFFFFFFF0)
    data = with_valid_crc(header) + b"\0" * 40
    # Refused from the header alone: no 33x17 image needs 4 GiB of sections.
    with pytest.raises(FormatError, match="more than a 33x17 image can need"):
        Container.from_bytes(data)
    header = bytearray(make_container().to_bytes()[:HEADER_SIZE])
    struct.pack_into(">I", header, 24, 7)
    with pytest.raises(FormatError, match="multiples of 4"):
        Header.unpack(with_valid_crc(header))


def test_magic_is_what_the_spec_says():
    assert make_container().to_bytes()[:4] == MAGIC == b"\x89UGC"
