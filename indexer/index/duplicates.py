"""Near-duplicate photos: the same bytes, the same picture re-encoded, or the same image vector.

Three checks, cheapest first: the sha256 of the file's bytes; a perceptual hash of its pixels
(``imagehash.phash``, 64 bits; a JPEG re-encoded at quality 70 and resized stays within a few
bits, another photo does not); and, when a threshold is set, the cosine of the image vectors
(it depends on the backbone: a random test model puts every pair near 1). A picture without
structure (one flat colour) has an uninformative perceptual hash and is compared by bytes only.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

if TYPE_CHECKING:
    from indexer.index.artifacts import Artifacts

_MIN_BITS = 4  # a hash with fewer set (or clear) bits than this says nothing about the picture
MAX_DISTANCE = 8  # perceptual-hash bits a re-encoded, resized copy stays within (the CLI's guard)


@dataclass(frozen=True)
class Fingerprint:
    sha256: str
    phash: int | None  # None: undecodable or uninformative (a flat picture)


@dataclass(frozen=True)
class Duplicate:
    item: str  # the new item
    duplicate_of: str  # the indexed item it copies
    reason: str


def fingerprint(data: bytes) -> Fingerprint:
    """The bytes' sha256 and the pixels' perceptual hash (EXIF orientation applied)."""
    import imagehash

    sha = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as image:
            picture = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return Fingerprint(sha, None)
    bits = int(str(imagehash.phash(picture)), 16)
    ones = bin(bits).count("1")
    informative = _MIN_BITS <= ones <= 64 - _MIN_BITS
    return Fingerprint(sha, bits if informative else None)


def hash_distance(a: Fingerprint, b: Fingerprint) -> int | None:
    """Bits between two perceptual hashes; None when either picture has no informative hash."""
    if a.phash is None or b.phash is None:
        return None
    return (a.phash ^ b.phash).bit_count()


def catalogue_fingerprints(
    artifacts: Artifacts, cache: dict[tuple[str, str], Fingerprint] | None = None
) -> dict[str, Fingerprint]:
    """The fingerprint of every indexed item whose image is on disk (``cache``: by id and image
    path, kept by the caller across calls, so each image is read once)."""
    cache = {} if cache is None else cache
    known = {}
    for item in artifacts.items:
        key = (item.id, item.image)
        if key not in cache:
            path = artifacts.image_file(item)
            if path is None or not path.is_file():
                continue
            cache[key] = fingerprint(path.read_bytes())
        known[item.id] = cache[key]
    return known


def describe(found: Sequence[Duplicate]) -> str:
    """``new duplicate_of old (reason); ...``: how the service and the CLI name them."""
    return "; ".join(f"{d.item} duplicate_of {d.duplicate_of} ({d.reason})" for d in found)


def find_duplicates(
    new: Sequence[tuple[str, Fingerprint, npt.NDArray[np.float32] | None]],
    known: Mapping[str, Fingerprint],
    *,
    max_distance: int,
    vectors: npt.NDArray[np.float32] | None = None,
    vector_ids: Sequence[str] = (),
    min_cosine: float | None = None,
) -> list[Duplicate]:
    """The new items (id, fingerprint, image vector) that copy a known one, each with the first
    reason found; ``vectors`` (row-aligned with ``vector_ids``) are compared when
    ``min_cosine`` is set. An item is never its own duplicate (a ``PUT`` replacing it)."""
    found = []
    for item_id, print_, vector in new:
        match = _by_fingerprint(item_id, print_, known, max_distance)
        if match is None and min_cosine is not None and vectors is not None and vector is not None:
            cosines = np.asarray(vectors, np.float32) @ np.asarray(vector, np.float32)
            for row in np.argsort(-cosines)[:2]:
                if vector_ids[row] != item_id and cosines[row] >= min_cosine:
                    match = (vector_ids[row], f"image cosine {cosines[row]:.4f}")
                    break
        if match is not None:
            found.append(Duplicate(item_id, *match))
    return found


def _by_fingerprint(
    item_id: str, print_: Fingerprint, known: Mapping[str, Fingerprint], max_distance: int
) -> tuple[str, str] | None:
    close: tuple[int, str] | None = None
    for other, seen in known.items():
        if other == item_id:
            continue
        if seen.sha256 == print_.sha256:
            return other, "identical bytes"
        distance = hash_distance(print_, seen)
        if distance is not None and distance <= max_distance:
            if close is None or distance < close[0]:
                close = (distance, other)
    if close is None:
        return None
    return close[1], f"perceptual hash {close[0]} bit(s) apart"
