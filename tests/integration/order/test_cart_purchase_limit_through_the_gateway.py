"""A product's purchase limit (限购) at the cart, through the gateway and a real order gRPC server on PostgreSQL:
adding to the cart or raising a line past it is 422 PURCHASE_LIMIT_EXCEEDED in the error format, with the units the
shopper's orders hold, and the cart is as it was."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from mall.order.v1 import order_pb2, order_pb2_grpc
from sqlalchemy import Engine

from gateway.app import create_app
from gateway.config import GatewaySettings
from services.common.config import ServiceSettings
from services.common.grpc_server import create_server, registration
from services.order.db import SqlOrderUnitOfWork, start_mappers
from services.order.grpc_api import OrderServicer
from services.order.service import OrderSettings
from services.user.domain import User
from services.user.tokens import TokenIssuer
from tests.fakes import FakeCatalog, FakeMembers, FakeStock, FakeUsers
from tests.fixtures.keys import JwtKeys

pytestmark = pytest.mark.integration

API = "/api/v1"
FLASH, PRODUCT, LIMIT = 201, 20, 3
SHOPPER = 1  # verified, address 7 (FakeUsers)


@pytest.fixture
def gateway(pg_engine: Engine, jwt_keys: JwtKeys) -> Iterator[FlaskClient]:
    """The gateway app, its order service a real gRPC server on PostgreSQL selling a product limited to 3."""
    start_mappers()
    catalog = FakeCatalog()
    catalog.put(FLASH, product_id=PRODUCT, price_fen=990, max_per_shopper=LIMIT)
    servicer = OrderServicer(functools.partial(SqlOrderUnitOfWork, pg_engine, "order"), catalog,
                             FakeStock(catalog, {FLASH: 10}), FakeMembers(), FakeUsers(), OrderSettings())
    settings = ServiceSettings.from_env("order", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                  "ORDER_GRPC_LISTEN": "127.0.0.1:0"})
    server, port = create_server(settings, [registration(order_pb2, order_pb2_grpc, "OrderService", servicer)])
    server.start()
    app = create_app(GatewaySettings(jwt_public_key_pem=jwt_keys.public_pem, consul_http_addr=None,
                                     grpc_timeout_seconds=5, log_level="INFO",
                                     environ={"ORDER_GRPC_TARGET": f"127.0.0.1:{port}"}))
    yield app.test_client()
    app.extensions["clients"].close()
    server.stop(grace=None)


@pytest.fixture
def shopper(jwt_keys: JwtKeys) -> dict[str, str]:
    issuer = TokenIssuer(jwt_keys.private_pem, access_ttl_seconds=300, refresh_ttl_seconds=600)
    user = User(phone="13800000000", created_at=datetime.now(UTC), roles="", id=SHOPPER)
    return {"Authorization": f"Bearer {issuer.access_token(user, user.role_set, datetime.now(UTC))}"}


def error(response: Any) -> tuple[int, str, dict[str, Any]]:
    body = response.get_json()["error"]
    return response.status_code, body["code"], body["details"]


def test_adding_or_raising_a_line_past_the_limit_is_a_422_with_the_numbers_and_the_cart_unchanged(
        gateway: FlaskClient, shopper: dict[str, str]) -> None:
    ordered = gateway.post(f"{API}/orders", json={"sku_id": FLASH, "quantity": 1, "address_id": 7},
                           headers={**shopper, "Idempotency-Key": "limit-1"})
    added = gateway.post(f"{API}/cart/items", json={"sku_id": FLASH, "quantity": 2}, headers=shopper)
    assert (ordered.status_code, added.status_code) == (201, 201), (ordered.get_json(), added.get_json())

    more = gateway.post(f"{API}/cart/items", json={"sku_id": FLASH, "quantity": 1}, headers=shopper)
    raised = gateway.patch(f"{API}/cart/items/{added.get_json()['id']}", json={"quantity": 3}, headers=shopper)
    cart = gateway.get(f"{API}/cart", headers=shopper).get_json()["items"]
    lowered = gateway.patch(f"{API}/cart/items/{added.get_json()['id']}", json={"quantity": 1}, headers=shopper)

    expected = {"product_id": PRODUCT, "max_per_shopper": LIMIT, "already": 1, "requested": 3}
    assert [error(more), error(raised)] == [(422, "PURCHASE_LIMIT_EXCEEDED", expected)] * 2
    assert [(item["sku_id"], item["quantity"], item["max_per_shopper"]) for item in cart] == [(FLASH, 2, LIMIT)]
    assert (lowered.status_code, lowered.get_json()["quantity"]) == (200, 1)
