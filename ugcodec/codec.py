"""Encode images to .ugc bytes and decode them for humans or machines.

Parsing is exact, pixels are tolerant: the symbols of z and y depend only on integer
tables and the integer-exact hyper-synthesis, so they are identical on any machine and
thread count; the float g_s that turns y into pixels may differ in the last bit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .container import COLOR_MODES, Container, Header
from .entropy_coding import SymbolRangeError, decode_symbols, encode_symbols, join_streams, split_streams
from .errors import FormatError, ImageError, ModelMismatchError
from .image_io import ImageSource, array_to_image, load_image
from .integer_net import GAIN_BITS, entropy_parameters
from .models import preference_to_beta
from .refinement import check_steps, refine_residuals
from .tiling import ANALYSIS_MARGIN, ANALYSIS_TILE, LATENT_STRIDE, synthesis_tiles, tiles
from .weights import CodecModel, load_model

__all__ = [
    "DEFAULT_QUALITY",
    "Latents",
    "encode",
    "encode_latents",
    "decode",
    "decode_pixels",
    "latent_residuals",
    "read_header",
    "parse_latents",
    "synthesis_input",
]

#: Quality used when none is given (levels are numbered from 1, lowest rate first).
DEFAULT_QUALITY = 3
#: Largest image (in pixels) coded or decoded; bounds the memory a file can make us take.
MAX_PIXELS = 50_000_000
_STRIDE = 64

Preference = Union[str, float]


@dataclass
class Latents:
    """What the parser recovers from a file, before any float maths.

    Attributes:
        header: the parsed header.
        z: int64 ``(1, N, h, w)`` hyper-latent symbols.
        y: int64 ``(1, M, 4h, 4w)`` latent symbols (``round(y * gain - mu)``).
        mu: float64 means of the gained latent (exact; for model id 3 with the channel
            context's corrections, bitstream_spec.md §8.3).
        scale_index: int64 coding-table index of every y symbol (for model ids 2 and 3,
            the channel context's).
    """

    header: Header
    z: Tensor
    y: Tensor
    mu: Tensor
    scale_index: Tensor


def _padded(size: int) -> int:
    return -(-size // _STRIDE) * _STRIDE


def _analyze(network, pixels: np.ndarray, progress: bool = False) -> Tensor:
    """g_a of a uint8 ``(H, W, 3)`` image, padded to a multiple of 64, tile by tile."""
    height, width = pixels.shape[:2]
    padded_height, padded_width = _padded(height), _padded(width)
    latent_height, latent_width = padded_height // LATENT_STRIDE, padded_width // LATENT_STRIDE
    image = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    y = None
    for rows, cols, (top, left) in tiles(
        latent_height, latent_width, ANALYSIS_TILE, ANALYSIS_MARGIN, "encoding" if progress else None
    ):
        if rows.stop * LATENT_STRIDE <= height and cols.stop * LATENT_STRIDE <= width:  # no padding: a slice
            x = image[:, :, rows.start * LATENT_STRIDE : rows.stop * LATENT_STRIDE,
                      cols.start * LATENT_STRIDE : cols.stop * LATENT_STRIDE].float().div_(255.0)
        else:
            # Edge replication (clamped indexes) keeps the padding free of artificial edges.
            row_index = torch.arange(rows.start * LATENT_STRIDE, rows.stop * LATENT_STRIDE).clamp_(max=height - 1)
            col_index = torch.arange(cols.start * LATENT_STRIDE, cols.stop * LATENT_STRIDE).clamp_(max=width - 1)
            x = image[:, :, row_index][:, :, :, col_index].float().div_(255.0)
        out = network.g_a(x)
        if y is None:
            y = out.new_empty((1, out.shape[1], latent_height, latent_width))
        core_height = min(ANALYSIS_TILE, latent_height - top)
        core_width = min(ANALYSIS_TILE, latent_width - left)
        y[:, :, top : top + core_height, left : left + core_width] = out[
            :, :, top - rows.start : top - rows.start + core_height, left - cols.start : left - cols.start + core_width
        ]
    return y


def _check_quality(model: CodecModel, quality: int) -> int:
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)):
        raise ValueError(f"quality must be an integer, not {quality!r}")
    if not 1 <= int(quality) <= model.num_qualities:
        raise ValueError(f"quality must be between 1 and {model.num_qualities}, not {quality}")
    return int(quality)


def _gain(model: CodecModel, quality: int) -> Tensor:
    return model.gains[quality - 1]


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
    means, scales = model.hyper_synthesis(z_symbols)
    gain = _gain(model, quality)
    mu, scale_index = entropy_parameters(means, scales, gain, model.thresholds)
    gain_float = gain.to(y.device, torch.float64)[None, :, None, None] / float(1 << GAIN_BITS)
    return y.to(torch.float64) * gain_float - mu, mu, scale_index


def synthesis_input(model: CodecModel, y_symbols: Tensor, mu: Tensor, quality: int) -> Tensor:
    """What g_s decodes (bitstream_spec.md §9): ``float32(y + mu) * inverse_gain``.

    Args:
        model: the weights; y_symbols: the latent symbols (any dtype holding integers);
        mu: their exact float64 means; quality: level from 1 to ``model.num_qualities``.

    Returns:
        float32 tensor of the symbols' shape.
    """
    y_hat_scaled = (y_symbols.to(torch.float64) + mu).to(torch.float32)
    return y_hat_scaled * model.inverse_gains[quality - 1].to(y_hat_scaled.device)[None, :, None, None]


@torch.inference_mode()
def encode_latents(
    image: ImageSource,
    quality: int = DEFAULT_QUALITY,
    model: Optional[CodecModel] = None,
    progress: bool = False,
    refine: int = 0,
) -> "tuple[bytes, Latents]":
    """Like :func:`encode`, and also returns the symbols it coded (for tests and tools)."""
    model = model or load_model()
    quality = _check_quality(model, quality)
    refine = check_steps(refine)
    pixels, mode = load_image(image)
    height, width = pixels.shape[:2]
    if height * width > MAX_PIXELS:
        raise ImageError(f"image has {height * width} pixels; the limit is {MAX_PIXELS}")
    network = model.network
    y = _analyze(network, pixels, progress)
    z_symbols = torch.round(network.h_a(y)).to(torch.int64)
    residual, mu, scale_index = latent_residuals(model, y, z_symbols, quality)
    residual = refine_residuals(model, pixels, residual, mu, scale_index, quality, refine, progress=progress)
    context = model.channel_context
    if context is None:
        y_symbols = torch.round(residual).to(torch.int64)
    else:
        y_symbols, mean_shift, scale_index = context.encode(scale_index, residual)
        mu = mu + mean_shift
    z_channel = torch.arange(z_symbols.shape[1])[None, :, None, None].expand_as(z_symbols)
    try:
        z_stream = encode_symbols(z_symbols.numpy(), z_channel.numpy(), model.z_tables)
        if context is None:
            y_stream = encode_symbols(y_symbols.numpy(), scale_index.numpy(), model.y_tables)
        else:
            y_stream = _encode_slices(model, y_symbols, scale_index)
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
    latents = Latents(header=header, z=z_symbols, y=y_symbols, mu=mu, scale_index=scale_index)
    return Container(header, z_stream, y_stream).to_bytes(), latents


def encode(
    image: ImageSource,
    quality: int = DEFAULT_QUALITY,
    model: Optional[CodecModel] = None,
    progress: bool = False,
    refine: int = 0,
) -> bytes:
    """Compresses an image to the bytes of a .ugc file.

    Args:
        image: path, image-file bytes, PIL image or uint8 array (see
            :func:`ugcodec.image_io.load_image`).
        quality: level from 1 (smallest file) to the model's number of levels.
        model: weights to use (default: the shipped ones).
        progress: show a progress bar on stderr for large images (and for refinement).
        refine: encoder effort: gradient steps spent per 512-pixel tile choosing the
            latent symbols, then a greedy rate-distortion rounding of them
            (:mod:`ugcodec.refinement`), which never ends costlier than the plain
            symbols. 1 step gives most of the gain, 20 the most (README,
            "Results"); encoding then takes tens of seconds per photo instead of
            under one. 0 (default) is the plain, fast analysis transform. Any value
            makes a standard file.

    Returns:
        the .ugc file's bytes; encoding the same image twice gives the same bytes
        (with ``refine`` > 0, on the same machine and thread count).

    Raises:
        ImageError: the image cannot be read or coded.
        ValueError: quality or refine out of range.
    """
    return encode_latents(image, quality, model, progress, refine)[0]


def read_header(data: bytes) -> Header:
    """Parses and verifies a whole .ugc file and returns its header.

    Raises:
        FormatError: the bytes are not a valid .ugc file.
    """
    return Container.from_bytes(data).header


def _check_model(model: CodecModel, header: Header) -> None:
    if header.model_id != model.model_id:
        raise ModelMismatchError(f"file needs model id {header.model_id}; the loaded weights are model {model.model_id}")
    if header.fingerprint != model.fingerprint:
        raise ModelMismatchError(
            f"file was made with weights {header.fingerprint.hex()}, but the loaded weights are "
            f"{model.fingerprint.hex()}: decode it with the weights that made it"
        )
    if header.quality > model.num_qualities:
        raise FormatError(f"quality {header.quality} is not a level of this model")


@torch.inference_mode()
def parse_latents(data: bytes, model: Optional[CodecModel] = None) -> Latents:
    """Parses a .ugc file down to its exact latent symbols (no float maths on pixels).

    Raises:
        FormatError: malformed file; ModelMismatchError: made by other weights.
    """
    model = model or load_model()
    container = Container.from_bytes(data)
    header = container.header
    _check_model(model, header)
    if header.width * header.height > MAX_PIXELS:
        raise FormatError(f"file claims {header.width}x{header.height} pixels; the limit is {MAX_PIXELS}")
    config = model.config
    z_shape = (1, config.N, _padded(header.height) // _STRIDE, _padded(header.width) // _STRIDE)
    z_channel = np.broadcast_to(np.arange(config.N)[None, :, None, None], z_shape)
    z = torch.from_numpy(decode_symbols(container.z_stream, z_channel, model.z_tables))
    means, scales = model.hyper_synthesis(z)
    mu, scale_index = entropy_parameters(means, scales, _gain(model, header.quality), model.thresholds)
    if model.channel_context is None:
        y = torch.from_numpy(decode_symbols(container.y_stream, scale_index.numpy(), model.y_tables))
    else:
        streams = split_streams(container.y_stream, model.channel_context.slices)
        y, mean_shift, scale_index = model.channel_context.decode(
            scale_index, lambda k, index: torch.from_numpy(decode_symbols(streams[k], index.numpy(), model.y_tables))
        )
        mu = mu + mean_shift
    return Latents(header=header, z=z, y=y, mu=mu, scale_index=scale_index)


def _encode_slices(model: CodecModel, y_symbols: Tensor, table_index: Tensor) -> bytes:
    """The y section of model ids 2 and 3: one stream per channel slice (bitstream_spec.md §8.3);
    the decoder splits it with :func:`split_streams` and decodes it with the context."""
    channels = model.channel_context.slice_channels(y_symbols.shape[1])
    streams = [
        encode_symbols(y_symbols[:, k : k + channels].numpy(), table_index[:, k : k + channels].numpy(), model.y_tables)
        for k in range(0, y_symbols.shape[1], channels)
    ]
    return join_streams(streams)


@torch.inference_mode()
def decode_pixels(
    latents: Latents, preference: Preference = "human", model: Optional[CodecModel] = None, progress: bool = False
) -> np.ndarray:
    """Synthesises uint8 ``(H, W, 3)`` pixels from parsed latents for a preference."""
    model = model or load_model()
    beta = preference_to_beta(preference)
    header = latents.header
    y_hat = synthesis_input(model, latents.y, latents.mu, header.quality)
    beta_tensor = torch.tensor([beta])
    pixels = np.empty((header.height, header.width, 3), dtype=np.uint8)
    for rows, cols, (top, left), (tile_height, tile_width) in synthesis_tiles(
        y_hat.shape[-2], y_hat.shape[-1], "decoding" if progress else None
    ):
        # channels-last: the layout the CPU convolution kernels run in, without reorders.
        tile = y_hat[:, :, rows, cols].contiguous(memory_format=torch.channels_last)
        x_hat = model.network.g_s(tile, beta_tensor)
        # Keep the tile's core (drop the margin) and the part inside the image.
        out_top, out_left = top * LATENT_STRIDE, left * LATENT_STRIDE
        core_top = (top - rows.start) * LATENT_STRIDE
        core_left = (left - cols.start) * LATENT_STRIDE
        core_height = min(tile_height * LATENT_STRIDE, header.height - out_top)
        core_width = min(tile_width * LATENT_STRIDE, header.width - out_left)
        if core_height <= 0 or core_width <= 0:
            continue
        core = x_hat[0, :, core_top : core_top + core_height, core_left : core_left + core_width]
        core = core.clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8).permute(1, 2, 0)
        pixels[out_top : out_top + core_height, out_left : out_left + core_width] = core.numpy()
    return pixels


def decode(
    data: bytes, preference: Preference = "human", model: Optional[CodecModel] = None, progress: bool = False
) -> Image.Image:
    """Decompresses a .ugc file.

    Args:
        data: the file's bytes.
        preference: ``"human"`` (looks right), ``"machine"`` (keeps what vision models
            need) or a number in [0, 1] that blends the two.
        model: weights to use (default: the shipped ones).
        progress: show a progress bar on stderr for large images.

    Returns:
        a PIL image of the original size, mode ``"L"`` or ``"RGB"`` as encoded.

    Raises:
        FormatError: malformed file; ModelMismatchError: made by other weights;
        ValueError: unknown preference.
    """
    beta = preference_to_beta(preference)  # fail fast, before any parsing work
    model = model or load_model()
    latents = parse_latents(data, model)
    pixels = decode_pixels(latents, beta, model, progress)
    return array_to_image(pixels, latents.header.mode)
