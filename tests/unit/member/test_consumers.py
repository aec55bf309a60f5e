"""The member service's handlers of order events, each run as the consumer runs it: inside an open unit of work."""

from __future__ import annotations

from datetime import UTC, datetime

from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.order_events_pb2 import OrderCancelled, OrderPaid, OrderRefunded

from services.common.events import timestamp
from services.member import consumers, service
from services.member.domain import Account
from tests.unit.member.fakes import FakeMemberUnitOfWork

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
ALICE = 1


def deliver(uow: FakeMemberUnitOfWork, event: object, event_id: str) -> None:
    with uow:
        consumers.HANDLERS[type(event)](uow, event, EventEnvelope(event_id=event_id))  # type: ignore[index]
        uow.commit()


def paid(order_no: str, paid_fen: int) -> OrderPaid:
    return OrderPaid(order_no=order_no, user_id=ALICE, paid_fen=paid_fen, paid_at=timestamp(NOW))


def test_an_order_paid_twice_under_two_event_ids_awards_points_once() -> None:
    uow = FakeMemberUnitOfWork()
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)

    deliver(uow, paid("O1", 20_000), "e-1")
    deliver(uow, paid("O1", 20_000), "e-2")  # the same payment published again

    assert (uow.ledger.balance(ALICE, Account.POINTS), service.get_member(uow, user_id=ALICE, now=NOW)
            .member.total_spend_fen) == (200, 20_000)


def test_a_refund_takes_back_its_share_of_spend_and_points() -> None:
    uow = FakeMemberUnitOfWork()
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    deliver(uow, paid("O1", 20_000), "e-1")

    deliver(uow, OrderRefunded(order_no="O1", user_id=ALICE, refund_no="RF1", amount_fen=5_000,
                               refunded_at=timestamp(NOW)), "e-2")

    assert (uow.ledger.balance(ALICE, Account.POINTS), service.get_member(uow, user_id=ALICE, now=NOW)
            .member.total_spend_fen) == (150, 15_000)


def test_cancelling_an_unpaid_order_gives_its_held_points_back() -> None:
    uow = FakeMemberUnitOfWork()
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    deliver(uow, paid("O0", 100_000), "e-0")  # silver: 1,200 points
    service.lock_points(uow, user_id=ALICE, order_no="O1", points=300, payable_fen=1_000, now=NOW)

    deliver(uow, OrderCancelled(order_no="O1", user_id=ALICE, was_paid=False, cancelled_at=timestamp(NOW)), "e-1")

    assert (uow.ledger.balance(ALICE, Account.POINTS), uow.ledger.balance(ALICE, Account.POINTS_LOCKED)) == (1_200, 0)
