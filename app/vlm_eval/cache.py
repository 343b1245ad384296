"""Answers on disk, one JSON file per (model, arm, query, prompt hash), written atomically as each
arrives: a rerun, or a run with an added arm, asks the endpoint only for what is missing, and a run
stopped with Ctrl+C resumes where it stopped."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


class AnswerCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, model: str, arm: str, query: str, prompt: str) -> Path:
        key = hashlib.sha256(json.dumps([model, arm, query, prompt]).encode()).hexdigest()
        return self.root / key[:2] / f"{key}.json"

    def get(self, model: str, arm: str, query: str, prompt: str) -> dict[str, Any] | None:
        path = self._path(model, arm, query, prompt)
        try:
            return json.loads(path.read_text("utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def put(self, model: str, arm: str, query: str, prompt: str, entry: dict[str, Any]) -> None:
        path = self._path(model, arm, query, prompt)
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entry), "utf-8")
        tmp.replace(path)
