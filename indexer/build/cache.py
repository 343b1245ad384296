"""The resumable embedding cache of :func:`indexer.build.pipeline.build_index`.

Every encoded window is saved as an ``.npy`` shard plus a JSON index keyed by record id (and the
file's size and mtime), and, when the build pools regions, each record's regions and calibration
patches (their vectors in a second shard, their geometry in the index), under a directory
named by the image model's fingerprint, so an interrupted build resumes where it stopped and a
rebuild with other index settings re-encodes nothing.
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

from indexer.build.regions import PatchSample, RegionDraft, RegionSink
from indexer.index.regions import Region
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

    def get_regions(self, record: Record, sink: RegionSink) -> bool:
        """Put the record's cached regions and calibration patches into ``sink``; ``False`` when
        the cache holds none for it (encoded without regions, or not at all)."""
        entry = self.entries.get(record.id)
        if entry is None or "regions" not in entry or self.get(record) is None:
            return False
        shard = entry["region_shard"]
        if shard not in self._shards:
            self._shards[shard] = np.load(self.dir / shard, mmap_mode="r", allow_pickle=False)
        rows = self._shards[shard]
        sink.drafts[record.id] = [
            RegionDraft(
                Region(
                    id=r["id"],
                    item=-1,
                    labels=tuple(r["labels"]),
                    polygon=tuple((float(x), float(y)) for x, y in r["polygon"]),
                    box=(r["box"][0], r["box"][1], r["box"][2], r["box"][3]),
                    area=r["area"],
                    members=r["members"],
                ),
                np.array(rows[r["row"]], np.float32),
            )
            for r in entry["regions"]
        ]
        group = entry.get("group", record.id)
        sink.samples[record.id] = [
            PatchSample(record.id, group, bool(inside), np.array(rows[row], np.float32))
            for inside, row in entry["samples"]
        ]
        return True

    def put(
        self, records: Sequence[Record], vectors: Vectors, sink: RegionSink | None = None
    ) -> None:
        shard = f"shard-{time.time_ns()}.npy"
        self._save(shard, vectors)
        entries: dict[str, dict[str, Any]] = {
            record.id: {"shard": shard, "row": row, "stamp": self.stamp(record)}
            for row, record in enumerate(records)
        }
        if sink is not None:
            region_shard = shard.replace(".npy", ".regions.npy")
            stacked: list[Vectors] = []
            for record in records:
                entry = entries[record.id]
                entry["region_shard"] = region_shard
                entry["group"] = record.group or record.id
                entry["regions"] = []
                for draft in sink.drafts.get(record.id, []):
                    r = draft.region
                    entry["regions"].append(
                        {
                            "id": r.id,
                            "labels": list(r.labels),
                            "polygon": [list(p) for p in r.polygon],
                            "box": list(r.box),
                            "area": r.area,
                            "members": r.members,
                            "row": len(stacked),
                        }
                    )
                    stacked.append(draft.vector)
                entry["samples"] = []
                for sample in sink.samples.get(record.id, []):
                    entry["samples"].append([sample.inside, len(stacked)])
                    stacked.append(sample.vector)
            self._save(region_shard, np.stack(stacked) if stacked else np.zeros((0, 1), np.float32))
        self.entries.update(entries)
        tmp = self.index_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"entries": self.entries}), "utf-8")
        os.replace(tmp, self.index_path)  # a kill leaves the previous, consistent index

    def _save(self, shard: str, vectors: Vectors) -> None:
        tmp = self.dir / f".{shard}.tmp"
        with tmp.open("wb") as f:
            np.save(f, np.asarray(vectors, np.float32))
        os.replace(tmp, self.dir / shard)
