"""Near-duplicate clusters of a dataset's records, and the ``group_by="duplicates"`` regrouping.

Two records are near-duplicates by the add guard's own test (:mod:`indexer.index.duplicates`):
the same bytes, or perceptual hashes at most ``max_distance`` bits apart. Clusters are the
connected components over all such pairs (union-find), so a chain of near-copies is one cluster;
each is named by its smallest record id, whatever order the records came in. Every pair of
informative hashes is compared: quadratic in the number of records, which is fine for the
thousands of photos a labelled dataset holds.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from indexer.index.duplicates import MAX_DISTANCE, Fingerprint, fingerprint, hash_distance
from indexer.readers.records import Record


@dataclass(frozen=True)
class DuplicateCluster:
    """Records whose images are near-copies of each other, with the pairs that joined them."""

    group: str  # the smallest record id of the cluster
    records: tuple[str, ...]  # sorted ids
    files: tuple[str, ...]  # image paths, in the order of ``records``
    links: tuple[tuple[str, str, str], ...]  # (id, id, reason) for each pair that merged two parts

    def as_dict(self) -> dict[str, object]:
        return {
            "group": self.group,
            "records": list(self.records),
            "files": list(self.files),
            "links": [{"a": a, "b": b, "reason": why} for a, b, why in self.links],
        }


def duplicate_clusters(
    records: Sequence[Record], *, max_distance: int = MAX_DISTANCE
) -> list[DuplicateCluster]:
    """The clusters of two or more near-duplicate records, sorted by group; records whose image
    cannot be read are left out (the readers report those)."""
    ordered = sorted(records, key=lambda r: r.id)
    prints: dict[str, Fingerprint] = {}
    for r in ordered:
        if r.image_path.is_file():
            prints[r.id] = fingerprint(r.image_path.read_bytes())
    parent = {rid: rid for rid in prints}

    def root(rid: str) -> str:
        while parent[rid] != rid:
            parent[rid] = parent[parent[rid]]
            rid = parent[rid]
        return rid

    links: list[tuple[str, str, str]] = []

    def join(a: str, b: str, reason: str) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)  # the root is always the smallest id
            links.append((a, b, reason))

    first_by_bytes: dict[str, str] = {}
    for rid, print_ in prints.items():
        seen = first_by_bytes.setdefault(print_.sha256, rid)
        if seen != rid:
            join(seen, rid, "identical bytes")
    hashed = [(rid, p) for rid, p in prints.items() if p.phash is not None]
    for i, (a, pa) in enumerate(hashed):
        for b, pb in hashed[i + 1 :]:
            distance = hash_distance(pa, pb)
            if distance is not None and distance <= max_distance:
                join(a, b, f"perceptual hash {distance} bit(s) apart")
    members: dict[str, list[str]] = defaultdict(list)
    for rid in prints:
        members[root(rid)].append(rid)
    paths = {r.id: r.image_path.as_posix() for r in ordered}
    clusters = []
    for group, ids in sorted(members.items()):
        if len(ids) < 2:
            continue
        inside = set(ids)
        clusters.append(
            DuplicateCluster(
                group=group,
                records=tuple(ids),
                files=tuple(paths[rid] for rid in ids),
                links=tuple(link for link in links if link[0] in inside),
            )
        )
    return clusters


def group_duplicates(
    records: Sequence[Record], clusters: Sequence[DuplicateCluster]
) -> list[Record]:
    """The records with each cluster's members in the cluster's group; the others unchanged."""
    group_of = {rid: c.group for c in clusters for rid in c.records}
    return [
        dataclasses.replace(r, group=group_of[r.id]) if r.id in group_of else r for r in records
    ]
