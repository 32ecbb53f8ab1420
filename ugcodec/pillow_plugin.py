"""A Pillow plugin: ``Image.open("photo.ugc")`` and ``im.save("photo.ugc", quality=3)``.

Importing this module registers the format (as ``pillow_heif.HeifImagePlugin`` does);
:func:`register_ugc_opener` registers it again with other defaults (as
``pillow_heif.register_heif_opener`` does)::

    >>> import os, tempfile
    >>> from PIL import Image
    >>> import ugcodec.pillow_plugin                    # registers .ugc, image/x-ugc
    >>> path = os.path.join(tempfile.mkdtemp(), "photo.ugc")
    >>> Image.new("RGB", (80, 48), "teal").save(path, quality=4)   # encodes; refine=N for effort
    >>> im = Image.open(path)                           # reads the 32-byte header only
    >>> im.format, im.size, im.mode                     # known without decoding
    ('UGC', (80, 48), 'RGB')
    >>> im.preference = "machine"                       # optional, before the pixels are used
    >>> im.load()[0, 0]                                 # decodes (human by default)
    (...)

Opening:
    ``Image.open`` parses and checks the header (magic, version, header CRC, fields) and
    decodes nothing. ``im.preference`` (``"human"``, ``"machine"`` or a number in [0, 1];
    default: the one given to :func:`register_ugc_opener`) picks the decoding and may be
    set until the pixels are first used. ``im.info`` holds ``"quality"``,
    ``"weights_fingerprint"`` and the file's metadata (``"icc_profile"``, ``"exif"``,
    ``"xmp"``) when it has some.

Errors, in Pillow's usual kinds with the codec's message:
    * ``Image.open`` of a file with the .ugc magic but a bad header (wrong version, header
      CRC, fields) raises :class:`PIL.UnidentifiedImageError` saying what is wrong; a file
      without the magic is left to the other plugins, as usual.
    * ``load()`` of a truncated or corrupt payload, or of a file made with other weights,
      raises :class:`OSError` (its ``__cause__`` is the :class:`ugcodec.FormatError`).
    * ``verify()`` reads and checks the whole file (lengths, both CRCs, the weights
      fingerprint) without decoding, and raises :class:`SyntaxError` as Pillow's PNG
      plugin does. As with any Pillow image, open the file again after ``verify()``.

Pillow's other methods work as for any format: ``thumbnail()`` decodes the full image and
resizes it; ``draft()`` changes nothing (the decoder has no reduced-size mode), so it
returns ``None`` as Pillow documents for formats without one.

Saving:
    ``im.save(path_or_file, "UGC", quality=..., refine=..., weights=..., icc_profile=...,
    exif=..., xmp=...)``: ``quality`` is the codec's level (1 up to the weights' top
    level, default 3), not JPEG's 0-100; ``refine`` the encoder effort
    (:func:`ugcodec.encode`). Metadata comes from these arguments, else from ``im.info``;
    ``strip=True`` stores none.
"""
from __future__ import annotations

from typing import IO, Optional, Union

from PIL import Image, ImageFile, UnidentifiedImageError

from . import metadata as _metadata
from .container import HEADER_SIZE, MAGIC, Header
from .errors import FormatError, ModelMismatchError, UgcError

__all__ = ["FORMAT", "MIME_TYPE", "EXTENSION", "UgcImageFile", "register_ugc_opener"]

#: Pillow's format id (``im.format``).
FORMAT = "UGC"
MIME_TYPE = "image/x-ugc"
EXTENSION = ".ugc"

_options = {"preference": "human", "weights": None}


def _accept(prefix: bytes) -> bool:
    return prefix[:4] == MAGIC


def _model(weights: Optional[str]):
    from .weights import load_model

    return load_model(weights)


class UgcImageFile(ImageFile.ImageFile):
    """A .ugc file opened by Pillow (see the module docstring)."""

    format = FORMAT
    format_description = "ugcodec learned image codec"

    def _open(self) -> None:
        assert self.fp is not None
        start = self.fp.read(HEADER_SIZE)
        if not _accept(start):
            raise SyntaxError("not a .ugc file")
        try:
            header = Header.unpack(start)
            self.info.update(_metadata.read_from_stream(header, self.fp))
        except FormatError as error:
            # Not a SyntaxError: Pillow would swallow the message and try other plugins,
            # but the magic says this is a .ugc file, so say what is wrong with it.
            raise UnidentifiedImageError(f"cannot identify image file: {error}") from error
        self._header = header
        self._size = (header.width, header.height)
        self._mode = header.mode
        self.info["quality"] = header.quality
        self.info["weights_fingerprint"] = header.fingerprint.hex()
        self._preference = _options["preference"]
        self._weights = _options["weights"]
        # One pseudo-tile marks the image as not yet decoded; load() below decodes it.
        self.tile = [ImageFile._Tile("ugc", (0, 0) + self.size, 0, None)]

    @property
    def preference(self) -> Union[str, float]:
        """Who the decoded picture is for: ``"human"``, ``"machine"`` or a blend in [0, 1].
        Setting it after the pixels were decoded raises ``ValueError``."""
        return self._preference

    @preference.setter
    def preference(self, value: Union[str, float]) -> None:
        from .codec import preference_to_beta

        preference_to_beta(value)  # ValueError for an unknown preference
        if not self.tile:
            raise ValueError("the image is already decoded: set preference before using its pixels")
        self._preference = value

    def _read_all(self) -> bytes:
        assert self.fp is not None
        self.fp.seek(0)
        return self.fp.read()

    def load(self):
        if self.tile:
            from .codec import decode

            if self.fp is None:
                raise OSError("cannot load this image: its file is closed")
            data = self._read_all()
            try:
                decoded = decode(data, self._preference, model=_model(self._weights))
            except ModelMismatchError as error:
                raise OSError(str(error)) from error
            except FormatError as error:
                raise OSError(f"broken .ugc file: {error}") from error
            except UgcError as error:
                raise OSError(str(error)) from error
            self.load_prepare()
            self.im.paste(decoded.im, (0, 0) + self.size)
            self.tile = []
            if self._exclusive_fp and self._close_exclusive_fp_after_loading:
                self.fp.close()
            self.fp = None
        return super().load()

    def verify(self) -> None:
        """Checks the whole file (lengths, CRCs, weights) without decoding; raises
        :class:`SyntaxError` for a broken file."""
        from .container import Container, check_weights, shipped_weights_summary

        if self.fp is None:
            raise OSError("verify must be called directly after open")
        data = self._read_all()
        try:
            header = Container.from_bytes(data).header
            if self._weights is None:  # as ugc info: the shipped weights' summary, no torch
                check_weights(header, shipped_weights_summary())
            else:
                from .codec import check_model

                check_model(_model(self._weights), header)
        except ModelMismatchError as error:
            raise SyntaxError(str(error)) from error
        except FormatError as error:
            raise SyntaxError(f"broken .ugc file: {error}") from error
        super().verify()

    def draft(self, mode, size):  # noqa: D102 - documented in the module docstring
        return None


def _save(im: Image.Image, fp: IO[bytes], filename: Union[str, bytes]) -> None:
    from .codec import DEFAULT_QUALITY, encode

    options = im.encoderinfo
    quality = options.get("quality", DEFAULT_QUALITY)
    weights = options.get("weights", _options["weights"])
    if options.get("strip"):
        meta = _metadata.Metadata()
    else:
        meta = _metadata.Metadata.from_pil(im, options)
    data = encode(im, quality, model=_model(weights), refine=options.get("refine", 0), metadata=False)
    fp.write(_metadata.attach(data, meta))


def register_ugc_opener(preference: Union[str, float] = "human", weights: Optional[str] = None) -> None:
    """Registers the .ugc format with Pillow (opening, saving, extension, MIME type).

    Args:
        preference: how ``Image.open`` decodes by default: ``"human"``, ``"machine"`` or
            a number in [0, 1] (each image's ``preference`` attribute overrides it).
        weights: weights file for decoding and saving (default: the shipped model).

    Raises:
        ValueError: unknown preference.
    """
    from .codec import preference_to_beta

    preference_to_beta(preference)
    _options.update(preference=preference, weights=weights)
    Image.register_open(FORMAT, UgcImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME_TYPE)


register_ugc_opener()
