"""One writer at a time per artifact directory, over its whole read-modify-write.

:func:`writer_lock` holds ``.<name>.lock`` beside the directory (its absolute parent, whatever the
working directory): ``build``, ``add`` and ``remove`` take it before they read the index and keep
it until the new directory is swapped in, so two writers can never both succeed with one's items
lost. A second writer waits up to ``wait`` seconds, then fails with :class:`WriterBusyError`
naming the holder's pid (recorded in the lock file). The lock is re-entrant within a thread, so
:func:`indexer.index.atomic.atomic_directory` takes it again inside an outer hold.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from indexer.errors import ArtifactError

FILE_MODE = 0o644
DIR_MODE = 0o755
_POLL_S = 0.1

_local = threading.local()  # .held: {lock file: depth} of this thread


class WriterBusyError(ArtifactError):
    """Another process is writing the artifact directory (``.pid``: the holder, if known)."""

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


def lock_path(out: str | Path) -> Path:
    """The lock file of an artifact directory: ``.<name>.lock`` beside it (absolute)."""
    out = Path(out).absolute()
    return out.parent / f".{out.name}.lock"


def _holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def writer_lock(out: str | Path, *, wait: float = 0.0) -> Iterator[None]:
    """Hold the writer lock of ``out`` (re-entrant in this thread).

    Raises:
        WriterBusyError: another process held it for longer than ``wait`` seconds.
    """
    lock = lock_path(out)
    held: dict[Path, int] = _local.__dict__.setdefault("held", {})
    if lock in held:
        held[lock] += 1
        try:
            yield
        finally:
            held[lock] -= 1
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except OSError:
        pass  # another user's lock file: reading it is enough to lock it
    try:
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    pid = _holder(fd)
                    who = f"process {pid}" if pid else "another process"
                    waited = f" (waited {wait:g} s)" if wait > 0 else ""
                    raise WriterBusyError(
                        f"{who} is writing {Path(out)}{waited}; try again when it has "
                        f"finished, or pass --wait SECONDS (lock file {lock})",
                        pid,
                    ) from None
                time.sleep(_POLL_S)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        held[lock] = 1
        try:
            yield
        finally:
            del held[lock]
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
