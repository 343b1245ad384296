"""Whether artifacts fit the configured models: :func:`check_compatible` compares the manifest's
models (backbone model type, id, revision, dim, pooling, preprocessing, dtype family), description
template and taxonomy with the configured ones and raises :class:`ManifestMismatchError` naming
the first field that differs. A field recorded on only one side (e.g. the preprocessing of
imported vectors, the revision of a local checkpoint, the model type of an older index) is not
compared.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from indexer.errors import ManifestMismatchError
from indexer.index.manifest import ImageModel, IndexManifest, Preprocessing, TextModel
from models.description import TEMPLATE_VERSION
from models.taxonomy import Taxonomy


def _model_id_matches(a: str, b: str) -> bool:
    """Equal ids, or a local directory named like the hub id ('/models/x' vs 'org/x')."""
    if a == b:
        return True
    tail_a, tail_b = Path(a.rstrip("/")).name, Path(b.rstrip("/")).name
    return bool(tail_a) and tail_a == tail_b and "-" in tail_a


def _dtype_family(dtype: object) -> str:
    """fp32/bf16/fp16 weights of one model give the same vectors (cosine >= 0.999 to fp32,
    tested), so an index built in one is queried in another; int8 etc. would not."""
    name = str(dtype).lower().removeprefix("torch.")
    floats = {"float32", "fp32", "float", "bfloat16", "bf16", "float16", "fp16", "half"}
    return "float" if name in floats else name


def _same_dtype(a: Any, b: Any) -> bool:
    return _dtype_family(a) == _dtype_family(b)


def _close(a: Any, b: Any) -> bool:
    return bool(np.allclose(a, b))


Check = tuple[str, Any, Any, Callable[[Any, Any], bool] | None]


def _image_checks(recorded: ImageModel, configured: ImageModel) -> list[Check]:
    pre_r = recorded.preprocessing or Preprocessing()
    pre_c = configured.preprocessing or Preprocessing()
    return [
        ("image_model.model_type", recorded.model_type, configured.model_type, None),
        ("image_model.id", recorded.id, configured.id, _model_id_matches),
        ("image_model.revision", recorded.revision, configured.revision, None),
        ("image_model.dim", recorded.dim, configured.dim, None),
        ("image_model.pooling", recorded.pooling, configured.pooling, None),
        ("image_model.preprocessing.image_size", pre_r.image_size, pre_c.image_size, None),
        ("image_model.preprocessing.mean", pre_r.mean, pre_c.mean, _close),
        ("image_model.preprocessing.std", pre_r.std, pre_c.std, _close),
        ("image_model.dtype", recorded.dtype, configured.dtype, _same_dtype),
        ("image_model.weights_sha256", recorded.weights_sha256, configured.weights_sha256, None),
    ]


def check_compatible(
    manifest: IndexManifest,
    *,
    image_model: ImageModel | None = None,
    text_model: TextModel | None = None,
    taxonomy: Taxonomy | None = None,
) -> None:
    """Refuse artifacts built with other models, preprocessing, template or taxonomy.

    ``image_model`` / ``text_model``: the configured encoders as the manifest describes them
    (:func:`.manifest.describe_image_encoder` / ``describe_text_encoder``); ``None``: not
    loaded, not compared.

    Raises:
        ManifestMismatchError: naming the first field that differs (``.field``).
    """
    checks: list[Check] = []
    if image_model is not None:
        checks += _image_checks(manifest.image_model, image_model)
    if text_model is not None:
        checks += [
            ("text_model.id", manifest.text_model.id, text_model.id, _model_id_matches),
            ("text_model.dim", manifest.text_model.dim, text_model.dim, None),
        ]
    checks.append(("template_version", manifest.template_version, TEMPLATE_VERSION, None))
    if taxonomy is not None:
        checks += [
            ("taxonomy.name", manifest.taxonomy.name, taxonomy.name, None),
            ("taxonomy.version", manifest.taxonomy.version, taxonomy.version, None),
        ]
    for name, recorded, configured, same in checks:
        if recorded is None or configured is None:
            continue
        equal = same(recorded, configured) if same else recorded == configured
        if not equal:
            raise ManifestMismatchError(
                name,
                f"artifacts were built with {name} = {recorded!r}, but the configured value is "
                f"{configured!r}; rebuild the index or configure the same model",
            )
