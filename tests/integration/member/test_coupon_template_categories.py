"""Coupon templates name only categories the catalogue has, through the whole stack: the gateway, a real member gRPC
server on PostgreSQL asking a real product gRPC server (PostgreSQL) over the shared clients. Unknown ids are 400
COUPON_TEMPLATE_INVALID naming them, a product service that does not answer is 503; neither creates a template."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient
from mall.member.v1 import member_pb2, member_pb2_grpc
from mall.product.v1 import product_pb2, product_pb2_grpc
from sqlalchemy import Engine

from gateway.app import create_app
from gateway.config import GatewaySettings
from services.common.clients import ServiceClients
from services.common.config import Env, ServiceSettings
from services.common.discovery import Discovery
from services.common.grpc_server import create_server, registration
from services.member.channels import RechargeChannels
from services.member.db import SqlMemberUnitOfWork
from services.member.grpc_api import MemberServicer
from services.member.neighbours import GrpcCategories
from services.product import db as product_db
from services.product.domain import Category
from services.product.grpc_api import ProductServicer
from services.user.domain import User
from services.user.tokens import TokenIssuer
from tests.fakes import FakePhones, SimulatedPayout
from tests.fixtures.keys import JwtKeys

pytestmark = pytest.mark.integration

OPERATOR = 900
TEMPLATE = {"name": "数码满100减10", "kind": "fixed", "amount_fen": 1_000, "threshold_fen": 10_000, "total": 100,
            "valid_from": "2026-01-01T00:00:00Z", "valid_to": "2099-01-01T00:00:00Z"}


@pytest.fixture
def product_server(service_engine: Callable[[str], Engine], jwt_keys: JwtKeys) -> Iterator[tuple[object, int]]:
    """A product gRPC server whose catalogue has categories 1 数码 > 2 手机 and 3 家居."""
    product_db.start_mappers()
    uow = functools.partial(product_db.SqlProductUnitOfWork, service_engine("product"), "product")
    with uow() as work:
        for category in (Category("数码"), Category("手机", parent_id=1), Category("家居")):
            work.categories.add(category)
        work.commit()
    settings = ServiceSettings.from_env("product", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                    "PRODUCT_GRPC_LISTEN": "127.0.0.1:0"})
    server, port = create_server(settings, [registration(product_pb2, product_pb2_grpc, "ProductService",
                                                         ProductServicer(uow))])
    server.start()
    yield server, port
    server.stop(grace=None)


@pytest.fixture
def gateway(uow: Callable[[], SqlMemberUnitOfWork], jwt_keys: JwtKeys,
            product_server: tuple[object, int]) -> Iterator[FlaskClient]:
    """The gateway app, its member service a real gRPC server on PostgreSQL asking the product server."""
    _, product_port = product_server
    clients = ServiceClients(Discovery(None, Env({"PRODUCT_GRPC_TARGET": f"127.0.0.1:{product_port}"})), 2)
    settings = ServiceSettings.from_env("member", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                   "MEMBER_GRPC_LISTEN": "127.0.0.1:0"})
    servicer = MemberServicer(uow, SimulatedPayout(), RechargeChannels({}), categories=GrpcCategories(clients),
                              phones=FakePhones())
    server, port = create_server(settings, [registration(member_pb2, member_pb2_grpc, "MemberService", servicer)])
    server.start()
    app = create_app(GatewaySettings(jwt_public_key_pem=jwt_keys.public_pem, consul_http_addr=None,
                                     grpc_timeout_seconds=5, log_level="INFO",
                                     environ={"MEMBER_GRPC_TARGET": f"127.0.0.1:{port}"}))
    yield app.test_client()
    app.extensions["clients"].close()
    server.stop(grace=None)
    clients.close()


@pytest.fixture
def operator(jwt_keys: JwtKeys) -> dict[str, str]:
    issuer = TokenIssuer(jwt_keys.private_pem, access_ttl_seconds=300, refresh_ttl_seconds=600)
    user = User(phone="13800000000", created_at=datetime.now(UTC), roles="operator", id=OPERATOR)
    return {"Authorization": f"Bearer {issuer.access_token(user, user.role_set, datetime.now(UTC))}"}


def templates(uow: Callable[[], SqlMemberUnitOfWork]) -> int:
    with uow() as work:
        _, total = work.coupons.templates_page("", 0, 10)
    return total


def test_a_template_for_categories_the_catalogue_has_at_any_depth_is_created(
        gateway: FlaskClient, operator: dict[str, str], uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    created = gateway.post("/api/v1/admin/coupons", json={**TEMPLATE, "category_ids": [2, 3]}, headers=operator)

    assert (created.status_code, created.get_json()["category_ids"], templates(uow)) == (201, [2, 3], 1)


def test_a_template_for_categories_the_catalogue_lacks_is_400_naming_them_and_creates_nothing(
        gateway: FlaskClient, operator: dict[str, str], uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    refused = gateway.post("/api/v1/admin/coupons", json={**TEMPLATE, "category_ids": [2, 404, 77]},
                           headers=operator)

    error = refused.get_json()["error"]
    assert (refused.status_code, error["code"], error["details"], templates(uow)) == (
        400, "COUPON_TEMPLATE_INVALID", {"category_ids": "no such categories: 77, 404"}, 0)


def test_a_template_for_categories_while_the_product_service_is_down_is_503_and_creates_nothing(
        gateway: FlaskClient, operator: dict[str, str], uow: Callable[[], SqlMemberUnitOfWork],
        product_server: tuple[object, int]) -> None:
    server, _ = product_server
    server.stop(grace=None)  # type: ignore[attr-defined]

    refused = gateway.post("/api/v1/admin/coupons", json={**TEMPLATE, "category_ids": [2]}, headers=operator)

    error = refused.get_json()["error"]
    assert (refused.status_code, error["code"], bool(error["request_id"]), templates(uow)) == (
        503, "PRODUCT_UNAVAILABLE", True, 0)
