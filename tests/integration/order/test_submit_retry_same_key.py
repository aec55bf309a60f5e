"""A submit retried under the same Idempotency-Key after its first attempt's outcome was unknown, on PostgreSQL,
with the product service's stock reservations and the member service's coupon locks on their own databases.

The first attempt's commit fails (the order is not stored) and its compensation cannot reach the product and
member services (as when the process dies before it runs): its reservation and coupon lock stay held under its
order number, which it recorded (submit_attempts) before asking for them. The retry, holding the key's claim, finds
that number without an order and releases what it holds before asking anew under its own number.
"""

from __future__ import annotations

import concurrent.futures
import functools
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from services.common.errors import Conflict, DomainError, ErrorKind
from services.member import service as member_service
from services.member.db import SqlMemberUnitOfWork
from services.member.domain import OrderLine
from services.order import service
from services.order.db import SqlOrderUnitOfWork, orders, start_mappers, submit_attempts
from services.order.ports import CatalogSku, CouponLine, LockedCoupon, StockLine
from services.order.service import CheckoutInput, OrderSettings
from services.product import service as products
from services.product.db import SqlProductUnitOfWork
from services.product.db import start_mappers as start_product_mappers
from services.product.domain import StockLine as ProductStockLine
from tests.fakes import FakeCatalog, FakeCategories, FakeMembers, FakeUsers
from tests.fixtures.postgres import start_thread, wait_until_blocked
from tests.integration.order.test_submit_commit_outcome import CommitRaises
from tests.integration.product.conftest import Shelf
from tests.unit.order.conftest import NOW

pytestmark = pytest.mark.integration

SHOPPER, KEY, STOCK, PRICE_FEN, COUPON_FEN = 1, "retry-key-1", 10, 10_000, 1_000


def unreachable(service_name: str) -> DomainError:
    return DomainError(f"{service_name.upper()}_UNAVAILABLE", f"the {service_name} service did not answer",
                       kind=ErrorKind.UNAVAILABLE)


class ProductStock:
    """The order service's Stock port over the product service's own use cases and database; `down` makes
    releases fail, as a compensation that never reaches the product service."""

    def __init__(self, uow: Callable[[], SqlProductUnitOfWork], catalog: FakeCatalog) -> None:
        self.uow, self.catalog, self.down = uow, catalog, False
        self.reserved_for: list[str] = []
        self.released: list[str] = []  # the order numbers whose release reached the product service
        self.before_reserve: Callable[[], None] = lambda: None
        self.after_reserve: Callable[[], None] = lambda: None

    def reserve(self, order_no: str, lines: list[StockLine]) -> dict[int, CatalogSku]:
        self.before_reserve()
        self.reserved_for.append(order_no)
        products.reserve_stock(self.uow(), order_no=order_no,
                               lines=[ProductStockLine(line.sku_id, line.quantity) for line in lines], now=NOW)
        self.after_reserve()
        return self.catalog.skus({line.sku_id for line in lines})

    def release(self, order_no: str) -> None:
        if self.down:
            raise unreachable("product")
        products.release_reservation(self.uow(), order_no=order_no)
        self.released.append(order_no)


class MemberCoupons(FakeMembers):
    """Coupons locked and released by the member service's own use cases and database (as the shopper)."""

    def __init__(self, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
        super().__init__(points=1_000)  # points held in memory (locked_points), coupons in the member database
        self.uow, self.down = uow, False
        self.released: list[tuple[str, str]] = []  # (what, order number) of each release that reached the service

    def lock_coupon(self, order_no: str, coupon_id: int, lines: list[CouponLine]) -> LockedCoupon:
        locked = member_service.lock_coupon(self.uow(), user_id=SHOPPER, order_no=order_no, coupon_id=coupon_id,
                                            lines=[OrderLine(line.category_id, line.amount_fen) for line in lines],
                                            now=NOW)
        return LockedCoupon(locked.discount_fen, frozenset(locked.category_ids))

    def release_coupon(self, order_no: str) -> None:
        if self.down:
            raise unreachable("member")
        member_service.release_coupon(self.uow(), order_no=order_no)
        self.released.append(("coupon", order_no))

    def release_points(self, order_no: str) -> None:
        if self.down:
            raise unreachable("member")
        super().release_points(order_no)
        self.released.append(("points", order_no))


class Shop:
    def __init__(self, order_engine: Engine, stock: ProductStock, members: MemberCoupons, sku_id: int,
                 product_id: int, coupon_id: int, shelf: Shelf) -> None:
        self.order_engine, self.stock, self.members, self.shelf = order_engine, stock, members, shelf
        self.sku_id, self.product_id, self.coupon_id = sku_id, product_id, coupon_id

    def checkout(self, quantity: int = 2, points: int = 0) -> CheckoutInput:
        return CheckoutInput(sku_id=self.sku_id, quantity=quantity, address_id=7, coupon_id=self.coupon_id,
                             points=points)

    def submit(self, uow: SqlOrderUnitOfWork, checkout: CheckoutInput) -> Any:
        return service.submit_order(uow, self.members, self.stock, FakeUsers(), OrderSettings(), user_id=SHOPPER,
                                    request=checkout, note="", idempotency_key=KEY,
                                    request_fingerprint=repr(checkout).encode(), now=NOW)

    def first_attempt_lost(self, checkout: CheckoutInput) -> str:
        """An attempt that reaches the product and member services until its stock is held, then is lost: its commit
        fails without committing and its compensation reaches nobody; its order number."""
        def cut_off() -> None:
            self.stock.down = self.members.down = True

        self.stock.after_reserve = cut_off
        with pytest.raises(Exception):  # noqa: B017 - the client sees only that the request failed
            self.submit(CommitRaises(self.order_engine, committed=False), checkout)
        self.stock.after_reserve = lambda: None
        self.stock.down = self.members.down = False
        return self.stock.reserved_for[-1]

    def recorded_attempt(self) -> str | None:
        with self.order_engine.connect() as conn:
            return conn.execute(select(submit_attempts.c.order_no)).scalar_one_or_none()

    def state(self) -> tuple[int, int, str, str | None]:
        """(orders stored, units of the SKU left on sale, the coupon's status, the order number holding it)."""
        with self.order_engine.connect() as conn:
            stored = conn.execute(select(func.count()).select_from(orders)).scalar_one()
        with self.members.uow() as tx:
            coupon = tx.coupons.get(self.coupon_id)
            assert coupon is not None
            status, holder = str(coupon.status), coupon.order_no
        return stored, self.shelf.stock(self.product_id)[0], status, holder


@pytest.fixture
def shop(pg_engine: Engine, service_engine: Callable[[str], Engine],
         member_uow: Callable[[], SqlMemberUnitOfWork]) -> Shop:
    start_mappers()
    start_product_mappers()
    shelf = Shelf(functools.partial(SqlProductUnitOfWork, service_engine("product"), "product"))
    product_id = shelf.product("保温杯", stock=STOCK, price_fen=PRICE_FEN)
    (sku_id,) = shelf.sku_ids(product_id)
    catalog = FakeCatalog()
    catalog.put(sku_id, product_id=product_id, price_fen=PRICE_FEN)
    member_service.sign_up(member_uow(), user_id=SHOPPER, channel="self", invite_code=None, now=NOW)
    template = member_service.create_coupon_template(
        member_uow(), FakeCategories(), name="10 off", kind="fixed", amount_fen=COUPON_FEN, percent_off=0,
        threshold_fen=0, cap_fen=0, total=10, per_user_limit=10, valid_from=NOW.replace(day=1, hour=0),
        valid_to=NOW.replace(year=NOW.year + 1), category_ids=[], needs_approval=False, now=NOW)
    coupon, _ = member_service.claim_coupon(member_uow(), user_id=SHOPPER, template_id=template.id or 0, now=NOW)
    return Shop(pg_engine, ProductStock(shelf.uow, catalog), MemberCoupons(member_uow), sku_id, product_id,
                coupon.id or 0, shelf)


def test_the_lost_first_attempt_keeps_its_stock_and_coupon_held_under_its_order_number(shop: Shop) -> None:
    first_order_no = shop.first_attempt_lost(shop.checkout())

    assert shop.state() == (0, STOCK - 2, "locked", first_order_no)


def test_a_retry_after_a_lost_first_attempt_places_one_order_using_the_coupon_with_stock_held_once(
        pg_uow: Callable[[], SqlOrderUnitOfWork], shop: Shop) -> None:
    first_order_no = shop.first_attempt_lost(shop.checkout())

    order = shop.submit(pg_uow(), shop.checkout())

    assert order.order_no != first_order_no  # a new number: the lost one's reservation is released for good
    assert order.payable_fen == 2 * PRICE_FEN - COUPON_FEN
    assert shop.stock.reserved_for == [first_order_no, order.order_no]
    assert shop.state() == (1, STOCK - 2, "locked", order.order_no)


def test_the_retry_releases_the_lost_attempt_s_stock_coupon_and_points_once_before_holding_its_own(
        pg_uow: Callable[[], SqlOrderUnitOfWork], shop: Shop) -> None:
    checkout = shop.checkout(points=300)
    first_order_no = shop.first_attempt_lost(checkout)
    assert shop.members.locked_points == {first_order_no: 300}
    seen_before_reserving: list[object] = []
    shop.stock.before_reserve = lambda: seen_before_reserving.append(
        (shop.state(), dict(shop.members.locked_points)))

    order = shop.submit(pg_uow(), checkout)

    assert seen_before_reserving == [((0, STOCK, "available", None), {})]
    assert (shop.stock.released, shop.members.released) == (
        [first_order_no], [("coupon", first_order_no), ("points", first_order_no)])
    assert order.payable_fen == 2 * PRICE_FEN - COUPON_FEN - 3  # 300 points are 3 fen
    assert shop.state() == (1, STOCK - 2, "locked", order.order_no)
    assert shop.members.locked_points == {order.order_no: 300}
    assert shop.recorded_attempt() == order.order_no


def test_a_retry_that_cannot_release_the_lost_attempt_answers_503_and_changes_nothing_then_the_next_succeeds(
        pg_uow: Callable[[], SqlOrderUnitOfWork], shop: Shop) -> None:
    first_order_no = shop.first_attempt_lost(shop.checkout())
    shop.stock.down = shop.members.down = True

    with pytest.raises(DomainError) as refused:
        shop.submit(pg_uow(), shop.checkout())

    assert (refused.value.code, refused.value.kind) == ("ORDER_ATTEMPT_UNRELEASED", ErrorKind.UNAVAILABLE)
    assert shop.stock.reserved_for == [first_order_no]  # nothing asked for anew
    assert shop.state() == (0, STOCK - 2, "locked", first_order_no)
    assert shop.recorded_attempt() == first_order_no

    shop.stock.down = shop.members.down = False
    order = shop.submit(pg_uow(), shop.checkout())

    assert shop.state() == (1, STOCK - 2, "locked", order.order_no)
    assert shop.stock.released == [first_order_no]


def test_a_retry_lost_in_turn_is_released_by_the_next_one(pg_uow: Callable[[], SqlOrderUnitOfWork],
                                                          shop: Shop) -> None:
    first_order_no = shop.first_attempt_lost(shop.checkout())
    second_order_no = shop.first_attempt_lost(shop.checkout())  # released the first's holds, then was lost itself

    order = shop.submit(pg_uow(), shop.checkout())

    assert shop.stock.released == [first_order_no, second_order_no]
    assert len({first_order_no, second_order_no, order.order_no}) == 3
    assert shop.state() == (1, STOCK - 2, "locked", order.order_no)


def test_the_same_key_with_another_body_after_a_placed_order_is_refused_and_keeps_that_order_s_holds(
        pg_uow: Callable[[], SqlOrderUnitOfWork], shop: Shop) -> None:
    placed = shop.submit(pg_uow(), shop.checkout(quantity=2))

    with pytest.raises(Conflict) as refused:
        shop.submit(pg_uow(), shop.checkout(quantity=3))

    assert refused.value.code == "IDEMPOTENCY_KEY_REUSED"
    assert shop.stock.reserved_for == [placed.order_no]  # the refused request reserved nothing
    assert shop.state() == (1, STOCK - 2, "locked", placed.order_no)


def test_two_concurrent_submits_with_the_same_key_place_one_order_and_reserve_its_stock_once(
        pg_uow: Callable[[], SqlOrderUnitOfWork], shop: Shop) -> None:
    barrier = threading.Barrier(2)

    def attempt() -> str:
        barrier.wait()
        return shop.submit(pg_uow(), shop.checkout()).order_no

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answered = list(pool.map(lambda _: attempt(), range(2)))

    assert answered[0] == answered[1]
    assert shop.stock.reserved_for == [answered[0]]
    assert shop.state() == (1, STOCK - 2, "locked", answered[0])


def test_a_retry_waits_for_a_first_attempt_still_in_flight_and_never_releases_what_it_holds(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine, shop: Shop) -> None:
    first_holds, first_may_go = threading.Event(), threading.Event()

    def hold_first() -> None:  # the first attempt, its stock held, waits here holding the key's claim
        shop.stock.after_reserve = lambda: None
        first_holds.set()
        assert first_may_go.wait(30)

    shop.stock.after_reserve = hold_first
    results: dict[str, object] = {}
    first = start_thread(results, "first", lambda: shop.submit(pg_uow(), shop.checkout()).order_no)
    assert first_holds.wait(30)
    retry = start_thread(results, "retry", lambda: shop.submit(pg_uow(), shop.checkout()).order_no)
    wait_until_blocked(pg_engine, retry)  # its attempt recorded (or not), its claim waits for the first's
    released_meanwhile = (list(shop.stock.released), list(shop.members.released))
    first_may_go.set()
    first.join()
    retry.join()

    assert released_meanwhile == ([], [])
    # The retry answers the first's order, or DATABASE_BUSY (LockNotAvailable) had its wait passed lock_timeout.
    assert results["retry"] in (results["first"], "LockNotAvailable")
    assert (shop.stock.released, shop.members.released) == ([], [])
    assert shop.stock.reserved_for == [results["first"]]
    assert shop.state() == (1, STOCK - 2, "locked", results["first"])
