"""The gateway's catalogue cache: repeated reads skip the product service; a change drops what it shows, seen by the next read."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from flask import Flask
from flask.testing import FlaskClient
from kafka import TopicPartition
from mall.events.v1.product_events_pb2 import ProductChanged
from mall.product.v1 import product_pb2

from gateway.catalog_cache import (
    LISTENER_BOUND_SECONDS,
    MAX_ENTRIES,
    CatalogCache,
    ProductChangedListener,
    _tail_consumer,
)
from services.common.config import KafkaSecurity, KafkaSettings
from services.common.events import encode, new_envelope
from services.common.grpc_server import CODE_KEY
from tests.fixtures.fake_services import FakeServices
from tests.unit.gateway.test_catalog_routes import API, NEW_PRODUCT, phone


def stocked(stock_status: str) -> product_pb2.Product:
    product = phone()
    product.skus[0].stock_status = stock_status
    return product


def test_a_second_anonymous_read_is_served_without_the_product_service(client: FlaskClient,
                                                                        clients: FakeServices) -> None:
    clients.product.ViewProduct.reply = phone()
    clients.product.SearchProducts.reply = product_pb2.SearchProductsResponse(items=[phone()], total=1)

    bodies = [client.get(path).get_json() for path in [f"{API}/products/5", f"{API}/products?page_size=5"] * 2]

    assert (bodies[0] == bodies[2], bodies[1] == bodies[3], len(clients.product.ViewProduct.calls),
            len(clients.product.SearchProducts.calls)) == (True, True, 1, 1)


def test_different_pages_and_provinces_are_cached_apart(client: FlaskClient, clients: FakeServices) -> None:
    clients.product.ViewProduct.reply = phone()
    clients.product.SearchProducts.reply = product_pb2.SearchProductsResponse(items=[phone()], total=1)

    for path in ("/products/5", "/products/5?province=上海", "/products?page=1", "/products?page=2"):
        client.get(API + path)

    assert (len(clients.product.ViewProduct.calls), len(clients.product.SearchProducts.calls)) == (2, 2)


def test_an_admin_price_edit_is_seen_by_the_next_read(client: FlaskClient, clients: FakeServices,
                                                      bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.ViewProduct.reply = phone(price_fen=549_900)
    before = client.get(f"{API}/products/5").get_json()["price_fen"]
    clients.product.UpdateProduct.reply = phone(price_fen=499_900)
    clients.product.ViewProduct.reply = phone(price_fen=499_900)

    edited = client.put(f"{API}/admin/products/5", json={**NEW_PRODUCT, "version": 3}, headers=bearer("operator"))
    after = client.get(f"{API}/products/5").get_json()["price_fen"]

    assert (before, edited.status_code, after) == (549_900, 200, 499_900)


def test_an_admin_stock_adjustment_is_seen_by_the_next_read(client: FlaskClient, clients: FakeServices,
                                                            bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.ViewProduct.reply = stocked("low")
    client.get(f"{API}/products/5")
    clients.product.AdjustStock.reply = product_pb2.Sku(id=11, stock=0, stock_status="sold_out")
    clients.product.ViewProduct.reply = stocked("sold_out")

    client.post(f"{API}/admin/products/5/skus/11/stock", json={"delta": -3}, headers=bearer("operator"))
    after = client.get(f"{API}/products/5").get_json()["skus"][0]["stock_status"]

    assert after == "sold_out"


def test_a_refused_admin_write_keeps_the_cache(client: FlaskClient, clients: FakeServices,
                                               bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.ViewProduct.reply = phone()
    client.get(f"{API}/products/5")

    client.post(f"{API}/admin/products/5/audit", json={"approve": True}, headers=bearer("operator"))  # 403
    client.get(f"{API}/products/5")

    assert len(clients.product.ViewProduct.calls) == 1


def test_a_change_of_one_product_drops_its_pages_and_the_lists_and_keeps_every_other_page(
        client: FlaskClient, clients: FakeServices, tail: Tail) -> None:
    clients.product.ViewProduct.answer = lambda request: phone(id=request.id)
    clients.product.SearchProducts.reply = product_pb2.SearchProductsResponse(items=[phone()], total=1)
    read_every_page(client)

    tail.deliver(product_changed(5))  # product 5 edited: its price shows in the lists
    read_every_page(client)

    assert service_calls(clients) == ([5, 5, 6, 5, 5], 2, 1)  # product 6 and the categories stayed cached


@pytest.mark.parametrize("reason", ["stock_status", "stock", "review"])
def test_a_stock_or_review_change_of_one_product_drops_its_pages_only(client: FlaskClient, clients: FakeServices, tail: Tail,
                                                           reason: str) -> None:
    clients.product.ViewProduct.answer = lambda request: phone(id=request.id)
    clients.product.SearchProducts.reply = product_pb2.SearchProductsResponse(items=[phone()], total=1)
    read_every_page(client)

    tail.deliver(product_changed(5, reason=reason))  # a reservation sold out a SKU of product 5
    read_every_page(client)

    assert service_calls(clients) == ([5, 5, 6, 5, 5], 1, 1)  # lists show no stock, no rating: they stayed cached


def test_a_catalogue_wide_change_drops_every_page(client: FlaskClient, clients: FakeServices, tail: Tail) -> None:
    clients.product.ViewProduct.answer = lambda request: phone(id=request.id)
    read_every_page(client)

    tail.deliver(product_changed(catalog_wide=True))  # a brand renamed: every page may show it
    read_every_page(client)

    assert service_calls(clients) == ([5, 5, 6, 5, 5, 6], 2, 2)


def test_an_unreadable_product_changed_record_drops_every_page(client: FlaskClient, clients: FakeServices,
                                                                 tail: Tail) -> None:
    clients.product.ViewProduct.answer = lambda request: phone(id=request.id)
    read_every_page(client)

    tail.deliver(SimpleNamespace(value=b"not an event envelope"))  # whatever it was about, we cannot tell
    read_every_page(client)

    assert service_calls(clients) == ([5, 5, 6, 5, 5, 6], 2, 2)


def test_a_page_loaded_while_its_product_changes_is_not_served_afterwards(client: FlaskClient, clients: FakeServices,
                                                                          tail: Tail) -> None:
    def view_while_a_reservation_sells_out(request: product_pb2.ViewProductRequest) -> product_pb2.Product:
        if len(clients.product.ViewProduct.calls) == 1:  # the old reply is on its way when the event arrives
            tail.deliver(product_changed(5))
            return stocked("in_stock")
        return stocked("sold_out")
    clients.product.ViewProduct.answer = view_while_a_reservation_sells_out

    statuses = [client.get(f"{API}/products/5").get_json()["skus"][0]["stock_status"] for _ in range(2)]

    assert statuses == ["in_stock", "sold_out"]


def test_an_admin_edit_of_one_product_keeps_the_other_products_pages(client: FlaskClient, clients: FakeServices,
                                                                     bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.ViewProduct.answer = lambda request: phone(id=request.id)
    clients.product.UpdateProduct.reply = phone()
    read_every_page(client)

    edited = client.put(f"{API}/admin/products/5", json={**NEW_PRODUCT, "version": 3}, headers=bearer("operator"))
    read_every_page(client)

    assert (edited.status_code, service_calls(clients)) == (200, ([5, 5, 6, 5, 5], 2, 1))


def test_a_worker_that_tracked_too_many_changed_products_drops_everything() -> None:
    cache = CatalogCache()
    cache.get(("product", 1), lambda: "kept while under the limit", about=1)
    cache.drop(2)
    kept = cache.get(("product", 1), lambda: "reloaded", about=1)

    for product_id in range(3, MAX_ENTRIES + 3):
        cache.drop(product_id)

    assert (kept, cache.get(("product", 1), lambda: "reloaded", about=1)) == ("kept while under the limit",
                                                                            "reloaded")


def test_a_flood_of_one_off_searches_evicts_old_searches_never_the_hot_page() -> None:
    now = [0.0]
    cache = CatalogCache(ttl_seconds=10.0, clock=lambda: now[0])
    loads = []
    cache.get("home", lambda: loads.append("home") or "page")

    for n in range(MAX_ENTRIES):  # the home page is read now and then among them
        cache.get(("products", f"q={n}"), lambda: "junk")
        if n % 1000 == 0:
            cache.get("home", lambda: loads.append("home") or "page")

    assert (cache.get("home", lambda: loads.append("home") or "page"), loads) == ("page", ["home"])
    assert len(cache._entries) == MAX_ENTRIES
    assert ("products", "q=0") not in cache._entries  # the oldest one-off search went first


PAGES = ("/products/5", "/products/5?province=上海", "/products/6", "/products?page_size=5", "/categories")


def read_every_page(client: FlaskClient) -> None:
    for path in PAGES:
        assert client.get(API + path).status_code == 200


def service_calls(clients: FakeServices) -> tuple[list[int], int, int]:
    """The products viewed (in order), and how often the list and the category tree were loaded."""
    return ([call.message.id for call in clients.product.ViewProduct.calls], len(clients.product.SearchProducts.calls),
            len(clients.product.ListCategories.calls))


def product_changed(product_id: int = 0, *, reason: str = "update", catalog_wide: bool = False) -> SimpleNamespace:
    """A product-changed record as the product service's outbox relay sends it."""
    change = ProductChanged(product_id=product_id, reason=reason, catalog_wide=catalog_wide)
    return SimpleNamespace(value=encode(new_envelope(change, producer="product", aggregate_id=str(product_id))))


def test_a_logged_in_view_always_reaches_the_service_and_refreshes_the_cache(
        client: FlaskClient, clients: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.ViewProduct.reply = phone(price_fen=100)
    client.get(f"{API}/products/5")
    clients.product.ViewProduct.reply = phone(price_fen=200)

    mine = client.get(f"{API}/products/5", headers=bearer(user_id=42)).get_json()["price_fen"]
    anonymous = client.get(f"{API}/products/5").get_json()["price_fen"]

    assert (mine, anonymous, len(clients.product.ViewProduct.calls)) == (200, 200, 2)


def test_a_missing_product_is_not_cached(client: FlaskClient, clients: FakeServices, rpc_error) -> None:  # type: ignore[no-untyped-def]
    clients.product.ViewProduct.error = rpc_error(grpc.StatusCode.NOT_FOUND, "no such product",
                                                  ((CODE_KEY, "PRODUCT_NOT_FOUND"),))
    hidden = client.get(f"{API}/products/5").status_code
    clients.product.ViewProduct.error = None
    clients.product.ViewProduct.reply = phone()

    assert (hidden, client.get(f"{API}/products/5").status_code) == (404, 200)


def test_an_entry_lives_for_the_ttl_only() -> None:
    now = [100.0]
    cache = CatalogCache(ttl_seconds=1.0, clock=lambda: now[0])
    loads: list[int] = []

    def load() -> int:
        loads.append(len(loads))
        return len(loads)

    seen = [cache.get("k", load)]
    now[0] += 0.999
    seen.append(cache.get("k", load))
    now[0] += 0.002
    seen.append(cache.get("k", load))

    assert seen == [1, 1, 2]


def test_a_reply_loaded_while_the_catalogue_changed_is_not_served_afterwards() -> None:
    cache = CatalogCache()

    def load_during_a_change() -> str:
        cache.invalidate()  # an edit commits while the old reply is on its way back
        return "old"

    first = cache.get("k", load_during_a_change)

    assert (first, cache.get("k", lambda: "new")) == ("old", "new")


def test_a_ttl_of_zero_turns_the_cache_off() -> None:
    cache = CatalogCache(ttl_seconds=0)

    assert [cache.get("k", lambda: 1), cache.get("k", lambda: 2)] == [1, 2]


def kafka() -> KafkaSettings:
    return KafkaSettings(bootstrap_servers="127.0.0.1:1", max_poll_interval_ms=1000, topic_prefix="",
                         request_timeout_ms=1000)


class Tail:
    """The product-changed topic as a worker's listener reads it; deliver() returns once the listener applied it."""

    def __init__(self) -> None:
        self.batches: queue.Queue[tuple[list[Any], threading.Event]] = queue.Queue()
        self.applied: threading.Event | None = None
        self.polled = threading.Event()

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def assign(self, partitions: list[TopicPartition]) -> None:
        pass

    def seek_to_end(self) -> None:
        pass

    def position(self, partition: TopicPartition, timeout_ms: int) -> int:
        return 0

    def poll(self, timeout_ms: int) -> dict[TopicPartition, list[Any]]:
        if self.applied is not None:
            self.applied.set()  # the listener polls again: it has applied the last batch
        self.polled.set()
        try:
            records, self.applied = self.batches.get(timeout=0.01)
        except queue.Empty:
            self.applied = None
            return {}
        return {TopicPartition("product-changed", 0): records}

    def deliver(self, *records: Any) -> None:
        applied = threading.Event()
        self.batches.put((list(records), applied))
        assert applied.wait(5), "the listener did not take the records"


@contextlib.contextmanager
def listening(cache: CatalogCache, tail: Tail | None = None) -> Iterator[Tail]:
    """`cache`'s worker follows a product-changed tail, on a thread of its own as under gunicorn."""
    tail, stop = tail or Tail(), threading.Event()
    listener = threading.Thread(target=ProductChangedListener(cache, kafka())._follow, args=(tail, stop))
    listener.start()
    tail.polled.wait(5)  # following from here on
    try:
        yield tail
    finally:
        stop.set()
        listener.join(5)


@pytest.fixture
def tail(app: Flask) -> Iterator[Tail]:
    with listening(app.extensions["catalog_cache"]) as followed:
        yield followed


class LazyEnd(Tail):
    """A tail whose end is fixed when its position is first asked for or at the first poll, as kafka-python
    seeks to the end; `at_end` runs then."""

    def __init__(self, at_end: Callable[[], None]) -> None:
        super().__init__()
        self.at_end: Callable[[], None] | None = at_end

    def position(self, partition: TopicPartition, timeout_ms: int) -> int:
        self._fix_end()
        return 0

    def poll(self, timeout_ms: int) -> dict[TopicPartition, list[Any]]:
        self._fix_end()
        return super().poll(timeout_ms)

    def _fix_end(self) -> None:
        if self.at_end is not None:
            self.at_end()
            self.at_end = None


def test_what_was_cached_before_the_listener_knew_where_the_topic_ends_is_dropped() -> None:
    cache = CatalogCache()

    def a_page_loaded_as_the_end_is_fixed() -> None:  # a change just before it is not among the records read
        cache.get("k", lambda: "loaded before a change the listener will not read")

    with listening(cache, LazyEnd(a_page_loaded_as_the_end_is_fixed)):
        pass

    assert cache.get("k", lambda: "reloaded") == "reloaded"


def test_threads_missing_the_same_key_together_load_it_once() -> None:
    cache = CatalogCache()
    started, release = threading.Event(), threading.Event()
    loads: list[str] = []

    def slow_load() -> str:
        loads.append("load")
        started.set()
        release.wait(5)
        return "reply"

    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(cache.get, "k", slow_load)
        started.wait(5)
        others = [pool.submit(cache.get, "k", slow_load) for _ in range(3)]
        release.set()
        replies = [first.result(5), *(f.result(5) for f in others)]

    assert (replies, loads) == (["reply"] * 4, ["load"])


def test_an_expired_entry_is_answered_while_one_thread_reloads_it_but_never_after_a_change() -> None:
    now = [0.0]
    cache = CatalogCache(ttl_seconds=1.0, clock=lambda: now[0])
    cache.get("k", lambda: "old")
    now[0] = 1.5
    started, release = threading.Event(), threading.Event()

    def slow_load() -> str:
        started.set()
        release.wait(5)
        return "new"

    with ThreadPoolExecutor(1) as pool:
        reloading = pool.submit(cache.get, "k", slow_load)
        started.wait(5)
        meanwhile = cache.get("k", lambda: "not called")
        release.set()
        reloaded = reloading.result(5)
    cache.invalidate()

    assert (meanwhile, reloaded, cache.get("k", lambda: "after the change")) == ("old", "new", "after the change")


def test_entries_live_longer_only_while_the_listener_follows_the_events() -> None:
    now = [0.0]
    cache = CatalogCache(ttl_seconds=1.0, following_ttl_seconds=10.0, clock=lambda: now[0])
    with listening(cache):
        cache.get("followed", lambda: "a")
    cache.following = False  # what the listener does when it loses the broker
    cache.get("unfollowed", lambda: "b")
    now[0] = 5.0

    assert (cache.get("followed", lambda: "reloaded"), cache.get("unfollowed", lambda: "reloaded")) == (
        "a", "reloaded")


def test_a_hot_entry_is_reloaded_off_the_request_thread_before_it_expires() -> None:
    now = [0.0]
    cache = CatalogCache(ttl_seconds=1.0, clock=lambda: now[0])
    inline: list[str] = []

    def on_request() -> str:
        inline.append("load")
        return "v1" if len(inline) == 1 else "loaded on a request"

    first = cache.get("k", on_request, lambda: "v1")
    now[0] = 0.5
    early = cache.get("k", on_request, lambda: "not yet")  # not in the last fifth: no reload
    now[0] = 0.9
    late = cache.get("k", on_request, lambda: "v2")         # answered as it is; v2 loads in the background
    assert cache._refresher is not None
    cache._refresher.shutdown(wait=True)
    now[0] = 1.5                                             # v1 would have expired at 1.0; v2 lives to 1.9

    assert (first, early, late, cache.get("k", on_request, lambda: "v3"), inline) == ("v1", "v1", "v1", "v2",
                                                                                       ["load"])


def test_a_background_reload_never_brings_back_what_a_change_dropped() -> None:
    now = [0.0]
    cache = CatalogCache(ttl_seconds=1.0, clock=lambda: now[0])
    cache.get("k", lambda: "old")
    now[0] = 0.9

    def reload_during_a_change() -> str:
        cache.invalidate()  # an edit commits while the reload is on its way back
        return "old, reloaded"

    cache.get("k", lambda: "not called", reload_during_a_change)
    assert cache._refresher is not None
    cache._refresher.shutdown(wait=True)

    assert cache.get("k", lambda: "new") == "new"


def test_the_listener_connects_with_the_brokers_tls_and_sasl_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict[str, Any]] = []
    monkeypatch.setattr("gateway.catalog_cache.KafkaConsumer", lambda **options: made.append(options))
    security = KafkaSecurity(protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="gateway",
                             sasl_password="s3cret", ssl_cafile="/etc/kafka/ca.pem")
    settings = KafkaSettings(bootstrap_servers="k1:9093,k2:9093", max_poll_interval_ms=1000, topic_prefix="",
                             request_timeout_ms=1000, security=security)

    _tail_consumer(settings)

    assert {key: made[0][key] for key in ("bootstrap_servers", "security_protocol", "sasl_mechanism",
                                          "sasl_plain_username", "sasl_plain_password", "ssl_cafile", "group_id")} == {
        "bootstrap_servers": ["k1:9093", "k2:9093"], "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "gateway", "sasl_plain_password": "s3cret",
        "ssl_cafile": "/etc/kafka/ca.pem", "group_id": None}


class HungTail(Tail):
    """A tail whose poll hangs once `hang()` is called, until `come_round()`: a listener stuck in a call."""

    def __init__(self) -> None:
        super().__init__()
        self.hung, self.inside, self.released = False, threading.Event(), threading.Event()
        self.polls, self.counted = 0, threading.Condition()

    def poll(self, timeout_ms: int) -> dict[TopicPartition, list[Any]]:
        with self.counted:
            self.polls += 1
            self.counted.notify_all()
        if self.hung:
            self.inside.set()
            self.released.wait(5)
            self.hung = False
        return super().poll(timeout_ms)

    def hang(self) -> None:
        self.hung = True
        assert self.inside.wait(5), "the listener did not poll again"

    def come_round(self) -> None:
        """Let the hung poll return; back once the listener has come round to its next poll."""
        with self.counted:
            polls = self.polls
            self.released.set()
            assert self.counted.wait_for(lambda: self.polls > polls, 5), "the listener did not come round"


def test_a_listener_that_stops_coming_round_costs_the_long_ttl_and_what_was_kept_under_it() -> None:
    now = [0.0]
    cache = CatalogCache(ttl_seconds=1.0, following_ttl_seconds=10.0, clock=lambda: now[0])
    tail = HungTail()
    with listening(cache, tail):
        cache.get("page", lambda: "kept while following")
        tail.hang()  # a change it would have read waits behind the hung poll
        now[0] = LISTENER_BOUND_SECONDS + 0.5  # within the long TTL, past the listener's bound
        after_hang = cache.get("page", lambda: "reloaded")
        now[0] += 1.5  # past the short TTL the reload was kept for
        later = cache.get("page", lambda: "reloaded again")
        tail.come_round()
        following_again = cache.following
        cache.get("followed", lambda: "kept again")
        now[0] += 5.0

        assert (after_hang, later, following_again, cache.get("followed", lambda: "not called")) == (
            "reloaded", "reloaded again", True, "kept again")
