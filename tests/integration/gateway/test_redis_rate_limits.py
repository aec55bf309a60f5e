"""Rate-limit counters in a real Redis, shared by gateway replicas."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import secrets
import time
import uuid

import pytest
import redis
from flask.testing import FlaskClient

from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.knownphones import KEY_PREFIX, PERIOD_SECONDS
from gateway.ratelimit import FailureGuard, FallbackCounter, Limit, MemoryCounter, RateLimiter, RedisCounter
from gateway.redisstore import RedisStore
from tests.fixtures.fake_services import FakeServices
from tests.fixtures.keys import JwtKeys

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def endpoint() -> str:
    return f"test-{uuid.uuid4().hex}"


def test_two_replicas_share_one_count(endpoint: str) -> None:
    shared_secret = b"k" * 32  # GATEWAY_RATE_LIMIT_SECRET, the same in every replica
    replica_a, replica_b = (RateLimiter(RedisCounter(redis.Redis.from_url(REDIS_URL)), key=shared_secret),
                            RateLimiter(RedisCounter(redis.Redis.from_url(REDIS_URL)), key=shared_secret))
    limits = (Limit("phone", 3, 60),)

    results = [replica.check(endpoint, limits, {"phone": "13900000001"})
               for replica in (replica_a, replica_b, replica_a, replica_b)]

    assert results[:3] == [None, None, None]
    assert results[3] is not None and 1 <= results[3] <= 60


def test_a_bucket_expires_a_window_after_its_latest_event(endpoint: str) -> None:
    counter = RedisCounter(redis.Redis.from_url(REDIS_URL))

    counter.take(f"{endpoint}:ip:somehash", 5, 30, now=time.time())

    (key,) = counter.client.keys(f"mall:ratelimit:{endpoint}:*")
    assert 0 < counter.client.pttl(key) <= 30_000


def test_a_limit_holds_across_the_instant_a_fixed_window_would_start_afresh(endpoint: str) -> None:
    limiter, limits = RateLimiter(RedisCounter(redis.Redis.from_url(REDIS_URL))), (Limit("ip", 2, 60),)
    base = (time.time() // 60) * 60  # recent, so the events are not older than their own window

    waits = [limiter.check(endpoint, limits, {"ip": "203.0.113.7"}, now=base + offset)
             for offset in (58.0, 59.0, 61.0, 118.0, 119.0)]

    assert waits == [None, None, 57, None, None]


def test_a_bucket_keeps_only_the_newest_events_a_decision_needs(endpoint: str) -> None:
    counter, now = RedisCounter(redis.Redis.from_url(REDIS_URL)), time.time()

    for n in range(10):
        counter.add(f"{endpoint}:phone:h", 3, 3600, now=now + n)

    (key,) = counter.client.keys(f"mall:ratelimit:{endpoint}:*")
    assert [score for _, score in counter.client.zrange(key, 0, -1, withscores=True)] == [now + 7, now + 8, now + 9]
    assert counter.full_until(f"{endpoint}:phone:h", 3, 3600, now=now + 10) == now + 7 + 3600


def test_an_unreachable_redis_is_stood_in_for_by_this_process(endpoint: str) -> None:
    store = RedisStore.from_url("redis://127.0.0.1:1/0")
    limiter = RateLimiter(FallbackCounter(RedisCounter(store.client), MemoryCounter(), store))

    waits = [limiter.check(endpoint, (Limit("ip", 1, 60),), {"ip": "203.0.113.7"}, now=0.0) for _ in range(2)]

    assert waits == [None, 60]
    with pytest.raises(redis.RedisError):
        limiter.counter.primary.take("x", 1, 60, 0.0)  # type: ignore[attr-defined]


def test_failures_and_trusted_addresses_are_shared_between_replicas(endpoint: str) -> None:
    shared_secret = b"k" * 32
    replica_a, replica_b = (RateLimiter(RedisCounter(redis.Redis.from_url(REDIS_URL)), key=shared_secret),
                            RateLimiter(RedisCounter(redis.Redis.from_url(REDIS_URL)), key=shared_secret))
    guard = FailureGuard(failures=Limit("phone", 3, 3600), trusted=Limit("phone+ip", 1, 86400))
    stranger = {"phone": "13900000001", "ip": "198.51.100.1"}
    owner = {"phone": "13900000001", "ip": "203.0.113.5"}
    guard.record(replica_a, endpoint, owner, guard.admit(replica_a, endpoint, owner), succeeded=True)

    for _ in range(3):
        admitted = guard.admit(replica_b, endpoint, stranger)
        assert admitted.wait is None
        guard.record(replica_b, endpoint, stranger, admitted, succeeded=False)

    assert guard.admit(replica_a, endpoint, stranger).wait is not None
    assert guard.admit(replica_a, endpoint, owner).wait is None


def test_a_burst_of_guesses_in_flight_at_once_across_replicas_lets_only_the_ceiling_through(endpoint: str) -> None:
    shared_secret = b"k" * 32
    replicas = [RateLimiter(RedisCounter(redis.Redis.from_url(REDIS_URL)), key=shared_secret) for _ in range(2)]
    guard = FailureGuard(failures=Limit("phone", 3, 3600), trusted=Limit("phone+ip", 1, 86400))
    strangers = [{"phone": "13900000002", "ip": f"198.51.100.{n}"} for n in range(5)]

    admitted = [guard.admit(replicas[n % 2], endpoint, stranger) for n, stranger in enumerate(strangers)]
    guard.record(replicas[0], endpoint, strangers[0], admitted[0], succeeded=None)  # no answer: not a failure

    assert [a.wait is None for a in admitted] == [True, True, True, False, False]
    assert guard.admit(replicas[1], endpoint, strangers[4]).wait is None


def gateway_replica(settings: GatewaySettings) -> FlaskClient:
    """One gateway as gunicorn would build it from the environment; no service is ever called."""
    return create_app(settings).test_client()


def test_two_gateway_apps_on_one_redis_share_the_count_and_keep_it_in_redis(
        jwt_keys: JwtKeys, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = secrets.token_hex(32)  # this test's own bucket names
    settings = GatewaySettings.from_env({"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path), "REDIS_URL": REDIS_URL,
                                         "GATEWAY_RATE_LIMIT_SECRET": secret})
    # Per IP: 20 a minute, scaled to 5. One fixed instant, so the requests share one window.
    settings = dataclasses.replace(settings, rate_limit_scale=0.25)
    instant = time.time()
    monkeypatch.setattr("gateway.ratelimit.clock", lambda: instant)
    replica_a, replica_b = gateway_replica(settings), gateway_replica(settings)

    def ask(replica: FlaskClient) -> int:
        # A body that is not JSON is refused (415) after the per-IP limit counted it: no service is called.
        return replica.post("/api/v1/auth/sms-codes", data=b"", environ_base={"REMOTE_ADDR": "198.51.100.77"}).status_code

    counted = [ask(replica) for replica in (replica_a, replica_b, replica_a, replica_b, replica_a)]
    refused = (ask(replica_b), ask(replica_a))

    assert (counted, refused) == ([415] * 5, (429, 429))
    store = redis.Redis.from_url(REDIS_URL)
    address_digest = hmac.new(secret.encode(), b"198.51.100.77", hashlib.sha256).hexdigest()[:24]
    keys = store.keys(f"mall:ratelimit:*:ip/60:{address_digest}")
    assert [store.zcard(key) for key in keys] == [5]  # every request both replicas let through, in one key


def test_replicas_share_the_sms_budget_and_which_phones_logged_in_lately(
        jwt_keys: JwtKeys, fake_services: FakeServices, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = secrets.token_hex(32)
    settings = GatewaySettings.from_env({"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path), "REDIS_URL": REDIS_URL,
                                         "GATEWAY_RATE_LIMIT_SECRET": secret, "GATEWAY_SMS_DAILY_BUDGET": "10"})
    instant = time.time()
    monkeypatch.setattr("gateway.ratelimit.clock", lambda: instant)
    replica_a, replica_b = create_app(settings, fake_services).test_client(), create_app(settings, fake_services).test_client()

    def ask(replica: FlaskClient, phone: str) -> int:
        return replica.post("/api/v1/auth/sms-codes", json={"phone": phone, "purpose": "login"},
                            environ_base={"REMOTE_ADDR": f"198.51.100.{phone[-2:]}"}).status_code

    assert replica_a.post("/api/v1/auth/login/sms", json={"phone": "13900000099", "code": "123456"}).status_code == 200
    new_phones = [ask((replica_a, replica_b)[n % 2], f"138000000{n:02d}") for n in range(8)]
    returning = [ask(replica, "13900000099") for replica in (replica_b, replica_a, replica_b, replica_a)]

    assert (new_phones, returning) == ([202] * 7 + [429], [202, 202, 202, 429])
    assert len(fake_services.user.SendSmsCode.calls) == 10
    store = redis.Redis.from_url(REDIS_URL)
    phone_digest = hmac.new(secret.encode(), b"13900000099", hashlib.sha256).hexdigest()[:24]
    assert store.keys(f"*{phone_digest}*") == []  # the login left no key of its own: a bit in the period's bitmap
    assert store.delete(f"{KEY_PREFIX}{int(instant // PERIOD_SECONDS)}") == 1
