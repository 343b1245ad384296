"""Fake *encoders* over a real index, handed to ``create_app(settings, resources=...)``.

The service runs the real :class:`indexer.retrieval.retriever.Retriever` over a small flat FAISS
artifact
directory written by the real writer; only the models are fakes, and both satisfy the encoder
Protocols of ``models.base``. The image encoder turns an image's mean colour into a unit vector,
so a red upload lands on the red catalogue item; the text encoder counts a few damage and zone
words, so "a crack on the door" lands on the cracked door. Ranks and labels are checkable by hand.
"""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from app.serving.resources import assemble_resources
from indexer.index.artifacts import load_artifacts, write_artifacts
from indexer.index.catalogue import CatalogueItem
from indexer.index.manifest import describe_image_encoder, describe_text_encoder, manifest_body
from indexer.index.stores import StoreTarget, make_stores
from models.base import ImageEncoderProtocol, TextEncoderProtocol
from models.description import describe
from models.taxonomy import load_taxonomy

ALPHA = 0.5
COLOURS = {
    "red-1": ((220, 30, 30), {"surface_scratch": 2, "dent": 1}, "hood_center"),
    "green-2": ((30, 200, 40), {"dent": 1}, "rear_bumper"),
    "blue-3": ((30, 40, 210), {"crack": 3}, "driver_side_door"),
    "grey-4": ((128, 128, 128), {}, "unknown"),
    "orange-5": ((230, 120, 20), {"surface_scratch": 1}, "hood_center"),
}
WORDS = ("scratch", "dent", "crack", "hood", "bumper", "door")


def colour_vector(rgb: np.ndarray) -> np.ndarray:
    v = np.asarray(rgb, dtype=np.float32) + 1.0
    return (v / np.linalg.norm(v)).astype(np.float32)


def jpeg(colour: tuple[int, int, int] = (220, 30, 30), size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="JPEG")
    return out.getvalue()


def png(colour: tuple[int, int, int] = (30, 40, 210), size: tuple[int, int] = (20, 20)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


class FakeImageEncoder:
    """preprocess -> (3, 4, 4) mean colour; encode -> unit colour vector. Can be held shut."""

    model_id = "fake/colour"
    revision = None
    dim = 3
    image_size = 64
    patch_size = 16
    pooling = "cls"  # what the manifest schema accepts; the fake pools by mean colour
    device = "cpu"
    dtype = "fp32"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.batches: list[int] = []
        self.threads: set[str] = set()

    def preprocess(self, image: Image.Image) -> np.ndarray:
        mean = np.asarray(image.convert("RGB"), dtype=np.float32).reshape(-1, 3).mean(0)
        return np.broadcast_to(mean[:, None, None], (3, 4, 4)).astype(np.float32)

    def encode_preprocessed(self, arrays: Sequence[np.ndarray], *, batch_size: int = 8) -> Any:
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        self.gate.wait(30)
        self.batches.append(len(arrays))
        return np.stack([colour_vector(a[:, 0, 0]) for a in arrays])

    def info(self) -> dict[str, Any]:
        return {"id": self.model_id, "dim": self.dim, "pooling": self.pooling, "dtype": "fp32"}


class FakeTextEncoder:
    """Counts of a few damage and zone words (+ a small constant), unit length.

    A text containing "explode" raises, to stand for a bug inside a model call.
    """

    model_id = "fake/words"
    dim = len(WORDS) + 1

    def __init__(self) -> None:
        self.threads: set[str] = set()

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> Any:
        self.threads.add(threading.current_thread().name)
        rows = []
        for text in texts:
            if "explode" in text:
                raise RuntimeError("secret internal detail /srv/private")
            tokens = re.findall(r"[a-z]+", text.lower())
            counts = [sum(t.startswith(w) for t in tokens) for w in WORDS]
            v = np.array([*counts, 0.1], dtype=np.float32)
            rows.append(v / np.linalg.norm(v))
        return np.stack(rows)

    def info(self) -> dict[str, Any]:
        return {"id": self.model_id, "dim": self.dim}


class Fakes:
    """The fake encoders, the colour catalogue as a real artifact directory, the Resources."""

    def __init__(self, tmp_path: Path, store: StoreTarget | None = None) -> None:
        self.image_encoder = FakeImageEncoder()
        self.text_encoder = FakeTextEncoder()
        assert isinstance(self.image_encoder, ImageEncoderProtocol)
        assert isinstance(self.text_encoder, TextEncoderProtocol)
        taxonomy = load_taxonomy()
        self.image_dir = tmp_path / "images"
        self.image_dir.mkdir()
        items = []
        for row, (item_id, (rgb, labels, zone)) in enumerate(COLOURS.items()):
            Image.new("RGB", (300, 200), rgb).save(self.image_dir / f"{item_id}.jpg")
            items.append(
                CatalogueItem(
                    row=row,
                    id=item_id,
                    image=f"{item_id}.jpg",
                    labels=labels,
                    zone=zone,
                    area=taxonomy.normalise_zone(zone).area,
                    group=item_id,
                    description=describe(labels, zone, taxonomy),
                )
            )
        image_vectors = np.stack([colour_vector(np.array(c[0])) for c in COLOURS.values()])
        text_vectors = self.text_encoder.encode([it.description for it in items])
        self.text_encoder.threads.clear()  # the build's encode is not the service's
        image_store, fused_store = make_stores(
            image_vectors, text_vectors, alpha=ALPHA, items=items, target=store
        )
        write_artifacts(
            tmp_path / "art",
            manifest=manifest_body(
                image_model=describe_image_encoder(self.image_encoder),
                text_model=describe_text_encoder(self.text_encoder),
                alpha=ALPHA,
                taxonomy=taxonomy,
                dataset={"root": str(self.image_dir)},
            ),
            items=items,
            image_vectors=image_vectors,
            text_vectors=text_vectors,
            image_store=image_store,
            fused_store=fused_store,
        )
        self.resources = assemble_resources(
            load_artifacts(tmp_path / "art"),
            image_encoder=self.image_encoder,
            text_encoder=self.text_encoder,
            taxonomy=taxonomy,
        )


def wait_ready(client: TestClient, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/ready").status_code == 200:
            return
        time.sleep(0.01)
    raise AssertionError(f"not ready after {timeout}s: {client.get('/ready').json()}")


def assert_error(response: Any, status: int, error_type: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "error_type"}, body
    assert body["error_type"] == error_type, body
    assert "Traceback" not in response.text
    return body
