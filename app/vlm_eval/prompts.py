"""What every arm asks the VLM: one instruction (the vocabulary), the photo, and the arm's context.

Arms differ only in the context they add, so a gain cannot come from the instruction or the label
list:

- ``none``: the photo and the instruction;
- ``context``: plus the ``/context`` block (text format);
- ``context+images``: plus the ``format=messages`` parts (the neighbours' images and labels);
- ``shuffled``: the ``context`` block of another query (same k, same format): the control that
  tells a gain from relevant neighbours apart from a gain from any worked examples.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from models.taxonomy import Taxonomy

ARMS = ("none", "context", "context+images", "shuffled")
CONTEXT_HEADER = "Reference context from a retrieval system:"
QUESTION = (
    'Answer with one JSON object only: {"labels": [label ids from the list], "zone": zone id}.'
)


def instruction(taxonomy: Taxonomy) -> str:
    """The system message of every arm: the task, the label vocabulary and the zones."""
    labels = "\n".join(
        f"- {lid}: {taxonomy.label(lid).name('en')}"
        for lid in taxonomy.label_ids
        if lid != taxonomy.unknown_id
    )
    zones = ", ".join(z for z in taxonomy.zone_ids)
    return (
        "You inspect a photo of a vehicle and name the damage visible in it.\n"
        f"Use only these label ids (id: name):\n{labels}\n"
        f"Use {taxonomy.no_damage_id} alone when there is no damage.\n"
        f"Zone ids: {zones}.\n{QUESTION}"
    )


def image_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def arm_messages(
    system: str, photo_url: str, *, context: str | None = None, parts: Sequence[dict] = ()
) -> list[dict[str, Any]]:
    """The chat messages of one (query, arm): ``context`` (a text block) or ``parts``
    (``format=messages`` content parts) after the photo; neither for ``none``."""
    content = [text_part("The photo to analyse:"), image_part(photo_url)]
    if context is not None:
        content.append(text_part(f"{CONTEXT_HEADER}\n{context}"))
    if parts:
        content += [text_part(CONTEXT_HEADER), *parts]
    content.append(text_part(QUESTION))
    return [{"role": "system", "content": system}, {"role": "user", "content": content}]


def request_body(
    model: str, messages: list[dict[str, Any]], *, json_mode: bool, max_tokens: int
) -> dict[str, Any]:
    """The ``/v1/chat/completions`` body (deterministic decoding)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "temperature": 0,
        "max_tokens": max_tokens,
    }
    if json_mode:
        body["response_format"] = {"type": "json_object"}
    return body


def prompt_hash(messages: list[dict[str, Any]]) -> str:
    """A stable digest of what the model is shown (the cache key's prompt part)."""
    data = json.dumps(messages, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(data).hexdigest()[:20]
