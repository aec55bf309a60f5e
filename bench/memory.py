"""Resident memory of every process of the platform, idle and under load (make bench item 5).

Starts the platform as `make run` does (tools.devrun, via bench.auth.RunningPlatform) on fresh
PostgreSQL databases of BENCH_POSTGRES_URL (dropped afterwards). Every process of its process group
(the runner, the broker, the simulator, the five services, the gateway's master and workers) is
read from /proc:

- idle: VmRSS once the platform is ready and has stood still for BENCH_MEMORY_SETTLE_SECONDS (10);
- loaded: VmRSS after BENCH_MEMORY_LOAD_SECONDS (30) of mixed traffic from 8 threads — anonymous
  catalogue reads, logged-in product views (product-viewed events), buy-now orders over
  BENCH_MEMORY_SKUS SKUs (reservations, order-created events) — and the process's peak (VmHWM).

Linux only (/proc). Not run in CI (`make bench`).
"""

from __future__ import annotations

import json
import os
import platform
import random
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from bench.auth import RESULTS, RunningPlatform, fresh_databases, postgres_server, service_databases
from bench.checkout import ADMIN_PHONE_LOGIN, _on_shelf, _post, _shopper


def main() -> None:
    server = postgres_server()
    settle = float(os.environ.get("BENCH_MEMORY_SETTLE_SECONDS", "10"))
    seconds = float(os.environ.get("BENCH_MEMORY_LOAD_SECONDS", "30"))
    sku_count = int(os.environ.get("BENCH_MEMORY_SKUS", "50"))
    names = service_databases("memory")
    with fresh_databases(server, names.values()):
        with tempfile.TemporaryDirectory() as var, (running := RunningPlatform(server, names, Path(var))) as api:
            time.sleep(settle)  # a benchmark's pause, not a test's: let start-up garbage be collected
            idle = processes(running.process.pid)
            admin = {"Authorization": f"Bearer {_post(api, '/auth/login/password', ADMIN_PHONE_LOGIN)['access_token']}"}
            with ThreadPoolExecutor(4) as pool:
                skus = list(pool.map(lambda n: _on_shelf(api, admin, f"内存压测 {n}", 100_000), range(sku_count)))
                shoppers = list(pool.map(lambda n: _shopper(api, n), range(8)))
            traffic = _traffic(api, skus, shoppers, seconds)
            loaded = processes(running.process.pid)

    rows = []
    for pid, process in sorted(loaded.items(), key=lambda item: item[1]["name"]):
        before = idle.get(pid)
        rows.append({"process": process["name"], "pid": pid, "idle_mb": before["rss_mb"] if before else None,
                     "loaded_mb": process["rss_mb"], "peak_mb": process["peak_mb"]})
    result = {"benchmark": "memory", "at": datetime.now(UTC).isoformat(),
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
              "load_seconds": seconds, "traffic": traffic, "processes": rows,
              "total_mb": {"idle": round(sum(p["rss_mb"] for p in idle.values()), 1),
                           "loaded": round(sum(p["rss_mb"] for p in loaded.values()), 1)}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "memory.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"{'process':34} {'pid':>7} {'idle MB':>8} {'loaded MB':>10} {'peak MB':>8}")
    for row in rows:
        idle_mb = "-" if row["idle_mb"] is None else f"{row['idle_mb']:.1f}"
        print(f"{row['process'][:34]:34} {row['pid']:>7} {idle_mb:>8} {row['loaded_mb']:>10.1f} {row['peak_mb']:>8.1f}")
    print(f"total: idle {result['total_mb']['idle']} MB, loaded {result['total_mb']['loaded']} MB; "
          f"traffic in {seconds:g} s: {traffic}")
    print(f"written to {RESULTS / 'memory.json'}")


def processes(root: int) -> dict[int, dict[str, Any]]:
    """`root` and every live process descending from it: name, RSS and peak RSS in MB."""
    found: dict[int, dict[str, Any]] = {}
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # ended meanwhile
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        parents[int(entry.name)] = int(fields["PPid"])
        if "VmRSS" in fields:  # not a zombie
            found[int(entry.name)] = {"name": _name([a.decode(errors="replace") for a in argv if a]),
                                      "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
                                      "peak_mb": int(fields["VmHWM"].split()[0]) / 1024}

    def descends(pid: int) -> bool:
        while pid > 1:
            if pid == root:
                return True
            pid = parents.get(pid, 0)
        return False

    mine = {pid: process for pid, process in found.items() if descends(pid)}
    gateway = {pid for pid, process in mine.items() if process["name"] == "gunicorn"}
    for pid in gateway:  # the gateway: its master, and the workers forked from it
        mine[pid]["name"] = "gateway worker" if parents[pid] in gateway else "gateway master"
    return mine


def _name(argv: list[str]) -> str:
    if argv and Path(argv[0]).name.startswith("gunicorn") or argv[1:2] == ["-m"] and argv[2:3] == ["gunicorn"]:
        return "gunicorn"
    if "-m" in argv and argv.index("-m") + 1 < len(argv):
        return " ".join(argv[argv.index("-m") + 1:][:2])
    return " ".join(Path(a).name if i == 0 else a for i, a in enumerate(argv[:2]))


def _traffic(api: str, skus: list[tuple[int, int]], shoppers: list[tuple[dict[str, str], int]],
             seconds: float) -> dict[str, int]:
    """Reads, logged-in views and paid orders from 8 threads for `seconds`; the outcomes counted."""
    ends = time.monotonic() + seconds
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def worker(n: int) -> None:
        chosen = random.Random(n)
        headers, address_id = shoppers[n % len(shoppers)]
        while time.monotonic() < ends:
            product_id, sku_id = chosen.choice(skus)
            step = chosen.random()
            if step < 0.6:
                kind, reply = "read", requests.get(f"{api}/products/{product_id}", timeout=30)
            elif step < 0.8:
                kind, reply = "view", requests.get(f"{api}/products/{product_id}", headers=headers, timeout=30)
            else:
                kind, reply = "order", requests.post(
                    f"{api}/orders", json={"sku_id": sku_id, "quantity": 1, "address_id": address_id},
                    headers={**headers, "Idempotency-Key": uuid.uuid4().hex}, timeout=30)
            with lock:
                outcomes[f"{kind} {reply.status_code}"] += 1

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, range(8)))
    return dict(outcomes)


if __name__ == "__main__":
    main()
