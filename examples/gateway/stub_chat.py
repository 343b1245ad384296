"""A stub OpenAI-compatible chat-completions server, to try the gateway end to end offline.

    python examples/gateway/stub_chat.py --port 8001

``POST /v1/chat/completions`` answers every request with one fixed assistant message that says
what it was given (how many images, the first text lines), and keeps each request in
``StubChat.received`` (the gateway's tests read it); ``GET /v1/models`` lists the one model. No
model runs: it shows the wiring, not an answer. Standard library only.

Deterministic policies (``--policy``) for ``visrag evaluate-vlm`` (they say nothing about VLMs):

- ``describe`` (default): the message above;
- ``context``: a JSON answer with the labels at least half the neighbours carry in the context's
  vote lines (``NAME: S of N neighbours``; names mapped to ids by the instruction's
  ``- id: name`` list), else the most supported one; without context, ``--fallback`` (e.g. the
  most common label);
- ``ignore``: always ``--fallback``, whatever the context says;
- ``malformed``: text that holds no JSON.

Failure injection (``--fail 429,500,slow``): each listed failure answers one request, in order
(429 with ``Retry-After: 0``; ``slow`` sleeps ``StubChat.slow_seconds`` before answering).
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def describe(body: dict[str, Any]) -> str:
    """The stub's answer: what a VLM would have been shown."""
    parts = [p for m in body.get("messages", []) for p in _parts(m.get("content"))]
    images = sum(p.get("type") == "image_url" for p in parts)
    texts = [p["text"].splitlines()[0] for p in parts if p.get("type") == "text" and p["text"]]
    return f"(stub, no model) I was given {images} images and {len(texts)} texts: " + " | ".join(
        texts[:4]
    )


_VOCABULARY = re.compile(r"^- ([a-z0-9_]+): (.+)$", re.MULTILINE)
_VOTE = re.compile(r"^- (.+?): (\d+) of (\d+) neighbours", re.MULTILINE)


def _texts(body: dict[str, Any]) -> list[str]:
    parts = [p for m in body.get("messages", []) for p in _parts(m.get("content"))]
    return [p["text"] for p in parts if p.get("type") == "text" and p.get("text")]


def context_answer(body: dict[str, Any], fallback: str) -> str:
    """Policy ``context``: the labels most supported by the context's votes, else ``fallback``."""
    texts = _texts(body)
    ids = {name.strip(): lid for t in texts[:1] for lid, name in _VOCABULARY.findall(t)}
    votes = [
        (ids[name], int(s), int(n))
        for t in texts[1:]
        for name, s, n in _VOTE.findall(t)
        if name in ids
    ]
    if not votes:
        return json.dumps({"labels": [fallback], "zone": "unknown"})
    labels = [lid for lid, s, n in votes if 2 * s >= n] or [max(votes, key=lambda v: v[1])[0]]
    return json.dumps({"labels": sorted(set(labels)), "zone": "unknown"})


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content or [])


class StubChat(BaseHTTPRequestHandler):
    """Answers chat completions with :attr:`answer` (or :func:`describe`) and records requests."""

    received: list[dict[str, Any]] = []
    answer: str | None = None
    policy: str = "describe"
    fallback: str = "no_damage"
    failures: list[str] = []  # consumed one per request: "429", "500", "slow"
    slow_seconds: float = 2.0
    _lock = threading.Lock()

    def _reply(self, body: dict[str, Any]) -> str:
        if StubChat.answer is not None:
            return StubChat.answer
        if StubChat.policy == "context":
            return context_answer(body, StubChat.fallback)
        if StubChat.policy == "ignore":
            return json.dumps({"labels": [StubChat.fallback], "zone": "unknown"})
        if StubChat.policy == "malformed":
            return "I think there is some damage, labels: maybe"
        return describe(body)

    def do_GET(self) -> None:  # noqa: N802
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": "stub", "object": "model"}]})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:  # noqa: N802
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        auth = self.headers.get("Authorization")
        with StubChat._lock:
            StubChat.received.append({"path": self.path, "auth": auth, "body": body})
            failure = StubChat.failures.pop(0) if StubChat.failures else None
        if failure == "slow":
            time.sleep(StubChat.slow_seconds)
        elif failure is not None:
            retry = {"Retry-After": "0"} if failure == "429" else {}
            self._send(int(failure), {"error": {"message": f"injected {failure}"}}, retry)
            return
        message = {"role": "assistant", "content": self._reply(body)}
        self._send(
            200,
            {
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "model": body.get("model", "stub"),
                "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            },
        )

    def _send(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--policy", default="describe", choices=("describe", "context", "ignore", "malformed")
    )
    parser.add_argument("--fallback", default="no_damage", help="label id without context")
    parser.add_argument("--fail", default="", help="failures to inject, e.g. 429,500,slow")
    args = parser.parse_args()
    StubChat.policy, StubChat.fallback = args.policy, args.fallback
    StubChat.failures = [f for f in args.fail.split(",") if f]
    server = ThreadingHTTPServer((args.host, args.port), StubChat)
    print(f"stub chat completions on http://{args.host}:{args.port}/v1 (Ctrl+C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
