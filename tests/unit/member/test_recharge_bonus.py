"""Recharge bonus credit and withdrawals: the bonus is never withdrawn, and withdrawing a recharge's principal
forfeits its bonus in proportion (what was already spent of it is kept from the transfer), so recharging and
withdrawing again and again gains nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.member import service
from services.member.channels import Payout, PayoutState, SimulatedPayment, SimulatedPayout
from services.member.domain import PLATFORM, Account, Withdrawal
from tests.unit.member.fakes import FakeMemberUnitOfWork

NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
ALICE = 1


@pytest.fixture
def uow() -> FakeMemberUnitOfWork:
    return FakeMemberUnitOfWork()


def recharge(uow: FakeMemberUnitOfWork, amount_fen: int, now: datetime = NOW) -> None:
    made, _ = service.create_recharge(uow, SimulatedPayment(), user_id=ALICE, amount_fen=amount_fen,
                                      channel="wechat", idempotency_key=f"r{len(uow.recharges.recharges)}", now=now)
    service.credit_recharge(uow, recharge_no=made.recharge_no, paid_fen=amount_fen, channel_txn_id=f"T{made.id}",
                            now=now)


def withdraw(uow: FakeMemberUnitOfWork, amount_fen: int, now: datetime = NOW) -> Withdrawal:
    return service.request_withdrawal(uow, user_id=ALICE, amount_fen=amount_fen, now=now,
                                      idempotency_key=f"w{len(uow.withdrawals.withdrawals)}")


def decide(uow: FakeMemberUnitOfWork, withdrawal: Withdrawal, *, approve: bool = True) -> Withdrawal:
    return service.decide_withdrawal(uow, SimulatedPayout(), withdrawal_id=withdrawal.id or 0, approve=approve,
                                     note="", decided_by=9, now=NOW)


def wallet(uow: FakeMemberUnitOfWork) -> tuple[int, int, int]:
    """(available, pending, bonus) of Alice."""
    return tuple(uow.ledger.balance(ALICE, account)  # type: ignore[return-value]
                 for account in (Account.AVAILABLE, Account.PENDING, Account.BONUS))


@pytest.mark.parametrize("spends_the_bonus_first", [False, True])
def test_recharging_and_withdrawing_every_day_gains_nothing(uow: FakeMemberUnitOfWork,
                                                            spends_the_bonus_first: bool) -> None:
    recharged = goods = 0
    for day in range(5):
        today = NOW + timedelta(days=day)
        recharge(uow, 50_000, today)  # 500 yuan earns 50 of bonus
        recharged += 50_000
        if spends_the_bonus_first:  # bonus credit pays first: 50 yuan of goods, none of the principal
            service.pay_with_balance(uow, user_id=ALICE, order_no=f"O{day}", amount_fen=5_000, now=today)
            goods += 5_000
        decide(uow, withdraw(uow, 50_000, today))
    received = recharged + uow.ledger.balance(PLATFORM, Account.CLEARING)  # money in, less money paid out

    assert received + goods - recharged == 0
    assert wallet(uow) == (0, 0, 0)
    assert uow.ledger.balance(PLATFORM, Account.PROMOTIONS) == 0  # every bonus given came back
    assert uow.ledger.check()[1] == []


def test_withdrawing_a_recharge_in_parts_forfeits_its_bonus_in_proportion_rounded_up(
        uow: FakeMemberUnitOfWork) -> None:
    recharge(uow, 50_000)
    parts = [withdraw(uow, amount) for amount in (12_345, 12_345, 25_310)]

    # in all, ceil(drawn x 5,000 / 50,000): 1,235 (1,234.5 up), then 2,469 - 1,235, then the rest of 5,000
    assert [(w.amount_fen, w.bonus_forfeited_fen, w.payout_fen) for w in parts] == [
        (12_345, 1_235, 12_345), (12_345, 1_234, 12_345), (25_310, 2_531, 25_310)]
    assert wallet(uow) == (0, 50_000, 0)
    assert [(entry.kind, entry.amount) for entry in service.wallet_entries(uow, user_id=ALICE, offset=0, limit=20)[0]
            if entry.account == Account.BONUS] == [
        ("bonus_forfeited", -2_531), ("bonus_forfeited", -1_234), ("bonus_forfeited", -1_235),
        ("recharge_bonus", 5_000)]


def test_bonus_already_spent_is_kept_from_the_transfer(uow: FakeMemberUnitOfWork) -> None:
    recharge(uow, 50_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="O1", amount_fen=2_000, now=NOW)  # 2,000 of the bonus
    withdrawal = withdraw(uow, 30_000)  # forfeits 3,000: the 3,000 left of the bonus

    everything = withdraw(uow, 20_000)  # forfeits 2,000 more: spent, so kept from this transfer
    paid = decide(uow, everything)

    assert (withdrawal.bonus_forfeited_fen, withdrawal.payout_fen) == (3_000, 30_000)
    assert (everything.bonus_forfeited_fen, everything.payout_fen) == (2_000, 18_000)
    assert (paid.status, wallet(uow)) == ("PAID", (0, 30_000, 0))
    assert uow.ledger.balance(PLATFORM, Account.PROMOTIONS) == 0  # the whole bonus came back
    assert uow.ledger.balance(PLATFORM, Account.CLEARING) == -50_000 + 18_000


def test_withdrawals_draw_on_the_newest_recharge_first(uow: FakeMemberUnitOfWork) -> None:
    recharge(uow, 50_000)
    recharge(uow, 10_000, NOW + timedelta(minutes=1))  # no bonus below 500 yuan

    first, second = withdraw(uow, 10_000), withdraw(uow, 10_000)

    assert (first.bonus_forfeited_fen, second.bonus_forfeited_fen) == (0, 1_000)
    assert wallet(uow) == (40_000, 20_000, 4_000)


class TransferThatFails:
    """A payout channel whose transfers are accepted, then fail."""

    def pay(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        return Payout(PayoutState.IN_FLIGHT)

    def status(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        return Payout(PayoutState.FAILED, reason="FAIL")


@pytest.mark.parametrize("how", ["rejected", "failed"])
def test_a_withdrawal_that_pays_nothing_gives_its_forfeit_back(uow: FakeMemberUnitOfWork, how: str) -> None:
    recharge(uow, 50_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="O1", amount_fen=2_000, now=NOW)
    withdrawal = withdraw(uow, 50_000)
    asked = (wallet(uow), withdrawal.payout_fen)
    if how == "rejected":
        decide(uow, withdrawal, approve=False)
    else:
        service.decide_withdrawal(uow, TransferThatFails(), withdrawal_id=withdrawal.id or 0, approve=True, note="",
                                  decided_by=9, now=NOW)
        service.settle_payouts(lambda: uow, TransferThatFails(), now=NOW + timedelta(minutes=2))
    given_back = (withdrawal.status, wallet(uow))

    again = withdraw(uow, 50_000)  # the recharge is whole again: the same forfeit

    assert asked == ((0, 48_000, 0), 48_000)  # 3,000 of the bonus forfeited, 2,000 spent kept from the transfer
    assert given_back == (how.upper(), (50_000, 0, 3_000))
    assert (again.bonus_forfeited_fen, again.payout_fen) == (5_000, 48_000)
    assert uow.ledger.balance(PLATFORM, Account.PROMOTIONS) == 0
    assert uow.ledger.check()[1] == []


def test_member_withdrawn_says_the_withdrawals_number_asked_amount_forfeit_payout_and_channel(
        uow: FakeMemberUnitOfWork) -> None:
    recharge(uow, 50_000)
    service.pay_with_balance(uow, user_id=ALICE, order_no="O1", amount_fen=2_000, now=NOW)  # 2,000 of the bonus
    decide(uow, withdraw(uow, 30_000))  # forfeits the 3,000 left of the bonus
    everything = decide(uow, withdraw(uow, 20_000))  # forfeits 2,000 more, spent: kept from the transfer

    withdrawn = [event.payload for event in uow.published if event.event_type == "member-withdrawn"]

    assert [(e.withdrawal_id, e.withdrawal_no, e.requested_fen, e.bonus_forfeited_fen, e.amount_fen, e.channel)
            for e in withdrawn] == [
        ((everything.id or 0) - 1, withdrawn[0].withdrawal_no, 30_000, 3_000, 30_000, "simulated"),
        (everything.id, everything.withdrawal_no, 20_000, 2_000, 18_000, "simulated")]
    assert withdrawn[0].withdrawal_no.startswith("W") and withdrawn[0].withdrawal_no != everything.withdrawal_no
