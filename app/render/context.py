"""Render retrieved neighbours as a VLM-agnostic context block (markdown, text or JSON, en/es).

The block lists the similar verified cases (similarity as a percentage of the cosine, labels
deduplicated with counts, zone) and a label-vote summary across all neighbours, e.g.
"Surface scratch: 4 of 5 neighbours, weighted 0.78". The same content comes back structured, so
a gateway can build its own prompt.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

from app.render.estimates import LabelEstimateView, estimate_lines, label_estimates
from indexer.query import Hit, RetrievalResult
from indexer.retrieval.votes import tally
from models.description import describe
from models.taxonomy import Taxonomy

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
class CaseLabel:
    id: str
    count: int
    name: str


@dataclass(frozen=True)
class Case:
    rank: int
    id: str
    similarity_pct: int
    score: float
    labels: tuple[CaseLabel, ...]
    zone: str
    zone_name: str
    area: str
    area_name: str
    description: str
    image_url: str


@dataclass(frozen=True)
class LabelVote:
    label: str
    name: str
    support: int
    neighbours: int
    weighted: float
    predicted: bool  # the vote rule keeps it: at least half of the neighbours (or the top vote)


@dataclass(frozen=True)
class RenderedContext:
    context: str
    format: str
    language: str
    cases: tuple[Case, ...]
    label_votes: tuple[LabelVote, ...]
    label_estimates: tuple[LabelEstimateView, ...] = ()


def similarity_pct(score: float) -> int:
    """Cosine -> whole percent (0.874 -> 87)."""
    return int(round(100.0 * score))


def label_votes(hits: tuple[Hit, ...], taxonomy: Taxonomy, *, language: str) -> list[LabelVote]:
    """The label votes of the neighbours, by the one rule of :mod:`indexer.retrieval.votes`:
    support, share
    of the (non-negative) similarity, and whether the rule predicts the label."""
    votes = tally(
        [{lb.id: lb.count for lb in h.labels} for h in hits],
        [h.score for h in hits],
        no_damage=taxonomy.no_damage_id,
        order=taxonomy.order,
    )
    return [
        LabelVote(
            label=v.label,
            name=taxonomy.normalise(v.label).name(language),
            support=v.support,
            neighbours=v.neighbours,
            weighted=round(v.weighted, 4),
            predicted=v.predicted,
        )
        for v in votes
    ]


def build_cases(
    hits: tuple[Hit, ...],
    taxonomy: Taxonomy,
    *,
    language: str,
    image_url: Callable[[str], str],
) -> list[Case]:
    cases = []
    for hit in hits:
        zone = taxonomy.normalise_zone(hit.zone)
        counts = {lb.id: lb.count for lb in hit.labels}
        cases.append(
            Case(
                rank=hit.rank,
                id=hit.id,
                similarity_pct=similarity_pct(hit.score),
                score=round(hit.score, 6),
                labels=tuple(
                    CaseLabel(lb.id, lb.count, taxonomy.normalise(lb.id).name(language))
                    for lb in hit.labels
                ),
                zone=zone.id,
                zone_name=zone.name(language),
                area=zone.area,
                area_name=taxonomy.area_name(zone.area, language),
                description=describe(counts, zone.id, taxonomy, language=language),
                image_url=image_url(hit.id),
            )
        )
    return cases


def render_context(
    result: RetrievalResult,
    taxonomy: Taxonomy,
    *,
    language: str = "en",
    max_examples: int = 5,
    fmt: str = "markdown",
    image_url: Callable[[str], str] = lambda item_id: f"/items/{item_id}/image",
    estimate_threshold: float = 0.5,
) -> RenderedContext:
    """The context block and its structured content for one retrieval.

    Cases are the first ``max_examples`` hits; the votes count every hit returned; the label
    head's estimates at or above ``estimate_threshold`` follow the votes
    (:mod:`app.render.estimates`).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown context format {fmt!r}")
    words = _WORDS.get(language, _WORDS["en"])
    language = language if language in _WORDS else "en"
    cases = build_cases(
        result.hits[:max_examples], taxonomy, language=language, image_url=image_url
    )
    votes = label_votes(result.hits, taxonomy, language=language)
    estimates = label_estimates(result, taxonomy, language=language, threshold=estimate_threshold)
    if fmt == "json":
        text = json.dumps(
            {
                "cases": [asdict(c) for c in cases],
                "label_votes": [asdict(v) for v in votes],
                "label_estimates": [asdict(e) for e in estimates],
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
    return RenderedContext(text, fmt, language, tuple(cases), tuple(votes), tuple(estimates))


def _render_prose(
    cases: list[Case],
    votes: list[LabelVote],
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
