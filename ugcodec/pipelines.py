"""Decoding .ugc files straight to torch tensors, for training and evaluation pipelines.

No PIL round trip: the decoder's pixels become a ``(C, H, W)`` tensor, uint8 or float in
[0, 1] (``uint8 / 255``, what torchvision's ``ToTensor`` gives for the decoded PNG)::

    >>> import os, tempfile, numpy as np, torch, ugcodec
    >>> from torch.utils.data import DataLoader
    >>> from ugcodec.pipelines import decode_tensor, decode_tensors, UgcFolder, UgcHandler
    >>> data = ugcodec.encode(np.full((48, 80, 3), 128, np.uint8), quality=3)
    >>> decode_tensor(data, preference="machine").shape               # float32 (3, H, W)
    torch.Size([3, 48, 80])
    >>> [x.dtype for x in decode_tensors([data, data], dtype=torch.uint8)]   # one model, batched g_s
    [torch.uint8, torch.uint8]
    >>> folder = tempfile.mkdtemp()
    >>> with open(os.path.join(folder, "a.ugc"), "wb") as handle:
    ...     _ = handle.write(data)
    >>> next(iter(DataLoader(UgcFolder(folder), batch_size=1))).shape     # a folder of .ugc files
    torch.Size([1, 3, 48, 80])
    >>> UgcHandler("machine")("a.ugc", data).shape                     # for .ugc members of tar shards
    torch.Size([3, 48, 80])

Channels: ``mode=None`` keeps what the file holds (3 for RGB, 1 for grayscale files);
``mode="RGB"`` gives 3 channels for every file (gray replicated, like ``convert("RGB")``),
``mode="L"`` one channel (Pillow's ``convert("L")`` luma for RGB files). Pipelines that
batch images of both kinds should ask for one.

Decoding runs on the CPU with the loaded weights, one thread per DataLoader worker as
PyTorch sets it; ``device`` is where the result is put.
"""
from __future__ import annotations

import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from .codec import Latents, Preference, decode_pixels, parse_latents, synthesis_input
from .codec import preference_to_beta
from .errors import FormatError
from .precision import DEFAULT_PRECISION, resolve_precision
from .tiling import synthesis_tiles
from .weights import CodecModel, load_model

__all__ = ["decode_tensor", "decode_tensors", "UgcFolder", "UgcHandler", "EXTENSION"]

EXTENSION = ".ugc"
_MODES = (None, "RGB", "L")
Device = Union[str, torch.device, None]


def _check(dtype: torch.dtype, mode: Optional[str]) -> None:
    if mode not in _MODES:
        raise ValueError(f"mode must be None, 'RGB' or 'L', not {mode!r}")
    if dtype != torch.uint8 and not dtype.is_floating_point:
        raise ValueError(f"dtype must be torch.uint8 or a floating-point type, not {dtype}")


def _to_tensor(pixels: np.ndarray, stored_mode: str, mode: Optional[str], dtype: torch.dtype, device: Device) -> Tensor:
    """uint8 ``(H, W, 3)`` decoder pixels of a file of ``stored_mode`` to ``(C, H, W)``."""
    rgb = torch.from_numpy(pixels).permute(2, 0, 1)
    target = mode or stored_mode
    wide = rgb.to(torch.int32)
    if stored_mode == "L":
        # The grayscale decoding of bitstream_spec.md §9: (R + G + B + 1) // 3.
        gray = ((wide.sum(0, keepdim=True) + 1) // 3).to(torch.uint8)
        out = gray if target == "L" else gray.expand(3, -1, -1)
    elif target == "L":
        # Pillow's convert("L"): ITU-R 601-2 luma in 16-bit fixed point.
        weights = torch.tensor([19595, 38470, 7471], dtype=torch.int32)[:, None, None]
        out = (((wide * weights).sum(0, keepdim=True) + 0x8000) >> 16).to(torch.uint8)
    else:
        out = rgb
    out = out.contiguous()
    if device is not None:
        out = out.to(device)  # as uint8: a quarter of the bytes of float32 to move
    return out if dtype == torch.uint8 else out.to(dtype).div_(255.0)


def decode_tensor(
    data: bytes,
    preference: Preference = "human",
    *,
    device: Device = None,
    dtype: torch.dtype = torch.float32,
    mode: Optional[str] = None,
    model: Optional[CodecModel] = None,
    precision: str = DEFAULT_PRECISION,
) -> Tensor:
    """Decodes one .ugc file to a ``(C, H, W)`` tensor.

    Args:
        data: the file's bytes.
        preference: ``"human"``, ``"machine"`` or a blend in [0, 1].
        device: where to put the tensor (default: CPU).
        dtype: ``torch.uint8`` (0..255) or a float type (0..1, ``uint8 / 255``).
        mode: ``None`` (as stored), ``"RGB"`` or ``"L"`` (see the module docstring).
        model: weights (default: the shipped ones).
        precision: g_s's precision, as for :func:`ugcodec.decode`.

    Returns:
        the tensor; its pixels are those of :func:`ugcodec.decode`.

    Raises:
        FormatError: malformed file; ModelMismatchError: made by other weights;
        ValueError: unknown preference, mode, dtype or precision.
    """
    preference_to_beta(preference)
    _check(dtype, mode)
    resolve_precision(precision)
    model = model or load_model()
    latents = parse_latents(data, model)
    pixels = decode_pixels(latents, preference, model, precision=precision)
    return _to_tensor(pixels, latents.header.mode, mode, dtype, device)


def _single_tile(latents: Latents) -> bool:
    """Whether the decoder synthesises these latents in one tile (so files of one shape
    can share a batched g_s call and give the decoder's pixels)."""
    tiles = synthesis_tiles(*latents.y.shape[-2:])
    next(tiles)
    return next(tiles, None) is None


@torch.inference_mode()
def decode_tensors(
    files: Sequence[bytes],
    preference: Preference = "human",
    *,
    device: Device = None,
    dtype: torch.dtype = torch.float32,
    mode: Optional[str] = None,
    model: Optional[CodecModel] = None,
    batch_size: int = 16,
    precision: str = DEFAULT_PRECISION,
) -> List[Tensor]:
    """Decodes many .ugc files made by one model, running the synthesis transform on
    batches of files whose latents have the same shape (images the decoder synthesises in
    one tile; larger ones are decoded one by one, tile by tile).

    Args:
        files: the files' bytes.
        batch_size: most files per synthesis call.
        preference, device, dtype, mode, model, precision: as for :func:`decode_tensor`.

    Returns:
        one tensor per file, in order (stack them with ``torch.stack`` when their sizes agree).
        Pixels equal :func:`decode_tensor`'s up to the float tolerance of
        bitstream_spec.md §11 (a batched convolution may round differently).

    Raises:
        FormatError: a malformed file (the message names its index); ModelMismatchError;
        ValueError: bad preference, mode, dtype, batch size or precision.
    """
    beta = preference_to_beta(preference)
    _check(dtype, mode)
    resolve_precision(precision)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    model = model or load_model()
    parsed: List[Latents] = []
    for index, data in enumerate(files):
        try:
            parsed.append(parse_latents(data, model))
        except FormatError as error:
            raise type(error)(f"file {index}: {error}") from None
    results: List[Optional[Tensor]] = [None] * len(parsed)
    groups: Dict[Tuple[int, ...], List[int]] = {}
    for index, latents in enumerate(parsed):
        if _single_tile(latents):
            groups.setdefault(tuple(latents.y.shape), []).append(index)
        else:
            pixels = decode_pixels(latents, beta, model, precision=precision)
            results[index] = _to_tensor(pixels, latents.header.mode, mode, dtype, device)
    beta_tensor = torch.tensor([beta])
    g_s = model.synthesis(precision)
    for indexes in groups.values():
        for start in range(0, len(indexes), batch_size):
            chunk = indexes[start : start + batch_size]
            y_hat = torch.cat([synthesis_input(model, parsed[i].y, parsed[i].mu, parsed[i].header.quality) for i in chunk])
            x_hat = g_s(y_hat, beta_tensor)
            batch = x_hat.clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8).permute(0, 2, 3, 1)
            for row, index in enumerate(chunk):
                header = parsed[index].header
                pixels = batch[row, : header.height, : header.width].numpy()
                results[index] = _to_tensor(np.ascontiguousarray(pixels), header.mode, mode, dtype, device)
    return results  # type: ignore[return-value]


def _find(root: str, recursive: bool) -> List[str]:
    if not os.path.isdir(root):
        raise FileNotFoundError(f"no such folder: {root}")
    if not recursive:
        names = [os.path.join(root, name) for name in os.listdir(root)]
    else:
        names = [os.path.join(folder, name) for folder, _, files in os.walk(root) for name in files]
    return sorted(path for path in names if path.lower().endswith(EXTENSION) and os.path.isfile(path))


class UgcFolder(torch.utils.data.Dataset):
    """The .ugc files of a folder (sorted paths), decoded to tensors.

    Args:
        root: the folder.
        preference, dtype, mode: as for :func:`decode_tensor` (pick ``mode`` to batch
            grayscale and RGB files together).
        transform: applied to each tensor (e.g. torchvision transforms v2).
        weights: weights file (default: the shipped model); loaded once per worker process.
        recursive: include subfolders.

    ``dataset[i]`` is the tensor of ``dataset.paths[i]``; a broken file raises
    :class:`ugcodec.FormatError` naming it.

    Raises:
        FileNotFoundError: ``root`` is not a folder. ValueError: bad preference, mode, dtype.
    """

    def __init__(
        self,
        root: Union[str, os.PathLike],
        preference: Preference = "human",
        dtype: torch.dtype = torch.float32,
        mode: Optional[str] = "RGB",
        transform: Optional[Callable[[Tensor], object]] = None,
        weights: Optional[str] = None,
        recursive: bool = True,
    ) -> None:
        preference_to_beta(preference)
        _check(dtype, mode)
        self.paths = _find(os.fspath(root), recursive)
        self.preference, self.dtype, self.mode = preference, dtype, mode
        self.transform, self.weights = transform, weights

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        path = self.paths[index]
        with open(path, "rb") as handle:
            data = handle.read()
        try:
            tensor = decode_tensor(data, self.preference, dtype=self.dtype, mode=self.mode,
                                   model=load_model(self.weights))
        except FormatError as error:
            raise type(error)(f"{path}: {error}") from None
        return self.transform(tensor) if self.transform is not None else tensor


class UgcHandler:
    """A WebDataset-style decoder handler: ``handler(key, data)`` is the tensor of a
    ``.ugc`` member (``key`` ``"ugc"`` or ending in ``".ugc"``), ``None`` for other keys
    so that the next handler gets them. Picklable, so DataLoader workers can use it::

        dataset = wds.WebDataset(urls).decode(UgcHandler("machine", mode="RGB"), "torchrgb")

    Args: as :class:`UgcFolder` (``preference``, ``dtype``, ``mode``, ``weights``).
    Raises (when called): :class:`ugcodec.FormatError` for a broken member.
    """

    def __init__(
        self,
        preference: Preference = "human",
        dtype: torch.dtype = torch.float32,
        mode: Optional[str] = "RGB",
        weights: Optional[str] = None,
    ) -> None:
        preference_to_beta(preference)
        _check(dtype, mode)
        self.preference, self.dtype, self.mode, self.weights = preference, dtype, mode, weights

    def __call__(self, key: str, data: bytes) -> Optional[Tensor]:
        extension = key.lower().rsplit(".", 1)[-1]
        if extension != EXTENSION[1:]:
            return None
        return decode_tensor(data, self.preference, dtype=self.dtype, mode=self.mode, model=load_model(self.weights))
