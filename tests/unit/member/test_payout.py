"""Withdrawal payouts by WeChat Pay merchant transfer: the bill is the withdrawal number; refusals pay nothing;
a transfer in flight, or whose answer was lost, stays PAYING until settle_payouts hears how it ended, and then
pays (or gives back) exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY

from services.common.errors import DomainError, ErrorKind, Unauthenticated
from services.common.wechatpay import (
    TRANSFER_AWAITING_USER,
    TransferBill,
    WechatPayApiError,
    WechatPayError,
    WechatPayUnavailable,
)
from services.member import service
from services.member.channels import Payout, PayoutFailed, PayoutState, UnconfiguredPayout, WechatTransferPayout
from services.member.domain import PLATFORM, Account, Withdrawal, transfer
from tests.unit.member.fakes import FakeMemberUnitOfWork

NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)


class FakeWechat:
    """Transfers whose answer is `outcome` (a state, or an error raised); `query` answers the bill query. As WeChat
    Pay, a transfer awaiting the user is answered with its package_info, and the bill query never carries it."""

    settings = SimpleNamespace(mchid="1900000109", appid="wx-minimall")

    def __init__(self, outcome: str | WechatPayError = "SUCCESS") -> None:
        self.outcome = outcome
        self.query: str | WechatPayError = outcome
        self.bills: list[tuple[str, str, int]] = []
        self.names: list[str | None] = []
        self.queries: list[str] = []

    def transfer(self, *, out_bill_no: str, openid: str, amount_fen: int, remark: str,
                 user_name: str | None = None) -> TransferBill:
        self.bills.append((out_bill_no, openid, amount_fen))
        self.names.append(user_name)
        if isinstance(self.outcome, WechatPayError):
            raise self.outcome
        package = f"PKG-{out_bill_no}" if self.outcome in TRANSFER_AWAITING_USER else ""
        return TransferBill(out_bill_no, "1330" + out_bill_no, self.outcome, "PAYEE_ACCOUNT_ABNORMAL", package)

    def query_transfer(self, out_bill_no: str) -> TransferBill:
        self.queries.append(out_bill_no)
        if isinstance(self.query, WechatPayError):
            raise self.query
        return TransferBill(out_bill_no, "1330" + out_bill_no, self.query, "PAYEE_ACCOUNT_ABNORMAL")


class Payers:
    """Alice (1) has WeChat bound and her identity verified; Carol (3) only WeChat bound."""

    def payer_openid(self, user_id: int) -> str:
        return {1: "o-alice", 3: "o-carol"}.get(user_id, "")

    def payee_name(self, user_id: int) -> str:
        return {1: "张三"}.get(user_id, "")


def payout(wechat: FakeWechat) -> WechatTransferPayout:
    return WechatTransferPayout(wechat, Payers())  # type: ignore[arg-type]


def test_a_payout_transfers_the_amount_under_the_withdrawal_number() -> None:
    wechat = FakeWechat()
    assert payout(wechat).pay(payout_no="W1", user_id=1, amount_fen=6_000) == Payout(PayoutState.PAID, "1330W1",
                                                                                    channel="wechat")
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


@pytest.mark.parametrize(("query", "state"), [
    ("SUCCESS", PayoutState.PAID), ("FAIL", PayoutState.FAILED), ("CANCELLED", PayoutState.FAILED),
    ("PROCESSING", PayoutState.IN_FLIGHT), ("WAIT_USER_CONFIRM", PayoutState.IN_FLIGHT),
    ("CANCELING", PayoutState.IN_FLIGHT), (WechatPayUnavailable("no answer"), PayoutState.UNKNOWN),
    (WechatPayApiError(429, "FREQUENCY_LIMITED", "频率超限"), PayoutState.UNKNOWN),
])
def test_the_transfer_query_says_where_a_payout_stands(query: str | WechatPayError, state: PayoutState) -> None:
    wechat = FakeWechat()
    wechat.query = query
    assert payout(wechat).status(payout_no="W1", user_id=1, amount_fen=6_000).state == state
    assert (wechat.queries, wechat.bills) == (["W1"], [])


def test_a_transfer_wechat_pay_never_received_is_sent_again_under_the_same_bill() -> None:
    wechat = FakeWechat("PROCESSING")
    wechat.query = WechatPayApiError(404, "NOT_FOUND", "记录不存在")
    assert payout(wechat).status(payout_no="W1", user_id=1, amount_fen=6_000) == Payout(PayoutState.IN_FLIGHT,
                                                                                          "1330W1")
    assert wechat.bills == [("W1", "o-alice", 6_000)]


@pytest.mark.parametrize(("user_id", "refusal"), [
    (1, WechatPayApiError(403, "NOT_ENOUGH", "余额不足")),
    (1, WechatPayApiError(429, "FREQUENCY_LIMITED", "频率超限")),
    (1, WechatPayApiError(400, "INVALID_REQUEST", "商户单号重复")),
    (2, "SUCCESS"),  # no WeChat bound any more: refused before sending
])
def test_a_refused_re_send_of_a_transfer_wechat_pay_did_not_find_proves_nothing(
        user_id: int, refusal: str | WechatPayError) -> None:
    wechat = FakeWechat(refusal)
    wechat.query = WechatPayApiError(404, "NOT_FOUND", "记录不存在")
    answer = payout(wechat).status(payout_no="W1", user_id=user_id, amount_fen=6_000)
    assert answer.state == PayoutState.UNKNOWN  # the first send may still land: never FAILED on a re-send


def test_a_transfer_awaiting_the_shopper_is_in_flight_with_what_they_confirm_it_by() -> None:
    wechat = FakeWechat("WAIT_USER_CONFIRM")
    sent = payout(wechat).pay(payout_no="W1", user_id=1, amount_fen=6_000)
    queried = payout(wechat).status(payout_no="W1", user_id=1, amount_fen=6_000)

    assert sent == Payout(PayoutState.IN_FLIGHT, "1330W1", awaits_shopper=True,
                          confirm={"mch_id": "1900000109", "app_id": "wx-minimall", "package": "PKG-W1"})
    assert queried == Payout(PayoutState.IN_FLIGHT, "1330W1", awaits_shopper=True)  # the query brings no package


def test_a_transfer_of_two_thousand_yuan_names_the_payee_by_their_verified_name_and_a_smaller_one_names_none() -> None:
    wechat = FakeWechat()
    payout(wechat).pay(payout_no="W1", user_id=1, amount_fen=199_999)
    payout(wechat).pay(payout_no="W2", user_id=1, amount_fen=200_000)

    assert wechat.bills == [("W1", "o-alice", 199_999), ("W2", "o-alice", 200_000)]
    assert wechat.names == [None, "张三"]


def test_a_transfer_of_two_thousand_yuan_to_a_shopper_without_a_verified_name_is_refused_unsent() -> None:
    wechat = FakeWechat()
    with pytest.raises(PayoutFailed, match="not verified their identity"):
        payout(wechat).pay(payout_no="W1", user_id=3, amount_fen=200_000)
    assert wechat.bills == []


class Wallet:
    """Alice with 10,000 fen who asks to withdraw 6,000; finance (9) decides; the payout job settles."""

    def __init__(self, wechat: FakeWechat) -> None:
        self.uow, self.wechat = FakeMemberUnitOfWork(), wechat
        self.uow.ledger.post(transfer("seed", "recharge", "seed", amount=10_000, source=(PLATFORM, Account.CLEARING),
                                      target=(1, Account.AVAILABLE)), NOW)
        self.withdrawal = service.request_withdrawal(self.uow, user_id=1, amount_fen=6_000, idempotency_key="k",
                                                     now=NOW)

    def approve(self) -> Withdrawal:
        return service.decide_withdrawal(self.uow, payout(self.wechat), withdrawal_id=self.withdrawal.id or 0,
                                         approve=True, note="ok", decided_by=9, now=NOW)

    def settle(self, minutes: int = 2) -> int:
        return service.settle_payouts(lambda: self.uow, payout(self.wechat), now=NOW + timedelta(minutes=minutes))

    def state(self) -> tuple[str, int, int, int, int]:
        """(status, available, pending, platform clearing, member-withdrawn events)."""
        ledger = self.uow.ledger
        return (self.withdrawal.status, ledger.balance(1, Account.AVAILABLE), ledger.balance(1, Account.PENDING),
                ledger.balance(PLATFORM, Account.CLEARING),
                sum(1 for event in self.uow.published if type(event.payload).__name__ == "MemberWithdrawn"))


def test_a_transfer_that_succeeds_at_once_pays_the_withdrawal_at_approval() -> None:
    wallet = Wallet(FakeWechat("SUCCESS"))
    wallet.approve()
    assert wallet.state() == ("PAID", 4_000, 0, -4_000, 1)  # clearing: -10,000 recharged, +6,000 paid out
    assert (wallet.settle(), wallet.wechat.queries) == (0, [])


@pytest.mark.parametrize("answer", ["PROCESSING", WechatPayUnavailable("no answer")])
def test_a_transfer_in_flight_or_unanswered_stays_paying_until_it_succeeds_then_pays_once(
        answer: str | WechatPayError) -> None:
    wallet = Wallet(FakeWechat(answer))
    wallet.approve()
    paying = wallet.state()
    wallet.wechat.query = "PROCESSING"
    too_young, still_on_its_way = wallet.settle(minutes=0), wallet.settle()
    wallet.wechat.query = "SUCCESS"
    settled = [wallet.settle() for _ in range(3)]
    approved_again = wallet.approve()

    assert paying == ("PAYING", 4_000, 6_000, -10_000, 0)
    assert (too_young, still_on_its_way, settled) == (0, 0, [1, 0, 0])
    assert wallet.state() == ("PAID", 4_000, 0, -4_000, 1)
    assert (approved_again.status, wallet.withdrawal.payout_txn_id) == ("PAID", "1330" + wallet.withdrawal.withdrawal_no)
    assert wallet.wechat.bills == [(wallet.withdrawal.withdrawal_no, "o-alice", 6_000)]  # one transfer, ever


@pytest.mark.parametrize("first", ["SUCCESS", "PROCESSING"])
def test_member_withdrawn_names_the_withdrawal_and_the_wechat_transfer_that_paid_it(first: str) -> None:
    wallet = Wallet(FakeWechat(first))
    wallet.approve()
    wallet.wechat.query = "SUCCESS"
    wallet.settle()

    withdrawn = [event.payload for event in wallet.uow.published if event.event_type == "member-withdrawn"]
    assert [(e.withdrawal_id, e.withdrawal_no, e.requested_fen, e.bonus_forfeited_fen, e.amount_fen, e.balance_fen,
             e.channel) for e in withdrawn] == [
        (wallet.withdrawal.id, wallet.withdrawal.withdrawal_no, 6_000, 0, 6_000, 4_000, "wechat")]


@pytest.mark.parametrize("end", ["FAIL", "CANCELLED"])
def test_a_transfer_that_fails_in_flight_gives_the_amount_back_once(end: str) -> None:
    wallet = Wallet(FakeWechat("PROCESSING"))
    wallet.approve()
    wallet.wechat.query = end
    settled = [wallet.settle() for _ in range(3)]

    assert settled == [1, 0, 0]
    assert wallet.state() == ("FAILED", 10_000, 0, -10_000, 0)
    assert [kind for kind, _ in wallet_kinds(wallet)] == ["withdrawal_failed", "withdrawal_requested", "recharge"]
    assert "PAYEE_ACCOUNT_ABNORMAL" in wallet.withdrawal.note
    with pytest.raises(DomainError) as conflict:
        service.decide_withdrawal(wallet.uow, payout(wallet.wechat), withdrawal_id=wallet.withdrawal.id or 0,
                                  approve=False, note="", decided_by=9, now=NOW)
    assert conflict.value.code == "WITHDRAWAL_ALREADY_DECIDED"
    # given back, it no longer counts against the day's limit: the same 6,000 may be asked for again
    again = service.request_withdrawal(wallet.uow, user_id=1, amount_fen=6_000, idempotency_key="k2", now=NOW)
    assert (again.status, wallet.uow.ledger.balance(1, Account.AVAILABLE)) == ("PENDING_REVIEW", 4_000)


def wallet_kinds(wallet: Wallet) -> list[tuple[str, int]]:
    entries, _ = service.wallet_entries(wallet.uow, user_id=1, offset=0, limit=50)
    return [(entry.kind, entry.amount) for entry in entries if entry.account == Account.AVAILABLE]


def test_a_refused_transfer_leaves_the_withdrawal_for_finance_with_nothing_moved() -> None:
    wallet = Wallet(FakeWechat(WechatPayApiError(403, "NOT_ENOUGH", "余额不足")))
    with pytest.raises(DomainError) as refused:
        wallet.approve()
    assert (refused.value.code, refused.value.kind) == ("PAYOUT_FAILED", ErrorKind.BUSINESS_RULE)
    assert wallet.state() == ("PENDING_REVIEW", 4_000, 6_000, -10_000, 0)
    assert (wallet.withdrawal.decided_at, wallet.settle()) == (None, 0)
    assert "NOT_ENOUGH" in wallet.withdrawal.note


def test_a_withdrawal_whose_re_sent_transfer_is_refused_stays_paying_and_is_paid_once_when_the_first_lands() -> None:
    wallet = Wallet(FakeWechat(WechatPayUnavailable("no answer")))
    wallet.approve()
    wallet.wechat.outcome = WechatPayApiError(403, "NOT_ENOUGH", "余额不足")
    wallet.wechat.query = WechatPayApiError(404, "NOT_FOUND", "记录不存在")
    refused_again = wallet.settle()
    after_refusal = wallet.state()
    wallet.wechat.query = "SUCCESS"  # the first transfer reached WeChat Pay after all
    settled = [wallet.settle(), wallet.settle()]

    assert (refused_again, after_refusal) == (0, ("PAYING", 4_000, 6_000, -10_000, 0))
    assert settled == [1, 0]
    assert wallet.state() == ("PAID", 4_000, 0, -4_000, 1)  # paid once, nothing given back


def overdue_gauges() -> tuple[float | None, float | None]:
    return (REGISTRY.get_sample_value("mall_withdrawals_paying_overdue"),
            REGISTRY.get_sample_value("mall_withdrawals_paying_overdue_oldest_seconds"))


def test_a_withdrawal_paying_over_a_day_for_want_of_an_end_is_shown_overdue_until_its_transfer_ends() -> None:
    wallet = Wallet(FakeWechat(WechatPayUnavailable("no answer")))
    wallet.approve()
    wallet.wechat.outcome = WechatPayApiError(403, "NOT_ENOUGH", "余额不足")
    wallet.wechat.query = WechatPayApiError(404, "NOT_FOUND", "记录不存在")
    wallet.settle(minutes=24 * 60)
    within_a_day = overdue_gauges()
    wallet.settle(minutes=25 * 60 + 10)
    overdue = overdue_gauges()
    wallet.wechat.outcome = "SUCCESS"  # the merchant account topped up: the re-send goes through
    wallet.settle(minutes=25 * 60 + 20)

    assert (within_a_day, overdue) == ((0, 0), (1, (25 * 60 + 10) * 60))
    assert (wallet.state(), overdue_gauges()) == (("PAID", 4_000, 0, -4_000, 1), (0, 0))


CONFIRM_W = {"mch_id": "1900000109", "app_id": "wx-minimall"}


def test_a_withdrawal_waits_paying_with_the_shoppers_confirmation_until_they_confirm_then_is_paid_once() -> None:
    wallet = Wallet(FakeWechat("WAIT_USER_CONFIRM"))
    approved = wallet.approve()
    no = approved.withdrawal_no
    at_approval = (approved.status, approved.awaits_shopper, approved.payout_confirm)
    waiting = [wallet.settle() for _ in range(2)]  # the query says WAIT_USER_CONFIRM, without the package
    still = (wallet.withdrawal.awaits_shopper, wallet.withdrawal.payout_confirm, wallet.state())
    wallet.wechat.query = "SUCCESS"  # the shopper confirmed in WeChat
    settled = [wallet.settle(), wallet.settle()]

    assert at_approval == ("PAYING", True, {**CONFIRM_W, "package": f"PKG-{no}"})
    assert waiting == [0, 0]
    assert still == (True, {**CONFIRM_W, "package": f"PKG-{no}"}, ("PAYING", 4_000, 6_000, -10_000, 0))
    assert settled == [1, 0]
    assert wallet.state() == ("PAID", 4_000, 0, -4_000, 1)
    assert (wallet.withdrawal.awaits_shopper, wallet.withdrawal.payout_confirm) == (False, None)
    assert wallet.wechat.bills == [(no, "o-alice", 6_000)]  # sent once: the package came with its answer


def test_a_transfer_awaiting_the_shopper_whose_answer_was_lost_is_sent_again_once_for_the_package() -> None:
    wallet = Wallet(FakeWechat(WechatPayUnavailable("no answer")))
    approved = wallet.approve()
    no = approved.withdrawal_no
    wallet.wechat.outcome, wallet.wechat.query = "WAIT_USER_CONFIRM", "WAIT_USER_CONFIRM"
    waiting = [wallet.settle() for _ in range(3)]

    assert (approved.status, waiting) == ("PAYING", [0, 0, 0])
    assert wallet.withdrawal.payout_confirm == {**CONFIRM_W, "package": f"PKG-{no}"}
    assert wallet.wechat.bills == [(no, "o-alice", 6_000)] * 2  # the same bill again, once, for its package


def test_a_transfer_the_shopper_never_confirmed_and_wechat_pay_cancelled_gives_the_amount_back_once() -> None:
    wallet = Wallet(FakeWechat("WAIT_USER_CONFIRM"))
    wallet.approve()
    wallet.wechat.query = "CANCELLED"  # 24 hours unconfirmed
    settled = [wallet.settle(minutes=24 * 60 + 5) for _ in range(3)]

    assert settled == [1, 0, 0]
    assert wallet.state() == ("FAILED", 10_000, 0, -10_000, 0)
    assert (wallet.withdrawal.awaits_shopper, wallet.withdrawal.payout_confirm) == (False, None)


class WatchedPayout(WechatTransferPayout):
    """The WeChat transfer, noting how many commits the unit of work had made when each transfer was sent."""

    def __init__(self, wallet: Wallet) -> None:
        super().__init__(wallet.wechat, Payers())  # type: ignore[arg-type]
        self.wallet, self.commits_at_transfer = wallet, []  # type: list[int]

    def pay(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        self.commits_at_transfer.append(self.wallet.uow.commits)
        return super().pay(payout_no=payout_no, user_id=user_id, amount_fen=amount_fen)


def test_an_approval_is_committed_paying_before_the_transfer_is_sent() -> None:
    wallet = Wallet(FakeWechat("SUCCESS"))
    watched, before = WatchedPayout(wallet), wallet.uow.commits
    service.decide_withdrawal(wallet.uow, watched, withdrawal_id=wallet.withdrawal.id or 0, approve=True, note="ok",
                              decided_by=9, now=NOW)

    assert watched.commits_at_transfer == [before + 1]  # PAYING is durable before any money can move
    assert wallet.state() == ("PAID", 4_000, 0, -4_000, 1)


class PerBillWechat(FakeWechat):
    """The transfer query answers each bill its own way (a state, or an error raised)."""

    def __init__(self, answers: dict[str, str | WechatPayError]) -> None:
        super().__init__(WechatPayUnavailable("no answer"))
        self.answers = answers

    def query_transfer(self, out_bill_no: str) -> TransferBill:
        self.query = self.answers[out_bill_no]
        return super().query_transfer(out_bill_no)


class EveryPayer:
    def payer_openid(self, user_id: int) -> str:
        return f"o-{user_id}"


class PayersRefusingTheJob:
    """The user service refusing the payout job's payer lookup (a call that carries no shopper or staff token)."""

    def payer_openid(self, user_id: int) -> str:
        raise Unauthenticated("AUTH_REQUIRED", "this operation needs an access token")


def test_a_withdrawal_the_payout_job_cannot_settle_never_stops_it_settling_the_ones_after_it() -> None:
    uow = FakeMemberUnitOfWork()
    withdrawals = []
    for user_id in (1, 3):
        uow.ledger.post(transfer(f"seed:{user_id}", "recharge", "seed", amount=10_000,
                                 source=(PLATFORM, Account.CLEARING), target=(user_id, Account.AVAILABLE)), NOW)
        asked = service.request_withdrawal(uow, user_id=user_id, amount_fen=6_000, idempotency_key="k", now=NOW)
        approving = WechatTransferPayout(FakeWechat(WechatPayUnavailable("no answer")), EveryPayer())  # type: ignore[arg-type]
        withdrawals.append(service.decide_withdrawal(uow, approving, withdrawal_id=asked.id or 0, approve=True, note="ok",
                                                     decided_by=9, now=NOW))
    first, second = withdrawals
    # The first transfer never reached WeChat Pay (sent again: the payer lookup fails); the second one failed.
    wechat = PerBillWechat({first.withdrawal_no: WechatPayApiError(404, "NOT_FOUND", "记录不存在"),
                            second.withdrawal_no: "FAIL"})

    with pytest.raises(Unauthenticated):  # the round fails, once every withdrawal has had its turn
        service.settle_payouts(lambda: uow, WechatTransferPayout(wechat, PayersRefusingTheJob()),  # type: ignore[arg-type]
                               now=NOW + timedelta(minutes=2))

    assert (first.status, second.status) == ("PAYING", "FAILED")
    assert [(uow.ledger.balance(user, Account.AVAILABLE), uow.ledger.balance(user, Account.PENDING))
            for user in (1, 3)] == [(4_000, 6_000), (10_000, 0)]  # the failed transfer's amount is back
