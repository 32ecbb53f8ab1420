"""Safe file output and bounded input: the one place ugcodec writes or reads files.

Writing (:func:`write_file`): the bytes go to an unnamed (Linux ``O_TMPFILE``) or hidden
temporary file in the destination's folder, are flushed to disk (``fsync``), and only then
get the destination's name: with ``os.link`` when nothing may be overwritten (the kernel
refuses an existing name, so two writers racing for one name cannot both win), with
``os.replace`` when overwriting is allowed. The destination is therefore either untouched
or complete, and a named temporary file is removed on any exception, ``KeyboardInterrupt``
(SIGINT) or, once :func:`exit_on_sigterm` is installed, SIGTERM.

An unnamed file has no name until the complete, synced file is linked into the folder
(``linkat`` of ``/proc/self/fd/N`` with ``AT_SYMLINK_FOLLOW``), so a process killed
while writing, even by SIGKILL, leaves nothing behind: the kernel frees the file with
its last descriptor. Overwriting links it under a hidden name first and renames that over
the destination (a SIGKILL between those two calls leaves the hidden file). Where the
platform or filesystem has no unnamed files, or refuses to name them, the hidden named
temporary file is used from the start, and a SIGKILL can leave it behind.

Reading (:func:`read_at_most`): never more than a stated number of bytes, so a
``/dev/zero`` or a huge file named as input costs nothing.
"""
from __future__ import annotations

import errno
import os
import signal
import stat
from typing import BinaryIO, Optional, Set

from .errors import UgcError

__all__ = ["OutputError", "write_file", "check_writable", "read_at_most", "exit_on_sigterm"]

#: Named temporary files not yet renamed; removed on SIGTERM by :func:`exit_on_sigterm`.
_PENDING: Set[str] = set()
#: Devices (``st_dev``) whose filesystem refused an unnamed file or its naming: written
#: through named temporary files from then on.
_NO_UNNAMED: Set[int] = set()


class OutputError(UgcError, OSError):
    """An output cannot be written: it exists (and overwriting was not allowed), its folder
    is missing or read-only, or the disk is full. The message names the destination."""


def _describe(error: OSError) -> str:
    return error.strerror or str(error)


def _new_file_mode(path: str) -> int:
    """An overwritten file keeps its permission bits; a new one gets what ``open()`` gives
    (0o666 less the umask), not the private 0o600 of a temporary file."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        umask = os.umask(0o022)  # the umask can only be read by setting it
        os.umask(umask)
        return 0o666 & ~umask


def _folder_of(path: str) -> str:
    return os.path.dirname(os.path.abspath(path))


def _fsync_folder(folder: str) -> None:
    """Makes the new name itself durable (POSIX: the directory entry lives in the folder)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the data itself is synced
    finally:
        os.close(descriptor)


def _open_unnamed(folder: str, folder_descriptor: Optional[int] = None) -> Optional[int]:
    """A descriptor of an unnamed file in ``folder`` (Linux ``O_TMPFILE``; opened relative
    to ``folder_descriptor`` when given), or None where the platform or filesystem has none."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        if folder_descriptor is None:
            return os.open(folder, flag | os.O_WRONLY, 0o600)
        return os.open(".", flag | os.O_WRONLY, 0o600, dir_fd=folder_descriptor)
    except OSError as error:
        if error.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return None
        raise


def _name_unnamed(descriptor: int, folder_descriptor: int, name: str) -> None:
    """Links the unnamed file ``descriptor`` as ``name`` in the folder ``folder_descriptor``.

    ``linkat(AT_FDCWD, "/proc/self/fd/N", folder, name, AT_SYMLINK_FOLLOW)``: following
    the ``/proc`` link is what names the open file itself (a plain ``link()`` would try
    to link the ``/proc`` entry and fail with ``EXDEV``); ``os.link`` calls ``linkat``
    with that flag when given a ``dst_dir_fd``. Fails with ``FileExistsError`` if
    ``name`` exists: the kernel checks and creates in one step.
    """
    os.link(f"/proc/self/fd/{descriptor}", name, dst_dir_fd=folder_descriptor)


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(descriptor, view)
        view = view[written:]
    os.fsync(descriptor)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
    _PENDING.discard(path)


def _hidden_name(folder: str, path: str) -> str:
    return os.path.join(folder, f".{os.path.basename(path)}.{os.urandom(6).hex()}.part")


def _publish(temporary: str, path: str, overwrite: bool) -> None:
    """Gives the complete ``temporary`` the name ``path`` (exclusively unless ``overwrite``)."""
    if overwrite:
        os.replace(temporary, path)
        _PENDING.discard(temporary)
        return
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise OutputError(f"{path} exists (use --force to overwrite it)") from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        # No hard links here (some network and FAT filesystems): claim the name with
        # O_EXCL first, then move the complete file over the claim.
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            raise OutputError(f"{path} exists (use --force to overwrite it)") from None
        os.replace(temporary, path)
    _unlink_quietly(temporary)


def _write_unnamed(folder: str, path: str, data: bytes, mode: int, overwrite: bool) -> bool:
    """Writes through an unnamed file; False (nothing done) where it cannot be named."""
    try:
        device = os.stat(folder).st_dev
    except OSError:
        return False  # the named path reports the missing folder
    if device in _NO_UNNAMED:
        return False
    try:
        folder_descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False  # e.g. a folder that can be written but not read
    descriptor = temporary = None
    try:
        descriptor = _open_unnamed(folder, folder_descriptor)
        if descriptor is None:
            _NO_UNNAMED.add(device)
            return False
        _write_all(descriptor, data)
        os.fchmod(descriptor, mode)
        name = os.path.basename(path)
        if overwrite:  # a hidden name first, which then replaces the destination
            temporary = _hidden_name(folder, path)
            _PENDING.add(temporary)
        try:
            _name_unnamed(descriptor, folder_descriptor, os.path.basename(temporary or path))
        except FileExistsError:
            if overwrite:
                raise
            raise OutputError(f"{path} exists (use --force to overwrite it)") from None
        except OSError as error:
            # Some mounts refuse to name a file through /proc (EXDEV, EPERM, ENOENT).
            if error.errno in (errno.EXDEV, errno.EPERM, errno.ENOENT, errno.EOPNOTSUPP, errno.EACCES):
                _NO_UNNAMED.add(device)
                return False
            raise
        if temporary is not None:
            os.replace(os.path.basename(temporary), name, src_dir_fd=folder_descriptor, dst_dir_fd=folder_descriptor)
            _PENDING.discard(temporary)
            temporary = None
        try:
            os.fsync(folder_descriptor)  # the new name itself, durable
        except OSError:
            pass  # some filesystems cannot fsync a directory; the data itself is synced
        return True
    finally:
        if descriptor is not None:
            os.close(descriptor)
        os.close(folder_descriptor)
        if temporary is not None:
            _unlink_quietly(temporary)


def _write_named(folder: str, path: str, data: bytes, mode: int, overwrite: bool) -> None:
    """Writes through a hidden temporary file, removed whatever happens."""
    temporary = _hidden_name(folder, path)
    _PENDING.add(temporary)
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _write_all(descriptor, data)
            os.fchmod(descriptor, mode)
        finally:
            os.close(descriptor)
        _publish(temporary, path, overwrite)
    finally:
        _unlink_quietly(temporary)


def write_file(path: str, data: bytes, overwrite: bool = False) -> None:
    """Writes ``data`` to ``path`` so that it is either complete or not there at all.

    Args:
        path: the destination file.
        data: its whole content.
        overwrite: replace an existing ``path``; otherwise an existing one is refused,
            also when another process creates it while this one writes.

    Raises:
        OutputError: ``path`` exists (without ``overwrite``), or cannot be written; the
            message names ``path``, never the temporary file.
    """
    folder = _folder_of(path)
    mode = _new_file_mode(path)
    data = memoryview(data)
    try:
        if not _write_unnamed(folder, path, data, mode, overwrite):
            _write_named(folder, path, data, mode, overwrite)
            _fsync_folder(folder)
    except OutputError:
        raise
    except OSError as error:
        raise OutputError(f"cannot write {path}: {_describe(error)}") from None


def check_writable(path: str, overwrite: bool = False) -> None:
    """Refuses, before any work, an output that could not be written.

    Checks that the folder exists and takes new files (by creating and removing a
    probe), that ``path`` is not a folder, and without ``overwrite`` that it does not
    exist yet (:func:`write_file` checks that again, atomically, when it writes).

    Raises:
        OutputError: with a message naming ``path``.
    """
    folder = _folder_of(path)
    if not os.path.isdir(folder):
        raise OutputError(f"no such folder: {os.path.dirname(path) or folder} (to write {path} in)")
    if os.path.isdir(path):
        raise OutputError(f"cannot write {path}: it is a folder")
    if os.path.lexists(path) and not overwrite:
        raise OutputError(f"{path} exists (use --force to overwrite it)")
    try:
        descriptor = _open_unnamed(folder)
        if descriptor is None:
            probe = _hidden_name(folder, path)
            _PENDING.add(probe)
            try:
                os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            finally:
                _unlink_quietly(probe)
        else:
            os.close(descriptor)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {_describe(error)}") from None


def read_at_most(stream: BinaryIO, limit: int) -> bytes:
    """Reads until the end of ``stream`` but never more than ``limit`` bytes.

    Returns:
        the bytes read: ``limit`` of them when the stream holds at least that many.

    Raises:
        TypeError: the stream gives text, not bytes.
    """
    chunks = []
    remaining = limit
    while remaining > 0:
        chunk = stream.read(min(remaining, 1 << 20))
        if not chunk:
            break
        if not isinstance(chunk, (bytes, bytearray)):
            raise TypeError(f"the file object gave {type(chunk).__name__}, not bytes: open it in binary mode ('rb')")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _on_sigterm(signum, frame) -> None:
    for temporary in list(_PENDING):
        _unlink_quietly(temporary)
    # Unwinds like Ctrl-C does, so that every ``finally`` runs; exit status 128 + 15.
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """Makes SIGTERM remove pending temporary files and exit (status 143) through the
    normal unwinding, as SIGINT does with ``KeyboardInterrupt``. For the main thread of a
    command-line program; a library never installs signal handlers by itself."""
    import threading

    if threading.current_thread() is threading.main_thread():  # signal() works there only
        signal.signal(signal.SIGTERM, _on_sigterm)
