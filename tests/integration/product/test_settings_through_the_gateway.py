"""Category and brand creates, and stock adjustments, retried with their Idempotency-Key through the whole stack: the
gateway and a real product gRPC server on PostgreSQL. A retry with the same key and body answers what the first
did, once; the same key with another body is 409 IDEMPOTENCY_KEY_REUSED; each writes exactly the rows counted here."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select

from gateway.app import create_app
from gateway.config import GatewaySettings
from services.common.idempotency import idempotency_keys
from services.common.outbox import outbox
from services.product.db import audit_log, brands, categories, settings_audit_log, stock_movements
from tests.fixtures.keys import JwtKeys
from tests.integration.product.conftest import Shelf, UowFactory

pytestmark = pytest.mark.integration

API = "/api/v1/admin"
OPERATOR = 7


@pytest.fixture
def gateway(product_port: int, jwt_keys: JwtKeys) -> Iterator[FlaskClient]:
    """The gateway app, its product service a real gRPC server on PostgreSQL."""
    app = create_app(GatewaySettings(jwt_public_key_pem=jwt_keys.public_pem, consul_http_addr=None,
                                     grpc_timeout_seconds=5, log_level="INFO",
                                     environ={"PRODUCT_GRPC_TARGET": f"127.0.0.1:{product_port}"}))
    yield app.test_client()
    app.extensions["clients"].close()


@pytest.fixture
def operator(user_token: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {user_token(OPERATOR, 'operator')}"}


def rows(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (categories, brands, settings_audit_log, outbox, idempotency_keys)}


def test_a_category_create_retried_with_its_key_answers_the_first_and_another_body_is_a_409(
        gateway: FlaskClient, operator: dict[str, str], pg_engine: Engine) -> None:
    keyed = {**operator, "Idempotency-Key": "category-form-1"}

    first = gateway.post(f"{API}/categories", json={"name": "数码", "sort": 1}, headers=keyed)
    retried = gateway.post(f"{API}/categories", json={"sort": 1, "name": "数码"}, headers=keyed)
    other = gateway.post(f"{API}/categories", json={"name": "家居", "sort": 1}, headers=keyed)

    assert (first.status_code, retried.status_code, retried.get_json()) == (201, 201, first.get_json())
    assert (other.status_code, other.get_json()["error"]["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")
    assert rows(pg_engine) == {"categories": 1, "brands": 0, "settings_audit_log": 1, "outbox": 1,
                               "idempotency_keys": 1}


def test_a_brand_create_retried_with_its_key_answers_the_first_not_brand_exists_and_another_body_is_a_409(
        gateway: FlaskClient, operator: dict[str, str], pg_engine: Engine) -> None:
    keyed = {**operator, "Idempotency-Key": "brand-form-1"}

    first = gateway.post(f"{API}/brands", json={"name": "膳魔师", "logo": "/media/t.png"}, headers=keyed)
    retried = gateway.post(f"{API}/brands", json={"name": "膳魔师", "logo": "/media/t.png"}, headers=keyed)
    other = gateway.post(f"{API}/brands", json={"name": "膳魔师", "logo": ""}, headers=keyed)

    assert (first.status_code, retried.status_code, retried.get_json()) == (201, 201, first.get_json())
    assert (other.status_code, other.get_json()["error"]["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")
    assert rows(pg_engine) == {"categories": 0, "brands": 1, "settings_audit_log": 1, "outbox": 1,
                               "idempotency_keys": 1}


def test_creates_without_a_key_each_create_one(gateway: FlaskClient, operator: dict[str, str],
                                               pg_engine: Engine) -> None:
    categories_made = [gateway.post(f"{API}/categories", json={"name": "数码"}, headers=operator).status_code
                       for _ in range(2)]
    brand_made = gateway.post(f"{API}/brands", json={"name": "膳魔师"}, headers=operator)
    brand_again = gateway.post(f"{API}/brands", json={"name": "膳魔师"}, headers=operator)

    assert (categories_made, brand_made.status_code, brand_again.get_json()["error"]["code"]) == (
        [201, 201], 201, "BRAND_EXISTS")
    assert rows(pg_engine) == {"categories": 2, "brands": 1, "settings_audit_log": 3, "outbox": 3,
                               "idempotency_keys": 0}


def test_a_stock_adjustment_retried_with_its_key_moves_the_units_once_and_another_body_is_a_409(
        gateway: FlaskClient, operator: dict[str, str], pg_uow: UowFactory, pg_engine: Engine) -> None:
    """The retry of a restock whose answer was lost (a 503 after its commit) adds no units again."""
    shelf = Shelf(pg_uow)
    product_id = shelf.product("手机", stock=5)
    [sku_id] = shelf.sku_ids(product_id)
    keyed = {**operator, "Idempotency-Key": "stock-form-1"}
    url = f"{API}/products/{product_id}/skus/{sku_id}/stock"

    first = gateway.post(url, json={"delta": 3, "reason": "补货"}, headers=keyed)
    retried = gateway.post(url, json={"reason": "补货", "delta": 3}, headers=keyed)
    other = gateway.post(url, json={"delta": 4, "reason": "补货"}, headers=keyed)

    assert (first.status_code, first.get_json()["stock"], retried.status_code, retried.get_json()) == (
        200, 8, 200, first.get_json())
    assert (other.status_code, other.get_json()["error"]["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")
    with pg_engine.connect() as conn:
        moves = conn.execute(select(stock_movements.c.kind, stock_movements.c.available)
                             .where(stock_movements.c.sku_id == sku_id).order_by(stock_movements.c.id)).all()
        audited = conn.execute(select(func.count()).select_from(audit_log)
                               .where(audit_log.c.action == "stock")).scalar_one()
    assert (shelf.stock(product_id), [tuple(m) for m in moves], audited) == ([8], [("initial", 5), ("adjust", 3)], 1)


def test_stock_adjustments_without_a_key_each_move_units(gateway: FlaskClient, operator: dict[str, str],
                                                         pg_uow: UowFactory) -> None:
    shelf = Shelf(pg_uow)
    product_id = shelf.product("手机", stock=5)
    [sku_id] = shelf.sku_ids(product_id)

    stocks = [gateway.post(f"{API}/products/{product_id}/skus/{sku_id}/stock", json={"delta": 3},
                           headers=operator).get_json()["stock"] for _ in range(2)]

    assert (stocks, shelf.stock(product_id)) == ([8, 11], [11])
