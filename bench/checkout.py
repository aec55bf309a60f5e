"""Checkout through the gateway on PostgreSQL: orders/s and p50/p99 at a fixed rate over many SKUs, and a flash sale.

Starts the platform as `make run` does (tools.devrun, via bench.auth.RunningPlatform) on fresh
PostgreSQL databases of BENCH_POSTGRES_URL (dropped afterwards). Sets up BENCH_CHECKOUT_SKUS products
on the shelf and BENCH_CHECKOUT_SHOPPERS verified shoppers with an address, then:

- steady: BENCH_CHECKOUT_ORDERS buy-now orders (POST /orders, one unit of a random SKU each) sent
  at BENCH_CHECKOUT_RATE orders/s from BENCH_CHECKOUT_THREADS threads. A latency counts from the
  moment the request was due, so a platform slower than the rate shows as growing latency (no
  coordinated omission). Exact: every order is a 201 and every SKU's stock fell by its orders.
- flash sale: BENCH_FLASH_ORDERS orders at once for one SKU with BENCH_FLASH_STOCK units. Exact:
  BENCH_FLASH_STOCK orders, the rest 422 OUT_OF_STOCK, never a 5xx, stock 0.

The issue's target: >= 300 orders/s, p99 < 150 ms. Not run in CI (`make bench`).
"""

from __future__ import annotations

import json
import os
import platform
import random
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from bench.auth import (
    ADMIN_PASSWORD,
    ADMIN_PHONE,
    RESULTS,
    RunningPlatform,
    _figures,
    fresh_databases,
    postgres_server,
    service_databases,
)
from services.user.domain import id_check_digit


def main() -> None:
    server = postgres_server()
    sku_count = int(os.environ.get("BENCH_CHECKOUT_SKUS", "200"))
    shopper_count = int(os.environ.get("BENCH_CHECKOUT_SHOPPERS", "50"))
    orders = int(os.environ.get("BENCH_CHECKOUT_ORDERS", "3000"))
    rate = float(os.environ.get("BENCH_CHECKOUT_RATE", "300"))
    threads = int(os.environ.get("BENCH_CHECKOUT_THREADS", "64"))
    flash_orders = int(os.environ.get("BENCH_FLASH_ORDERS", "1000"))
    flash_stock = int(os.environ.get("BENCH_FLASH_STOCK", "100"))
    names = service_databases("checkout")
    stock_each = orders  # enough for every order to land on one SKU
    with fresh_databases(server, names.values()):
        with tempfile.TemporaryDirectory() as var, RunningPlatform(server, names, Path(var)) as api:
            admin = {"Authorization": f"Bearer {_post(api, '/auth/login/password', ADMIN_PHONE_LOGIN)['access_token']}"}
            skus = [_on_shelf(api, admin, "压测商品 0", stock_each)]  # alone: loads jieba's dictionary once
            with ThreadPoolExecutor(4) as pool:
                skus += pool.map(lambda n: _on_shelf(api, admin, f"压测商品 {n}", stock_each), range(1, sku_count))
                shoppers = list(pool.map(lambda n: _shopper(api, n), range(shopper_count)))
            steady = _steady(api, skus, shoppers, orders, rate, threads)
            sold = Counter(sku_id for sku_id in steady.pop("skus_ordered"))
            stock_exact = all(_stock(api, admin, product_id) == stock_each - sold[sku_id]
                              for product_id, sku_id in skus)
            flash_product, flash_sku = _on_shelf(api, admin, "秒杀压测", flash_stock)
            flash = _flash(api, flash_sku, shoppers, flash_orders)
            flash["stock_after"] = _stock(api, admin, flash_product)

    steady["exact"] = steady["errors"] == {} and stock_exact
    flash["exact"] = (flash["outcomes"] == {"201": flash_stock, "422 OUT_OF_STOCK": flash_orders - flash_stock}
                      and flash["stock_after"] == 0)
    result = {
        "benchmark": "checkout",
        "at": datetime.now(UTC).isoformat(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "database": "postgresql", "skus": sku_count, "shoppers": shopper_count, "threads": threads,
        "target": {"orders_per_second": 300, "p99_ms": 150},
        "steady": steady, "flash_sale": flash,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "checkout.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"{'run':12} {'orders':>7} {'orders/s':>9} {'p50 ms':>8} {'p99 ms':>8}  exact")
    for name, run in (("steady", steady), ("flash sale", flash)):
        print(f"{name:12} {run['requests']:>7} {run['per_second']:>9} {run['p50_ms']:>8} {run['p99_ms']:>8}  "
              f"{run['exact']}")
    print(f"steady: asked {rate:g}/s; flash sale: {flash['outcomes']}, stock after {flash['stock_after']}")
    print(f"written to {RESULTS / 'checkout.json'}")


ADMIN_PHONE_LOGIN = {"phone": ADMIN_PHONE, "password": ADMIN_PASSWORD}


def _steady(api: str, skus: list[tuple[int, int]], shoppers: list[tuple[dict[str, str], int]], count: int,
            rate: float, threads: int) -> dict[str, Any]:
    chosen = random.Random(7)
    plan = [(chosen.choice(skus)[1], shoppers[n % len(shoppers)]) for n in range(count)]
    start = time.perf_counter() + 0.5

    def due_order(n: int) -> tuple[str, float]:
        due = start + n / rate
        time.sleep(max(0.0, due - time.perf_counter()))
        sku_id, (headers, address_id) = plan[n]
        outcome = _order(api, headers, sku_id, address_id)
        return outcome, (time.perf_counter() - due) * 1000

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(due_order, range(count)))
    seconds = time.perf_counter() - start
    errors = Counter(outcome for outcome, _ in results if outcome != "201")
    figures: dict[str, Any] = _figures(count, seconds, [ms for _, ms in results])
    figures.update(errors=dict(errors), skus_ordered=[plan[n][0] for n, (outcome, _) in enumerate(results)
                                                      if outcome == "201"])
    return figures


def _flash(api: str, sku_id: int, shoppers: list[tuple[dict[str, str], int]], count: int) -> dict[str, Any]:
    def one(n: int) -> tuple[str, float]:
        headers, address_id = shoppers[n % len(shoppers)]
        started = time.perf_counter()
        outcome = _order(api, headers, sku_id, address_id)
        return outcome, (time.perf_counter() - started) * 1000

    started = time.perf_counter()
    with ThreadPoolExecutor(64) as pool:
        results = list(pool.map(one, range(count)))
    figures: dict[str, Any] = _figures(count, time.perf_counter() - started, [ms for _, ms in results])
    figures["outcomes"] = dict(Counter(outcome for outcome, _ in results))
    return figures


def _order(api: str, headers: dict[str, str], sku_id: int, address_id: int) -> str:
    """'201', or the status and error code of a refusal."""
    reply = requests.post(f"{api}/orders", json={"sku_id": sku_id, "quantity": 1, "address_id": address_id},
                          headers={**headers, "Idempotency-Key": uuid.uuid4().hex}, timeout=60)
    if reply.status_code == 201:
        return "201"
    try:
        return f"{reply.status_code} {reply.json()['error']['code']}"
    except (ValueError, KeyError, TypeError):
        return str(reply.status_code)


def _post(api: str, path: str, body: dict[str, Any] | None, headers: dict[str, str] | None = None) -> dict[str, Any]:
    reply = requests.post(f"{api}{path}", json=body, headers=headers or {}, timeout=30)
    if reply.status_code >= 300:
        raise RuntimeError(f"POST {path} answered {reply.status_code}: {reply.text}")
    return reply.json()


def _on_shelf(api: str, admin: dict[str, str], name: str, stock: int, price_fen: int = 990) -> tuple[int, int]:
    """A product with one SKU, approved and on the shelf: (product id, SKU id)."""
    category_id = requests.get(f"{api}/categories", timeout=10).json()["items"][0]["id"]
    brand_id = requests.get(f"{api}/brands", timeout=10).json()["items"][0]["id"]
    created = _post(api, "/admin/products", {
        "name": name, "subtitle": "bench", "category_id": category_id, "brand_id": brand_id, "description": "压测",
        "images": [], "params": [], "specs": [], "skus": [{"spec": {}, "price_fen": price_fen, "stock": stock}]},
        admin)
    product_id = created["id"]
    for step, payload in (("submit", None), ("audit", {"approve": True, "version": created["version"]}),
                          ("shelf", {"on_shelf": True})):
        _post(api, f"/admin/products/{product_id}/{step}", payload, admin)
    return product_id, requests.get(f"{api}/admin/products/{product_id}", headers=admin, timeout=10).json()["skus"][0]["id"]


def _stock(api: str, admin: dict[str, str], product_id: int) -> int:
    return requests.get(f"{api}/admin/products/{product_id}", headers=admin, timeout=10).json()["skus"][0]["stock"]


def _shopper(api: str, n: int) -> tuple[dict[str, str], int]:
    """A shopper logged in by SMS, with a verified identity and an address: (headers, address id)."""
    phone = f"135{n:08d}"
    sent = _post(api, "/auth/sms-codes", {"phone": phone, "purpose": "login"})
    headers = {"Authorization": f"Bearer {_post(api, '/auth/login/sms', {'phone': phone, 'code': sent['dev_code']})['access_token']}"}
    first17 = f"110105{date(1970, 1, 1) + timedelta(days=n):%Y%m%d}123"
    _post(api, "/me/identity", {"real_name": "王五", "id_number": first17 + id_check_digit(first17)}, headers)
    address = _post(api, "/me/addresses", {"receiver_name": "王五", "receiver_phone": "13900001111", "province": "浙江省",
                                           "city": "杭州市", "district": "西湖区", "detail": "文三路 1 号",
                                           "is_default": True}, headers)
    return headers, address["id"]

if __name__ == "__main__":
    main()
