"""What a catalogue page costs on PostgreSQL: the same statements for 2 products or 20 (their SKUs in one read, not
one per product), and of the brands only those of the page's products, however many the shop has (every shopper's
page read the whole brands table)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event

from services.product import service
from services.product.domain import Brand
from tests.fixtures.statements import STATEMENT, statements
from tests.integration.product.conftest import Shelf, UowFactory

pytestmark = pytest.mark.integration


@contextmanager
def brand_rows(engine: Engine) -> Iterator[list[int]]:
    """How many rows each SELECT of brands sent on `engine` inside the block returned."""
    read: list[int] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        found = STATEMENT.match(statement)
        if found is not None and (found["verb"], found["table"]) == ("SELECT", "brands"):
            read.append(cursor.rowcount)

    event.listen(engine, "after_cursor_execute", record)
    try:
        yield read
    finally:
        event.remove(engine, "after_cursor_execute", record)


def on_shelf(shelf: Shelf, count: int) -> None:
    for _ in range(count):
        shelf.product(f"保温杯 {shelf.created}", colours=("黑", "白", "红"))  # three SKUs each


def test_a_catalogue_page_costs_the_same_statements_for_two_products_or_twenty(pg_uow: UowFactory,
                                                                               pg_engine: Engine) -> None:
    shelf = Shelf(pg_uow)
    on_shelf(shelf, 2)
    with statements(pg_engine) as for_two:
        two = service.search_products(pg_uow(), limit=100)
    on_shelf(shelf, 18)
    with statements(pg_engine) as for_twenty:
        twenty = service.search_products(pg_uow(), limit=100)

    assert (len(two.items), len(twenty.items)) == (2, 20)
    assert for_two == for_twenty == ["SELECT products", "SELECT skus", "SELECT products", "SELECT brands"]
    assert {len(view.product.skus) for view in twenty.items} == {3}


def test_a_catalogue_page_reads_only_its_products_brands(pg_uow: UowFactory, pg_engine: Engine) -> None:
    shelf = Shelf(pg_uow)  # brands 华为 (1) and 象印 (2)
    shelf.product("华为 Mate 60 智能手机", brand_id=1)
    with brand_rows(pg_engine) as among_two:
        first = service.search_products(pg_uow())
    with pg_uow() as work:
        for n in range(18):
            work.brands.add(Brand(f"品牌{n}"))
        work.commit()
    with brand_rows(pg_engine) as among_twenty:
        again = service.search_products(pg_uow())

    assert (among_two, among_twenty) == ([1], [1])
    assert [view.brand.name for view in first.items] == [view.brand.name for view in again.items] == ["华为"]
