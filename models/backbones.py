"""Backbone rules: which ``transformers`` vision models can be image encoders, and how.

A rule says, for one family of checkpoints (matched by ``config.model_type``), which class loads
its vision tower, how many prefix tokens precede the patch tokens in ``last_hidden_state``, which
poolings it supports, and how pixels enter the model:

===========  ==========================================  ==========================  ===========
family       model types (config.json)                   poolings (first = default)  pixels
===========  ==========================================  ==========================  ===========
dinov3       ``dinov3_vit``                              cls, cls+mean, mean, gem,   aspect
                                                         contrast
dinov2       ``dinov2``, ``dinov2_with_registers``       cls, cls+mean, mean, gem,   aspect
                                                         contrast
siglip2      ``siglip2``, ``siglip2_vision_model``       pooler, mean, gem           patches
siglip       ``siglip``, ``siglip_vision_model``         pooler, mean, gem           square
===========  ==========================================  ==========================  ===========

Poolings (the encoder L2-normalises every one):

- ``cls``: the model's ``pooler_output``, which for DINOv2/v3 is the final-norm CLS token;
- ``cls+mean``: that CLS concatenated with the mean of the patch tokens (dim doubles);
- ``mean``: the mean of the patch tokens (CLS and register tokens excluded);
- ``gem``: generalised mean (p=3) of the patch tokens, clamped at ``1e-6``;
- ``contrast``: what stands out from the rest of the photo: each patch token minus the per-channel
  median of the image's patch tokens, then per channel the largest excess above and below that
  median (dim doubles). The median is the bare panel, so body colour and lighting cancel and a
  small defect's colour and texture decide the vector — which is what makes even the demo's tiny
  *random* DINOv3 retrieve by damage type (measured in the README's demo section), where its CLS
  token is nearly the same for every photo;
- ``pooler``: SigLIP's ``pooler_output``, the attention-pooling (MAP) head — the embedding SigLIP
  is trained with. SigLIP has no CLS token, so ``cls`` and ``cls+mean`` are refused there rather
  than silently meaning something else.

Pixels: ``aspect`` = the aspect-preserving resize of :func:`models.imaging.preprocess` (longer
side ``image_size``, sides whole patches; DINO interpolates its position embeddings);
``patches`` = the same resize, then flattened into SigLIP 2 NaFlex patch rows with their
``spatial_shapes`` (the model resizes its position embeddings to each image's grid); ``square`` =
the fixed-resolution SigLIP checkpoints (SigLIP and the fixed-size SigLIP 2 ones, which are
``model_type: siglip``), stretched to a square ``image_size`` (default: the checkpoint's own size,
as its processor does; another size interpolates the position embeddings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from models.base import POOLINGS
from models.device import EncoderSettingError
from models.errors import ModelNotAvailableError

GEM_P = 3.0
GEM_EPS = 1e-6
DEFAULT_IMAGE_SIZE = 448


class PoolingError(EncoderSettingError):
    """A pooling the backbone does not support (e.g. ``cls`` on SigLIP, which has no CLS)."""


@dataclass(frozen=True)
class Backbone:
    """How one family of ``transformers`` checkpoints becomes an image encoder."""

    family: str
    model_types: tuple[str, ...]
    #: ``transformers`` class loading the vision tower; ``None``: ``AutoModel``.
    model_class: str | None
    poolings: tuple[str, ...]
    #: ``aspect``, ``patches`` (SigLIP 2 NaFlex) or ``square`` (fixed-resolution SigLIP).
    pixels: str
    has_cls: bool
    example: str

    @property
    def default_pooling(self) -> str:
        return self.poolings[0]

    def check_pooling(self, pooling: str) -> None:
        if pooling not in POOLINGS:
            raise PoolingError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if pooling not in self.poolings:
            why = (
                " (it has no CLS token; 'pooler' is its attention-pool head)"
                if not self.has_cls
                else ""
            )
            raise PoolingError(
                f"pooling {pooling!r} is not available for {self.family}{why}: "
                f"pooling must be one of {self.poolings} for this backbone"
            )

    def prefix_tokens(self, config: Any) -> int:
        """Tokens before the patch tokens in ``last_hidden_state`` (CLS + registers)."""
        if not self.has_cls:
            return 0
        return 1 + int(getattr(config, "num_register_tokens", 0) or 0)


BACKBONES: tuple[Backbone, ...] = (
    Backbone(
        "dinov3",
        ("dinov3_vit",),
        None,
        ("cls", "cls+mean", "mean", "gem", "contrast"),
        "aspect",
        True,
        "facebook/dinov3-vits16-pretrain-lvd1689m",
    ),
    Backbone(
        "dinov2",
        ("dinov2", "dinov2_with_registers"),
        None,
        ("cls", "cls+mean", "mean", "gem", "contrast"),
        "aspect",
        True,
        "facebook/dinov2-base",
    ),
    Backbone(
        "siglip2",
        ("siglip2", "siglip2_vision_model"),
        "Siglip2VisionModel",
        ("pooler", "mean", "gem"),
        "patches",
        False,
        "google/siglip2-base-patch16-naflex",
    ),
    Backbone(
        "siglip",
        ("siglip", "siglip_vision_model"),
        "SiglipVisionModel",
        ("pooler", "mean", "gem"),
        "square",
        False,
        "google/siglip2-base-patch16-224",
    ),
)


def backbone_for(model_type: str, source: str = "") -> Backbone:
    """The rule for a checkpoint's ``config.model_type``.

    Raises:
        ModelNotAvailableError: no rule for that model type (names the supported ones).
    """
    for backbone in BACKBONES:
        if model_type in backbone.model_types:
            return backbone
    known = ", ".join(t for b in BACKBONES for t in b.model_types)
    raise ModelNotAvailableError(
        f"image model {source!r} is a {model_type!r} model, expected one of: {known}"
    )


def vision_config(config: Any) -> Any:
    """The vision part of a config (a full SigLIP config nests it as ``vision_config``)."""
    return getattr(config, "vision_config", None) or config


def patch_size_of(config: Any) -> int:
    patch = config.patch_size
    if isinstance(patch, (list, tuple)):
        if len(set(patch)) != 1:
            raise EncoderSettingError(f"non-square patches are not supported: {patch}")
        patch = patch[0]
    return int(patch)


def to_patches(pixels: torch.Tensor, patch: int) -> torch.Tensor:
    """(b, C, H, W) -> (b, H/p * W/p, p*p*C): SigLIP 2's patch rows (row-major, channels last)."""
    b, c, h, w = pixels.shape
    grid = pixels.reshape(b, c, h // patch, patch, w // patch, patch)
    return grid.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), -1)


def model_inputs(
    backbone: Backbone, pixels: torch.Tensor, *, patch: int, native_size: int | None
) -> dict[str, Any]:
    """The keyword arguments of the vision model's forward for a (b, 3, H, W) batch."""
    if backbone.pixels == "patches":
        b, _, h, w = pixels.shape
        rows = to_patches(pixels, patch)
        shapes = torch.tensor([[h // patch, w // patch]] * b, dtype=torch.long, device=rows.device)
        mask = torch.ones(rows.shape[:2], dtype=torch.int32, device=rows.device)
        return {"pixel_values": rows, "pixel_attention_mask": mask, "spatial_shapes": shapes}
    if backbone.pixels == "square" and pixels.shape[-1] // patch != (native_size or 0) // patch:
        return {"pixel_values": pixels, "interpolate_pos_encoding": True}
    return {"pixel_values": pixels}


def pool(
    pooling: str, tokens: torch.Tensor, pooled: torch.Tensor | None, *, prefix: int
) -> torch.Tensor:
    """One vector per image from the model's tokens (not yet normalised)."""
    if pooling in ("cls", "pooler", "cls+mean"):
        if pooled is None:
            raise EncoderSettingError(f"pooling {pooling!r}: this model has no pooler output")
        if pooling != "cls+mean":
            return pooled
    patches = tokens[:, prefix:, :].float()
    if pooling == "cls+mean":
        assert pooled is not None
        return torch.cat([pooled.float(), patches.mean(dim=1)], dim=-1)
    if pooling == "mean":
        return patches.mean(dim=1)
    if pooling == "contrast":
        excess = patches - patches.median(dim=1, keepdim=True).values
        return torch.cat([excess.amax(dim=1), -excess.amin(dim=1)], dim=-1)
    return patches.clamp(min=GEM_EPS).pow(GEM_P).mean(dim=1).pow(1.0 / GEM_P)
