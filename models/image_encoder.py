"""DINOv3 image encoder: pooling, bucketed batching, and :func:`load_image_encoder`.

Where weights come from is :mod:`models.hub`; device and dtype resolution is :mod:`models.device`.

Pooling (all L2-normalised, float32 out):

- ``cls``: the pooler output (final-norm CLS token);
- ``cls+mean``: CLS concatenated with the mean of the patch tokens. ``last_hidden_state`` is
  ``[CLS, registers..., patches...]``; the ``config.num_register_tokens`` registers are excluded;
- ``gem``: generalised mean (p=3) over the patch tokens, per channel, on the final-norm tokens
  clamped to ``min=1e-6`` (the classic GeM of Radenović et al.: negative activations count as 0).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image

from models import imaging
from models.base import POOLINGS
from models.device import (
    DTYPE_NAMES,
    DTYPES,
    EncoderSettingError,
    resolve_device,
    resolve_precision,
)
from models.errors import ModelNotAvailableError
from models.fingerprint import hub_snapshot, weights_sha256
from models.hub import (
    DEFAULT_IMAGE_MODEL,
    IMAGENET_MEAN,
    IMAGENET_STD,
    hub_kwargs_for,
    is_random_init,
    load_model,
    read_mean_std,
    resolve_source,
)

logger = logging.getLogger(__name__)

MODEL_TYPE = "dinov3_vit"
GEM_P = 3.0
GEM_EPS = 1e-6
Vectors = npt.NDArray[np.float32]


class ImageEncoder:
    """A loaded DINOv3 model plus the preprocessing and pooling that define its vectors."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        model_id: str,
        revision: str | None = None,
        image_size: int = 448,
        pooling: str = "cls",
        device: torch.device | str = "cpu",
        dtype: str = "fp32",
        autocast: bool = False,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        weights_sha256: str | None = None,
    ) -> None:
        if pooling not in POOLINGS:
            raise EncoderSettingError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        config: Any = model.config
        patch = config.patch_size
        if isinstance(patch, (list, tuple)):
            if len(set(patch)) != 1:
                raise ValueError(f"non-square patches are not supported: {patch}")
            patch = patch[0]
        self.model = model.eval()
        self.model_id = model_id
        self.revision = revision
        self.image_size = image_size
        self.patch_size = int(patch)
        self.pooling = pooling
        self.device = str(device)
        self.dtype = dtype
        self.autocast = autocast
        # The pixels enter the model in its weights' dtype (bf16 weights take bf16 input).
        self.input_dtype = next(model.parameters()).dtype
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.weights_sha256 = weights_sha256  # models.fingerprint: recorded, checked at open
        self.num_register_tokens = int(getattr(config, "num_register_tokens", 0) or 0)
        self.random_init = is_random_init(config)
        hidden = int(config.hidden_size)
        self.dim = 2 * hidden if pooling == "cls+mean" else hidden

    def info(self) -> dict[str, Any]:
        """What the index manifest records about this encoder."""
        return {
            "model_id": self.model_id,
            "revision": self.revision,
            "dtype": self.dtype,
            "device": self.device,
            "autocast": self.autocast,
            "weights_dtype": DTYPE_NAMES.get(self.input_dtype, str(self.input_dtype)),
            "pooling": self.pooling,
            "dim": self.dim,
            "num_register_tokens": self.num_register_tokens,
            "weights_sha256": self.weights_sha256,
            **({"random_init": True} if self.random_init else {}),
            "preprocessing": {
                "resize": imaging.RESIZE_POLICY,
                "image_size": self.image_size,
                "patch_size": self.patch_size,
                "mean": list(self.mean),
                "std": list(self.std),
                "interpolation": imaging.INTERPOLATION,
            },
        }

    def preprocess(self, image: Image.Image) -> npt.NDArray[np.float32]:
        """An RGB PIL image -> normalised float32 (3, H, W), H and W multiples of the patch."""
        return imaging.preprocess(
            image,
            image_size=self.image_size,
            patch_size=self.patch_size,
            mean=self.mean,
            std=self.std,
        )

    def encode(self, images: Sequence[Image.Image], *, batch_size: int = 8) -> Vectors:
        """PIL images -> (n, dim) unit float32 rows, in input order."""
        return self.encode_preprocessed(
            [self.preprocess(im) for im in images], batch_size=batch_size
        )

    def encode_preprocessed(
        self, arrays: Sequence[npt.NDArray[np.float32]], *, batch_size: int = 8
    ) -> Vectors:
        """Preprocessed (3, H, W) arrays -> (n, dim) unit float32 rows, in input order.

        Arrays of equal shape are batched together (at most ``batch_size`` per forward pass).
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        out = np.empty((len(arrays), self.dim), dtype=np.float32)
        for rows in _buckets(arrays, batch_size):
            batch = torch.from_numpy(np.stack([arrays[i] for i in rows]))
            out[rows] = self.forward(batch).numpy()
        return out

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(b, 3, H, W) normalised pixels -> (b, dim) unit float32 vectors on the CPU."""
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ValueError(f"expected (b, 3, H, W) pixels, got {tuple(pixel_values.shape)}")
        device = torch.device(self.device)
        with torch.inference_mode(), self._autocast():
            pixels = pixel_values.to(device, dtype=self.input_dtype, non_blocking=True)
            output = self.model(pixel_values=pixels)
            features = self._pool(output.last_hidden_state, output.pooler_output)
        features = torch.nn.functional.normalize(features.float(), dim=-1)
        return features.cpu()

    def _pool(self, tokens: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            return pooled
        patches = tokens[:, 1 + self.num_register_tokens :, :].float()
        if self.pooling == "cls+mean":
            return torch.cat([pooled.float(), patches.mean(dim=1)], dim=-1)
        return patches.clamp(min=GEM_EPS).pow(GEM_P).mean(dim=1).pow(1.0 / GEM_P)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if not self.autocast:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=DTYPES[self.dtype])


def _buckets(arrays: Sequence[npt.NDArray[np.float32]], batch_size: int) -> Iterator[list[int]]:
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, arr in enumerate(arrays):
        by_shape.setdefault(tuple(arr.shape), []).append(i)
    for rows in by_shape.values():
        for start in range(0, len(rows), batch_size):
            yield rows[start : start + batch_size]


def load_image_encoder(
    model: str | Path = DEFAULT_IMAGE_MODEL,
    *,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype | None = None,
    image_size: int = 448,
    pooling: str = "cls",
    revision: str | None = None,
    token: str | None = None,
) -> ImageEncoder:
    """Load a DINOv3 ViT from a Hugging Face id or a local checkpoint directory.

    Args:
        model: hub id (``owner/name``) or a directory holding ``config.json`` and weights.
        device: ``auto`` (cuda when available, else cpu), ``cpu``, ``cuda``, ``cuda:1``...
        dtype: ``auto`` (= ``None``, the default), ``fp32``, ``bf16`` or ``fp16``. ``auto`` is bf16
            weights on CUDA and on CPUs with native bf16 (AVX512-BF16/AMX), fp32 elsewhere; bf16
            on a CPU without native bf16 falls back to fp32 with a warning.
        image_size: longer side of the resized image, in pixels.
        pooling: ``cls``, ``cls+mean`` or ``gem`` (see the module docstring).
        revision: hub branch, tag or commit.
        token: hub token; defaults to ``HF_TOKEN`` from the environment. Never prompts.

    Raises:
        ModelNotAvailableError: the checkpoint is absent, gated, not cached while offline, or not
            a DINOv3 ViT.
        ValueError: a bad device, dtype or pooling.
    """
    if pooling not in POOLINGS:
        raise EncoderSettingError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    torch_device = resolve_device(device)
    precision = resolve_precision(dtype, torch_device)
    source, local = resolve_source(model)
    hub_kwargs: dict[str, Any] = {}
    if local is None:
        hub_kwargs = hub_kwargs_for(revision, token)
    net = load_model(source, precision.weights, hub_kwargs)
    if net.config.model_type != MODEL_TYPE:
        raise ModelNotAvailableError(
            f"image model {source!r} is a {net.config.model_type!r} model, expected {MODEL_TYPE!r}"
        )
    mean, std = read_mean_std(source, local, hub_kwargs)
    commit = getattr(net.config, "_commit_hash", None) if local is None else None
    encoder = ImageEncoder(
        net.to(torch_device),
        model_id=source,
        revision=commit or None,
        image_size=image_size,
        pooling=pooling,
        device=torch_device,
        dtype=precision.name,
        autocast=precision.autocast,
        mean=mean,
        std=std,
        weights_sha256=weights_sha256(local or hub_snapshot(source, commit)),
    )
    logger.info("image encoder ready: %s", encoder.info())
    return encoder
