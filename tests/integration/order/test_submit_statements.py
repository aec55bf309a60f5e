"""How many SQL statements and transactions placing an order costs on PostgreSQL: a fixed number, whatever the
number of lines.

A count, not a timing: it fails when submit goes back to a query per line, reads the cart for a
buy-now order, or reads the order it has just written back in another transaction (bench/checkout_cpu.py
measures what each of those costs in CPU). Since migration 0022 a submit records its attempt (submit_attempts) before
anything is held under its order number, committed apart: one statement more than before (6 statements in 1
transaction for a buy-now order then, 7 now), an autocommit one, so still one transaction (it was a second one, with
its Session, BEGIN and COMMIT, ~15% of an order's CPU). Since the unpaid orders limit (ORDER_MAX_UNPAID_PER_USER) a
submit takes the shopper's lock and counts their unpaid orders (an index-only count, migration 0024) under its claim:
two statements more, 9 for a buy-now order. One statement cannot do both: under READ COMMITTED its snapshot is taken
before it waits for the lock, so it could count without an order a submit holding the lock was committing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event

from services.common.errors import NotFound
from services.order import service
from services.order.db import SqlOrderUnitOfWork
from services.order.domain import CartItem, Order
from services.order.grpc_api import order_message
from services.order.ports import CatalogSku, StockLine
from services.order.service import CheckoutInput, OrderSettings
from services.order.uow import OrderSearch
from tests.fakes import FakeCatalog, FakeMembers, FakeStock, FakeUsers
from tests.fixtures.postgres import start_thread, wait_until_blocked
from tests.fixtures.statements import statements
from tests.unit.order.conftest import NOW

pytestmark = pytest.mark.integration

SKUS = (101, 102, 103, 104, 105)


@pytest.fixture
def neighbours() -> tuple[FakeCatalog, FakeStock, FakeMembers, FakeUsers]:
    catalog = FakeCatalog()
    for sku_id in SKUS:
        catalog.put(sku_id, price_fen=sku_id * 10)
    return catalog, FakeStock(catalog, {sku_id: 100 for sku_id in SKUS}), FakeMembers(), FakeUsers()


def submit(uow: Callable[[], SqlOrderUnitOfWork], neighbours: tuple[FakeCatalog, FakeStock, FakeMembers, FakeUsers],
           request: CheckoutInput, key: str) -> Order:
    _, stock, members, users = neighbours
    return service.submit_order(uow(), members, stock, users, OrderSettings(), user_id=1, request=request, note="",
                                idempotency_key=key, request_fingerprint=repr(request).encode(), now=NOW)


def in_cart(uow: Callable[[], SqlOrderUnitOfWork], sku_ids: tuple[int, ...]) -> tuple[int, ...]:
    with uow() as work:
        items = [CartItem(user_id=1, sku_id=sku_id, product_id=10, quantity=2, added_price_fen=sku_id * 10,
                          selected=True, created_at=NOW) for sku_id in sku_ids]
        for item in items:
            work.carts.add(item)
        work.commit()
        return tuple(item.id or 0 for item in items)


@contextmanager
def commits(engine: Engine) -> Iterator[list[None]]:
    """The transactions committed on `engine` inside the block, one item each."""
    committed: list[None] = []

    def record(conn: Any) -> None:
        committed.append(None)

    event.listen(engine, "commit", record)
    try:
        yield committed
    finally:
        event.remove(engine, "commit", record)


def test_a_buy_now_order_is_nine_statements_in_one_transaction_and_is_answered_as_stored(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine, neighbours: Any) -> None:
    with statements(pg_engine) as sent, commits(pg_engine) as committed:
        order = submit(pg_uow, neighbours, CheckoutInput(sku_id=101, quantity=2, address_id=7), "buy-now")

    # the attempt (autocommitted on its own, before the stock is reserved); then claim the key, the shopper's lock and
    # their unpaid orders counted, the order, its lines, its history, order-created, the key's response
    assert sent == ["INSERT submit_attempts",
                    "INSERT idempotency_keys", "SELECT pg_advisory_xact_lock", "SELECT orders", "INSERT orders", "INSERT order_lines", "INSERT order_transitions",
                    "INSERT outbox", "UPDATE idempotency_keys"]
    assert len(committed) == 1
    read = service.get_order(pg_uow(), user_id=1, order_id=order.id or 0)
    assert order_message(order, staff=True, open_cases={}) == order_message(read, staff=True, open_cases={})


def test_a_cart_order_costs_the_same_statements_for_one_line_or_three(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine, neighbours: Any) -> None:
    one, rest = in_cart(pg_uow, SKUS[:1]), in_cart(pg_uow, SKUS[1:])  # not the same SKU twice in one cart
    with statements(pg_engine) as for_one:
        first = submit(pg_uow, neighbours, CheckoutInput(cart_item_ids=one, address_id=7), "one-line")
    with statements(pg_engine) as for_three:
        second = submit(pg_uow, neighbours, CheckoutInput(cart_item_ids=rest[:3], address_id=7), "three-lines")

    assert for_one == for_three == ["INSERT submit_attempts", "INSERT idempotency_keys", "SELECT pg_advisory_xact_lock",
                                   "SELECT orders", "SELECT cart_items", "INSERT orders",
                                   "INSERT order_lines", "INSERT order_transitions", "DELETE cart_items",
                                   "INSERT outbox", "UPDATE idempotency_keys"]
    assert (len(first.lines), len(second.lines)) == (1, 3)
    with pg_uow() as work:
        assert [item.sku_id for item in work.carts.for_user(1)] == [SKUS[4]]  # only the ordered lines left the cart


def test_a_replay_reads_the_stored_order_and_writes_nothing(pg_uow: Callable[[], SqlOrderUnitOfWork],
                                                            pg_engine: Engine, neighbours: Any) -> None:
    request = CheckoutInput(sku_id=101, quantity=2, address_id=7)
    first = submit(pg_uow, neighbours, request, "replayed")
    with statements(pg_engine) as sent:
        again = submit(pg_uow, neighbours, request, "replayed")

    assert again.id == first.id
    # the attempt (its key's recorded already: nothing written) and the claim (the key's claimed already)
    assert [s for s in sent if not s.startswith("SELECT")] == ["INSERT submit_attempts", "INSERT idempotency_keys"]


def test_cart_lines_two_submits_with_different_keys_check_out_at_the_same_time_become_one_order(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine, neighbours: Any) -> None:
    catalog, stock, members, users = neighbours
    [item_id] = in_cart(pg_uow, SKUS[:1])  # 2 x SKU 101 at 1,010 fen
    request = CheckoutInput(cart_item_ids=(item_id,), address_id=7)
    second: dict[str, object] = {}
    tapped: list[threading.Thread] = []

    class SecondTapMeanwhile(FakeStock):
        """The first submit's reservation is where a second tap (another key, a client that made a new one) checks the
        same cart line out: it waits for the shopper's lock, which the first holds from before it read the cart until
        it commits, and then finds the line gone."""

        def reserve(self, order_no: str, lines: list[StockLine]) -> dict[int, CatalogSku]:
            held = super().reserve(order_no, lines)
            if not tapped:
                tapped.append(start_thread(second, "second-tap", lambda: submit(
                    pg_uow, (catalog, self, members, users), request, "second-tap")))
                wait_until_blocked(pg_engine, tapped[0])
            return held

    racing = SecondTapMeanwhile(catalog, stock.available)
    first = service.submit_order(pg_uow(), members, racing, users, OrderSettings(), user_id=1, request=request,
                                 note="", idempotency_key="first-tap", request_fingerprint=repr(request).encode(),
                                 now=NOW)
    tapped[0].join()

    assert second == {"second-tap": "CART_ITEM_NOT_FOUND"}
    with pg_uow() as work:
        placed = work.orders.search(OrderSearch(user_id=1))
        assert ([order.order_no for order in placed[0]], work.carts.for_user(1)) == ([first.order_no], [])
    # the first order holds its 2 units; the second held none
    assert (racing.available[101], list(racing.reserved)) == (98, [first.order_no])


def test_removing_a_cart_line_deletes_it_alone(uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    first, second = in_cart(uow, SKUS[:2])
    service.remove_cart_item(uow(), user_id=1, item_id=first)
    with pytest.raises(NotFound):
        service.remove_cart_item(uow(), user_id=1, item_id=first)

    with uow() as work:
        assert [(item.id, item.sku_id, item.quantity) for item in work.carts.for_user(1)] == [(second, SKUS[1], 2)]
