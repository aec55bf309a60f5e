"""A paid order cancelled after review, on PostgreSQL: its coupon and spent points go back once, even when the
cancellation is delivered twice at the same moment, and its refund then takes back the spend and earned points."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.order_events_pb2 import OrderCancelled, OrderPaid, OrderRefunded
from sqlalchemy import Engine, func, select

from services.common.events import timestamp
from services.common.outbox import outbox
from services.member import consumers, service
from services.member.db import SqlMemberUnitOfWork
from services.member.domain import Account, OrderLine
from tests.fakes import FakeCategories, FakePhones

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
ALICE = 101
# The handlers as the consumer runs them; every buyer here has bound a phone (FakePhones), so order-paid joins a
# buyer whose spend reaches the threshold, as before M1 reached purchases.
HANDLERS = consumers.handlers(FakePhones())


def deliver(uow: Callable[[], SqlMemberUnitOfWork], event: object, event_id: str) -> None:
    """What the consumer does with one record: the handler inside a transaction of its own."""
    with uow() as tx:
        HANDLERS[type(event)](tx, event, EventEnvelope(event_id=event_id))  # type: ignore[index]
        tx.commit()


def paid(order_no: str, paid_fen: int) -> OrderPaid:
    return OrderPaid(order_no=order_no, user_id=ALICE, paid_fen=paid_fen, paid_at=timestamp(NOW))


def points(uow: Callable[[], SqlMemberUnitOfWork]) -> tuple[int, int]:
    with uow() as tx:
        return tx.ledger.balance(ALICE, Account.POINTS), tx.ledger.balance(ALICE, Account.POINTS_LOCKED)


def points_changed_events(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(outbox).where(
            outbox.c.event_type == "points-changed")).scalar_one()


def test_a_paid_cancellation_delivered_twice_at_once_gives_the_coupon_and_points_back_once(
        uow: Callable[[], SqlMemberUnitOfWork], engine: Engine) -> None:
    service.sign_up(uow(), user_id=ALICE, channel="self", invite_code=None, now=NOW)
    deliver(uow, paid("O0", 120_000), "e-0")  # 1,200 points (at normal: it makes her silver)
    template = service.create_coupon_template(
        uow(), FakeCategories(), name="5 yuan off", kind="fixed", amount_fen=500, percent_off=0, threshold_fen=1_000, cap_fen=0,
        total=5, per_user_limit=1, valid_from=NOW - timedelta(days=1), valid_to=NOW + timedelta(days=7),
        category_ids=[], needs_approval=False, now=NOW)
    coupon, _ = service.claim_coupon(uow(), user_id=ALICE, template_id=template.id or 0, now=NOW)
    service.lock_coupon(uow(), user_id=ALICE, order_no="O1", coupon_id=coupon.id or 0,
                        lines=[OrderLine(category_id=1, amount_fen=5_000)], now=NOW)
    service.lock_points(uow(), user_id=ALICE, order_no="O1", points=300, payable_fen=4_500, now=NOW)
    deliver(uow, paid("O1", 4_200), "e-1")  # 42 yuan x 1.2 = 50 points earned
    assert points(uow) == (1_200 - 300 + 50, 0)
    events_before = points_changed_events(engine)

    cancelled = OrderCancelled(order_no="O1", user_id=ALICE, was_paid=True, cancelled_by="staff",
                               cancelled_at=timestamp(NOW))
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def redeliver(event_id: str) -> None:
        start.wait()
        try:
            deliver(uow, cancelled, event_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=redeliver, args=(f"e-2{n}",)) for n in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert points(uow) == (1_200 + 50, 0)
    assert points_changed_events(engine) == events_before + 1
    [view], _ = service.list_coupons(uow(), user_id=ALICE, offset=0, limit=20, now=NOW)
    assert (view.status, view.coupon.order_no, view.coupon.discount_fen, view.coupon.used_at) == (
        "available", None, 0, None)
    entries, _ = service.points_entries(uow(), user_id=ALICE, offset=0, limit=20)
    assert [(entry.kind, entry.amount) for entry in entries if entry.reference == "O1"] == [  # the shopper's points
        ("points_returned", 300), ("order_paid", 50), ("points_locked", -300)]

    deliver(uow, OrderRefunded(order_no="O1", user_id=ALICE, refund_no="RF1", amount_fen=4_200,
                               refunded_at=timestamp(NOW)), "e-3")

    assert points(uow) == (1_200, 0)
    assert service.get_member(uow(), user_id=ALICE, now=NOW).member.total_spend_fen == 120_000
    assert service.check_ledgers(uow())[1] == []
    # the coupon serves the next order
    assert service.lock_coupon(uow(), user_id=ALICE, order_no="O2", coupon_id=coupon.id or 0,
                               lines=[OrderLine(category_id=1, amount_fen=2_000)], now=NOW).discount_fen == 500
