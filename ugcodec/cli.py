"""The ``ugc`` command line: encode, decode, info.

Exit codes: 0 success; 1 bad input (unreadable image, malformed .ugc file, wrong
weights); 2 bad usage (click's own). Errors are one line on stderr, never a traceback,
and no partial output file is ever left behind (outputs are written to a temporary file
in the same folder, then renamed).
"""
from __future__ import annotations

import glob
import json
import os
import stat
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator, List, Optional, Tuple

import click

from . import __version__
from .errors import UgcError

EXIT_BAD_INPUT = 1


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


def _new_file_mode(path: str) -> int:
    """The permission bits ``path`` should get: an overwritten file keeps its own, a new
    one gets what ``open()`` would give it (0o666 less the umask)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        # The umask can only be read by setting it; no other thread of ugc creates files.
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


def _write_atomically(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file in the same folder, so that
    ``path`` is either untouched or complete, never partial."""
    folder = os.path.dirname(os.path.abspath(path))
    mode = _new_file_mode(path)
    # mkstemp makes the file private (0o600); a codec's output should look like any
    # other file the user writes.
    descriptor, temporary = tempfile.mkstemp(prefix=".ugc-", suffix=".part", dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def _check_output(source: str, destination: str, force: bool) -> None:
    """Refuses, before any work is done, a destination that cannot or must not be written."""
    folder = destination if destination.endswith(("/", os.sep)) else os.path.dirname(destination)
    if folder and not os.path.isdir(folder):
        raise UgcError(f"no such folder: {folder}")
    if os.path.exists(destination):
        if os.path.exists(source) and os.path.samefile(source, destination):
            raise UgcError(f"refusing to overwrite the input file {destination}")
        if not force:
            raise UgcError(f"{destination} exists (use --force to overwrite it)")


def _read_bytes(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except IsADirectoryError:
        raise UgcError(f"{path} is a directory") from None
    except FileNotFoundError:
        raise UgcError(f"no such file: {path}") from None


def _write_output(path: str, data: bytes) -> None:
    if path == "-":
        stream = sys.stdout.buffer
        stream.write(data)
        stream.flush()
    else:
        _write_atomically(path, data)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ugc")
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
    "-q", "--quality", type=int, default=None, show_default="3",
    help="Quality level, 1 (smallest file) to 6 (best picture).",
)
@click.option(
    "-r", "--refine", type=click.IntRange(0, 1000), default=0, show_default=True, metavar="STEPS",
    help="Encoder effort: gradient steps per 512-pixel tile spent choosing the symbols, "
         "then a rate-distortion search. Any number gives a better picture for the bits "
         "(1 step most of the gain, 20 the most; README: Results), but encoding takes "
         "tens of seconds per photo instead of under one. The file is a standard .ugc "
         "either way. 0: the fast analysis transform alone.",
)
@click.option("-f", "--force", is_flag=True, help="Overwrite existing outputs.")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=None,
              help="Parallel workers when encoding many files (default: CPU cores).")
@click.option("--weights", type=click.Path(dir_okay=False), help="Weights file (default: the shipped model).")
def encode(sources: Tuple[str, ...], destination: str, quality: Optional[int], refine: int, force: bool,
           jobs: Optional[int], weights: Optional[str]) -> None:
    """Compress images (PNG, JPEG, ...) into .ugc files.

    \b
    ugc encode photo.png photo.ugc        one file ('-' reads stdin / writes stdout)
    ugc encode photos/ out/               every image in a folder, into a folder
    ugc encode a.png b.jpg 'c*.png' out/  several files or patterns, into a folder
    ugc encode photo.png photo.ugc -q 4 --refine 20   slower, better encoding

    Many files are encoded in parallel with a progress bar; a bad file is reported
    at the end and does not stop the others (exit code 1 if any failed).
    """
    from .codec import DEFAULT_QUALITY

    quality = DEFAULT_QUALITY if quality is None else quality
    source = sources[0]
    pattern = glob.has_magic(source) and not os.path.exists(source)
    if len(sources) == 1 and not os.path.isdir(source) and not pattern:
        if os.path.isdir(destination) and source != "-":
            destination = os.path.join(destination, os.path.splitext(os.path.basename(source))[0] + ".ugc")
        _encode_one_file(source, destination, quality, refine, force, weights)
    else:
        _encode_many(_expand_sources(sources), destination, quality, refine, force, jobs, weights)


def _encode_one_file(source: str, destination: str, quality: int, refine: int, force: bool,
                     weights: Optional[str]) -> None:
    from .codec import encode as encode_image
    from .weights import load_model

    with _user_errors():
        if destination != "-":
            _check_output(source, destination, force)
        model = load_model(weights)
        image = _read_bytes(source) if source == "-" else source
        data = encode_image(image, quality, model=model, progress=True, refine=refine)
        _write_output(destination, data)
    click.echo(_summary(destination, data), err=True)


_worker_model = None


def _worker_start(weights: Optional[str]) -> None:
    global _worker_model
    import torch

    from .weights import load_model

    torch.set_num_threads(1)  # one process per core is faster than threads within one
    _worker_model = load_model(weights)


def _worker_encode(job: Tuple[str, str, int, int]) -> Tuple[str, Optional[str], Optional[str]]:
    from .codec import encode as encode_image

    source, target, quality, refine = job
    try:
        data = encode_image(source, quality, model=_worker_model, refine=refine)
        _write_atomically(target, data)
        return source, _summary(target, data), None
    except (UgcError, ValueError, OSError) as error:
        return source, None, str(error)


def _encode_many(paths: List[str], folder: str, quality: int, refine: int, force: bool, jobs: Optional[int],
                 weights: Optional[str]) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm import tqdm

    from .weights import load_model

    with _user_errors():
        if not paths:
            raise UgcError("no image files found")
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise UgcError(f"{folder} must be a folder when encoding several files")
        load_model(weights)  # fail early, once, on bad weights
        os.makedirs(folder, exist_ok=True)
    failures: List[Tuple[str, str]] = []
    work = []
    for source in paths:
        target = os.path.join(folder, os.path.splitext(os.path.basename(source))[0] + ".ugc")
        if os.path.exists(target) and not force:
            failures.append((source, f"{target} exists (use --force to overwrite it)"))
        else:
            work.append((source, target, quality, refine))
    workers = min(jobs or os.cpu_count() or 1, max(1, len(work)))
    if work:
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start, initargs=(weights,)) as pool:
            futures = [pool.submit(_worker_encode, job) for job in work]
            with tqdm(total=len(futures), unit="image", file=sys.stderr, disable=None) as progress:
                for future in as_completed(futures):
                    source, summary, error = future.result()
                    if error:
                        failures.append((source, error))
                    progress.update(1)
    done = len(paths) - len(failures)
    click.echo(f"encoded {done} of {len(paths)} images into {folder}", err=True)
    if failures:
        for source, error in sorted(failures):
            click.echo(f"ugc: error: {source}: {error}", err=True)
        raise click.exceptions.Exit(EXIT_BAD_INPUT)


def _default_output(source: str, preference: str) -> str:
    stem = source[:-4] if source.lower().endswith(".ugc") else source
    label = preference if preference in ("human", "machine") else f"beta{float(preference):.2f}"
    return f"{stem}.{label}.png"


@main.command()
@click.argument("source", type=click.Path(dir_okay=False, allow_dash=True))
@click.argument("destination", required=False, type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--for", "--preference", "preference", default="human", show_default=True,
    help="Who the picture is for: 'human', 'machine', or a number in [0, 1] that blends them.",
)
@click.option("-f", "--force", is_flag=True, help="Overwrite DESTINATION if it exists.")
@click.option("--weights", type=click.Path(dir_okay=False), help="Weights file (default: the shipped model).")
def decode(source: str, destination: Optional[str], preference: str, force: bool, weights: Optional[str]) -> None:
    """Decompress the .ugc file SOURCE into an image.

    DESTINATION defaults to SOURCE's name with .human.png or .machine.png; its
    extension picks the image format (PNG is lossless; use it). '-' reads the file
    from stdin or writes PNG to stdout.
    """
    import io

    from PIL import Image

    from .codec import decode as decode_file
    from .models import preference_to_beta
    from .weights import load_model

    with _user_errors():
        preference_to_beta(preference)
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
            _check_output(source, destination, force)
        data = _read_bytes(source)
        image = decode_file(data, preference, model=load_model(weights), progress=True)
        buffer = io.BytesIO()
        image.save(buffer, format=image_format)
        _write_output(destination, buffer.getvalue())
    click.echo(f"{destination}: {image.width}x{image.height} {image.mode} ({preference})", err=True)


@main.command()
@click.argument("source", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Print the header as JSON.")
def info(source: str, as_json: bool) -> None:
    """Show the header of the .ugc file SOURCE (the whole file is verified)."""
    from .container import Container  # not codec.read_header: no torch import for a header

    with _user_errors():
        header = Container.from_bytes(_read_bytes(source)).header
    fields = header.to_dict()
    if as_json:
        click.echo(json.dumps(fields, indent=2))
        return
    width = max(len(name) for name in fields)
    for name, value in fields.items():
        if isinstance(value, float):
            value = f"{value:.4f}"
        click.echo(f"{name.replace('_', ' '):<{width}}  {value}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
