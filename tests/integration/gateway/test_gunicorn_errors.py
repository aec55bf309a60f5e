"""The gateway under a real gunicorn: requests it refuses itself still get the JSON error format; its logs mask PII."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest

from services.common.devbroker import free_port
from tests.fixtures.keys import JwtKeys

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
SMS = b"/api/v1/auth/sms-codes"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Message
    body: bytes

    @property
    def error(self) -> dict[str, object]:
        assert self.headers["Content-Type"] == "application/json"
        return json.loads(self.body)["error"]


@dataclass(frozen=True)
class Gateway:
    port: int
    log: Path  # gunicorn's and the app's output


@pytest.fixture(scope="module")
def gateway_process(jwt_keys: JwtKeys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway started as in production (gunicorn with gateway/gunicorn.conf.py), plus gunicorn's access log."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "GATEWAY_", "CONSUL_", "GUNICORN_"))}
    env.update({"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path), "GATEWAY_BIND": f"127.0.0.1:{port}",
                "GUNICORN_CMD_ARGS": "--access-logfile -"})
    log_path = tmp_path_factory.mktemp("gunicorn") / "gateway.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gateway/gunicorn.conf.py",
                                    "gateway.wsgi:app"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield Gateway(port, log_path)
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture(scope="module")
def gateway(gateway_process: Gateway) -> int:
    return gateway_process.port


def _answers(port: int) -> bool:
    try:
        return exchange(port, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").status == 200
    except OSError:
        return False


def exchange(port: int, request: bytes) -> Answer:
    """Send raw bytes (from a thread: the server may answer before reading them all); read one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        def send() -> None:
            try:
                sock.sendall(request)
            except OSError:
                pass  # the server answered and closed before reading everything: the answer is what counts

        sender = threading.Thread(target=send)
        sender.start()
        response = http.client.HTTPResponse(sock)
        response.begin()
        answer = Answer(response.status, response.headers, response.read())
        with contextlib.suppress(OSError):  # unblocks a sender the server no longer reads from
            sock.shutdown(socket.SHUT_RDWR)
        sender.join(timeout=10)
        return answer


def chunked(body: bytes, chunk: int = 64 * 1024) -> bytes:
    pieces = [b"%x\r\n%s\r\n" % (len(body[i:i + chunk]), body[i:i + chunk]) for i in range(0, len(body), chunk)]
    return b"".join(pieces) + b"0\r\n\r\n"


def test_a_too_long_request_line_is_414_in_the_json_error_format(gateway: int) -> None:
    answer = exchange(gateway, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")

    assert (answer.status, answer.error["code"], answer.error["message"]) == (
        414, "URI_TOO_LONG", "the request line is too long")
    assert answer.error["request_id"] == answer.headers["X-Request-ID"] != ""
    assert b"aaaa" not in answer.body


@pytest.mark.parametrize("headers", [b"X-Big: " + b"b" * 9000 + b"\r\n",
                                     b"".join(b"X-H%d: 1\r\n" % n for n in range(150))], ids=["one-large", "many"])
def test_too_large_headers_are_431_in_the_json_error_format(gateway: int, headers: bytes) -> None:
    answer = exchange(gateway, b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n")

    assert (answer.status, answer.error["code"]) == (431, "HEADERS_TOO_LARGE")
    assert b"bbbb" not in answer.body


@pytest.mark.parametrize("request_bytes", [
    b"GARBAGE<script>\r\n\r\n",
    b"POST /api/v1/auth/sms-codes HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /api/v1/auth/sms-codes HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nZZ<script>\r\n{}\r\n0\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: t\r\nBad<script>Name: 1\r\n\r\n",
], ids=["garbage-request-line", "length-and-chunked", "bad-chunk-size", "bad-header-name"])
def test_badly_framed_requests_are_400_in_the_json_error_format_without_echoing_them(
        gateway: int, request_bytes: bytes) -> None:
    answer = exchange(gateway, request_bytes)

    assert (answer.status, answer.error["code"], answer.error["message"]) == (
        400, "INVALID_REQUEST", "the request is not valid HTTP")
    assert b"<script>" not in answer.body and b"html" not in answer.body.lower()


def test_a_chunked_body_over_1_mb_is_413(gateway: int) -> None:
    body = b'{"phone": "' + b"1" * (5 << 20) + b'", "purpose": "login"}'

    answer = exchange(gateway, b"POST " + SMS + b" HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n" + chunked(body))

    assert (answer.status, answer.error["code"]) == (413, "PAYLOAD_TOO_LARGE")


def test_a_chunked_body_under_the_limit_is_read_and_validated(gateway: int) -> None:
    answer = exchange(gateway, b"POST " + SMS + b" HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n" + chunked(b'{"phone": "1", "purpose": "login"}', 7))

    assert (answer.status, answer.error["code"], sorted(answer.error["details"])) == (  # type: ignore[arg-type]
        400, "INVALID_REQUEST", ["phone"])


def test_no_response_names_the_server_software(gateway: int) -> None:
    ok = exchange(gateway, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    refused = exchange(gateway, b"GARBAGE\r\n\r\n")

    assert (ok.status, ok.headers["Server"], ok.headers["X-Content-Type-Options"]) == (200, "minimall", "nosniff")
    assert "gunicorn" not in str(refused.headers).lower() and refused.headers["X-Content-Type-Options"] == "nosniff"


def lines_naming(log: Path, text: str, count: int, timeout_seconds: float = 10) -> list[str]:
    """The log's lines containing `text`, once there are `count` of them (gunicorn logs after it answers)."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        found = [line for line in log.read_text(errors="replace").splitlines() if text in line]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_phone_and_id_numbers_in_a_query_are_masked_in_gunicorns_access_log_and_the_apps(
        gateway_process: Gateway) -> None:
    answer = exchange(gateway_process.port, b"GET /api/v1/admin/users?phone=13800138000&id=110101199003078515 "
                                            b"HTTP/1.1\r\nHost: t\r\n\r\n")

    lines = lines_naming(gateway_process.log, "/api/v1/admin/users", count=2)
    access = [line for line in lines if "phone=" in line]
    assert answer.status == 401 and len(lines) == 2 and len(access) == 1  # the app's line has no query string
    assert "GET /api/v1/admin/users?phone=138****8000&id=1101**********8515 HTTP/1.1" in access[0]
    assert not any("13800138000" in line or "199003078" in line for line in lines)
