"""The catalogue cache version in a real Redis: a change made through one gateway worker reaches every other."""

from __future__ import annotations

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from gateway.catalog_cache import VERSION_KEY, CatalogCache, RedisVersions
from tests.integration.gateway.test_redis_rate_limits import REDIS_URL

pytestmark = pytest.mark.integration


@pytest.fixture
def store() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(VERSION_KEY)
    return client


def test_an_invalidation_in_one_worker_is_a_miss_in_every_other(store: redis.Redis) -> None:
    worker_a, worker_b = CatalogCache(RedisVersions(store)), CatalogCache(RedisVersions(redis.Redis.from_url(REDIS_URL)))
    worker_b.get("product:5", lambda: "549900")

    worker_a.invalidate()  # an admin edit passed through worker A

    assert (worker_b.get("product:5", lambda: "499900"), int(store.get(VERSION_KEY) or 0)) == ("499900", 1)


def test_entries_are_reused_while_the_version_stands(store: redis.Redis) -> None:
    cache = CatalogCache(RedisVersions(store))

    assert [cache.get("k", lambda: "first"), cache.get("k", lambda: "second")] == ["first", "first"]


class CountingRedis(redis.Redis):
    def __init__(self) -> None:
        super().__init__(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
        self.asked = 0

    def get(self, name: object) -> object:
        self.asked += 1
        return super().get(name)  # type: ignore[arg-type]


def test_without_redis_reads_go_to_the_service_and_redis_is_left_alone_a_while() -> None:
    unreachable = CountingRedis()
    cache = CatalogCache(RedisVersions(unreachable, retry_after=60))

    reads = [cache.get("k", lambda: "first"), cache.get("k", lambda: "second")]

    assert (reads, unreachable.asked) == (["first", "second"], 1)


def test_a_worker_asks_redis_at_most_once_per_check_interval_and_sees_its_own_changes_at_once(
        store: redis.Redis) -> None:
    now = [0.0]
    other = redis.Redis.from_url(REDIS_URL)
    worker_a = CatalogCache(RedisVersions(store, fresh_for=0.1, clock=lambda: now[0]))
    worker_b = CatalogCache(RedisVersions(other, fresh_for=0.1, clock=lambda: now[0]))
    worker_b.get("product:5", lambda: "549900")

    worker_a.invalidate()  # an admin edit passed through worker A at t=0
    now[0] = 0.05
    seen_by_b_within = worker_b.get("product:5", lambda: "499900")
    seen_by_a = worker_a.get("product:5", lambda: "499900")
    now[0] = 0.1
    seen_by_b_after = worker_b.get("product:5", lambda: "499900 (reloaded)")

    assert (seen_by_b_within, seen_by_a, seen_by_b_after) == ("549900", "499900", "499900 (reloaded)")
