"""Staff changes racing each other, or checkouts, on PostgreSQL: one waits for the other (row or advisory lock) and
then sees what it did. Explicit synchronisation: the first change pauses inside its transaction, starts the second,
and goes on once the second waits for a lock (or, without one, has finished)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, func, select

from services.common.errors import Conflict, InvalidInput
from services.product import service
from services.product.db import (
    SqlBrandRepository,
    SqlDeliveryRepository,
    SqlStockRepository,
    brands,
    categories,
    products,
    reservations,
)
from services.product.domain import Brand, BrandExists, Category, Product, StockLine
from services.product.service import Delivery
from tests.fixtures.postgres import wait_until_blocked
from tests.integration.product.conftest import Shelf, UowFactory

pytestmark = pytest.mark.integration


class Racing:
    """`action` run in another thread, started by `meanwhile` once; `result()` is what it returned or raised."""

    def __init__(self) -> None:
        self.outcome: list[object] = []
        self.thread: threading.Thread | None = None

    def meanwhile(self, engine: Engine, action: Callable[[], object], *, waiting: int = 1) -> None:
        """The first time only: start `action`, and return once it waits for a lock (once `waiting` transactions
        do: the others racing with it) or has ended."""
        if self.thread is not None:
            return
        self.thread = threading.Thread(target=self._run, args=(action,), daemon=True)
        self.thread.start()
        wait_until_blocked(engine, self.thread, waiting=waiting)

    def _run(self, action: Callable[[], object]) -> None:
        try:
            self.outcome.append(action())
        except Exception as exc:  # the outcome the test asserts on
            self.outcome.append(exc)

    def result(self) -> object:
        assert self.thread is not None, "the racing change never started"
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the racing change never ended"
        [answer] = self.outcome
        return answer


def code(outcome: object) -> object:
    return outcome.code if isinstance(outcome, Conflict) else outcome


def test_a_restock_racing_the_edit_that_retires_its_sku_is_refused_and_no_units_vanish(
        pg_uow: UowFactory, pg_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    shelf = Shelf(pg_uow)
    product_id = shelf.product("手机", status="draft", colours=("黑", "白"), stock=0)
    _, white = shelf.sku_ids(product_id)
    restock = Racing()
    edit = Product.edit

    def edit_then_restock(product: Product, *args: object, **kwargs: object) -> None:
        edit(product, *args, **kwargs)  # 白 has no units: it may be retired
        restock.meanwhile(pg_engine, lambda: service.adjust_stock(pg_uow(), actor_id=9, product_id=product_id,
                                                                  sku_id=white, delta=5))
    monkeypatch.setattr(Product, "edit", edit_then_restock)

    service.update_product(pg_uow(), actor_id=7, product_id=product_id,
                           draft=shelf.draft("手机", colours=("黑",), stock=0), version=1)

    with pg_uow() as tx:
        retired = next(sku for sku in tx.products.get(product_id).skus if sku.id == white)  # type: ignore[union-attr]
        state = (retired.active, retired.stock)
    assert (code(restock.result()), state) == ("SKU_RETIRED", (False, 0))


def test_two_category_moves_that_together_make_a_cycle_cannot_both_pass(
        pg_uow: UowFactory, pg_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    with pg_uow() as tx:
        for name, parent in (("A", None), ("B", None), ("A1", 1)):
            tx.categories.add(Category(name, parent_id=parent))
        tx.commit()
    b_under_a = Racing()
    check = service.check_category

    def check_then_move_b(category: Category, everything: object, stored: Category | None = None) -> None:
        check(category, everything, stored)  # type: ignore[arg-type]  # A under B: no cycle in the tree as read
        b_under_a.meanwhile(pg_engine, lambda: service.save_category(pg_uow(), actor_id=8, category_id=2, name="B",
                                                                      parent_id=1))
    monkeypatch.setattr(service, "check_category", check_then_move_b)

    service.save_category(pg_uow(), actor_id=7, category_id=1, name="A", parent_id=2)

    refused = b_under_a.result()
    with pg_uow() as tx:
        parents = {c.name: c.parent_id for c in tx.categories.all()}
    assert (type(refused), getattr(refused, "code", None), parents,
            [node.category.name for node in service.list_categories(pg_uow())]) == (
        InvalidInput, "CATEGORY_INVALID", {"A": 2, "B": None, "A1": 1}, ["B"])


def test_two_admins_creating_one_brand_name_at_once_get_one_brand_and_one_brand_exists(
        pg_uow: UowFactory, pg_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    second = Racing()
    add = SqlBrandRepository.add

    def add_then_create_again(brands: SqlBrandRepository, brand: Brand) -> None:
        add(brands, brand)  # inserted, not committed: the other admin's check cannot see it
        second.meanwhile(pg_engine, lambda: service.save_brand(pg_uow(), actor_id=8, name="同名"))
    monkeypatch.setattr(SqlBrandRepository, "add", add_then_create_again)

    service.save_brand(pg_uow(), actor_id=7, name="同名")

    refused = second.result()
    assert (type(refused), code(refused), [b.name for b in service.list_brands(pg_uow())],
            service.settings_audit_log(pg_uow(), entity="brand")[1]) == (BrandExists, "BRAND_EXISTS", ["同名"], 1)


def test_two_admins_setting_a_new_provinces_delivery_at_once_both_succeed_and_the_log_tells_the_order(
        pg_uow: UowFactory, pg_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    second = Racing()
    set_estimate = SqlDeliveryRepository.set_estimate

    def set_then_set_again(delivery: SqlDeliveryRepository, province: str, days: int) -> int | None:
        before = set_estimate(delivery, province, days)  # the row is new, not committed
        second.meanwhile(pg_engine, lambda: service.set_delivery_estimate(pg_uow(), actor_id=8, province="西藏",
                                                                           days=9))
        return before
    monkeypatch.setattr(SqlDeliveryRepository, "set_estimate", set_then_set_again)

    service.set_delivery_estimate(pg_uow(), actor_id=7, province="西藏", days=7)

    answered = second.result()
    entries, _ = service.settings_audit_log(pg_uow(), entity="delivery")
    assert (answered, [(d.province, d.estimate_days) for d in service.delivery_estimates(pg_uow())],
            [(e.actor_id, e.action, e.before, e.after) for e in reversed(entries)]) == (
        Delivery("西藏自治区", 9), [("西藏自治区", 9)],
        [(7, "create", None, {"estimate_days": 7}), (8, "update", {"estimate_days": 7}, {"estimate_days": 9})])


def test_two_creates_racing_with_one_key_create_one_product(pg_uow: UowFactory, pg_engine: Engine,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The second create (a retry after a 503 whose commit went through, sent while the first is still under way)
    waits on the first's key and then answers its product."""
    shelf = Shelf(pg_uow)
    retry = Racing()
    audit = service._audit

    def audit_then_retry(*args: object, **kwargs: object) -> None:
        audit(*args, **kwargs)  # type: ignore[arg-type]
        retry.meanwhile(pg_engine, lambda: service.create_product(pg_uow(), actor_id=7, draft=shelf.draft("手机"),
                                                                  idempotency_key="form-1").product.id)
    monkeypatch.setattr(service, "_audit", audit_then_retry)

    first = service.create_product(pg_uow(), actor_id=7, draft=shelf.draft("手机"), idempotency_key="form-1")

    with pg_engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(products)).scalar_one()
    assert (retry.result(), rows) == (first.product.id, 1)


def test_a_create_retried_with_its_key_answers_the_first_product_and_another_draft_is_a_conflict(
        uow: UowFactory) -> None:
    shelf = Shelf(uow)
    first = service.create_product(uow(), actor_id=7, draft=shelf.draft("手机"), idempotency_key="form-1")
    retried = service.create_product(uow(), actor_id=7, draft=shelf.draft("手机"), idempotency_key="form-1")
    with pytest.raises(Conflict) as other:
        service.create_product(uow(), actor_id=7, draft=shelf.draft("电话"), idempotency_key="form-1")
    unkeyed = service.create_product(uow(), actor_id=7, draft=shelf.draft("手机"))

    assert (retried.product.id, other.value.code, unkeyed.product.id) == (first.product.id, "IDEMPOTENCY_KEY_REUSED",
                                                                          (first.product.id or 0) + 1)
    with uow() as u:
        assert u.session.execute(select(func.count()).select_from(products)).scalar_one() == 2


@pytest.mark.parametrize("create", [
    lambda uow: service.save_brand(uow, actor_id=7, name="膳魔师", idempotency_key="form-1").id,
    lambda uow: service.save_category(uow, actor_id=7, name="平板", idempotency_key="form-1").id],
    ids=["brand", "category"])
def test_two_category_or_brand_creates_racing_with_one_key_create_one(
        pg_uow: UowFactory, pg_engine: Engine, monkeypatch: pytest.MonkeyPatch,
        create: Callable[[object], object]) -> None:
    """The retry (after a 503 whose commit went through, sent while the first is still under way) waits on the
    first's key and answers its brand or category: not BRAND_EXISTS, not a second category."""
    retry = Racing()
    audit = service._settings_audit

    def audit_then_retry(*args: object, **kwargs: object) -> None:
        audit(*args, **kwargs)  # type: ignore[arg-type]
        retry.meanwhile(pg_engine, lambda: create(pg_uow()))
    monkeypatch.setattr(service, "_settings_audit", audit_then_retry)

    first = create(pg_uow())

    with pg_engine.connect() as conn:
        made = [conn.execute(select(func.count()).select_from(table)).scalar_one() for table in (brands, categories)]
    assert (retry.result(), sum(made)) == (first, 1)


def checkouts_queued_behind(change: str, monkeypatch: pytest.MonkeyPatch, pg_engine: Engine, checkouts: list[Racing],
                            reserve: Callable[[str], object]) -> None:
    """Each of `checkouts` started, and waiting for its SKU row, while the staff `change` (a Product method) holds
    it: after the change's domain work, before its commit."""
    method = getattr(Product, change)

    def change_then_checkouts(product: Product, *args: object, **kwargs: object) -> None:
        method(product, *args, **kwargs)
        for i, checkout in enumerate(checkouts):
            checkout.meanwhile(pg_engine, lambda order_no=f"O{i}": reserve(order_no), waiting=i + 1)
    monkeypatch.setattr(Product, change, change_then_checkouts)


@pytest.mark.parametrize("change", ["edit", "shelve"])
def test_checkouts_waiting_behind_a_price_edit_or_a_shelf_off_are_refused_and_hold_nothing(
        pg_uow: UowFactory, pg_engine: Engine, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    """The reservations read the product on sale at 1 fen and then wait for the SKU row the staff change locked: once
    it commits they see it (the edit took the product off sale for audit, the shelf-off off the shelf). Before, the
    stock UPDATE re-checked the SKU row only and reserved at the price read before the edit."""
    shelf = Shelf(pg_uow)
    product_id = shelf.product("手机", price_fen=1, stock=5)
    [sku_id] = shelf.sku_ids(product_id)
    checkouts = [Racing() for _ in range(3)]
    checkouts_queued_behind(change, monkeypatch, pg_engine, checkouts,
                            lambda order_no: service.reserve_stock(pg_uow(), order_no=order_no,
                                                                   lines=[StockLine(sku_id, 1)]))

    if change == "edit":
        service.update_product(pg_uow(), actor_id=7, product_id=product_id,
                               draft=shelf.draft("手机", price_fen=10_000, stock=5), version=1)
    else:
        service.set_shelf(pg_uow(), actor_id=7, product_id=product_id, on_shelf=False)

    outcomes = [checkout.result() for checkout in checkouts]
    with pg_engine.connect() as conn:
        held = conn.execute(select(func.count()).select_from(reservations)).scalar_one()
    assert ([getattr(outcome, "code", outcome) for outcome in outcomes], shelf.stock(product_id), held) == (
        ["SKU_UNAVAILABLE"] * 3, [5], 0)


def test_a_checkout_whose_read_is_older_than_a_repricing_is_answered_at_the_new_price(
        pg_uow: UowFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the reservation's first read and its stock UPDATE the product is repriced (back to audit), approved and
    shelved again: the UPDATE waits for nothing and the product is on sale, so the units are held, and the order is
    answered (and charged) the price they are sold at now, not the 1 fen of the first read."""
    shelf = Shelf(pg_uow)
    product_id = shelf.product("手机", price_fen=1, stock=5)
    [sku_id] = shelf.sku_ids(product_id)
    move = SqlStockRepository.move

    def reprice_then_move(repository: SqlStockRepository, *args: object, **kwargs: object) -> object:
        monkeypatch.setattr(SqlStockRepository, "move", move)
        service.update_product(pg_uow(), actor_id=7, product_id=product_id,
                               draft=shelf.draft("手机", price_fen=10_000, stock=5), version=1)
        service.audit_product(pg_uow(), actor_id=1, product_id=product_id, approve=True)
        service.set_shelf(pg_uow(), actor_id=7, product_id=product_id, on_shelf=True)
        return move(repository, *args, **kwargs)  # type: ignore[arg-type]
    monkeypatch.setattr(SqlStockRepository, "move", reprice_then_move)

    held = service.reserve_stock(pg_uow(), order_no="O1", lines=[StockLine(sku_id, 2)])

    assert [(offer.sku.id, offer.sku.price_fen, offer.sku.stock, offer.on_sale) for offer in held.offers] == [
        (sku_id, 10_000, 3, True)]


def test_two_stock_adjustments_racing_with_one_key_move_the_units_once(pg_uow: UowFactory, pg_engine: Engine,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The retry (after a 503 whose commit went through, sent while the first is still under way) waits on the
    first's key and answers the SKU as the first left it: 5 + 3 units, not 5 + 3 + 3."""
    shelf = Shelf(pg_uow)
    product_id = shelf.product("手机", stock=5)
    [sku_id] = shelf.sku_ids(product_id)
    retry = Racing()
    published = service.publish_changed

    def adjust(uow: object) -> int:
        return service.adjust_stock(uow, actor_id=7, product_id=product_id, sku_id=sku_id, delta=3,  # type: ignore[arg-type]
                                    idempotency_key="stock-form-1").stock

    def publish_then_retry(*args: object, **kwargs: object) -> None:
        published(*args, **kwargs)  # type: ignore[arg-type]
        retry.meanwhile(pg_engine, lambda: adjust(pg_uow()))
    monkeypatch.setattr(service, "publish_changed", publish_then_retry)

    first = adjust(pg_uow())

    assert (first, retry.result(), shelf.stock(product_id)) == (8, 8, [8])
