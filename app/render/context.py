"""Render a retrieval as a VLM-agnostic context block (markdown, text or JSON, en/es).

The block lists the similar verified cases (similarity as a percentage of the cosine, labels
deduplicated with counts, zone) and a label-vote summary across all neighbours, e.g.
"Surface scratch: 4 of 5 neighbours, weighted 0.78". The same content comes back structured, as
the wire models of ``/context``, so a gateway can build its own prompt. Everything shown comes
from the :class:`~indexer.query.RetrievalResult`: its hits carry their display names, its votes
are already tallied.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.render.estimates import estimate_lines, label_estimates
from app.render.label_sets import label_set_line, label_set_out
from app.render.novelty_note import novelty_out
from indexer.query import Hit, LabelVote, RetrievalResult
from visrag_client.schemas import (
    CaseLabelOut,
    CaseOut,
    LabelEstimateOut,
    LabelSetOut,
    LabelVoteOut,
    NoveltyOut,
)

FORMATS = ("markdown", "text", "json")

_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Similar verified cases",
        "intro": "The {n} indexed cases most similar to the image ({score}). They are reference "
        "cases for comparison, not a diagnosis of this image.",
        "score_image": "similarity = cosine similarity of the image embeddings x 100",
        "score_hybrid": "similarity = weighted image and text cosine similarity x 100",
        "similarity": "Similarity",
        "labels": "Labels",
        "zone": "Zone",
        "description": "Description",
        "case": "case",
        "votes": "Label votes across the {n} neighbours",
        "vote": "{name}: {support} of {n} neighbours, weighted {weighted}",
        "none": "No similar indexed case was found.",
        "no_labels": "none",
    },
    "es": {
        "title": "Casos verificados similares",
        "intro": "Los {n} casos indexados más parecidos a la imagen ({score}). Son casos de "
        "referencia para comparar, no un diagnóstico de esta imagen.",
        "score_image": "similitud = similitud coseno de los embeddings de imagen x 100",
        "score_hybrid": "similitud = similitud coseno ponderada de imagen y texto x 100",
        "similarity": "Similitud",
        "labels": "Etiquetas",
        "zone": "Zona",
        "description": "Descripción",
        "case": "caso",
        "votes": "Votos de etiquetas entre los {n} vecinos",
        "vote": "{name}: {support} de {n} vecinos, ponderado {weighted}",
        "none": "No se encontró ningún caso indexado similar.",
        "no_labels": "ninguna",
    },
}


@dataclass(frozen=True)
class RenderedContext:
    context: str
    format: str
    language: str
    cases: tuple[CaseOut, ...]
    label_votes: tuple[LabelVoteOut, ...]
    label_estimates: tuple[LabelEstimateOut, ...] = ()
    label_set: LabelSetOut | None = None
    novelty: NoveltyOut | None = None


def similarity_pct(score: float) -> int:
    """Cosine -> whole percent (0.874 -> 87)."""
    return int(round(100.0 * score))


def label_votes(votes: Sequence[LabelVote], *, language: str) -> list[LabelVoteOut]:
    """The neighbours' label votes (:attr:`RetrievalResult.votes`) in ``language``."""
    return [
        LabelVoteOut(
            label=v.label,
            name=v.name.get(language),
            support=v.support,
            neighbours=v.neighbours,
            weighted=round(v.weighted, 4),
            predicted=v.predicted,
        )
        for v in votes
    ]


def case_out(hit: Hit, *, language: str, image_url: Callable[[str], str]) -> CaseOut:
    """One hit as a case of the block, in ``language``."""
    return CaseOut(
        rank=hit.rank,
        id=hit.id,
        similarity_pct=similarity_pct(hit.score),
        score=round(hit.score, 6),
        labels=[
            CaseLabelOut(id=lb.id, count=lb.count, name=lb.name.get(language)) for lb in hit.labels
        ],
        zone=hit.zone,
        zone_name=hit.zone_name.get(language),
        area=hit.area,
        area_name=hit.area_name.get(language),
        description=hit.summary.get(language),
        image_url=image_url(hit.id),
    )


def render_context(
    result: RetrievalResult,
    *,
    language: str = "en",
    max_examples: int = 5,
    fmt: str = "markdown",
    image_url: Callable[[str], str] = lambda item_id: f"/items/{item_id}/image",
    estimate_threshold: float = 0.5,
    novelty_threshold: float = 0.05,
) -> RenderedContext:
    """The context block and its structured content for one retrieval.

    Cases are the first ``max_examples`` hits; the votes are every hit's; the label
    head's estimates at or above ``estimate_threshold`` follow the votes
    (:mod:`app.render.estimates`), then the label set (:mod:`app.render.label_sets`); a photo
    flagged as novel (:mod:`app.render.novelty_note`) opens the block with the warning.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown context format {fmt!r}")
    words = _WORDS.get(language, _WORDS["en"])
    language = language if language in _WORDS else "en"
    cases = [
        case_out(hit, language=language, image_url=image_url) for hit in result.hits[:max_examples]
    ]
    votes = label_votes(result.votes, language=language)
    estimates = label_estimates(result, language=language, threshold=estimate_threshold)
    label_set = label_set_out(result, language=language)
    novelty = novelty_out(result, language=language, threshold=novelty_threshold)
    if fmt == "json":
        text = json.dumps(
            {
                "cases": [c.model_dump() for c in cases],
                "label_votes": [v.model_dump() for v in votes],
                "label_estimates": [e.model_dump() for e in estimates],
                "label_set": label_set.model_dump() if label_set else None,
                "novelty": novelty.model_dump() if novelty else None,
                "neighbours": len(result.hits),
                "mode": result.mode,
            },
            ensure_ascii=False,
        )
    else:
        text = _render_prose(cases, votes, words, mode=result.mode, markdown=fmt == "markdown")
        if cases and estimates:
            title, lines = estimate_lines(estimates, language)
            heading = f"### {title}" if fmt == "markdown" else f"{title}:"
            text += "\n" + "\n".join([heading, *(f"- {line}" for line in lines)]) + "\n"
        if cases and label_set:
            text += "\n" + label_set_line(label_set, language) + "\n"
        if novelty and novelty.note:
            text = f"{novelty.note}\n\n{text}"
    return RenderedContext(
        text, fmt, language, tuple(cases), tuple(votes), tuple(estimates), label_set, novelty
    )


def _render_prose(
    cases: list[CaseOut],
    votes: list[LabelVoteOut],
    words: dict[str, str],
    *,
    mode: str,
    markdown: bool,
) -> str:
    def heading(title: str) -> str:
        return f"### {title}" if markdown else f"{title}:"

    def number(x: float) -> str:
        s = f"{x:.2f}"
        return s.replace(".", ",") if words is _WORDS["es"] else s

    lines = [heading(words["title"])]
    if not cases:
        lines.append(words["none"])
        return "\n".join(lines) + "\n"
    score = words["score_image"] if mode == "image" else words["score_hybrid"]
    lines += [words["intro"].format(n=len(cases), score=score), ""]
    for case in cases:
        labels = ", ".join(f"{lb.count} x {lb.name}" for lb in case.labels) or words["no_labels"]
        zone = case.zone_name
        if case.area != "unknown":
            zone = f"{zone} ({case.area_name})"
        sim = f"{words['similarity']} {case.similarity_pct}%"
        case_id = f"`{case.id}`" if markdown else case.id
        head = f"**{sim}**" if markdown else sim
        lines.append(
            f"{case.rank}. {head}. {words['labels']}: {labels}. {words['zone']}: {zone}. "
            f"{words['description']}: {case.description}. ({words['case']} {case_id})"
        )
    if votes:
        lines += ["", heading(words["votes"].format(n=votes[0].neighbours))]
        bullet = "- "
        for vote in votes:
            lines.append(
                bullet
                + words["vote"].format(
                    name=vote.name,
                    support=vote.support,
                    n=vote.neighbours,
                    weighted=number(vote.weighted),
                )
            )
    return "\n".join(lines) + "\n"
