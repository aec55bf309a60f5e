"""The Consul adapter against an in-process HTTP server that speaks the Consul agent/health API.

No real Consul runs on these machines: this checks the requests py-consul makes for us and how we
read the answers (README.md, "Service discovery", says what was and was not run).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from services.common.config import Env
from services.common.devbroker import free_port
from services.common.discovery import Discovery, DiscoveryError
from services.common.runtime_config import RuntimeConfig, Tunable
from tests.fixtures.http import serving

pytestmark = pytest.mark.integration


class FakeConsul(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ConsulHandler)
        self.services: dict[str, dict] = {}  # service id -> registration body
        self.passing: set[str] = set()       # service ids whose checks pass
        self.requests: list[tuple[str, str]] = []
        self.kv: dict[str, bytes] = {}
        self.kv_index = 1
        self.kv_changed = threading.Condition()

    def put_kv(self, key: str, value: bytes | None) -> None:
        """Change the store as `consul kv put` (None: `consul kv delete`) would, waking blocking queries."""
        with self.kv_changed:
            if value is None:
                self.kv.pop(key, None)
            else:
                self.kv[key] = value
            self.kv_index += 1
            self.kv_changed.notify_all()


def _lower_keys(value: object) -> object:
    if isinstance(value, dict):
        return {k.lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


class ConsulHandler(BaseHTTPRequestHandler):
    server: FakeConsul

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Consul-Index", "42")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self) -> None:  # noqa: N802 (http.server's naming)
        path = urlsplit(self.path).path
        self.server.requests.append(("PUT", self.path))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path == "/v1/agent/service/register":
            # Consul decodes these fields case-insensitively (Go's encoding/json); so does the fake.
            registration = _lower_keys(json.loads(body))
            self.server.services[registration["id"]] = registration
        elif path.startswith("/v1/agent/service/deregister/"):
            self.server.services.pop(path.rsplit("/", 1)[-1], None)
        self._reply(None)

    def do_GET(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        self.server.requests.append(("GET", self.path))
        if parts.path.startswith("/v1/kv/"):
            self._kv(parts.path[len("/v1/kv/"):], parse_qs(parts.query))
            return
        name = parts.path.rsplit("/", 1)[-1]
        passing_only = "passing" in parse_qs(parts.query, keep_blank_values=True)
        self._reply([
            {"Node": {"Address": "10.0.0.9"}, "Service": {"ID": sid, "Address": reg["address"], "Port": reg["port"]}}
            for sid, reg in self.server.services.items()
            if reg["name"] == name and (not passing_only or sid in self.server.passing)
        ])


    def _kv(self, prefix: str, query: dict[str, list[str]]) -> None:
        """A recursive read; with ?index=N it blocks (here up to 2 s) until the store changes past N."""
        server = self.server
        with server.kv_changed:
            if "index" in query:
                server.kv_changed.wait_for(lambda: server.kv_index > int(query["index"][0]), timeout=2)
            index = server.kv_index
            entries = [{"Key": key, "Value": base64.b64encode(value).decode(), "Flags": 0}
                       for key, value in sorted(server.kv.items()) if key.startswith(prefix)]
        data = json.dumps(entries).encode()
        self.send_response(200 if entries else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Consul-Index", str(index))
        self.send_header("Content-Length", str(len(data) if entries else 0))
        self.end_headers()
        if entries:
            self.wfile.write(data)


@pytest.fixture
def consul() -> Iterator[FakeConsul]:
    with serving(FakeConsul()) as server:
        yield server


def test_without_consul_the_static_address_is_used() -> None:
    discovery = Discovery(None, Env({"ORDER_GRPC_TARGET": "order.mall.svc:50053"}))

    assert discovery.target("order") == "order.mall.svc:50053"
    assert discovery.target("user") == "127.0.0.1:50051"
    assert discovery.register("order", "10.1.2.3", 50053) is None


def test_registration_sends_a_grpc_health_check(consul: FakeConsul) -> None:
    discovery = Discovery(f"http://127.0.0.1:{consul.server_port}")

    service_id = discovery.register("order", "10.1.2.3", 50053)

    registration = consul.services[service_id]
    assert (registration["name"], registration["address"], registration["port"]) == ("order", "10.1.2.3", 50053)
    assert registration["checks"] == [{"grpc": "10.1.2.3:50053", "interval": "10s",
                                       "deregistercriticalserviceafter": "1m"}]


def test_discovery_returns_only_passing_instances(consul: FakeConsul) -> None:
    discovery = Discovery(f"127.0.0.1:{consul.server_port}")
    healthy = discovery.register("user", "10.1.2.3", 50051)
    discovery.register("user", "10.1.2.4", 50051)
    consul.passing.add(healthy)

    targets = {discovery.target("user") for _ in range(10)}

    assert targets == {"10.1.2.3:50051"}


def test_no_passing_instance_is_a_lookup_error(consul: FakeConsul) -> None:
    discovery = Discovery(f"127.0.0.1:{consul.server_port}")
    discovery.register("user", "10.1.2.3", 50051)

    with pytest.raises(LookupError, match="no healthy user instance"):
        discovery.target("user")


def test_deregistration_removes_the_instance(consul: FakeConsul) -> None:
    discovery = Discovery(f"127.0.0.1:{consul.server_port}")
    service_id = discovery.register("user", "10.1.2.3", 50051)

    discovery.deregister(service_id)

    assert consul.services == {}
    assert ("PUT", f"/v1/agent/service/deregister/{service_id}") in consul.requests


def test_an_unreachable_consul_is_a_discovery_error() -> None:
    discovery = Discovery(f"127.0.0.1:{free_port()}")  # nothing listens there

    with pytest.raises(DiscoveryError, match="Consul did not answer for user"):
        discovery.target("user")


# Runtime config: live settings in Consul's key/value store

TUNABLES = {"payment_timeout_minutes": Tunable(default=30, minimum=5, maximum=1440),
            "auto_confirm_days": Tunable(default=10, minimum=1, maximum=60)}


def runtime_config(consul: FakeConsul) -> RuntimeConfig:
    return RuntimeConfig(Discovery(f"127.0.0.1:{consul.server_port}"), "order", TUNABLES)


def test_without_consul_the_defaults_are_in_force() -> None:
    config = RuntimeConfig(Discovery(None), "order", TUNABLES)

    assert (config.refresh(), config.get("payment_timeout_minutes"), config.get("auto_confirm_days")) == (True, 30, 10)


def test_a_value_in_consul_overrides_its_default_and_others_keep_theirs(consul: FakeConsul) -> None:
    consul.put_kv("minimall/order/payment_timeout_minutes", b"15")
    consul.put_kv("minimall/product/payment_timeout_minutes", b"99")  # another service's key
    config = runtime_config(consul)

    config.refresh()

    assert (config.get("payment_timeout_minutes"), config.get("auto_confirm_days")) == (15, 10)


@pytest.mark.parametrize("raw", [b"fifteen", b"4", b"1441", b"", b"\xff"])
def test_a_value_that_is_not_a_whole_number_in_bounds_is_ignored(consul: FakeConsul, raw: bytes) -> None:
    consul.put_kv("minimall/order/payment_timeout_minutes", b"20")
    config = runtime_config(consul)
    config.refresh()
    consul.put_kv("minimall/order/payment_timeout_minutes", raw)

    config.refresh()

    assert config.get("payment_timeout_minutes") == 20  # the last good value stays


def test_a_deleted_key_goes_back_to_its_default(consul: FakeConsul) -> None:
    consul.put_kv("minimall/order/auto_confirm_days", b"7")
    config = runtime_config(consul)
    config.refresh()
    consul.put_kv("minimall/order/auto_confirm_days", None)

    config.refresh()

    assert config.get("auto_confirm_days") == 10


def test_the_watch_picks_up_a_change_while_it_runs(consul: FakeConsul) -> None:
    config = runtime_config(consul)
    stop = threading.Event()
    watcher = threading.Thread(target=config.watch, args=(stop,), daemon=True)
    watcher.start()
    try:
        consul.put_kv("minimall/order/payment_timeout_minutes", b"45")
        deadline = time.monotonic() + 10
        while config.get("payment_timeout_minutes") != 45 and time.monotonic() < deadline:
            time.sleep(0.05)

        assert config.get("payment_timeout_minutes") == 45

        # The first read may have seen the change already (it raced the put): the next one blocks.
        def blocked() -> bool:
            return any("index=" in path for method, path in list(consul.requests) if path.startswith("/v1/kv/"))
        while not blocked() and time.monotonic() < deadline + 10:
            time.sleep(0.05)
        assert blocked()
    finally:
        stop.set()
        watcher.join(timeout=5)


def test_consul_down_keeps_the_current_values() -> None:
    config = RuntimeConfig(Discovery(f"127.0.0.1:{free_port()}"), "order", TUNABLES)

    assert (config.refresh(), config.get("payment_timeout_minutes")) == (False, 30)
