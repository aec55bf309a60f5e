"""The expiry sweep of coupon locks and points holds on PostgreSQL: replicas sweeping at once release each lock
once, an order-paid arriving after the sweep takes them again, and the locks of orders the order service says were
paid stay held."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from services.common.db import utcnow
from services.member import service
from services.member.db import SqlMemberUnitOfWork
from services.member.domain import (
    CHECKOUT_HOLD_TTL,
    PLATFORM,
    Account,
    Coupon,
    CouponTemplate,
    OrderLine,
    transfer,
)
from tests.fakes import FakeCategories, FakeOrders
from tests.fixtures.member_orders import award_points_for_order

pytestmark = pytest.mark.integration

ALICE, ORDERS = 8181, 6


def member_with_points(uow: Callable[[], SqlMemberUnitOfWork], user_id: int, points: int,
                       taken: datetime) -> CouponTemplate:
    """`user_id`, a member with `points` points, and a coupon template (10 yuan off, 10 per user) to claim from."""
    service.sign_up(uow(), user_id=user_id, channel="self", invite_code=None, now=taken)
    with uow() as tx:
        tx.ledger.post(transfer(f"seed:{user_id}", "order_paid", "seed", amount=points,
                                source=(PLATFORM, Account.POINTS_ISSUED), target=(user_id, Account.POINTS)), taken)
        tx.commit()
    return service.create_coupon_template(
        uow(), FakeCategories(), name="10 off", kind="fixed", amount_fen=1_000, percent_off=0, threshold_fen=0, cap_fen=0, total=10,
        per_user_limit=10, valid_from=taken - timedelta(days=1), valid_to=taken + timedelta(days=7), category_ids=[],
        needs_approval=False, now=taken)


def mine(tx: SqlMemberUnitOfWork, user_id: int) -> list[tuple[Coupon, CouponTemplate]]:
    """Every coupon of the user's (a page wider than they hold), newest first."""
    return tx.coupons.of_user(user_id, status="", now=utcnow(), offset=0, limit=100)[0]


def test_replicas_release_each_unsettled_lock_once_and_a_late_payment_takes_it_again(
        uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    taken = utcnow() - CHECKOUT_HOLD_TTL - timedelta(minutes=1)
    template = member_with_points(uow, ALICE, 6_000, taken)
    for n in range(ORDERS):
        coupon, _ = service.claim_coupon(uow(), user_id=ALICE, template_id=template.id or 0, now=taken)
        service.lock_coupon(uow(), user_id=ALICE, order_no=f"OX{n}", coupon_id=coupon.id or 0,
                            lines=[OrderLine(1, 10_000)], now=taken)
        service.lock_points(uow(), user_id=ALICE, order_no=f"OX{n}", points=500, payable_fen=10_000, now=taken)
    service.lock_points(uow(), user_id=ALICE, order_no="O-young", points=500, payable_fen=10_000)  # just now

    released: list[int] = []
    barrier = threading.Barrier(3)

    def replica() -> None:
        barrier.wait()
        released.append(service.expire_checkout_holds(uow, FakeOrders(), batch=2))  # orders never stored

    threads = [threading.Thread(target=replica) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    award_points_for_order(uow(), order_no="OX0", user_id=ALICE, paid_fen=9_000)  # paid after all

    assert sum(released) == 2 * ORDERS  # each coupon and each hold once; the young hold stays
    with uow() as tx:
        assert (tx.ledger.balance(ALICE, Account.POINTS), tx.ledger.balance(ALICE, Account.POINTS_LOCKED)) == (
            6_000 - 500 - 500 + 90, 500)  # OX0's 500 taken again; O-young's still held
        statuses = sorted(coupon.status for coupon, _ in mine(tx, ALICE))
        assert statuses == ["available"] * (ORDERS - 1) + ["used"]
        assert tx.coupons.by_order("OX0") is not None and tx.coupons.by_order("OX1") is None
        assert tx.ledger.check()[1] == []


def test_a_cancellation_read_before_the_late_payment_keeps_the_swept_coupon_and_points_with_the_shopper(
        uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    taken, user = utcnow() - CHECKOUT_HOLD_TTL - timedelta(minutes=1), ALICE + 1
    template = member_with_points(uow, user, 1_000, taken)
    coupon, _ = service.claim_coupon(uow(), user_id=user, template_id=template.id or 0, now=taken)
    service.lock_coupon(uow(), user_id=user, order_no="OC1", coupon_id=coupon.id or 0, lines=[OrderLine(1, 10_000)],
                        now=taken)
    service.lock_points(uow(), user_id=user, order_no="OC1", points=300, payable_fen=10_000, now=taken)
    swept = service.expire_checkout_holds(uow, FakeOrders())  # OC1 never stored

    with uow() as tx:  # order-cancelled of the paid order, read before its order-paid
        service.apply_order_cancelled(tx, order_no="OC1", was_paid=True, now=utcnow())
        tx.commit()
    award_points_for_order(uow(), order_no="OC1", user_id=user, paid_fen=9_700)

    assert swept == 2
    with uow() as tx:
        assert (tx.ledger.balance(user, Account.POINTS), tx.ledger.balance(user, Account.POINTS_LOCKED)) == (
            1_000 + 97, 0)  # nothing taken again, only what the payment earned
        assert [c.status for c, _ in mine(tx, user)] == ["available"]
        assert tx.coupons.expired_lock("OC1") is None
        assert tx.ledger.check()[1] == []


def test_the_locks_of_paid_and_unpaid_orders_stay_held_and_those_of_cancelled_ones_go_page_by_page(
        uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    taken, user = utcnow() - CHECKOUT_HOLD_TTL - timedelta(minutes=1), ALICE + 2
    template = member_with_points(uow, user, 1_000, taken)
    orders = FakeOrders()
    for order_no, status, paid in [("OP1", "PAID", True), ("OP2", "CANCELLED", False),
                                   ("OP3", "PENDING_PAYMENT", False), ("OP4", "CLOSED", False)]:
        coupon, _ = service.claim_coupon(uow(), user_id=user, template_id=template.id or 0, now=taken)
        service.lock_coupon(uow(), user_id=user, order_no=order_no, coupon_id=coupon.id or 0,
                            lines=[OrderLine(1, 10_000)], now=taken)
        service.lock_points(uow(), user_id=user, order_no=order_no, points=100, payable_fen=10_000, now=taken)
        orders.place(order_no, status, paid=paid)

    swept = service.expire_checkout_holds(uow, orders, batch=3)

    assert swept == 2 * 2  # OP2's and OP4's coupon and points
    with uow() as tx:
        assert (tx.ledger.balance(user, Account.POINTS), tx.ledger.balance(user, Account.POINTS_LOCKED)) == (
            1_000 - 200, 200)  # OP1's and OP3's still held
        held = sorted((c.order_no, c.status) for c, _ in mine(tx, user) if c.order_no)
        assert held == [("OP1", "locked"), ("OP3", "locked")]
    pages = [["OP1", "OP2", "OP3"], ["OP4"]]
    assert orders.asked == pages + pages  # once a page: the points holds', then the coupon locks'
