"""Which phones logged in lately, in a real Redis: fixed-size bitmaps shared by the gateway replicas."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator

import pytest
import redis

from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.knownphones import BITS, KEY_PREFIX, PERIOD_SECONDS, KnownPhones
from gateway.redisstore import RedisStore
from gateway.routes import auth
from tests.fixtures.fake_services import FakeServices
from tests.fixtures.keys import JwtKeys

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
OLD_MARKS = "mall:ratelimit:auth.known_phones:*"  # one sorted set per phone, as the gateway kept them before


@pytest.fixture
def store() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)

    def clear() -> None:
        for pattern in (f"{KEY_PREFIX}*", OLD_MARKS):
            for key in client.scan_iter(pattern):
                client.delete(key)
    clear()
    yield client
    clear()


def test_a_phone_is_known_after_it_logged_in_and_not_before(store: redis.Redis) -> None:
    phones = KnownPhones(b"k" * 32, RedisStore(store))

    before = phones.known("13900000001")
    phones.remember("13900000001")

    assert (before, phones.known("13900000001"), phones.known("13900000002")) == (False, True, False)


def test_a_login_is_known_through_the_two_periods_after_its_own_and_not_in_the_third(store: redis.Redis) -> None:
    start = (time.time() // PERIOD_SECONDS) * PERIOD_SECONDS  # now, so the period's key does not expire at once
    now = [start + PERIOD_SECONDS - 1]
    replica_a, replica_b = (KnownPhones(b"k" * 32, RedisStore(store), clock=lambda: now[0]),
                            KnownPhones(b"k" * 32, RedisStore(redis.Redis.from_url(REDIS_URL)), clock=lambda: now[0]))
    replica_a.remember("13900000001")

    seen = []
    for now[0] in (start + 3 * PERIOD_SECONDS - 1, start + 3 * PERIOD_SECONDS):
        seen.append(replica_b.known("13900000001"))

    assert seen == [True, False]
    period = int(start // PERIOD_SECONDS)
    assert store.expiretime(f"{KEY_PREFIX}{period}") == (period + 3) * PERIOD_SECONDS + 86400


def test_ten_thousand_logins_keep_one_bitmap_of_2_mib_in_redis_and_no_key_per_phone(
        store: redis.Redis, jwt_keys: JwtKeys, fake_services: FakeServices) -> None:
    settings = GatewaySettings.from_env({"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path), "REDIS_URL": REDIS_URL,
                                         "GATEWAY_RATE_LIMIT_SECRET": secrets.token_hex(32)})
    app = create_app(settings, fake_services)

    with app.test_request_context():
        for n in range(10_000):
            auth._remember_login(f"139{n:08d}")

    assert len(list(store.scan_iter(OLD_MARKS, count=1000))) == 0  # no key per phone
    (bitmap,) = store.keys(f"{KEY_PREFIX}*")
    assert store.strlen(bitmap) <= BITS // 8
    # 2 MiB of bits, in at most 3 MiB: Redis grows a string by up to 1 MiB more than it needs.
    assert store.memory_usage(bitmap) <= 3 * BITS // 16 + 1024


def test_an_unreachable_redis_is_stood_in_for_by_this_processs_bitmaps() -> None:
    phones = KnownPhones(b"k" * 32, RedisStore(redis.Redis(port=1, socket_connect_timeout=0.2)))

    phones.remember("13900000001")

    assert (phones.known("13900000001"), phones.known("13900000002")) == (True, False)
    assert [len(bits) for bits in phones.memory.periods.values()] == [BITS // 8]
