"""Encoding and decoding many files on a Ray cluster with Ray Data (``pip install "ugcodec[ray]"``).

``ugc encode photos/ out/ --ray`` starts a local Ray instance (or joins the cluster named by
``--ray-address``, or the one ``RAY_ADDRESS`` names) and codes the files with a pool of
actors, each loading the model once (``Dataset.map_batches`` with a callable class, one
CPU and one torch thread per actor, so the bytes are those of the local ``ugc encode``,
which also runs one thread per worker process). The driver receives the coded bytes as
they are ready, writes every output atomically (a temporary file in the same folder, then
a rename), shows progress, and lists the files that failed at the end without stopping
the others.

On a cluster::

    ray start --head                                  # on the head node (once)
    ray start --address HEAD_IP:6379                  # on every other node
    ugc encode /shared/photos /shared/ugc --ray-address HEAD_IP:6379
    ugc encode s3://bucket/photos/*.jpg out/ --ray-address auto   # from a node of the cluster

Every node needs ugcodec (and the weights, if not the shipped ones, at the same path) and
must be able to read the sources: a shared file system, or URIs that pyarrow's file
systems open (``s3://``, ``gs://``, ``hdfs://``...). Outputs are written by the driver,
into a folder on the machine that runs ``ugc``. ``ray job submit`` works too: run the same
command as the job's entry point.

Ray Data's own ``read_images`` reads .ugc files too, through the Pillow plugin, once every
worker has registered it (decoded for humans; ``register_ugc_opener`` picks another
preference)::

    ray.init(runtime_env={"worker_process_setup_hook": "ugcodec.pillow_plugin.register_ugc_opener"})
    images = ray.data.read_images("coded/", file_extensions=["ugc"])
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .settings import DEFAULT_PRECISION

__all__ = ["BatchReport", "run_on_ray", "encode_cli", "decode_cli"]

#: Blocks per actor: enough that a slow file does not hold the others back.
_BLOCKS_PER_WORKER = 8


@dataclass
class BatchReport:
    """What a batch run did: ``done`` outputs written, ``failures`` ``(source, message)``."""

    done: int = 0
    failures: List[Tuple[str, str]] = field(default_factory=list)


def _read_source(source: str) -> bytes:
    """A local path, or a URI that pyarrow's file systems open (``s3://...``)."""
    if "://" in source and not source.startswith("file://"):
        from pyarrow import fs

        filesystem, path = fs.FileSystem.from_uri(source)
        with filesystem.open_input_stream(path) as stream:
            return stream.read()
    with open(source[len("file://"):] if source.startswith("file://") else source, "rb") as handle:
        return handle.read()


class _Coder:
    """One Ray actor: loads the model once, then codes batches of sources."""

    def __init__(self, task: str, weights: Optional[str], options: Dict) -> None:
        import torch

        from .weights import load_model

        torch.set_num_threads(1)
        self.task, self.options = task, options
        self.model = load_model(weights)

    def _code(self, source: str) -> bytes:
        from .codec import decode, encode

        data = _read_source(source)
        if self.task == "encode":
            return encode(data, self.options["quality"], model=self.model, refine=self.options["refine"],
                          metadata=not self.options["strip"], precision=self.options["precision"])
        from .image_io import image_file_bytes

        image = decode(data, self.options["preference"], model=self.model, precision=self.options["precision"])
        return image_file_bytes(image, self.options["image_format"], self.options["output_quality"])

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        from .errors import UgcError

        outputs, errors = [], []
        for source in batch["source"]:
            try:
                outputs.append(self._code(str(source)))
                errors.append("")
            except (UgcError, ValueError, OSError) as error:
                outputs.append(b"")
                errors.append(str(error) or type(error).__name__)
        return {"index": batch["index"], "data": np.array(outputs, dtype=object),
                "error": np.array(errors, dtype=object)}


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as error:
        from .errors import UgcError

        raise UgcError(f'Ray is not installed ({error}): pip install "ugcodec[ray]"') from None
    return ray


def run_on_ray(
    task: str,
    jobs: Sequence[Tuple[str, str]],
    *,
    address: Optional[str] = None,
    workers: Optional[int] = None,
    weights: Optional[str] = None,
    quality: int = 3,
    refine: int = 0,
    strip: bool = False,
    preference: str = "human",
    image_format: str = "PNG",
    output_quality: Optional[int] = None,
    precision: str = DEFAULT_PRECISION,
    progress: bool = True,
) -> BatchReport:
    """Encodes or decodes ``(source, target)`` pairs on Ray; the driver writes the targets.

    Args:
        task: ``"encode"`` (images to .ugc) or ``"decode"`` (.ugc to ``image_format``).
        jobs: source paths or URIs, readable from every node, and local target paths.
        address: the cluster to join (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``);
            ``None`` joins the Ray instance of this process if there is one, else the one
            ``RAY_ADDRESS`` names, else starts a local one with ``workers`` CPUs.
        workers: most actors (one CPU each; default: the cluster's CPUs).
        weights: weights file, at the same path on every node (default: the shipped model).
        quality, refine, strip: encoding options (:func:`ugcodec.encode`).
        preference, image_format, output_quality: decoding options (the quality of JPEG
            and WebP outputs: :func:`ugcodec.image_io.image_file_bytes`).
        precision: of the transforms, encoding or decoding (:mod:`ugcodec.precision`;
            ``"auto"`` is decided on each node).
        progress: a progress bar on stderr.

    Returns:
        a :class:`BatchReport`; a failed file does not stop the others.

    Raises:
        UgcError: Ray is not installed.
    """
    ray = _import_ray()
    if task not in ("encode", "decode"):
        raise ValueError(f"task must be 'encode' or 'decode', not {task!r}")
    from tqdm import tqdm

    from .files import write_file

    report = BatchReport()
    if not jobs:
        return report
    import logging

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # our bar and summary say what happens
    started = False
    if not ray.is_initialized():
        local = address is None and not os.environ.get("RAY_ADDRESS")
        ray.init(address=address, num_cpus=workers if local else None, include_dashboard=False,
                 logging_level=logging.WARNING, log_to_driver=False)
        started = True
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # ours counts written files instead
        cpus = int(ray.cluster_resources().get("CPU", 1))
        pool = max(1, min(workers or cpus, cpus, len(jobs)))
        options = {"quality": quality, "refine": refine, "strip": strip, "preference": preference,
                   "image_format": image_format, "output_quality": output_quality, "precision": precision}
        items = [{"index": index, "source": source} for index, (source, _) in enumerate(jobs)]
        dataset = ray.data.from_items(items, override_num_blocks=min(len(items), pool * _BLOCKS_PER_WORKER))
        coded = dataset.map_batches(
            _Coder, fn_constructor_args=(task, weights, options), batch_size=1, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=pool), num_cpus=1,
        )
        with tqdm(total=len(jobs), unit="image" if task == "encode" else "file", file=sys.stderr,
                  disable=None if progress else True) as bar:
            for batch in coded.iter_batches(batch_size=1, batch_format="numpy"):
                for index, data, error in zip(batch["index"], batch["data"], batch["error"]):
                    source, target = jobs[int(index)]
                    if error:
                        report.failures.append((source, str(error)))
                    else:
                        try:
                            # The caller left out existing targets unless asked to replace them.
                            write_file(target, bytes(data), overwrite=True)
                            report.done += 1
                        except OSError as write_error:
                            report.failures.append((source, f"{target}: {write_error.strerror or write_error}"))
                    bar.update(1)
    finally:
        if started:
            ray.shutdown()
    return report


def _plan(sources: Iterable[str], folder: str, name, force: bool, report: BatchReport) -> List[Tuple[str, str]]:
    """``(source, target)`` pairs; existing targets without ``force`` become failures."""
    jobs = []
    for source in sources:
        target = os.path.join(folder, name(source))
        if os.path.exists(target) and not force:
            report.failures.append((source, f"{target} exists (use --force to overwrite it)"))
        else:
            jobs.append((source, target))
    return jobs


def _finish(report: BatchReport, planned: int, verb: str, folder: Optional[str]) -> None:
    from .cli import _note, _report_failures

    where = f"into {folder}" if folder else "next to their sources"
    _note(f"{verb} {report.done} of {planned} files {where} (on Ray)")
    _report_failures(report.failures)


def _shows_progress() -> bool:
    from .cli import NORMAL, verbosity

    return verbosity() >= NORMAL


def _is_uri(source: str) -> bool:
    return "://" in source


def encode_cli(paths: List[str], folder: str, *, quality: int, refine: int, force: bool, workers: Optional[int],
               weights: Optional[str], strip: bool, address: Optional[str],
               precision: str = DEFAULT_PRECISION) -> None:
    """``ugc encode ... --ray``: the images ``paths`` into ``folder``, then the summary."""
    from .cli import _user_errors
    from .errors import UgcError

    with _user_errors():
        if not paths:
            raise UgcError("no image files found")
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise UgcError(f"{folder} must be a folder when encoding on Ray")
        os.makedirs(folder, exist_ok=True)
        report = BatchReport()
        stem = lambda source: os.path.splitext(os.path.basename(source.rstrip("/")))[0] + ".ugc"  # noqa: E731
        jobs = _plan([source if _is_uri(source) else os.path.abspath(source) for source in paths],
                     folder, stem, force, report)
        result = run_on_ray("encode", jobs, address=address, workers=workers, weights=weights, quality=quality,
                            refine=refine, strip=strip, precision=precision, progress=_shows_progress())
    result.failures += report.failures
    _finish(result, len(paths), "encoded", folder)


def decode_cli(sources: List[str], folder: Optional[str], *, preference: str, force: bool,
               workers: Optional[int], weights: Optional[str], address: Optional[str], image_format: str = "PNG",
               output_quality: Optional[int] = None, precision: str = DEFAULT_PRECISION) -> None:
    """``ugc decode ... --ray``: the .ugc files of ``sources`` (files, folders, patterns)
    into ``folder`` (default: next to each file) as ``NAME.human.png`` (or ``.machine``,
    and the extension of ``image_format``)."""
    from .cli import _FORMAT_EXTENSIONS, UGC_EXTENSIONS, _default_output, _expand_sources, _user_errors
    from .errors import UgcError
    from .codec import preference_to_beta

    with _user_errors():
        preference_to_beta(preference)
        paths = _expand_sources(sources, UGC_EXTENSIONS)
        if not paths:
            raise UgcError("no .ugc files found")
        if folder is None and any(_is_uri(path) for path in paths):
            raise UgcError("name a DESTINATION folder when decoding URIs")
        if folder is not None:
            if os.path.exists(folder) and not os.path.isdir(folder):
                raise UgcError(f"{folder} must be a folder when decoding on Ray")
            os.makedirs(folder, exist_ok=True)
        label = preference.strip().lower()
        report = BatchReport()
        jobs = []
        for path in paths:
            target = _default_output(path, label, _FORMAT_EXTENSIONS.get(image_format, "png"))
            if folder is not None:
                target = os.path.join(folder, os.path.basename(target))
            jobs += _plan([path if _is_uri(path) else os.path.abspath(path)], os.path.dirname(target) or ".",
                          lambda _: os.path.basename(target), force, report)
        result = run_on_ray("decode", jobs, address=address, workers=workers, weights=weights,
                            preference=preference, image_format=image_format, output_quality=output_quality,
                            precision=precision, progress=_shows_progress())
    result.failures += report.failures
    _finish(result, len(paths), "decoded", folder)
