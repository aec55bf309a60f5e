"""Catalogue changes shared through a real Redis: a change made through one gateway worker reaches every other,
which drops what it names (one product's pages and the lists, or everything) or, when it may have missed some,
everything."""

from __future__ import annotations

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from gateway.catalog_cache import ANY_PRODUCT, CHANGES_KEPT, CHANGES_KEY, SETTINGS, CatalogCache, RedisChangeLog
from gateway.redisstore import RedisStore
from tests.integration.gateway.test_redis_rate_limits import REDIS_URL

pytestmark = pytest.mark.integration

# A page of product 5, of product 6, a list (any product may be on it) and the category tree (no product).
PAGES = {("product", 5, ""): 5, ("product", 6, ""): 6, ("products", "{}"): ANY_PRODUCT, "categories": SETTINGS}


@pytest.fixture
def store() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(CHANGES_KEY)
    RedisChangeLog(RedisStore(client)).record(1)  # an earlier change: the log is empty only until the first one
    return client


def worker(client: redis.Redis | None = None, retry_after: float = 5.0, **options: float) -> CatalogCache:
    """A gateway worker's cache: its own connection to the Redis every worker shares."""
    store = RedisStore(client or redis.Redis.from_url(REDIS_URL), retry_after=retry_after)
    return CatalogCache(changes=RedisChangeLog(store, **options))  # type: ignore[arg-type]


def cache_every_page(cache: CatalogCache) -> None:
    for key, about in PAGES.items():
        cache.get(key, lambda: "cached", about=about)


def pages_now(cache: CatalogCache) -> dict[object, str]:
    """What the worker answers for each page now ("reloaded": it had dropped the page)."""
    return {key: cache.get(key, lambda: "reloaded", about=about) for key, about in PAGES.items()}


def test_a_product_edited_through_one_worker_drops_only_its_pages_and_the_lists_in_another(
        store: redis.Redis) -> None:
    worker_a, worker_b = worker(store), worker()
    cache_every_page(worker_b)

    worker_a.invalidate(5)  # an admin price edit of product 5 passed through worker A

    assert pages_now(worker_b) == {("product", 5, ""): "reloaded", ("product", 6, ""): "cached",
                                   ("products", "{}"): "reloaded", "categories": "cached"}


def test_a_catalogue_wide_change_in_one_worker_drops_every_page_in_another(store: redis.Redis) -> None:
    worker_a, worker_b = worker(store), worker()
    cache_every_page(worker_b)

    worker_a.invalidate()  # a brand renamed through worker A

    assert pages_now(worker_b) == dict.fromkeys(PAGES, "reloaded")


def test_entries_are_reused_while_nothing_changes(store: redis.Redis) -> None:
    cache = worker(store)

    assert [cache.get("k", lambda: "first"), cache.get("k", lambda: "second")] == ["first", "first"]


def test_a_worker_that_missed_more_changes_than_redis_keeps_drops_everything(store: redis.Redis) -> None:
    worker_a, worker_b = worker(store), worker()
    cache_every_page(worker_b)

    for product_id in range(100, 100 + CHANGES_KEPT):  # none of them product 5 or 6
        worker_a.invalidate(product_id)

    assert pages_now(worker_b) == dict.fromkeys(PAGES, "reloaded")


@pytest.mark.parametrize("then", ["nothing", "a change of product 7"])
def test_a_worker_drops_everything_when_redis_lost_the_changes(then: str, store: redis.Redis) -> None:
    worker_a, worker_b = worker(store), worker()
    cache_every_page(worker_b)

    store.delete(CHANGES_KEY)  # Redis restarted without persistence (or was flushed)
    if then != "nothing":
        worker_a.invalidate(7)

    assert pages_now(worker_b) == dict.fromkeys(PAGES, "reloaded")


class CountingRedis(redis.Redis):
    def __init__(self) -> None:
        super().__init__(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
        self.asked = 0

    def xrevrange(self, *args: object, **kwargs: object) -> object:
        self.asked += 1
        return super().xrevrange(*args, **kwargs)  # type: ignore[arg-type]


def test_without_redis_reads_go_to_the_service_and_redis_is_left_alone_a_while() -> None:
    unreachable = CountingRedis()
    cache = worker(unreachable, retry_after=60)

    reads = [cache.get("k", lambda: "first"), cache.get("k", lambda: "second")]

    assert (reads, unreachable.asked) == (["first", "second"], 1)


def test_a_worker_asks_redis_at_most_once_per_check_interval_and_sees_its_own_changes_at_once(
        store: redis.Redis) -> None:
    now = [0.0]
    worker_a = worker(store, fresh_for=0.1, clock=lambda: now[0])
    worker_b = worker(fresh_for=0.1, clock=lambda: now[0])
    worker_b.get(("product", 5, ""), lambda: "549900", about=5)

    worker_a.invalidate(5)  # an admin edit passed through worker A at t=0
    now[0] = 0.05
    seen_by_b_within = worker_b.get(("product", 5, ""), lambda: "499900", about=5)
    seen_by_a = worker_a.get(("product", 5, ""), lambda: "499900", about=5)
    now[0] = 0.1
    seen_by_b_after = worker_b.get(("product", 5, ""), lambda: "499900 (reloaded)", about=5)

    assert (seen_by_b_within, seen_by_a, seen_by_b_after) == ("549900", "499900", "499900 (reloaded)")
