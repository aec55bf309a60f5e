"""Recharge notifies on the in-memory unit of work: only a verified notify of the recharge's own amount and
channel credits it, once; everything else is rejected with nothing changed. Reconciliation finds lost notifies."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from services.common.errors import DomainError
from services.member import service
from services.member.channels import NotifyRejected, PaidNotice, RechargeChannels
from services.member.domain import Account
from tests.unit.member.fakes import FakeMemberUnitOfWork

NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
ALICE = 1


class FakeChannel:
    """A channel whose notify body is `out_trade_no:paid_fen:txn_id:status`, "forged" when not verified."""

    def __init__(self) -> None:
        self.queried: dict[str, PaidNotice] = {}

    def prepare(self, *, out_trade_no: str, amount_fen: int, user_id: int, now: datetime,
                expires_at: datetime) -> dict[str, str]:
        return {"expires_at": expires_at.isoformat()}

    def verify(self, headers: Mapping[str, str], body: bytes) -> PaidNotice:
        if headers.get("signature") != "good":
            raise NotifyRejected("the signature does not verify")
        no, fen, txn, status = body.decode().split(":")
        return PaidNotice(out_trade_no=no, paid_fen=int(fen), txn_id=txn, paid=status == "SUCCESS")

    def query(self, out_trade_no: str) -> PaidNotice | None:
        return self.queried.get(out_trade_no)


@pytest.fixture
def uow() -> FakeMemberUnitOfWork:
    return FakeMemberUnitOfWork()


@pytest.fixture
def channel() -> FakeChannel:
    return FakeChannel()


@pytest.fixture
def channels(channel: FakeChannel) -> RechargeChannels:
    return RechargeChannels({"alipay": channel, "bank_card": channel})


def notify(uow: FakeMemberUnitOfWork, channels: RechargeChannels, body: str, *, channel: str = "alipay",
           signature: str = "good") -> str:
    return service.handle_recharge_notify(uow, channels, channel=channel, headers={"signature": signature},
                                          body=body.encode(), now=NOW)


def state(uow: FakeMemberUnitOfWork) -> tuple[int, int, list[str]]:
    return (uow.ledger.balance(ALICE, Account.AVAILABLE), len(uow.published),
            [r.status for r in uow.recharges.recharges.values()])


def test_the_payment_parameters_carry_the_recharge_number_and_its_deadline(uow, channels) -> None:  # type: ignore[no-untyped-def]
    recharge, payment = service.create_recharge(uow, channels, user_id=ALICE, amount_fen=5_000, channel="alipay",
                                                idempotency_key="r1", now=NOW)
    with pytest.raises(DomainError) as unconfigured:
        service.create_recharge(uow, channels, user_id=ALICE, amount_fen=5_000, channel="wechat",
                                idempotency_key="r2", now=NOW)
    assert payment == {"out_trade_no": recharge.recharge_no, "expires_at": (NOW + timedelta(minutes=30)).isoformat()}
    assert unconfigured.value.code == "CHANNEL_NOT_CONFIGURED"


def test_a_verified_notify_credits_once_however_often_it_comes(uow, channels) -> None:  # type: ignore[no-untyped-def]
    recharge, _ = service.create_recharge(uow, channels, user_id=ALICE, amount_fen=5_000, channel="alipay",
                                          idempotency_key="r3", now=NOW)
    answers = [notify(uow, channels, f"{recharge.recharge_no}:5000:T1:SUCCESS") for _ in range(5)]
    assert answers == [recharge.recharge_no] * 5
    assert state(uow) == (5_000, 1, ["PAID"])
    assert uow.published[0].payload.amount_fen == 5_000


@pytest.mark.parametrize(("body", "via", "signature", "reason"), [
    ("{no}:5000:T1:SUCCESS", "alipay", "forged", "signature"),
    ("{no}:5001:T1:SUCCESS", "alipay", "good", "amount paid differs"),
    ("{no}:4999:T1:SUCCESS", "alipay", "good", "amount paid differs"),
    ("R000:5000:T1:SUCCESS", "alipay", "good", "no such recharge"),
    ("{no}:5000:T1:SUCCESS", "bank_card", "good", "paid through alipay"),
    ("{no}:5000:T1:SUCCESS", "wechat", "good", "not configured"),
])
def test_untrusted_or_mismatched_notifies_are_rejected_with_nothing_changed(  # type: ignore[no-untyped-def]
        uow, channels, body: str, via: str, signature: str, reason: str) -> None:
    recharge, _ = service.create_recharge(uow, channels, user_id=ALICE, amount_fen=5_000, channel="alipay",
                                          idempotency_key="r4", now=NOW)
    with pytest.raises(NotifyRejected, match=reason):
        notify(uow, channels, body.format(no=recharge.recharge_no), channel=via, signature=signature)
    assert state(uow) == (0, 0, ["PENDING"])


def test_an_unpaid_status_is_acknowledged_and_another_transaction_after_payment_rejected(uow, channels) -> None:  # type: ignore[no-untyped-def]
    recharge, _ = service.create_recharge(uow, channels, user_id=ALICE, amount_fen=5_000, channel="alipay",
                                          idempotency_key="r5", now=NOW)
    assert notify(uow, channels, f"{recharge.recharge_no}:5000:T1:WAIT_BUYER_PAY") == ""
    assert state(uow) == (0, 0, ["PENDING"])
    notify(uow, channels, f"{recharge.recharge_no}:5000:T1:SUCCESS")
    with pytest.raises(NotifyRejected, match="another transaction"):
        notify(uow, channels, f"{recharge.recharge_no}:5000:T2:SUCCESS")
    assert state(uow) == (5_000, 1, ["PAID"])


def test_reconciliation_credits_a_paid_recharge_whose_notify_was_lost(uow, channels, channel) -> None:  # type: ignore[no-untyped-def]
    paid, _ = service.create_recharge(uow, channels, user_id=ALICE, amount_fen=5_000, channel="alipay",
                                      idempotency_key="r6", now=NOW)
    unpaid, _ = service.create_recharge(uow, channels, user_id=ALICE, amount_fen=7_000, channel="bank_card",
                                        idempotency_key="r7", now=NOW)
    young, _ = service.create_recharge(uow, channels, user_id=ALICE, amount_fen=9_000, channel="alipay",
                                       idempotency_key="r8", now=NOW + timedelta(minutes=2))
    for recharge in (paid, young):
        channel.queried[recharge.recharge_no] = PaidNotice(recharge.recharge_no, recharge.amount_fen, "T1", True)
    channel.queried[unpaid.recharge_no] = PaidNotice(unpaid.recharge_no, 7_000, "", False)

    credited = [service.reconcile_recharges(lambda: uow, channels, now=NOW + timedelta(minutes=2)) for _ in range(2)]

    assert credited == [1, 0]  # the young one is left to its notify for a minute; the paid one once
    assert state(uow) == (5_000, 1, ["PAID", "PENDING", "PENDING"])


def test_a_recharge_of_500_yuan_earns_50_of_bonus_which_pays_first_and_is_never_withdrawn(uow, channels) -> None:  # type: ignore[no-untyped-def]
    recharge, _ = service.create_recharge(uow, channels, user_id=ALICE, amount_fen=50_000, channel="alipay",
                                          idempotency_key="r9", now=NOW)
    notify(uow, channels, f"{recharge.recharge_no}:50000:T1:SUCCESS")
    with pytest.raises(DomainError) as too_much:
        service.request_withdrawal(uow, user_id=ALICE, amount_fen=50_001, idempotency_key="w", now=NOW)
    service.pay_with_balance(uow, user_id=ALICE, order_no="O1", amount_fen=6_000, now=NOW)
    after_payment = (uow.ledger.balance(ALICE, Account.BONUS), uow.ledger.balance(ALICE, Account.AVAILABLE))
    for refund_no in ("F1", "F2"):
        service.refund_to_balance(uow, user_id=ALICE, refund_no=refund_no, order_no="O1", amount_fen=3_000, now=NOW)

    assert (uow.published[0].payload.bonus_fen, too_much.value.code) == (5_000, "INSUFFICIENT_BALANCE")
    assert after_payment == (0, 49_000)  # the 5,000 bonus first, then 1,000 of the balance
    assert (uow.ledger.balance(ALICE, Account.BONUS), uow.ledger.balance(ALICE, Account.AVAILABLE)) == (5_000, 50_000)
