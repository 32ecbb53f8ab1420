#!/usr/bin/env python3
"""Train a channel context for trained weights and write them as model id 2.

    python tools/train_scale_context.py --corpus data/corpus --out runs/context/weights.pt

The transforms stay frozen: the symbols, means and pixels of every quality are those of
``--weights`` (default: the shipped file); only the y coding tables change
(``ugcodec.channel_context``). So training needs no decoder: it codes random corpus
crops once with the exact coder, keeps their symbols and hyper-prior table indexes, and
fits the context to them by minimising their bits. At the end it reports, on crops kept
out of training, the bits of the plain tables and of the exported integer context, and
writes the weights (and prints their fingerprint). ``--checkpoint`` makes a long run
resumable; running the same command again continues from it.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Dict, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from ugcodec.channel_context import ChannelScaleContext, integerize_scale_context  # noqa: E402
from ugcodec.codec import latent_residuals  # noqa: E402
from ugcodec.models import scale_table, symbol_bits  # noqa: E402
from ugcodec.training import CropSampler  # noqa: E402
from ugcodec.weights import read_bundle, load_model, with_scale_context, write_bundle  # noqa: E402

Latents = Dict[int, Tuple[Tensor, Tensor]]  # quality -> (int16 symbols, uint8 hyper indexes)


@torch.inference_mode()
def code_crops(model, sampler: CropSampler, count: int, progress: bool = True) -> Latents:
    """Symbols and hyper-prior table indexes of ``count`` random crops at every quality."""
    from tqdm import tqdm

    qualities = range(1, model.num_qualities + 1)
    parts: Dict[int, list] = {q: [] for q in qualities}
    for _ in tqdm(range(count), desc="coding crops", disable=not progress):
        y = model.network.g_a(sampler.sample(1))
        z = torch.round(model.network.h_a(y)).to(torch.int64)
        for q in qualities:
            residual, _, index = latent_residuals(model, y, z, q)
            parts[q].append((torch.round(residual).clamp(-32767, 32767).to(torch.int16), index.to(torch.uint8)))
    return {q: (torch.cat([s for s, _ in p]), torch.cat([i for _, i in p])) for q, p in parts.items()}


def table_scales(index: Tensor) -> Tensor:
    """The y tables' scales at (float, possibly unrounded) indexes: the table is log-linear."""
    logs = torch.log(scale_table())
    return torch.exp(logs[0] + index * (logs[1] - logs[0]))


def mean_bits(context, symbols: Tensor, hyper_index: Tensor) -> Tensor:
    """Bits per symbol of a batch under a float context (or the plain tables: None)."""
    index = hyper_index.float() if context is None else context(hyper_index, symbols)
    return symbol_bits(symbols.float(), table_scales(index)).mean()


def evaluate(model, integer_context, latents: Latents) -> Dict[int, Tuple[float, float]]:
    """Bits per symbol of held-out crops: ``{quality: (plain tables, integer context)}``."""
    result = {}
    for q, (symbols, hyper_index) in latents.items():
        symbols, hyper_index = symbols.to(torch.int64), hyper_index.to(torch.int64)
        plain = symbol_bits(symbols.float(), table_scales(hyper_index.float())).mean()
        index = integer_context.indexes(hyper_index, symbols)
        refined = symbol_bits(symbols.float(), table_scales(index.float())).mean()
        result[q] = (float(plain), float(refined))
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="data/corpus", help="folder of training images (tools/prepare_corpus.py)")
    parser.add_argument("--weights", help="weights to add the context to (default: the shipped file)")
    parser.add_argument("--out", required=True, help="weights file to write (model id 2)")
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
    parser.add_argument("--checkpoint", help="resume file, written every 250 steps")
    args = parser.parse_args(argv)
    if args.crop % 64:
        parser.error("--crop must be a multiple of 64")
    try:
        hidden = tuple(int(width) for width in args.hidden.split(","))
    except ValueError:
        hidden = ()
    if len(hidden) != 2 or min(hidden) < 1:
        parser.error("--hidden takes two positive widths, e.g. 96,64")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = load_model(args.weights)
    if model.scale_context is not None:
        parser.error("--weights already has a channel context")
    sampler = CropSampler(args.corpus, args.crop, seed=args.seed, weighting="image")
    train = code_crops(model, sampler, args.crops)
    held_out = code_crops(model, sampler, args.held_out)

    context = ChannelScaleContext(model.config.M, args.slices, largest_index=len(model.y_tables) - 1, hidden=hidden)
    optimizer = torch.optim.Adam(context.parameters(), lr=args.lr)
    step = 0
    if args.checkpoint and os.path.exists(args.checkpoint):
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        context.load_state_dict(state["context"])
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
            symbols, hyper_index = train[quality][0][pick].long(), train[quality][1][pick].long()
            loss = mean_bits(context, symbols, hyper_index)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(quality=quality, bits=f"{float(loss.detach()):.4f}")
            if args.checkpoint and (step % 250 == 0 or step == args.steps):
                temporary = args.checkpoint + ".tmp"
                torch.save({"context": context.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, temporary)
                os.replace(temporary, args.checkpoint)
    print(f"trained {step} steps ({time.time() - started:.0f} s this run)")

    integer_context = integerize_scale_context(context)
    for q, (plain, refined) in evaluate(model, integer_context, held_out).items():
        print(f"quality {q}: {plain:.4f} -> {refined:.4f} bits per y symbol ({100 * (1 - refined / plain):.1f} % fewer)")
    base = read_bundle(model.path)
    fingerprint = write_bundle(with_scale_context(base, integer_context), args.out)
    print(f"{args.out}: model id 2, fingerprint {fingerprint.hex()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
