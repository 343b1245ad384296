"""app.render.messages: the content parts and the bounded neighbour images, without a server."""

from __future__ import annotations

import base64
import functools
import io

import anyio
from PIL import Image

from app.render import messages
from app.render.messages import ImageLimits, message_parts
from app.render.thumbnails import thumbnail
from app.serving.admission import DecodeBudget
from models.allocator import MB
from visrag_client.schemas import CaseLabelOut, CaseOut, LabelVoteOut


def neighbour_images(*args, **kwargs) -> dict[str, str]:
    """The images as the /context route makes them: thumbnails inside a decode budget."""
    image_of = functools.partial(thumbnail, budget=DecodeBudget(64 * MB))
    call = functools.partial(messages.neighbour_images, *args, image_of=image_of, **kwargs)
    return anyio.run(call)


def case(rank: int, item_id: str, labels: tuple[CaseLabelOut, ...] = ()) -> CaseOut:
    return CaseOut(
        rank=rank,
        id=item_id,
        similarity_pct=90 - rank,
        score=0.9 - rank / 100,
        labels=list(labels),
        zone="hood_center",
        zone_name="hood center",
        area="frontal",
        area_name="frontal area",
        description="d",
        image_url=f"/items/{item_id}/image",
    )


def noisy_image(path, seed: int) -> None:
    """Random pixels: JPEG cannot shrink them much, so the byte budget bites."""
    data = bytes((i * 7919 + seed * 104729) % 251 for i in range(200 * 150 * 3))
    Image.frombytes("RGB", (200, 150), data).save(path, quality=95)


def test_byte_budget_stops_before_the_image_that_would_pass_it(tmp_path):
    cases = [case(r, f"item-{r}") for r in (1, 2, 3)]
    for r in (1, 2, 3):
        noisy_image(tmp_path / f"item-{r}.jpg", r)
    path_of = lambda item_id: tmp_path / f"{item_id}.jpg"  # noqa: E731
    url_of = lambda item_id, size: f"u/{item_id}/{size}"  # noqa: E731
    everything = neighbour_images(
        cases, ImageLimits(max_total_bytes=10**9), path_of=path_of, url_of=url_of
    )
    sizes = [len(everything[c.id]) for c in cases]
    budget = sizes[0] + sizes[1] + sizes[2] // 2
    bounded = neighbour_images(
        cases, ImageLimits(max_total_bytes=budget), path_of=path_of, url_of=url_of
    )
    assert list(bounded) == ["item-1", "item-2"]
    for url in bounded.values():
        image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        assert image.format == "JPEG" and image.size == (200, 150)


def test_missing_image_leaves_that_case_text_only(tmp_path):
    Image.new("RGB", (40, 30), (1, 2, 3)).save(tmp_path / "b.jpg")
    cases = [case(1, "a"), case(2, "b")]
    images = neighbour_images(
        cases, ImageLimits(), path_of=lambda i: tmp_path / f"{i}.jpg", url_of=lambda i, s: ""
    )
    assert list(images) == ["b"]
    parts = message_parts(cases, [], language="en", images=images)
    assert [p["type"] for p in parts] == ["text", "text", "image_url", "text"]
    assert parts[1]["text"].endswith("(image not included)")
    assert parts[3]["text"] == (
        "Case 2 (b): similarity 88%. Verified labels: none (no damage). "
        "Zone: hood center (frontal area)."
    )


def test_votes_close_the_parts_and_no_cases_says_so():
    labels = (CaseLabelOut(id="dent", count=2, name="Abolladura", phrase="2 abolladuras"),)
    votes = [
        LabelVoteOut(
            label="dent", name="Abolladura", support=1, neighbours=1, weighted=0.5, predicted=True
        )
    ]
    parts = message_parts([case(1, "a", labels)], votes, language="es", images={"a": "data:x"})
    assert parts[1] == {"type": "image_url", "image_url": {"url": "data:x"}}
    assert "Etiquetas verificadas: 2 abolladuras." in parts[2]["text"]
    assert parts[-1]["text"] == (
        "Votos de etiquetas entre los 1 vecinos:\n- Abolladura: 1 de 1 vecinos, ponderado 0,50"
    )
    assert message_parts([], [], language="en", images={}) == [
        {"type": "text", "text": "No similar indexed case was found."}
    ]
