"""Replace a directory atomically, one writer at a time.

:func:`atomic_directory` yields an empty temporary sibling of ``out``; on a clean exit every file
in it is fsynced and it is swapped in for ``out`` (``renameat2(RENAME_EXCHANGE)`` on Linux;
elsewhere rename-old-away then rename-new-in, with :func:`recover` falling back to the
renamed-away copy), so a writer killed at any moment leaves a loadable directory. A lock file
(``.<name>.lock``) refuses a second writer; temporary directories an interrupted write left are
removed by the next one.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from indexer.errors import ArtifactError

logger = logging.getLogger(__name__)

_RENAME_EXCHANGE = 2


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return bool(rc == 0)


def _swap_in(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.rename(tmp, out)
    elif _exchange(tmp, out):
        shutil.rmtree(tmp)  # now holds the previous directory
    else:
        old = out.parent / f".{out.name}.old-{tmp.name.rsplit('-', 1)[-1]}"
        os.rename(out, old)
        os.rename(tmp, out)
        fsync(out.parent)
        shutil.rmtree(old)
    fsync(out.parent)
    for stale in out.parent.glob(f".{out.name}.old-*"):  # left by a write killed mid-swap
        shutil.rmtree(stale, ignore_errors=True)


def recover(path: Path) -> Path:
    """``path``, or the ``.<name>.old-*`` copy a fallback swap killed between its renames left."""
    if path.exists():
        return path
    old = sorted(path.parent.glob(f".{path.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if old:
        logger.warning(
            "%s is missing; loading the copy an interrupted write left: %s", path, old[-1]
        )
        return old[-1]
    raise ArtifactError(f"artifact directory {path} does not exist")


@contextlib.contextmanager
def writer_lock(out: Path) -> Iterator[None]:
    """Hold ``.<name>.lock`` beside ``out``; a second writer gets :class:`ArtifactError`."""
    lock = out.parent / f".{out.name}.lock"
    with lock.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ArtifactError(f"another process is writing {out}") from exc
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def atomic_directory(out: Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``out`` atomically when the block succeeds
    (removed, leaving ``out`` untouched, when it raises)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with writer_lock(out):
        for stale in out.parent.glob(f".{out.name}.tmp-*"):
            logger.info("removing %s left by an interrupted write", stale)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            yield tmp
            for file in tmp.iterdir():
                fsync(file)
            fsync(tmp)
            _swap_in(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
