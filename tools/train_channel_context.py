#!/usr/bin/env python3
"""Train a channel context for trained weights and write them as model id 2 or 3.

    python -m tools.train_channel_context --means --out runs/context/weights.pt

The transforms stay frozen (``--weights``, a plain hyperprior, model id 1); only the
entropy parameters of y change (``ugcodec.channel_context``): the coding tables
(model id 2), or with ``--means`` the tables and the means (model id 3). So training
needs no decoder: it runs the analysis of random corpus crops once, keeps their
residuals ``y * gain - mu_hyper`` and hyper-prior table indexes at every quality, and
fits the context to them by minimising their bits (for the means, with additive uniform
noise in place of rounding, as compressai trains). With the transforms frozen, a
better mean changes the pixels only by a different rounding of the same latent, so the
distortion is unchanged on average. At the end it reports, on crops kept out of
training, the bits of the plain tables and of the exported integer context, and writes
the weights (and prints their fingerprint). ``--checkpoint`` makes a long run resumable;
running the same command again continues from it. ``--save-compact PATH`` writes the
checkpoint's context alone, in fp16, to commit: copied to ``--checkpoint`` on another
machine, it resumes the run there (with fresh Adam moments).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Dict, Tuple


import torch
from torch import Tensor

from ugcodec.codec import latent_residuals
from ugcodec.scales import scale_table, symbol_bits
from tools.training import CropSampler
from ugcodec.weights import load_model, read_bundle

from .context_model import ChannelContext, integerize_channel_context
from .export import save_atomically, with_channel_context, write_bundle

Latents = Dict[int, Tuple[Tensor, Tensor]]  # quality -> (float32 residuals, uint8 hyper indexes)


@torch.inference_mode()
def code_crops(model, sampler: CropSampler, count: int, progress: bool = True) -> Latents:
    """Residuals and hyper-prior table indexes of ``count`` random crops at every quality."""
    from tqdm import tqdm

    qualities = range(1, model.num_qualities + 1)
    parts: Dict[int, list] = {q: [] for q in qualities}
    for _ in tqdm(range(count), desc="coding crops", disable=not progress):
        y = model.network.g_a(sampler.sample(1))
        z = torch.round(model.network.h_a(y)).to(torch.int64)
        for q in qualities:
            residual, _, index = latent_residuals(model, y, z, q)
            parts[q].append((residual.to(torch.float32), index.to(torch.uint8)))
    return {q: (torch.cat([s for s, _ in p]), torch.cat([i for _, i in p])) for q, p in parts.items()}


def table_scales(index: Tensor) -> Tensor:
    """The y tables' scales at (float, possibly unrounded) indexes: the table is log-linear."""
    logs = torch.log(scale_table())
    return torch.exp(logs[0] + index * (logs[1] - logs[0]))


def training_bits(context: ChannelContext, residual: Tensor, hyper_index: Tensor) -> Tensor:
    """Bits per symbol of a batch under a float context: the exact cost of the symbols
    it would code, ``round(residual - mean_delta)``, under its tables.

    The tables learn from that exact cost (as in coding: most symbols are exactly 0, and
    additive noise would teach them wider scales than rounded symbols need). Rounding has
    no useful gradient for the means, so they learn from the noisy relaxation
    ``residual - mean_delta + U(-1/2, 1/2)`` under the same (fixed) tables: a term whose
    value is removed again, so that only its gradient counts.
    """
    mean_delta, index = context(hyper_index, residual)
    scales = table_scales(index)
    exact = symbol_bits(torch.round(residual - mean_delta).detach(), scales)
    if not context.means:
        return exact.mean()
    noisy = residual - mean_delta + torch.empty_like(residual).uniform_(-0.5, 0.5)
    relaxed = symbol_bits(noisy, scales.detach())
    return (exact + relaxed - relaxed.detach()).mean()


def start_from_scales(context: ChannelContext, path: str) -> None:
    """Starts a means context from a trained scales-only one (a ``--checkpoint`` of this
    tool without ``--means``, same slices and widths): its layers are copied, and the
    new mean outputs start at zero, so training starts where that context ended.

    Raises:
        ValueError: the checkpoint's context does not fit.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)["context"]
    per_slice = context.channels // context.slices
    with torch.no_grad():
        for name, parameter in context.named_parameters():
            source = state.get(name)
            last = name.endswith(f".{len(context.networks[0]) - 1}.weight") or name.endswith(
                f".{len(context.networks[0]) - 1}.bias"
            )
            if last and source is not None and source.shape[0] == per_slice:
                parameter.zero_()
                parameter[per_slice:].copy_(source)  # index rows; the mean rows stay zero
            elif source is not None and source.shape == parameter.shape:
                parameter.copy_(source)
            else:
                raise ValueError(f"{path} does not fit this context ({name})")


def evaluate(model, integer_context, latents: Latents) -> Dict[int, Tuple[float, float]]:
    """Bits per symbol of held-out crops: ``{quality: (plain tables, integer context)}``."""
    result = {}
    for q, (residual, hyper_index) in latents.items():
        residual, hyper_index = residual.to(torch.float64), hyper_index.to(torch.int64)
        plain = symbol_bits(torch.round(residual).float(), table_scales(hyper_index.float())).mean()
        symbols, _, index = integer_context.encode(hyper_index, residual)
        refined = symbol_bits(symbols.float(), table_scales(index.float())).mean()
        result[q] = (float(plain), float(refined))
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="data/corpus", help="folder of training images (tools/prepare_corpus.py)")
    parser.add_argument("--weights", help="weights to add the context to (default: the shipped file)")
    parser.add_argument("--out", help="weights file to write (model id 2, or 3 with --means); required to train")
    parser.add_argument("--means", action="store_true", help="also correct the means (model id 3)")
    parser.add_argument("--init-from", metavar="CHECKPOINT",
                        help="with --means: start from a scales-only run's --checkpoint (same --slices and --hidden)")
    parser.add_argument("--slices", type=int, default=4, help="channel slices (default 4)")
    parser.add_argument("--hidden", default="96,64", help="widths of the two hidden layers (default 96,64)")
    parser.add_argument("--steps", type=int, default=4000, help="training steps (default 4000)")
    parser.add_argument("--crops", type=int, default=800, help="training crops (default 800)")
    parser.add_argument("--held-out", type=int, default=80, help="crops for the final report (default 80)")
    parser.add_argument("--crop", type=int, default=256, help="crop side, a multiple of 64 (default 256)")
    parser.add_argument("--batch", type=int, default=32, help="crops per step (default 32)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate, x0.1 for the last 20%%")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", help="resume file, written every 250 steps (a --save-compact file "
                        "resumes too, with fresh Adam moments)")
    parser.add_argument("--save-compact", metavar="PATH",
                        help="write --checkpoint's context in fp16, without the optimiser's moments, to PATH "
                        "(for another machine: copy it to --checkpoint there) and stop")
    args = parser.parse_args(argv)
    if args.crop % 64:
        parser.error("--crop must be a multiple of 64")
    try:
        hidden = tuple(int(width) for width in args.hidden.split(","))
    except ValueError:
        hidden = ()
    if len(hidden) != 2 or min(hidden) < 1:
        parser.error("--hidden takes two positive widths, e.g. 96,64")
    if args.save_compact:
        if not args.checkpoint or not os.path.exists(args.checkpoint):
            parser.error("--save-compact needs an existing --checkpoint")
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        compact = {"context": {name: value.half() if value.is_floating_point() else value
                               for name, value in state["context"].items()}, "step": int(state["step"])}
        save_atomically(compact, args.save_compact)
        print(f"step {compact['step']} -> {args.save_compact}")
        return 0
    if not args.out:
        parser.error("--out is required to train")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = load_model(args.weights)
    if model.channel_context is not None:
        parser.error("--weights already has a channel context")
    sampler = CropSampler(args.corpus, args.crop, seed=args.seed, weighting="image")
    train = code_crops(model, sampler, args.crops)
    held_out = code_crops(model, sampler, args.held_out)

    largest_index = len(model.y_tables) - 1
    context = ChannelContext(model.config.M, args.slices, largest_index, hidden=hidden, means=args.means)
    if args.init_from:
        if not args.means:
            parser.error("--init-from starts a --means run")
        start_from_scales(context, args.init_from)
    optimizer = torch.optim.Adam(context.parameters(), lr=args.lr)
    step = 0
    if args.checkpoint and os.path.exists(args.checkpoint):
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        context.load_state_dict({name: value.float() if value.is_floating_point() else value
                                 for name, value in state["context"].items()})
        if "optimizer" in state:  # a compact checkpoint (--save-compact) has none
            optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        print(f"resumed at step {step}")
    generator = torch.Generator().manual_seed(args.seed + step)
    qualities = sorted(train)
    started = time.time()
    from tqdm import tqdm

    with tqdm(total=args.steps, initial=step, desc="training") as bar:
        while step < args.steps:
            for group in optimizer.param_groups:
                group["lr"] = args.lr * (0.1 if step >= 0.8 * args.steps else 1.0)
            quality = qualities[step % len(qualities)]
            pick = torch.randint(0, args.crops, (args.batch,), generator=generator)
            loss = training_bits(context, train[quality][0][pick], train[quality][1][pick].long())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(quality=quality, bits=f"{float(loss.detach()):.4f}")
            if args.checkpoint and (step % 250 == 0 or step == args.steps):
                state = {"context": context.state_dict(), "optimizer": optimizer.state_dict(), "step": step}
                save_atomically(state, args.checkpoint)
    print(f"trained {step} steps ({time.time() - started:.0f} s this run)")

    integer_context = integerize_channel_context(context)
    for q, (plain, refined) in evaluate(model, integer_context, held_out).items():
        print(f"quality {q}: {plain:.4f} -> {refined:.4f} bits per y symbol ({100 * (1 - refined / plain):.1f} % fewer)")
    base = read_bundle(model.path)
    bundle = with_channel_context(base, integer_context)
    fingerprint = write_bundle(bundle, args.out)
    print(f"{args.out}: model id {bundle['model_id']}, fingerprint {fingerprint.hex()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
