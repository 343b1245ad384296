"""A stub OpenAI-compatible chat-completions server, to try the gateway end to end offline.

    python examples/gateway/stub_chat.py --port 8001

``POST /v1/chat/completions`` answers every request with one fixed assistant message that says
what it was given (how many images, the first text lines), and keeps each request in
``StubChat.received`` (the gateway's tests read it); ``GET /v1/models`` lists the one model. No
model runs: it shows the wiring, not an answer. Standard library only.
"""

from __future__ import annotations

import argparse
import json
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


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content or [])


class StubChat(BaseHTTPRequestHandler):
    """Answers chat completions with :attr:`answer` (or :func:`describe`) and records requests."""

    received: list[dict[str, Any]] = []
    answer: str | None = None

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
        StubChat.received.append({"path": self.path, "auth": auth, "body": body})
        message = {"role": "assistant", "content": StubChat.answer or describe(body)}
        self._send(
            200,
            {
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "model": body.get("model", "stub"),
                "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
            },
        )

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
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
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), StubChat)
    print(f"stub chat completions on http://{args.host}:{args.port}/v1 (Ctrl+C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
