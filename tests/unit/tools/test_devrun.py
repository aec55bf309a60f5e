"""make run: its pid file (a second run must not clobber the first one's), its readable log, its port check,
each service's own token."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.auth import TokenVerifier
from services.common.config import SERVICES
from services.common.devbroker import free_port
from tools import devrun

HOLD_THE_LOCK = """
import sys
from pathlib import Path
from tools import devrun
held = devrun.claim_pid_file(Path(sys.argv[1]))
print("held" if held else "refused", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def pid_file(tmp_path: Path) -> Path:
    return tmp_path / "devrun.pid"


@pytest.fixture
def other_devrun(pid_file: Path) -> Iterator[int]:
    """Another live process that claimed `pid_file` as devrun does; its pid."""
    process = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(pid_file)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=Path(devrun.__file__).parents[1])
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    yield process.pid
    process.kill()
    process.wait()


def test_the_devrun_holding_the_pid_file_is_found(pid_file: Path, other_devrun: int) -> None:
    assert devrun.running_devrun(pid_file) == other_devrun
    assert devrun.claim_pid_file(pid_file) is None
    assert pid_file.read_text() == str(other_devrun)


@pytest.mark.parametrize("content", ["", "not a pid", "999999999", str(os.getpid())],
                         ids=["empty", "garbage", "dead-pid", "our-own-pid-after-a-container-restart"])
def test_a_pid_file_nobody_holds_does_not_block_a_start(pid_file: Path, content: str) -> None:
    pid_file.write_text(content)

    assert devrun.running_devrun(pid_file) is None
    claimed = devrun.claim_pid_file(pid_file)
    assert claimed is not None
    claimed.close()
    assert pid_file.read_text() == str(os.getpid())


def test_a_second_make_run_refuses_and_leaves_the_first_ones_pid_file(
        pid_file: Path, other_devrun: int, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MINIMALL_VAR", str(pid_file.parent))
    monkeypatch.setattr(sys, "argv", ["devrun"])
    monkeypatch.setattr(devrun, "platform_env", lambda var: pytest.fail("a second platform was started"))

    assert devrun.main() == 1
    assert pid_file.read_text() == str(other_devrun)
    assert f"already running from {pid_file.parent} (pid {other_devrun})" in capsys.readouterr().err


def readable(entry: object) -> str:
    return devrun.Supervisor({}, raw_logs=False)._readable(json.dumps(entry))


def test_a_newline_in_a_logged_path_cannot_forge_a_log_line() -> None:
    shown = readable({"ts": "2026-11-29T10:00:00.123Z", "level": "INFO", "request_id": "r1",
                      "msg": "GET /x\n10:00:01 ERROR   admin password changed -> 404"})

    assert shown == "10:00:00 INFO    GET /x\\n10:00:01 ERROR   admin password changed -> 404 [r1]"


@pytest.mark.parametrize(("raw", "escaped"), [
    ("\r", "\\r"), ("\x1b[2J", "\\x1b[2J"), ("\x00", "\\x00"), ("\x7f", "\\x7f"), ("\x85", "\\x85"),
    ("\u2028", "\\u2028"), ("\u202e", "\\u202e"), ("\t", "\\t")])
def test_control_characters_are_shown_as_escapes_in_every_field(raw: str, escaped: str) -> None:
    shown = readable({"ts": f"2026-11-29T10:00:00{raw}", "level": f"W{raw}", "request_id": f"r{raw}",
                      "msg": f"m{raw}"})

    assert shown.count(escaped) == 3 and raw not in shown  # ts is cut to its time of day


def test_a_traceback_keeps_its_lines_but_each_is_indented() -> None:
    shown = readable({"ts": "2026-11-29T10:00:00Z", "level": "ERROR", "msg": "boom",
                      "exc": "Traceback (most recent call last):\nValueError: bad\x1b[0m"})

    assert shown.split("\n") == ["10:00:00 ERROR   boom", "    Traceback (most recent call last):",
                                 "    ValueError: bad\\x1b[0m"]


@pytest.mark.parametrize("line", ["plain \x1b[31mred", "{not json \x1b[31m"])
def test_lines_that_are_not_log_entries_are_escaped_too(line: str) -> None:
    assert devrun.Supervisor({}, raw_logs=False)._readable(line) == line.replace("\x1b", "\\x1b")


def test_a_json_line_that_is_not_an_object_is_shown_as_it_came() -> None:
    assert devrun.Supervisor({}, raw_logs=False)._readable('["a", 1]') == '["a", 1]'


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something already listens on (127.0.0.1)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def test_every_port_make_run_listens_on_is_checked_with_the_variable_that_moves_it() -> None:
    needed = {(port.port, port.variable) for port in devrun.ports_needed({"GATEWAY_BIND": "127.0.0.1:8080"})}

    assert needed == {(8080, "GATEWAY_BIND"), (9092, "DEV_BROKER_PORT"), (8099, "SIMULATOR_PORT"),
                      (50051, "USER_GRPC_LISTEN"), (50052, "PRODUCT_GRPC_LISTEN"), (50053, "ORDER_GRPC_LISTEN"),
                      (50054, "MEMBER_GRPC_LISTEN"), (50055, "ANALYTICS_GRPC_LISTEN"),
                      (9101, "USER_METRICS_PORT"), (9102, "PRODUCT_METRICS_PORT"), (9103, "ORDER_METRICS_PORT"),
                      (9104, "MEMBER_METRICS_PORT"), (9105, "ANALYTICS_METRICS_PORT")}


def test_moved_ports_are_checked_where_they_moved_and_an_outside_broker_is_not_checked() -> None:
    env = {"GATEWAY_BIND": "0.0.0.0:18080", "USER_GRPC_LISTEN": "127.0.0.1:16051", "USER_METRICS_PORT": "0",
           "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092"}

    needed = {(port.host, port.port, port.variable) for port in devrun.ports_needed(env)}

    assert {("0.0.0.0", 18080, "GATEWAY_BIND"), ("127.0.0.1", 16051, "USER_GRPC_LISTEN")} <= needed
    assert not {variable for _, _, variable in needed} & {"USER_METRICS_PORT", "DEV_BROKER_PORT"}


def test_a_port_something_listens_on_is_found(listening: int) -> None:
    free, taken = devrun.Port("127.0.0.1", free_port(), "a", "A_PORT"), devrun.Port("127.0.0.1", listening, "b", "B_PORT")

    assert devrun.taken_port([free, taken]) == taken
    assert devrun.taken_port([free]) is None


def test_a_taken_port_stops_make_run_with_one_line_naming_port_and_variable(
        tmp_path: Path, listening: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MINIMALL_VAR", str(tmp_path))
    monkeypatch.setenv("USER_GRPC_LISTEN", f"127.0.0.1:{listening}")
    for service in ("user", "product", "order", "member", "analytics"):
        monkeypatch.setenv(f"{service.upper()}_METRICS_PORT", "0")
    monkeypatch.setenv("GATEWAY_BIND", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    for name in ("PRODUCT", "ORDER", "MEMBER", "ANALYTICS"):
        monkeypatch.setenv(f"{name}_GRPC_LISTEN", f"127.0.0.1:{free_port()}")
    monkeypatch.setattr(sys, "argv", ["devrun"])
    monkeypatch.setattr(devrun, "Supervisor", lambda *_, **__: pytest.fail("something was started"))

    assert devrun.main() == 1
    out, err = capsys.readouterr()
    assert (out, err.count("\n")) == ("", 1)
    assert err.startswith(f"port {listening} (user gRPC) is already in use; set USER_GRPC_LISTEN to move it")
    assert not (tmp_path / "devrun.pid").exists()


def test_a_moved_grpc_listen_address_is_where_the_gateway_looks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDER_GRPC_LISTEN", "127.0.0.1:16053")
    monkeypatch.delenv("ORDER_GRPC_TARGET", raising=False)

    assert devrun.platform_env(tmp_path)["ORDER_GRPC_TARGET"] == "127.0.0.1:16053"


def test_each_service_gets_its_own_service_token_signed_with_the_dev_key(tmp_path: Path) -> None:
    private, public = devrun.ensure_keys(tmp_path)
    verifier = TokenVerifier(public.read_bytes(), accept_services=True)

    tokens = devrun.service_tokens(private)

    assert {service: verifier.verify(token).service for service, token in tokens.items()} == {s: s for s in SERVICES}


def test_a_service_token_in_the_callers_environment_is_not_handed_to_every_child(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_TOKEN", "someone-elses")

    assert "SERVICE_TOKEN" not in devrun.platform_env(tmp_path)


def test_the_simulators_dev_keys_lie_in_make_runs_folder_whatever_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MINIMALL_VAR", "SIM_WECHATPAY_KEY_DIR", "SIM_ALIPAY_KEY_DIR", "WECHATPAY_MERCHANT_KEY_FILE",
                 "ALIPAY_APP_PRIVATE_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    var, elsewhere = tmp_path / "var", tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    env = devrun.platform_env(var)

    assert (env["MINIMALL_VAR"], env["WECHATPAY_MERCHANT_KEY_FILE"], env["ALIPAY_APP_PRIVATE_KEY_FILE"]) == (
        str(var), str(var / "keys" / "wechatpay-dev" / "merchant-private.pem"),
        str(var / "keys" / "alipay-dev" / "merchant-private.pem"))
