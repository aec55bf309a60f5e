"""Paid SMS codes: capped per address a day (per /48 too for IPv6) and by a daily budget for all clients together."""

from __future__ import annotations

import dataclasses

import grpc
import pytest
from flask.testing import FlaskClient
from prometheus_client import REGISTRY

from gateway.app import create_app
from gateway.config import GatewaySettings
from services.common.config import ConfigError
from tests.fixtures.fake_services import FakeServices
from tests.unit.gateway.conftest import FrozenClock

DAY = 86400


def ask_code(client: FlaskClient, n: int, ip: str):  # type: ignore[no-untyped-def]
    """A code for the n-th of many phones, asked from `ip`."""
    return client.post("/api/v1/auth/sms-codes", json={"phone": f"138{n:08d}", "purpose": "login"},
                       environ_base={"REMOTE_ADDR": ip})


def sms_codes(result: str) -> float:
    return REGISTRY.get_sample_value("mall_sms_codes_total", {"result": result}) or 0.0


def test_one_address_gets_200_codes_a_day_however_slowly_it_asks(client: FlaskClient, frozen_clock: FrozenClock) -> None:
    start = frozen_clock.now
    replies = []
    for n in range(201):
        frozen_clock.now = start + 60 * (n // 20)  # 20 a minute, the per-minute limit
        replies.append(ask_code(client, n, "198.51.100.9"))
    frozen_clock.now = start + DAY

    next_day = ask_code(client, 999, "198.51.100.9")

    assert [r.status_code for r in replies] == [202] * 200 + [429]
    assert (replies[-1].json["error"]["code"], replies[-1].headers["Retry-After"]) == ("RATE_LIMITED", str(DAY - 600))
    assert next_day.status_code == 202


def test_an_ipv6_slash_48_gets_1000_codes_a_day_however_many_slash_64s_it_spreads_them_over(
        client: FlaskClient, clients: FakeServices) -> None:
    replies = [ask_code(client, n, f"2001:db8:7:{n // 20:x}::1").status_code for n in range(1001)]

    other_site = ask_code(client, 1001, "2001:db8:8::1")

    assert replies == [202] * 1000 + [429]
    assert other_site.status_code == 202
    assert len(clients.user.SendSmsCode.calls) == 1001


@pytest.fixture
def budget_of_three(settings: GatewaySettings, clients: FakeServices) -> FlaskClient:
    return create_app(dataclasses.replace(settings, sms_daily_budget=3), clients).test_client()


def test_past_the_days_budget_no_client_gets_a_code(budget_of_three: FlaskClient, clients: FakeServices,
                                                     frozen_clock: FrozenClock) -> None:
    sent_before, refused_before = sms_codes("sent"), sms_codes("budget_exhausted")
    start = frozen_clock.now
    replies = []
    for n in range(4):
        frozen_clock.now = start + 3600 * n
        replies.append(ask_code(budget_of_three, n, f"198.51.100.{n}"))

    assert [r.status_code for r in replies] == [202, 202, 202, 429]
    assert replies[-1].json["error"]["code"] == "SMS_DAILY_BUDGET_EXHAUSTED"
    assert replies[-1].headers["Retry-After"] == str(DAY - 3 * 3600)  # when the first code is a day old
    assert len(clients.user.SendSmsCode.calls) == 3
    assert (sms_codes("sent") - sent_before, sms_codes("budget_exhausted") - refused_before) == (3, 1)


def test_codes_the_user_service_refused_do_not_spend_the_budget(budget_of_three: FlaskClient, clients: FakeServices,
                                                                rpc_error) -> None:  # type: ignore[no-untyped-def]
    clients.user.SendSmsCode.error = rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "wait before asking again")
    refused = [ask_code(budget_of_three, n, f"198.51.100.{n}").status_code for n in range(5)]
    clients.user.SendSmsCode.error = None

    sent = [ask_code(budget_of_three, n, f"198.51.100.{n}").status_code for n in range(3)]

    assert (refused, sent) == ([429] * 5, [202] * 3)


@pytest.mark.parametrize("budget", ["0", "-5", "lots"])
def test_the_sms_budget_must_be_a_positive_number(tmp_path, budget: str) -> None:  # type: ignore[no-untyped-def]
    key = tmp_path / "public.pem"
    key.write_bytes(b"k")

    with pytest.raises(ConfigError, match="GATEWAY_SMS_DAILY_BUDGET"):
        GatewaySettings.from_env({"JWT_PUBLIC_KEY_FILE": str(key), "GATEWAY_SMS_DAILY_BUDGET": budget})


def test_the_sms_budget_is_read_from_the_environment(tmp_path) -> None:  # type: ignore[no-untyped-def]
    key = tmp_path / "public.pem"
    key.write_bytes(b"k")

    settings = GatewaySettings.from_env({"JWT_PUBLIC_KEY_FILE": str(key), "GATEWAY_SMS_DAILY_BUDGET": "2500"})

    assert settings.sms_daily_budget == 2500


def test_the_budget_metric_says_the_budget_in_force(budget_of_three: FlaskClient) -> None:
    assert REGISTRY.get_sample_value("mall_sms_daily_budget") == 3


def test_the_api_document_lists_the_sms_caps_and_the_budgets_error_code(client: FlaskClient) -> None:
    description = client.get("/openapi.json").json["paths"]["/api/v1/auth/sms-codes"]["post"]["description"]

    assert description == (
        "All clients together get GATEWAY_SMS_DAILY_BUDGET codes sent in any 24 hours (default 10000); past it, 429 "
        "SMS_DAILY_BUDGET_EXHAUSTED with Retry-After. Rate limits (sliding windows): 20 in any 60s per ip; 200 in any "
        "86400s per ip; 1000 in any 86400s per ipv6_48; 10 in any 3600s per phone+ip (429 RATE_LIMITED with "
        "Retry-After).")
