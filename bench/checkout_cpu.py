"""What one order costs, whatever the load: CPU per order of every process, gRPC calls and transactions per order.

Companion of bench/checkout.py (issue 9), whose orders/s and latencies depend on how busy the shared
machine is. This one starts the platform the same way (bench.auth.RunningPlatform, fresh PostgreSQL
databases of BENCH_POSTGRES_URL, dropped afterwards), puts BENCH_CPU_SKUS products on the shelf and
BENCH_CPU_SHOPPERS verified shoppers with an address, places BENCH_CPU_WARMUP orders, then measures
BENCH_CPU_ORDERS buy-now orders (POST /orders, one unit of a random SKU) sent one after another:

- CPU seconds (user + system, /proc/<pid>/stat) of every platform process and of the PostgreSQL
  backends serving its databases (found by database name in their process title), minus what each
  burned idle over BENCH_CPU_IDLE_SECONDS measured just before (consumers and relays poll);
- gRPC calls handled per order, by service and method (each service's /metrics);
- PostgreSQL transactions committed and rolled back per order, by database (pg_stat_database).

With BENCH_CPU_PYSPY=<folder> (py-spy installed, root or ptrace allowed) the same orders run again
with py-spy sampling every service and gateway worker while they hold the GIL (Python CPU): collapsed
stacks, one file per process.

CPU time is what a request costs whoever else runs on the machine (only cache effects remain), so
before/after comparisons hold on a busy box where orders/s do not. Linux only. Not run in CI.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

from bench.auth import RESULTS, RunningPlatform, fresh_databases, postgres_server, service_databases
from bench.checkout import ADMIN_PHONE_LOGIN, _on_shelf, _post, _shopper
from bench.memory import processes
from services.common.config import SERVICES

TICKS = os.sysconf("SC_CLK_TCK")
TARGET_RATE = 300  # orders/s: issue 9's benchmark target
# prometheus_client sorts the labels by name
RPC_LINE = re.compile(r'^mall_grpc_server_handled_total\{code="(\w+)",method="(\w+)",service="(\w+)"\} ([0-9.e+]+)$')


def main() -> None:
    server = postgres_server()
    sku_count = int(os.environ.get("BENCH_CPU_SKUS", "20"))
    shopper_count = int(os.environ.get("BENCH_CPU_SHOPPERS", "10"))
    warmup = int(os.environ.get("BENCH_CPU_WARMUP", "50"))
    orders = int(os.environ.get("BENCH_CPU_ORDERS", "300"))
    idle_seconds = float(os.environ.get("BENCH_CPU_IDLE_SECONDS", "10"))
    profiles = os.environ.get("BENCH_CPU_PYSPY", "")  # a folder: the orders again, under py-spy
    names = service_databases("checkout_cpu")
    with fresh_databases(server, names.values()):
        with tempfile.TemporaryDirectory() as var:
            running = RunningPlatform(server, names, Path(var))
            with running as api:
                admin = {"Authorization": f"Bearer {_post(api, '/auth/login/password', ADMIN_PHONE_LOGIN)['access_token']}"}
                skus = [_on_shelf(api, admin, "压测商品 0", 100_000)]
                with ThreadPoolExecutor(4) as pool:
                    skus += pool.map(lambda n: _on_shelf(api, admin, f"压测商品 {n}", 100_000), range(1, sku_count))
                    shoppers = list(pool.map(lambda n: _shopper(api, n), range(shopper_count)))
                chosen = random.Random(7)
                plan = [(chosen.choice(skus)[1], shoppers[n % len(shoppers)]) for n in range(warmup + orders)]
                for sku_id, shopper in plan[:warmup]:
                    _order(api, shopper, sku_id)
                metrics_ports = {service: int(running.env[f"{service.upper()}_METRICS_PORT"]) for service in SERVICES}
                databases = {name: service for service, name in names.items()}
                idle = _idle_rates(running.process.pid, databases, idle_seconds)
                cpu_before, rpc_before, xact_before = (_cpu(running.process.pid, databases), _rpcs(metrics_ports),
                                                       _transactions(server, databases))
                started = time.perf_counter()
                outcomes = Counter(_order(api, shopper, sku_id) for sku_id, shopper in plan[warmup:])
                seconds = time.perf_counter() - started
                cpu_after, rpc_after, xact_after = (_cpu(running.process.pid, databases), _rpcs(metrics_ports),
                                                    _transactions(server, databases))
                if profiles:
                    _profiled(running.process.pid, Path(profiles), lambda: [_order(api, shopper, sku_id)
                                                                            for sku_id, shopper in plan[warmup:]])

    cpu_ms = {name: round(max(0.0, cpu_after.get(name, 0.0) - cpu_before.get(name, 0.0)
                              - idle.get(name, 0.0) * seconds) * 1000 / orders, 2)
              for name in sorted(set(cpu_after) | set(cpu_before))}
    rpcs = {call: round((rpc_after[call] - rpc_before.get(call, 0)) / orders, 2)
            for call in sorted(rpc_after) if rpc_after[call] - rpc_before.get(call, 0) > 0}
    xacts = {database: round((xact_after[database] - xact_before.get(database, 0)) / orders, 2)
             for database in sorted(xact_after)}
    result = {
        "benchmark": "checkout_cpu", "at": datetime.now(UTC).isoformat(), "orders": orders,
        "outcomes": dict(outcomes), "seconds": round(seconds, 2), "ms_per_order_wall": round(seconds * 1000 / orders, 1),
        "load_average": os.getloadavg(), "cpu_ms_per_order": cpu_ms, "cpu_ms_per_order_total": round(sum(cpu_ms.values()), 2),
        "grpc_calls_per_order": rpcs, "transactions_per_order": xacts,
    }
    # Capacity: the cores of this machine a shop placing TARGET_RATE orders/s keeps busy with checkout alone.
    result["cores_for_target_rate"] = round(result["cpu_ms_per_order_total"] * TARGET_RATE / 1000, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "checkout_cpu.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"{orders} orders one after another in {seconds:.1f} s ({result['ms_per_order_wall']} ms each), "
          f"outcomes {dict(outcomes)}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'process':28} {'CPU ms/order':>12}")
    for name, ms in cpu_ms.items():
        print(f"{name:28} {ms:>12}")
    print(f"{'total':28} {result['cpu_ms_per_order_total']:>12}")
    print(f"{TARGET_RATE} orders/s would keep {result['cores_for_target_rate']} cores of this machine busy "
          f"(this machine has {os.cpu_count()}; the issue's target rate)")
    print(f"{'gRPC call':44} {'per order':>9}")
    for call, per_order in rpcs.items():
        print(f"{call:44} {per_order:>9}")
    print(f"{'database transactions (commit/rollback)':44} {'per order':>9}")
    for database, per_order in xacts.items():
        print(f"{database:44} {per_order:>9}")
    print(f"written to {RESULTS / 'checkout_cpu.json'}")


def _order(api: str, shopper: tuple[dict[str, str], int], sku_id: int) -> str:
    headers, address_id = shopper
    reply = requests.post(f"{api}/orders", json={"sku_id": sku_id, "quantity": 1, "address_id": address_id},
                          headers={**headers, "Idempotency-Key": uuid.uuid4().hex}, timeout=60)
    return str(reply.status_code)


def _profiled(root: int, folder: Path, run: Callable[[], object]) -> None:
    """`run()` with py-spy sampling every Python process of the platform: collapsed stacks per process."""
    folder.mkdir(parents=True, exist_ok=True)
    spies = []
    for pid, process in processes(root).items():
        if process["name"].startswith(("services.", "gateway worker")):
            out = folder / f"{process['name'].replace(' ', '-')}-{pid}.txt"
            spies.append(subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--format", "raw", "--rate", "250",
                                           "--nonblocking", "--gil", "--output", str(out)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(2)  # attached
    try:
        run()
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            spy.wait(timeout=60)
    print(f"py-spy stacks in {folder}")


def _cpu(root: int, databases: dict[str, str]) -> dict[str, float]:
    """CPU seconds so far of every platform process (by name; gateway workers added up) and of the
    PostgreSQL backends of its databases (by service)."""
    totals: dict[str, float] = defaultdict(float)
    for pid, process in processes(root).items():
        totals[process["name"]] += _cpu_seconds(pid)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres: "):
            for database, service in databases.items():
                if f" {database} " in title:
                    totals[f"postgres ({service})"] += _cpu_seconds(int(entry.name))
    return dict(totals)


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # ended meanwhile
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def _idle_rates(root: int, databases: dict[str, str], seconds: float) -> dict[str, float]:
    """CPU seconds per second each process burns with no orders coming in."""
    before = _cpu(root, databases)
    time.sleep(seconds)
    after = _cpu(root, databases)
    return {name: max(0.0, after[name] - before.get(name, 0.0)) / seconds for name in after}


def _rpcs(ports: dict[str, int]) -> dict[str, float]:
    """gRPC calls handled so far, as "service.Method"."""
    calls: dict[str, float] = defaultdict(float)
    for port in ports.values():
        for line in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text.splitlines():
            found = RPC_LINE.match(line)
            if found and found.group(2) != "Check":  # health checks
                calls[f"{found.group(3)}.{found.group(2)}"] += float(found.group(4))
    return dict(calls)


def _transactions(server: str, databases: dict[str, str]) -> dict[str, int]:
    engine = create_engine(f"{server}/postgres")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_stat_clear_snapshot()"))
            rows = connection.execute(text("SELECT datname, xact_commit + xact_rollback FROM pg_stat_database "
                                           "WHERE datname = ANY(:names)"), {"names": list(databases)}).all()
    finally:
        engine.dispose()
    return {databases[name]: int(count) for name, count in rows}


if __name__ == "__main__":
    main()
