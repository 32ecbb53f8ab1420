"""The ``ugc`` command line: encode, decode, info.

Exit codes: 0 success; 1 bad input (unreadable image, malformed .ugc file, wrong
weights, an output that exists or cannot be written); 2 bad usage (click's own); 143
when stopped by SIGTERM. Errors are one line on stderr, never a traceback. No output is
ever left partial, no existing file is overwritten without ``--force``, and no input is
ever overwritten at all (:mod:`ugcodec.files` writes every output).
"""
from __future__ import annotations

import glob
import json
import os
import sys
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Tuple

import click

from . import __version__
from .container import MAX_PIXELS
from .errors import UgcError
from .files import check_writable, exit_on_sigterm, read_at_most, write_file
from .settings import DEFAULT_QUALITY, MAX_REFINE_STEPS

EXIT_BAD_INPUT = 1
#: Most bytes read from stdin for an image to encode, per allowed pixel: more than any
#: image file format needs (16-bit RGBA is 8), so only garbage is refused.
_STDIN_IMAGE_BYTES_PER_PIXEL = 8
_STDIN_IMAGE_SLACK = 1 << 20


def _fail(message: str) -> "click.exceptions.Exit":
    click.echo(f"ugc: error: {message}", err=True)
    return click.exceptions.Exit(EXIT_BAD_INPUT)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turns every error the user can cause into one line and exit code 1."""
    try:
        yield
    except UgcError as error:
        raise _fail(str(error)) from None
    except ValueError as error:  # bad option values that click could not check
        raise _fail(str(error)) from None
    except OSError as error:
        raise _fail(f"{error.filename or ''}: {error.strerror or error}".lstrip(": ")) from None


def _same_file(first: str, second: str) -> bool:
    """Whether two names are one file (or would be, once ``second`` is created)."""
    if os.path.realpath(first) == os.path.realpath(second):
        return True
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


def _check_output(sources: List[str], destination: str, force: bool) -> None:
    """Refuses, before any work is done, a destination that cannot or must not be written."""
    if destination.endswith(("/", os.sep)) and not os.path.isdir(destination):
        raise UgcError(f"no such folder: {destination}")
    for source in sources:
        if source != "-" and _same_file(source, destination):
            raise UgcError(f"refusing to overwrite the input file {destination}")
    check_writable(destination, overwrite=force)


def _max_pixels(value: int) -> Optional[int]:
    return None if value == 0 else value


def _open_input(path: str):
    """A binary stream of ``path`` ('-': stdin), for bounded reading."""
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except IsADirectoryError:
        raise UgcError(f"{path} is a directory") from None
    except FileNotFoundError:
        raise UgcError(f"no such file: {path}") from None


def _read_stdin_image(max_pixels: Optional[int]) -> bytes:
    if max_pixels is None:
        return sys.stdin.buffer.read()
    limit = _STDIN_IMAGE_SLACK + _STDIN_IMAGE_BYTES_PER_PIXEL * max_pixels
    data = read_at_most(sys.stdin.buffer, limit + 1)
    if len(data) > limit:
        raise UgcError(f"standard input holds more than {limit} bytes, more than an image of "
                       f"{max_pixels} pixels needs (raise --max-pixels)")
    return data


def _write_output(path: str, data: bytes, force: bool) -> None:
    if path == "-":
        stream = sys.stdout.buffer
        stream.write(data)
        stream.flush()
    else:
        write_file(path, data, overwrite=force)


max_pixels_option = click.option(
    "--max-pixels", type=click.IntRange(min=0), default=MAX_PIXELS, show_default=True, metavar="N",
    help="Refuse images of more than N pixels (width x height), checked from the header "
         "before anything large is read or allocated; bounds memory and time. 0: no limit.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="ugc")
def main() -> None:
    """ugc - a learned image codec for humans and machines.

    One .ugc file decodes two ways: --for human gives a picture that looks right,
    --for machine one that keeps what vision models need.

    \b
    Examples:
      ugc encode photo.png photo.ugc --quality 3
      ugc decode photo.ugc out.png --for human
      ugc decode photo.ugc --for machine      (writes photo.machine.png)
      ugc encode photos/ encoded/             (a whole folder, on every core)
      ugc info photo.ugc --json
    """
    exit_on_sigterm()


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".pnm")


def _expand_sources(sources: Tuple[str, ...]) -> List[str]:
    """Files named, images inside named folders, and quoted glob patterns, in order."""
    paths: List[str] = []
    for source in sources:
        if os.path.isdir(source):
            paths += sorted(
                os.path.join(source, name)
                for name in os.listdir(source)
                if name.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(source, name))
            )
        elif not os.path.exists(source) and glob.has_magic(source):
            paths += sorted(glob.glob(source))
        else:
            paths.append(source)
    return paths


def _summary(destination: str, data: bytes) -> str:
    from .container import Header

    header = Header.unpack(data)
    bpp = 8 * len(data) / (header.width * header.height)
    return (f"{destination}: {header.width}x{header.height} {header.mode}, quality {header.quality}, "
            f"{len(data)} bytes, {bpp:.3f} bpp")


@main.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path())
@click.argument("destination", type=click.Path())
@click.option(
    "-q", "--quality", type=int, default=DEFAULT_QUALITY, show_default=True,
    help="Quality level, from 1 (smallest file) to the weights' highest level (best picture).",
)
@click.option(
    "-r", "--refine", type=click.IntRange(0, MAX_REFINE_STEPS), default=0, show_default=True, metavar="STEPS",
    help="Encoder effort: gradient steps per 512-pixel tile spent choosing the symbols, "
         "then a rate-distortion search. A better picture for the bits, and a much slower "
         "encoder (benchmarks/README.md measures both). The file is a standard .ugc "
         "either way. 0: the fast analysis transform alone.",
)
@click.option("-f", "--force", is_flag=True, help="Overwrite existing outputs (never an input).")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=None,
              help="Parallel workers when encoding many files (default: CPU cores).")
@click.option("--weights", type=click.Path(dir_okay=False), help="Weights file (default: the shipped model).")
@click.option("--strip", is_flag=True, help="Drop the image's ICC profile, EXIF and XMP (kept by default).")
@max_pixels_option
@click.option("--first-frame", is_flag=True,
              help="Encode the first frame of an animation or multi-page file (otherwise refused).")
@click.option("--ray", "on_ray", is_flag=True,
              help="Run on Ray: a local instance, or the cluster RAY_ADDRESS names (pip install 'ugcodec[ray]').")
@click.option("--ray-address", metavar="ADDR", help="Run on the Ray cluster at ADDR (e.g. auto, HOST:6379).")
def encode(sources: Tuple[str, ...], destination: str, quality: int, refine: int, force: bool,
           jobs: Optional[int], weights: Optional[str], strip: bool, max_pixels: int, first_frame: bool,
           on_ray: bool, ray_address: Optional[str]) -> None:
    """Compress images (PNG, JPEG, ...) into .ugc files.

    \b
    ugc encode photo.png photo.ugc        one file ('-' reads stdin / writes stdout)
    ugc encode photos/ out/               every image in a folder, into a folder
    ugc encode a.png b.jpg 'c*.png' out/  several files or patterns, into a folder
    ugc encode photo.png photo.ugc -q 4 --refine 20   slower, better encoding
    ugc encode photos/ out/ --ray         on Ray: a local instance or a cluster
                                          (--ray-address ADDR; ugcodec/ray_batch.py)

    Many files are encoded in parallel with a progress bar; a bad file is reported
    at the end and does not stop the others (exit code 1 if any failed). Two inputs
    that would give one output name (a.png and a.jpg) stop the run before any work.
    """
    if on_ray or ray_address:  # always into a folder; ugcodec/ray_batch.py says how to use a cluster
        from .ray_batch import encode_cli

        return encode_cli(_expand_sources(sources), destination, quality=quality, refine=refine, force=force,
                          workers=jobs, weights=weights, strip=strip, address=ray_address)
    options = dict(quality=quality, refine=refine, force=force, weights=weights,
                   max_pixels=_max_pixels(max_pixels), first_frame=first_frame, strip=strip)
    source = sources[0]
    pattern = glob.has_magic(source) and not os.path.exists(source)
    if len(sources) == 1 and not os.path.isdir(source) and not pattern:
        if os.path.isdir(destination) and source != "-":
            destination = os.path.join(destination, _output_name(source))
        _encode_one_file(source, destination, **options)
    else:
        with _user_errors():
            _check_folder_destination(destination)
            paths = _expand_sources(sources)
        _encode_many(paths, destination, jobs=jobs, **options)


def _encode_one_file(source: str, destination: str, quality: int, refine: int, force: bool,
                     weights: Optional[str], max_pixels: Optional[int], first_frame: bool, strip: bool = False) -> None:
    from .codec import encode as encode_image
    from .weights import load_model

    with _user_errors():
        if destination != "-":
            _check_output([source], destination, force)
        model = load_model(weights)
        image = _read_stdin_image(max_pixels) if source == "-" else source
        data = encode_image(image, quality, model=model, progress=True, refine=refine,
                            max_pixels=max_pixels, first_frame=first_frame, metadata=not strip)
        _write_output(destination, data, force)
    click.echo(_summary(destination, data), err=True)


def _output_name(source: str) -> str:
    return os.path.splitext(os.path.basename(source))[0] + ".ugc"


def _check_folder_destination(folder: str) -> None:
    """Several inputs go into a folder: refuse a destination that is a file, or whose
    name says it was meant as one."""
    if os.path.exists(folder):
        if not os.path.isdir(folder):
            raise UgcError(f"{folder} is not a folder: several inputs need a destination folder")
    elif folder.lower().endswith(".ugc"):
        raise UgcError(f"several inputs need a destination folder, and {folder} looks like a file name "
                       f"(name a folder, e.g. {os.path.splitext(folder)[0]}/)")


def _plan_outputs(paths: List[str], folder: str) -> List[Tuple[str, str]]:
    """``(source, target)`` for every input; refuses a run where two inputs would share
    an output, or an output would be an input."""
    unique: List[str] = []
    seen = set()
    for path in paths:  # the same file named twice (a folder and a pattern) is coded once
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            unique.append(path)
    by_target: Dict[str, List[str]] = {}
    plan = []
    for source in unique:
        target = os.path.join(folder, _output_name(source))
        by_target.setdefault(os.path.normcase(os.path.realpath(target)), []).append(source)
        plan.append((source, target))
    clashes = [sources for sources in by_target.values() if len(sources) > 1]
    if clashes:
        described = "; ".join(" and ".join(sources) for sources in clashes[:5])
        more = f" (and {len(clashes) - 5} more)" if len(clashes) > 5 else ""
        raise UgcError(f"inputs would overwrite each other's output: {described}{more}; "
                       "rename them or encode them into different folders")
    inputs = {os.path.realpath(path) for path in unique}
    for source, target in plan:
        if os.path.realpath(target) in inputs:
            raise UgcError(f"refusing to overwrite the input file {target} (the output of {source})")
    return plan


_worker_model = None


def _worker_start(weights: Optional[str]) -> None:
    global _worker_model
    import torch

    from .weights import load_model

    torch.set_num_threads(1)  # one process per core is faster than threads within one
    _worker_model = load_model(weights)


def _worker_encode(job: Tuple[str, str, dict, bool]) -> Tuple[str, Optional[str], Optional[str]]:
    from .codec import encode as encode_image

    source, target, options, force = job
    try:
        data = encode_image(source, model=_worker_model, **options)
        write_file(target, data, overwrite=force)
        return source, _summary(target, data), None
    except (UgcError, ValueError, OSError) as error:
        return source, None, str(error)
    except Exception as error:  # a bug must cost this file, not the run and its summary
        return source, None, f"unexpected {type(error).__name__}: {error}"


def _encode_many(paths: List[str], folder: str, quality: int, refine: int, force: bool, jobs: Optional[int],
                  weights: Optional[str], max_pixels: Optional[int], first_frame: bool, strip: bool = False) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm import tqdm

    from .weights import load_model

    with _user_errors():
        if not paths:
            raise UgcError("no image files found")
        plan = _plan_outputs(paths, folder)
        load_model(weights)  # fail early, once, on bad weights
        os.makedirs(folder, exist_ok=True)
        check_writable(os.path.join(folder, ".ugc-write-check"), overwrite=True)
    failures: List[Tuple[str, str]] = []
    work = []
    options = dict(quality=quality, refine=refine, max_pixels=max_pixels, first_frame=first_frame, metadata=not strip)
    for source, target in plan:
        if os.path.lexists(target) and not force:
            failures.append((source, f"{target} exists (use --force to overwrite it)"))
        else:
            work.append((source, target, options, force))
    workers = min(jobs or os.cpu_count() or 1, max(1, len(work)))
    if work:
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start, initargs=(weights,))
        try:
            futures = {pool.submit(_worker_encode, job): job[0] for job in work}
            with tqdm(total=len(futures), unit="image", file=sys.stderr, disable=None) as progress:
                for future in as_completed(futures):
                    try:
                        source, summary, error = future.result()
                    except Exception as crash:  # a worker process died (killed, out of memory)
                        source, error = futures[future], f"worker stopped: {type(crash).__name__}: {crash}"
                    if error:
                        failures.append((source, error))
                    progress.update(1)
        finally:
            # On SIGINT/SIGTERM: drop what has not started; running files finish or clean up.
            pool.shutdown(wait=True, cancel_futures=True)
    done = len(plan) - len(failures)
    click.echo(f"encoded {done} of {len(plan)} images into {folder}", err=True)
    if failures:
        for source, error in sorted(failures):
            click.echo(f"ugc: error: {source}: {error}", err=True)
        raise click.exceptions.Exit(EXIT_BAD_INPUT)


def _default_output(source: str, preference: str) -> str:
    stem = source[:-4] if source.lower().endswith(".ugc") else source
    label = preference if preference in ("human", "machine") else f"beta{float(preference):.2f}"
    return f"{stem}.{label}.png"


@main.command()
@click.argument("source", type=click.Path(allow_dash=True))
@click.argument("destination", required=False, type=click.Path(allow_dash=True))
@click.option(
    "--for", "--preference", "preference", default="human", show_default=True,
    help="Who the picture is for: 'human', 'machine', or a number in [0, 1] that blends them.",
)
@click.option("-f", "--force", is_flag=True, help="Overwrite DESTINATION if it exists (never the input).")
@click.option("--weights", type=click.Path(dir_okay=False), help="Weights file (default: the shipped model).")
@max_pixels_option
@click.option("-j", "--jobs", type=click.IntRange(1, 4096), default=None, help="With --ray: most workers.")
@click.option("--ray", "on_ray", is_flag=True,
              help="Run on Ray: a local instance, or the cluster RAY_ADDRESS names (pip install 'ugcodec[ray]').")
@click.option("--ray-address", metavar="ADDR", help="Run on the Ray cluster at ADDR (e.g. auto, HOST:6379).")
def decode(source: str, destination: Optional[str], preference: str, force: bool, weights: Optional[str],
           max_pixels: int, jobs: Optional[int], on_ray: bool, ray_address: Optional[str]) -> None:
    """Decompress the .ugc file SOURCE into an image.

    DESTINATION defaults to SOURCE's name with .human.png or .machine.png; its
    extension picks the image format (PNG is lossless; use it). '-' reads the file
    from stdin or writes PNG to stdout. With --ray, SOURCE may be a folder of .ugc
    files and DESTINATION a folder (default: next to each file).
    """
    if on_ray or ray_address:
        from .ray_batch import decode_cli

        return decode_cli([source], destination, preference=preference, force=force, workers=jobs,
                          weights=weights, address=ray_address)
    import io

    from PIL import Image

    from .codec import decode as decode_file
    from .codec import preference_to_beta
    from .metadata import save_options
    from .weights import load_model

    with _user_errors():
        beta = preference_to_beta(preference)  # checked before any file work
        if destination is None:
            if source == "-":
                raise UgcError("name a DESTINATION (or '-') when reading from stdin")
            destination = _default_output(source, preference.strip().lower())
        if destination == "-":
            image_format = "PNG"
        else:
            extension = os.path.splitext(destination)[1].lower()
            if extension not in Image.registered_extensions():
                raise UgcError(f"cannot tell the image format from {destination!r}: end it in .png")
            image_format = Image.registered_extensions()[extension]
            _check_output([source], destination, force)
        model = load_model(weights)
        stream = _open_input(source)
        try:
            image = decode_file(stream, beta, model=model, progress=True, max_pixels=_max_pixels(max_pixels))
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
        buffer = io.BytesIO()
        image.save(buffer, format=image_format, **save_options(image, image_format))
        _write_output(destination, buffer.getvalue(), force)
    click.echo(f"{destination}: {image.width}x{image.height} {image.mode} ({preference})", err=True)


@main.command()
@click.argument("source", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Print the header as JSON.")
@click.option("--weights", type=click.Path(dir_okay=False),
              help="Check the file against this weights file (default: the shipped model).")
@max_pixels_option
def info(source: str, as_json: bool, weights: Optional[str], max_pixels: int) -> None:
    """Show the header and metadata of the .ugc file SOURCE.

    The whole file is verified as decode would: its checksums, fields and the pixel
    limit, and that the weights (--weights, default the shipped ones) made it.
    """
    from .container import check_weights, read_container, shipped_weights_summary  # no torch for a header

    with _user_errors():
        stream = _open_input(source)
        try:
            container = read_container(stream, max_pixels=_max_pixels(max_pixels))
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
        if weights:
            from .codec import check_model
            from .weights import load_model

            check_model(load_model(weights), container.header)
        else:
            check_weights(container.header, shipped_weights_summary())
    fields = container.header.to_dict()
    fields["metadata"] = container.metadata.describe()
    if as_json:
        click.echo(json.dumps(fields, indent=2))
        return
    width = max(len(name) for name in fields)
    for name, value in fields.items():
        if isinstance(value, float):
            value = f"{value:.4f}"
        elif isinstance(value, dict):  # metadata: what the file carries, with sizes
            value = ", ".join(f"{key} ({size} bytes)" for key, size in value.items()) or "none"
        click.echo(f"{name.replace('_', ' '):<{width}}  {value}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
