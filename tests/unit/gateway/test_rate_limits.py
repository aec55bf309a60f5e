"""Rate limits on the auth endpoints: per client IP and per phone, 429 with Retry-After."""

from __future__ import annotations

import dataclasses

import pytest
import redis
from flask.testing import FlaskClient

from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.ratelimit import Limit, MemoryCounter, RateLimiter

SMS = "/api/v1/auth/sms-codes"


def ask_code(client: FlaskClient, phone: str, ip: str = "203.0.113.7", **headers: str):  # type: ignore[no-untyped-def]
    return client.post(SMS, json={"phone": phone, "purpose": "login"}, environ_base={"REMOTE_ADDR": ip},
                       headers=headers)


def test_the_21st_code_request_from_one_ip_within_a_minute_is_refused(client: FlaskClient, clients) -> None:  # type: ignore[no-untyped-def]
    replies = [ask_code(client, f"139000000{n:02d}") for n in range(21)]

    assert [r.status_code for r in replies] == [202] * 20 + [429]
    assert replies[-1].json["error"]["code"] == "RATE_LIMITED"
    assert 1 <= int(replies[-1].headers["Retry-After"]) <= 60
    assert len(clients.user.SendSmsCode.calls) == 20  # the refused one never reached the service


def test_a_phone_is_limited_across_ips(client: FlaskClient) -> None:
    replies = [ask_code(client, "13900000001", ip=f"198.51.100.{n}") for n in range(6)]

    assert [r.status_code for r in replies] == [202] * 5 + [429]


def test_another_ip_is_not_held_back_by_a_busy_one(client: FlaskClient) -> None:
    for n in range(21):
        ask_code(client, f"139000000{n:02d}", ip="203.0.113.7")

    assert ask_code(client, "13911111111", ip="203.0.113.8").status_code == 202


def test_behind_a_trusted_proxy_the_forwarded_client_ip_is_limited(settings: GatewaySettings, clients) -> None:  # type: ignore[no-untyped-def]
    client = create_app(dataclasses.replace(settings, proxy_hops=1), clients).test_client()

    replies = [ask_code(client, f"139000000{n:02d}", ip="10.0.0.1", **{"X-Forwarded-For": "203.0.113.9"})
               for n in range(20)]
    other = ask_code(client, "13911111111", ip="10.0.0.1", **{"X-Forwarded-For": "203.0.113.10"})
    refused = ask_code(client, "13922222222", ip="10.0.0.1", **{"X-Forwarded-For": "203.0.113.9"})

    assert {r.status_code for r in replies} == {202}
    assert (other.status_code, refused.status_code) == (202, 429)


def test_without_trusted_proxies_a_forged_forwarded_header_changes_nothing(client: FlaskClient) -> None:
    replies = [ask_code(client, f"139000000{n:02d}", **{"X-Forwarded-For": f"192.0.2.{n}"}) for n in range(21)]

    assert replies[-1].status_code == 429


def test_memory_counter_starts_afresh_in_the_next_window() -> None:
    counter, limit = MemoryCounter(), Limit("ip", 2, 60)

    waits = [counter.hit("b", limit, now) for now in (120.0, 130.0, 170.5, 180.0)]

    assert waits == [None, None, 10, None]


class BrokenStore:
    def hit(self, bucket: str, limit: Limit, now: float) -> int | None:
        raise redis.ConnectionError("down")


def test_an_unreachable_counter_store_lets_requests_through() -> None:
    limiter = RateLimiter(BrokenStore())

    assert limiter.check("auth.send_sms_code", (Limit("ip", 1, 60),), {"ip": "203.0.113.7"}) is None


@pytest.mark.parametrize("values", [{}, {"ip": ""}])
def test_a_request_without_the_key_is_not_counted(values: dict[str, str]) -> None:
    counter = MemoryCounter()
    limiter = RateLimiter(counter)

    results = [limiter.check("e", (Limit("ip", 1, 60),), values) for _ in range(3)]

    assert results == [None, None, None]
    assert counter._windows == {}
