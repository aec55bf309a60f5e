"""What one cached catalogue read costs the gateway, whatever the load: CPU per hit and Redis commands per hit.

Companion of bench/catalog.py, whose req/s and ratios to the bare app move with how busy the shared
machine is. A child process builds the gateway app (gateway.app.create_app: the catalogue cache on a
real Redis, BENCH_REDIS_URL, changes looked up at most every CATALOG_VERSION_CHECK_MS as in production)
over an in-memory product service, caches BENCH_CATALOG_CPU_PRODUCTS detail pages and list pages 1-3,
then answers rounds of BENCH_CATALOG_CPU_HITS hits through the WSGI app (as gunicorn calls it, without
the socket), BENCH_CATALOG_CPU_ROUNDS rounds per target:

- CPU microseconds per hit (time.process_time of the child over a round; the median round): what a hit
  costs whoever else runs on the machine, so before/after comparisons hold on a busy box where req/s
  do not (only cache and hyper-thread effects remain: compare runs taken side by side);
- wall microseconds per hit, and Redis commands per 1,000 hits (counted on the cache's own client);
- the same again with BENCH_CATALOG_CPU_CHECK_MS (default 0: every hit asks Redis), which shows what
  one look at the shared catalogue state costs by itself.

With BENCH_CATALOG_CPU_BASE=<another work tree> (e.g. `git worktree add /tmp/base e30db55`) a second
child serves the same rounds on that tree's code, the two taking turns round by round, and each target
gets the median of the paired ratios this/base: the fair A/B on a machine whose load changes by the
minute. Entries live an hour here, so every request is a hit (misses and reloads are bench/catalog.py's
subject). Not run in CI.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from mall.product.v1 import product_pb2
from werkzeug.test import EnvironBuilder

from gateway.app import create_app
from gateway.config import GatewaySettings

API = "/api/v1"
ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("detail", "list")


class ProductService:
    """The product service's two catalogue reads, answered from memory (only the first read of a page calls it)."""

    def __init__(self, products: int) -> None:
        self.products = [_product(n) for n in range(1, products + 1)]

    def ViewProduct(self, request: product_pb2.ViewProductRequest, **_: Any) -> product_pb2.Product:  # noqa: N802
        return self.products[request.id - 1]

    def SearchProducts(self, request: product_pb2.SearchProductsRequest,  # noqa: N802
                       **_: Any) -> product_pb2.SearchProductsResponse:
        page = self.products[request.offset:request.offset + request.limit]
        return product_pb2.SearchProductsResponse(items=page, total=len(self.products))


class Clients:
    """What the catalogue routes ask of ServiceClients: a stub per service (only the product service's here)."""

    def __init__(self, products: int) -> None:
        self.product = ProductService(products)

    def get(self, stub_class: type, **_: Any) -> ProductService:
        return self.product


def main() -> None:
    if sys.argv[1:] == ["serve"]:  # a child (_Child): serve rounds on this process's tree
        _serve_rounds()
        return
    from bench.auth import RESULTS  # the parent only: a child may run in an older tree

    hits = int(os.environ.get("BENCH_CATALOG_CPU_HITS", "20000"))
    rounds = int(os.environ.get("BENCH_CATALOG_CPU_ROUNDS", "5"))
    checks = dict.fromkeys((int(os.environ.get("CATALOG_VERSION_CHECK_MS", "100")),
                            int(os.environ.get("BENCH_CATALOG_CPU_CHECK_MS", "0"))))
    trees = {"this": ROOT}
    if os.environ.get("BENCH_CATALOG_CPU_BASE"):
        trees["base"] = Path(os.environ["BENCH_CATALOG_CPU_BASE"]).resolve()
    runs = {f"check_every_{ms}ms": _compare(trees, ms, hits, rounds) for ms in checks}
    result = {
        "benchmark": "catalog_cpu",
        "at": datetime.now(UTC).isoformat(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "trees": {name: {"path": str(tree), "commit": _commit(tree)} for name, tree in trees.items()},
        "hits_per_round": hits, "rounds": rounds, "runs": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "catalog_cpu.json").write_text(json.dumps(result, indent=2))
    print("trees: " + ", ".join(f"{name} {tree['commit']} ({tree['path']})" for name, tree in result["trees"].items()))
    print(f"{'check':>7} {'target':7} {'tree':5} {'cpu us/hit':>10} {'wall us/hit':>11} {'redis/1000':>10}  rounds (cpu us/hit)")
    for run in runs.values():
        for target in TARGETS:
            for name in trees:
                row = run[target][name]
                print(f"{run['check_ms']:>5}ms {target:7} {name:5} {row['cpu_us_per_hit']:>10} "
                      f"{row['wall_us_per_hit']:>11} {row['redis_commands_per_1000_hits']:>10}  "
                      f"{' '.join(f'{r:.0f}' for r in row['cpu_us_rounds'])}  {row['redis_commands']}")
            if "base" in trees:
                print(f"{run['check_ms']:>5}ms {target:7} this/base, median of the paired rounds: "
                      f"{run[target]['this_over_base']}")
    print(f"written to {RESULTS / 'catalog_cpu.json'}")


def _compare(trees: dict[str, Path], check_ms: int, hits: int, rounds: int) -> dict[str, Any]:
    """Rounds of `hits` hits per target on each tree's app, the trees taking turns (first in every other round)."""
    servers = {name: _Child(tree, check_ms) for name, tree in trees.items()}
    rows: dict[str, dict[str, list[dict[str, Any]]]] = {t: {name: [] for name in trees} for t in TARGETS}
    try:
        for target in TARGETS:  # warm up
            for server in servers.values():
                server.ask(target, 2000)
        for n in range(rounds):
            order = list(servers) if n % 2 == 0 else list(reversed(servers))
            for target in TARGETS:
                for name in order:
                    rows[target][name].append(servers[name].ask(target, hits))
                print(f"check {check_ms}ms round {n + 1}/{rounds} {target}: " + ", ".join(
                    f"{name} {rows[target][name][-1]['cpu'] / hits * 1e6:.0f}" for name in servers) + " cpu us/hit",
                      file=sys.stderr, flush=True)
    finally:
        for server in servers.values():
            server.close()
    run: dict[str, Any] = {"check_ms": check_ms}
    for target in TARGETS:
        run[target] = {name: _figures(rows[target][name], hits) for name in trees}
        if "base" in trees:
            run[target]["this_over_base"] = round(statistics.median(
                this["cpu"] / base["cpu"] for this, base in zip(rows[target]["this"], rows[target]["base"],
                                                                   strict=True)), 3)
    return run


def _figures(rows: list[dict[str, Any]], hits: int) -> dict[str, Any]:
    sent: Counter[str] = Counter()
    for row in rows:
        sent.update(row["commands"])
    return {"cpu_us_per_hit": round(statistics.median(r["cpu"] for r in rows) / hits * 1e6, 1),
            "cpu_us_rounds": [round(r["cpu"] / hits * 1e6, 1) for r in rows],
            "wall_us_per_hit": round(statistics.median(r["wall"] for r in rows) / hits * 1e6, 1),
            "redis_commands_per_1000_hits": round(sum(sent.values()) * 1000 / (hits * len(rows)), 2),
            "redis_commands": dict(sent)}


class _Child:
    """This script in a process of its own on `tree`'s code (its gateway, its generated protos), serving rounds."""

    def __init__(self, tree: Path, check_ms: int) -> None:
        code = f"import runpy, sys; sys.argv = ['catalog_cpu', 'serve']; runpy.run_path({__file__!r}, run_name='__main__')"
        env = {**os.environ, "PYTHONPATH": f"{tree}:{tree / 'gen'}", "CATALOG_VERSION_CHECK_MS": str(check_ms)}
        self.process = subprocess.Popen([sys.executable, "-c", code], cwd=tree, env=env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def ask(self, target: str, hits: int) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{target} {hits}\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the child serving {self.process.args} died")
        return json.loads(line)  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


def _serve_rounds() -> None:
    """The child: builds the app, caches every page, then answers `<target> <hits>` lines with a round's figures."""
    products = int(os.environ.get("BENCH_CATALOG_CPU_PRODUCTS", "60"))
    app = _app(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"), products,
               int(os.environ["CATALOG_VERSION_CHECK_MS"]))
    commands = _count_commands(app)
    paths = {"detail": [f"{API}/products/{n}" for n in range(1, products + 1)],
             "list": [f"{API}/products?page={n}&page_size=20" for n in (1, 2, 3)]}
    environs = {target: [EnvironBuilder(path=p).get_environ() for p in ps] for target, ps in paths.items()}
    for line in sys.stdin:
        target, hits = line.split()
        commands.clear()
        started_cpu, started_wall = time.process_time(), time.perf_counter()
        _serve(app, environs[target], int(hits))
        print(json.dumps({"cpu": time.process_time() - started_cpu, "wall": time.perf_counter() - started_wall,
                          "commands": commands}), flush=True)


def _commit(tree: Path) -> str:
    return subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=False).stdout.strip()


def _app(redis_url: str, products: int, check_ms: int) -> Flask:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    settings = GatewaySettings(jwt_public_key_pem=public_pem, consul_http_addr=None, grpc_timeout_seconds=5.0,
                               log_level="INFO", environ={}, redis_url=redis_url,
                               rate_limit_secret="bench-catalog-cpu-rate-limit-secret-0123456789",
                               catalog_cache_seconds=3600.0, catalog_cache_following_seconds=3600.0,
                               catalog_version_check_seconds=check_ms / 1000)
    return create_app(settings, Clients(products))  # type: ignore[arg-type]


def _count_commands(app: Flask) -> Counter[str]:
    """Count every command the app's Redis client (the rate limiter's, which the catalogue cache shares) sends."""
    client: redis.Redis = app.extensions["rate_limiter"].counter.client
    sent: Counter[str] = Counter()
    execute = client.execute_command

    def counted(*args: Any, **options: Any) -> Any:
        sent[str(args[0])] += 1
        return execute(*args, **options)

    client.execute_command = counted  # type: ignore[method-assign]
    return sent


def _serve(app: Flask, environs: list[dict[str, Any]], hits: int) -> None:
    """`hits` GETs through the WSGI app, cycling through `environs`, each answer read to its end."""
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        statuses.append(status)

    for n in range(hits):
        body = app(dict(environs[n % len(environs)]), start_response)
        b"".join(body)
        getattr(body, "close", lambda: None)()
        if statuses.pop() != "200 OK":
            raise RuntimeError(f"{environs[n % len(environs)]['PATH_INFO']} did not answer 200")


def _product(n: int) -> product_pb2.Product:
    return product_pb2.Product(
        id=n, name=f"压测商品 {n} 智能手机", subtitle="鸿蒙", category_id=3,
        brand=product_pb2.Brand(id=1, name="华为", logo="/media/catalog/h.png"), description="旗舰" * 40,
        images=["/media/catalog/a.png", "/media/catalog/b.png"], params=[product_pb2.Param(name="屏幕", value="6.7")],
        specs=[product_pb2.Spec(name="颜色", values=["黑", "白"])],
        skus=[product_pb2.Sku(id=n * 10 + c, spec={"颜色": color}, price_fen=549_900, market_price_fen=599_900,
                              stock=3, stock_status="low", weight_g=225, sales=2) for c, color in enumerate("黑白")],
        after_sales_policy="7天无理由", status="APPROVED", on_shelf=True, price_fen=549_900,
        market_price_fen=599_900, sales=2,
        rating=product_pb2.Rating(average=4.3, count=3, average_tenths=43, distribution=[0, 0, 0, 2, 1]),
        delivery=product_pb2.Delivery(province="", estimate_days=2))


if __name__ == "__main__":
    main()
