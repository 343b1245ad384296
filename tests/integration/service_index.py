"""A small real index for the service tests: synthetic images, tiny DINOv3, real FAISS."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def build_small_index(
    root: Path, tiny_dinov3: Path, text_encoder: Any, taxonomy: Any, *, n: int = 24
) -> Path:
    """Generate ``n`` images under ``root/data`` and build ``root/art``; returns ``root``."""
    from indexer.build import build_index
    from indexer.synthetic import generate_dataset
    from models.image_encoder import load_image_encoder

    generate_dataset(root / "data", n, seed=0, image_size=(160, 120))
    encoder = load_image_encoder(tiny_dinov3, device="cpu", image_size=64)
    build_index(root / "data", root / "art", image_encoder=encoder, text_encoder=text_encoder,
                taxonomy=taxonomy, progress=False)  # fmt: skip
    return root
