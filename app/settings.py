"""Service configuration: the only module that reads the environment (prefix ``VISRAG_``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Every ``VISRAG_*`` variable. The README's table is tested against it."""

    model_config = SettingsConfigDict(env_prefix="VISRAG_", env_file=".env", extra="ignore")

    artifacts: Path = Field(Path("artifacts"), description="Index artifact directory to serve.")
    image_model: str | None = Field(
        None, description="DINOv3 id or local dir; default: the one recorded in the manifest."
    )
    text_model: str | None = Field(
        None, description="Text model id or local dir; default: the one recorded in the manifest."
    )
    taxonomy: str | None = Field(None, description="Taxonomy file; default: the packaged one.")
    data_root: Path | None = Field(
        None,
        description="Where the indexed dataset is now (thumbnails, message images); "
        "default: the dataset root the index recorded at build.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Inference device.")
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="Model dtype; auto: bf16 weights on CUDA and native-bf16 CPUs, else fp32.",
    )
    host: str = Field("127.0.0.1", description="Bind address of `visrag serve`.")
    port: int = Field(8000, description="Port of `visrag serve`.")
    max_batch_size: int = Field(16, ge=1, description="Largest micro-batch sent to the encoder.")
    max_wait_ms: float = Field(5.0, ge=0, description="How long a batch waits to fill up.")
    max_queue: int = Field(256, ge=1, description="Queued images before answering 429.")
    max_upload_bytes: int = Field(20 * 1024 * 1024, description="Largest accepted upload.")
    max_pixels: int = Field(64_000_000, description="Decompression-bomb guard (width x height).")
    request_timeout_s: float = Field(30.0, description="Per-request time limit.")
    max_uploads: int = Field(
        64,
        ge=1,
        description="Request bodies received at once; one more gets 429 before its body is read.",
    )
    min_upload_rate_bps: int = Field(
        1024,
        ge=0,
        description="Slowest upload kept after the grace period (bytes/s; 0: no minimum); "
        "slower ones are closed with 408.",
    )
    upload_grace_s: float = Field(
        5.0, ge=0, description="Time an upload has before the minimum rate applies."
    )
    header_timeout_s: float = Field(
        10.0, gt=0, description="Time a connection has to send its request headers."
    )
    decode_budget_mb: int = Field(
        1024, ge=16, description="Memory all concurrent image decodes may hold together (MB)."
    )
    default_k: int = Field(5, ge=1, le=100, description="k when the request gives none.")
    rerank_candidates: int = Field(20, ge=1, description="Neighbours voting in mode 'rerank'.")
    label_estimate_threshold: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Label estimates shown from this probability up (the leading one always).",
    )
    label_set_alpha: float = Field(
        0.1,
        gt=0.0,
        lt=1.0,
        description="Label sets miss a true label of photos like the indexed ones at most this "
        "often (0.1: 90 % coverage).",
    )
    novelty_threshold: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="Flag a photo as far from every indexed case below this novelty p-value.",
    )
    max_photos: int = Field(
        8,
        ge=1,
        le=32,
        description="Photos of one claim a `/retrieve` or `/context` request may carry "
        "(repeated `image` fields).",
    )
    region_crop_margin: float = Field(
        0.25,
        ge=0.0,
        le=2.0,
        description="Margin around a region's box in its crops, as a share of the box's longer "
        "side.",
    )
    region_crop_side: int = Field(
        256, ge=32, le=1024, description="Longer side of a region crop (pixels, at most)."
    )
    region_crop_budget_bytes: int = Field(
        600_000,
        ge=10_000,
        le=20_000_000,
        description="Bytes of all region-crop data URLs in one `/context` format=messages answer.",
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Accepted API keys (comma-separated or a JSON list); empty = no auth.",
    )
    write_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Keys that may write the catalogue (`POST/PUT/DELETE /items`), each `key` or "
        "`name:key` (the name goes into the index history); empty = no write API.",
    )
    write_lock_wait_s: float = Field(
        10.0, ge=0, description="How long a catalogue write waits for the writer lock (then 503)."
    )
    max_items_per_request: int = Field(32, ge=1, description="Images one `POST /items` may carry.")
    duplicate_hash_bits: int = Field(
        8,
        ge=0,
        le=64,
        description="An added photo whose perceptual hash is this close (bits of 64) to an "
        "indexed one's is a near-duplicate (409 unless allow_duplicate=true).",
    )
    duplicate_cosine: float | None = Field(
        None,
        ge=-1.0,
        le=1.0,
        description="Also a near-duplicate from this image-vector cosine up (depends on the "
        "backbone: measure it first); unset: not checked.",
    )
    uploads_dir: Path | None = Field(
        None,
        description="Where images added over HTTP are kept; default: `<artifacts>.uploads` "
        "beside the index directory.",
    )
    reload_interval_s: float = Field(
        5.0,
        ge=0,
        description="Seconds between checks for a new index generation (live reload; also on "
        "SIGHUP); 0: only on SIGHUP.",
    )
    demo_page: bool = Field(True, description="Serve the demo page at `/`.")
    demo_samples: Path | None = Field(
        None,
        description="Folder of sample photos (`samples.json` + JPEGs) the demo page offers to "
        "query with; `visrag demo` writes and sets it.",
    )
    log_level: str = Field("info", description="Log level.")

    @field_validator("api_keys", "write_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        """``VISRAG_API_KEYS=k1,k2`` or ``VISRAG_API_KEYS='["k1", "k2"]'``."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return [str(k).strip() for k in json.loads(text) if str(k).strip()]
            return [k.strip() for k in text.split(",") if k.strip()]
        return value


def secret_from_env(name: str | None) -> str | None:
    """The value of the environment variable ``name`` (e.g. the VLM endpoint's API key, named by
    ``visrag evaluate-vlm --api-key-env``), or None."""
    import os

    return os.environ.get(name) or None if name else None
