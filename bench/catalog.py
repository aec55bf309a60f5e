"""Catalogue read path: product detail and list through the gateway vs a bare gunicorn Flask app, same run.

Starts the platform as `make run` does (tools.devrun, demo catalogue seeded) on fresh PostgreSQL
databases of BENCH_POSTGRES_URL, with the gateway on BENCH_CATALOG_WORKERS gunicorn workers of
BENCH_CATALOG_THREADS threads sharing catalogue changes through Redis (BENCH_REDIS_URL), as in
production. Records every detail page and the first list pages through the gateway, then serves
those same bodies from memory with a bare Flask app on gunicorn with the same workers, threads and
worker class (bench/bare_app.py).

Load is open-loop: requests leave at a fixed arrival rate whatever the server does, each on a free
keep-alive connection of a pool (BENCH_CATALOG_CONNECTIONS), and latency counts from the moment a
request was due, so a server that falls behind shows it in p99 (no coordinated omission). Each
target runs at every rate of BENCH_CATALOG_RATES for BENCH_CATALOG_SECONDS; the last, higher than
any server here sustains, measures capacity (req/s achieved).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import requests

from bench.auth import RESULTS, ROOT, RunningPlatform, fresh_databases, postgres_server, service_databases
from services.common.devbroker import free_port

TARGETS = ("detail", "list")


@dataclass(frozen=True)
class Run:
    offered: int          # requests per second sent
    sent: int
    ok: int
    errors: int           # refused, broken, not 200, or unanswered when the run ended
    seconds: float
    latencies_ms: list[float]

    def figures(self) -> dict[str, float]:
        cuts = statistics.quantiles(self.latencies_ms, n=100, method="inclusive") if len(self.latencies_ms) > 1 \
            else [0.0] * 99
        return {"offered_per_second": self.offered, "per_second": round(self.ok / self.seconds, 1),
                "p50_ms": round(cuts[49], 1), "p99_ms": round(cuts[98], 1), "errors": self.errors}


async def open_loop(base: str, paths: list[str], rate: int, seconds: float, connections: int) -> Run:
    """`rate` GETs a second for `seconds`, cycling through `paths`, on at most `connections` keep-alive sockets."""
    url = urlsplit(base)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    requests_bytes = [f"GET {url.path}{p} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode() for p in paths]
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(None)
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors = 0
    total = int(rate * seconds)
    start = loop.time() + 0.05

    async def one(index: int) -> None:
        nonlocal errors
        due = start + index / rate
        connection = await pool.get()
        try:
            if connection is None:
                connection = await asyncio.open_connection(host, port)
            reader, writer = connection
            writer.write(requests_bytes[index % len(requests_bytes)])
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            if head[9:12] != b"200":
                errors += 1
            else:
                latencies.append((loop.time() - due) * 1000)
        except (OSError, asyncio.IncompleteReadError, StopIteration, ValueError):
            errors += 1
            if connection is not None:
                connection[1].close()
            connection = None
        finally:
            pool.put_nowait(connection)

    tasks = []
    sent = 0
    while sent < total:
        now = loop.time()
        due_now = min(total, int((now - start) * rate) + 1)
        while sent < due_now:  # everything due by now leaves now: the arrival rate does not wait for replies
            tasks.append(asyncio.create_task(one(sent)))
            sent += 1
        await asyncio.sleep(max(0.0, start + sent / rate - loop.time()))
    # Replies still missing `seconds` after the last request left count as errors: a server far
    # behind must not stretch the run (nor this benchmark) without end.
    _, late = await asyncio.wait(tasks, timeout=seconds)
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    errors += len(late)
    while not pool.empty():
        connection = pool.get_nowait()
        if connection is not None:
            connection[1].close()
    return Run(rate, sent, len(latencies), errors, loop.time() - start, latencies)


def load(base: str, paths: list[str], rate: int, seconds: float, connections: int) -> Run:
    return asyncio.run(open_loop(base, paths, rate, seconds, connections))


class BareServer:
    """bench/bare_app.py on gunicorn with the gateway's worker count, threads and worker class (gthread)."""

    def __init__(self, payloads: Path, workers: int, threads: int) -> None:
        self.port = free_port()
        self.args = [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{self.port}", "-w", str(workers),
                     "--threads", str(threads), "-k", "gthread", "--log-level", "warning", "bench.bare_app:app"]
        self.env = {**os.environ, "BENCH_BARE_PAYLOADS": str(payloads)}

    def __enter__(self) -> str:
        self.process = subprocess.Popen(self.args, cwd=ROOT, env=self.env, start_new_session=True)
        base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"{base}/ping", timeout=1)
                return base
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError("the bare server did not start")

    def __exit__(self, *exc: object) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=30)


def gateway_environment(redis_url: str, workers: int, threads: int) -> dict[str, str]:
    """The gateway's variables for this run: `workers` sharing catalogue changes and sessions through Redis, or,
    with BENCH_REDIS_URL=none, one worker and no Redis as `make run` (the gateway refuses more workers without
    REDIS_URL: each would know only the sessions that ended through itself)."""
    # Every request comes from this one address: scale the catalogue's per-address read limits out of the way.
    unlimited = {"GATEWAY_RATE_LIMIT_SCALE": "10000"}
    if redis_url == "none":
        return {"GATEWAY_WORKERS": "1", "GATEWAY_THREADS": str(threads)} | unlimited
    return {"GATEWAY_WORKERS": str(workers), "GATEWAY_THREADS": str(threads), "REDIS_URL": redis_url,
            "GATEWAY_RATE_LIMIT_SECRET": "bench-catalog-rate-limit-secret-0123456789"} | unlimited


def main() -> None:
    server = postgres_server()
    workers = int(os.environ.get("BENCH_CATALOG_WORKERS", "2"))
    threads = int(os.environ.get("BENCH_CATALOG_THREADS", "8"))
    seconds = float(os.environ.get("BENCH_CATALOG_SECONDS", "5"))
    rates = [int(r) for r in os.environ.get("BENCH_CATALOG_RATES", "500,1000,1500,3000").split(",")]
    connections = int(os.environ.get("BENCH_CATALOG_CONNECTIONS", "64"))
    gateway_env = gateway_environment(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"), workers, threads)
    workers = int(gateway_env["GATEWAY_WORKERS"])  # the bare app gets the same
    names = service_databases("catalog")
    results: dict[str, dict[str, list[dict[str, float]]]] = {"gateway": {}, "bare": {}}
    with fresh_databases(server, names.values()):
        with tempfile.TemporaryDirectory() as var, RunningPlatform(server, names, Path(var), gateway_env) as api:
            paths = _paths(api)
            payloads = Path(var) / "payloads.json"
            payloads.write_text(json.dumps({"/api/v1" + p: requests.get(api + p, timeout=10).text
                                            for ps in paths.values() for p in ps}, ensure_ascii=False))
            with BareServer(payloads, workers, threads) as bare:
                for name, base in (("gateway", api), ("bare", f"{bare}/api/v1")):
                    for target in TARGETS:
                        load(base, paths[target], 200, 1, connections)  # warm up: caches, imports, connections
                        results[name][target] = [load(base, paths[target], rate, seconds, connections).figures()
                                                 for rate in rates]

    summary = {target: _summary(results["gateway"][target], results["bare"][target]) for target in TARGETS}
    result = {
        "benchmark": "catalog",
        "at": datetime.now(UTC).isoformat(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "gunicorn": {"workers": workers, "threads": threads, "worker_class": "gthread"},
        "catalog_version_store": "redis" if "REDIS_URL" in gateway_env else "process",
        "seconds_per_rate": seconds, "connections": connections,
        "runs": results, "summary": summary,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "catalog.json").write_text(json.dumps(result, indent=2))
    print(f"{'target':8} {'server':8} {'offered/s':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for target in TARGETS:
        for name in ("gateway", "bare"):
            for row in results[name][target]:
                print(f"{target:8} {name:8} {row['offered_per_second']:>9} {row['per_second']:>8} "
                      f"{row['p50_ms']:>8} {row['p99_ms']:>8} {row['errors']:>6}")
    for target, figures in summary.items():
        print(f"{target}: gateway {figures['gateway_per_second']} req/s, bare {figures['bare_per_second']} req/s, "
              f"ratio {figures['ratio']}; gateway p99 at 1000/s {figures['gateway_p99_ms_at_1000']} ms")
    print(f"written to {RESULTS / 'catalog.json'}")


def _paths(api: str) -> dict[str, list[str]]:
    """Every detail page of the seeded catalogue, and list pages 1-3 (the same paths for both servers)."""
    first = requests.get(f"{api}/products", params={"page_size": 100}, timeout=10).json()
    return {"detail": [f"/products/{p['id']}" for p in first["items"]],
            "list": [f"/products?page={n}&page_size=20" for n in (1, 2, 3)]}


def _summary(gateway: list[dict[str, float]], bare: list[dict[str, float]]) -> dict[str, float | None]:
    """Capacity is the best rate achieved at any offered rate; p99 is read at 1000/s when that rate ran."""
    best_gateway = max(row["per_second"] for row in gateway)
    best_bare = max(row["per_second"] for row in bare)
    at_1000 = next((row["p99_ms"] for row in gateway if row["offered_per_second"] == 1000), None)
    return {"gateway_per_second": best_gateway, "bare_per_second": best_bare,
            "ratio": round(best_gateway / best_bare, 2) if best_bare else None, "gateway_p99_ms_at_1000": at_1000}


if __name__ == "__main__":
    main()
