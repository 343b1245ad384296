"""Hybrid vectors: weighted concatenation of unit image and text vectors.

``h = [sqrt(a) * v, sqrt(1 - a) * t]`` so that ``<h_q, h_d> = a * cos_img + (1 - a) * cos_txt``
exactly for unit inputs. An image-only query uses a zero text half.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


def l2_normalise(x: npt.ArrayLike, eps: float = 1e-12) -> Vectors:
    """Row-wise L2 normalisation to float32 (a zero row stays zero)."""
    arr = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(arr, axis=-1, keepdims=True)
    return (arr / np.maximum(norms, eps)).astype(np.float32)


def fuse(
    image: Vectors, text: Vectors | None, *, alpha: float, text_dim: int | None = None
) -> Vectors:
    """Fuse unit image vectors (n, di) with unit text vectors (n, dt) or ``None`` (zero half).

    Works on a single vector (1-D) or a batch (2-D).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"fusion weight alpha must be in [0, 1], got {alpha}")
    img = np.asarray(image, dtype=np.float32)
    if text is None:
        if text_dim is None:
            raise ValueError("text_dim is required when text is None")
        txt = np.zeros((*img.shape[:-1], text_dim), dtype=np.float32)
    else:
        txt = np.asarray(text, dtype=np.float32)
    if img.shape[:-1] != txt.shape[:-1]:
        raise ValueError(f"image batch {img.shape} and text batch {txt.shape} differ")
    return np.concatenate([np.sqrt(alpha) * img, np.sqrt(1.0 - alpha) * txt], axis=-1).astype(
        np.float32
    )
