"""``visrag evaluate-vlm`` against the stub chat server (a real HTTP server) on the demo's
synthetic held-out split: the control arms tell a real gain from none, failures are retried and
counted, and a second run is served from the cache."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from service_index import free_port, start_server
from typer.testing import CliRunner

from bench.server import wait_ready

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gateway" / "stub_chat.py"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    from app.demo import prepare_demo

    work = tmp_path_factory.mktemp("vlm") / "demo"
    prepare_demo(work, n=300, tiny=True, device="cpu", echo=lambda *_: None)
    return work


@pytest.fixture(scope="module")
def stub() -> Iterator[Any]:
    spec = importlib.util.spec_from_file_location("visrag_example_stub_chat_vlm", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    server = ThreadingHTTPServer(("127.0.0.1", 0), module.StubChat)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    module.StubChat.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield module.StubChat
    finally:
        server.shutdown()


def most_common_label(demo: Path) -> str:
    rows = [json.loads(x) for x in (demo / "split" / "train.jsonl").read_text().splitlines() if x]
    return Counter(lb for r in rows for lb in (r.get("labels") or {})).most_common(1)[0][0]


def run(demo: Path, stub: Any, out: Path, *, policy: str, arms: str, extra=()) -> dict:
    from app.cli import cli

    stub.policy, stub.fallback, stub.received = policy, most_common_label(demo), []
    args = ["evaluate-vlm", "--base-url", stub.url, "--model", "stub", "--out", str(out)]
    args += ["--artifacts", str(demo / "artifacts"), "--device", "cpu", "--arms", arms]
    args += ["--queries", str(demo / "split" / "test.jsonl"), "--bootstrap", "300", *extra]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return json.loads((out / "metrics.json").read_text())


def macro(metrics: dict, arm: str, versus: str) -> dict:
    rows = metrics["intervals"]["comparisons"]
    return next(
        c for c in rows if (c["arm"], c["versus"], c["metric"]) == (arm, versus, "macro_f1")
    )


def test_context_beats_none_and_shuffled_and_a_second_run_sends_nothing(demo, stub, tmp_path):
    metrics = run(demo, stub, tmp_path, policy="context", arms="none,context,shuffled")
    assert macro(metrics, "context", "none")["low"] > 0
    assert macro(metrics, "context", "shuffled")["low"] > 0
    assert metrics["verdict"].startswith("context helps: macro F1 +")
    assert "Verdict: context helps" in (tmp_path / "summary.md").read_text()
    page = (tmp_path / "report.html").read_text()
    assert page.index("Verdict: context helps") < page.index("<h2>Arms</h2>")
    assert all(f"<td>{arm}</td>" in page for arm in ("none", "context", "shuffled"))
    assert metrics["requests"] == 3 * metrics["setting"]["queries"]

    again = run(demo, stub, tmp_path, policy="context", arms="none,context,shuffled")
    assert again["requests"] == 0 and stub.received == []
    assert again["arms"] == metrics["arms"]


def test_a_stub_that_ignores_the_context_shows_no_difference(demo, stub, tmp_path):
    metrics = run(
        demo, stub, tmp_path, policy="ignore", arms="none,context,context+images,shuffled"
    )
    for c in metrics["intervals"]["comparisons"]:
        assert c["low"] <= 0 <= c["high"], c
    assert metrics["verdict"].startswith("no detectable effect")
    images = [r for r in stub.received if "image_url" in json.dumps(r["body"])]
    assert images  # the photo goes in every arm


def test_failures_are_retried_and_malformed_answers_counted(demo, stub, tmp_path):
    stub.failures, stub.slow_seconds = ["429", "500", "slow", *["500"] * 4], 3.0
    extra = ["--limit", "4", "--concurrency", "1", "--timeout", "1", "--retries", "3"]
    metrics = run(demo, stub, tmp_path, policy="malformed", arms="none,context", extra=extra)
    arms = metrics["arms"]
    # 429 / 500 / timeout on the first call, all retried; then four 500s: the second call
    # gives up (counted as failed) and the run goes on
    assert arms["none"]["failed"] + arms["context"]["failed"] == 1
    assert arms["none"]["unparseable"] + arms["context"]["unparseable"] == 7
    assert arms["none"]["retried_calls"] + arms["context"]["retried_calls"] == 2
    assert stub.failures == []


def test_refuses_a_remote_endpoint_without_the_flag(demo, tmp_path):
    from app.cli import cli

    args = ["evaluate-vlm", "--base-url", "http://10.1.2.3:8000/v1", "--model", "m"]
    args += ["--artifacts", str(demo / "artifacts"), "--queries", str(demo / "x.jsonl")]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--allow-remote-images" in result.output


def test_a_running_service_gives_the_in_process_numbers(demo, stub, tmp_path):
    port = free_port()
    proc = start_server(demo / "artifacts", port, tmp_path / "server.log")
    url = f"http://127.0.0.1:{port}"
    try:
        log = (tmp_path / "server.log").read_text
        assert wait_ready(url, 90, proc=proc, interval=0.2), log()
        arms, limit = "none,context,context+images,shuffled", ["--limit", "12"]
        local = run(demo, stub, tmp_path / "local", policy="context", arms=arms, extra=limit)
        served = run(
            demo,
            stub,
            tmp_path / "served",
            policy="context",
            arms=arms,
            extra=[*limit, "--service", url],
        )
    finally:
        proc.terminate()
        proc.wait(20)
    assert served["setting"]["retrieval"] == url
    for arm in ("none", "context", "context+images", "shuffled"):
        for metric in ("macro_f1", "micro_f1", "exact_accuracy", "per_label_f1"):
            assert served["arms"][arm][metric] == local["arms"][arm][metric], (arm, metric)
    assert local["arms"]["context"]["macro_f1"] != local["arms"]["none"]["macro_f1"]
