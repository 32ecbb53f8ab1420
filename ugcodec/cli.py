"""The ``ugc`` command line: encode, decode, info.

Exit codes: 0 success; 1 a file failed (unreadable image, malformed .ugc file, wrong
weights, an output that exists or cannot be written; in a batch, any file); 2 bad usage: a
missing argument or a bad option value, the argument named as click names it ("Invalid
value for '-q' / '--quality': ..."); 143 when stopped by SIGTERM. Errors are one line on
stderr, never a traceback. No output is ever left partial, no existing file is overwritten
without ``--force``, and no input is ever overwritten at all (:mod:`ugcodec.files` writes
every output).

What is printed: results (``info``'s fields, data written to '-') go to stdout; progress
bars (on terminals), summaries and errors to stderr. ``--quiet`` keeps only the errors,
``-v``/``--verbose`` adds a line of details per file; both are accepted before the command
(``ugc --quiet decode ...``) and after it.
"""
from __future__ import annotations

import glob
import json
import os
import sys
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import click

from . import __version__
from .container import MAX_PIXELS
from .errors import UgcError
from .files import check_writable, exit_on_sigterm, read_at_most, write_file
from .settings import DEFAULT_OUTPUT_QUALITY, DEFAULT_PRECISION, DEFAULT_QUALITY, MAX_REFINE_STEPS, PRECISIONS, available_cores

if TYPE_CHECKING:  # no torch at start-up: --version and info need none
    from .container import Container
    from .weights import CodecModel

EXIT_BAD_INPUT = 1
#: click's own exit status for usage errors.
EXIT_USAGE = 2
#: Most bytes read from stdin for an image to encode, per allowed pixel: more than any
#: image file format needs (16-bit RGBA is 8), so only garbage is refused.
_STDIN_IMAGE_BYTES_PER_PIXEL = 8
_STDIN_IMAGE_SLACK = 1 << 20

EXIT_STATUS_HELP = """\b
Exit status: 0 success; 1 a file failed (unreadable or malformed input, wrong
weights, an output that exists or cannot be written; in a batch, any file);
2 usage error (a missing argument, a bad option value); 143 stopped by SIGTERM."""

#: Verbosity levels: ``--quiet``, the default, ``--verbose``.
QUIET, NORMAL, VERBOSE = -1, 0, 1


def _error_text(error: BaseException) -> str:
    """One line for an error a user can cause (an OSError names its file)."""
    if isinstance(error, OSError) and not isinstance(error, UgcError):
        return f"{error.filename or ''}: {error.strerror or error}".lstrip(": ")
    return str(error)


def _fail(message: str) -> "click.exceptions.Exit":
    click.echo(f"ugc: error: {message}", err=True)
    return click.exceptions.Exit(EXIT_BAD_INPUT)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turns every error the user can cause into one line and exit code 1."""
    try:
        yield
    except (UgcError, ValueError, OSError) as error:  # ValueError: values click could not check
        raise _fail(_error_text(error)) from None


def _store_flag(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:  # ctx.meta is shared by the group's context and the command's
        ctx.meta[f"ugc.{param.name}"] = True


def verbosity_options(function: Callable) -> Callable:
    """``--quiet`` and ``-v``/``--verbose``, for the group and every command (either place
    counts; ``-q`` is ``--quality``, so ``--quiet`` has no short form)."""
    function = click.option(
        "-v", "--verbose", is_flag=True, expose_value=False, callback=_store_flag,
        help="Print a line of details per file: sizes, bpp, seconds, the weights' fingerprint, what was written.",
    )(function)
    return click.option(
        "--quiet", is_flag=True, expose_value=False, callback=_store_flag,
        help="Print only errors: no progress bar, no summary (info still prints its fields).",
    )(function)


def verbosity() -> int:
    """The run's level: :data:`QUIET`, :data:`NORMAL` or :data:`VERBOSE`.

    Raises:
        click.UsageError: both ``--quiet`` and ``--verbose`` were given.
    """
    meta = click.get_current_context().meta
    quiet, verbose = meta.get("ugc.quiet", False), meta.get("ugc.verbose", False)
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose contradict each other: give one of them")
    return QUIET if quiet else VERBOSE if verbose else NORMAL


def _note(message: str, level: int = NORMAL) -> None:
    """Prints ``message`` on stderr at ``level`` and above."""
    if verbosity() >= level:
        click.echo(message, err=True)


def _param_hint(name: str) -> str:
    """How click names the parameter ``name`` of the running command in its errors (the
    metavar of an argument, e.g. 'DESTINATION', may be given directly)."""
    ctx = click.get_current_context()
    for param in ctx.command.params:
        if param.name == name:
            return param.get_error_hint(ctx)
    return f"'{name}'"


def bad_value(name: str, message: str) -> click.BadParameter:
    """A usage error (exit 2) that reads ``Invalid value for '-q' / '--quality': message``."""
    return click.BadParameter(message, ctx=click.get_current_context(), param_hint=_param_hint(name))


def missing(metavar: str) -> click.MissingParameter:
    """A usage error (exit 2) that reads ``Missing argument 'DESTINATION'.``"""
    return click.MissingParameter(ctx=click.get_current_context(), param_hint=f"'{metavar}'", param_type="argument")


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


def _read_ugc(path: str, max_pixels: Optional[int]) -> "Container":
    """The verified :class:`ugcodec.container.Container` of the .ugc file ``path`` ('-':
    stdin), read no further than its header declares."""
    from .container import read_container  # no torch for a header

    stream = _open_input(path)
    try:
        return read_container(stream, max_pixels=max_pixels)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


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
threads_option = click.option(
    "--threads", type=click.IntRange(1, 1024), default=None, metavar="N",
    help="Torch threads per process [default: every core this process may use for one file; "
         "1 per worker for many files, which run one worker per core (--jobs)]. The symbols "
         "of a file are the same on any count. Not with --ray (one thread per actor).",
)
precision_option = click.option(
    "--precision", type=click.Choice(PRECISIONS), default=DEFAULT_PRECISION, show_default=True,
    help="Precision of the transforms: 'bfloat16' runs most of their convolutions in bfloat16 "
         "(several times faster on CPUs with AMX, slower elsewhere), 'auto' picks it where the CPU "
         "has AMX. Decoding: the symbols are the same in any, pixel values differ by at most 1. "
         "Encoding: a few symbols may round the other way (an equally valid file).",
)
ray_options = (
    click.option("--ray", "on_ray", is_flag=True,
                 help="Run on Ray: a local instance, or the cluster RAY_ADDRESS names (pip install 'ugcodec[ray]')."),
    click.option("--ray-address", metavar="ADDR", help="Run on the Ray cluster at ADDR (e.g. auto, HOST:6379)."),
)


def _options(*decorators: Callable) -> Callable:
    def apply(function: Callable) -> Callable:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_STATUS_HELP)
@click.version_option(__version__, "-V", "--version", prog_name="ugc")
@verbosity_options
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
      ugc decode encoded/ decoded/ --format jpg --output-quality 85
      ugc info encoded/ --json

    --quiet prints only errors, -v/--verbose a line of details per file; both go
    before or after the command.
    """
    exit_on_sigterm()


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".pnm")
UGC_EXTENSIONS = (".ugc",)


def _is_one_file(sources: Sequence[str]) -> bool:
    """One source that is neither a folder nor a glob pattern: the single-file mode."""
    source = sources[0]
    pattern = glob.has_magic(source) and not os.path.exists(source)
    return len(sources) == 1 and not os.path.isdir(source) and not pattern


def _expand_sources(sources: Sequence[str], extensions: Tuple[str, ...] = IMAGE_EXTENSIONS) -> List[str]:
    """Files named, the files with ``extensions`` inside named folders, and quoted glob
    patterns, in order."""
    paths: List[str] = []
    for source in sources:
        if os.path.isdir(source):
            paths += sorted(
                os.path.join(source, name)
                for name in os.listdir(source)
                if name.lower().endswith(extensions) and os.path.isfile(os.path.join(source, name))
            )
        elif not os.path.exists(source) and glob.has_magic(source):
            paths += sorted(glob.glob(source))
        else:
            paths.append(source)
    return paths


def _unique(paths: Sequence[str]) -> List[str]:
    """``paths`` without a file named twice (a folder and a pattern), in order."""
    unique: List[str] = []
    seen = set()
    for path in paths:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def _summary(destination: str, data: bytes) -> str:
    from .container import Header

    header = Header.unpack(data)
    bpp = 8 * len(data) / (header.width * header.height)
    return (f"{destination}: {header.width}x{header.height} {header.mode}, quality {header.quality}, "
            f"{len(data)} bytes, {bpp:.3f} bpp")


class Done(NamedTuple):
    """What coding one file wrote: a summary line, and the ``--verbose`` line."""

    summary: str
    details: str


class FileBar:
    """The progress bar of one file: the codec's work units (``ugcodec.progress``), then
    ``after`` units of the command's own work (writing the output), so that it reaches
    100 % only once the output is written.

    Args:
        name: the file, shown left of the bar.
        enabled: None shows it on terminals only, False never, True always.
        file: the stream it draws on (default stderr).
    """

    def __init__(self, name: str, enabled: Optional[bool] = None, file=None) -> None:
        self.name = name
        self.enabled = enabled
        self.file = file
        #: Units of work after the codec's; set before the codec first reports.
        self.after = 1
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total + self.after, desc=self.name, leave=False, file=self.file or sys.stderr,
                            disable=None if self.enabled is None else not self.enabled, miniters=1,
                            bar_format="{l_bar}{bar}| {elapsed}<{remaining}")
        self.bar.update(done - self.bar.n)

    def finish(self) -> None:
        """The command's own work is done too: the bar shows 100 %."""
        if self.bar is not None:
            self.bar.update(self.bar.total - self.bar.n)
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _encode_file(source: str, target: str, model: "CodecModel", force: bool, progress: Optional[FileBar], *,
                 quality: int, refine: int, max_pixels: Optional[int], first_frame: bool, strip: bool,
                 precision: str = DEFAULT_PRECISION) -> Done:
    """Encodes one image ('-': stdin) into ``target`` ('-': stdout)."""
    from .codec import encode as encode_image

    started = time.perf_counter()
    image = _read_stdin_image(max_pixels) if source == "-" else source
    data = encode_image(image, quality, model=model, progress=progress, refine=refine, max_pixels=max_pixels,
                        first_frame=first_frame, metadata=not strip, precision=precision)
    _write_output(target, data, force)
    if progress is not None:
        progress.finish()
    read = len(image) if source == "-" else os.path.getsize(source)
    summary = _summary(target, data)
    effort = f", refine {refine}" if refine else ""
    return Done(summary, f"{source} ({read} bytes) -> {summary}{effort}, {time.perf_counter() - started:.2f} s, "
                         f"weights {model.fingerprint.hex()}")


def _decode_file(source: str, target: str, model: "CodecModel", force: bool, progress: Optional[FileBar], *,
                 preference: str, image_format: str, output_quality: Optional[int],
                 max_pixels: Optional[int], precision: str = DEFAULT_PRECISION) -> Done:
    """Decodes one .ugc file ('-': stdin) into an image file ``target`` ('-': stdout)."""
    from .codec import decode as decode_image
    from .image_io import LOSSY_FORMATS, image_file_bytes
    from .progress import image_write_work

    started = time.perf_counter()
    container = _read_ugc(source, max_pixels)
    header = container.header
    if progress is not None:
        progress.after = image_write_work(header.width, header.height)
    image = decode_image(container.to_bytes(), preference, model=model, progress=progress, max_pixels=max_pixels,
                         precision=precision)
    data = image_file_bytes(image, image_format, output_quality)
    _write_output(target, data, force)
    if progress is not None:
        progress.finish()
    lossy = f" at quality {output_quality or DEFAULT_OUTPUT_QUALITY}" if image_format in LOSSY_FORMATS else ""
    summary = f"{target}: {image.width}x{image.height} {image.mode} ({preference})"
    return Done(summary, f"{source} ({header.file_bytes} bytes, quality {header.quality}) -> {target}: "
                         f"{image.width}x{image.height} {image.mode} {image_format}{lossy}, {len(data)} bytes, "
                         f"for {preference}, {time.perf_counter() - started:.2f} s, weights {header.fingerprint.hex()}")


#: How each command codes one file: ``(source, target, model, force, progress, **options)``.
_CODERS: Dict[str, Callable[..., Done]] = {"encode": _encode_file, "decode": _decode_file}


def _code_one(task: str, source: str, destination: str, weights: Optional[str], force: bool, options: dict,
              threads: Optional[int] = None) -> None:
    """Codes one file with a progress bar that runs from reading to writing, then says
    what it wrote; with ``threads`` torch threads (None: every core available)."""
    from .codec import torch_threads
    from .weights import load_model

    level = verbosity()
    with _user_errors(), torch_threads(threads or available_cores()):
        if destination != "-":
            _check_output([source], destination, force)
        model = load_model(weights)
        bar = FileBar(source if source != "-" else "stdin", enabled=None if level >= NORMAL else False)
        try:
            done = _CODERS[task](source, destination, model, force, bar, **options)
        finally:
            bar.close()
    _note(done.details if level >= VERBOSE else done.summary)


def _check_folder_destination(folder: str, file_extensions: Tuple[str, ...]) -> None:
    """Several inputs go into a folder: refuse a destination that is a file, or whose
    name says it was meant as one (it ends in one of ``file_extensions``)."""
    if os.path.exists(folder):
        if not os.path.isdir(folder):
            raise UgcError(f"{folder} is not a folder: several inputs need a destination folder")
    elif folder.lower().endswith(file_extensions):
        raise UgcError(f"several inputs need a destination folder, and {folder} looks like a file name "
                       f"(name a folder, e.g. {os.path.splitext(folder)[0]}/)")


def _plan_outputs(paths: List[str], folder: Optional[str], name: Callable[[str], str]) -> List[Tuple[str, str]]:
    """``(source, target)`` for every input: ``name(source)`` in ``folder`` (None: next to
    the source); refuses a run where two inputs would share an output, or an output would
    be an input."""
    unique = _unique(paths)
    by_target: Dict[str, List[str]] = {}
    plan = []
    for source in unique:
        target = os.path.join(os.path.dirname(source) if folder is None else folder, name(source))
        by_target.setdefault(os.path.normcase(os.path.realpath(target)), []).append(source)
        plan.append((source, target))
    clashes = [sources for sources in by_target.values() if len(sources) > 1]
    if clashes:
        described = "; ".join(" and ".join(sources) for sources in clashes[:5])
        more = f" (and {len(clashes) - 5} more)" if len(clashes) > 5 else ""
        raise UgcError(f"inputs would overwrite each other's output: {described}{more}; "
                       "rename them or write them into different folders")
    inputs = {os.path.realpath(path) for path in unique}
    for source, target in plan:
        if os.path.realpath(target) in inputs:
            raise UgcError(f"refusing to overwrite the input file {target} (the output of {source})")
    return plan


_worker_model = None


def _worker_start(weights: Optional[str], threads: Optional[int] = None) -> None:
    global _worker_model
    import torch

    from .weights import load_model

    torch.set_num_threads(threads or 1)  # one process per core is faster than threads within one
    _worker_model = load_model(weights)


def _worker_code(job: Tuple[str, str, str, dict, bool]) -> Tuple[str, Optional[Done], Optional[str]]:
    task, source, target, options, force = job
    try:
        return source, _CODERS[task](source, target, _worker_model, force, None, **options), None
    except (UgcError, ValueError, OSError) as error:
        return source, None, _error_text(error)
    except Exception as error:  # a bug must cost this file, not the run and its summary
        return source, None, f"unexpected {type(error).__name__}: {error}"


def _code_many(task: str, paths: List[str], folder: Optional[str], name: Callable[[str], str], *,
               weights: Optional[str], force: bool, jobs: Optional[int], options: dict, noun: str,
               threads: Optional[int] = None) -> None:
    """Codes many files on every core (``jobs`` processes of ``threads`` torch threads,
    default 1) into ``folder`` (None: next to each source), with a bar that advances as
    each file is done; a bad file is reported at the end and does not stop the others
    (exit code 1 if any failed)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm import tqdm

    from .weights import load_model

    level = verbosity()
    with _user_errors():
        if not paths:
            raise UgcError(f"no {'image' if task == 'encode' else '.ugc'} files found")
        plan = _plan_outputs(paths, folder, name)
        load_model(weights)  # fail early, once, on bad weights
        if folder is not None:
            os.makedirs(folder, exist_ok=True)
            check_writable(os.path.join(folder, ".ugc-write-check"), overwrite=True)
    failures: List[Tuple[str, str]] = []
    work = []
    for source, target in plan:
        if os.path.lexists(target) and not force:
            failures.append((source, f"{target} exists (use --force to overwrite it)"))
        else:
            work.append((task, source, target, options, force))
    workers = min(jobs or available_cores(), max(1, len(work)))
    if work:
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_start,
                                   initargs=(weights, threads))
        try:
            futures = {pool.submit(_worker_code, job): job[1] for job in work}
            with tqdm(total=len(futures), unit="file", desc=f"{task[:-1]}ing", file=sys.stderr,
                      disable=None if level >= NORMAL else True) as progress:
                for future in as_completed(futures):
                    try:
                        source, done, error = future.result()
                    except Exception as crash:  # a worker process died (killed, out of memory)
                        source, done, error = futures[future], None, f"worker stopped: {type(crash).__name__}: {crash}"
                    if error:
                        failures.append((source, error))
                    elif level >= VERBOSE:
                        progress.write(done.details, file=sys.stderr)
                    progress.set_postfix_str(os.path.basename(source), refresh=False)
                    progress.update(1)
        finally:
            # On SIGINT/SIGTERM: drop what has not started; running files finish or clean up.
            pool.shutdown(wait=True, cancel_futures=True)
    where = f"into {folder}" if folder is not None else "next to their sources"
    _note(f"{task}d {len(plan) - len(failures)} of {len(plan)} {noun} {where}")
    _report_failures(failures)


def _report_failures(failures: List[Tuple[str, str]]) -> None:
    """Lists the files that failed, one line each, and exits with code 1 if any did."""
    if failures:
        for source, error in sorted(failures):
            click.echo(f"ugc: error: {source}: {error}", err=True)
        raise click.exceptions.Exit(EXIT_BAD_INPUT)


def _quality_levels(weights: Optional[str]) -> int:
    """The number of quality levels of the weights (the shipped ones without torch)."""
    if weights is None:
        from .container import shipped_weights_summary

        return shipped_weights_summary().num_qualities
    from .weights import load_model

    return load_model(weights).num_qualities


def _ugc_name(source: str) -> str:
    return os.path.splitext(os.path.basename(source))[0] + ".ugc"


@main.command(epilog=EXIT_STATUS_HELP)
@click.argument("sources", nargs=-1, type=click.Path(), metavar="SOURCES...")
@click.argument("destination", required=False, type=click.Path(), metavar="DESTINATION")
@click.option(
    "-q", "--quality", type=click.IntRange(min=1), default=DEFAULT_QUALITY, show_default=True,
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
@precision_option
@threads_option
@_options(*ray_options)
@verbosity_options
def encode(sources: Tuple[str, ...], destination: Optional[str], quality: int, refine: int, force: bool,
           jobs: Optional[int], weights: Optional[str], strip: bool, max_pixels: int, first_frame: bool,
           precision: str, threads: Optional[int], on_ray: bool, ray_address: Optional[str]) -> None:
    """Compress images (PNG, JPEG, ...) into .ugc files.

    \b
    ugc encode photo.png photo.ugc        one file ('-' reads stdin / writes stdout)
    ugc encode photos/ out/               every image in a folder, into a folder
    ugc encode a.png b.jpg 'c*.png' out/  several files or patterns, into a folder
    ugc encode photo.png photo.ugc -q 4 --refine 20   slower, better encoding
    ugc encode photos/ out/ --ray         on Ray: a local instance or a cluster
                                          (--ray-address ADDR; ugcodec/ray_batch.py)

    One file gets a progress bar from reading to writing (refinement included). Many
    files are encoded in parallel with a bar that counts files; a bad file is reported
    at the end and does not stop the others (exit code 1 if any failed). Two inputs
    that would give one output name (a.png and a.jpg) stop the run before any work.
    """
    if not sources:
        raise missing("SOURCES..." if destination is None else "DESTINATION")
    verbosity()  # --quiet with --verbose: a usage error before any work
    with _user_errors():
        levels = _quality_levels(weights)
    if quality > levels:
        raise bad_value("quality", f"{quality} is not a level of these weights: use 1 to {levels}.")
    if on_ray or ray_address:  # always into a folder; ugcodec/ray_batch.py says how to use a cluster
        _no_threads_on_ray(threads)
        from .ray_batch import encode_cli

        return encode_cli(_expand_sources(sources), destination, quality=quality, refine=refine, force=force,
                          workers=jobs, weights=weights, strip=strip, address=ray_address, precision=precision)
    options = dict(quality=quality, refine=refine, max_pixels=_max_pixels(max_pixels), first_frame=first_frame,
                   strip=strip, precision=precision)
    if _is_one_file(sources):
        source = sources[0]
        if os.path.isdir(destination) and source != "-":
            destination = os.path.join(destination, _ugc_name(source))
        _code_one("encode", source, destination, weights, force, options, threads)
    else:
        with _user_errors():
            _check_folder_destination(destination, UGC_EXTENSIONS)
            paths = _expand_sources(sources)
        _code_many("encode", paths, destination, _ugc_name, weights=weights, force=force, jobs=jobs,
                   options=options, noun="images", threads=threads)


def _no_threads_on_ray(threads: Optional[int]) -> None:
    if threads is not None:
        raise bad_value("threads", "Ray actors run one thread each: leave --threads out with --ray.")


def _default_output(source: str, preference: str, extension: str = "png") -> str:
    stem = source[:-4] if source.lower().endswith(".ugc") else source
    label = preference if preference in ("human", "machine") else f"beta{float(preference):.2f}"
    return f"{stem}.{label}.{extension}"


#: ``--format`` choices: the Pillow format of each, and the extension of the names ugc picks.
OUTPUT_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}
_FORMAT_EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}


def _split_destination(arguments: Tuple[str, ...]) -> Tuple[Tuple[str, ...], Optional[str]]:
    """decode's ``SOURCES... [DESTINATION]``: the last of several arguments is the
    destination unless it names a .ugc file (or a pattern of them)."""
    if len(arguments) >= 2 and not arguments[-1].lower().endswith(UGC_EXTENSIONS):
        return arguments[:-1], arguments[-1]
    return arguments, None


def _output_format(destination: Optional[str], image_format: Optional[str]) -> str:
    """The Pillow format of decoded images: ``--format``, else the extension of the file
    named as ``destination`` (None: a folder, stdout or default names), else PNG. Usage
    errors name what is wrong."""
    from PIL import Image

    chosen = OUTPUT_FORMATS[image_format.lower()] if image_format else None
    if destination is None:
        return chosen or "PNG"
    extension = os.path.splitext(destination)[1].lower()
    named = Image.registered_extensions().get(extension)
    if named is None:
        if chosen:
            return chosen
        raise bad_value("DESTINATION", f"cannot tell the image format from {destination!r}: "
                                       "end it in .png, .jpg or .webp, or give --format.")
    if chosen and chosen != named:
        raise bad_value("image_format", f"{image_format} disagrees with the name {destination!r}.")
    return named


@main.command(epilog=EXIT_STATUS_HELP)
@click.argument("arguments", nargs=-1, type=click.Path(allow_dash=True), metavar="SOURCES... [DESTINATION]")
@click.option(
    "--for", "--preference", "preference", default="human", show_default=True,
    help="Who the picture is for: 'human', 'machine', or a number in [0, 1] that blends them.",
)
@click.option("--format", "image_format", type=click.Choice(sorted(OUTPUT_FORMATS), case_sensitive=False),
              help="Image format of the outputs (default: DESTINATION's extension, else png).")
@click.option("--output-quality", type=click.IntRange(1, 100), metavar="1-100",
              help=f"JPEG or WebP quality of the outputs [default: {DEFAULT_OUTPUT_QUALITY}]. "
                   "PNG is lossless: giving it for PNG is an error.")
@precision_option
@click.option("-f", "--force", is_flag=True, help="Overwrite existing outputs (never an input).")
@click.option("-j", "--jobs", type=click.IntRange(1, 4096), default=None,
              help="Parallel workers when decoding many files (default: CPU cores); with --ray, most actors.")
@click.option("--weights", type=click.Path(dir_okay=False), help="Weights file (default: the shipped model).")
@max_pixels_option
@threads_option
@_options(*ray_options)
@verbosity_options
def decode(arguments: Tuple[str, ...], preference: str, image_format: Optional[str], output_quality: Optional[int],
           precision: str, force: bool, jobs: Optional[int], weights: Optional[str], max_pixels: int,
           threads: Optional[int], on_ray: bool, ray_address: Optional[str]) -> None:
    """Decompress .ugc files into images.

    \b
    ugc decode photo.ugc out.png          one file; the extension picks the format
    ugc decode photo.ugc --for machine    writes photo.machine.png beside it
    ugc decode coded/ decoded/            every .ugc file in a folder, into a folder
    ugc decode a.ugc b.ugc 'c*.ugc'       several files, each beside its source
    ugc decode coded/ out/ --format jpg --output-quality 85

    The last of several arguments is DESTINATION unless it ends in .ugc. Without it,
    outputs are named NAME.human.png (or .machine, .beta0.50; the extension follows
    --format). PNG is lossless: use it unless size matters. '-' reads the file from
    stdin or writes to stdout (PNG unless --format). One file gets a progress bar from
    parsing to writing; many files are decoded in parallel, a bad file is reported at
    the end and does not stop the others (exit code 1 if any failed).
    """
    from .codec import preference_to_beta

    sources, destination = _split_destination(arguments)
    if not sources:
        raise missing("SOURCES...")
    verbosity()
    try:
        preference_to_beta(preference)  # checked before any file work
    except ValueError as error:
        raise bad_value("preference", f"{error}.") from None
    one = _is_one_file(sources)
    into_folder = destination not in (None, "-") and (
        on_ray or ray_address or not one or os.path.isdir(destination) or destination.endswith(("/", os.sep)))
    chosen = _output_format(None if into_folder or destination == "-" else destination, image_format)
    if output_quality is not None and chosen not in ("JPEG", "WEBP"):
        raise bad_value("output_quality", f"{chosen} output is lossless; the quality applies to JPEG and WebP outputs.")
    if on_ray or ray_address:
        _no_threads_on_ray(threads)
        from .ray_batch import decode_cli

        return decode_cli(list(sources), destination, preference=preference, force=force, workers=jobs,
                          weights=weights, address=ray_address, image_format=chosen, output_quality=output_quality,
                          precision=precision)
    label = preference.strip().lower()
    options = dict(preference=preference, image_format=chosen, output_quality=output_quality,
                   max_pixels=_max_pixels(max_pixels), precision=precision)
    extension = _FORMAT_EXTENSIONS.get(chosen, "png")

    def name(source: str) -> str:
        return os.path.basename(_default_output(source, label, extension))

    if one:
        source = sources[0]
        if destination is None:
            if source == "-":
                raise missing("DESTINATION")
            destination = _default_output(source, label, extension)
        elif os.path.isdir(destination):
            if source == "-":
                raise bad_value("DESTINATION", f"{destination} is a folder: name the file to write from stdin.")
            destination = os.path.join(destination, name(source))
        _code_one("decode", source, destination, weights, force, options, threads)
    else:
        with _user_errors():
            if destination is not None:
                _check_folder_destination(destination, IMAGE_EXTENSIONS)
            paths = _expand_sources(sources, UGC_EXTENSIONS)
        _code_many("decode", paths, destination, name, weights=weights, force=force, jobs=jobs, options=options,
                   noun="files", threads=threads)


def _file_fields(source: str, weights: Optional[str], max_pixels: Optional[int]) -> dict:
    """The header and metadata of one .ugc file, verified as decode would verify it."""
    from .container import check_weights, shipped_weights_summary  # no torch for a header

    container = _read_ugc(source, max_pixels)
    if weights:
        from .codec import check_model
        from .weights import load_model

        check_model(load_model(weights), container.header)
    else:
        check_weights(container.header, shipped_weights_summary())
    fields = container.header.to_dict()
    fields["metadata"] = container.metadata.describe()
    return fields


def _print_fields(fields: dict, indent: str = "") -> None:
    width = max(len(name) for name in fields)
    for name, value in fields.items():
        if isinstance(value, float):
            value = f"{value:.4f}"
        elif isinstance(value, dict):  # metadata: what the file carries, with sizes
            value = ", ".join(f"{key} ({size} bytes)" for key, size in value.items()) or "none"
        click.echo(f"{indent}{name.replace('_', ' '):<{width}}  {value}")


@main.command(epilog=EXIT_STATUS_HELP)
@click.argument("sources", nargs=-1, type=click.Path(allow_dash=True), metavar="SOURCES...")
@click.option("--json", "as_json", is_flag=True,
              help="Print the header as JSON (for several files: a list, each with its 'file').")
@click.option("--weights", type=click.Path(dir_okay=False),
              help="Check the files against this weights file (default: the shipped model).")
@max_pixels_option
@verbosity_options
def info(sources: Tuple[str, ...], as_json: bool, weights: Optional[str], max_pixels: int) -> None:
    """Show the header and metadata of .ugc files (files, folders, patterns).

    Every file is verified as decode would: its checksums, fields and the pixel
    limit, and that the weights (--weights, default the shipped ones) made it. With
    several files, a bad one is reported at the end and does not stop the others
    (exit code 1 if any failed).
    """
    if not sources:
        raise missing("SOURCES...")
    verbosity()
    checked = f"checked against {weights or 'the shipped weights'}"
    if _is_one_file(sources):
        with _user_errors():
            fields = _file_fields(sources[0], weights, _max_pixels(max_pixels))
        if as_json:
            click.echo(json.dumps(fields, indent=2))
        else:
            _print_fields(fields)
        _note(f"{sources[0]}: {checked}", VERBOSE)
        return
    with _user_errors():
        paths = _unique(_expand_sources(sources, UGC_EXTENSIONS))
        if not paths:
            raise UgcError("no .ugc files found")
    described, failures = [], []
    for path in paths:
        try:
            described.append({"file": path, **_file_fields(path, weights, _max_pixels(max_pixels))})
        except (UgcError, ValueError, OSError) as error:
            failures.append((path, _error_text(error)))
    if as_json:
        click.echo(json.dumps(described, indent=2))
    else:
        for index, fields in enumerate(described):
            click.echo(("\n" if index else "") + f"{fields['file']}:")
            _print_fields({name: value for name, value in fields.items() if name != "file"}, indent="  ")
    _note(f"{len(described)} of {len(paths)} files {checked}")
    _report_failures(failures)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
