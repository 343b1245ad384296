"""A tiny, randomly initialised DINOv3 checkpoint on disk, for tests and the weightless demo.

It is a real checkpoint directory (``config.json``, ``model.safetensors``,
``preprocessor_config.json``), so loading it exercises exactly the code path of a real one. Its
vectors carry no meaning, and its ``config.json`` says so (``visrag_random_init: true``): the
loaded encoder reports ``random_init`` in ``info()``, and the manifest, the evaluation reports and
the demo page warn about it.
"""

from __future__ import annotations

import json
from pathlib import Path

from models.hub import IMAGENET_MEAN, IMAGENET_STD, RANDOM_INIT_KEY


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
    import torch
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
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DINOv3ViTModel(config).eval()
    model.save_pretrained(out)
    config_file = out / "config.json"
    saved = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**saved, RANDOM_INIT_KEY: True}, indent=2) + "\n")
    preprocessor = {
        "image_processor_type": "DINOv3ViTImageProcessorFast",
        "do_resize": True,
        "size": {"height": 224, "width": 224},
        "resample": 2,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(IMAGENET_MEAN),
        "image_std": list(IMAGENET_STD),
    }
    (out / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")
    return out
