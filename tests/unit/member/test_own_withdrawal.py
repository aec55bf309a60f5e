"""Separation of duties (on fakes): finance staff never decide on their own withdrawal (OWN_REQUEST, 403: it stays
under review, its amount pending, nothing paid out); another finance staff member decides it as usual."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from mall.member.v1 import member_pb2

from services.common.auth import Caller, Role, caller_var
from services.common.errors import Forbidden
from services.member import service
from services.member.channels import RechargeChannels
from services.member.domain import Withdrawal
from services.member.grpc_api import MemberServicer
from tests.fakes import FakeCategories, FakePhones, SimulatedPayout
from tests.unit.member.fakes import FakeMemberUnitOfWork
from tests.unit.member.test_use_cases import balances, fund

NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
CLERK = 5  # a finance staff member, who also has a wallet in the shop
COLLEAGUE = 6


@pytest.fixture
def uow() -> FakeMemberUnitOfWork:
    return FakeMemberUnitOfWork()


def requested(uow: FakeMemberUnitOfWork) -> Withdrawal:
    fund(uow, CLERK, 10_000)
    return service.request_withdrawal(uow, user_id=CLERK, amount_fen=6_000, idempotency_key="w1", now=NOW)


def decide(uow: FakeMemberUnitOfWork, payout: SimulatedPayout, withdrawal: Withdrawal, *, approve: bool,
           decided_by: int) -> Withdrawal:
    return service.decide_withdrawal(uow, payout, withdrawal_id=withdrawal.id or 0, approve=approve, note="ok",
                                     decided_by=decided_by, now=NOW)


@pytest.mark.parametrize("approve", [True, False])
def test_finance_staff_cannot_decide_their_own_withdrawal_and_nothing_moves(uow: FakeMemberUnitOfWork,
                                                                            approve: bool) -> None:
    withdrawal = requested(uow)
    payout = SimulatedPayout()

    with pytest.raises(Forbidden) as refused:
        decide(uow, payout, withdrawal, approve=approve, decided_by=CLERK)

    kept = uow.withdrawals.get(withdrawal.id or 0)
    assert kept is not None
    assert (refused.value.code, kept.status, kept.decided_by, payout.paid) == (
        "OWN_REQUEST", "PENDING_REVIEW", None, {})
    assert balances(uow, CLERK) == (4_000, 6_000)


def test_another_finance_staff_member_approves_it_and_it_is_paid_once(uow: FakeMemberUnitOfWork) -> None:
    withdrawal = requested(uow)
    payout = SimulatedPayout()

    paid = decide(uow, payout, withdrawal, approve=True, decided_by=COLLEAGUE)

    assert (paid.status, paid.decided_by, payout.paid) == ("PAID", COLLEAGUE, {withdrawal.withdrawal_no: 6_000})
    assert balances(uow, CLERK) == (4_000, 0)


def test_the_servicer_takes_the_decider_from_the_callers_token(uow: FakeMemberUnitOfWork) -> None:
    withdrawal = requested(uow)
    servicer = MemberServicer(lambda: uow, SimulatedPayout(), RechargeChannels({}),
                              categories=FakeCategories(), phones=FakePhones())
    token = caller_var.set(Caller(user_id=CLERK, roles=frozenset({Role.FINANCE}), token_id="t", token="x"))
    try:
        with pytest.raises(Forbidden) as refused:
            servicer.DecideWithdrawal(member_pb2.DecideWithdrawalRequest(
                withdrawal_id=withdrawal.id or 0, approve=True), None)  # type: ignore[arg-type]
    finally:
        caller_var.reset(token)

    assert (refused.value.code, withdrawal.status, balances(uow, CLERK)) == (
        "OWN_REQUEST", "PENDING_REVIEW", (4_000, 6_000))
