"""A paid plan bought with the wallet publishes member-plan-subscribed, once per purchase, in its transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from mall.events.v1.member_events_pb2 import MemberPlanSubscribed

from services.common.errors import DomainError
from services.common.events import timestamp
from services.member import service
from services.member.domain import PLATFORM, Account, transfer
from tests.unit.member.fakes import FakeMemberUnitOfWork

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
ALICE = 1


@pytest.fixture
def uow() -> FakeMemberUnitOfWork:
    uow = FakeMemberUnitOfWork()
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    uow.ledger.post(transfer(f"seed:{ALICE}", "recharge", "seed", amount=20_000,
                             source=(PLATFORM, Account.CLEARING), target=(ALICE, Account.AVAILABLE)), NOW)
    return uow


def plans_subscribed(uow: FakeMemberUnitOfWork) -> list[tuple[str, MemberPlanSubscribed]]:
    return [(e.aggregate_id, e.payload) for e in uow.published if e.event_type == "member-plan-subscribed"]


def test_a_plan_bought_twice_with_one_key_publishes_one_event_with_what_was_paid(uow: FakeMemberUnitOfWork) -> None:
    member_no = uow.members.members[ALICE].member_no

    for _ in range(2):
        service.subscribe_plan(uow, user_id=ALICE, plan_id=1, idempotency_key="p1", now=NOW)

    assert plans_subscribed(uow) == [(str(ALICE), MemberPlanSubscribed(
        user_id=ALICE, member_no=member_no, plan_id=1, plan_name="PLUS monthly", amount_fen=1_500,
        posting_key=f"plan:{ALICE}:p1", balance_fen=18_500, subscribed_at=timestamp(NOW),
        expires_at=timestamp(NOW + timedelta(days=31))))]


def test_a_renewal_publishes_its_own_event_with_the_extended_expiry(uow: FakeMemberUnitOfWork) -> None:
    service.subscribe_plan(uow, user_id=ALICE, plan_id=1, idempotency_key="p1", now=NOW)

    service.subscribe_plan(uow, user_id=ALICE, plan_id=2, idempotency_key="p2", now=NOW + timedelta(days=10))

    assert [(e.plan_id, e.amount_fen, e.posting_key, e.balance_fen, e.expires_at.ToDatetime(tzinfo=UTC))
            for _, e in plans_subscribed(uow)] == [
        (1, 1_500, f"plan:{ALICE}:p1", 18_500, NOW + timedelta(days=31)),
        (2, 14_800, f"plan:{ALICE}:p2", 3_700, NOW + timedelta(days=31 + 366))]


def test_a_plan_the_balance_cannot_pay_publishes_nothing(uow: FakeMemberUnitOfWork) -> None:
    service.subscribe_plan(uow, user_id=ALICE, plan_id=2, idempotency_key="p1", now=NOW)

    with pytest.raises(DomainError):
        service.subscribe_plan(uow, user_id=ALICE, plan_id=2, idempotency_key="p2", now=NOW)

    assert [e.posting_key for _, e in plans_subscribed(uow)] == [f"plan:{ALICE}:p1"]


def test_a_payment_already_in_the_ledger_buys_no_second_term_and_publishes_nothing(
        uow: FakeMemberUnitOfWork) -> None:
    # The posting is there but not the request's idempotency record (lost, or the key reached the ledger another way).
    uow.ledger.post(transfer(f"plan:{ALICE}:p1", "plan_subscription", "plan-1", amount=1_500,
                             source=(ALICE, Account.AVAILABLE), target=(PLATFORM, Account.SALES)), NOW)

    summary = service.subscribe_plan(uow, user_id=ALICE, plan_id=1, idempotency_key="p1", now=NOW)

    assert (summary.balance_fen, summary.member.plan_expires_at, plans_subscribed(uow)) == (18_500, None, [])
