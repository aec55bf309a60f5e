"""Every step of a withdrawal's review is kept (withdrawal_decisions): a payout the channel refuses puts it back under
review without erasing who approved it and why, and the next approval does not erase the refusal. What the shopper
reads of it (`shopper_reason`) is never finance's note nor the channel's reason."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from services.common.errors import DomainError
from services.common.formats import PAYOUT_FAILED_SHOPPER, PAYOUT_REFUSED_SHOPPER
from services.member import service
from services.member.channels import Payout, PayoutFailed, PayoutState
from services.member.domain import PLATFORM, Account, Withdrawal, WithdrawalStatus, transfer
from services.member.uow import MemberUnitOfWork
from tests.unit.member.fakes import FakeMemberUnitOfWork

T1 = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)
T2 = T1 + timedelta(hours=1)
ALICE = 5


class RefusedOncePayout:
    """A channel that refuses the first transfer (the payee's name does not match) and pays the next at once."""

    def __init__(self) -> None:
        self.sent = 0

    def pay(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        self.sent += 1
        if self.sent == 1:
            raise PayoutFailed("NAME_MISMATCH")
        return Payout(PayoutState.PAID, txn_id=f"T-{payout_no}", channel="wechat")

    def status(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        raise AssertionError("nothing is left to settle")


def approved_refused_approved(uow: Callable[[], MemberUnitOfWork]) -> tuple[str, list[tuple[object, ...]]]:
    """Alice withdraws 6,000 of 10,000 fen; finance 77 approves, the channel refuses, finance 88 approves again and it
    is paid: the withdrawal's status and its decisions (outcome, actor, note, shopper_reason, when). (Also run on
    PostgreSQL.)"""
    with uow() as tx:
        tx.ledger.post(transfer("seed", "recharge", "seed", amount=10_000, source=(PLATFORM, Account.CLEARING),
                                target=(ALICE, Account.AVAILABLE)), T1)
        tx.commit()
    withdrawal = service.request_withdrawal(uow(), user_id=ALICE, amount_fen=6_000, idempotency_key="w", now=T1)
    payout = RefusedOncePayout()
    with pytest.raises(DomainError) as refused:
        service.decide_withdrawal(uow(), payout, withdrawal_id=withdrawal.id or 0, approve=True,
                                  note="checked the bank statement", decided_by=77, now=T1)
    assert refused.value.code == "PAYOUT_FAILED"
    paid = service.decide_withdrawal(uow(), payout, withdrawal_id=withdrawal.id or 0, approve=True, note="",
                                     decided_by=88, now=T2)
    with uow() as tx:
        return paid.status, [(d.withdrawal_id, d.outcome, d.actor_id, d.note, d.shopper_reason, d.decided_at)
                             for d in tx.withdrawals.decisions(withdrawal.id or 0)]


def test_an_approval_the_channel_refused_and_the_approval_after_are_all_kept_in_order() -> None:
    uow = FakeMemberUnitOfWork()

    status, decisions = approved_refused_approved(lambda: uow)

    assert status == "PAID"
    assert decisions == [(1, "APPROVED", 77, "checked the bank statement", "", T1),
                         (1, "PAYOUT_REFUSED", None, "NAME_MISMATCH", PAYOUT_REFUSED_SHOPPER, T1),
                         (1, "APPROVED", 88, "", "", T2)]


def test_a_rejection_is_kept_and_a_retried_decision_adds_nothing() -> None:
    uow = FakeMemberUnitOfWork()
    uow.ledger.post(transfer("seed", "recharge", "seed", amount=10_000, source=(PLATFORM, Account.CLEARING),
                             target=(ALICE, Account.AVAILABLE)), T1)
    withdrawal = service.request_withdrawal(uow, user_id=ALICE, amount_fen=6_000, idempotency_key="w", now=T1)

    for _ in range(2):
        service.decide_withdrawal(uow, RefusedOncePayout(), withdrawal_id=withdrawal.id or 0, approve=False,
                                  note="name differs", decided_by=77, now=T1)

    assert [(d.outcome, d.actor_id, d.note) for d in uow.withdrawals.decisions(withdrawal.id or 0)] == [
        ("REJECTED", 77, "name differs")]


def test_a_rejection_keeps_finances_note_for_staff_and_tells_the_shopper_only_their_reason() -> None:
    uow = FakeMemberUnitOfWork()
    uow.ledger.post(transfer("seed", "recharge", "seed", amount=10_000, source=(PLATFORM, Account.CLEARING),
                             target=(ALICE, Account.AVAILABLE)), T1)
    withdrawal = service.request_withdrawal(uow, user_id=ALICE, amount_fen=6_000, idempotency_key="w", now=T1)

    rejected = service.decide_withdrawal(uow, RefusedOncePayout(), withdrawal_id=withdrawal.id or 0, approve=False,
                                         note="internal: flagged by risk team, linked to account 42",
                                         shopper_reason="  the payee's name does not match your account  ",
                                         decided_by=77, now=T1)

    assert (rejected.status, rejected.note, rejected.shopper_reason) == (
        "REJECTED", "internal: flagged by risk team, linked to account 42",
        "the payee's name does not match your account")
    assert [(d.outcome, d.note, d.shopper_reason) for d in uow.withdrawals.decisions(withdrawal.id or 0)] == [
        ("REJECTED", "internal: flagged by risk team, linked to account 42",
         "the payee's name does not match your account")]


def test_a_transfer_refused_outright_tells_the_shopper_a_fixed_sentence_and_finance_the_channels_reason() -> None:
    withdrawal = Withdrawal(withdrawal_no="W1", user_id=ALICE, amount_fen=6_000, status="PENDING_REVIEW",
                            created_at=T1)
    withdrawal.decide(approve=True, note="ok", shopper_reason="paid within the hour", decided_by=77, now=T1)

    withdrawal.payout_refused("NAME_MISMATCH")

    assert (withdrawal.status, withdrawal.note, withdrawal.shopper_reason) == (
        WithdrawalStatus.PENDING_REVIEW, "[payout refused: NAME_MISMATCH]", PAYOUT_REFUSED_SHOPPER)


def test_a_failed_transfer_tells_the_shopper_a_fixed_sentence_and_finance_the_channels_reason() -> None:
    withdrawal = Withdrawal(withdrawal_no="W1", user_id=ALICE, amount_fen=6_000, status="PENDING_REVIEW",
                            created_at=T1)
    withdrawal.decide(approve=True, note="ok", decided_by=77, now=T1)

    withdrawal.payout_ended(paid=False, txn_id="T1", reason="ACCOUNT_FROZEN")

    assert (withdrawal.status, withdrawal.note, withdrawal.shopper_reason) == (
        WithdrawalStatus.FAILED, "ok [payout failed: ACCOUNT_FROZEN]", PAYOUT_FAILED_SHOPPER)
