"""The image encoder on CUDA (skipped without a GPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from models.image_encoder import load_image_encoder

pytestmark = pytest.mark.gpu


def pictures() -> list[Image.Image]:
    out = []
    for i, size in enumerate([(320, 240), (240, 320), (320, 240), (500, 500)]):
        image = Image.new("RGB", size, (40 * i, 200 - 30 * i, 90))
        ImageDraw.Draw(image).ellipse((10 * i, 20, 100 + 10 * i, 140), fill=(250, 250, 10 * i))
        out.append(image)
    return out


def test_auto_device_picks_cuda_in_bf16(tiny_dinov3: Path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder = load_image_encoder(tiny_dinov3)
    assert encoder.device.startswith("cuda") and encoder.dtype == "bf16"
    assert next(encoder.model.parameters()).is_cuda


@pytest.mark.parametrize("dtype", ["bf16", "fp16", "fp32"])
@pytest.mark.parametrize("pooling", ["cls", "cls+mean", "gem"])
def test_cuda_vectors_match_cpu_fp32(tiny_dinov3: Path, monkeypatch, dtype, pooling):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    images = pictures()
    cpu = load_image_encoder(tiny_dinov3, device="cpu", dtype="fp32", pooling=pooling)
    gpu = load_image_encoder(tiny_dinov3, device="cuda", dtype=dtype, pooling=pooling)
    got = gpu.encode(images, batch_size=2)
    assert got.dtype == np.float32 and got.shape == (4, cpu.dim)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    cosines = np.sum(got * cpu.encode(images), axis=1)
    assert cosines.min() >= 0.99
