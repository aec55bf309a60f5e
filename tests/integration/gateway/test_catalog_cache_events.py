"""Changes reach the gateway's cache as events through a real broker (tansu): a reservation that sells out a
product commits a product-changed for it, and the worker's listener drops that product's pages and the lists
and keeps every other page; a brand rename or a category move commits one catalogue-wide product-changed, and
the listener drops every cached page, however many products the setting touches."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, delete

from gateway.catalog_cache import ANY_PRODUCT, SETTINGS, CatalogCache, ProductChangedListener
from services.common.config import KafkaSettings
from services.common.outbox import OutboxRelay, outbox
from services.product import service
from services.product.db import SqlProductUnitOfWork, start_mappers
from services.product.domain import StockLine
from tests.integration.product.conftest import Shelf

pytestmark = pytest.mark.integration
LONG_TTL = 600.0  # entries outlive the test: only an event can drop them


def until(condition: Callable[[], bool], timeout_seconds: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)


@pytest.fixture
def product_db(service_engine: Callable[[str], Engine]) -> Engine:
    return service_engine("product")  # each call empties the database: once per test


@pytest.fixture
def shelf(product_db: Engine) -> Shelf:
    start_mappers()
    return Shelf(functools.partial(SqlProductUnitOfWork, product_db, "product"))


@pytest.fixture
def relay(product_db: Engine, kafka_settings: KafkaSettings) -> Iterator[OutboxRelay]:
    made = OutboxRelay("product", product_db, kafka_settings)
    yield made
    made.close()


@pytest.fixture
def cache(shelf: Shelf, product_db: Engine, kafka_settings: KafkaSettings) -> Iterator[CatalogCache]:
    """A gateway worker's cache whose listener follows product-changed from after the shelf's own events."""
    shelf.product("真空 保温杯", brand_id=2)
    shelf.product("华为 手机")
    with product_db.begin() as connection:  # never sent: the listener must see the test's events only (tansu
        connection.execute(delete(outbox))  # answers "latest" inside the last batch: it would re-read some)
    followed = CatalogCache(ttl_seconds=1.0, following_ttl_seconds=LONG_TTL)
    stop = threading.Event()
    listener = threading.Thread(target=ProductChangedListener(followed, kafka_settings).run, args=(stop,))
    listener.start()
    until(lambda: followed.following)
    yield followed
    stop.set()
    listener.join(timeout=10)


PAGES = {("product", 1): "象印 保温杯", ("product", 2): "华为 手机", ("products", "brand_id=2"): "象印的商品",
         ("categories",): "数码 > 手机; 家居"}
ABOUT = {("product", 1): 1, ("product", 2): 2, ("products", "brand_id=2"): ANY_PRODUCT, ("categories",): SETTINGS}


def cached_pages(cache: CatalogCache) -> dict[object, str]:
    """What the cache answers for each page now ("reloaded": the entry was dropped)."""
    return {key: cache.get(key, lambda: "reloaded", about=ABOUT[key]) for key in PAGES}


def cache_every_page(cache: CatalogCache) -> dict[object, str]:
    for key, page in PAGES.items():
        cache.put(key, page, about=ABOUT[key])
    return cached_pages(cache)


def test_a_reservation_that_sells_out_a_product_drops_its_page_only(
        shelf: Shelf, relay: OutboxRelay, cache: CatalogCache) -> None:
    kept = cache_every_page(cache)

    service.reserve_stock(shelf.uow(), order_no="SELLOUT-1", lines=[StockLine(shelf.sku_ids(1)[0], 50)])
    sent = relay.publish_pending()
    until(lambda: cache.get(("product", 1), lambda: "reloaded", about=1) == "reloaded")

    # the lists show no stock: they and the other product stay cached
    assert (kept, sent, cached_pages(cache)) == (PAGES, 1, {**PAGES, ("product", 1): "reloaded"})


def test_an_edit_of_a_product_drops_its_page_and_the_lists_and_keeps_the_others(
        shelf: Shelf, relay: OutboxRelay, cache: CatalogCache) -> None:
    kept = cache_every_page(cache)

    service.set_shelf(shelf.uow(), actor_id=7, product_id=1, on_shelf=False)
    sent = relay.publish_pending()
    until(lambda: cache.get(("product", 1), lambda: "reloaded", about=1) == "reloaded")

    assert (kept, sent, cached_pages(cache)) == (PAGES, 1, {**PAGES, ("product", 1): "reloaded",
                                                            ("products", "brand_id=2"): "reloaded"})


@pytest.mark.parametrize("change", ["brand", "category"])
def test_a_catalogue_setting_change_drops_every_cached_page_through_the_broker(
        change: str, shelf: Shelf, relay: OutboxRelay, cache: CatalogCache) -> None:
    kept = cache_every_page(cache)

    if change == "brand":
        service.save_brand(shelf.uow(), actor_id=7, brand_id=2, name="膳魔师")
    else:
        service.save_category(shelf.uow(), actor_id=7, category_id=3, name="手机", parent_id=2)  # 手机 to 家居
    sent = relay.publish_pending()
    until(lambda: cache.get(("product", 1), lambda: "reloaded", about=1) == "reloaded")

    assert (kept, sent, cached_pages(cache)) == (PAGES, 1, dict.fromkeys(PAGES, "reloaded"))
