"""Where and in which precision an encoder runs: device and dtype resolution.

``auto`` means cuda when available, else cpu. On CPU, bf16 is fp32 weights under bf16 autocast,
used only where the CPU has native bf16 (AVX512-BF16 or AMX); elsewhere it falls back to fp32 with
a warning (far faster there). fp16 needs a GPU.
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
_DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


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
    """Weights dtype and autocast for ``dtype`` (None: bf16 on cuda, fp32 on cpu)."""
    if dtype is None:
        wanted = torch.bfloat16 if device.type == "cuda" else torch.float32
    elif isinstance(dtype, torch.dtype):
        wanted = dtype
    else:
        try:
            wanted = DTYPES[dtype.lower()]
        except KeyError:
            raise EncoderSettingError(
                f"dtype must be one of fp32, bf16, fp16, got {dtype!r}"
            ) from None
    if wanted not in _DTYPE_NAMES:
        raise EncoderSettingError(f"unsupported dtype {wanted}")
    name = _DTYPE_NAMES[wanted]
    if device.type != "cpu" or wanted == torch.float32:
        return Precision(name, wanted, autocast=False)
    if wanted == torch.float16:
        raise EncoderSettingError("fp16 needs a GPU; on CPU use fp32 or bf16")
    if not cpu_supports_bf16():
        logger.warning(
            "bf16 requested but this CPU has no native bf16 (AVX512-BF16/AMX): bf16 autocast "
            "would be far slower than fp32 here, so the encoder runs in fp32"
        )
        return Precision("fp32", torch.float32, autocast=False)
    return Precision(name, torch.float32, autocast=True)
