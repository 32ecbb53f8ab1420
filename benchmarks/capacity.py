"""Capacity benchmark: how good can the human decoding get at all, rate aside?

For every quality level it compares, averaged over the evaluation photos:

- **coded**: the .ugc file decoded for humans (bpp and PSNR, as ``rd.py`` measures them);
- **unrounded**: g_s of the analysis latent scaled by the level's gain and inverse gain,
  *without rounding* (``g_s(g_a(x) * gain * inverse_gain)``): what the transforms give
  with an infinitely fine quantiser. Rounding adds error, so the coded PSNR stays below it
  in practice, whatever the entropy model learns; only better transforms raise it;
- **WebP**: WebP's PSNR at the coded bpp (linear in log-bpp between its sweep's points);
- **channels in use**: how many of the M latent channels carry a nonzero symbol at 1 %
  or more of their positions (pooled over the photos). A channel below that is all but
  silent: more channels would not help while these stay unused.

A level whose unrounded PSNR is below WebP's at the coded bpp cannot beat WebP there by
training the entropy model or the quantiser: the transforms are the limit.

Writes ``capacity.json`` and ``capacity.md`` under ``--out``.

    python -m benchmarks.capacity --threads 2 --out benchmarks/results
"""
from __future__ import annotations

import argparse
import time
from typing import Dict, Optional, Sequence

import numpy as np

from . import bench_common as common
from .photos import entries


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Capacity of the transforms: coded vs unrounded PSNR vs WebP.")
    common.add_photo_arguments(parser)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    return parser.parse_args(argv)


def unrounded_reconstruction(model, image: np.ndarray, quality: int) -> np.ndarray:
    """The human decoding of ``image`` at ``quality`` with the latent left unrounded.

    Args:
        model: a :class:`ugcodec.weights.CodecModel`.
        image: uint8 ``(H, W, 3)``.
        quality: level from 1 to ``model.num_qualities``.

    Returns:
        uint8 ``(H, W, 3)``: ``g_s(g_a(x) * gain * inverse_gain, beta=0)``, padded by edge
        replication to a multiple of 64 as the encoder pads, cropped back.
    """
    import torch

    from ugcodec.integer_net import GAIN_BITS

    height, width = image.shape[:2]
    stride = model.network.stride
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div(255.0)
    x = torch.nn.functional.pad(x, (0, -width % stride, 0, -height % stride), mode="replicate")
    gain = model.gains[quality - 1].to(torch.float64) / float(1 << GAIN_BITS)
    scale = (gain * model.inverse_gains[quality - 1].to(torch.float64)).float()[None, :, None, None]
    with torch.inference_mode():
        x_hat = model.network.g_s(model.network.g_a(x) * scale, torch.zeros(1))
    pixels = x_hat[0, :, :height, :width].clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    return pixels.permute(1, 2, 0).numpy()


#: A channel is in use where at least this fraction of its symbols is nonzero.
IN_USE = 0.01


def coded_roundtrip(model, image: np.ndarray, quality: int) -> "tuple[int, np.ndarray, np.ndarray, int]":
    """Encodes ``image`` at ``quality`` and decodes the coded symbols for humans (parsing
    is exact, so they are the file's).

    Returns:
        ``(bytes, pixels, nonzero, positions)``: the file's size, the uint8 decoding, how
        many symbols of each latent channel are nonzero (int64 ``(M,)``) and the number of
        symbol positions per channel.
    """
    from ugcodec.codec import decode_pixels, encode_latents

    data, latents = encode_latents(image, quality, model, precision="float32")
    nonzero = (latents.y[0] != 0).flatten(1).sum(dim=1).numpy()
    return len(data), decode_pixels(latents, "human", model, precision="float32"), nonzero, latents.y[0, 0].numel()


def run(args: argparse.Namespace) -> dict:
    threads, photos, model = common.photos_and_model(args)
    webp = common.PILLOW_CODECS["webp"]
    levels = range(1, model.num_qualities + 1)
    sums: Dict[str, np.ndarray] = {
        "bpp": np.zeros(len(levels)), "coded": np.zeros(len(levels)), "unrounded": np.zeros(len(levels)),
        "webp_bpp": np.zeros(len(webp.settings)), "webp_psnr": np.zeros(len(webp.settings)),
    }
    nonzero = np.zeros((len(levels), model.config.M))
    positions = np.zeros(len(levels))  # symbol positions per channel, summed over the photos
    started = time.perf_counter()
    for name, image in photos:
        pixels = image.shape[0] * image.shape[1]
        for index, quality in enumerate(levels):
            size, decoded, counts, per_channel = coded_roundtrip(model, image, quality)
            sums["bpp"][index] += size * 8.0 / pixels
            sums["coded"][index] += common.psnr(image, decoded)
            nonzero[index] += counts
            positions[index] += per_channel
            sums["unrounded"][index] += common.psnr(image, unrounded_reconstruction(model, image, quality))
        for index, setting in enumerate(webp.settings):
            size, decoded = webp.roundtrip(image, setting)
            sums["webp_bpp"][index] += size * 8.0 / pixels
            sums["webp_psnr"][index] += common.psnr(image, decoded)
        print(f"  {name}: done ({time.perf_counter() - started:.1f} s so far)")
    mean = {key: value / len(photos) for key, value in sums.items()}
    webp_curve = [{"setting": s, "bpp": float(b), "psnr": float(p)}
                  for s, b, p in zip(webp.settings, mean["webp_bpp"], mean["webp_psnr"])]
    rows = []
    for index, quality in enumerate(levels):
        bpp = float(mean["bpp"][index])
        rows.append({
            "quality": quality, "bpp": bpp, "coded_psnr": float(mean["coded"][index]),
            "unrounded_psnr": float(mean["unrounded"][index]), "webp_psnr": common.psnr_at(webp_curve, bpp),
            "channels_in_use": int(np.sum(nonzero[index] >= IN_USE * positions[index])),
            "nonzero_fraction": float(nonzero[index].sum() / (positions[index] * model.config.M)),
        })
    return {
        **common.report_head("capacity", threads, model),
        "photo_set": args.photo_set,
        "photos": entries(photos),
        "max_size": args.max_size,
        "latent_channels": model.config.M,
        "levels": rows,
        "webp": webp_curve,
        "seconds": time.perf_counter() - started,
    }


def report(result: dict) -> str:
    def db(value: Optional[float]) -> str:
        return "—" if value is None else f"{value:.2f}"

    def margin(value: Optional[float], reference: float) -> str:
        return "—" if value is None else f"{reference - value:+.2f}"

    rows = [[f"q{r['quality']}", f"{r['bpp']:.4f}", db(r["coded_psnr"]), db(r["unrounded_psnr"]), db(r["webp_psnr"]),
             margin(r["webp_psnr"], r["coded_psnr"]), margin(r["webp_psnr"], r["unrounded_psnr"]),
             f"{r['channels_in_use']} of {result['latent_channels']}", f"{r['nonzero_fraction']:.3f}"]
            for r in result["levels"]]
    lines = [
        f"Photos: {', '.join(p['name'] for p in result['photos'])} ({result['photo_set']} set)",
        f"Model: {result['model']}",
        "",
        "Averages over the photos. Unrounded: g_s(g_a(x) * gain * inverse_gain), no quantisation: the coded PSNR's "
        "ceiling at that level in practice. WebP: its PSNR at the coded bpp (— outside its sweep). "
        f"Channels in use: latent channels with a nonzero symbol at {IN_USE:.0%} or more of their positions; "
        "nonzero: the fraction of all latent symbols that are nonzero.",
        "",
        common.markdown_table(
            ["level", "bpp", "coded PSNR", "unrounded PSNR", "WebP PSNR", "coded − WebP", "unrounded − WebP",
             "channels in use", "nonzero"], rows, "lrrrrrrrr"
        ),
    ]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> None:
    common.run_and_save("capacity", parse_args(argv), run, report)


if __name__ == "__main__":
    main()
