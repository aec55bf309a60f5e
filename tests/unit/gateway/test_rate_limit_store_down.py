"""While Redis, the shared rate-limit store, is unreachable, every limit is still counted: in each worker's memory."""

from __future__ import annotations

import dataclasses
import logging

import grpc
import pytest
import redis
from flask import Flask
from prometheus_client import REGISTRY

from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.ratelimit import FallbackCounter, Limit, MemoryCounter, RateLimiter
from gateway.redisstore import RedisStore
from tests.fixtures.fake_services import FakeServices

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connections are refused at once


@pytest.fixture
def app_without_its_store(settings: GatewaySettings, clients: FakeServices) -> Flask:
    return create_app(dataclasses.replace(settings, redis_url=UNREACHABLE_REDIS, rate_limit_secret="s" * 32), clients)


def fallbacks() -> float:
    return REGISTRY.get_sample_value("mall_rate_limit_store_fallbacks_total") or 0.0


def test_sms_codes_to_many_phones_from_one_address_are_still_limited(
        app_without_its_store: Flask, clients: FakeServices) -> None:
    client = app_without_its_store.test_client()

    replies = [client.post("/api/v1/auth/sms-codes", json={"phone": f"138{n:08d}", "purpose": "login"},
                           environ_base={"REMOTE_ADDR": "198.51.100.9"}).status_code for n in range(25)]

    assert replies == [202] * 20 + [429] * 5
    assert len(clients.user.SendSmsCode.calls) == 20


def test_wrong_passwords_for_one_account_are_still_stopped_after_twenty(
        app_without_its_store: Flask, clients: FakeServices, rpc_error) -> None:  # type: ignore[no-untyped-def]
    clients.user.LoginWithPassword.error = rpc_error(grpc.StatusCode.UNAUTHENTICATED, "phone or password is wrong")
    client = app_without_its_store.test_client()

    replies = [client.post("/api/v1/auth/login/password", json={"phone": "13800000001", "password": f"guess-{n}"},
                           environ_base={"REMOTE_ADDR": f"198.51.100.{n}"}).status_code for n in range(25)]

    assert replies == [401] * 20 + [429] * 5
    assert len(clients.user.LoginWithPassword.calls) == 20


class FlakyStore:
    """A stand-in for the Redis counter that is down until `.up` is set, logging into its own memory when up."""

    def __init__(self) -> None:
        self.up, self.calls, self.memory = False, 0, MemoryCounter()

    def take(self, bucket: str, count: int, seconds: int, now: float) -> float | None:
        self.calls += 1
        if not self.up:
            raise redis.ConnectionError("connection refused")
        return self.memory.take(bucket, count, seconds, now)


def test_falling_back_is_logged_once_and_counted_in_a_metric(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limiter = RateLimiter(FallbackCounter(FlakyStore(), MemoryCounter(),  # type: ignore[arg-type]
                                          RedisStore(None, clock=lambda: now[0])))  # type: ignore[arg-type]
    before = fallbacks()

    with caplog.at_level(logging.WARNING, logger="gateway.redisstore"):
        for now[0] in (0.0, 5.0, 10.0):
            limiter.check("e", (Limit("ip", 5, 60),), {"ip": "203.0.113.7"})

    assert [r.getMessage() for r in caplog.records] == [
        "Redis unavailable (ConnectionError): rate limits counted per gateway worker, staff tokens refused, "
        "catalogue served uncached; asked again every 5s"]
    assert fallbacks() - before == 3


def test_the_store_is_left_alone_for_five_seconds_after_a_failure_then_used_again_once_it_answers() -> None:
    store, now = FlakyStore(), [0.0]
    limiter = RateLimiter(FallbackCounter(store, MemoryCounter(),  # type: ignore[arg-type]
                                          RedisStore(None, retry_after=5, clock=lambda: now[0])))  # type: ignore[arg-type]
    limits, values = (Limit("ip", 5, 60),), {"ip": "203.0.113.7"}

    for now[0] in (0.0, 4.9):
        limiter.check("e", limits, values)
    store.up = True
    for now[0] in (5.0, 6.0):
        limiter.check("e", limits, values)

    assert store.calls == 3  # at 0 (refused), not at 4.9, at 5 and 6 (it answered)
    assert len(next(iter(store.memory._buckets.values()))[0]) == 2
