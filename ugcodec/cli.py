"""The ``ugc`` command line: encode, decode, info.

Exit codes: 0 success; 1 bad input (unreadable image, malformed .ugc file, wrong
weights); 2 bad usage (click's own). Errors are one line on stderr, never a traceback,
and no partial output file is ever left behind (outputs are written to a temporary file
in the same folder, then renamed).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator, Optional

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


def _write_atomically(path: str, data: bytes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(prefix=".ugc-", suffix=".part", dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def _check_output(source: str, destination: str, force: bool) -> None:
    if os.path.exists(destination):
        if os.path.exists(source) and os.path.samefile(source, destination):
            raise UgcError(f"refusing to overwrite the input file {destination}")
        if not force:
            raise UgcError(f"{destination} exists (use --force to overwrite it)")


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except IsADirectoryError:
        raise UgcError(f"{path} is a directory") from None
    except FileNotFoundError:
        raise UgcError(f"no such file: {path}") from None


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
      ugc info photo.ugc --json
    """


@main.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.argument("destination", type=click.Path(dir_okay=False))
@click.option(
    "-q", "--quality", type=int, default=None, show_default="3",
    help="Quality level, 1 (smallest file) to 6 (best picture).",
)
@click.option("-f", "--force", is_flag=True, help="Overwrite DESTINATION if it exists.")
@click.option("--weights", type=click.Path(dir_okay=False), help="Weights file (default: the shipped model).")
def encode(source: str, destination: str, quality: Optional[int], force: bool, weights: Optional[str]) -> None:
    """Compress the image SOURCE (PNG, JPEG, ...) into the .ugc file DESTINATION."""
    from .codec import DEFAULT_QUALITY, encode as encode_image
    from .weights import load_model

    with _user_errors():
        _check_output(source, destination, force)
        model = load_model(weights)
        data = encode_image(source, DEFAULT_QUALITY if quality is None else quality, model=model)
        _write_atomically(destination, data)
    from .container import Header

    header = Header.unpack(data)
    bpp = 8 * len(data) / (header.width * header.height)
    click.echo(f"{destination}: {header.width}x{header.height} {header.mode}, quality {header.quality}, "
               f"{len(data)} bytes, {bpp:.3f} bpp", err=True)


def _default_output(source: str, preference: str) -> str:
    stem = source[:-4] if source.lower().endswith(".ugc") else source
    label = preference if preference in ("human", "machine") else f"beta{float(preference):.2f}"
    return f"{stem}.{label}.png"


@main.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.argument("destination", required=False, type=click.Path(dir_okay=False))
@click.option(
    "--for", "--preference", "preference", default="human", show_default=True,
    help="Who the picture is for: 'human', 'machine', or a number in [0, 1] that blends them.",
)
@click.option("-f", "--force", is_flag=True, help="Overwrite DESTINATION if it exists.")
@click.option("--weights", type=click.Path(dir_okay=False), help="Weights file (default: the shipped model).")
def decode(source: str, destination: Optional[str], preference: str, force: bool, weights: Optional[str]) -> None:
    """Decompress the .ugc file SOURCE into an image.

    DESTINATION defaults to SOURCE's name with .human.png or .machine.png; its
    extension picks the image format (PNG is lossless; use it).
    """
    from PIL import Image

    from .codec import decode as decode_file
    from .models import preference_to_beta
    from .weights import load_model

    with _user_errors():
        preference_to_beta(preference)
        destination = destination or _default_output(source, preference.strip().lower())
        extension = os.path.splitext(destination)[1].lower()
        if extension not in Image.registered_extensions():
            raise UgcError(f"cannot tell the image format from {destination!r}: end it in .png")
        _check_output(source, destination, force)
        data = _read_bytes(source)
        image = decode_file(data, preference, model=load_model(weights))
        fmt = Image.registered_extensions()[extension]
        import io

        buffer = io.BytesIO()
        image.save(buffer, format=fmt)
        _write_atomically(destination, buffer.getvalue())
    click.echo(f"{destination}: {image.width}x{image.height} {image.mode} ({preference})", err=True)


@main.command()
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the header as JSON.")
def info(source: str, as_json: bool) -> None:
    """Show the header of the .ugc file SOURCE (the whole file is verified)."""
    from .codec import read_header

    with _user_errors():
        header = read_header(_read_bytes(source))
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
