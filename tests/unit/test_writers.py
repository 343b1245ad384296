"""Writers of an artifact directory: one at a time over the whole read-modify-write, the lock
beside the index, orphaned temporary copies removed, modes readable by other users."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import numpy as np
import pytest
from locks import held_elsewhere
from vector_index import item, write_vector_index

from indexer.build import pipeline
from indexer.build.pipeline import remove_items, write_items
from indexer.errors import ArtifactError
from indexer.index import updating
from indexer.index.artifacts import load_artifacts
from indexer.index.locking import WriterBusyError, lock_path, writer_lock
from indexer.index.updating import rewrite_artifacts
from models.taxonomy import load_taxonomy

TAX = load_taxonomy()


def build(out: Path, n: int = 6) -> None:
    items = [item(i, {"scratch": 1} if i % 2 else {}, taxonomy=TAX) for i in range(n)]
    vectors = np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32)
    write_vector_index(out, items, vectors, TAX)


def test_a_second_writer_fails_at_once_naming_the_holder(tmp_path):
    out = tmp_path / "art"
    build(out)
    with held_elsewhere(out, threading.Event()):
        with pytest.raises(WriterBusyError, match=f"process {os.getpid()} is writing") as exc:
            remove_items(out, ["item0"])
    assert exc.value.pid == os.getpid() and "--wait" in str(exc.value)
    assert len(load_artifacts(out)) == 6  # nothing was written


def test_a_second_writer_with_wait_runs_after_the_first(tmp_path):
    out = tmp_path / "art"
    build(out)
    release = threading.Event()
    with held_elsewhere(out, release):
        threading.Timer(0.3, release.set).start()
        remove_items(out, ["item0"], wait=60)
    assert load_artifacts(out).row_of("item0") is None


def test_a_rewrite_from_a_stale_load_is_refused_not_lost(tmp_path):
    out = tmp_path / "art"
    build(out)
    first, second = load_artifacts(out), load_artifacts(out)
    rewrite_artifacts(first, keep=np.array([False, True, True, True, True, True]))
    with pytest.raises(ArtifactError, match="changed since it was loaded"):
        rewrite_artifacts(second, keep=np.array([True, False, True, True, True, True]))
    assert [it.id for it in load_artifacts(out).items] == [f"item{i}" for i in range(1, 6)]


def test_the_lock_lies_beside_the_index_not_in_the_working_directory(tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = tmp_path / "indexes" / "art"
    build(out)
    remove_items(out, ["item1"])
    assert list(cwd.iterdir()) == []
    assert lock_path(out) == out.parent / ".art.lock" and lock_path(out).is_file()
    # a relative path locks the same file as its absolute spelling
    monkeypatch.chdir(tmp_path / "indexes")
    assert lock_path(Path("art")) == lock_path(out)


def test_the_next_writer_removes_orphaned_temporary_copies(tmp_path):
    out = tmp_path / "art"
    build(out)
    orphan = tmp_path / ".art.tmp-killed"
    orphan.mkdir()
    (orphan / "image_vectors.npy").write_bytes(b"x" * 1000)
    remove_items(out, ["item2"])
    assert not orphan.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".art.lock", "art"]


def test_files_are_0644_and_directories_0755_whatever_the_umask(tmp_path):
    out = tmp_path / "art"
    old = os.umask(0o077)
    try:
        build(out)
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert modes and set(modes.values()) == {0o644}, modes


def _lock_free_elsewhere(out: Path) -> bool:
    """Whether another thread could take the writer lock of ``out`` right now."""
    free: list[bool] = []

    def probe() -> None:
        try:
            with writer_lock(out):
                free.append(True)
        except WriterBusyError:
            free.append(False)

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return free[0]


@pytest.mark.parametrize("writer", ["remove", "write_items"])
def test_remove_and_write_items_hold_the_lock_from_their_load_to_their_swap(
    tmp_path, monkeypatch, writer
):
    out = tmp_path / "art"
    build(out)
    seen: list[tuple[str, bool]] = []
    real_load, real_write = pipeline.load_artifacts, updating.write_artifacts

    def load(*args, **kwargs):
        seen.append(("load", _lock_free_elsewhere(out)))
        return real_load(*args, **kwargs)

    def write(*args, **kwargs):
        seen.append(("swap", _lock_free_elsewhere(out)))
        return real_write(*args, **kwargs)

    monkeypatch.setattr(pipeline, "load_artifacts", load)
    monkeypatch.setattr(updating, "write_artifacts", write)
    if writer == "remove":
        remove_items(out, ["item0"])
    else:
        new = item(9, {"dent": 1}, taxonomy=TAX)
        vectors = np.ones((1, 8), np.float32)
        write_items(out, [new], vectors, load_artifacts(out).text_vectors[:1])
    assert seen == [("load", False), ("swap", False)]  # nobody else could write in between
    assert _lock_free_elsewhere(out)
