"""Tiny, randomly initialised checkpoints on disk, for tests and the weightless demo.

:func:`make_tiny_dinov3` (the demo's), :func:`make_tiny_dinov2` and :func:`make_tiny_siglip2` /
:func:`make_tiny_siglip` (full text + vision SigLIP checkpoints, as on the hub: the encoder loads
their vision tower); :func:`make_tiny` picks one by family. Each is a real checkpoint directory
(``config.json``, ``model.safetensors``, ``preprocessor_config.json``), so loading it exercises
exactly the code path of a real one. Their vectors carry no meaning, and their ``config.json``
says so (``visrag_random_init: true``): the loaded encoder reports ``random_init`` in ``info()``,
and the manifest, the evaluation reports and the demo page warn about it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.hub import IMAGENET_MEAN, IMAGENET_STD, RANDOM_INIT_KEY

SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)
_TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
_TINY_TEXT = {
    **_TINY,
    "intermediate_size": 64,
    "vocab_size": 64,
    "pad_token_id": 1,
    "bos_token_id": 2,
    "eos_token_id": 3,
}


def make_tiny_dinov3(
    path: str | Path,
    *,
    hidden_size: int = 32,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 2,
    intermediate_size: int = 64,
    num_register_tokens: int = 4,
    patch_size: int = 16,
    seed: int = 0,
) -> Path:
    """Write a random DINOv3 ViT checkpoint (same seed -> same weights) and return its directory."""
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    config = DINOv3ViTConfig(
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=intermediate_size,
        num_register_tokens=num_register_tokens,
        patch_size=patch_size,
        image_size=224,
    )
    return _save(
        DINOv3ViTModel,
        config,
        out,
        seed,
        ("DINOv3ViTImageProcessorFast", IMAGENET_MEAN, IMAGENET_STD),
    )


def make_tiny_dinov2(path: str | Path, *, registers: int = 0, seed: int = 0) -> Path:
    """A random DINOv2 checkpoint (``dinov2``, or ``dinov2_with_registers`` when ``registers``)."""
    from transformers import (
        Dinov2Config,
        Dinov2Model,
        Dinov2WithRegistersConfig,
        Dinov2WithRegistersModel,
    )

    common: dict[str, Any] = {**_TINY, "mlp_ratio": 2, "patch_size": 14, "image_size": 56}
    if registers:
        config: Any = Dinov2WithRegistersConfig(**common, num_register_tokens=registers)
        model_class: Any = Dinov2WithRegistersModel
    else:
        config, model_class = Dinov2Config(**common), Dinov2Model
    return _save(
        model_class, config, Path(path), seed, ("BitImageProcessor", IMAGENET_MEAN, IMAGENET_STD)
    )


def make_tiny_siglip2(path: str | Path, *, seed: int = 0) -> Path:
    """A random SigLIP 2 NaFlex checkpoint (``siglip2``: text + vision, patch 16)."""
    from transformers import Siglip2Config, Siglip2Model

    config = Siglip2Config(
        text_config=_TINY_TEXT,
        vision_config={**_TINY, "intermediate_size": 64, "patch_size": 16, "num_patches": 16},
    )
    return _save(
        Siglip2Model,
        config,
        Path(path),
        seed,
        ("Siglip2ImageProcessorFast", SIGLIP_MEAN, SIGLIP_STD),
    )


def make_tiny_siglip(path: str | Path, *, image_size: int = 64, seed: int = 0) -> Path:
    """A random fixed-resolution SigLIP checkpoint (``siglip``: text + vision, patch 16), the
    architecture of the fixed-size SigLIP 2 checkpoints (e.g. ``siglip2-base-patch16-224``)."""
    from transformers import SiglipConfig, SiglipModel

    config = SiglipConfig(
        text_config=_TINY_TEXT,
        vision_config={
            **_TINY,
            "intermediate_size": 64,
            "patch_size": 16,
            "image_size": image_size,
        },
    )
    return _save(
        SiglipModel, config, Path(path), seed, ("SiglipImageProcessor", SIGLIP_MEAN, SIGLIP_STD)
    )


def make_tiny(kind: str, path: str | Path, *, seed: int = 0) -> Path:
    """A tiny checkpoint of one family: ``dinov3``, ``dinov2``, ``siglip2`` or ``siglip``."""
    makers: dict[str, Callable[..., Path]] = {
        "dinov3": make_tiny_dinov3,
        "dinov2": make_tiny_dinov2,
        "siglip2": make_tiny_siglip2,
        "siglip": make_tiny_siglip,
    }
    if kind not in makers:
        raise ValueError(f"kind must be one of {sorted(makers)}, got {kind!r}")
    return makers[kind](path, seed=seed)


def _save(
    model_class: Any,
    config: Any,
    out: Path,
    seed: int,
    preprocessor: tuple[str, tuple[float, ...], tuple[float, ...]],
) -> Path:
    """Save ``model_class(config)`` with seeded random weights and its preprocessor_config.json
    (``preprocessor``: image processor type, mean, std)."""
    import torch

    processor, mean, std = preprocessor
    out.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config).eval()
    model.save_pretrained(out)
    config_file = out / "config.json"
    saved = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**saved, RANDOM_INIT_KEY: True}, indent=2) + "\n")
    processor_config = {
        "image_processor_type": processor,
        "do_resize": True,
        "size": {"height": 224, "width": 224},
        "resample": 2,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(mean),
        "image_std": list(std),
    }
    (out / "preprocessor_config.json").write_text(json.dumps(processor_config, indent=2) + "\n")
    return out
