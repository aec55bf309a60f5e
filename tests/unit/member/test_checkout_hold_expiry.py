"""Coupon locks and points holds that no order settles (its compensation call was lost) are released by the
expiry sweep once CHECKOUT_HOLD_TTL has passed, if the order service says their order ended unpaid or does not know
it; a paid order's (its order-paid late) are kept for it. An order-paid arriving after a release takes them again as
far as the shopper still has them, and says so (an error logged, a metric counted)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from services.common.errors import Conflict
from services.common.orders import OrderState
from services.member import service
from services.member.domain import CHECKOUT_HOLD_TTL, PLATFORM, Account, OrderLine, transfer
from tests.fakes import FakeOrders
from tests.fixtures.member_orders import award_points_for_order, reverse_points_for_refund
from tests.fixtures.metrics import CounterDeltas
from tests.unit.member.fakes import FakeMemberUnitOfWork
from tests.unit.member.test_use_cases import ALICE, NOW, template, uow  # noqa: F401  (uow is a fixture)


@pytest.fixture
def coupon_id(uow: FakeMemberUnitOfWork) -> int:  # noqa: F811
    """Alice, a member with 1,000 points and a coupon (its id)."""
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    uow.ledger.post(transfer("seed", "order_paid", "seed", amount=1_000, source=(PLATFORM, Account.POINTS_ISSUED),
                             target=(ALICE, Account.POINTS)), NOW)
    coupon, _ = service.claim_coupon(uow, user_id=ALICE, template_id=template(uow), now=NOW)
    return coupon.id or 0


def checkout(uow: FakeMemberUnitOfWork, coupon_id: int, order_no: str = "O1", points: int = 300) -> None:  # noqa: F811
    """Alice's order `order_no` locks her coupon and holds `points`."""
    service.lock_coupon(uow, user_id=ALICE, order_no=order_no, coupon_id=coupon_id, lines=[OrderLine(1, 10_000)],
                        now=NOW)
    service.lock_points(uow, user_id=ALICE, order_no=order_no, points=points, payable_fen=10_000, now=NOW)


def sweep(uow: FakeMemberUnitOfWork, after: timedelta, orders: FakeOrders | None = None) -> int:  # noqa: F811
    """A round of the sweep `after` the checkout; the order service knows only the orders placed in `orders` (by
    default none: every order was never stored, its submit died)."""
    return service.expire_checkout_holds(lambda: uow, orders or FakeOrders(), now=NOW + after)


def points(uow: FakeMemberUnitOfWork) -> tuple[int, int]:  # noqa: F811
    return uow.ledger.balance(ALICE, Account.POINTS), uow.ledger.balance(ALICE, Account.POINTS_LOCKED)


def test_locks_no_order_settles_are_released_once_two_hours_have_passed(uow: FakeMemberUnitOfWork,  # noqa: F811
                                                                        coupon_id: int) -> None:
    checkout(uow, coupon_id)
    deltas = CounterDeltas()

    too_young = sweep(uow, CHECKOUT_HOLD_TTL - timedelta(seconds=1))
    held = (uow.coupons.coupons[coupon_id].status, points(uow))
    swept = [sweep(uow, CHECKOUT_HOLD_TTL + timedelta(seconds=1)) for _ in range(2)]

    assert CHECKOUT_HOLD_TTL == timedelta(hours=2)
    assert (too_young, held) == (0, ("locked", (700, 300)))
    assert swept == [2, 0]  # the coupon and the points, once
    assert (uow.coupons.coupons[coupon_id].status, uow.coupons.coupons[coupon_id].order_no) == ("available", None)
    assert points(uow) == (1_000, 0)
    assert [(e.payload.delta, e.payload.reason) for e in uow.published if e.event_type == "points-changed"][-1] == (
        300, "points_hold_expired")
    assert deltas() == {'mall_checkout_holds_expired_total{kind="coupon"}': 1,
                        'mall_checkout_holds_expired_total{kind="points"}': 1}


def test_a_points_hold_that_fails_every_round_does_not_keep_the_coupon_locks_locked(
        uow: FakeMemberUnitOfWork, coupon_id: int, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    checkout(uow, coupon_id)
    deltas = CounterDeltas()

    def cannot_release(*args: object) -> int:
        raise RuntimeError("this hold cannot be released now")

    monkeypatch.setattr(service, "_expire_points_hold", cannot_release)
    for _ in range(2):  # the round fails with the hold's error, after the coupon sweep had its turn
        with pytest.raises(RuntimeError, match="this hold cannot be released now"):
            sweep(uow, CHECKOUT_HOLD_TTL + timedelta(seconds=1))

    assert (uow.coupons.coupons[coupon_id].status, uow.coupons.coupons[coupon_id].order_no) == ("available", None)
    assert points(uow) == (700, 300)  # still held: left to the next round
    assert deltas() == {'mall_checkout_holds_expired_total{kind="coupon"}': 1}


def test_locks_their_order_settled_are_never_swept(uow: FakeMemberUnitOfWork, coupon_id: int) -> None:  # noqa: F811
    checkout(uow, coupon_id)
    award_points_for_order(uow, order_no="O1", user_id=ALICE, paid_fen=9_700, now=NOW)  # paid: used
    service.lock_points(uow, user_id=ALICE, order_no="O2", points=100, payable_fen=10_000, now=NOW)
    service.release_points(uow, order_no="O2", now=NOW)  # cancelled: released

    assert sweep(uow, timedelta(days=1)) == 0
    assert (uow.coupons.coupons[coupon_id].status, points(uow)) == ("used", (700 + 97, 0))


@pytest.fixture
def orders() -> FakeOrders:
    """The order service, knowing no order until a test places it."""
    return FakeOrders()


def kept(kind: str, reason: str) -> str:
    return f'mall_checkout_holds_kept_total{{kind="{kind}",reason="{reason}"}}'


def test_a_paid_orders_coupon_and_points_stay_held_past_the_ttl_for_its_late_order_paid(
        uow: FakeMemberUnitOfWork, coupon_id: int, orders: FakeOrders) -> None:  # noqa: F811
    checkout(uow, coupon_id)
    orders.place("O1", "PAID", paid=True)  # paid in time; its order-paid reaches the member service 30 min late
    deltas = CounterDeltas()

    swept = sweep(uow, CHECKOUT_HOLD_TTL + timedelta(seconds=1), orders)
    held = (uow.coupons.coupons[coupon_id].status, uow.coupons.coupons[coupon_id].order_no, points(uow))
    with pytest.raises(Conflict) as second_order:  # the shopper tries the coupon on another order
        service.lock_coupon(uow, user_id=ALICE, order_no="O2", coupon_id=coupon_id, lines=[OrderLine(1, 10_000)],
                            now=NOW + CHECKOUT_HOLD_TTL + timedelta(minutes=1))
    award_points_for_order(uow, order_no="O1", user_id=ALICE, paid_fen=9_700,
                           now=NOW + CHECKOUT_HOLD_TTL + timedelta(minutes=30))  # the late order-paid

    assert (swept, held, second_order.value.code) == (0, ("locked", "O1", (700, 300)), "COUPON_NOT_AVAILABLE")
    assert (uow.coupons.coupons[coupon_id].status, uow.coupons.coupons[coupon_id].order_no) == ("used", "O1")
    assert points(uow) == (700 + 97, 0)  # its 300 spent by it, 97 earned
    assert orders.asked == [["O1"], ["O1"]]  # the points holds' page, the coupon locks' page
    assert deltas() == {kept("coupon", "paid"): 1, kept("points", "paid"): 1}  # nothing expired, nothing lost


def test_nothing_is_released_while_the_order_service_does_not_answer(
        uow: FakeMemberUnitOfWork, coupon_id: int, orders: FakeOrders) -> None:  # noqa: F811
    checkout(uow, coupon_id)
    orders.down = True
    deltas = CounterDeltas()

    swept = sweep(uow, CHECKOUT_HOLD_TTL + timedelta(seconds=1), orders)
    held = (uow.coupons.coupons[coupon_id].status, points(uow))
    unanswered = deltas()
    orders.down = False
    swept_when_it_answers = sweep(uow, CHECKOUT_HOLD_TTL + timedelta(minutes=1), orders)  # O1 was never stored

    assert (swept, held, swept_when_it_answers) == (0, ("locked", (700, 300)), 2)
    assert unanswered == {kept("coupon", "unanswered"): 1, kept("points", "unanswered"): 1}
    assert orders.asked == [["O1"], ["O1"], ["O1"]]  # not asked again the round it did not answer


def test_the_coupon_and_points_of_an_order_never_stored_are_released(
        uow: FakeMemberUnitOfWork, coupon_id: int, orders: FakeOrders) -> None:  # noqa: F811
    checkout(uow, coupon_id)  # its submit died after locking them: the order service knows no O1
    deltas = CounterDeltas()

    swept = sweep(uow, CHECKOUT_HOLD_TTL + timedelta(seconds=1), orders)

    assert (swept, uow.coupons.coupons[coupon_id].status, points(uow)) == (2, "available", (1_000, 0))
    assert orders.asked == [["O1"], ["O1"]]
    assert deltas() == {'mall_checkout_holds_expired_total{kind="coupon"}': 1,
                        'mall_checkout_holds_expired_total{kind="points"}': 1}


@pytest.mark.parametrize(("status", "paid", "reason"), [
    ("CANCELLED", False, None), ("CLOSED", False, None),  # ended unpaid (its order-cancelled lost or late): released
    ("PENDING_PAYMENT", False, "awaiting_payment"),
    ("PAID", True, "paid"), ("CANCEL_REQUESTED", True, "paid"), ("SHIPPED", True, "paid"),
    ("COMPLETED", True, "paid"), ("REFUNDING", True, "paid"), ("REFUNDED", True, "paid"), ("CLOSED", True, "paid"),
])
def test_only_the_holds_of_orders_that_ended_unpaid_are_released(
        uow: FakeMemberUnitOfWork, coupon_id: int, orders: FakeOrders,  # noqa: F811
        status: str, paid: bool, reason: str | None) -> None:
    checkout(uow, coupon_id)
    orders.place("O1", status, paid=paid)
    deltas = CounterDeltas()

    swept = sweep(uow, CHECKOUT_HOLD_TTL + timedelta(seconds=1), orders)

    if reason is None:
        assert (swept, uow.coupons.coupons[coupon_id].status, points(uow)) == (2, "available", (1_000, 0))
    else:
        assert (swept, uow.coupons.coupons[coupon_id].status, points(uow)) == (0, "locked", (700, 300))
        assert deltas() == {kept("coupon", reason): 1, kept("points", reason): 1}


def test_a_coupon_locked_by_another_order_since_the_page_was_read_is_not_released(
        uow: FakeMemberUnitOfWork, coupon_id: int, orders: FakeOrders,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    service.lock_coupon(uow, user_id=ALICE, order_no="O1", coupon_id=coupon_id, lines=[OrderLine(1, 10_000)], now=NOW)
    orders.place("O2", "PAID", paid=True)
    ask = orders.states

    def o1_cancelled_and_o2_locks_meanwhile(order_nos: list[str]) -> dict[str, OrderState]:
        answer = ask(order_nos)  # O1: unknown (cancelled and gone would be the same)
        service.release_coupon(uow, order_no="O1")
        service.lock_coupon(uow, user_id=ALICE, order_no="O2", coupon_id=coupon_id, lines=[OrderLine(1, 10_000)],
                            now=NOW)  # as old as O1's lock: stale too
        return answer

    monkeypatch.setattr(orders, "states", o1_cancelled_and_o2_locks_meanwhile)
    swept = sweep(uow, CHECKOUT_HOLD_TTL + timedelta(seconds=1), orders)

    assert (swept, uow.coupons.coupons[coupon_id].status, uow.coupons.coupons[coupon_id].order_no) == (
        0, "locked", "O2")


def test_order_paid_after_the_sweep_takes_the_coupon_and_points_again_and_reports_it(
        uow: FakeMemberUnitOfWork, coupon_id: int, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    checkout(uow, coupon_id)
    sweep(uow, CHECKOUT_HOLD_TTL + timedelta(minutes=1))
    deltas = CounterDeltas()

    with caplog.at_level(logging.ERROR, logger="services.member.service"):
        for _ in range(2):  # delivered twice
            award_points_for_order(uow, order_no="O1", user_id=ALICE, paid_fen=9_700, now=NOW)

    coupon = uow.coupons.coupons[coupon_id]
    assert (coupon.status, coupon.order_no) == ("used", "O1")
    assert points(uow) == (1_000 - 300 + 97, 0)
    assert deltas() == {'mall_expired_holds_paid_total{kind="coupon",outcome="taken_again"}': 1,
                        'mall_expired_holds_paid_total{kind="points",outcome="taken_again"}': 1}
    assert [record.getMessage().split(" ")[:2] for record in caplog.records if record.levelno == logging.ERROR] == [
        ["order", "O1"], ["order", "O1"]]  # the points, the coupon: once each however often the event comes


def test_order_paid_after_the_sweep_for_what_the_shopper_used_since_is_an_error_and_counted(
        uow: FakeMemberUnitOfWork, coupon_id: int, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    checkout(uow, coupon_id)
    sweep(uow, CHECKOUT_HOLD_TTL + timedelta(minutes=1))
    checkout(uow, coupon_id, "O2", 900)  # the coupon and 900 of the 1,000 points, on another order
    deltas = CounterDeltas()

    with caplog.at_level(logging.ERROR, logger="services.member.service"):
        award_points_for_order(uow, order_no="O1", user_id=ALICE, paid_fen=9_700, now=NOW)

    # of the 300 points, what Alice had: the 100 left and the 97 this payment earned
    assert (uow.coupons.coupons[coupon_id].order_no, points(uow)) == ("O2", (0, 900))
    assert deltas() == {'mall_expired_holds_paid_total{kind="coupon",outcome="lost"}': 1,
                        'mall_expired_holds_paid_total{kind="points",outcome="short"}': 1}
    assert len([record for record in caplog.records if record.levelno == logging.ERROR]) == 2


def test_points_an_order_paid_after_the_sweep_was_short_of_are_owed_and_taken_when_a_hold_is_released(
        uow: FakeMemberUnitOfWork, coupon_id: int) -> None:  # noqa: F811
    checkout(uow, coupon_id)
    sweep(uow, CHECKOUT_HOLD_TTL + timedelta(minutes=1))
    checkout(uow, coupon_id, "O2", 900)
    award_points_for_order(uow, order_no="O1", user_id=ALICE, paid_fen=9_700, now=NOW)  # 197 of 300 taken

    service.release_points(uow, order_no="O2", now=NOW)  # O2 cancelled: its 900 back, less the 103 owed

    assert points(uow) == (900 - 103, 0)


def test_an_order_whose_points_hold_expired_cannot_hold_points_again(uow: FakeMemberUnitOfWork,  # noqa: F811
                                                                      coupon_id: int) -> None:
    checkout(uow, coupon_id)
    sweep(uow, CHECKOUT_HOLD_TTL + timedelta(minutes=1))

    with pytest.raises(Conflict) as raised:
        service.lock_points(uow, user_id=ALICE, order_no="O1", points=300, payable_fen=10_000, now=NOW)

    assert (raised.value.code, points(uow)) == ("POINTS_RELEASED", (1_000, 0))


def cancel(uow: FakeMemberUnitOfWork, order_no: str = "O1", was_paid: bool = True) -> None:  # noqa: F811
    with uow:
        service.apply_order_cancelled(uow, order_no=order_no, was_paid=was_paid, now=NOW)
        uow.commit()


def test_order_cancelled_read_before_order_paid_after_the_sweep_leaves_the_coupon_and_points_with_the_shopper(
        uow: FakeMemberUnitOfWork, coupon_id: int) -> None:  # noqa: F811
    checkout(uow, coupon_id)
    sweep(uow, CHECKOUT_HOLD_TTL + timedelta(minutes=1))
    deltas = CounterDeltas()

    cancel(uow)  # the paid order was cancelled; its order-paid, on a stuck partition, comes after
    award_points_for_order(uow, order_no="O1", user_id=ALICE, paid_fen=9_700, now=NOW)
    after_paid = (uow.coupons.coupons[coupon_id].status, uow.coupons.coupons[coupon_id].order_no, points(uow))
    reverse_points_for_refund(uow, order_no="O1", refund_no="RF1", amount_fen=9_700, now=NOW)

    assert after_paid == ("available", None, (1_000 + 97, 0))  # nothing taken again: only what it earned
    assert points(uow) == (1_000, 0)  # its refund takes back what it earned
    assert deltas() == {}  # nothing taken again, nothing reported short or lost


def test_a_paid_order_whose_points_were_taken_short_and_then_cancelled_leaves_the_shopper_owing_nothing(
        uow: FakeMemberUnitOfWork, coupon_id: int) -> None:  # noqa: F811
    checkout(uow, coupon_id)
    sweep(uow, CHECKOUT_HOLD_TTL + timedelta(minutes=1))
    checkout(uow, coupon_id, "O2", 900)
    award_points_for_order(uow, order_no="O1", user_id=ALICE, paid_fen=9_700, now=NOW)  # 197 taken, 103 owed

    cancel(uow, "O1")  # cancelled after review: the 300 it used come back, the 103 owed are taken from them
    service.release_points(uow, order_no="O2", now=NOW)

    assert (points(uow), uow.points.owed(ALICE)) == ((1_000 + 97, 0), {})  # as if O1 had used no points
