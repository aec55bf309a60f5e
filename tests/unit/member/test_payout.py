"""Withdrawal payouts by WeChat Pay merchant transfer: the bill is the withdrawal number; refusals pay nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.common.errors import DomainError, ErrorKind
from services.common.wechatpay import TransferBill, WechatPayApiError, WechatPayError, WechatPayUnavailable
from services.member import service
from services.member.channels import PayoutFailed, UnconfiguredPayout, WechatTransferPayout
from services.member.domain import PLATFORM, Account, transfer
from tests.unit.member.fakes import FakeMemberUnitOfWork

NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)


class FakeWechat:
    def __init__(self, outcome: str | WechatPayError = "SUCCESS") -> None:
        self.outcome = outcome
        self.bills: list[tuple[str, str, int]] = []

    def transfer(self, *, out_bill_no: str, openid: str, amount_fen: int, remark: str) -> TransferBill:
        self.bills.append((out_bill_no, openid, amount_fen))
        if isinstance(self.outcome, WechatPayError):
            raise self.outcome
        return TransferBill(out_bill_no, "1330" + out_bill_no, self.outcome, "PAYEE_ACCOUNT_ABNORMAL")


class Payers:
    def payer_openid(self, user_id: int) -> str:
        return {1: "o-alice"}.get(user_id, "")


def payout(wechat: FakeWechat) -> WechatTransferPayout:
    return WechatTransferPayout(wechat, Payers())  # type: ignore[arg-type]


def test_a_payout_transfers_the_amount_under_the_withdrawal_number() -> None:
    wechat = FakeWechat()
    assert payout(wechat).pay(payout_no="W1", user_id=1, amount_fen=6_000) == "1330W1"
    assert wechat.bills == [("W1", "o-alice", 6_000)]


@pytest.mark.parametrize(("user_id", "outcome", "reason"), [
    (2, "SUCCESS", "no WeChat bound"),
    (1, "FAIL", "ended FAIL"),
    (1, WechatPayApiError(403, "NOT_ENOUGH", "余额不足"), "NOT_ENOUGH"),
])
def test_a_refused_transfer_is_a_failed_payout(user_id: int, outcome: str | WechatPayError, reason: str) -> None:
    with pytest.raises(PayoutFailed, match=reason):
        payout(FakeWechat(outcome)).pay(payout_no="W1", user_id=user_id, amount_fen=6_000)
    with pytest.raises(PayoutFailed, match="no payout channel"):
        UnconfiguredPayout().pay(payout_no="W1", user_id=1, amount_fen=6_000)


def test_an_unanswered_transfer_is_unavailable_and_finance_may_retry_the_same_bill() -> None:
    uow = FakeMemberUnitOfWork()
    uow.ledger.post(transfer("seed", "recharge", "seed", amount=10_000, source=(PLATFORM, Account.CLEARING),
                             target=(1, Account.AVAILABLE)), NOW)
    withdrawal = service.request_withdrawal(uow, user_id=1, amount_fen=6_000, idempotency_key="k", now=NOW)
    wechat = FakeWechat(WechatPayUnavailable("no answer"))

    with pytest.raises(DomainError) as unavailable:
        service.decide_withdrawal(uow, payout(wechat), withdrawal_id=withdrawal.id or 0, approve=True, note="",
                                  decided_by=9, now=NOW)
    commits = uow.commits
    withdrawal.status, withdrawal.decided_at = "PENDING_REVIEW", None  # the database rolls the decision back
    wechat.outcome = "SUCCESS"
    paid = service.decide_withdrawal(uow, payout(wechat), withdrawal_id=withdrawal.id or 0, approve=True, note="",
                                     decided_by=9, now=NOW)

    assert (unavailable.value.kind, uow.commits - commits) == (ErrorKind.UNAVAILABLE, 1)  # only the retry committed
    assert (paid.status, paid.payout_txn_id, [bill[0] for bill in wechat.bills]) == (
        "PAID", "1330" + withdrawal.withdrawal_no, [withdrawal.withdrawal_no] * 2)
    assert (uow.ledger.balance(1, Account.AVAILABLE), uow.ledger.balance(1, Account.PENDING)) == (4_000, 0)
