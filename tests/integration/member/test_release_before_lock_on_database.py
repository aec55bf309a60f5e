"""A LockPoints or LockCoupon that runs after its order's release, on PostgreSQL: the order service gave up on the call
at its deadline and compensated first, and the call, still waiting for a connection or the order's lock, ran after.
It is refused and holds nothing: the shopper keeps their points and coupon (their retry is a new order number)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from services.common.db import utcnow
from services.common.errors import DomainError
from services.member import service
from services.member.db import SqlMemberUnitOfWork
from services.member.domain import Account, CouponStatus, OrderLine
from tests.integration.member.test_checkout_hold_expiry_on_database import member_with_points

pytestmark = pytest.mark.integration

BOB = 9191
LINES = [OrderLine(1, 10_000)]


def outcome(call: Callable[[], object]) -> str:
    try:
        call()
        return "ok"
    except DomainError as exc:
        return exc.code


def points(uow: Callable[[], SqlMemberUnitOfWork], user_id: int) -> tuple[int, int]:
    with uow() as tx:
        return tx.ledger.balance(user_id, Account.POINTS), tx.ledger.balance(user_id, Account.POINTS_LOCKED)


def coupon_status(uow: Callable[[], SqlMemberUnitOfWork], coupon_id: int) -> str:
    with uow() as tx:
        coupon = tx.coupons.get(coupon_id)
        assert coupon is not None
        return coupon.status


def test_a_points_lock_arriving_after_its_orders_release_is_refused_and_holds_nothing(
        uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    member_with_points(uow, BOB, 1_000, utcnow())

    released = service.release_points(uow(), order_no="LATE-1", user_id=BOB)
    late = outcome(lambda: service.lock_points(uow(), user_id=BOB, order_no="LATE-1", points=300, payable_fen=10_000))
    after_late = points(uow, BOB)
    retry = outcome(lambda: service.lock_points(uow(), user_id=BOB, order_no="RETRY-1", points=300,
                                                payable_fen=10_000))

    assert (released, late, after_late, retry, points(uow, BOB)) == (
        0, "POINTS_RELEASED", (1_000, 0), "ok", (700, 300))
    with uow() as tx:
        assert tx.ledger.check()[1] == []


def test_a_coupon_lock_arriving_after_its_orders_release_is_refused_and_the_coupon_stays_available(
        uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    template = member_with_points(uow, BOB + 1, 1, utcnow())
    coupon, _ = service.claim_coupon(uow(), user_id=BOB + 1, template_id=template.id or 0)
    coupon_id = coupon.id or 0

    service.release_coupon(uow(), order_no="LATE-2", user_id=BOB + 1)
    late = outcome(lambda: service.lock_coupon(uow(), user_id=BOB + 1, order_no="LATE-2", coupon_id=coupon_id,
                                               lines=LINES))
    after_late = coupon_status(uow, coupon_id)
    retry = outcome(lambda: service.lock_coupon(uow(), user_id=BOB + 1, order_no="RETRY-2", coupon_id=coupon_id,
                                                lines=LINES))

    assert (late, after_late, retry, coupon_status(uow, coupon_id)) == (
        "COUPON_RELEASED", CouponStatus.AVAILABLE, "ok", CouponStatus.LOCKED)


def test_locks_racing_their_releases_leave_no_points_or_coupon_held(uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    """Whichever of an order's lock and release takes the order's lock first, nothing stays held."""
    user = BOB + 2
    template = member_with_points(uow, user, 10_000, utcnow() - timedelta(minutes=1))
    coupon_ids = [(service.claim_coupon(uow(), user_id=user, template_id=template.id or 0)[0].id or 0)
                  for _ in range(8)]

    def lock_and_release(n: int) -> None:
        order_no = f"RACE-{n}"
        with ThreadPoolExecutor(max_workers=4) as calls:
            done = [calls.submit(outcome, call) for call in (
                lambda: service.lock_coupon(uow(), user_id=user, order_no=order_no, coupon_id=coupon_ids[n],
                                            lines=LINES),
                lambda: service.release_coupon(uow(), order_no=order_no, user_id=user),
                lambda: service.lock_points(uow(), user_id=user, order_no=order_no, points=100,
                                            payable_fen=10_000),
                lambda: service.release_points(uow(), order_no=order_no, user_id=user))]
            assert {d.result() for d in done} <= {"ok", "COUPON_RELEASED", "POINTS_RELEASED"}

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lock_and_release, range(len(coupon_ids))))

    assert points(uow, user) == (10_000, 0)
    assert {coupon_status(uow, coupon_id) for coupon_id in coupon_ids} == {CouponStatus.AVAILABLE}
