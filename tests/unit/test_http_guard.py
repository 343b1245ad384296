"""The header-read timeout on a real uvicorn socket: silent and slowloris connections are closed,
complete requests (and keep-alive between them) are not affected."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from app.http.guard import header_timeout_protocol

TIMEOUT_S = 1.0
GENEROUS_S = 15.0  # the socket read limit: a connection still open by then was never closed


async def hello(scope, receive, send):  # a minimal ASGI app
    if scope["type"] != "http":
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = uvicorn.Config(
        hello,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        http=header_timeout_protocol(TIMEOUT_S),
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield port
    server.should_exit = True
    thread.join(10)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; fails if it is still open after GENEROUS_S."""
    sock.settimeout(GENEROUS_S)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except TimeoutError:
        pytest.fail(f"the connection was still open after {GENEROUS_S:g} s")
    except ConnectionResetError:
        pass
    return received


def test_a_silent_connection_is_closed(port):
    with socket.create_connection(("127.0.0.1", port)) as sock:
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408")


def test_headers_that_never_finish_are_closed(port):
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"header_timeout" in answer


def test_trickled_headers_do_not_extend_the_deadline(port):
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < GENEROUS_S:  # one header byte every 0.2 s
            try:
                sock.sendall(b"X-A: b\r\n"[:1])
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.2)
        if not closed:
            read_until_closed(sock)


def test_complete_requests_and_keep_alive_are_served(port):
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(GENEROUS_S)
        for _ in range(2):
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = sock.recv(4096)
            assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok")
        # the next request's headers on the same connection get the same deadline
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert read_until_closed(sock).startswith(b"HTTP/1.1 408")
