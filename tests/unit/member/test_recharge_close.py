"""A shopper closing a recharge awaiting payment (in-memory unit of work): PENDING -> CLOSED once its channel closed
the payment, so another can start; CLOSED again changes nothing; PAID and EXPIRED refuse; one the channel reports
paid is credited instead; a payment reported later for a CLOSED recharge still credits it, once. And what the
channel adapters answer when asked to close."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import pytest

from services.common.bankcard import CardPayment
from services.common.errors import Conflict, DomainError, ErrorKind, NotFound
from services.common.wechatpay import PaymentNotice, WechatPayApiError, WechatPayUnavailable
from services.member import service
from services.member.channels import BankcardRecharge, PaidNotice, RechargeChannels, WechatRecharge, never_paid
from services.member.domain import Account, Recharge
from tests.unit.member.fakes import FakeMemberUnitOfWork

NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
ALICE, BOB = 1, 2


class ClosingChannel:
    """A channel that closes each payment and answers how it ended as set in `answers` (an error: raised)."""

    def __init__(self) -> None:
        self.answers: dict[str, PaidNotice | DomainError] = {}
        self.closed: list[str] = []
        self.during_close: Callable[[], object] | None = None  # what happens elsewhere while the channel answers

    def prepare(self, *, out_trade_no: str, amount_fen: int, user_id: int, now: datetime,
                expires_at: datetime) -> dict[str, str]:
        return {}

    def verify(self, headers: Mapping[str, str], body: bytes) -> PaidNotice:
        raise NotImplementedError

    def query(self, out_trade_no: str) -> PaidNotice | None:
        return never_paid(out_trade_no)

    def close(self, out_trade_no: str) -> PaidNotice:
        self.closed.append(out_trade_no)
        if self.during_close is not None:
            self.during_close()
        answer = self.answers.get(out_trade_no, never_paid(out_trade_no))
        if isinstance(answer, DomainError):
            raise answer
        return answer


@pytest.fixture
def uow() -> FakeMemberUnitOfWork:
    return FakeMemberUnitOfWork()


@pytest.fixture
def channel() -> ClosingChannel:
    return ClosingChannel()


@pytest.fixture
def channels(channel: ClosingChannel) -> RechargeChannels:
    return RechargeChannels({"alipay": channel, "wechat": channel})


def recharge(uow: FakeMemberUnitOfWork, channels: RechargeChannels, amount_fen: int = 50_005, *,
             user_id: int = ALICE) -> str:
    started, _ = service.create_recharge(uow, channels, user_id=user_id, amount_fen=amount_fen, channel="wechat",
                                         idempotency_key=f"k{len(uow.recharges.recharges)}", now=NOW)
    return started.recharge_no


def close(uow: FakeMemberUnitOfWork, channels: RechargeChannels, recharge_no: str, user_id: int = ALICE) -> Recharge:
    return service.close_recharge(uow, channels, user_id=user_id, recharge_no=recharge_no, now=NOW)


def money(uow: FakeMemberUnitOfWork) -> tuple[int, int, int]:
    """(available fen, bonus fen, member-recharged events)."""
    return (uow.ledger.balance(ALICE, Account.AVAILABLE), uow.ledger.balance(ALICE, Account.BONUS),
            sum(event.event_type == "member-recharged" for event in uow.published))


def pending(status: str = "PENDING") -> Recharge:
    started = Recharge.create(user_id=ALICE, amount_fen=5_000, channel="wechat", pending_recharges=0, now=NOW)
    if status == "PAID":
        started.mark_paid(paid_fen=5_000, channel_txn_id="T1", now=NOW)
    elif status == "EXPIRED":
        started.expire()
    return started


# -- the domain

def test_closing_a_pending_recharge_makes_it_closed() -> None:
    started = pending()

    assert (started.close(), started.status) == (True, "CLOSED")


def test_closing_a_closed_recharge_again_changes_nothing() -> None:
    started = pending()
    started.close()

    assert (started.close(), started.status) == (False, "CLOSED")


@pytest.mark.parametrize("status", ["PAID", "EXPIRED"])
def test_a_paid_or_expired_recharge_cannot_be_closed(status: str) -> None:
    ended = pending(status)

    with pytest.raises(Conflict) as conflict:
        ended.close()

    assert (conflict.value.code, conflict.value.details, ended.status) == (
        "RECHARGE_STATE_CONFLICT", {"status": status}, status)


def test_a_closed_recharge_paid_late_is_credited_once() -> None:
    late = pending()
    late.close()

    credited = [late.mark_paid(paid_fen=5_000, channel_txn_id="T-late", now=NOW) for _ in range(2)]

    assert (credited, late.status, late.channel_txn_id) == ([True, False], "PAID", "T-late")


def test_the_pending_limit_tells_the_shopper_they_may_close_one() -> None:
    with pytest.raises(DomainError) as refused:
        Recharge.create(user_id=ALICE, amount_fen=5_000, channel="wechat", pending_recharges=3, now=NOW)

    assert (refused.value.code, refused.value.message) == (
        "TOO_MANY_PENDING_RECHARGES", "you have 3 recharges awaiting payment: pay one, close one, or wait for it to "
                                      "expire")


# -- the use case

def test_closing_one_of_three_pending_recharges_lets_a_fourth_start(
        uow: FakeMemberUnitOfWork, channels: RechargeChannels, channel: ClosingChannel) -> None:
    started = [recharge(uow, channels, 5_000 + n) for n in range(3)]

    closed = close(uow, channels, started[1])
    fourth = recharge(uow, channels, 6_000)

    assert (closed.status, channel.closed) == ("CLOSED", [started[1]])
    assert [r.status for r in uow.recharges.recharges.values()] == ["PENDING", "CLOSED", "PENDING", "PENDING"]
    assert uow.recharges.recharges[fourth].amount_fen == 6_000


def test_a_recharge_the_channel_reports_paid_at_its_close_is_credited_once_and_answered_paid(
        uow: FakeMemberUnitOfWork, channels: RechargeChannels, channel: ClosingChannel) -> None:
    paid = recharge(uow, channels, 50_005)
    channel.answers[paid] = PaidNotice(out_trade_no=paid, paid_fen=50_005, txn_id="W9", paid=True)

    answer = close(uow, channels, paid)
    service.credit_recharge(uow, recharge_no=paid, paid_fen=50_005, channel_txn_id="W9", channel="wechat",
                            now=NOW)  # its notify, late

    assert (answer.status, answer.channel_txn_id, money(uow)) == ("PAID", "W9", (50_005, 5_000, 1))


def test_the_second_close_answers_the_closed_recharge_without_asking_the_channel_again(
        uow: FakeMemberUnitOfWork, channels: RechargeChannels, channel: ClosingChannel) -> None:
    started = recharge(uow, channels)

    answers = [close(uow, channels, started).status for _ in range(2)]

    assert (answers, channel.closed) == (["CLOSED", "CLOSED"], [started])


def test_closing_a_recharge_a_notify_credited_first_answers_it_paid_without_asking_the_channel(
        uow: FakeMemberUnitOfWork, channels: RechargeChannels, channel: ClosingChannel) -> None:
    paid = recharge(uow, channels, 5_000)
    service.credit_recharge(uow, recharge_no=paid, paid_fen=5_000, channel_txn_id="W1", channel="wechat", now=NOW)

    answered = close(uow, channels, paid)

    assert (answered.status, answered.channel_txn_id, channel.closed) == ("PAID", "W1", [])


def test_an_expired_recharge_cannot_be_closed_and_the_channel_is_not_asked(
        uow: FakeMemberUnitOfWork, channels: RechargeChannels, channel: ClosingChannel) -> None:
    expired = recharge(uow, channels, 5_000)
    with uow:
        found = uow.recharges.by_no(expired)
        assert found is not None
        found.expire()
        uow.commit()

    with pytest.raises(Conflict) as conflict:
        close(uow, channels, expired)

    assert (conflict.value.code, conflict.value.details, channel.closed) == (
        "RECHARGE_STATE_CONFLICT", {"status": "EXPIRED"}, [])


def test_a_notify_that_credits_the_recharge_while_its_channel_closes_it_wins_and_is_answered(
        uow: FakeMemberUnitOfWork, channels: RechargeChannels, channel: ClosingChannel) -> None:
    """The channel is asked with no row locked: a notify applied meanwhile is what the close then finds."""
    racing = recharge(uow, channels, 5_000)
    channel.during_close = lambda: service.credit_recharge(uow, recharge_no=racing, paid_fen=5_000,
                                                           channel_txn_id="W9", channel="wechat", now=NOW)

    answered = close(uow, channels, racing)

    assert (answered.status, answered.channel_txn_id, channel.closed) == ("PAID", "W9", [racing])


def test_another_shoppers_recharge_is_not_found_and_stays_pending(
        uow: FakeMemberUnitOfWork, channels: RechargeChannels, channel: ClosingChannel) -> None:
    bobs = recharge(uow, channels, user_id=BOB)

    for recharge_no in (bobs, "R-nothing"):
        with pytest.raises(NotFound) as missing:
            close(uow, channels, recharge_no)
        assert missing.value.code == "RECHARGE_NOT_FOUND"

    assert (uow.recharges.recharges[bobs].status, channel.closed) == ("PENDING", [])


@pytest.mark.parametrize("answer", [
    DomainError("WECHATPAY_UNAVAILABLE", "no answer", kind=ErrorKind.UNAVAILABLE),
    DomainError("RECHARGE_NOT_CLOSABLE", "no close at this channel"),
])
def test_a_channel_that_does_not_close_leaves_the_recharge_pending(
        uow: FakeMemberUnitOfWork, channels: RechargeChannels, channel: ClosingChannel, answer: DomainError) -> None:
    waiting = recharge(uow, channels)
    channel.answers[waiting] = answer

    with pytest.raises(DomainError) as refused:
        close(uow, channels, waiting)

    assert (refused.value.code, uow.recharges.recharges[waiting].status, money(uow)) == (
        answer.code, "PENDING", (0, 0, 0))


def test_a_recharge_being_paid_right_now_is_not_closed(
        uow: FakeMemberUnitOfWork, channels: RechargeChannels, channel: ClosingChannel) -> None:
    paying = recharge(uow, channels)
    channel.answers[paying] = PaidNotice(out_trade_no=paying, paid_fen=50_005, txn_id="", paid=False, paying=True)

    with pytest.raises(Conflict) as conflict:
        close(uow, channels, paying)

    assert (conflict.value.details, uow.recharges.recharges[paying].status) == ({"status": "PENDING"}, "PENDING")


def test_a_payment_reported_after_the_recharge_was_closed_still_credits_it_once(
        uow: FakeMemberUnitOfWork, channels: RechargeChannels) -> None:
    late = recharge(uow, channels, 50_005)
    close(uow, channels, late)

    for _ in range(2):  # the late notify, then its replay
        service.credit_recharge(uow, recharge_no=late, paid_fen=50_005, channel_txn_id="W-late", channel="wechat",
                                now=NOW + timedelta(minutes=5))

    assert (uow.recharges.recharges[late].status, money(uow)) == ("PAID", (50_005, 5_000, 1))


def test_shoppers_list_their_closed_recharges_by_that_status(
        uow: FakeMemberUnitOfWork, channels: RechargeChannels) -> None:
    closed = recharge(uow, channels, 5_000)
    recharge(uow, channels, 6_000)
    close(uow, channels, closed)

    found, total = service.my_recharges(uow, user_id=ALICE, status="CLOSED", offset=0, limit=20)

    assert ([(r.recharge_no, r.status) for r in found], total) == ([(closed, "CLOSED")], 1)


# -- what the adapters answer

class Wechat:
    """WeChat Pay's close and query: `close_error` raised by the close, `answer` given (or raised) by the query."""

    def __init__(self, answer: PaymentNotice | Exception, close_error: Exception | None = None) -> None:
        self.answer, self.close_error = answer, close_error
        self.calls: list[str] = []

    def close(self, out_trade_no: str) -> None:
        self.calls.append("close")
        if self.close_error is not None:
            raise self.close_error

    def query_by_out_trade_no(self, out_trade_no: str) -> PaymentNotice:
        self.calls.append("query")
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def transaction(trade_state: str) -> PaymentNotice:
    return PaymentNotice(out_trade_no="R1", transaction_id="W1" if trade_state == "SUCCESS" else None,
                         trade_state=trade_state, amount_total_fen=5_000, payer_total_fen=5_000,
                         success_time=None, appid="wx1", mchid="m1")


def wechat_close(wechat: Wechat) -> PaidNotice:
    return WechatRecharge(wechat, None, "https://n").close("R1")  # type: ignore[arg-type]


def test_wechat_closes_the_order_then_answers_the_query_after_it() -> None:
    wechat = Wechat(transaction("CLOSED"))

    notice = wechat_close(wechat)

    assert ((notice.paid, notice.paying), wechat.calls) == ((False, False), ["close", "query"])


def test_wechat_answers_paid_when_the_payer_beat_the_close() -> None:
    notice = wechat_close(Wechat(transaction("SUCCESS"), WechatPayApiError(400, "ORDERPAID", "该订单已支付")))

    assert (notice.paid, notice.txn_id, notice.paid_fen) == (True, "W1", 5_000)


@pytest.mark.parametrize("wechat", [
    Wechat(WechatPayUnavailable("not asked"), WechatPayApiError(404, "ORDER_NOT_EXIST", "订单不存在")),
    Wechat(WechatPayApiError(404, "ORDER_NOT_EXIST", "订单不存在")),
], ids=["close", "query"])
def test_an_order_wechat_pay_has_not_caught_up_with_is_not_closable_yet_never_closed(wechat: Wechat) -> None:
    """Its prepay was accepted: WeChat Pay may still take a payment of it, which a CLOSED recharge would leave to
    its notify alone (reconciliation and expiry ask about PENDING ones only)."""
    with pytest.raises(DomainError) as refused:
        wechat_close(wechat)

    assert (refused.value.code, refused.value.details) == ("RECHARGE_NOT_CLOSABLE", {"channel": "wechat"})


def test_an_order_an_earlier_close_already_closed_is_answered_by_the_query() -> None:
    wechat = Wechat(transaction("CLOSED"), WechatPayApiError(400, "ORDER_CLOSED", "订单已关闭"))

    notice = wechat_close(wechat)

    assert ((notice.paid, notice.paying), wechat.calls) == ((False, False), ["close", "query"])


@pytest.mark.parametrize("wechat", [
    Wechat(transaction("CLOSED"), WechatPayUnavailable("no answer")),
    Wechat(transaction("CLOSED"), WechatPayApiError(500, "SYSTEM_ERROR", "系统错误")),
    Wechat(WechatPayUnavailable("the query's answer does not verify")),
])
def test_wechat_without_a_trustworthy_answer_is_unavailable(wechat: Wechat) -> None:
    with pytest.raises(DomainError) as unavailable:
        wechat_close(wechat)

    assert (unavailable.value.code, unavailable.value.kind) == ("WECHATPAY_UNAVAILABLE", ErrorKind.UNAVAILABLE)


class Bankcard:
    def __init__(self, payment: object) -> None:
        self.payment = payment
        self.settings = type("Settings", (), {"query_url": "https://bank.example/query"})()

    def query_payment(self, out_trade_no: str) -> object:
        return self.payment


def test_the_bank_card_channel_has_no_close_so_an_unpaid_recharge_is_not_closable() -> None:
    with pytest.raises(DomainError) as refused:
        BankcardRecharge(Bankcard(None), "https://n").close("R1")  # type: ignore[arg-type]

    assert (refused.value.code, refused.value.kind, refused.value.details) == (
        "RECHARGE_NOT_CLOSABLE", ErrorKind.BUSINESS_RULE, {"channel": "bank_card"})


def test_a_bank_card_recharge_already_paid_is_answered_paid_instead() -> None:
    payment = CardPayment(out_trade_no="R1", trade_no="B1", amount_fen=5_000, status="SUCCESS")

    notice = BankcardRecharge(Bankcard(payment), "https://n").close("R1")  # type: ignore[arg-type]

    assert (notice.paid, notice.txn_id) == (True, "B1")
