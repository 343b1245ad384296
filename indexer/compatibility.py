"""Whether artifacts fit the configured models: :func:`check_compatible` compares the manifest's
models, preprocessing, description template and taxonomy with the configured ones and raises
:class:`ManifestMismatchError` naming the first field that differs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from indexer.errors import ManifestMismatchError
from models.description import TEMPLATE_VERSION

__all__ = ["ManifestMismatchError", "check_compatible"]


def _model_id_matches(a: str, b: str) -> bool:
    """Equal ids, or a local directory named like the hub id ('/models/x' vs 'org/x')."""
    if a == b:
        return True
    tail_a, tail_b = Path(a.rstrip("/")).name, Path(b.rstrip("/")).name
    return bool(tail_a) and tail_a == tail_b and "-" in tail_a


def _dtype_family(dtype: object) -> str:
    """fp32/bf16/fp16 all give float vectors (cosine >= 0.9999 measured); int8 etc. do not."""
    name = str(dtype).lower().removeprefix("torch.")
    floats = {"float32", "fp32", "float", "bfloat16", "bf16", "float16", "fp16", "half"}
    return "float" if name in floats else name


def _get(info: Mapping[str, Any] | None, *keys: str) -> Any:
    """First present key; ``preprocessing.image_size`` style keys look inside a sub-dict too."""
    if not info:
        return None
    for key in keys:
        node: Any = info
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None:
            return node
    return None


def check_compatible(
    manifest: Mapping[str, Any],
    *,
    image_model_info: Mapping[str, Any] | None = None,
    text_model_info: Mapping[str, Any] | None = None,
    taxonomy: Any = None,
) -> None:
    """Refuse artifacts built with other models, preprocessing, template or taxonomy.

    A field missing on either side (e.g. preprocessing of imported vectors) is not compared.

    Raises:
        ManifestMismatchError: naming the first field that differs.
    """
    img, txt = manifest.get("image_model", {}), manifest.get("text_model", {})
    checks: list[tuple[str, Any, Any, Any]] = []
    if image_model_info is not None:
        cfg = image_model_info
        checks += [
            ("image_model.id", _get(img, "id"), _get(cfg, "id", "model_id"), _model_id_matches),
            ("image_model.dim", _get(img, "dim"), _get(cfg, "dim"), None),
            ("image_model.pooling", _get(img, "pooling"), _get(cfg, "pooling"), None),
            ("image_model.preprocessing.image_size",
             _get(img, "preprocessing.image_size", "image_size"),
             _get(cfg, "preprocessing.image_size", "image_size"), None),
            ("image_model.preprocessing.mean", _get(img, "preprocessing.mean", "mean"),
             _get(cfg, "preprocessing.mean", "mean"), np.allclose),
            ("image_model.preprocessing.std", _get(img, "preprocessing.std", "std"),
             _get(cfg, "preprocessing.std", "std"), np.allclose),
            ("image_model.dtype", _get(img, "dtype"), _get(cfg, "dtype"),
             lambda a, b: _dtype_family(a) == _dtype_family(b)),
        ]  # fmt: skip
    if text_model_info is not None:
        cfg = text_model_info
        checks += [
            ("text_model.id", _get(txt, "id"), _get(cfg, "id", "model_id"), _model_id_matches),
            ("text_model.dim", _get(txt, "dim"), _get(cfg, "dim"), None),
        ]
    checks.append(("template_version", manifest.get("template_version"), TEMPLATE_VERSION, None))
    if taxonomy is not None:
        tax = manifest.get("taxonomy", {})
        checks += [
            ("taxonomy.name", tax.get("name"), taxonomy.name, None),
            ("taxonomy.version", tax.get("version"), taxonomy.version, None),
        ]
    for name, recorded, configured, same in checks:
        if recorded is None or configured is None:
            continue
        equal = (same or (lambda a, b: a == b))(recorded, configured)
        if not equal:
            raise ManifestMismatchError(
                name,
                f"artifacts were built with {name} = {recorded!r}, but the configured value is "
                f"{configured!r}; rebuild the index or configure the same model",
            )
