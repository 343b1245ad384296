"""The writer lock of an artifact directory, held by someone else for a test."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from indexer.index.locking import writer_lock


@contextmanager
def held_elsewhere(out: Path, release: threading.Event) -> Iterator[threading.Thread]:
    """Hold the writer lock of ``out`` in another thread until ``release`` is set."""
    held = threading.Event()

    def holder() -> None:
        with writer_lock(out):
            held.set()
            release.wait(60)

    thread = threading.Thread(target=holder)
    thread.start()
    assert held.wait(30)
    try:
        yield thread
    finally:
        release.set()
        thread.join()
