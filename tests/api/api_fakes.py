"""Fakes for the API tests, handed to ``create_app(settings, resources=...)``.

The fake encoder turns an image's mean colour into a unit vector, so a red upload lands on the
red catalogue item: rank and labels are checkable by hand.
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from app.resources import Resources
from indexer.hits import Filters, Hit, LabelCount, QueryError, RetrievalResult
from models.taxonomy import Taxonomy, load_taxonomy

COLOURS = {
    "red-1": ((220, 30, 30), {"surface_scratch": 2, "dent": 1}, "hood_center"),
    "green-2": ((30, 200, 40), {"dent": 1}, "rear_bumper"),
    "blue-3": ((30, 40, 210), {"crack": 3}, "driver_side_door"),
    "grey-4": ((128, 128, 128), {}, "unknown"),
    "orange-5": ((230, 120, 20), {"surface_scratch": 1}, "hood_center"),
}


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

    device = "cpu"
    dtype = "fp32"
    dim = 3

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.batches: list[int] = []
        self.threads: set[str] = set()
        self.delay = 0.0

    def preprocess(self, image: Image.Image) -> np.ndarray:
        mean = np.asarray(image.convert("RGB"), dtype=np.float32).reshape(-1, 3).mean(0)
        return np.broadcast_to(mean[:, None, None], (3, 4, 4)).astype(np.float32)

    def encode_preprocessed(self, arrays: list[np.ndarray], *, batch_size: int = 8) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        self.gate.wait(30)
        if self.delay:
            time.sleep(self.delay)
        self.batches.append(len(arrays))
        return np.stack([colour_vector(a[:, 0, 0]) for a in arrays])

    def info(self) -> dict[str, Any]:
        return {"id": "fake/dinov3", "dim": 3, "pooling": "cls", "dtype": "fp32"}


class FakeTextEncoder:
    model_id = "fake/text"
    dim = 2

    def __init__(self) -> None:
        self.threads: set[str] = set()

    def encode(self, texts: list[str], **kwargs: Any) -> np.ndarray:
        self.threads.add(threading.current_thread().name)
        return np.ones((len(texts), 2), np.float32) / np.sqrt(2)

    def info(self) -> dict[str, Any]:
        return {"id": self.model_id, "dim": self.dim}


class FakeRetriever:
    """Cosine over the colour catalogue; filters and modes behave like the real Retriever's."""

    def __init__(self, taxonomy: Taxonomy, image_dir: Path, text_encoder: Any) -> None:
        self.taxonomy = taxonomy
        self.text_encoder = text_encoder
        self.manifest = {"format_version": 1, "image_model": {"id": "fake/dinov3", "dim": 3}}
        self.ids = list(COLOURS)
        self.vectors = np.stack([colour_vector(np.array(c[0])) for c in COLOURS.values()])
        self.image_dir = image_dir
        self.calls: list[dict[str, Any]] = []
        for item_id, (rgb, _, _) in COLOURS.items():
            Image.new("RGB", (300, 200), rgb).save(image_dir / f"{item_id}.jpg")

    @property
    def size(self) -> int:
        return len(self.ids)

    def search(
        self,
        image_vector: np.ndarray,
        *,
        k: int = 5,
        mode: str = "image",
        text: str | None = None,
        filters: Filters | None = None,
        alpha: float | None = None,
    ) -> RetrievalResult:
        self.calls.append({"k": k, "mode": mode, "text": text, "filters": filters, "alpha": alpha})
        if mode == "hybrid" and not text:
            raise QueryError("mode 'hybrid' needs a text (e.g. a caption of the image)")
        if text == "explode":
            raise RuntimeError("secret internal detail /srv/private")
        timings: dict[str, float] = {}
        if mode != "image":
            t0 = time.perf_counter()
            self.text_encoder.encode([text or "pseudo"])
            timings["text_encode"] = time.perf_counter() - t0
        scores = self.vectors @ np.asarray(image_vector, np.float32)
        rows = [
            r
            for r in np.argsort(-scores, kind="stable")
            if not filters
            or not filters.labels_any
            or set(filters.labels_any) & set(COLOURS[self.ids[r]][1])
        ][:k]
        hits = tuple(self._hit(int(r), float(scores[r]), rank) for rank, r in enumerate(rows, 1))
        timings["search"] = 1e-4
        pseudo = "2 surface scratches on the hood center (frontal)" if mode == "rerank" else None
        return RetrievalResult(hits=hits, mode=mode, timings=timings, pseudo_text=pseudo)

    def _hit(self, row: int, score: float, rank: int) -> Hit:
        item_id = self.ids[row]
        _, labels, zone_id = COLOURS[item_id]
        zone = self.taxonomy.normalise_zone(zone_id)
        return Hit(
            id=item_id,
            rank=rank,
            score=score,
            labels=tuple(
                LabelCount(lb.id, n, lb.en, lb.es, lb.coarse)
                for lb, n in ((self.taxonomy.label(i), n) for i, n in labels.items())
            ),
            zone=zone.id,
            zone_name=zone.en,
            area=zone.area,
            description=f"{item_id} description",
            image=f"{item_id}.jpg",
        )

    def image_path(self, item_id: str) -> Path | None:
        return self.image_dir / f"{item_id}.jpg" if item_id in COLOURS else None


class Fakes:
    def __init__(self, tmp_path: Path) -> None:
        from app.resources import OnWorker

        self.image_encoder = FakeImageEncoder()
        self.text_encoder = FakeTextEncoder()
        on_worker = OnWorker(self.text_encoder)
        self.retriever = FakeRetriever(load_taxonomy(), tmp_path, on_worker)
        self.resources = Resources(
            retriever=self.retriever, image_encoder=self.image_encoder, text_encoder=on_worker
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
