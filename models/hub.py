"""Where an image model's weights come from: a local checkpoint directory or the Hugging Face hub.

Loading never prompts: a token comes from ``token=`` or ``HF_TOKEN``; ``HF_HUB_OFFLINE=1`` means
local files only. Every way of not getting the weights ends in one ``ModelNotAvailableError``
whose message names the model and how to provide it.

Failing fast: a path-like model (an absolute or ``./`` path, more than one separator, or a folder
whose parent exists) that is not there is "local folder not found" at once, with no hub request;
and before a hub id is fetched, :func:`hub_reachable` probes the hub (or the HTTPS proxy) with one
short TCP connection, so that without network the load is a cache-only one instead of
huggingface_hub's retries (tens of seconds).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from models.errors import ModelNotAvailableError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

DEFAULT_IMAGE_MODEL = "facebook/dinov3-vits16-pretrain-lvd1689m"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HUB_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT_S = 1.5
RANDOM_INIT_KEY = "visrag_random_init"  # config.json marker of models.testing's random checkpoints
TINY_HINT = "no weights? `visrag model tiny DIR` writes a random one for --image-model DIR"


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _how_to(model_id: str, local_dir: str | None = None) -> str:
    """The lines after a missing-weights message: download (to a folder), the gate, no weights."""
    into = f" --local-dir {local_dir}" if local_dir else ""
    return (
        f"\n  download it: hf download {model_id}{into}"
        f"\n  gated: accept the licence at https://huggingface.co/{model_id}, then set HF_TOKEN"
        f"\n  {TINY_HINT}"
    )


def _local_not_found(text: str, path: Path) -> str:
    return f"image model {text!r}: local folder not found: {path.absolute()}" + _how_to(
        DEFAULT_IMAGE_MODEL, text
    )


def is_path_like(text: str) -> bool:
    """Whether ``text`` names a local folder rather than a hub id (``owner/name``)."""
    if text.startswith(("/", ".", "~")) or text.count("/") != 1 or "\\" in text:
        return True
    parent = Path(text).expanduser().parent
    return parent != Path(".") and parent.is_dir()


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """One short TCP connection to the hub (or to the HTTPS proxy, when one is configured)."""
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    url = urlsplit(proxy or os.environ.get("HF_ENDPOINT") or HUB_ENDPOINT)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    reached: list[bool] = []

    def connect() -> None:  # in a thread: name resolution has no timeout of its own
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            reached.append(True)
        except OSError:
            pass

    probe = threading.Thread(target=connect, daemon=True, name="hub-probe")
    probe.start()
    probe.join(timeout + 0.5)
    return bool(reached)


def resolve_source(model: str | Path) -> tuple[str, Path | None]:
    """(model id to record, local directory or None for a hub id)."""
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotAvailableError(
                f"image model {str(model)!r}: {path} is not a model directory (no config.json)"
                + _how_to(DEFAULT_IMAGE_MODEL, str(model))
            )
        return str(path.resolve()), path
    text = str(model)
    if isinstance(model, Path) or is_path_like(text):
        raise ModelNotAvailableError(_local_not_found(text, path))
    return text, None


def hub_kwargs_for(revision: str | None, token: str | None) -> dict[str, Any]:
    """How to fetch a hub id: cache only when ``HF_HUB_OFFLINE`` or the hub is out of reach."""
    offline = env_flag("HF_HUB_OFFLINE") or env_flag("TRANSFORMERS_OFFLINE")
    if not offline and not hub_reachable():
        logger.warning("the Hugging Face hub is out of reach: using the local cache only")
        offline = True
    return {
        "revision": revision,
        "token": token or os.environ.get("HF_TOKEN") or None,
        "local_files_only": offline,
    }


def is_random_init(config: Any) -> bool:
    """Whether a model config carries the random-weights marker of :mod:`models.testing`."""
    return bool(getattr(config, RANDOM_INIT_KEY, False))


def read_mean_std(
    source: str, local: Path | None, hub_kwargs: dict[str, Any]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    config: dict[str, Any] = {}
    try:
        if local is not None:
            file = local / "preprocessor_config.json"
            config = json.loads(file.read_text()) if file.is_file() else {}
        else:
            from transformers.utils import cached_file

            found = cached_file(
                source,
                "preprocessor_config.json",
                _raise_exceptions_for_missing_entries=False,
                **hub_kwargs,
            )
            config = json.loads(Path(found).read_text()) if found else {}
    except (OSError, ValueError) as exc:
        logger.warning("cannot read preprocessor_config.json of %s: %s", source, exc)
    mean, std = config.get("image_mean"), config.get("image_std")
    if isinstance(mean, (list, tuple)) and isinstance(std, (list, tuple)):
        if len(mean) == 3 and len(std) == 3:
            return tuple(float(v) for v in mean), tuple(float(v) for v in std)
    logger.warning("no image_mean/image_std for %s: using the ImageNet values", source)
    return IMAGENET_MEAN, IMAGENET_STD


def _uncached(source: str) -> str:
    offline = "HF_HUB_OFFLINE=1" if env_flag("HF_HUB_OFFLINE") else "no network"
    return (
        f"hub id not in the local Hugging Face cache ({offline})"
        f"\n  (nor a local folder: {Path(source).absolute()})"
    )


@contextlib.contextmanager
def _unavailable_on_error(source: str, hub_kwargs: dict[str, Any]) -> Iterator[None]:
    """Every way of not getting a checkpoint's files -> one ``ModelNotAvailableError``."""
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError

    try:
        yield
    except GatedRepoError as exc:
        reason = "the repository is gated and no accepted licence/token was found"
        raise ModelNotAvailableError(_unavailable(source, reason)) from exc
    except (OSError, ValueError, KeyError, HfHubHTTPError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if hub_kwargs.get("local_files_only"):
            reason = _uncached(source)
        raise ModelNotAvailableError(_unavailable(source, reason)) from exc


@contextlib.contextmanager
def _quiet_transformers(quiet: bool = True) -> Iterator[None]:
    """Errors only from ``transformers`` meanwhile: a full SigLIP checkpoint's unused text weights
    and the SigLIP 2 config's own default text settings are expected, not news."""
    import transformers

    verbosity = transformers.logging.get_verbosity()
    if quiet:
        transformers.logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)


def load_config(source: str, hub_kwargs: dict[str, Any]) -> Any:
    """The checkpoint's ``config.json`` as a ``transformers`` config (its ``model_type`` picks
    the backbone rule before any weight is read)."""
    if hub_kwargs.get("local_files_only"):  # answer before the (slow) transformers import
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(source, "config.json", revision=hub_kwargs.get("revision"))
        if not isinstance(cached, str):
            raise ModelNotAvailableError(_unavailable(source, _uncached(source)))
    from transformers import AutoConfig

    with _quiet_transformers(), _unavailable_on_error(source, hub_kwargs):
        return AutoConfig.from_pretrained(source, **hub_kwargs)


def load_model(
    source: str, dtype: torch.dtype, hub_kwargs: dict[str, Any], *, model_class: str | None = None
) -> Any:
    """The weights, through ``AutoModel`` or the named ``transformers`` class (a vision tower)."""
    import transformers

    loader = getattr(transformers, model_class) if model_class else transformers.AutoModel
    with _quiet_transformers(model_class is not None), _unavailable_on_error(source, hub_kwargs):
        return loader.from_pretrained(source, dtype=dtype, **hub_kwargs)


def _unavailable(source: str, reason: str) -> str:
    return f"image model {source!r}: {reason}" + _how_to(source)
