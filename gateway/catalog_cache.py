"""The gateway's catalogue read cache: shopper reads served from process memory, dropped on every change.

Product detail and list pages are the hottest routes of a shop, and one gRPC hop costs the
gateway most of its throughput. Each gunicorn worker keeps the replies it built (a dict per
process) for at most `ttl` seconds and drops them all when the catalogue changes:

- Every entry carries the *catalogue version* read before its reply was loaded. The version lives
  in Redis (`mall:catalog:version`, on the rate limiter's connection) when REDIS_URL is set, so
  every worker of every replica sees one number; without Redis (one worker, `make run`) it is a
  counter in the process. A worker reads it at most every CATALOG_VERSION_CHECK_MS (100): a bumped
  version turns every older entry into a miss. A reply loaded while a change commits keeps the old version and is never served
  after the bump.
- The gateway bumps the version itself after each admin catalogue write it passes on (edit, audit,
  shelf, stock, categories, brands, delivery table): the next read, on any worker, sees the change.
- `product-changed` events (published by the product service in the transaction of every audited
  change and of every reservation or release that moves a SKU across in_stock / low / sold_out, and
  one catalogue-wide event, `catalog_wide` with product_id 0, for a brand, category or delivery-table
  change, however many products it touches) reach each worker through a group-less Kafka consumer
  reading the topic's tail; each worker drops all its entries on any of them, so a catalogue-wide
  event needs no handling of its own (pages embed brand names, category filters, delivery estimates). Group-less: no rebalances, no offsets, nothing to clean up when a worker dies;
  an event missed while the consumer reconnects is covered by the TTL.
- The TTL bounds whatever the events do not reach. While the worker's listener follows the topic,
  entries live CATALOG_CACHE_FOLLOWING_TTL_MS (default 10000): a change reaches them as an event in
  a fraction of a second (~0.3 s against the dev broker), and reloading every page every second
  was what limited detail pages (bench/README.md). Without a listener (no broker configured, or
  reconnecting: the worker then drops everything) entries live CATALOG_CACHE_TTL_MS (default 1000),
  so stock status and prices are never stale by more than a second. The one gap: a product
  service whose outbox relay is stopped delays events, up to the longer TTL.
- A page read in the last fifth of its life is reloaded by the worker's refresh thread while the
  hit is answered: hot pages are never reloaded on a request thread (bench/README.md: the reloads
  were the p99 of detail reads). Staleness stays bounded by the TTL, as a reload only replaces an
  entry still of the current version.

If Redis does not answer, requests bypass the cache (correct, only slower) until it does.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import redis
from flask import Blueprint, Response, current_app, request
from kafka import KafkaConsumer, TopicPartition
from pydantic import BaseModel

from gateway.metrics import CATALOG_CACHE
from services.common.config import KafkaSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
VERSION_KEY = "mall:catalog:version"
MAX_ENTRIES = 10_000        # distinct pages (filters x sort x page) a worker keeps; past it, start over
REFRESH_AHEAD = 0.2         # the last fifth of an entry's life: a hit reloads it off the request thread
PRODUCT_CHANGED = "product-changed"


class Versions(Protocol):
    def current(self) -> int | None:
        """The catalogue version now; None when it cannot be known (serve uncached)."""

    def bump(self) -> None:
        """The catalogue changed: every entry loaded before is stale."""


class LocalVersions:
    """One process's version: right for one gateway worker."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._value = 0

    def current(self) -> int | None:
        return self._value

    def bump(self) -> None:
        self._value = next(self._counter)


class RedisVersions:
    """The version shared by every worker and replica through Redis.

    A worker asks Redis at most once per `fresh_for` seconds and answers the number it read in
    between: the round trip to Redis was half of a cached read's time (bench/README.md), and a
    change made through another worker is still seen within `fresh_for` (100 ms by default, far
    inside the second a shopper's page may lag; staff pages are never cached). A change made
    through this worker is seen at once: bump() keeps the number INCR answers.

    After a failure Redis is not asked again for `retry_after` seconds: reads go uncached at once
    instead of each waiting for the client's timeouts and retries.
    """

    def __init__(self, client: redis.Redis, retry_after: float = 5.0, fresh_for: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.retry_after = retry_after
        self.fresh_for = fresh_for
        self.clock = clock
        self._down_until = 0.0
        self._known: tuple[int, float] | None = None  # (version, when it was read)

    def current(self) -> int | None:
        now = self.clock()
        known = self._known
        if known is not None and now - known[1] < self.fresh_for:
            return known[0]
        if self._down_until and now < self._down_until:
            return None
        try:
            value = int(self.client.get(VERSION_KEY) or 0)
        except redis.RedisError:
            self._down_until, self._known = now + self.retry_after, None
            log.warning("catalogue cache: Redis unavailable; serving uncached for %.0fs", self.retry_after,
                        exc_info=True)
            return None
        self._down_until = 0.0
        self._known = (value, now)
        return value

    def bump(self) -> None:
        try:
            self._known = (int(self.client.incr(VERSION_KEY)), self.clock())
        except redis.RedisError:  # other workers keep their entries until the TTL: at most a second
            self._known = None
            log.warning("catalogue cache: Redis unavailable; the change reaches other workers by TTL", exc_info=True)


@dataclass(frozen=True)
class Entry:
    version: int
    expires_at: float
    refresh_at: float  # past it, a hit also reloads the entry in the background
    value: Any


class CatalogCache:
    def __init__(self, versions: Versions, ttl_seconds: float = 1.0, following_ttl_seconds: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.versions = versions
        self.ttl = ttl_seconds
        # While this worker's listener follows product-changed, changes drop entries within a fraction
        # of a second and the TTL is only a backstop: it may be longer (0: always `ttl`).
        self.following_ttl = following_ttl_seconds
        self.following = False
        self.clock = clock
        self._entries: dict[Hashable, Entry] = {}
        self._loading: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()
        self._refresher: ThreadPoolExecutor | None = None  # made on first use: after gunicorn forks

    def get(self, key: Hashable, load: Callable[[], T], refresh: Callable[[], T] | None = None) -> T:
        """The cached reply for `key`, or `load()`'s (kept when the cache is on).

        One thread loads a missing key; the worker's other threads asking for it meanwhile wait
        and take that reply: an expiring hot page costs one service call, not one per thread.
        While an entry whose version still stands is being reloaded after its TTL, the other
        threads answer it as it was (for at most one more TTL) instead of queueing behind the load:
        an entry dropped by a change (a newer version, a product-changed event) is never answered.

        With `refresh` (a loader that runs outside the request), a hit in the last REFRESH_AHEAD of
        an entry's life reloads it on the worker's refresh thread: a page read more often than its
        TTL is never reloaded on a request thread, so its readers never wait for the service.
        """
        version = self.versions.current() if self.ttl > 0 else None
        if version is None:
            CATALOG_CACHE.labels("bypass").inc()
            return load()
        entry = self._entries.get(key)
        if entry is not None and entry.version == version and (now := self.clock()) < entry.expires_at:
            if refresh is not None and now >= entry.refresh_at:
                self._refresh_in_background(key, refresh)
            CATALOG_CACHE.labels("hit").inc()
            return entry.value  # type: ignore[no-any-return]
        with self._guard:
            loading = self._loading.setdefault(key, threading.Lock())
        if not loading.acquire(blocking=False):
            if (value := self._fresh(key, version, grace=self.ttl)) is not None:
                CATALOG_CACHE.labels("stale").inc()
                return value  # type: ignore[no-any-return]
            loading.acquire()
        with _held(loading):
            if (value := self._fresh(key, version)) is not None:
                CATALOG_CACHE.labels("hit").inc()
                return value  # type: ignore[no-any-return]
            CATALOG_CACHE.labels("miss").inc()
            try:
                value = load()
            finally:
                with self._guard:
                    self._loading.pop(key, None)
            self.put(key, value, version)
            return value

    def _refresh_in_background(self, key: Hashable, refresh: Callable[[], Any]) -> None:
        with self._guard:
            loading = self._loading.setdefault(key, threading.Lock())
            if not loading.acquire(blocking=False):
                return  # already being loaded
            if self._refresher is None:
                self._refresher = ThreadPoolExecutor(1, thread_name_prefix="catalog-refresh")

        def reload() -> None:
            try:
                version = self.versions.current()  # read before the load, as on a miss
                if version is not None:
                    self.put(key, refresh(), version)
                    CATALOG_CACHE.labels("refresh").inc()
            except Exception:  # the entry expires as it would have; the next reader loads it
                log.warning("catalogue cache: background reload of %r failed", key, exc_info=True)
            finally:
                with self._guard:
                    self._loading.pop(key, None)
                loading.release()

        self._refresher.submit(reload)

    def _fresh(self, key: Hashable, version: int, grace: float = 0.0) -> Any:
        entry = self._entries.get(key)
        if entry is not None and entry.version == version and entry.expires_at + grace > self.clock():
            return entry.value
        return None

    def put(self, key: Hashable, value: Any, version: int | None = None) -> None:
        """Keep `value` under `key` (version: the one read before it was loaded; default now)."""
        version = self.versions.current() if version is None else version
        if version is None or self.ttl <= 0:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries = {}
        ttl = self.following_ttl if self.following and self.following_ttl > self.ttl else self.ttl
        now = self.clock()
        self._entries[key] = Entry(version, now + ttl, now + ttl * (1 - REFRESH_AHEAD), value)

    def clear(self) -> None:
        """Drop this process's entries (a product-changed event reached this worker)."""
        self._entries = {}

    def invalidate(self) -> None:
        """The catalogue changed: every worker's entries are stale from now on."""
        self.versions.bump()
        self.clear()


@dataclass(frozen=True)
class Rendered:
    """A reply serialized once, with its ETag: a cache hit costs a copy of bytes, not a model dump and a hash."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, model: BaseModel) -> Rendered:
        body = current_app.json.response(model.model_dump(mode="json", by_alias=True)).get_data()
        return cls(body, hashlib.sha1(body).hexdigest())  # werkzeug's own ETag (Response.add_etag)

    def response(self) -> Response:
        response = Response(self.body, mimetype="application/json")
        response.set_etag(self.etag)
        return response


def cached(key: Hashable, load: Callable[[], BaseModel]) -> Response:
    """The reply for `key` from this worker's cache, else `load()`'s, rendered and kept.

    `load` must not depend on the request (anonymous reads only): a hot entry is reloaded with it
    on the refresh thread, in an application context of its own."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def render() -> Rendered:
        return Rendered.of(load())

    def refresh() -> Rendered:
        with app.app_context():
            return render()

    return catalog_cache().get(key, render, refresh).response()


@contextlib.contextmanager
def _held(lock: threading.Lock) -> Iterator[None]:
    """Release an already acquired lock on leaving the block."""
    try:
        yield
    finally:
        lock.release()


def catalog_cache() -> CatalogCache:
    return current_app.extensions["catalog_cache"]  # type: ignore[no-any-return]


def invalidate_after_writes(bp: Blueprint) -> None:
    """After each successful write through `bp`, drop the catalogue cache everywhere (read-your-writes)."""

    @bp.after_request
    def _invalidate(response: Response) -> Response:
        if request.method not in ("GET", "HEAD", "OPTIONS") and response.status_code < 400:
            catalog_cache().invalidate()
        return response


class ProductChangedListener:
    """Drops `cache`'s entries whenever a product-changed event arrives (one per gateway worker)."""

    def __init__(self, cache: CatalogCache, kafka: KafkaSettings,
                 consumer_factory: Callable[[KafkaSettings], KafkaConsumer] | None = None) -> None:
        self.cache = cache
        self.kafka = kafka
        self.topic = kafka.topic(PRODUCT_CHANGED)
        self.consumer_factory = consumer_factory or _tail_consumer

    def start(self) -> threading.Thread:
        stop = threading.Event()
        thread = threading.Thread(target=self.run, args=(stop,), name="catalog-cache-listener", daemon=True)
        thread.start()
        return thread

    def run(self, stop: threading.Event) -> None:
        backoff = 0.0
        while not stop.is_set():
            try:
                consumer = self.consumer_factory(self.kafka)
                try:
                    self._follow(consumer, stop)
                finally:
                    self.cache.following = False  # back to the short TTL, and nothing kept from the long one
                    self.cache.clear()
                    consumer.close()
            except Exception:
                backoff = min(10.0, max(0.5, backoff * 2))
                log.warning("catalogue cache listener failed; retrying in %.1fs", backoff, exc_info=True)
                stop.wait(backoff)

    def _follow(self, consumer: KafkaConsumer, stop: threading.Event) -> None:
        partitions = consumer.partitions_for_topic(self.topic)
        if not partitions:
            raise RuntimeError(f"topic {self.topic} not found")
        consumer.assign([TopicPartition(self.topic, p) for p in sorted(partitions)])
        consumer.seek_to_end()
        self.cache.clear()  # whatever happened before we listened is now covered
        self.cache.following = True
        while not stop.is_set():
            if any(consumer.poll(timeout_ms=500).values()):
                self.cache.clear()


def _tail_consumer(kafka: KafkaSettings) -> KafkaConsumer:
    """No group: this worker reads every partition from the end, commits nothing, never rebalances."""
    return KafkaConsumer(**kafka.client_options(), group_id=None,  # brokers and TLS/SASL, as every client
                         enable_auto_commit=False, auto_offset_reset="latest",
                         request_timeout_ms=kafka.request_timeout_ms)
