"""Writing output files so that nothing half-written or mixed is ever left behind.

- :func:`atomic_write` (bytes, text, or a writer such as ``np.savez``/``torch.save`` given
  a file object) and :func:`atomic_output` (for writers that need a path, e.g. Blender's
  exporters): every file is written under a temporary name in its own folder
  (:func:`temporary_name`) and renamed into place when complete, so an interrupted run
  (Ctrl-C, a killed process, a full disk) leaves either the old file or the new one,
  never a truncated one. With ``overwrite=False`` the rename refuses an existing file
  atomically (a hard link), so two runs cannot both "create" the same output.
- :func:`exclusive_lock`: an advisory lock on a lock file, held by one process at a time
  and released by the operating system when the holder dies (``flock`` on POSIX,
  ``msvcrt.locking`` on Windows).

Only the standard library is used: the Blender extension imports this before its Python
dependencies are installed.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from typing import BinaryIO
from pathlib import Path

__all__ = ["atomic_output", "atomic_write", "exclusive_lock", "is_temporary", "temporary_name", "TEMP_MARK"]

logger = logging.getLogger(__name__)

TEMP_MARK = ".partial-"
"""Part of every temporary file name (``.<name>.partial-<pid>-<random><suffix>``)."""


def temporary_name(path: Path) -> Path:
    """A hidden, unique sibling of ``path`` that keeps its suffix (exporters look at it)."""
    return path.with_name(f".{path.stem}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}{path.suffix}")


def _commit(tmp: Path, path: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails atomically when path exists
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "output exists (use --force to overwrite)", str(path)) from None
    except OSError as exc:  # no hard links here (FAT, some network shares): check, then rename
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        if path.exists():
            raise FileExistsError(errno.EEXIST, "output exists (use --force to overwrite)", str(path)) from None
        os.replace(tmp, path)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it becomes ``path`` in one rename.

    Args:
        path: the final file.
        overwrite: replace an existing ``path``; when False an existing file raises
            FileExistsError at the commit (and the new data is discarded).

    Raises:
        FileExistsError: ``overwrite`` is False and ``path`` exists.
        FileNotFoundError: the body wrote nothing to the temporary path.

    On any exception in the body the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(errno.ENOENT, "nothing was written for this output", str(path))
        _commit(tmp, path, overwrite)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def is_temporary(path: str | os.PathLike) -> bool:
    """True for a name made by :func:`temporary_name` (a leftover of an interrupted write)."""
    name = Path(path).name
    return name.startswith(".") and TEMP_MARK in name


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[BinaryIO], object], *,
                 overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically, flushed to disk before the rename.

    Args:
        path: the final file.
        data: ``bytes``; ``str`` (written as UTF-8); or a callable that writes into the
            binary file object it is given, e.g. ``lambda fh: np.savez(fh, a=a)`` or
            ``lambda fh: torch.save(state, fh)``.
        overwrite: as :func:`atomic_output`.

    Returns:
        ``path`` as a :class:`Path`.

    Raises:
        FileExistsError: ``overwrite`` is False and ``path`` exists.
        OSError: the data could not be written (e.g. a full disk); ``path`` is untouched.
        Exception: whatever the writer raises; ``path`` is untouched.
    """
    with atomic_output(path, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else bytes(data))
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fd: int) -> None:
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # retries for ~10 s, then raises
                return
            except OSError:
                continue

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created; removed again on release).

    Waits while another process holds it. A holder that dies releases it; its stale lock
    file is simply taken over. The file is re-checked after locking so that a file removed
    by the previous holder is never locked by two processes at once.
    """
    path = Path(path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock(fd)
        except BaseException:
            os.close(fd)
            raise
        try:
            held, current = os.fstat(fd), os.stat(path)
            same = (held.st_ino, held.st_dev) == (current.st_ino, current.st_dev)
        except FileNotFoundError:
            same = False
        if same:
            break
        _unlock(fd)
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # before unlocking: a waiter then sees a removed file and retries
        with contextlib.suppress(OSError):
            _unlock(fd)
        os.close(fd)
