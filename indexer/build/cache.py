"""The resumable embedding cache of :func:`indexer.build.pipeline.build_index`.

Every encoded window is saved as an ``.npy`` shard plus a JSON index keyed by record id (and the
file's size and mtime) under a directory named by the image model's fingerprint, so an
interrupted build resumes where it stopped and a rebuild with other index settings re-encodes
nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from indexer.readers.records import Record

Vectors = npt.NDArray[np.float32]


class EmbeddingCache:
    """Image vectors of records already encoded with one model configuration (no pickle)."""

    def __init__(self, root: Path, model_info: dict[str, Any]) -> None:
        key = hashlib.sha256(json.dumps(model_info, sort_keys=True, default=str).encode())
        self.dir = Path(root) / key.hexdigest()[:16]
        self.dir.mkdir(parents=True, exist_ok=True)
        self.index_path = self.dir / "index.json"
        self.entries: dict[str, dict[str, Any]] = {}
        if self.index_path.is_file():
            self.entries = json.loads(self.index_path.read_text("utf-8")).get("entries", {})
        else:
            (self.dir / "model.json").write_text(json.dumps(model_info, indent=2, default=str))
        self._shards: dict[str, np.ndarray] = {}

    @staticmethod
    def stamp(record: Record) -> list[int]:
        st = os.stat(record.image_path)
        return [st.st_size, st.st_mtime_ns]

    def get(self, record: Record) -> Vectors | None:
        entry = self.entries.get(record.id)
        try:
            if entry is None or entry["stamp"] != self.stamp(record):
                return None
        except OSError:
            return None
        shard = entry["shard"]
        if shard not in self._shards:
            self._shards[shard] = np.load(self.dir / shard, mmap_mode="r", allow_pickle=False)
        return np.array(self._shards[shard][entry["row"]], dtype=np.float32)

    def put(self, records: Sequence[Record], vectors: Vectors) -> None:
        shard = f"shard-{time.time_ns()}.npy"
        tmp = self.dir / f".{shard}.tmp"
        with tmp.open("wb") as f:
            np.save(f, np.asarray(vectors, np.float32))
        os.replace(tmp, self.dir / shard)
        for row, record in enumerate(records):
            self.entries[record.id] = {"shard": shard, "row": row, "stamp": self.stamp(record)}
        tmp = self.index_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"entries": self.entries}), "utf-8")
        os.replace(tmp, self.index_path)  # a kill leaves the previous, consistent index
