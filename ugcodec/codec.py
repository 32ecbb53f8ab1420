"""Encode images to .ugc bytes and decode them for humans or machines.

Parsing is exact, pixels are tolerant: the symbols of z and y depend only on integer
tables and the integer-exact hyper-synthesis, so they are identical on any machine and
thread count; the float g_s that turns y into pixels may differ by one in a pixel value
(summation order, or parts of it in bfloat16: ``precision``).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO, Dict, Iterator, Optional, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .container import COLOR_MODES, MAX_PIXELS, Container, Header, check_weights, read_container
from .entropy_coding import SymbolRangeError, decode_symbols, encode_symbols
from .errors import ImageError
from .image_io import ImageSource, array_to_image, load_image
from .integer_net import GAIN_BITS, hyper_parameters
from .metadata import Metadata, attach as attach_metadata
from .progress import ANALYSIS, ENTROPY_CODING, HYPER, PARSING, READ_IMAGE, REFINEMENT, SYNTHESIS, Meter, Progress
from .settings import DEFAULT_PRECISION, DEFAULT_QUALITY, PRECISIONS
from .precision import resolve_precision
from .refinement import check_steps, planned_evaluations, refine_residuals
from .scratch import reusing_scratch
from .tiling import LATENT_STRIDE, analysis_tiles, synthesis_tiles
from .weights import CodecModel, load_model

__all__ = [
    "DEFAULT_PRECISION",
    "DEFAULT_QUALITY",
    "PRECISIONS",
    "PREFERENCES",
    "check_quality",
    "preference_to_beta",
    "Latents",
    "encode",
    "encode_latents",
    "decode",
    "decode_pixels",
    "latent_residuals",
    "read_header",
    "MAX_PIXELS",
    "parse_latents",
    "synthesis_input",
    "torch_threads",
]

_STRIDE = 64

Preference = Union[str, float]
#: What :func:`decode` reads: ``ugcodec.container.ACCEPTED_FILES``.
FileSource = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", BinaryIO]

#: Named preferences and their beta value. Any beta in [0, 1] is accepted as a blend.
PREFERENCES: Dict[str, float] = {"human": 0.0, "machine": 1.0}


def preference_to_beta(preference: "str | float") -> float:
    """Maps ``"human"``, ``"machine"`` or a number in [0, 1] to beta.

    >>> preference_to_beta("Machine"), preference_to_beta("0.25"), preference_to_beta(0)
    (1.0, 0.25, 0.0)
    >>> preference_to_beta("robots")
    Traceback (most recent call last):
    ...
    ValueError: unknown preference 'robots': use 'human', 'machine' or a number in [0, 1]

    Raises:
        ValueError: for an unknown name or a number outside [0, 1].
    """
    if isinstance(preference, str):
        key = preference.strip().lower()
        if key in PREFERENCES:
            return PREFERENCES[key]
        try:
            value = float(key)
        except ValueError:
            raise ValueError(
                f"unknown preference {preference!r}: use 'human', 'machine' or a number in [0, 1]"
            ) from None
    else:
        value = float(preference)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"preference {value} is outside [0, 1]")
    return value


def check_quality(model: CodecModel, quality: int) -> int:
    """Returns ``quality`` as an int.

    Raises:
        ValueError: it is not an integer level of ``model`` (1 to ``model.num_qualities``).
    """
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)):
        raise ValueError(f"quality must be an integer, not {quality!r}")
    if int(quality) not in model.qualities:
        raise ValueError(f"quality must be between 1 and {model.num_qualities}, not {quality}")
    return int(quality)


@contextmanager
def torch_threads(threads: Optional[int]) -> Iterator[None]:
    """Runs the body with ``threads`` torch threads, then restores the count it found.

    ``None`` leaves torch's setting alone (``torch.set_num_threads`` sets it for the
    whole process). The symbols of a file do not depend on it: parsing is exact on any
    thread count; only the float transforms' last bits may.

    Raises:
        ValueError: ``threads`` is not a positive integer.
    """
    if threads is None:
        yield
        return
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be a positive integer or None, not {threads!r}")
    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass
class Latents:
    """What the parser recovers from a file, before any float maths.

    Attributes:
        header: the parsed header.
        z: int64 ``(1, N, h, w)`` hyper-latent symbols.
        y: int64 ``(1, M, 4h, 4w)`` latent symbols (``round(y * gain - mu)``).
        mu: float64 exact means of the gained latent, as the model id's latent coder
            chose them (bitstream_spec.md §8).
        scale_index: int64 coding-table index of every y symbol, likewise.
        metadata: the file's ICC profile, EXIF and XMP (empty for version 1 files).
    """

    header: Header
    z: Tensor
    y: Tensor
    mu: Tensor
    scale_index: Tensor
    metadata: Metadata = field(default_factory=Metadata)


def _padded(size: int) -> int:
    return -(-size // _STRIDE) * _STRIDE


def _latent_grid(height: int, width: int) -> "tuple[int, int]":
    """Latent rows and columns of a ``height`` x ``width`` image (padded to a multiple of 64)."""
    return _padded(height) // LATENT_STRIDE, _padded(width) // LATENT_STRIDE


def _analysis_tiles(height: int, width: int) -> list:
    return list(analysis_tiles(*_latent_grid(height, width)))


def _analyze(g_a: torch.nn.Module, pixels: np.ndarray, meter: Optional[Meter] = None) -> Tensor:
    """``g_a`` (the network's or :meth:`CodecModel.analysis`'s) of a uint8 ``(H, W, 3)``
    image, padded to a multiple of 64, tile by tile (``meter`` advances ``ANALYSIS`` units
    per latent of each tile's window)."""
    height, width = pixels.shape[:2]
    latent_height, latent_width = _latent_grid(height, width)
    image = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    y = None
    for tile in _analysis_tiles(height, width):
        rows, cols = tile.window
        if rows.stop * LATENT_STRIDE <= height and cols.stop * LATENT_STRIDE <= width:  # no padding: a slice
            x = image[:, :, rows.start * LATENT_STRIDE : rows.stop * LATENT_STRIDE,
                      cols.start * LATENT_STRIDE : cols.stop * LATENT_STRIDE].float().div_(255.0)
        else:
            # Edge replication (clamped indexes) keeps the padding free of artificial edges.
            row_index = torch.arange(rows.start * LATENT_STRIDE, rows.stop * LATENT_STRIDE).clamp_(max=height - 1)
            col_index = torch.arange(cols.start * LATENT_STRIDE, cols.stop * LATENT_STRIDE).clamp_(max=width - 1)
            x = image[:, :, row_index][:, :, :, col_index].float().div_(255.0)
        out = g_a(x)
        if y is None:
            y = out.new_empty((1, out.shape[1], latent_height, latent_width))
        y[(..., *tile.core)] = out[(..., *tile.core_in_window)]
        if meter is not None:
            meter.advance(ANALYSIS * tile.window_area)
    return y


def latent_residuals(model: CodecModel, y: Tensor, z_symbols: Tensor, quality: int) -> "tuple[Tensor, Tensor, Tensor]":
    """The exact coding parameters of a latent (bitstream_spec.md §8).

    Args:
        model: the weights that code it.
        y: float latent ``(B, M, 4h, 4w)`` from g_a; z_symbols: its hyper-latent ``(B, N, h, w)``.
        quality: level from 1 to ``model.num_qualities``.

    Returns:
        ``(residual, mu, scale_index)``: float64 ``y * gain - mu`` (its rounding gives the
        symbols), the exact float64 means and the int64 coding-table indexes.
    """
    gain = model.gain(quality)
    mu, scale_index = hyper_parameters(model.hyper_synthesis, z_symbols, gain, model.thresholds)
    gain_float = gain.to(y.device, torch.float64)[None, :, None, None] / float(1 << GAIN_BITS)
    residual = y.to(torch.float64, copy=True)
    return residual.mul_(gain_float).sub_(mu), mu, scale_index


def synthesis_input(model: CodecModel, y_symbols: Tensor, mu: Tensor, quality: int) -> Tensor:
    """What g_s decodes (bitstream_spec.md §9): ``float32(y + mu) * inverse_gain``.

    Args:
        model: the weights; y_symbols: the latent symbols (any dtype holding integers);
        mu: their exact float64 means; quality: level from 1 to ``model.num_qualities``.

    Returns:
        float32 tensor of the symbols' shape.
    """
    y_hat_scaled = (y_symbols.to(torch.float64) + mu).to(torch.float32)
    return y_hat_scaled * model.inverse_gain(quality).to(y_hat_scaled.device)[None, :, None, None]


@torch.inference_mode()
def encode_latents(
    image: ImageSource,
    quality: int = DEFAULT_QUALITY,
    model: Optional[CodecModel] = None,
    progress: Progress = False,
    refine: int = 0,
    max_pixels: Optional[int] = MAX_PIXELS,
    first_frame: bool = False,
    precision: str = DEFAULT_PRECISION,
) -> "tuple[bytes, Latents]":
    """Like :func:`encode`, and also returns the symbols it coded (for tests and tools)."""
    resolve_precision(precision)
    meter = Meter(progress, "encoding")
    try:
        result = _encode_latents(image, quality, model, meter, refine, max_pixels, first_frame, precision)
        meter.finish()
        return result
    finally:
        meter.close()


@torch.inference_mode()
def _encode_latents(
    image: ImageSource,
    quality: int,
    model: Optional[CodecModel],
    meter: Meter,
    refine: int,
    max_pixels: Optional[int],
    first_frame: bool,
    precision: str = DEFAULT_PRECISION,
) -> "tuple[bytes, Latents]":
    """:func:`encode_latents`, reporting to ``meter``: it plans the whole encode once the
    image's size is known, and advances stage by stage and tile by tile."""
    model = _resolve_model(model)
    quality = check_quality(model, quality)
    refine = check_steps(refine)
    pixels, mode = load_image(image, max_pixels=max_pixels, first_frame=first_frame)
    height, width = pixels.shape[:2]
    positions = int(np.prod(_latent_grid(height, width)))
    if meter.active:
        coding_passes = 2 if refine else 1
        meter.plan(READ_IMAGE * positions + HYPER * positions + coding_passes * ENTROPY_CODING * positions
                   + ANALYSIS * sum(tile.window_area for tile in _analysis_tiles(height, width))
                   + REFINEMENT * planned_evaluations(*_latent_grid(height, width), refine))
        meter.advance(READ_IMAGE * positions)
    network = model.network
    # The GDNs' temporaries come from the pool the decoder reuses too: tiles and files
    # after the first allocate nothing.
    with reusing_scratch(model.scratch):
        y = _analyze(model.analysis(precision), pixels, meter)
    z_symbols = torch.round(network.h_a(y)).to(torch.int64)
    residual, mu, hyper_index = latent_residuals(model, y, z_symbols, quality)
    meter.advance(HYPER * positions)
    coder = model.latent_coder
    latent = coder.encode(residual, mu, hyper_index)
    if refine:
        meter.advance(ENTROPY_CODING * positions)
        # Refinement keeps the parameters of the analysis transform's own symbols; the
        # coder then derives them from the refined symbols, as the decoder will.
        refinement = meter.part(REFINEMENT * planned_evaluations(*residual.shape[-2:], refine))
        refined = refine_residuals(
            model, pixels, residual - latent.mean_shift, latent.mu, latent.scale_index, quality, refine,
            progress=refinement if meter.active else None,
        )
        latent = coder.encode(refined + latent.mean_shift, mu, hyper_index)
    z_channel = torch.arange(z_symbols.shape[1])[None, :, None, None].expand_as(z_symbols)
    try:
        z_stream = encode_symbols(z_symbols.numpy(), z_channel.numpy(), model.z_tables)
        y_stream = coder.compress(latent)
    except SymbolRangeError as error:
        raise ImageError(f"cannot code this image: {error}") from None
    header = Header(
        model_id=model.model_id,
        color_mode={name: code for code, name in COLOR_MODES.items()}[mode],
        quality=quality,
        width=width,
        height=height,
        fingerprint=model.fingerprint,
        z_length=len(z_stream),
        y_length=len(y_stream),
    )
    latents = Latents(header=header, z=z_symbols, y=latent.symbols, mu=latent.mu, scale_index=latent.scale_index)
    return Container(header, z_stream, y_stream).to_bytes(), latents


def _resolve_model(model: "Union[CodecModel, str, os.PathLike, None]") -> CodecModel:
    """The weights an API call names: None (the shipped ones), a loaded model, or a path."""
    if model is None:
        return load_model()
    if isinstance(model, CodecModel):
        return model
    if isinstance(model, (str, os.PathLike)):
        return load_model(os.fspath(model))
    raise TypeError(f"model must be a CodecModel (ugcodec.load_model()), a weights file's path or None, "
                    f"not {type(model).__name__}")


def encode(
    image: ImageSource,
    quality: int = DEFAULT_QUALITY,
    model: "Union[CodecModel, str, os.PathLike, None]" = None,
    progress: Progress = False,
    refine: int = 0,
    metadata: bool = True,
    max_pixels: Optional[int] = MAX_PIXELS,
    first_frame: bool = False,
    threads: Optional[int] = None,
    precision: str = DEFAULT_PRECISION,
) -> bytes:
    """Compresses an image to the bytes of a .ugc file.

    Args:
        image: a path (str or ``os.PathLike``), the bytes of an image file (bytes,
            bytearray, memoryview), a binary file object, a PIL image, a uint8 numpy
            array ``(H, W)`` / ``(H, W, 3)``, or a uint8 torch tensor ``(C, H, W)``
            (see :func:`ugcodec.image_io.load_image` for the modes it converts).
        quality: level from 1 (smallest file) to the model's number of levels.
        model: weights to use: a loaded model, a weights file's path, or None (the
            shipped ones).
        progress: ``True`` shows a progress bar on stderr (on terminals); a callable is
            called as ``progress(done, total)`` with units of work that follow the real
            work from reading to entropy coding, refinement steps included
            (:mod:`ugcodec.progress`); ``done`` reaches ``total`` only at the end.
        refine: encoder effort: gradient steps spent per 512-pixel tile choosing the
            latent symbols, then a greedy rate-distortion rounding of them
            (:mod:`ugcodec.refinement`), which never ends costlier than the plain
            symbols but makes encoding much slower (benchmarks/README.md measures
            both). 0 (default) is the plain, fast analysis transform. Any value
            makes a standard file.
        metadata: keep the image's ICC profile, EXIF and XMP (:mod:`ugcodec.metadata`;
            the EXIF orientation is applied to the pixels and removed from the tags).
            ``False`` stores none. An image without metadata gives the same bytes
            either way.
        max_pixels: refuse images of more pixels (None: no limit); a file's size is
            checked from its header, before its pixels are decoded.
        first_frame: encode the first frame of an animation or multi-page file
            (otherwise refused).
        threads: torch threads for this call (None: torch's current setting, which
            ``torch.set_num_threads`` changes for the whole process).
        precision: ``"float32"``, ``"bfloat16"`` (most of g_a's convolutions in
            bfloat16: faster on CPUs with AMX, slower elsewhere) or ``"auto"``
            (bfloat16 where the CPU has AMX); see :mod:`ugcodec.precision`.

    Returns:
        the .ugc file's bytes; encoding the same image twice gives the same bytes
        on the same machine (and thread count, with ``refine`` > 0); with
        ``precision="float32"`` and no refinement, on any machine.

    Raises:
        TypeError: ``image`` or ``model`` is none of the accepted types.
        ImageError: the image cannot be read or coded (TooManyPixelsError above
            ``max_pixels``).
        UgcError: the weights file cannot be loaded.
        ValueError: quality, refine, threads or precision out of range.
    """
    resolve_precision(precision)
    with torch_threads(threads):
        return _encode(image, quality, model, progress, refine, metadata, max_pixels, first_frame, precision)


def _encode(image, quality, model, progress, refine, metadata, max_pixels, first_frame, precision) -> bytes:
    """:func:`encode` with its thread count set."""
    if hasattr(image, "read"):  # a file object: read once, for the pixels and the metadata
        image = image.read()
    if isinstance(image, (bytearray, memoryview)):
        image = bytes(image)
    meter = Meter(progress, "encoding")
    try:
        data = _encode_latents(image, quality, model, meter, refine, max_pixels, first_frame, precision)[0]
        stored = Metadata.from_source(image) if metadata else Metadata()
        data = attach_metadata(data, stored) if stored else data
        meter.finish()
        return data
    finally:
        meter.close()


def read_header(data: "FileSource", max_pixels: Optional[int] = MAX_PIXELS) -> Header:
    """Parses and verifies a whole .ugc file and returns its header.

    Args:
        data: the file's bytes, its path or a binary file object (as :func:`decode`).
        max_pixels: refuse what :func:`decode` with this limit would refuse.

    Raises:
        TypeError: ``data`` is none of the accepted types.
        FormatError: the bytes are not a valid .ugc file (TooManyPixelsError above
            ``max_pixels``).
    """
    return read_container(data, max_pixels).header


def check_model(model: CodecModel, header: Header) -> None:
    """Checks that ``model`` can decode a file with ``header``.

    Raises:
        ModelMismatchError: another model id or other weights (fingerprint).
        FormatError: a quality level the weights do not have.
    """
    check_weights(header, model.summary)


@torch.inference_mode()
def parse_latents(data: "FileSource", model: Optional[CodecModel] = None, max_pixels: Optional[int] = MAX_PIXELS) -> Latents:
    """Parses a .ugc file down to its exact latent symbols (no float maths on pixels).

    Args:
        data: the file's bytes, its path or a binary file object (as :func:`decode`).

    Raises:
        FormatError: malformed file (TooManyPixelsError above ``max_pixels``);
        ModelMismatchError: made by other weights.
    """
    return _parse(read_container(data, max_pixels), _resolve_model(model))


@torch.inference_mode()
def _parse(container: Container, model: CodecModel, meter: Optional[Meter] = None) -> Latents:
    """The symbols of a read container (``meter`` advances ``HYPER`` then ``PARSING``
    units per latent position)."""
    header = container.header
    check_model(model, header)
    config = model.config
    z_shape = (1, config.N, _padded(header.height) // _STRIDE, _padded(header.width) // _STRIDE)
    z_channel = np.broadcast_to(np.arange(config.N)[None, :, None, None], z_shape)
    z = torch.from_numpy(decode_symbols(container.z_stream, z_channel, model.z_tables))
    mu, hyper_index = hyper_parameters(model.hyper_synthesis, z, model.gain(header.quality), model.thresholds)
    positions = int(np.prod(_latent_grid(header.height, header.width)))
    if meter is not None:
        meter.advance(HYPER * positions)
    latent = model.coder_for(header.model_id).decompress(container.y_stream, mu, hyper_index)
    if meter is not None:
        meter.advance(PARSING * positions)
    return Latents(
        header=header, z=z, y=latent.symbols, mu=latent.mu, scale_index=latent.scale_index, metadata=container.metadata
    )


def decode_pixels(
    latents: Latents,
    preference: Preference = "human",
    model: Optional[CodecModel] = None,
    progress: Progress = False,
    precision: str = DEFAULT_PRECISION,
) -> np.ndarray:
    """Synthesises uint8 ``(H, W, 3)`` pixels from parsed latents for a preference.

    ``progress`` and ``precision``: as :func:`decode`'s, for the synthesis alone.

    Raises:
        ValueError: unknown preference or precision.
    """
    beta = preference_to_beta(preference)
    resolve_precision(precision)
    model = _resolve_model(model)
    meter = Meter(progress, "decoding")
    try:
        meter.plan(_synthesis_work(latents.header))
        pixels = _synthesize(latents, beta, model, meter, precision)
        meter.finish()
        return pixels
    finally:
        meter.close()


def _synthesis_work(header: Header) -> int:
    return SYNTHESIS * sum(tile.window_area for tile in synthesis_tiles(*_latent_grid(header.height, header.width)))


@torch.inference_mode()
def _synthesize(
    latents: Latents, beta: float, model: CodecModel, meter: Optional[Meter] = None, precision: str = DEFAULT_PRECISION
) -> np.ndarray:
    """g_s tile by tile (``meter`` advances ``SYNTHESIS`` units per latent of each window)."""
    header = latents.header
    g_s = model.synthesis(precision)
    beta_tensor = torch.tensor([beta])
    pixels = np.empty((header.height, header.width, 3), dtype=np.uint8)
    # Tiles and decodings run the same layers: their temporaries are allocated once.
    with reusing_scratch(model.scratch):
        for tile in synthesis_tiles(latents.y.shape[-2], latents.y.shape[-1]):
            rows, cols = tile.window
            # g_s's input, a window at a time (elementwise: the same numbers as all at once);
            # channels-last: the layout the CPU convolution kernels run in, without reorders.
            window = synthesis_input(model, latents.y[:, :, rows, cols], latents.mu[:, :, rows, cols], header.quality)
            window = window.contiguous(memory_format=torch.channels_last)
            x_hat = g_s(window, beta_tensor)
            # Keep the tile's core (drop the margin) and the part inside the image.
            inside = tile.pixels(header.height, header.width)
            if all(part.stop > part.start for part in inside):
                core = x_hat[(0, slice(None), *tile.pixels_in_window(header.height, header.width))]
                core = core.clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8).permute(1, 2, 0)
                pixels[inside] = core.numpy()
            if meter is not None:
                meter.advance(SYNTHESIS * tile.window_area)
    return pixels


def decode(
    data: "FileSource",
    preference: Preference = "human",
    model: "Union[CodecModel, str, os.PathLike, None]" = None,
    progress: Progress = False,
    max_pixels: Optional[int] = MAX_PIXELS,
    threads: Optional[int] = None,
    precision: str = DEFAULT_PRECISION,
) -> Image.Image:
    """Decompresses a .ugc file.

    Args:
        data: the file's bytes (bytes, bytearray, memoryview), its path (str or
            ``os.PathLike``) or a binary file object; read no further than the header
            declares.
        preference: ``"human"`` (looks right), ``"machine"`` (keeps what vision models
            need) or a number in [0, 1] that blends the two.
        model: weights to use: a loaded model, a weights file's path, or None (the
            shipped ones).
        progress: ``True`` shows a progress bar on stderr (on terminals); a callable is
            called as ``progress(done, total)`` with units of work that follow parsing
            and then the synthesis, tile by tile (:mod:`ugcodec.progress`); ``done``
            reaches ``total`` only at the end.
        max_pixels: refuse files whose image has more pixels (None: no limit), checked
            from the header before anything else is read.
        threads: torch threads for this call (None: torch's current setting). The
            symbols are the same on any count.
        precision: ``"float32"``, ``"bfloat16"`` (most of g_s's convolutions in bfloat16:
            several times faster on CPUs with AMX, much slower elsewhere) or ``"auto"``
            (bfloat16 where the CPU has AMX). The symbols are the same in any; the
            pixels differ by at most 1 (:mod:`ugcodec.precision`).

    Returns:
        a PIL image of the original size, mode ``"L"`` or ``"RGB"`` as encoded; its
        ``info`` holds the file's metadata (``icc_profile``, ``exif``, ``xmp``), if any.

    Raises:
        TypeError: ``data`` or ``model`` is none of the accepted types.
        FormatError: malformed file (TooManyPixelsError above ``max_pixels``);
        ModelMismatchError: made by other weights; UgcError: the path or the weights
        cannot be read; ValueError: unknown preference, threads or precision.
    """
    beta = preference_to_beta(preference)  # fail fast, before any parsing work
    resolve_precision(precision)
    with torch_threads(threads):
        return _decode(data, beta, model, progress, max_pixels, precision)


def _decode(
    data: "FileSource", beta: float, model, progress: Progress, max_pixels: Optional[int], precision: str
) -> Image.Image:
    """:func:`decode` with its thread count set."""
    model = _resolve_model(model)
    meter = Meter(progress, "decoding")
    try:
        container = read_container(data, max_pixels)
        header = container.header
        if meter.active:
            meter.plan((HYPER + PARSING) * int(np.prod(_latent_grid(header.height, header.width)))
                       + _synthesis_work(header))
        latents = _parse(container, model, meter)
        pixels = _synthesize(latents, beta, model, meter, precision)
        image = array_to_image(pixels, header.mode)
        image.info.update(latents.metadata.to_pil_info())
        meter.finish()
        return image
    finally:
        meter.close()
