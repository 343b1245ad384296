"""The VLM's answer, parsed tolerantly: a JSON object anywhere in the text (code fences, prose
around it), ``labels`` as a list or one string, ids or English names, case and spacing ignored.
An answer with no recognisable label is unparseable, counted as such, and scores an empty set."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from models.taxonomy import Taxonomy

_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


@dataclass(frozen=True)
class Answer:
    labels: frozenset[str]
    zone: str | None


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")


def vocabulary(taxonomy: Taxonomy) -> dict[str, str]:
    """Spelling (id or English name, normalised) -> canonical label id."""
    out: dict[str, str] = {}
    for lid in taxonomy.label_ids:
        out[_key(lid)] = lid
        out[_key(taxonomy.label(lid).name("en"))] = lid
    return out


def parse_answer(text: str, words: dict[str, str]) -> Answer | None:
    """The answer's labels and zone, or None when no JSON object with known labels is found."""
    match = _OBJECT.search(text or "")
    if match is None:
        return None
    try:
        data = json.loads(match.group(0))
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    raw = data.get("labels", data.get("label"))
    items = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
    labels = frozenset(words[_key(x)] for x in items if isinstance(x, str) and _key(x) in words)
    if not labels:
        return None
    zone = data.get("zone")
    return Answer(labels, str(zone) if zone is not None else None)
