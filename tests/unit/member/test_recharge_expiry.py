"""Recharges left PENDING past their payment deadline (in-memory unit of work): the channel is asked once more, a paid
one is credited, one over unpaid (or never seen) becomes EXPIRED, one the channel cannot say about waits; a payment
reported later still credits an EXPIRED recharge, once. And the channel adapters' answers the expiry relies on."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from services.common.bankcard import Bankcard, BankcardSettings
from services.common.config import ConfigError, ServiceSettings
from services.common.errors import Conflict
from services.common.wechatpay import PaymentNotice, WechatPayApiError, WechatPayUnavailable
from services.member import metrics, service
from services.member.channels import BankcardRecharge, PaidNotice, RechargeChannels, WechatRecharge, never_paid
from services.member.config import MemberServiceSettings
from services.member.domain import Account, Recharge
from tests.unit.member.fakes import FakeMemberUnitOfWork

NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
ALICE = 1
DEADLINE = NOW + timedelta(minutes=30)  # a recharge started at NOW is payable for 30 minutes


class AnsweringChannel:
    """A channel answering each recharge's query as set in `answers` (None: it cannot say); counts the questions."""

    def __init__(self) -> None:
        self.answers: dict[str, PaidNotice | None] = {}
        self.asked: list[str] = []

    def prepare(self, *, out_trade_no: str, amount_fen: int, user_id: int, now: datetime,
                expires_at: datetime) -> dict[str, str]:
        return {"expires_at": expires_at.isoformat()}

    def verify(self, headers: Mapping[str, str], body: bytes) -> PaidNotice:
        raise NotImplementedError

    def query(self, out_trade_no: str) -> PaidNotice | None:
        self.asked.append(out_trade_no)
        return self.answers.get(out_trade_no, never_paid(out_trade_no))


@pytest.fixture
def uow() -> FakeMemberUnitOfWork:
    return FakeMemberUnitOfWork()


@pytest.fixture
def channel() -> AnsweringChannel:
    return AnsweringChannel()


@pytest.fixture
def channels(channel: AnsweringChannel) -> RechargeChannels:
    return RechargeChannels({"alipay": channel, "bank_card": channel, "wechat": channel})


def recharge(uow: FakeMemberUnitOfWork, channels: RechargeChannels, amount_fen: int = 50_005, *,
             channel: str = "alipay", now: datetime = NOW, user_id: int = ALICE) -> str:
    started, _ = service.create_recharge(uow, channels, user_id=user_id, amount_fen=amount_fen, channel=channel,
                                         idempotency_key=f"k{len(uow.recharges.recharges)}", now=now)
    return started.recharge_no


def expire(uow: FakeMemberUnitOfWork, channels: RechargeChannels, at: datetime) -> int:
    return service.expire_recharges(lambda: uow, channels, now=at, expire_seconds=900)


def statuses(uow: FakeMemberUnitOfWork) -> list[str]:
    return [r.status for r in uow.recharges.recharges.values()]


def money(uow: FakeMemberUnitOfWork) -> tuple[int, int, int]:
    """(available fen, bonus fen, member-recharged events)."""
    return (uow.ledger.balance(ALICE, Account.AVAILABLE), uow.ledger.balance(ALICE, Account.BONUS),
            sum(event.event_type == "member-recharged" for event in uow.published))


def test_an_unpaid_recharge_expires_only_once_its_deadline_and_the_grace_after_it_have_passed(
        uow: FakeMemberUnitOfWork, channels: RechargeChannels, channel: AnsweringChannel) -> None:
    never_seen = recharge(uow, channels)
    closed = recharge(uow, channels, channel="bank_card")
    channel.answers[closed] = PaidNotice(out_trade_no=closed, paid_fen=50_005, txn_id="B1", paid=False)

    assert expire(uow, channels, DEADLINE + timedelta(seconds=900)) == 0  # not yet past the grace
    assert (statuses(uow), channel.asked) == (["PENDING", "PENDING"], [])
    assert expire(uow, channels, DEADLINE + timedelta(seconds=901)) == 2
    assert expire(uow, channels, DEADLINE + timedelta(hours=5)) == 0

    assert (statuses(uow), channel.asked, money(uow)) == (["EXPIRED", "EXPIRED"], [never_seen, closed], (0, 0, 0))


def test_shoppers_see_their_expired_recharges_and_can_list_them_by_that_status(
        uow: FakeMemberUnitOfWork, channels: RechargeChannels) -> None:
    lapsed = recharge(uow, channels, 5_000)
    recharge(uow, channels, 6_000, now=DEADLINE)  # still payable
    expire(uow, channels, DEADLINE + timedelta(minutes=20))

    expired, expired_total = service.my_recharges(uow, user_id=ALICE, status="EXPIRED", offset=0, limit=20)
    pending, pending_total = service.my_recharges(uow, user_id=ALICE, status="PENDING", offset=0, limit=20)

    assert ([(r.recharge_no, r.status, r.amount_fen) for r in expired], expired_total) == (
        [(lapsed, "EXPIRED", 5_000)], 1)
    assert ([r.amount_fen for r in pending], pending_total) == ([6_000], 1)
    assert service.get_recharge(uow, user_id=ALICE, recharge_no=lapsed).status == "EXPIRED"


def test_a_recharge_the_channel_reports_paid_at_its_expiry_is_credited_not_expired(
        uow: FakeMemberUnitOfWork, channels: RechargeChannels, channel: AnsweringChannel) -> None:
    paid = recharge(uow, channels, 50_005)
    channel.answers[paid] = PaidNotice(out_trade_no=paid, paid_fen=50_005, txn_id="T9", paid=True)

    assert expire(uow, channels, DEADLINE + timedelta(minutes=20)) == 0
    assert expire(uow, channels, DEADLINE + timedelta(minutes=40)) == 0

    assert (statuses(uow), money(uow), channel.asked) == (["PAID"], (50_005, 5_000, 1), [paid])
    assert uow.recharges.recharges[paid].channel_txn_id == "T9"


@pytest.mark.parametrize("answer", ["cannot say", "still paying", "about another payment", "another amount"])
def test_a_recharge_the_channel_cannot_say_is_over_stays_pending_and_is_asked_again(
        uow: FakeMemberUnitOfWork, channels: RechargeChannels, channel: AnsweringChannel, answer: str) -> None:
    waiting = recharge(uow, channels, 50_005)
    channel.answers[waiting] = {
        "cannot say": None,
        "still paying": PaidNotice(out_trade_no=waiting, paid_fen=50_005, txn_id="", paid=False, paying=True),
        "about another payment": never_paid("R-other"),
        "another amount": PaidNotice(out_trade_no=waiting, paid_fen=50_004, txn_id="T9", paid=True),
    }[answer]

    expired = [expire(uow, channels, DEADLINE + timedelta(minutes=minutes)) for minutes in (20, 21)]

    assert (expired, statuses(uow), money(uow), channel.asked) == ([0, 0], ["PENDING"], (0, 0, 0), [waiting] * 2)


def test_a_payment_reported_after_the_recharge_expired_still_credits_it_once(
        uow: FakeMemberUnitOfWork, channels: RechargeChannels) -> None:
    late = recharge(uow, channels, 50_005)
    expire(uow, channels, DEADLINE + timedelta(minutes=20))

    for _ in range(2):  # the late notify, then its replay
        service.credit_recharge(uow, recharge_no=late, paid_fen=50_005, channel_txn_id="T-late", channel="alipay",
                                now=DEADLINE + timedelta(minutes=25))

    assert (statuses(uow), money(uow)) == (["PAID"], (50_005, 5_000, 1))


def test_overdue_recharges_beyond_one_batch_are_all_asked_about_page_after_page(
        uow: FakeMemberUnitOfWork, channels: RechargeChannels, channel: AnsweringChannel) -> None:
    started = [recharge(uow, channels, 5_000 + n, user_id=ALICE + n) for n in range(5)]  # a shopper has 3 at most

    expired = service.expire_recharges(lambda: uow, channels, now=DEADLINE + timedelta(minutes=20),
                                       expire_seconds=900, batch=2)

    assert (expired, statuses(uow), channel.asked) == (5, ["EXPIRED"] * 5, started)


def test_pending_recharges_beyond_one_batch_are_all_reconciled_page_after_page(
        uow: FakeMemberUnitOfWork, channels: RechargeChannels, channel: AnsweringChannel) -> None:
    started = [recharge(uow, channels, 5_000 + n, user_id=ALICE + n) for n in range(5)]  # a shopper has 3 at most
    for n, recharge_no in enumerate(started):
        channel.answers[recharge_no] = PaidNotice(out_trade_no=recharge_no, paid_fen=5_000 + n, txn_id=f"T{n}",
                                                  paid=True)

    credited = service.reconcile_recharges(lambda: uow, channels, now=NOW + timedelta(minutes=2), batch=2)

    assert (credited, statuses(uow), channel.asked) == (5, ["PAID"] * 5, started)


def test_only_a_pending_recharge_can_expire() -> None:
    paid = Recharge.create(user_id=ALICE, amount_fen=5_000, channel="alipay", pending_recharges=0, now=NOW)
    paid.mark_paid(paid_fen=5_000, channel_txn_id="T1", now=NOW)

    with pytest.raises(Conflict) as conflict:
        paid.expire()

    assert (conflict.value.code, paid.status) == ("RECHARGE_STATE_CONFLICT", "PAID")


# -- what the adapters answer: only a channel's own word that a payment is over, or never was, lets it expire

class Wechat:
    def __init__(self, answer: PaymentNotice | Exception) -> None:
        self.answer = answer

    def query_by_out_trade_no(self, out_trade_no: str) -> PaymentNotice:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def overdue_gauges() -> tuple[float | None, float | None]:
    return (REGISTRY.get_sample_value("mall_recharges_pending_overdue"),
            REGISTRY.get_sample_value("mall_recharges_pending_overdue_oldest_seconds"))


def test_recharges_the_channel_gives_no_answer_about_past_the_grace_are_counted_with_the_oldest_ones_overdue_time(
        uow: FakeMemberUnitOfWork, channels: RechargeChannels, channel: AnsweringChannel) -> None:
    first = recharge(uow, channels, 10_000)
    second = recharge(uow, channels, 20_000, now=NOW + timedelta(minutes=3))
    recharge(uow, channels, 30_000, now=NOW + timedelta(minutes=4))  # the channel never saw it: expires
    recharge(uow, channels, 40_000, now=NOW + timedelta(minutes=10), user_id=ALICE + 1)  # not yet past the grace
    channel.answers[first] = channel.answers[second] = None

    assert expire(uow, channels, DEADLINE + timedelta(minutes=20)) == 1

    assert overdue_gauges() == (2, 1_200)  # the first, 20 minutes past its deadline, and the second


def test_the_overdue_gauges_fall_to_zero_once_the_channel_answers(
        uow: FakeMemberUnitOfWork, channels: RechargeChannels, channel: AnsweringChannel) -> None:
    waiting = recharge(uow, channels, 10_000)
    channel.answers[waiting] = None
    expire(uow, channels, DEADLINE + timedelta(minutes=20))
    channel.answers[waiting] = PaidNotice(out_trade_no=waiting, paid_fen=10_000, txn_id="T1", paid=True)

    expire(uow, channels, DEADLINE + timedelta(minutes=21))

    assert (overdue_gauges(), statuses(uow)) == ((0, 0), ["PAID"])


def test_a_round_the_channel_breaks_part_way_still_updates_the_overdue_gauges(
        uow: FakeMemberUnitOfWork, channels: RechargeChannels, channel: AnsweringChannel,
        monkeypatch: pytest.MonkeyPatch) -> None:
    recharge(uow, channels, 10_000)
    recharge(uow, channels, 20_000, now=NOW + timedelta(minutes=1))
    metrics.overdue_recharges(0, 0)

    def broken(out_trade_no: str) -> PaidNotice | None:
        raise ConnectionError("channel unreachable")
    monkeypatch.setattr(channel, "query", broken)

    with pytest.raises(ConnectionError):
        expire(uow, channels, DEADLINE + timedelta(minutes=30))

    assert overdue_gauges() == (2, 1_800)


def wechat_query(answer: PaymentNotice | Exception) -> PaidNotice | None:
    return WechatRecharge(Wechat(answer), None, "https://n").query("R1")  # type: ignore[arg-type]


def transaction(trade_state: str) -> PaymentNotice:
    return PaymentNotice(out_trade_no="R1", transaction_id="W1" if trade_state == "SUCCESS" else None,
                         trade_state=trade_state, amount_total_fen=5_000, payer_total_fen=5_000,
                         success_time=None, appid="wx1", mchid="m1")


@pytest.mark.parametrize(("answer", "expected"), [
    (WechatPayApiError(404, "ORDER_NOT_EXIST", "订单不存在"), (False, False)),
    (transaction("NOTPAY"), (False, False)), (transaction("CLOSED"), (False, False)),
    (transaction("PAYERROR"), (False, False)), (transaction("USERPAYING"), (False, True)),
    (transaction("REFUND"), (False, True)), (transaction("SUCCESS"), (True, False)),
    (WechatPayUnavailable("no answer"), None), (WechatPayApiError(403, "NO_AUTH", "无权限"), None)])
def test_wechat_pay_answers_unpaid_only_for_a_transaction_it_ended_unpaid_or_never_had(
        answer: PaymentNotice | Exception, expected: tuple[bool, bool] | None) -> None:
    notice = wechat_query(answer)

    assert (None if notice is None else (notice.paid, notice.paying)) == expected


def test_the_bank_card_channel_cannot_say_without_a_query_url(tmp_path: Path) -> None:
    settings = BankcardSettings.from_env("test", {"BANKCARD_MERCHANT_ID": "m1", "BANKCARD_SECRET": "s" * 32,
                                                  "BANKCARD_CASHIER_URL": "https://cashier"})
    assert settings is not None and settings.query_url is None

    assert BankcardRecharge(Bankcard(settings), "https://n").query("R1") is None


def base(tmp_path: Path) -> ServiceSettings:
    key = tmp_path / "jwt-public.pem"
    key.write_bytes(b"public")
    return ServiceSettings.from_env("member", {"JWT_PUBLIC_KEY_FILE": str(key), "MINIMALL_ENV": "test"})


@pytest.mark.parametrize(("raw", "expected"), [(None, 900), ("60", 60), ("86400", 86_400)])
def test_the_expiry_grace_is_read_from_the_environment(tmp_path: Path, raw: str | None, expected: int) -> None:
    environ: dict[str, Any] = {} if raw is None else {"MEMBER_RECHARGE_EXPIRE_SECONDS": raw}
    assert MemberServiceSettings.from_env(base(tmp_path), environ).recharge_expire_seconds == expected


@pytest.mark.parametrize("raw", ["59", "86401", "-1"])
def test_an_expiry_grace_out_of_its_bounds_stops_the_service_at_start(tmp_path: Path, raw: str) -> None:
    with pytest.raises(ConfigError, match=f"^MEMBER_RECHARGE_EXPIRE_SECONDS must be 60 to 86400, got '{raw}'$"):
        MemberServiceSettings.from_env(base(tmp_path), {"MEMBER_RECHARGE_EXPIRE_SECONDS": raw})
