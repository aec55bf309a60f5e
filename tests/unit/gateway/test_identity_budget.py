"""The shop's daily budget of real-name checks (each a paid call to the identity provider), all accounts together."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import grpc
import pytest
from flask import Flask
from flask.testing import FlaskClient
from google.protobuf.timestamp_pb2 import Timestamp
from mall.user.v1 import user_pb2
from prometheus_client import REGISTRY

from gateway.app import create_app
from gateway.config import GatewaySettings
from services.common.config import ConfigError
from services.common.grpc_server import CODE_KEY, DETAILS_KEY
from tests.fixtures.fake_services import FakeServices
from tests.unit.gateway.test_rate_limit_store_down import UNREACHABLE_REDIS

IDENTITY = "/api/v1/me/identity"
BUDGET = 3
VERIFIED = user_pb2.Verification(verified=True, real_name_masked="张*", id_number_masked="1101**********002X",
                                 verified_at=Timestamp(seconds=1_795_680_000))


@pytest.fixture
def app(settings: GatewaySettings, clients: FakeServices) -> Flask:
    clients.user.VerifyIdentity.reply = VERIFIED
    return create_app(dataclasses.replace(settings, identity_daily_budget=BUDGET), clients)


@pytest.fixture
def verify(app: Flask, bearer: Callable[..., dict[str, str]]) -> Callable[[int], object]:
    """verify(n): shopper n verifies from an address of their own."""
    client = app.test_client()

    def post(n: int):  # type: ignore[no-untyped-def]
        return client.post(IDENTITY, json={"real_name": "张三", "id_number": "11010519491231002X"},
                           headers=bearer(user_id=1000 + n), environ_base={"REMOTE_ADDR": f"198.51.100.{n}"})
    return post


def test_checks_past_the_days_budget_are_refused_before_the_user_service(verify, clients: FakeServices) -> None:  # type: ignore[no-untyped-def]
    statuses = [verify(n).status_code for n in range(BUDGET)]
    refused = verify(BUDGET)

    assert (statuses, refused.status_code, refused.get_json()["error"]["code"]) == (
        [200] * BUDGET, 429, "IDENTITY_DAILY_BUDGET_EXHAUSTED")
    assert 1 <= int(refused.headers["Retry-After"]) <= 86_400
    assert len(clients.user.VerifyIdentity.calls) == BUDGET


def test_the_budget_has_room_again_once_the_days_oldest_check_is_a_day_old(verify, frozen_clock) -> None:  # type: ignore[no-untyped-def]
    for n in range(BUDGET):
        verify(n)
        frozen_clock.now += 3600

    frozen_clock.now += 86_400 - BUDGET * 3600

    assert verify(BUDGET).status_code == 200


@pytest.mark.parametrize(("status", "code", "details", "answered"), [
    (grpc.StatusCode.FAILED_PRECONDITION, "IDENTITY_MISMATCH", None, 422),
    # the provider's own refusal of the number or name (FaceID -2, -3), after it was paid
    (grpc.StatusCode.INVALID_ARGUMENT, "IDENTITY_ID_NUMBER_INVALID", None, 400),
    (grpc.StatusCode.INVALID_ARGUMENT, "IDENTITY_NAME_INVALID", None, 400),
    # a concurrent check verified the account while the provider answered this one
    (grpc.StatusCode.ABORTED, "IDENTITY_ALREADY_VERIFIED", '{"provider_checked": true}', 409),
])
def test_answers_after_the_provider_spend_the_budget_as_it_was_paid(verify, clients: FakeServices, rpc_error,  # type: ignore[no-untyped-def]
                                                                     status: grpc.StatusCode, code: str,
                                                                     details: str | None, answered: int) -> None:
    trailers = ((CODE_KEY, code),) + (((DETAILS_KEY, details),) if details else ())
    clients.user.VerifyIdentity.error = rpc_error(status, "refused", trailers)
    statuses = [verify(n).status_code for n in range(BUDGET + 1)]

    assert statuses == [answered] * BUDGET + [429]


@pytest.mark.parametrize(("status", "code"), [
    (grpc.StatusCode.FAILED_PRECONDITION, "IDENTITY_ALREADY_VERIFIED"),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, "IDENTITY_CHECKS_EXHAUSTED"),
    (grpc.StatusCode.INVALID_ARGUMENT, "ID_NUMBER_INVALID"),
    (grpc.StatusCode.UNAVAILABLE, ""),  # the user service is down: nothing reached the provider
])
def test_refusals_before_the_provider_spend_none_of_the_budget(verify, clients: FakeServices, rpc_error,  # type: ignore[no-untyped-def]
                                                                status: grpc.StatusCode, code: str) -> None:
    clients.user.VerifyIdentity.error = rpc_error(status, "refused", ((CODE_KEY, code),) if code else ())
    for n in range(BUDGET + 2):
        verify(n)
    clients.user.VerifyIdentity.error = None

    assert verify(99).status_code == 200


def test_while_redis_is_down_the_budget_is_still_counted_in_the_workers_memory(
        settings: GatewaySettings, clients: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    clients.user.VerifyIdentity.reply = VERIFIED
    client: FlaskClient = create_app(dataclasses.replace(
        settings, identity_daily_budget=BUDGET, redis_url=UNREACHABLE_REDIS, rate_limit_secret="s" * 32),
        clients).test_client()

    statuses = [client.post(IDENTITY, json={"real_name": "张三", "id_number": "11010519491231002X"},
                            headers=bearer(user_id=1000 + n), environ_base={"REMOTE_ADDR": f"198.51.100.{n}"}).status_code
                for n in range(BUDGET + 1)]

    assert statuses == [200] * BUDGET + [429]


def test_the_budget_is_read_from_the_environment_within_bounds(tmp_path) -> None:  # type: ignore[no-untyped-def]
    key = tmp_path / "public.pem"
    key.write_bytes(b"k")

    def settings(**environ: str) -> GatewaySettings:
        return GatewaySettings.from_env({"JWT_PUBLIC_KEY_FILE": str(key), **environ})

    assert (settings().identity_daily_budget, settings(GATEWAY_IDENTITY_DAILY_BUDGET="250").identity_daily_budget) == (
        1000, 250)
    with pytest.raises(ConfigError, match="GATEWAY_IDENTITY_DAILY_BUDGET"):
        settings(GATEWAY_IDENTITY_DAILY_BUDGET="0")


def test_the_budget_metric_says_the_budget_in_force(app: Flask) -> None:
    assert REGISTRY.get_sample_value("mall_identity_daily_budget") == BUDGET
