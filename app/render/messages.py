"""``/context?format=messages``: the similar cases as OpenAI-compatible chat content parts.

The parts, in order: the instruction text; for each neighbour (rank order) its image (a bounded
JPEG as a ``data:`` URL, or the catalogue thumbnail's URL) followed by a text part with its
verified labels, zone and similarity; then the label votes. A caller puts them into the
``content`` of a user message, next to its own question and the image to analyse. Nothing here
names or assumes a particular model.

``message_parts`` is pure (cases, votes, image URLs in -> parts out); ``neighbour_images``
makes the bounded images from catalogue paths (never request paths), each decoded by
``image_of`` (the service's :func:`app.render.thumbnails.thumbnail`, inside the decode budget).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.render.estimates import estimate_lines
from app.render.label_sets import label_set_line
from app.render.thumbnails import THUMBNAIL_SIZES
from indexer.query import RegionHit
from models.imaging import ImageDecodeError
from visrag_client.schemas import CaseOut, LabelEstimateOut, LabelSetOut, LabelVoteOut, NoveltyOut

if TYPE_CHECKING:
    from app.render.context import RenderedContext

logger = logging.getLogger(__name__)

_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "intro": "Below are the {n} indexed cases most similar to the image to analyse, each "
        "shown as an image followed by its verified labels. They are reference cases for "
        "comparison, not a diagnosis of that image. Similarity is the cosine similarity x 100.",
        "shown": "Each case below is an image followed by its verified labels.",
        "none": "No similar indexed case was found.",
        "case": "Case {rank} ({id}): similarity {pct}%. Verified labels: {labels}. Zone: {zone}.",
        "no_image": " (image not included)",
        "no_labels": "none (no damage)",
        "votes": "Label votes across the {n} neighbours:",
        "vote": "- {name}: {support} of {n} neighbours, weighted {weighted}",
        "regions": "Crops of the indexed damage regions most like the photo's region, each "
        "followed by its verified labels (they stand for the cases' whole photos):",
        "region": "Region {id} of case {item}: {labels}; similarity {pct}%.",
    },
    "es": {
        "intro": "A continuación, los {n} casos indexados más parecidos a la imagen a analizar, "
        "cada uno como una imagen seguida de sus etiquetas verificadas. Son casos de referencia "
        "para comparar, no un diagnóstico de esa imagen. La similitud es la similitud coseno "
        "x 100.",
        "shown": "Cada caso a continuación es una imagen seguida de sus etiquetas verificadas.",
        "none": "No se encontró ningún caso indexado similar.",
        "case": "Caso {rank} ({id}): similitud {pct}%. Etiquetas verificadas: {labels}. "
        "Zona: {zone}.",
        "no_image": " (imagen no incluida)",
        "no_labels": "ninguna (sin daño)",
        "votes": "Votos de etiquetas entre los {n} vecinos:",
        "vote": "- {name}: {support} de {n} vecinos, ponderado {weighted}",
        "regions": "Recortes de las zonas dañadas indexadas más parecidas a la zona de la foto, "
        "cada uno seguido de sus etiquetas verificadas (sustituyen a las fotos completas de los "
        "casos):",
        "region": "Zona {id} del caso {item}: {labels}; similitud {pct}%.",
    },
}


@dataclass(frozen=True)
class ImageLimits:
    """How many neighbour images, how large, and how many bytes of data URLs in all."""

    max_images: int = 5
    max_side: int = 512
    max_total_bytes: int = 2_000_000
    urls: bool = False  # thumbnail URLs instead of data URLs


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def rendered_parts(
    rendered: RenderedContext,
    images: dict[str, str],
    *,
    region_parts: Sequence[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """:func:`message_parts` of a rendered context: its cases, votes, estimates, set, notes and
    sections (one text part each); ``region_parts`` (crops of the matched regions) go before
    the cases, whose whole photos they replace."""
    parts = message_parts(
        rendered.cases,
        rendered.label_votes,
        language=rendered.language,
        images=images,
        estimates=rendered.label_estimates,
        selection=rendered.selection,
        label_set=rendered.label_set,
        novelty=rendered.novelty,
        region_parts=region_parts,
    )
    for section in rendered.sections:
        parts.append(_text("\n".join([f"{section.title}:", *(f"- {x}" for x in section.lines)])))
    return parts


def message_parts(
    cases: Sequence[CaseOut],
    votes: Sequence[LabelVoteOut],
    *,
    language: str,
    images: dict[str, str],
    estimates: Sequence[LabelEstimateOut] = (),
    selection: str | None = None,
    label_set: LabelSetOut | None = None,
    novelty: NoveltyOut | None = None,
    region_parts: Sequence[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """The content parts; ``images`` maps a case id to its image URL (absent: text only, said
    unless ``region_parts``, the crops of the matched regions, stand for the photos).

    ``selection``: what chose the cases (:func:`app.render.context.selection`), said first; a
    photo flagged as novel gets the warning before it; the label set comes last.
    """
    words = _WORDS.get(language, _WORDS["en"])
    note = [_text(novelty.note)] if novelty and novelty.note else []
    if not cases:
        return [*note, _text(words["none"])]
    intro = words["intro"].format(n=len(cases))
    if selection is not None:
        intro = f"{selection} {words['shown']}"
    parts = [*note, _text(intro), *region_parts]
    for case in cases:
        url = images.get(case.id)
        if url is not None:
            parts.append(_image(url))
        labels = ", ".join(lb.phrase or f"{lb.count} x {lb.name}" for lb in case.labels)
        zone = case.zone_name if case.area == "unknown" else f"{case.zone_name} ({case.area_name})"
        line = words["case"].format(
            rank=case.rank,
            id=case.id,
            pct=case.similarity_pct,
            labels=labels or words["no_labels"],
            zone=zone,
        )
        pictured = url is not None or bool(region_parts)
        parts.append(_text(line + ("" if pictured else words["no_image"])))
    if votes:
        lines = [words["votes"].format(n=votes[0].neighbours)]
        for vote in votes:
            weighted = f"{vote.weighted:.2f}"
            if language == "es":
                weighted = weighted.replace(".", ",")
            lines.append(
                words["vote"].format(
                    name=vote.name, support=vote.support, n=vote.neighbours, weighted=weighted
                )
            )
        parts.append(_text("\n".join(lines)))
    if estimates:
        title, shown = estimate_lines(estimates, language)
        parts.append(_text("\n".join([f"{title}:", *(f"- {line}" for line in shown)])))
    if label_set:
        parts.append(_text(label_set_line(label_set, language)))
    return parts


async def region_crop_parts(
    hits: Sequence[RegionHit],
    *,
    language: str,
    max_total_bytes: int,
    crop_of: Callable[[RegionHit], Awaitable[bytes | None]],
) -> list[dict[str, Any]]:
    """The matched regions as content parts: an intro, then each region's crop (from its
    indexed image, ``crop_of``: None when unreadable) and its verified labels, in rank order,
    while the data URLs stay within ``max_total_bytes``; [] when no crop fits."""
    words = _WORDS.get(language, _WORDS["en"])
    parts: list[dict[str, Any]] = []
    total = 0
    for hit in hits:
        data = await crop_of(hit)
        if data is None:
            continue
        url = jpeg_data_url(data)
        if total + len(url) > max_total_bytes:
            break
        total += len(url)
        labels = ", ".join(lb.name.get(language) for lb in hit.labels) or words["no_labels"]
        parts.append(_image(url))
        parts.append(
            _text(
                words["region"].format(
                    id=hit.id, item=hit.item, labels=labels, pct=round(100 * hit.score)
                )
            )
        )
    return [_text(words["regions"]), *parts] if parts else []


def jpeg_data_url(data: bytes) -> str:
    """JPEG bytes as a data URL."""
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


def thumbnail_size(max_side: int) -> int:
    """The largest served thumbnail size not above ``max_side`` (the smallest one at least)."""
    return max((s for s in THUMBNAIL_SIZES if s <= max_side), default=THUMBNAIL_SIZES[0])


async def neighbour_images(
    cases: Sequence[CaseOut],
    limits: ImageLimits,
    *,
    path_of: Callable[[str], Path | str | None],
    url_of: Callable[[str, int], str],
    image_of: Callable[[Path, int], Awaitable[bytes]],
) -> dict[str, str]:
    """Image URLs of the first cases, within ``limits``, in rank order; ``image_of(path, side)``
    gives the JPEG bytes of a catalogue image fitted into ``side`` x ``side``.

    Data URLs stop at ``max_images`` or when the next one would pass ``max_total_bytes``;
    an unreadable or missing image is skipped (that case stays text only).
    """
    images: dict[str, str] = {}
    total = 0
    for case in cases:
        if len(images) >= limits.max_images:
            break
        if limits.urls:
            images[case.id] = url_of(case.id, thumbnail_size(limits.max_side))
            continue
        path = path_of(case.id)
        if path is None:
            continue
        try:
            url = jpeg_data_url(await image_of(Path(path), limits.max_side))
        except (OSError, ImageDecodeError) as exc:
            logger.warning("image of %s not included: %s: %s", case.id, type(exc).__name__, exc)
            continue
        if total + len(url) > limits.max_total_bytes:
            break
        images[case.id] = url
        total += len(url)
    return images
