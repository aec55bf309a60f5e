"""The gateway's catalogue read cache: shopper reads served from process memory, dropped by the changes they show.

Product detail and list pages are the hottest routes of a shop, and one gRPC hop costs the
gateway most of its throughput. Each gunicorn worker keeps the replies it built (a dict per
process) for at most `ttl` seconds, and drops what a change makes stale:

- Every entry says what it shows (`about`): one product (its detail pages, one per province), any
  product (list and search pages: a change may alter a product on them or bring one in; which pages
  hold a product cannot tell which it will join), or catalogue settings only (categories, brands).
  A change of one product drops its detail pages and every list, a stock or review change (event reason
  `stock`, `stock_status` or `review`) its detail pages only: list items show no stock and no rating, and no
  search filters or sorts on them. A catalogue-wide change (a brand, category or delivery-table edit: pages embed brand names,
  category filters, delivery estimates) drops every page. A checkout burst that sells out one product
  leaves every other page cached.
- Drops are lazy and race-free: each drop raises the worker's *version* and notes it against the
  product (and the lists) or against everything; an entry carries the version read before its reply
  was loaded and is answered only while nothing it shows was dropped since. A reply loaded while a
  change commits is never served after the change is seen.
- `product-changed` events (published by the product service in the transaction of every audited
  change and of every reservation or release that moves a SKU across in_stock / low / sold_out, and
  one `catalog_wide` event, product_id 0, for a catalogue setting however many products it touches)
  reach each worker through a group-less Kafka consumer reading the topic's tail: no rebalances, no
  offsets, nothing to clean up when a worker dies. Every worker reads every event, so events need no
  sharing between workers. An unreadable record drops everything; so does (re)connecting, which
  covers whatever was missed meanwhile.
- The gateway's own admin writes (edit, audit, shelf, stock of one product: that product; categories,
  brands, delivery table, a new product: everything) are dropped by the worker that passed them on at
  once, and by every other worker within CATALOG_VERSION_CHECK_MS (100), before their events arrive:
  with REDIS_URL they go into a capped Redis stream (`mall:catalog:changes`, on the rate limiter's
  connection) that each worker reads at most every CATALOG_VERSION_CHECK_MS, in one round trip for
  all the changes since its last look. A worker that cannot know what it missed (more than
  CHANGES_KEPT changes since, or a Redis that restarted or lost the stream) drops everything. Without
  Redis (one worker, `make run`) there is no other worker to tell.
- The TTL bounds whatever the events do not reach. While the worker's listener follows the topic,
  entries live CATALOG_CACHE_FOLLOWING_TTL_MS (default 10000): a change reaches them as an event in
  a fraction of a second (~0.3 s against the dev broker), and reloading every page every second
  was what limited detail pages (bench/README.md). Without a listener (no broker configured, or
  reconnecting: the worker then drops everything) entries live CATALOG_CACHE_TTL_MS (default 1000),
  so stock status and prices are never stale by more than a second. The one gap: a product
  service whose outbox relay is stopped delays events, up to the longer TTL.
- The listener beats after each poll (every half second when idle); one that stops coming round while following
  (hung in a poll, its thread gone without leaving the topic) is late once its beat is LISTENER_BOUND_SECONDS old.
  The worker then no longer counts on it: at the next read it drops every page and goes back to the short TTL,
  as it does when the listener loses the broker, until the listener beats again (it then applies what it missed,
  from where it stopped reading). A hung listener costs the long TTL, never a stale page.
- A page read in the last fifth of its life is reloaded by the worker's refresh thread while the
  hit is answered: hot pages are never reloaded on a request thread (bench/README.md: the reloads
  were the p99 of detail reads). Staleness stays bounded by the TTL, as a reload loaded before a
  drop is never answered either.

If Redis does not answer, requests bypass the cache (correct, only slower) until it does.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, request
from kafka import KafkaConsumer, TopicPartition
from mall.events.v1.product_events_pb2 import ProductChanged
from pydantic import BaseModel

from gateway.api import enforce_limits
from gateway.metrics import CATALOG_CACHE
from gateway.ratelimit import Limit
from gateway.redisstore import RedisStore, RedisUnavailable
from services.common.config import KafkaSettings
from services.common.events import InvalidEvent, decode, event_type_of, unpack
from services.common.liveness import Heartbeat

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_ENTRIES = 10_000        # distinct pages (filters x sort x page) a worker keeps; past it, the least recently read go
REFRESH_AHEAD = 0.2         # the last fifth of an entry's life: a hit reloads it off the request thread
# What a page shows, that changes drop it by (`about`): a product id (its detail pages), or one of these.
ANY_PRODUCT = "any product"  # a list or search page: any product's change may alter it, or bring the product in
SETTINGS = "settings"        # categories, brands: only a catalogue-wide change alters them
EVERYTHING = "everything"    # (a drop of) every page
# product-changed reasons that change only the detail pages (stock_status, the rating summary): list items show
# neither stock nor rating
STOCK_REASONS = frozenset({"stock", "stock_status", "review"})
CHANGES_KEY = "mall:catalog:changes"
CHANGES_KEPT = 1000          # the newest changes the Redis log keeps; a worker that missed more drops everything
NOTHING_SEEN = b"0-0"        # below every stream id: the log was empty when the worker last looked
POLL_SECONDS = 0.5           # the listener's poll when no event comes
# How old the listener's beat may be while it follows before the worker stops counting on it: ten idle polls, half
# the default CATALOG_CACHE_FOLLOWING_TTL_MS.
LISTENER_BOUND_SECONDS = 5.0


class RedisChangeLog:
    """Catalogue changes made through any gateway worker, for every other: a capped Redis stream.

    Each change is one entry (a product id, or * for every page). A worker reads the entries after the last
    one it saw at most once per `fresh_for` seconds, in one round trip (XREVRANGE, newest first down to and
    including that entry), and drops what they name: the round trip to Redis was half of a cached read's
    time (bench/README.md), and a change made through another worker is still seen within `fresh_for`
    (100 ms by default, far inside the second a shopper's page may lag; staff pages are never cached).
    When that entry is not in the answer, the worker cannot know what it missed and drops everything: more
    than CHANGES_KEPT changes since (trimmed), a Redis that lost the log (restart, flush), a worker that
    had not looked yet, or one that last saw the log empty.

    While the store's breaker (gateway/redisstore.py) leaves Redis alone after a failure, reads go uncached
    at once instead of each waiting for the client's timeouts.
    """

    def __init__(self, store: RedisStore, fresh_for: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.fresh_for = fresh_for
        self.clock = clock
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._seen = NOTHING_SEEN  # id of the newest entry the worker has applied

    def record(self, product_id: int | None) -> None:
        """A change made through this worker (None: every page), for the others to drop at their next look."""
        try:
            self.store.call(lambda client: client.xadd(CHANGES_KEY, {"product": "*" if product_id is None else product_id},
                                                       maxlen=CHANGES_KEPT, approximate=False))
        except RedisUnavailable:  # other workers keep their entries until their listener or the TTL drops them
            log.warning("catalogue cache: Redis unavailable; the change reaches other workers by event or TTL")

    def catch_up(self, drop: Callable[[int | None], None]) -> bool:
        """`drop` what other workers changed since the last look, unless that was under `fresh_for` ago.

        False: Redis cannot be asked (serve uncached)."""
        if self.clock() - self._read_at < self.fresh_for:
            return True
        with self._lock:  # one look at a time: the others wait for its drops, never serve past them
            now = self.clock()
            if now - self._read_at < self.fresh_for:
                return True
            try:
                seen = self._seen
                newest_first = self.store.call(lambda client: client.xrevrange(CHANGES_KEY, "+", seen,
                                                                               count=CHANGES_KEPT))
            except RedisUnavailable:
                return False
            if newest_first and newest_first[-1][0] == self._seen:
                for _, change in newest_first[:-1]:
                    drop(None if change[b"product"] == b"*" else int(change[b"product"]))
            elif newest_first or self._seen != NOTHING_SEEN:
                drop(None)
            self._seen = newest_first[0][0] if newest_first else NOTHING_SEEN
            self._read_at = now
            return True


@dataclass(frozen=True)
class Entry:
    version: int       # the worker's version read before the reply was loaded
    about: int | str   # a product id, ANY_PRODUCT or SETTINGS: which drops reach it
    expires_at: float
    refresh_at: float  # past it, a hit also reloads the entry in the background
    value: Any


class CatalogCache:
    def __init__(self, ttl_seconds: float = 1.0, following_ttl_seconds: float = 0.0,
                 changes: RedisChangeLog | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl_seconds
        # While this worker's listener follows product-changed, changes drop entries within a fraction
        # of a second and the TTL is only a backstop: it may be longer (0: always `ttl`).
        self.following_ttl = following_ttl_seconds
        self.following = False
        self.listener: Heartbeat | None = None  # the beat of this worker's ProductChangedListener, once it has one
        self.changes = changes  # None: one worker (no Redis), nobody else's changes to learn of
        self.clock = clock
        self._version = 0  # one more at every drop
        self._dropped: dict[int | str, int] = {}  # product id, ANY_PRODUCT or EVERYTHING -> version of its last drop
        # Least recently read first: a stream of one-off pages (junk searches) evicts its own kind, never a hot page.
        self._entries: OrderedDict[Hashable, Entry] = OrderedDict()
        self._loading: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()
        self._refresher: ThreadPoolExecutor | None = None  # made on first use: after gunicorn forks

    def get(self, key: Hashable, load: Callable[[], T], refresh: Callable[[], T] | None = None,
            about: int | str = ANY_PRODUCT) -> T:
        """The cached reply for `key`, or `load()`'s (kept when the cache is on, dropped by changes `about` it).

        One thread loads a missing key; the worker's other threads asking for it meanwhile wait
        and take that reply: an expiring hot page costs one service call, not one per thread.
        While an entry no change has dropped is being reloaded after its TTL, the other
        threads answer it as it was (for at most one more TTL) instead of queueing behind the load:
        an entry dropped by a change is never answered.

        With `refresh` (a loader that runs outside the request), a hit in the last REFRESH_AHEAD of
        an entry's life reloads it on the worker's refresh thread: a page read more often than its
        TTL is never reloaded on a request thread, so its readers never wait for the service.
        """
        version = self.version() if self.ttl > 0 else None
        if version is None:
            CATALOG_CACHE.labels("bypass").inc()
            return load()
        entry = self._entries.get(key)
        if entry is not None and self._stands(entry) and (now := self.clock()) < entry.expires_at:
            if refresh is not None and now >= entry.refresh_at:
                self._refresh_in_background(key, refresh, about)
            with contextlib.suppress(KeyError):  # evicted meanwhile by another thread's put
                self._entries.move_to_end(key)
            CATALOG_CACHE.labels("hit").inc()
            return entry.value  # type: ignore[no-any-return]
        with self._guard:
            loading = self._loading.setdefault(key, threading.Lock())
        if not loading.acquire(blocking=False):
            if (value := self._fresh(key, grace=self.ttl)) is not None:
                CATALOG_CACHE.labels("stale").inc()
                return value  # type: ignore[no-any-return]
            loading.acquire()
        with _held(loading):
            if (value := self._fresh(key)) is not None:
                CATALOG_CACHE.labels("hit").inc()
                return value  # type: ignore[no-any-return]
            CATALOG_CACHE.labels("miss").inc()
            try:
                value = load()
            finally:
                with self._guard:
                    self._loading.pop(key, None)
            self.put(key, value, version, about)
            return value

    def _refresh_in_background(self, key: Hashable, refresh: Callable[[], Any], about: int | str) -> None:
        with self._guard:
            loading = self._loading.setdefault(key, threading.Lock())
            if not loading.acquire(blocking=False):
                return  # already being loaded
            if self._refresher is None:
                self._refresher = ThreadPoolExecutor(1, thread_name_prefix="catalog-refresh")

        def reload() -> None:
            try:
                version = self.version()  # read before the load, as on a miss
                if version is not None:
                    self.put(key, refresh(), version, about)
                    CATALOG_CACHE.labels("refresh").inc()
            except Exception:  # the entry expires as it would have; the next reader loads it
                log.warning("catalogue cache: background reload of %r failed", key, exc_info=True)
            finally:
                with self._guard:
                    self._loading.pop(key, None)
                loading.release()

        self._refresher.submit(reload)

    def _stands(self, entry: Entry) -> bool:
        """No drop since `entry` was loaded reached it."""
        dropped = self._dropped
        return entry.version >= dropped.get(EVERYTHING, 0) and entry.version >= dropped.get(entry.about, 0)

    def _fresh(self, key: Hashable, grace: float = 0.0) -> Any:
        entry = self._entries.get(key)
        if entry is not None and self._stands(entry) and entry.expires_at + grace > self.clock():
            return entry.value
        return None

    def version(self) -> int | None:
        """This worker's version, once it has dropped what other workers changed; None: unknown (serve uncached)."""
        self._check_listener()
        if self.changes is not None and not self.changes.catch_up(self.drop):
            return None
        return self._version

    def _check_listener(self) -> None:
        """While following, whether the listener still comes round: a late one no longer earns the long TTL, and
        what was kept under it is dropped (it may miss changes the listener has not read)."""
        listener = self.listener
        if self.following and listener is not None and listener.late():
            self.following = False
            log.warning("catalogue cache: the product-changed listener last polled %.1f s ago; dropping every page and "
                        "keeping pages %.1f s until it comes round", listener.age(), self.ttl)
            self.drop()

    def put(self, key: Hashable, value: Any, version: int | None = None, about: int | str = ANY_PRODUCT) -> None:
        """Keep `value` under `key` (version: the one read before it was loaded; default now)."""
        version = self.version() if version is None else version
        if version is None or self.ttl <= 0:
            return
        ttl = self.following_ttl if self.following and self.following_ttl > self.ttl else self.ttl
        now = self.clock()
        with self._guard:
            self._entries[key] = Entry(version, about, now + ttl, now + ttl * (1 - REFRESH_AHEAD), value)
            self._entries.move_to_end(key)
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)

    def drop(self, product_id: int | None = None, *, lists: bool = True) -> None:
        """Stop answering a product's detail pages and, unless `lists` is False, every list (None: every
        page), here; entries loaded before, or still loading, are never answered again."""
        with self._guard:
            self._version += 1
            if product_id is None or len(self._dropped) >= MAX_ENTRIES:  # everything also forgets older drops
                self._dropped = {EVERYTHING: self._version}
                return
            self._dropped[product_id] = self._version
            if lists:
                self._dropped[ANY_PRODUCT] = self._version

    def invalidate(self, product_id: int | None = None) -> None:
        """A change made through this worker: dropped here at once, by every other worker at its next look."""
        self.drop(product_id)
        if self.changes is not None:
            self.changes.record(product_id)


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


def cached(key: Hashable, load: Callable[[], BaseModel], about: int | str = ANY_PRODUCT,
           limits: tuple[Limit, ...] = ()) -> Response:
    """The reply for `key` from this worker's cache, else `load()`'s, rendered and kept until a change `about` it.

    `load` must not depend on the request (anonymous reads only): a hot entry is reloaded with it
    on the refresh thread, in an application context of its own. A load on the request's thread (a miss, or a
    read while the cache is bypassed) counts under `limits` first: only reads that reach the service are
    limited, so a hit costs no rate-limit round trip."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def render() -> Rendered:
        return Rendered.of(load())

    def load_here() -> Rendered:
        enforce_limits(limits)
        return render()

    def refresh() -> Rendered:
        with app.app_context():
            return render()

    return catalog_cache().get(key, load_here, refresh, about).response()


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
    """After each successful write through `bp`, drop what it changed on every worker (read-your-writes): a
    write to one product (a route with a `product_id`) its pages and the lists, any other every page."""

    @bp.after_request
    def _invalidate(response: Response) -> Response:
        if request.method not in ("GET", "HEAD", "OPTIONS") and response.status_code < 400:
            catalog_cache().invalidate((request.view_args or {}).get("product_id"))
        return response


class ProductChangedListener:
    """Drops what each product-changed event names from `cache` (one listener per gateway worker)."""

    def __init__(self, cache: CatalogCache, kafka: KafkaSettings,
                 consumer_factory: Callable[[KafkaSettings], KafkaConsumer] | None = None) -> None:
        self.cache = cache
        self.kafka = kafka
        self.topic = kafka.topic(event_type_of(ProductChanged))
        self.consumer_factory = consumer_factory or _tail_consumer
        self.heartbeat = Heartbeat("catalog-cache-listener", LISTENER_BOUND_SECONDS, clock=cache.clock)
        cache.listener = self.heartbeat

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
                    self.cache.drop()
                    consumer.close()
            except Exception:
                backoff = min(10.0, max(0.5, backoff * 2))
                log.warning("catalogue cache listener failed; retrying in %.1fs", backoff, exc_info=True)
                stop.wait(backoff)

    def _follow(self, consumer: KafkaConsumer, stop: threading.Event) -> None:
        partitions = consumer.partitions_for_topic(self.topic)
        if not partitions:
            raise RuntimeError(f"topic {self.topic} not found")
        assigned = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_end()
        for partition in assigned:  # the seek is lazy: fix the ends now, so that the drop covers all before them
            if consumer.position(partition, timeout_ms=self.kafka.request_timeout_ms) is None:
                raise RuntimeError(f"the end of {partition} is not known")
        self.cache.drop()  # whatever happened before we listened is now covered
        while not stop.is_set():
            self.heartbeat.beat()
            self.cache.following = True  # again, if the cache stopped counting on a late beat
            for records in consumer.poll(timeout_ms=int(POLL_SECONDS * 1000)).values():
                for record in records:
                    product_id, lists = _changed(record.value)
                    self.cache.drop(product_id, lists=lists)


def _changed(value: bytes) -> tuple[int | None, bool]:
    """The product a product-changed record is about (None: every product, catalogue-wide or unreadable),
    and whether the lists show what changed: they show no stock, so a stock change leaves them."""
    try:
        change = unpack(decode(value), ProductChanged)
    except InvalidEvent:
        log.warning("catalogue cache: unreadable product-changed record; dropping every page", exc_info=True)
        return None, True
    if change.catalog_wide:
        return None, True
    return change.product_id, change.reason not in STOCK_REASONS


def _tail_consumer(kafka: KafkaSettings) -> KafkaConsumer:
    """No group: this worker reads every partition from the end, commits nothing, never rebalances."""
    return KafkaConsumer(**kafka.client_options(), group_id=None,  # brokers and TLS/SASL, as every client
                         enable_auto_commit=False, auto_offset_reset="latest",
                         request_timeout_ms=kafka.request_timeout_ms)
