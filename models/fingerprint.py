"""The fingerprint of a checkpoint's weights: sha256 over its weight files.

A build records it (``image_model.weights_sha256`` in the manifest) and
:func:`indexer.index.compatibility.check_compatible` compares it at open time, so a directory named
like the recorded model (or a hub cache entry) but holding other weights is refused. Hashing
reads every byte once (about 1 s per GB); the result is cached per file path, size and mtime for
the life of the process.
"""

from __future__ import annotations

import hashlib
import logging
from functools import lru_cache
from pathlib import Path

logger = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".h5")


def weights_sha256(directory: str | Path | None) -> str | None:
    """sha256 over (name, sha256 of the bytes) of every weight file in ``directory``, sorted by
    name; ``None`` when there is no directory or no weight file (then nothing is compared)."""
    if directory is None:
        return None
    root = Path(directory)
    if not root.is_dir():
        return None
    files = sorted(p for p in root.iterdir() if p.name.endswith(WEIGHT_SUFFIXES) and p.is_file())
    if not files:
        return None
    h = hashlib.sha256()
    for file in files:
        real = file.resolve()  # a hub snapshot links to content-addressed blobs
        stat = real.stat()
        h.update(file.name.encode("utf-8") + b"\0")
        h.update(_file_sha256(str(real), stat.st_size, stat.st_mtime_ns).encode("ascii"))
    return h.hexdigest()


@lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    logger.debug("hashed %s (%d bytes)", path, size)
    return h.hexdigest()


def hub_snapshot(model_id: str, revision: str | None) -> Path | None:
    """The local snapshot directory of a hub model already in the cache (``None`` if unknown)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model_id, "config.json", revision=revision)
    except Exception:  # noqa: BLE001 - a fingerprint is best effort for hub models
        return None
    return Path(found).parent if isinstance(found, str) else None
