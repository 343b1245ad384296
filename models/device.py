"""Where and in which precision an encoder runs: device and dtype resolution.

Device ``auto`` means cuda when available, else cpu. dtype ``auto`` (the default) means bf16
*weights* on CUDA and on CPUs with native bf16 (AVX512-BF16 or AMX) — measured faster there than
fp32 weights under bf16 autocast, no per-op casts — and fp32 elsewhere. bf16 asked for on a CPU
without native bf16 falls back to fp32 with a warning (far faster there). fp16 needs a GPU.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from models.errors import VisragError

logger = logging.getLogger(__name__)


class EncoderSettingError(VisragError):
    """A device, dtype or pooling that cannot be used (e.g. cuda without CUDA, fp16 on CPU)."""


DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}
DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass(frozen=True)
class Precision:
    name: str
    weights: torch.dtype
    autocast: bool


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> cuda when available, else cpu; an explicit cuda without CUDA is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise EncoderSettingError(f"device {device!r} requested but CUDA is not available")
    return resolved


def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 matmul (AVX512-BF16 or AMX) as oneDNN sees it."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(dtype: str | torch.dtype | None, device: torch.device) -> Precision:
    """Weights dtype and autocast for ``dtype`` (``auto``/None: bf16 where native, else fp32)."""
    if dtype is None or (isinstance(dtype, str) and dtype.lower() == "auto"):
        native = device.type == "cuda" or (device.type == "cpu" and cpu_supports_bf16())
        wanted = torch.bfloat16 if native else torch.float32
    elif isinstance(dtype, torch.dtype):
        wanted = dtype
    else:
        try:
            wanted = DTYPES[dtype.lower()]
        except KeyError:
            raise EncoderSettingError(
                f"dtype must be one of auto, fp32, bf16, fp16, got {dtype!r}"
            ) from None
    if wanted not in DTYPE_NAMES:
        raise EncoderSettingError(f"unsupported dtype {wanted}")
    name = DTYPE_NAMES[wanted]
    if device.type != "cpu" or wanted == torch.float32:
        return Precision(name, wanted, autocast=False)
    if wanted == torch.float16:
        raise EncoderSettingError("fp16 needs a GPU; on CPU use fp32 or bf16")
    if not cpu_supports_bf16():
        logger.warning(
            "bf16 requested but this CPU has no native bf16 (AVX512-BF16/AMX): bf16 "
            "would be far slower than fp32 here, so the encoder runs in fp32"
        )
        return Precision("fp32", torch.float32, autocast=False)
    return Precision(name, wanted, autocast=False)
