"""Render a retrieval as a VLM-agnostic context block (markdown, text or JSON, en/es).

The block lists the similar verified cases (similarity as a percentage of the cosine, labels
deduplicated with counts, zone) and a label-vote summary across all neighbours, e.g.
"Surface scratch: 4 of 5 neighbours, weighted 0.78". Its first sentence says what chose the
cases: the mode's ranking (image similarity, image + text, consensus re-ranking, the label head's
probe) and the filter that limited the candidates, as the result reports them. The same content
comes back structured, as the wire models of ``/context``, so a gateway can build its own prompt.
Everything shown comes from the :class:`~indexer.query.RetrievalResult`: its hits carry their
display names, its votes are already tallied, its filter terms are named.
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
        "chosen_image": "The {n} indexed cases most similar to the image",
        "chosen_hybrid": "The {n} indexed cases closest to the image and the supplied text "
        "together",
        "chosen_rerank": "The {n} indexed cases closest to the image, re-ranked by agreement with "
        "the description its nearest cases share",
        "chosen_probe": "Among the indexed cases most similar to the image, the {n} whose labels "
        "best agree with the labels estimated for this image (label-head ranking)",
        "filtered": ", considering only cases {terms}",
        "labels_any": "labelled {names}",
        "labels_all": "labelled with all of {names}",
        "zones": "in the zone {names}",
        "areas": "in the area {names}",
        "or": " or ",
        "and": ", ",
        "intro": "{chosen} ({score}). They are reference cases for comparison, not a diagnosis of "
        "this image.",
        "score_image": "similarity = cosine similarity of the image embeddings x 100",
        "score_hybrid": "similarity = weighted image and text cosine similarity x 100",
        "score_rerank": "similarity = weighted cosine similarity of the images and of the shared "
        "description x 100",
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
        "chosen_image": "Los {n} casos indexados más parecidos a la imagen",
        "chosen_hybrid": "Los {n} casos indexados más cercanos a la imagen y al texto "
        "proporcionado juntos",
        "chosen_rerank": "Los {n} casos indexados más cercanos a la imagen, reordenados por su "
        "acuerdo con la descripción que comparten sus casos más próximos",
        "chosen_probe": "Entre los casos indexados más parecidos a la imagen, los {n} cuyas "
        "etiquetas mejor concuerdan con las estimadas para esta imagen (ordenación por el "
        "clasificador de etiquetas)",
        "filtered": ", considerando solo casos {terms}",
        "labels_any": "con la etiqueta {names}",
        "labels_all": "con todas las etiquetas {names}",
        "zones": "en la zona {names}",
        "areas": "en el área {names}",
        "or": " o ",
        "and": ", ",
        "intro": "{chosen} ({score}). Son casos de referencia para comparar, no un diagnóstico "
        "de esta imagen.",
        "score_image": "similitud = similitud coseno de los embeddings de imagen x 100",
        "score_hybrid": "similitud = similitud coseno ponderada de imagen y texto x 100",
        "score_rerank": "similitud = similitud coseno ponderada de las imágenes y de la "
        "descripción compartida x 100",
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
    selection: str = ""  # what chose the cases (the block's first sentence)
    label_set: LabelSetOut | None = None
    novelty: NoveltyOut | None = None
    # titled lists said after the cases: damage regions, each photo of a claim, its evidence
    sections: tuple[Section, ...] = ()


@dataclass(frozen=True)
class Section:
    """A titled list of sentences the block says after the cases (and ``format=messages`` as a
    text part)."""

    title: str
    lines: tuple[str, ...]


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
            CaseLabelOut(
                id=lb.id,
                count=lb.count,
                name=lb.name.get(language),
                phrase=lb.phrase.get(language) if lb.phrase else None,
            )
            for lb in hit.labels
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
    sections: Sequence[Section] = (),
) -> RenderedContext:
    """The context block and its structured content for one retrieval.

    Cases are the first ``max_examples`` hits; the votes are every hit's; the label
    head's estimates at or above ``estimate_threshold`` follow the votes
    (:mod:`app.render.estimates`), then the label set (:mod:`app.render.label_sets`), then the
    ``sections`` (damage regions, a claim's photos: :mod:`app.render.regions`,
    :mod:`app.render.claims`); a photo flagged as novel (:mod:`app.render.novelty_note`) opens
    the block with the warning.
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
    chosen = selection(result, len(cases), words, language)
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
                "filters": {term.field: list(term.ids) for term in result.filters},
                "selection": chosen,
                "sections": [{"title": x.title, "lines": list(x.lines)} for x in sections],
            },
            ensure_ascii=False,
        )
    else:
        text = _render_prose(cases, votes, words, intro=chosen, markdown=fmt == "markdown")
        if cases and estimates:
            title, lines = estimate_lines(estimates, language)
            heading = f"### {title}" if fmt == "markdown" else f"{title}:"
            text += "\n" + "\n".join([heading, *(f"- {line}" for line in lines)]) + "\n"
        if cases and label_set:
            text += "\n" + label_set_line(label_set, language) + "\n"
        for section in sections:
            heading = f"### {section.title}" if fmt == "markdown" else f"{section.title}:"
            text += "\n" + "\n".join([heading, *(f"- {line}" for line in section.lines)]) + "\n"
        if novelty and novelty.note:
            text = f"{novelty.note}\n\n{text}"
    return RenderedContext(
        text,
        fmt,
        language,
        tuple(cases),
        tuple(votes),
        tuple(estimates),
        chosen,
        label_set,
        novelty,
        tuple(sections),
    )


def selection(result: RetrievalResult, n: int, words: dict[str, str], language: str) -> str:
    """What chose the cases, truthfully: the ranking of ``result.mode``, the filter that limited
    the candidates, and what the similarity shown measures."""
    mode = result.mode if f"chosen_{result.mode}" in words else "image"
    chosen = words[f"chosen_{mode}"].format(n=n)
    if result.filters:
        terms = [
            words[t.field].format(
                names=(words["and"] if t.field == "labels_all" else words["or"]).join(
                    name.get(language) for name in t.names
                )
            )
            for t in result.filters
        ]
        chosen += words["filtered"].format(terms=words["and"].join(terms))
    # probe re-orders image-search candidates: its scores are their image cosines
    score = words[{"hybrid": "score_hybrid", "rerank": "score_rerank"}.get(mode, "score_image")]
    return words["intro"].format(chosen=chosen, score=score)


def _render_prose(
    cases: list[CaseOut],
    votes: list[LabelVoteOut],
    words: dict[str, str],
    *,
    intro: str,
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
    lines += [intro, ""]
    for case in cases:
        labels = ", ".join(lb.phrase or f"{lb.count} x {lb.name}" for lb in case.labels)
        labels = labels or words["no_labels"]
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
