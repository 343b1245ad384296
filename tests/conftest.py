"""Shared fixtures; `gpu` tests skip without CUDA, `browser` tests without Chromium."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SEED_CROPS = SHARED_DATA / "seed-crops-dinov3-vitl-medium"


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # torch missing or broken: no GPU tests
        return False


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    no_gpu = pytest.mark.skip(reason="needs CUDA")
    no_browser = pytest.mark.skip(reason="needs headless Chromium (apt-get install chromium)")
    has_gpu = _cuda_available()
    has_browser = chromium_path() is not None
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(no_gpu)
        if "browser" in item.keywords and not has_browser:
            item.add_marker(no_browser)


@pytest.fixture(scope="session")
def taxonomy():
    from models.taxonomy import load_taxonomy

    return load_taxonomy()
