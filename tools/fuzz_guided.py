#!/usr/bin/env python3
"""Coverage-guided fuzzing (atheris / libFuzzer) of the .ugc reader and the image reader.

    pip install atheris
    python -m tools.fuzz_guided ugc   --runs 100000 --work /tmp/fuzz-ugc
    python -m tools.fuzz_guided ugc   --runs 100000 --work /tmp/fuzz-tiny --model tiny
    python -m tools.fuzz_guided image --runs 100000 --work /tmp/fuzz-image

``ugc``: every input must parse (and, when small, decode to pixels) or raise
``FormatError``; read both as bytes and as a stream. Half of the mutants get their CRCs
recomputed (``tools.fuzzing.reseal``), so that the checks behind the checksums are
reached. ``image``: every input must load or raise ``ImageError`` (``TypeError`` is a
crash here: the input is always bytes). Anything else is a crash: libFuzzer stops and
writes the input as ``crash-*`` in the working folder. Hangs (``--timeout`` seconds for
one input) and memory (``--rss-limit-mib``, the whole process) are libFuzzer's own
checks. The seed corpus is tests/fuzz_corpus (its ``*.ugc`` files, or its ``images/``
folder) plus, for images, one small file of every format Pillow can write; new
interesting inputs go to ``--work``/corpus. To keep a small corpus for the tests, let
libFuzzer minimise it (extra arguments go to libFuzzer):
``python -m tools.fuzz_guided ugc --work /tmp/m -merge=1 NEW_FOLDER /tmp/fuzz-ugc/corpus``.
"""
from __future__ import annotations

import argparse
import glob
import io
import os
import random
import shutil
import sys
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "fuzz_corpus")
#: Largest image the fuzz targets read (the pixel limit keeps each case fast; the limit
#: itself has its own tests). Pixels of .ugc files are synthesised up to SYNTHESIS_PIXELS
#: (the golden file's 96x80 included).
UGC_MAX_PIXELS = 1 << 14
IMAGE_MAX_PIXELS = 1 << 16
SYNTHESIS_PIXELS = 1 << 13


def image_seeds() -> "list[tuple[str, bytes]]":
    """One small image per format and mode Pillow writes: PNG (8/16-bit, palette, alpha,
    animated), JPEG, GIF (animated), TIFF (multi-page, 16-bit, float), BMP, WebP, ..."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 17, 3), dtype=np.uint8))
    gray = rgb.convert("L")
    seeds = []

    def add(name, image, fmt, **options):
        buffer = io.BytesIO()
        try:
            image.save(buffer, format=fmt, **options)
        except Exception:  # a format this Pillow build cannot write
            return
        seeds.append((name, buffer.getvalue()))

    for fmt in ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM", "TGA", "PCX", "SGI", "IM", "ICO",
                "DDS", "SPIDER", "MSP", "XBM", "QOI", "JPEG2000", "BLP", "ICNS"):
        add(f"rgb.{fmt.lower()}", gray if fmt in ("MSP", "XBM", "SPIDER") else rgb, fmt)
    add("gray16.png", Image.fromarray((rng.integers(0, 65536, (9, 11))).astype(np.uint16)), "PNG")
    add("float.tif", Image.fromarray(rng.random((9, 11)).astype(np.float32)), "TIFF")
    add("palette.png", rgb.convert("P"), "PNG")
    add("rgba.png", rgb.convert("RGBA"), "PNG")
    add("cmyk.jpg", rgb.convert("CMYK"), "JPEG")
    add("progressive.jpg", rgb, "JPEG", progressive=True)
    frames = [rgb, gray.convert("RGB")]
    add("animated.gif", frames[0], "GIF", save_all=True, append_images=frames[1:])
    add("animated.png", frames[0], "PNG", save_all=True, append_images=frames[1:])
    add("pages.tif", frames[0], "TIFF", save_all=True, append_images=frames[1:])
    exif = Image.Exif()
    exif[0x0112] = 6
    add("exif.jpg", rgb, "JPEG", exif=exif.tobytes())
    return seeds


def tiny_model():
    """A small random model (N = 8, M = 16), exported and loaded like shipped weights, and
    a file it made: the same container, entropy decoding and integer hyper-synthesis as the
    shipped model at a fraction of the cost per case (no channel context, model id 1)."""
    import numpy as np
    import torch

    import ugcodec
    from ugcodec.models import ModelConfig, UGHyperprior
    from tools.export import export_bundle
    from ugcodec.weights import model_from_bundle

    torch.manual_seed(1234)
    network = UGHyperprior(ModelConfig(N=8, M=16, lambdas=(0.005, 0.02, 0.05), embedding_dim=8)).eval()
    model = model_from_bundle(export_bundle(network), "<tiny>")
    rng = np.random.default_rng(0)
    photo = np.clip(np.cumsum(rng.normal(0, 8, (40, 56, 3)), axis=1) + 128, 0, 255).astype(np.uint8)
    return model, ugcodec.encode(photo, 2, model=model)


def _container_ok(source) -> bool:
    from ugcodec.container import read_container
    from ugcodec.errors import FormatError

    try:
        read_container(source, max_pixels=UGC_MAX_PIXELS)
    except FormatError:
        return False
    return True


def _ugc_target(model):
    import ugcodec
    from ugcodec.codec import decode_pixels
    from ugcodec.container import read_container
    from ugcodec.errors import FormatError

    def target(data: bytes) -> None:
        try:
            latents = ugcodec.parse_latents(data, model=model, max_pixels=UGC_MAX_PIXELS)
        except FormatError:
            # The stream reader (header first, then exactly the rest) must agree with the
            # bytes reader on whether the container is valid.
            assert _container_ok(io.BytesIO(data)) == _container_ok(data)
            return
        header = latents.header
        assert read_container(io.BytesIO(data), max_pixels=UGC_MAX_PIXELS).header == header
        if header.width * header.height <= SYNTHESIS_PIXELS:
            pixels = decode_pixels(latents, "human", model=model)
            assert pixels.shape == (header.height, header.width, 3)

    return target


def _image_target():
    from ugcodec.errors import ImageError
    from ugcodec.image_io import load_image

    def target(data: bytes) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about odd but readable files
            try:
                pixels, mode = load_image(data, max_pixels=IMAGE_MAX_PIXELS, first_frame=bool(data[-1:] == b"\x01"))
            except ImageError:
                return
        assert pixels.dtype.name == "uint8" and pixels.ndim == 3 and pixels.shape[2] == 3 and mode in ("L", "RGB")

    return target


def release_comparison_results(atheris) -> bool:
    """Stops atheris leaking the result of every traced comparison; returns whether it had to.

    The instrumented bytecode calls ``atheris._trace_cmp(left, right, op, ...)`` for each
    ``==``, ``<``, ... between two non-constants, and atheris 3.0's returns the result of
    ``PyObject_RichCompare`` with one reference too many (a new reference handed out as a
    ``pybind11::handle``, which pybind11 increments again), so no result is ever freed. For
    the ``True``/``False`` of scalar comparisons that costs nothing, but an elementwise
    comparison of numpy arrays or torch tensors in an instrumented module (ugcodec's
    entropy decoder compares whole symbol arrays) leaks its whole result: tens of KB per
    .ugc case, gigabytes over a long run (tools/EXPERIMENTS.md, "atheris RSS growth").

    A probe first checks the leak: a comparison whose result is a fresh object must come
    back holding exactly one extra reference; only then is ``_trace_cmp`` wrapped to drop
    it (``Py_DecRef``), so an atheris without the leak is left alone. ``atheris.Fuzz()``
    installs its own ``_trace_cmp`` when fuzzing starts, so call this from inside the
    fuzz target (:func:`releasing_comparisons`).
    """
    import ctypes

    traced = atheris._trace_cmp

    class Result:
        pass

    class Operand:
        def __eq__(self, other):
            return Result()

        __hash__ = object.__hash__

    result = traced(Operand(), Operand(), 2, 0, False)  # 2: Py_EQ
    extra = sys.getrefcount(result) - 2  # less the local name and getrefcount's argument
    del result
    if extra != 1:
        return False
    decref = ctypes.pythonapi.Py_DecRef
    decref.argtypes = [ctypes.py_object]
    decref.restype = None

    def trace_cmp(left, right, opid, idx, left_is_const):
        result = traced(left, right, opid, idx, left_is_const)
        decref(result)
        return result

    atheris._trace_cmp = trace_cmp
    return True


def releasing_comparisons(atheris, target):
    """``target``, which first calls :func:`release_comparison_results` (once fuzzing has
    begun and atheris has installed the tracer it will use)."""
    released = []

    def run(data: bytes) -> None:
        if not released:
            released.append(release_comparison_results(atheris))
        target(data)

    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", choices=["ugc", "image"])
    parser.add_argument("--runs", type=int, default=100000, help="inputs to try")
    parser.add_argument("--work", required=True, help="folder for the growing corpus and crash files")
    parser.add_argument("--timeout", type=int, default=30, help="seconds one input may take (a hang beyond)")
    parser.add_argument("--rss-limit-mib", type=int, default=4096, help="memory bound of the whole process")
    parser.add_argument("--max-len", type=int, default=4096, help="longest input libFuzzer makes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--model", choices=["shipped", "tiny"], default="shipped",
                        help="ugc: the shipped weights, or a small random model (many more cases per second)")
    args, extra = parser.parse_known_args(argv)

    import atheris

    with atheris.instrument_imports(include=["ugcodec", "PIL"]):
        import ugcodec  # noqa: F401
        import ugcodec.codec  # noqa: F401
        import ugcodec.image_io  # noqa: F401
        import PIL.Image

        PIL.Image.init()  # import every format plugin now, instrumented
    from tools.fuzzing import reseal

    corpus = os.path.join(args.work, "corpus")
    seeds = os.path.join(args.work, "seeds")
    os.makedirs(corpus, exist_ok=True)
    os.makedirs(seeds, exist_ok=True)
    import torch

    torch.set_num_threads(1)  # one fuzzing process per core
    if args.target == "ugc" and args.model == "tiny":
        model, example = tiny_model()
        target = _ugc_target(model)
        with open(os.path.join(seeds, "tiny.ugc"), "wb") as handle:
            handle.write(example)
    elif args.target == "ugc":
        target = _ugc_target(ugcodec.load_model())
        for path in glob.glob(os.path.join(CORPUS, "*.ugc")) + [os.path.join(ROOT, "tests", "golden", "golden.ugc")]:
            shutil.copy(path, seeds)
    else:
        target = _image_target()
        for path in glob.glob(os.path.join(CORPUS, "images", "*")):
            shutil.copy(path, seeds)
        for name, data in image_seeds():
            with open(os.path.join(seeds, name), "wb") as handle:
                handle.write(data)

    def mutator(data: bytes, max_size: int, seed: int) -> bytes:
        mutant = atheris.Mutate(data, max_size)
        if args.target == "ugc" and random.Random(seed).random() < 0.5:
            mutant = reseal(mutant)
        return mutant

    libfuzzer = [
        sys.argv[0],
        f"-runs={args.runs}",
        f"-timeout={args.timeout}",
        f"-rss_limit_mb={args.rss_limit_mib}",
        f"-max_len={args.max_len}",
        f"-seed={args.seed}",
        f"-artifact_prefix={os.path.join(args.work, '')}",
        "-print_final_stats=1",
        *extra,
        corpus,
        seeds,
    ]
    atheris.Setup(libfuzzer, releasing_comparisons(atheris, target), custom_mutator=mutator)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
