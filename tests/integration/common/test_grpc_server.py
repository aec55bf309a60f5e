"""The gRPC server builder with a real servicer: interceptors, error mapping, health, reflection."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from mall.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from services.analytics.db import SqlAnalyticsUnitOfWork, SqlRollups
from services.analytics.grpc_api import AnalyticsServicer
from services.common.config import ServiceSettings
from services.common.grpc_server import create_server, from_grpc, registration
from services.common.metrics import RPC_HANDLED
from services.user.domain import User
from services.user.tokens import TokenIssuer
from tests.fixtures.keys import JwtKeys

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(service_engine: Callable[[str], Engine]) -> Engine:
    return service_engine("analytics")


@pytest.fixture
def channel(engine: Engine, jwt_keys: JwtKeys) -> Iterator[grpc.Channel]:
    servicer = AnalyticsServicer(functools.partial(SqlAnalyticsUnitOfWork, engine, "analytics"))
    settings = ServiceSettings.from_env("analytics", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                      "ANALYTICS_GRPC_LISTEN": "127.0.0.1:0"})
    server, port = create_server(settings, [registration(analytics_pb2, analytics_pb2_grpc, "AnalyticsService",
                                                         servicer)])
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as chan:
        yield chan
    server.stop(grace=None)


def token(jwt_keys: JwtKeys, roles: str) -> str:
    issuer = TokenIssuer(jwt_keys.private_pem, access_ttl_seconds=300, refresh_ttl_seconds=600)
    user = User(phone="13800000000", created_at=datetime.now(UTC), roles=roles, id=7)
    return issuer.access_token(user, user.role_set, datetime.now(UTC))


def overview(channel: grpc.Channel, bearer: str | None, **fields: str) -> analytics_pb2.GetOverviewResponse:
    metadata = [("x-request-id", "req-1")] + ([("authorization", f"Bearer {bearer}")] if bearer else [])
    return analytics_pb2_grpc.AnalyticsServiceStub(channel).GetOverview(
        analytics_pb2.GetOverviewRequest(**fields), metadata=metadata, timeout=5)


def test_a_call_without_a_token_is_unauthenticated_with_a_domain_code(channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        overview(channel, None)

    assert from_grpc(raised.value)[:2] == (grpc.StatusCode.UNAUTHENTICATED, "AUTH_REQUIRED")


def test_a_shopper_token_is_denied(channel: grpc.Channel, jwt_keys: JwtKeys) -> None:
    before = RPC_HANDLED.labels("analytics", "GetOverview", "PERMISSION_DENIED")._value.get()

    with pytest.raises(grpc.RpcError) as raised:
        overview(channel, token(jwt_keys, ""))

    assert from_grpc(raised.value)[:2] == (grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")
    assert RPC_HANDLED.labels("analytics", "GetOverview", "PERMISSION_DENIED")._value.get() == before + 1


def test_finance_queues_a_money_export_and_customer_service_may_not(channel: grpc.Channel, jwt_keys: JwtKeys) -> None:
    stub = analytics_pb2_grpc.AnalyticsServiceStub(channel)
    export = analytics_pb2.CreateReportRequest(kind="money", format="csv", from_date="2026-11-01", to_date="2026-11-30")

    job = stub.CreateReport(export, metadata=[("authorization", f"Bearer {token(jwt_keys, 'finance')}")], timeout=5)
    with pytest.raises(grpc.RpcError) as raised:
        stub.CreateReport(export, metadata=[("authorization", f"Bearer {token(jwt_keys, 'customer_service')}")],
                          timeout=5)

    assert (job.kind, job.status) == ("money", "queued")
    assert from_grpc(raised.value)[:2] == (grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")


def test_a_token_signed_by_another_key_is_rejected(channel: grpc.Channel) -> None:
    other = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    forged = TokenIssuer(other, access_ttl_seconds=300, refresh_ttl_seconds=600).access_token(
        User(phone="13800000000", created_at=datetime.now(UTC), roles="admin", id=1), frozenset({"admin"}),
        datetime.now(UTC))

    with pytest.raises(grpc.RpcError) as raised:
        overview(channel, forged)

    assert from_grpc(raised.value)[:2] == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")


def test_an_admin_gets_the_overview_of_the_period(channel: grpc.Channel, engine: Engine, jwt_keys: JwtKeys) -> None:
    with Session(engine) as session, session.begin():
        for day in (date(2026, 11, 2), date(2026, 11, 2), date(2026, 11, 4), date(2026, 11, 9)):
            SqlRollups(session).add_counters({(day, "new_users"): 1})

    reply = overview(channel, token(jwt_keys, "admin"), from_date="2026-11-01", to_date="2026-11-04")

    assert (reply.from_date, reply.to_date, reply.totals.new_users) == ("2026-11-01", "2026-11-04", 3)
    assert [(d.date, d.figures.new_users) for d in reply.days] == [
        ("2026-11-01", 0), ("2026-11-02", 2), ("2026-11-03", 0), ("2026-11-04", 1)]


def test_bad_input_maps_to_invalid_argument_with_field_details(channel: grpc.Channel, jwt_keys: JwtKeys) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        overview(channel, token(jwt_keys, "admin"), from_date="2026-13-01")

    assert from_grpc(raised.value) == (grpc.StatusCode.INVALID_ARGUMENT, "DATE_INVALID",
                                       "from must be a date like 2026-11-26", {"from": "invalid"})


def test_health_reports_serving_for_the_server_and_the_service(channel: grpc.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)

    statuses = [stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status
                for name in ("", "mall.analytics.v1.AnalyticsService")]

    assert statuses == [health_pb2.HealthCheckResponse.SERVING] * 2


def test_reflection_lists_the_service(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    replies = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                             timeout=5))

    names = {s.name for s in replies[0].list_services_response.service}
    assert {"mall.analytics.v1.AnalyticsService", "grpc.health.v1.Health"} <= names
