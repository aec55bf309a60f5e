"""Sessions through the gateway on PostgreSQL: SMS login, refresh-token rotation, password login (req/s, p50/p99).

Starts the platform as `make run` does (tools.devrun), on fresh PostgreSQL databases of
BENCH_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432, dropped afterwards).
BENCH_AUTH_USERS shoppers log in by SMS (code request + login), then refresh BENCH_AUTH_REFRESHES
times each, from BENCH_AUTH_THREADS threads; the admin logs in by password BENCH_AUTH_PASSWORD_LOGINS
times, one per CPU at a time (argon2id at OWASP's cost is CPU-bound by design).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import requests
from sqlalchemy import create_engine, text

from services.common.config import SERVICES
from services.common.devbroker import free_port
from services.order.config import MAX_UNPAID_ORDERS

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ADMIN_PHONE, ADMIN_PASSWORD = "13800000001", "bench-admin-pass-1"


def main() -> None:
    server = postgres_server()
    users = int(os.environ.get("BENCH_AUTH_USERS", "200"))
    refreshes = int(os.environ.get("BENCH_AUTH_REFRESHES", "5"))
    threads = int(os.environ.get("BENCH_AUTH_THREADS", "8"))
    password_logins = int(os.environ.get("BENCH_AUTH_PASSWORD_LOGINS", "50"))
    names = service_databases("auth")
    with fresh_databases(server, names.values()):
        with tempfile.TemporaryDirectory() as var, RunningPlatform(server, names, Path(var)) as api:
            phones = [f"136{n:08d}" for n in range(users)]
            with ThreadPoolExecutor(threads) as pool:
                logins = _timed(pool, lambda phone: _sms_login(api, phone), phones)
                tokens = [token for token, _ in logins.results]
                refreshed = _timed(pool, lambda token: _refresh_chain(api, token, refreshes), tokens)
            with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # argon2 is CPU-bound: one login per core
                by_password = _timed(pool, lambda _: _password_login(api), range(password_logins))

    refresh_latencies = [ms for chain in refreshed.results for ms in chain]
    result = {
        "benchmark": "auth",
        "at": datetime.now(UTC).isoformat(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "database": "postgresql", "threads": threads,
        "sms_login": _figures(len(phones), logins.seconds, [ms for _, ms in logins.results]),
        "refresh": _figures(len(refresh_latencies), refreshed.seconds, refresh_latencies),
        "password_login": _figures(password_logins, by_password.seconds, by_password.results),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "auth.json").write_text(json.dumps(result, indent=2))
    for name in ("sms_login", "refresh", "password_login"):
        figures = result[name]
        print(f"{name:16} {figures['requests']:>6} requests {figures['per_second']:>8} /s   "
              f"p50 {figures['p50_ms']:>7} ms   p99 {figures['p99_ms']:>7} ms")
    print(f"written to {RESULTS / 'auth.json'}")


@dataclass(frozen=True)
class Timed(Generic[T]):
    results: list[T]
    seconds: float


def _timed(pool: ThreadPoolExecutor, work: Callable[[Any], T], items: Iterable[Any]) -> Timed[T]:
    """`work` on every item from the pool's threads: the results, and the wall-clock seconds of the lot."""
    started = time.perf_counter()
    results = list(pool.map(work, items))
    return Timed(results, time.perf_counter() - started)


def _figures(requests_made: int, seconds: float, latencies_ms: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(latencies_ms, n=100, method="inclusive")
    return {"requests": requests_made, "per_second": round(requests_made / seconds, 1),
            "p50_ms": round(cuts[49], 1), "p99_ms": round(cuts[98], 1)}


def _post(api: str, path: str, body: dict[str, str], token: str | None = None) -> tuple[dict[str, Any], float]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    started = time.perf_counter()
    reply = requests.post(f"{api}{path}", json=body, headers=headers, timeout=30)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if reply.status_code >= 300:
        raise RuntimeError(f"POST {path} answered {reply.status_code}: {reply.text}")
    return reply.json(), elapsed_ms


def _sms_login(api: str, phone: str) -> tuple[str, float]:
    """The refresh token, and the milliseconds of the code request plus the login."""
    sent, code_ms = _post(api, "/auth/sms-codes", {"phone": phone, "purpose": "login"})
    session, login_ms = _post(api, "/auth/login/sms", {"phone": phone, "code": sent["dev_code"]})
    return session["refresh_token"], code_ms + login_ms


def _refresh_chain(api: str, token: str, times: int) -> list[float]:
    latencies = []
    for _ in range(times):
        session, elapsed_ms = _post(api, "/auth/refresh", {"refresh_token": token})
        token = session["refresh_token"]
        latencies.append(elapsed_ms)
    return latencies


def _password_login(api: str) -> float:
    return _post(api, "/auth/login/password", {"phone": ADMIN_PHONE, "password": ADMIN_PASSWORD})[1]


def _on_server(server: str, *statements: str) -> None:
    engine = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def postgres_server() -> str:
    """Where benchmarks make their throwaway databases: BENCH_POSTGRES_URL, else the local server."""
    return os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")


def service_databases(run: str) -> dict[str, str]:
    """One database name per service for this benchmark run (the pid keeps parallel runs apart)."""
    return {service: f"bench_{run}_{service}_{os.getpid()}" for service in SERVICES}


@contextlib.contextmanager
def fresh_databases(server: str, names: Iterable[str]) -> Iterator[None]:
    """Empty PostgreSQL databases `names` on `server` for the block, dropped after it (failed or not)."""
    names = list(names)
    drop = [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names]
    _on_server(server, *drop, *(f'CREATE DATABASE "{name}"' for name in names))
    try:
        yield
    finally:
        _on_server(server, *drop)


class RunningPlatform:
    """tools.devrun on the given databases; yields the API base URL once /readyz answers 200."""

    def __init__(self, server: str, names: dict[str, str], var: Path, extra_env: dict[str, str] | None = None) -> None:
        gateway_port = free_port()
        self.base = f"http://127.0.0.1:{gateway_port}"
        self.env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
        self.env.update({"MINIMALL_VAR": str(var), "GATEWAY_BIND": f"127.0.0.1:{gateway_port}",
                         "DEV_BROKER_PORT": str(free_port()), "SIMULATOR_PORT": str(free_port()),
                         "DEV_ADMIN_PHONE": ADMIN_PHONE,
                         "DEV_ADMIN_PASSWORD": ADMIN_PASSWORD, "GATEWAY_RATE_LIMIT_SCALE": "10000",
                         # The checkout benchmarks' few shoppers leave every order unpaid: bench/checkout.py's 50
                         # place 60 each, then the flash sale's; the limit's most lets them (5 would refuse the 6th).
                         "ORDER_MAX_UNPAID_PER_USER": str(MAX_UNPAID_ORDERS[1]),
                         "LOG_LEVEL": "WARNING", "DEVRUN_RAW_LOGS": "1"})
        for service, name in names.items():
            grpc = f"127.0.0.1:{free_port()}"
            self.env.update({f"{service.upper()}_DATABASE_URL": f"{server}/{name}",
                             f"{service.upper()}_GRPC_LISTEN": grpc, f"{service.upper()}_GRPC_TARGET": grpc,
                             f"{service.upper()}_METRICS_PORT": str(free_port())})
        self.env.update(extra_env or {})
        self.log = var / "platform.log"

    def __enter__(self) -> str:
        with self.log.open("w") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "tools.devrun"], cwd=ROOT, env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 300  # a shared 2-core machine can be slow
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the platform exited:\n{self.log.read_text()[-3000:]}")
            try:
                if requests.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return f"{self.base}/api/v1"
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.__exit__()
        raise RuntimeError(f"the platform did not become ready in 300 s:\n{self.log.read_text()[-3000:]}")

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


if __name__ == "__main__":
    main()
