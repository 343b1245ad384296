"""Seeing another process's writes without a restart (an index whose vectors live in Milvus).

Milvus is live: a vector another process inserts or deletes is searched at once. The catalogue
(the SQLite file in the artifact directory) is re-read when ``manifest.json`` changes (its
``mtime_ns``, the generation every write bumps through the atomic directory swap): one ``stat``
per query. Vectors found in Milvus before the writer's catalogue lands are skipped until then.
FAISS-backed indexes are files loaded once and are not re-read (restart or reload to see writes).
"""

from __future__ import annotations

import logging
import threading

from indexer.errors import ArtifactError
from indexer.index.artifacts import MANIFEST, Artifacts, load_artifacts

logger = logging.getLogger(__name__)
_lock = threading.Lock()


def refreshed(a: Artifacts) -> Artifacts:
    """``a`` itself, or the directory re-read when a Milvus-backed index was written since."""
    if a.manifest.store.kind != "milvus":
        return a
    try:
        generation = (a.path / MANIFEST).stat().st_mtime_ns
    except OSError:
        return a  # mid-swap: the next query sees it
    if generation == a.generation:
        return a
    with _lock:
        try:
            fresh = load_artifacts(a.path, verify=False, image_root=a.image_root)
        except ArtifactError as exc:
            logger.warning("re-reading %s failed, serving the previous catalogue: %s", a.path, exc)
            a.generation = generation
            return a
    logger.info("re-read %s: %d items (was %d)", a.path, len(fresh), len(a))
    return fresh
