"""Replace a directory atomically, one writer at a time.

:func:`atomic_directory` yields an empty temporary sibling of ``out``; on a clean exit every file
in it is fsynced and it is swapped in for ``out`` (``renameat2(RENAME_EXCHANGE)`` on Linux;
elsewhere rename-old-away then rename-new-in, with :func:`recover` falling back to the
renamed-away copy), so a writer killed at any moment leaves a loadable directory. The writer lock
(:mod:`.locking`, re-entrant: build/add/remove hold it over their whole read-modify-write)
refuses a second writer; temporary directories an interrupted write left are removed by the next
one. The new directory is 0755 and its files 0644, whatever the umask (another uid, e.g. the
container's non-root user, reads a host-built index).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from indexer.errors import ArtifactError
from indexer.index.locking import DIR_MODE, FILE_MODE, writer_lock

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
            os.chmod(tmp, DIR_MODE)  # mkdtemp makes it 0700
            yield tmp
            for file in tmp.iterdir():
                os.chmod(file, DIR_MODE if file.is_dir() else FILE_MODE)
                fsync(file)
            fsync(tmp)
            _swap_in(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
