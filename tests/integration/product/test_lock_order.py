"""The lock order of services/product/service.py on PostgreSQL: an admin's edit and the order-paid confirmation, or two
confirmations of orders spanning the same products, interleaved at the point where, taking product and SKU rows in
opposite orders, they deadlocked (PostgreSQL failed one: the admin got 503, the consumer retried). Explicit
synchronisation: the first transaction pauses just before a given statement, starts the second, and goes on once the
second waits for a lock (or has finished)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, event

from services.product import service
from services.product.domain import StockLine
from tests.fixtures.postgres import wait_until_blocked
from tests.integration.product.conftest import Shelf, UowFactory, confirm_paid

pytestmark = pytest.mark.integration


class PauseBefore:
    """Pauses this thread's transaction the `nth` time it is about to run a statement starting with `prefix` and
    containing `containing`, runs `meanwhile` in another thread until that waits for a lock (or ends), then goes on.
    `outcome()`: what `meanwhile` returned or raised."""

    def __init__(self, engine: Engine, prefix: str, meanwhile: Callable[[], object], *, containing: str = "",
                 nth: int = 1) -> None:
        self.engine, self.prefix, self.containing, self.nth = engine, prefix, containing, nth
        self.meanwhile = meanwhile
        self.owner = threading.get_ident()
        self.seen = 0
        self.results: list[object] = []
        self.thread: threading.Thread | None = None
        event.listen(engine, "before_cursor_execute", self._before)

    def _before(self, conn: Any, cursor: Any, statement: str, *args: object) -> None:
        if threading.get_ident() != self.owner or not statement.startswith(self.prefix) \
                or self.containing not in statement:
            return
        self.seen += 1
        if self.seen == self.nth:
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()
            wait_until_blocked(self.engine, self.thread)

    def _run(self) -> None:
        try:
            self.results.append(self.meanwhile())
        except Exception as exc:  # the outcome the test asserts on
            self.results.append(exc)

    def outcome(self) -> object:
        event.remove(self.engine, "before_cursor_execute", self._before)
        assert self.thread is not None, "the statement to pause before never ran"
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the racing transaction never ended"
        [result] = self.results
        return result


def attempt(action: Callable[[], object]) -> object:
    try:
        return action()
    except Exception as exc:  # a deadlock victim: asserted on below
        return exc


@pytest.mark.parametrize("first", ["confirmation", "edit"])
def test_an_admin_edit_and_the_order_paid_confirmation_of_its_sku_never_deadlock(
        pg_uow: UowFactory, pg_engine: Engine, first: str) -> None:
    shelf = Shelf(pg_uow)
    phone = shelf.product("手机", colours=("黑", "白"), stock=50)
    black, white = shelf.sku_ids(phone)
    service.reserve_stock(pg_uow(), order_no="X", lines=[StockLine(black, 2), StockLine(white, 3)])

    def confirm() -> object:
        return confirm_paid(pg_uow(), "X")

    def edit() -> object:
        view = service.update_product(pg_uow(), actor_id=7, product_id=phone, version=1,
                                      draft=shelf.draft("手机 Pro", colours=("黑", "白"), stock=0))
        return view.product.version

    if first == "confirmation":
        # The confirmation holds the SKU rows it made sales of, and is about to add them to the product's sales;
        # the edit locks the product, then its SKUs.
        pause = PauseBefore(pg_engine, "UPDATE products", edit)
        answers = {"confirmation": attempt(confirm)}
        answers["edit"] = pause.outcome()
    else:
        # The edit holds the product row and is about to lock its SKU rows; the confirmation comes in between.
        pause = PauseBefore(pg_engine, "SELECT skus.", confirm, containing="FOR UPDATE")
        answers = {"edit": attempt(edit)}
        answers["confirmation"] = pause.outcome()

    product = service.get_admin_product(pg_uow(), product_id=phone).product
    assert answers == {"confirmation": "CONFIRMED", "edit": 2}
    assert (product.name, product.status, product.sales, [(s.stock, s.sales) for s in product.active_skus]) == (
        "手机 Pro", "PENDING_AUDIT", 5, [(48, 2), (47, 3)])
    assert service.check_stock_ledger(pg_uow()) == (2, [])


def test_two_confirmations_of_orders_spanning_two_products_in_opposite_sku_orders_never_deadlock(
        pg_uow: UowFactory, pg_engine: Engine) -> None:
    shelf = Shelf(pg_uow)
    phone = shelf.product("手机", colours=("黑",))
    kettle = shelf.product("电水壶", colours=("白", "红"))
    # a SKU added to the phone later (the edit sends it back to audit): its id is above the kettle's
    service.update_product(pg_uow(), actor_id=7, product_id=phone, version=1,
                           draft=shelf.draft("手机", colours=("黑", "蓝")))
    service.audit_product(pg_uow(), actor_id=1, product_id=phone, approve=True)
    service.set_shelf(pg_uow(), actor_id=7, product_id=phone, on_shelf=True)
    black, blue = shelf.sku_ids(phone)
    white, red = shelf.sku_ids(kettle)
    assert black < white < red < blue
    # X: phone's black, then kettle's red; Y: kettle's white, then phone's blue (each confirms in SKU order)
    service.reserve_stock(pg_uow(), order_no="X", lines=[StockLine(black, 1), StockLine(red, 2)])
    service.reserve_stock(pg_uow(), order_no="Y", lines=[StockLine(white, 4), StockLine(blue, 8)])

    # X has sold its first SKU (and, taking locks as it went, its product) and is about to sell its second
    pause = PauseBefore(pg_engine, "UPDATE skus", lambda: confirm_paid(pg_uow(), "Y"), nth=2)
    answers = [attempt(lambda: confirm_paid(pg_uow(), "X")), pause.outcome()]

    products = [service.get_admin_product(pg_uow(), product_id=p).product for p in (phone, kettle)]
    assert answers == ["CONFIRMED", "CONFIRMED"]
    assert [(p.sales, [(s.stock, s.sales) for s in p.active_skus]) for p in products] == [
        (9, [(49, 1), (42, 8)]), (6, [(46, 4), (48, 2)])]
    assert service.check_stock_ledger(pg_uow()) == (4, [])


def test_a_brand_rename_reindexing_its_products_and_an_edit_of_one_of_them_never_deadlock(
        pg_uow: UowFactory, pg_engine: Engine) -> None:
    shelf = Shelf(pg_uow)
    phone = shelf.product("手机", colours=("黑",))

    def rename() -> object:
        return service.save_brand(pg_uow(), actor_id=8, brand_id=1, name="华为终端").name

    # The edit holds the product and its SKUs and is about to replace the product's search terms; the rename (which
    # writes the same product's terms, whose foreign key needs the product row) comes in between.
    pause = PauseBefore(pg_engine, "DELETE FROM search_terms", rename)
    answers = {"edit": attempt(lambda: service.update_product(
        pg_uow(), actor_id=7, product_id=phone, version=1, draft=shelf.draft("手机 Pro", colours=("黑",))
    ).product.version)}
    answers["rename"] = pause.outcome()

    assert answers == {"edit": 2, "rename": "华为终端"}
    assert [view.product.id for view in service.search_products(pg_uow(), q="华为终端 Pro", staff=True).items] == [
        phone]
