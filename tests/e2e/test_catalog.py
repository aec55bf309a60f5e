"""The catalogue through the gateway: the demo seed, an admin taking a product to the shelf, shoppers' views."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections import Counter

import jwt
import pytest
import requests
from mall.events.v1.product_events_pb2 import ProductViewed
from sqlalchemy import create_engine, func, select
from sqlalchemy.pool import NullPool

from services.common.events import decode, unpack
from services.common.outbox import outbox
from services.product import service
from services.product.db import SqlProductUnitOfWork, products, skus, start_mappers, stock_movements
from services.product.seed import CATEGORIES, product_drafts
from tests.fixtures.platform import ROOT, Platform
from tests.fixtures.shop import sms_login

pytestmark = pytest.mark.e2e


def seed(platform: Platform) -> str:
    """`python -m services.product seed`, as `make run` calls it, on the platform's product database."""
    env = {**os.environ, "PRODUCT_DATABASE_URL": platform.database_urls["product"],
           "MINIMALL_VAR": str(platform.var_dir), "MINIMALL_ENV": "dev",
           "JWT_PUBLIC_KEY_FILE": str(platform.var_dir / "keys" / "jwt-public.pem")}
    done = subprocess.run([sys.executable, "-m", "services.product", "seed", "--quiet"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
def seeded(platform: Platform) -> Platform:
    seed(platform)
    return platform


@pytest.fixture(scope="module")
def admin(platform: Platform) -> dict[str, str]:
    reply = requests.post(f"{platform.api}/auth/login/password",
                          json={"phone": platform.admin_phone, "password": platform.admin_password}, timeout=10)
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


@pytest.fixture(scope="module")
def shopper(platform: Platform) -> dict[str, str]:
    return sms_login(platform, "13700001234")


def flatten(tree: list[dict]) -> list[dict]:
    return [node for item in tree for node in (item, *flatten(item["children"]))]


def test_the_demo_seed_fills_the_catalogue_and_a_second_run_adds_nothing(seeded: Platform) -> None:
    again = seed(seeded)

    categories = requests.get(f"{seeded.api}/categories", timeout=10).json()["items"]
    brands = requests.get(f"{seeded.api}/brands", timeout=10).json()["items"]
    names = [name for _, name in product_drafts()]
    seeded_categories = {name for parent, children in CATEGORIES.items() for name in (parent, *children)}
    with create_engine(seeded.database_urls["product"], poolclass=NullPool).connect() as conn:
        stored = conn.execute(select(func.count()).select_from(products).where(products.c.name.in_(names))).scalar()
    listed = Counter(node["name"] for node in flatten(categories) if node["name"] in seeded_categories)
    assert (again, len(seeded_categories), set(listed.values()), len(listed), len(brands), len(set(names)), stored) == (
        "demo catalogue ready (0 products created)", 19, {1}, 19, 8, 60, 60)  # other tests add categories of their own


def test_the_demo_seed_opens_every_skus_stock_ledger_with_its_initial_stock(seeded: Platform) -> None:
    engine = create_engine(seeded.database_urls["product"], poolclass=NullPool)
    names = [name for _, name in product_drafts()]
    with engine.connect() as conn:
        seeded_skus = set(conn.execute(select(skus.c.id).join(products, products.c.id == skus.c.product_id)
                                       .where(products.c.name.in_(names))).scalars())
        initial_rows = Counter(conn.execute(select(stock_movements.c.sku_id).where(
            stock_movements.c.kind == "initial", stock_movements.c.sku_id.in_(seeded_skus))).scalars())
        every_sku = conn.execute(select(func.count()).select_from(skus)).scalar_one()  # other tests' too
    start_mappers()
    checked, unbalanced = service.check_stock_ledger(SqlProductUnitOfWork(engine, "product"))

    combinations = sum(math.prod(len(values) for _, values in template.specs) for template, _ in product_drafts())
    assert (combinations, len(seeded_skus), set(initial_rows) == seeded_skus, set(initial_rows.values()), checked,
            unbalanced) == (259, 259, True, {1}, every_sku, [])  # one SKU per spec combination of the 60 products


def test_seed_images_are_served(seeded: Platform) -> None:
    logo = requests.get(f"{seeded.api}/brands", timeout=10).json()["items"][0]["logo"]

    image = requests.get(f"{seeded.base_url}{logo}", timeout=10)

    assert (image.status_code, image.headers["Content-Type"], image.content[:8]) == (
        200, "image/png", b"\x89PNG\r\n\x1a\n")


def test_an_admin_takes_a_product_to_the_shelf_and_shoppers_see_it_only_then(
        seeded: Platform, admin: dict[str, str], shopper: dict[str, str]) -> None:
    api = seeded.api
    category_id = flatten(requests.get(f"{api}/categories", timeout=10).json()["items"])[1]["id"]
    brand_id = requests.get(f"{api}/brands", timeout=10).json()["items"][0]["id"]
    body = {"name": "端到端 测试 智能手机", "subtitle": "e2e", "category_id": category_id, "brand_id": brand_id,
            "description": "只为测试", "images": [], "params": [{"name": "屏幕", "value": "6.1英寸"}],
            "specs": [{"name": "颜色", "values": ["黑", "白"]}],
            "skus": [{"spec": {"颜色": "黑"}, "price_fen": 100_000, "market_price_fen": 120_000, "stock": 5},
                     {"spec": {"颜色": "白"}, "price_fen": 110_000, "stock": 0}]}

    created = requests.post(f"{api}/admin/products", json=body, headers=admin, timeout=10)
    product_id = created.json()["id"]
    hidden = requests.get(f"{api}/products/{product_id}", timeout=10).status_code
    steps = [requests.post(f"{api}/admin/products/{product_id}/{step}", json=payload, headers=admin, timeout=10)
             for step, payload in (("submit", None), ("audit", {"approve": True, "version": created.json()["version"]}),
                                   ("shelf", {"on_shelf": True}))]
    detail = requests.get(f"{api}/products/{product_id}", headers=shopper, timeout=10).json()
    log = requests.get(f"{api}/admin/products/{product_id}/audit-log", headers=admin, timeout=10).json()["items"]
    found = requests.get(f"{api}/products", params={"q": "智能手机 端到端", "page_size": 5}, timeout=10).json()

    assert (created.status_code, created.json()["status"], hidden) == (201, "DRAFT", 404)
    assert [(s.status_code, s.json()["status"]) for s in steps] == [
        (200, "PENDING_AUDIT"), (200, "APPROVED"), (200, "APPROVED")]
    assert ([(s["spec"], s["stock_status"]) for s in detail["skus"]], detail["price_fen"]) == (
        [({"颜色": "黑"}, "low"), ({"颜色": "白"}, "sold_out")], 100_000)
    assert [entry["action"] for entry in log] == ["shelf_on", "approve", "submit", "create"]  # newest first
    assert found["items"][0]["id"] == product_id  # the only product with both words in its name


def test_an_edit_from_a_stale_form_is_409_and_changes_nothing(seeded: Platform, admin: dict[str, str]) -> None:
    api = seeded.api
    category_id = flatten(requests.get(f"{api}/categories", timeout=10).json()["items"])[1]["id"]
    brand_id = requests.get(f"{api}/brands", timeout=10).json()["items"][0]["id"]
    body = {"name": "端到端 版本 保温杯", "category_id": category_id, "brand_id": brand_id,
            "specs": [{"name": "颜色", "values": ["黑"]}], "skus": [{"spec": {"颜色": "黑"}, "price_fen": 10_000}]}
    form = requests.post(f"{api}/admin/products", json=body, headers=admin, timeout=10).json()  # both admins' form
    url = f"{api}/admin/products/{form['id']}"

    first = requests.put(url, json={**body, "version": form["version"], "skus": [
        {"spec": {"颜色": "黑"}, "price_fen": 12_000}]}, headers=admin, timeout=10)
    stale = requests.put(url, json={**body, "version": form["version"]}, headers=admin, timeout=10)
    unversioned = requests.put(url, json=body, headers=admin, timeout=10)

    assert (form["version"], first.status_code, first.json()["version"], first.json()["price_fen"]) == (
        1, 200, 2, 12_000)
    assert (stale.status_code, stale.json()["error"]["code"], stale.json()["error"]["details"]) == (
        409, "PRODUCT_CHANGED", {"version": 2})
    assert (unversioned.status_code, requests.get(url, headers=admin, timeout=10).json()["price_fen"]) == (400, 12_000)


def test_a_logged_in_view_is_published_as_product_viewed(seeded: Platform, shopper: dict[str, str]) -> None:
    product_id = requests.get(f"{seeded.api}/products", timeout=10).json()["items"][0]["id"]
    engine = create_engine(seeded.database_urls["product"], poolclass=NullPool)

    def views() -> list[tuple[int, str, int, bool]]:
        """This product's product-viewed rows: (outbox id, aggregate id, viewer, published)."""
        with engine.connect() as conn:
            rows = conn.execute(select(outbox.c.id, outbox.c.aggregate_id, outbox.c.envelope, outbox.c.published_at)
                                .where(outbox.c.event_type == "product-viewed").order_by(outbox.c.id)).all()
        viewed = [(row_id, key, unpack(decode(bytes(raw)), ProductViewed), published)
                  for row_id, key, raw, published in rows]
        return [(row_id, key, event.user_id, published is not None)
                for row_id, key, event, published in viewed if event.product_id == product_id]

    before = {row[0] for row in views()}
    me = requests.get(f"{seeded.api}/products/{product_id}", headers=shopper, timeout=10)
    deadline = time.monotonic() + 30
    while True:  # the relay publishes it shortly after the view commits
        new = [row for row in views() if row[0] not in before]
        if (new and all(published for *_, published in new)) or time.monotonic() > deadline:
            break
        time.sleep(0.2)

    viewer = jwt.decode(shopper["Authorization"].removeprefix("Bearer "), options={"verify_signature": False})["sub"]
    assert me.status_code == 200
    assert [(key, user_id, published) for _, key, user_id, published in new] == [(str(viewer), int(viewer), True)]


def test_a_shopper_on_admin_product_routes_gets_403(seeded: Platform, shopper: dict[str, str]) -> None:
    statuses = {requests.request(method, f"{seeded.api}/admin/products{path}", json=payload, headers=shopper,
                                 timeout=10).status_code
                for method, path, payload in (("GET", "", None), ("POST", "/1/submit", None),
                                              ("POST", "/1/audit", {"approve": True, "version": 1}),
                                              ("POST", "/1/shelf", {"on_shelf": True}))}

    assert statuses == {403}


def test_a_bad_product_payload_is_a_400_with_field_details(seeded: Platform, admin: dict[str, str]) -> None:
    bad = {"name": "", "category_id": 1, "brand_id": 1, "skus": [{"spec": {}, "price_fen": 0, "stock": -1}]}

    response = requests.post(f"{seeded.api}/admin/products", json=bad, headers=admin, timeout=10)

    assert (response.status_code, sorted(response.json()["error"]["details"])) == (
        400, ["name", "skus.0.price_fen", "skus.0.stock"])


def test_cached_catalogue_reads_follow_stock_and_shelf_changes_at_once(seeded: Platform,
                                                                        admin: dict[str, str]) -> None:
    api = seeded.api
    product_id = requests.get(f"{api}/products", params={"sort": "price_desc"}, timeout=10).json()["items"][0]["id"]
    before = requests.get(f"{api}/products/{product_id}", timeout=10).json()  # now in the gateway's cache
    sku = requests.get(f"{api}/admin/products/{product_id}", headers=admin, timeout=10).json()["skus"][0]

    requests.post(f"{api}/admin/products/{product_id}/skus/{sku['id']}/stock", json={"delta": -sku["stock"]},
                  headers=admin, timeout=10)
    sold_out = requests.get(f"{api}/products/{product_id}", timeout=10).json()
    requests.post(f"{api}/admin/products/{product_id}/shelf", json={"on_shelf": False}, headers=admin, timeout=10)
    off_shelf = requests.get(f"{api}/products/{product_id}", timeout=10).status_code
    listed = [p["id"] for p in requests.get(f"{api}/products", params={"sort": "price_desc"}, timeout=10).json()["items"]]
    requests.post(f"{api}/admin/products/{product_id}/shelf", json={"on_shelf": True}, headers=admin, timeout=10)
    requests.post(f"{api}/admin/products/{product_id}/skus/{sku['id']}/stock", json={"delta": sku["stock"]},
                  headers=admin, timeout=10)

    status_of = {s["id"]: s["stock_status"] for s in sold_out["skus"]}
    assert (before["id"], sku["stock"] > 0, status_of[sku["id"]], off_shelf, product_id in listed) == (
        product_id, True, "sold_out", 404, False)
