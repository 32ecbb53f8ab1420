"""Fuzzing the parser and decoder: every input decodes or raises FormatError, never
anything else. The committed seed corpus (tests/fuzz_corpus) replays earlier mutants;
``python -m tools.fuzz`` runs the long campaign."""
import glob
import os
import random
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import ugcodec
from ugcodec.codec import decode_pixels
from ugcodec.errors import FormatError
from tools import fuzz as fuzz_tool
from tools.fuzzing import mutate

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GOLDEN = os.path.join(HERE, "golden", "golden.ugc")
CORPUS = sorted(glob.glob(os.path.join(HERE, "fuzz_corpus", "*.ugc")))
#: Pixel synthesis of huge (resealed) fake sizes is bounded by MAX_PIXELS, not cheap:
#: the bounded CI share parses everything and synthesises only small images.
SYNTHESIS_LIMIT = 1 << 20


def decode_or_format_error(data: bytes, model) -> None:
    try:
        latents = ugcodec.parse_latents(data, model=model)
    except FormatError:
        return
    header = latents.header
    if header.width * header.height <= SYNTHESIS_LIMIT:
        pixels = decode_pixels(latents, "human", model=model)
        assert pixels.shape == (header.height, header.width, 3)


def golden_bytes() -> bytes:
    with open(GOLDEN, "rb") as handle:
        return handle.read()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), st.integers(1, 3))
def test_mutated_files_decode_or_raise_format_error(shipped_model, seed, rounds):
    rng = random.Random(seed)
    data = golden_bytes()
    for _ in range(rounds):
        data = mutate(data, rng)
    decode_or_format_error(data, shipped_model)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes(shipped_model, data):
    decode_or_format_error(data, shipped_model)
    decode_or_format_error(b"\x89UGC\x01" + data, shipped_model)


@pytest.mark.parametrize("path", CORPUS, ids=[os.path.basename(p) for p in CORPUS])
def test_seed_corpus(shipped_model, path):
    with open(path, "rb") as handle:
        decode_or_format_error(handle.read(), shipped_model)


def test_seed_corpus_exists():
    assert len(CORPUS) >= 10


def _fuzz_tool():
    return fuzz_tool


def test_fuzz_script_counts_outcomes_and_enforces_the_memory_bound(capsys):
    fuzz = _fuzz_tool()
    assert fuzz.main(["--cases", "120", "--seed", "3"]) == 0
    report = capsys.readouterr().out
    assert "cases: 120" in report and "format error:" in report and "resident memory:" in report
    assert fuzz.main(["--cases", "2", "--max-rss-mib", "1"]) == 1  # this process alone exceeds 1 MiB
    assert "peak RSS" in capsys.readouterr().out


_ARRAY_COMPARISONS = """
import sys, weakref
import atheris
import numpy as np
from tools.fuzz_guided import releasing_comparisons

def compare(a, b):
    return a == b

atheris.instrument_func(compare)  # its == now goes through atheris._trace_cmp
array = np.zeros(1000)
freed = []

def target(data):
    freed.append(weakref.ref(compare(array, array))() is None)  # dropped at once, unless leaked
    if len(freed) == 3:
        print(freed, flush=True)

atheris.Setup([sys.argv[0], "-runs=3"], releasing_comparisons(atheris, target))
atheris.Fuzz()
"""


def test_guided_fuzzing_frees_the_results_of_traced_array_comparisons():
    """atheris 3.0 keeps every traced comparison's result alive; with numpy or torch
    operands that is the whole result array, so a long run grew by gigabytes
    (tools/EXPERIMENTS.md). tools.fuzz_guided drops the extra reference."""
    pytest.importorskip("atheris")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", _ARRAY_COMPARISONS], capture_output=True, text=True, env=env,
                            cwd=ROOT)
    assert "[True, True, True]" in result.stdout, result.stdout + result.stderr
