#!/usr/bin/env python3
"""Long fuzzing campaign of the .ugc parser and decoder.

    python -m tools.fuzz --cases 10000 [--seed 0] [--save-corpus tests/fuzz_corpus]

Mutates the golden file (tools.fuzzing.mutate, 1-3 rounds each) and checks that every
case either decodes or raises FormatError, within --timeout seconds and with the
process's peak memory under --max-rss-mib. Prints the counts of each outcome and the
resident memory after the first 100 cases and at the end (a leak would grow it); exits 1
if any case crashed (another exception), hung or went over the memory bound.
"""
from __future__ import annotations

import argparse
import collections
import os
import random
import resource
import signal
import sys
import time
import traceback


import ugcodec
from ugcodec.codec import decode_pixels
from ugcodec.errors import FormatError
from tools.fuzzing import mutate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _current_rss_mib() -> float:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: the peak is the best available figure
        return _peak_rss_mib()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=int, default=60, help="seconds a case may take")
    parser.add_argument("--synthesis-limit", type=int, default=1 << 20,
                        help="synthesise pixels of parsed files up to this many pixels")
    parser.add_argument("--max-rss-mib", type=float, default=4096, help="peak resident memory bound")
    parser.add_argument("--save-corpus", help="folder to write one mutant in every 500 to")
    args = parser.parse_args(argv)

    model = ugcodec.load_model()
    with open(os.path.join(ROOT, "tests", "golden", "golden.ugc"), "rb") as handle:
        golden = handle.read()
    rng = random.Random(args.seed)
    counts = collections.Counter()
    failures = []
    signal.signal(signal.SIGALRM, _alarm)
    started = time.time()
    for case in range(args.cases):
        data = golden
        for _ in range(rng.randint(1, 3)):
            data = mutate(data, rng)
        if args.save_corpus and case % 500 == 0:
            os.makedirs(args.save_corpus, exist_ok=True)
            with open(os.path.join(args.save_corpus, f"mutant{case:05d}.ugc"), "wb") as handle:
                handle.write(data)
        signal.alarm(args.timeout)
        try:
            latents = ugcodec.parse_latents(data, model=model)
            header = latents.header
            if header.width * header.height <= args.synthesis_limit:
                decode_pixels(latents, "human", model=model)
            counts["decoded"] += 1
        except FormatError:
            counts["format error"] += 1
        except Hang:
            counts["hang"] += 1
            failures.append((case, "hang"))
        except Exception:
            counts["crash"] += 1
            failures.append((case, traceback.format_exc(limit=3)))
        finally:
            signal.alarm(0)
        if _peak_rss_mib() > args.max_rss_mib and counts["memory"] == 0:
            counts["memory"] += 1
            failures.append((case, f"peak RSS {_peak_rss_mib():.0f} MiB > {args.max_rss_mib:.0f} MiB"))
        if case == 99:
            rss_after_100 = _current_rss_mib()
        if (case + 1) % 1000 == 0:
            print(f"{case + 1} cases, {dict(counts)}, {time.time() - started:.0f} s, "
                  f"RSS {_current_rss_mib():.0f} MiB", file=sys.stderr)
    print(f"cases: {args.cases}  seed: {args.seed}  " + "  ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    if args.cases >= 100:
        print(f"resident memory: {rss_after_100:.0f} MiB after 100 cases, {_current_rss_mib():.0f} MiB at the end; "
              f"peak {_peak_rss_mib():.0f} MiB (bound {args.max_rss_mib:.0f})")
    for case, error in failures[:20]:
        print(f"case {case}: {error}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
