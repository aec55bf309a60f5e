"""Starting a recharge once per idempotency key, and shoppers reading their own recharges (in-memory unit of work)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from services.common.errors import Conflict, DomainError, ErrorKind, InvalidInput, NotFound
from services.member import service
from services.member.channels import PaidNotice, RechargeChannels
from tests.unit.member.fakes import FakeMemberUnitOfWork

NOW = datetime(2026, 12, 8, 8, 0, tzinfo=UTC)
ALICE, BOB = 1, 2


class CountingChannel:
    """Payment parameters numbered by how often they were prepared; `down` refuses (the channel did not answer)."""

    def __init__(self) -> None:
        self.prepared: list[str] = []
        self.down = False

    def prepare(self, *, out_trade_no: str, amount_fen: int, user_id: int, now: datetime,
                expires_at: datetime) -> dict[str, str]:
        if self.down:
            raise DomainError("ALIPAY_UNAVAILABLE", "the payment channel did not answer", kind=ErrorKind.UNAVAILABLE)
        self.prepared.append(out_trade_no)
        return {"order_string": f"prepared-{len(self.prepared)}"}

    def verify(self, headers: Mapping[str, str], body: bytes) -> PaidNotice:
        raise NotImplementedError

    def query(self, out_trade_no: str) -> PaidNotice | None:
        return None


@pytest.fixture
def uow() -> FakeMemberUnitOfWork:
    return FakeMemberUnitOfWork()


@pytest.fixture
def channel() -> CountingChannel:
    return CountingChannel()


@pytest.fixture
def channels(channel: CountingChannel) -> RechargeChannels:
    return RechargeChannels({"alipay": channel, "bank_card": channel})


def start(uow: FakeMemberUnitOfWork, channels: RechargeChannels, key: str, *, user_id: int = ALICE,
          amount_fen: int = 5_000, channel: str = "alipay", now: datetime = NOW) -> tuple[str, dict[str, str]]:
    recharge, payment = service.create_recharge(uow, channels, user_id=user_id, amount_fen=amount_fen,
                                                channel=channel, idempotency_key=key, now=now)
    return recharge.recharge_no, payment


def test_the_same_key_and_request_give_the_first_recharge_and_its_payment_again(  # type: ignore[no-untyped-def]
        uow, channels, channel) -> None:
    first = start(uow, channels, "tap-1")
    again = start(uow, channels, "tap-1")
    other = start(uow, channels, "tap-2")

    assert again == first == (first[0], {"out_trade_no": first[0], "order_string": "prepared-1"})
    assert (channel.prepared, len(uow.recharges.recharges)) == ([first[0], other[0]], 2)


def test_the_same_key_with_another_request_is_refused_and_starts_nothing(uow, channels, channel) -> None:  # type: ignore[no-untyped-def]
    start(uow, channels, "tap-1")

    with pytest.raises(Conflict) as amount:
        start(uow, channels, "tap-1", amount_fen=6_000)
    with pytest.raises(Conflict) as via:
        start(uow, channels, "tap-1", channel="bank_card")

    assert (amount.value.code, via.value.code) == ("IDEMPOTENCY_KEY_REUSED", "IDEMPOTENCY_KEY_REUSED")
    assert (len(channel.prepared), len(uow.recharges.recharges)) == (1, 1)


def test_a_key_is_required(uow, channels, channel) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput) as missing:
        start(uow, channels, "")

    assert (missing.value.code, channel.prepared) == ("IDEMPOTENCY_KEY_INVALID", [])


def test_a_channel_that_did_not_answer_leaves_the_key_free_for_the_retry(uow, channels, channel) -> None:  # type: ignore[no-untyped-def]
    channel.down = True
    with pytest.raises(DomainError) as down:
        start(uow, channels, "tap-1")
    channel.down = False

    recharge_no, payment = start(uow, channels, "tap-1")

    assert (down.value.code, uow.commits, payment["order_string"]) == ("ALIPAY_UNAVAILABLE", 1, "prepared-1")
    assert channel.prepared == [recharge_no]


def test_a_replay_after_the_payment_arrived_shows_it_paid(uow, channels) -> None:  # type: ignore[no-untyped-def]
    recharge_no, _ = start(uow, channels, "tap-1", amount_fen=50_000)
    service.credit_recharge(uow, recharge_no=recharge_no, paid_fen=50_000, channel_txn_id="T1",
                            now=NOW + timedelta(minutes=3))

    again, _ = service.create_recharge(uow, channels, user_id=ALICE, amount_fen=50_000, channel="alipay",
                                       idempotency_key="tap-1", now=NOW + timedelta(minutes=5))

    assert (again.recharge_no, again.status, again.bonus_fen) == (recharge_no, "PAID", 5_000)


def test_a_shopper_reads_their_own_recharge_and_another_ones_is_not_found(uow, channels) -> None:  # type: ignore[no-untyped-def]
    recharge_no, _ = start(uow, channels, "tap-1")
    service.credit_recharge(uow, recharge_no=recharge_no, paid_fen=5_000, channel_txn_id="T1",
                            now=NOW + timedelta(minutes=3))

    mine = service.get_recharge(uow, user_id=ALICE, recharge_no=recharge_no)
    with pytest.raises(NotFound) as bobs:
        service.get_recharge(uow, user_id=BOB, recharge_no=recharge_no)
    with pytest.raises(NotFound) as unknown:
        service.get_recharge(uow, user_id=ALICE, recharge_no="R-nothing")

    assert (mine.status, mine.amount_fen, mine.paid_at, mine.pay_deadline) == (
        "PAID", 5_000, NOW + timedelta(minutes=3), NOW + timedelta(minutes=30))
    assert (bobs.value.code, unknown.value.code) == ("RECHARGE_NOT_FOUND", "RECHARGE_NOT_FOUND")


def test_my_recharges_are_mine_newest_first_and_filtered_by_status(uow, channels) -> None:  # type: ignore[no-untyped-def]
    first, _ = start(uow, channels, "a", amount_fen=1_000)
    second, _ = start(uow, channels, "b", amount_fen=2_000)
    third, _ = start(uow, channels, "c", amount_fen=3_000)
    start(uow, channels, "a", user_id=BOB, amount_fen=4_000)
    service.credit_recharge(uow, recharge_no=second, paid_fen=2_000, channel_txn_id="T2", now=NOW)

    every, total = service.my_recharges(uow, user_id=ALICE, status="", offset=0, limit=2)
    pending, pending_total = service.my_recharges(uow, user_id=ALICE, status="PENDING", offset=0, limit=20)
    with pytest.raises(InvalidInput) as unknown:
        service.my_recharges(uow, user_id=ALICE, status="REFUNDED", offset=0, limit=20)

    assert ([r.recharge_no for r in every], total) == ([third, second], 3)
    assert ([r.recharge_no for r in pending], pending_total) == ([third, first], 2)
    assert unknown.value.code == "STATUS_INVALID"


# A shopper's recharges awaiting payment: each is asked about at its channel every reconciliation run for 90 minutes.

def test_a_shopper_with_three_recharges_awaiting_payment_is_refused_a_fourth_and_nothing_is_prepared(
        uow, channels, channel) -> None:  # type: ignore[no-untyped-def]
    started = [start(uow, channels, f"tap-{n}", now=NOW + timedelta(seconds=n))[0] for n in range(3)]

    with pytest.raises(DomainError) as refused:
        start(uow, channels, "tap-3", now=NOW + timedelta(seconds=3))

    assert (refused.value.code, refused.value.kind, refused.value.details) == (
        "TOO_MANY_PENDING_RECHARGES", ErrorKind.BUSINESS_RULE, {"pending_recharges": 3, "limit": 3})
    assert (channel.prepared, len(uow.recharges.recharges)) == (started, 3)


def test_a_paid_recharge_frees_its_place_and_a_replay_is_answered_at_the_limit(
        uow, channels) -> None:  # type: ignore[no-untyped-def]
    first, _ = start(uow, channels, "tap-0")
    for n in (1, 2):
        start(uow, channels, f"tap-{n}")

    replayed, _ = start(uow, channels, "tap-0")
    service.credit_recharge(uow, recharge_no=first, paid_fen=5_000, channel_txn_id="T1", now=NOW)
    fourth, _ = start(uow, channels, "tap-3")
    bobs, _ = start(uow, channels, "tap-0", user_id=BOB)

    assert replayed == first
    assert [uow.recharges.recharges[no].status for no in (fourth, bobs)] == ["PENDING", "PENDING"]
