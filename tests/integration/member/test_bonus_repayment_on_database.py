"""Spent bonus a withdrawal repaid (kept from its transfer), then refunded, on PostgreSQL: once the withdrawal is paid
the refund gives it back as cash, and a refund racing the end of that withdrawal (paid, rejected, its transfer failed)
ends as if in either order, because each reads what is repaid under the wallet's locks its first posting took."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from services.member import service
from services.member.channels import Payout, PayoutState
from services.member.db import SqlMemberUnitOfWork
from tests.fakes import SimulatedPayment, SimulatedPayout
from tests.integration.member.test_balance_payment_void_on_database import first_then_second
from tests.integration.member.test_withdrawal_give_back_races_on_database import (
    ALICE,
    BONUS,
    FINANCE,
    NOW,
    RECHARGE,
    approve_in_flight,
    balances,
    give_back,
    recharged_and_withdrawing,
)

pytestmark = pytest.mark.integration


class TransferThatSucceeds(SimulatedPayout):
    """A transfer accepted at first (in flight), which the channel later reports paid."""

    def pay(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        return Payout(PayoutState.IN_FLIGHT, "T-" + payout_no)

    def status(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        return Payout(PayoutState.PAID, "T-" + payout_no, channel="simulated")


def payout_job(uow: Callable[[], SqlMemberUnitOfWork]) -> Callable[[SqlMemberUnitOfWork], object]:
    """The payout job as one side of first_then_second: it reads the page of withdrawals due, then settles each in
    the unit of work it is given."""
    def paid(work: SqlMemberUnitOfWork) -> object:
        units = iter([uow(), work])
        return service.settle_payouts(lambda: next(units, None) or uow(), TransferThatSucceeds(),
                                      now=NOW + timedelta(minutes=2))
    return paid


def refund(work: SqlMemberUnitOfWork) -> int:
    """Order O1, paid wholly by the bonus, refunded: the available balance after."""
    return service.refund_to_balance(work, user_id=ALICE, refund_no="RF-O1", order_no="O1", amount_fen=BONUS, now=NOW)


def test_a_refund_of_bonus_a_paid_withdrawal_repaid_comes_back_as_cash_and_withdraws_whole(
        uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    first_id = recharged_and_withdrawing(uow, spend_bonus=True)  # 500 yuan asked for, 50 kept: the bonus was spent
    first = service.decide_withdrawal(uow(), SimulatedPayout(), withdrawal_id=first_id, approve=True, note="",
                                      decided_by=FINANCE, now=NOW)
    refunded = [refund(uow()) for _ in range(2)]  # a replay changes nothing

    rest = service.request_withdrawal(uow(), user_id=ALICE, amount_fen=BONUS, idempotency_key="w2", now=NOW)
    rest = service.decide_withdrawal(uow(), SimulatedPayout(), withdrawal_id=rest.id or 0, approve=True, note="",
                                     decided_by=FINANCE, now=NOW)

    assert (first.status, first.payout_fen, refunded) == ("PAID", RECHARGE - BONUS, [BONUS, BONUS])
    assert (rest.status, rest.bonus_forfeited_fen, rest.payout_fen) == ("PAID", 0, BONUS)
    assert balances(uow) == (0, 0, 0, 0)  # (available, pending, bonus, promotions): 500 yuan in, 500 out


@pytest.mark.parametrize("refund_first", [True, False])
def test_a_refund_and_the_payout_of_the_withdrawal_that_repaid_its_bonus_end_with_it_as_cash(
        refund_first: bool, engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    """Refund first: the withdrawal is still paying, so the bonus comes back as bonus, which the payout then turns
    into cash. Payout first: the refund finds the bonus repaid and gives it back as cash."""
    first_id = recharged_and_withdrawing(uow, spend_bonus=True)
    service.decide_withdrawal(uow(), TransferThatSucceeds(), withdrawal_id=first_id, approve=True, note="ok",
                              decided_by=FINANCE, now=NOW)

    paid = payout_job(uow)

    results = (first_then_second(engine, uow, refund, paid) if refund_first
               else first_then_second(engine, uow, paid, refund)[::-1])

    assert results == ((0 if refund_first else BONUS), 1)  # the refund's available balance after; one payout ended
    assert balances(uow) == (BONUS, 0, 0, 0)


@pytest.mark.parametrize("how", ["rejected", "FAILED"])
@pytest.mark.parametrize("refund_first", [True, False])
def test_a_refund_and_the_give_back_of_the_withdrawal_that_would_repay_its_bonus_end_with_the_bonus(
        how: str, refund_first: bool, engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    """A withdrawal given back repaid nothing: either way the shopper ends with the recharge and its bonus, as if the
    order had been refunded and the withdrawal never asked for."""
    first_id = recharged_and_withdrawing(uow, spend_bonus=True)
    if how == "FAILED":
        approve_in_flight(first_id, uow)

    def given_back(work: SqlMemberUnitOfWork) -> object:
        return give_back(how, first_id, work, uow)

    results = (first_then_second(engine, uow, refund, given_back) if refund_first
               else first_then_second(engine, uow, given_back, refund)[::-1])

    assert results == ((0 if refund_first else RECHARGE), how.upper())
    assert balances(uow) == (RECHARGE, 0, BONUS, -BONUS)  # the bonus is the shopper's again


@pytest.mark.parametrize("recharge_first", [True, False])
def test_a_payout_turns_into_cash_the_bonus_refunded_while_under_review_never_a_recharges_racing_it(
        recharge_first: bool, engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    """2,000 of the spent bonus refunded while the withdrawal is under review comes back as bonus; a second recharge
    (+5,000 of bonus) committing before or after the payout: the payout turns the 2,000 into cash, never the 5,000."""
    first_id = recharged_and_withdrawing(uow, spend_bonus=True)  # 50 yuan to be kept for the spent bonus
    service.refund_to_balance(uow(), user_id=ALICE, refund_no="RF-part", order_no="O1", amount_fen=2_000, now=NOW)
    service.decide_withdrawal(uow(), TransferThatSucceeds(), withdrawal_id=first_id, approve=True, note="ok",
                              decided_by=FINANCE, now=NOW)
    again, _ = service.create_recharge(uow(), SimulatedPayment(), user_id=ALICE, amount_fen=RECHARGE,
                                       channel="wechat", idempotency_key="r2", now=NOW)

    def recharged(work: SqlMemberUnitOfWork) -> object:
        return service.credit_recharge(work, recharge_no=again.recharge_no, paid_fen=RECHARGE, channel_txn_id="T2",
                                       channel="wechat", now=NOW).status

    paid = payout_job(uow)

    results = (first_then_second(engine, uow, recharged, paid) if recharge_first
               else first_then_second(engine, uow, paid, recharged)[::-1])

    assert results == ("PAID", 1)  # the recharge credited; one payout ended
    assert balances(uow) == (RECHARGE + 2_000, 0, BONUS, -BONUS)  # (available, pending, bonus, promotions)


def refunded_bonus_taken_by_a_second_withdrawal(uow: Callable[[], SqlMemberUnitOfWork]) -> tuple[int, int]:
    """Alice's first withdrawal is to keep 5,000 for spent bonus; a second recharge's bonus is spent too; order O1's
    5,000 of bonus comes back as bonus; a second withdrawal of 45,000 forfeits 4,500 of it: both withdrawals' ids."""
    first_id = recharged_and_withdrawing(uow, spend_bonus=True)
    again, _ = service.create_recharge(uow(), SimulatedPayment(), user_id=ALICE, amount_fen=RECHARGE,
                                       channel="wechat", idempotency_key="r2", now=NOW)
    service.credit_recharge(uow(), recharge_no=again.recharge_no, paid_fen=RECHARGE, channel_txn_id="T2",
                            channel="wechat", now=NOW)
    service.pay_with_balance(uow(), user_id=ALICE, order_no="O2", amount_fen=BONUS, now=NOW)  # its bonus, spent
    refund(uow())  # order O1's 5,000 of bonus back, as bonus: nothing is repaid yet
    second = service.request_withdrawal(uow(), user_id=ALICE, amount_fen=45_000, idempotency_key="w2", now=NOW)
    assert (second.bonus_forfeited_fen, second.deducted_fen) == (4_500, 0)  # all of it from the refunded bonus
    return first_id, second.id or 0


@pytest.mark.parametrize("how", ["rejected", "FAILED"])
@pytest.mark.parametrize("given_back_first", [True, False])
def test_a_withdrawal_given_back_after_taking_the_refunded_bonus_leaves_the_repaying_payout_as_if_never_asked_for(
        how: str, given_back_first: bool, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    """The refunded bonus a second withdrawal's forfeit took comes back with its give-back; the first withdrawal's
    payout, before or after that, turns it into cash as it would have had the second never been asked for."""
    first_id, second_id = refunded_bonus_taken_by_a_second_withdrawal(uow)
    if how == "FAILED":
        approve_in_flight(second_id, uow)

    def pay_first() -> None:
        service.decide_withdrawal(uow(), SimulatedPayout(), withdrawal_id=first_id, approve=True, note="ok",
                                  decided_by=FINANCE, now=NOW)

    if not given_back_first:
        pay_first()
    status = give_back(how, second_id, uow(), uow)
    if given_back_first:
        pay_first()

    assert status == how.upper()
    assert balances(uow) == (RECHARGE + BONUS, 0, 0, -BONUS)  # the refunded 5,000 the first repaid is cash


@pytest.mark.parametrize("rejected_first", [True, False])
def test_a_rejection_racing_the_repaying_payout_ends_with_the_refunded_bonus_as_cash_either_way(
        rejected_first: bool, engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    """Each reads what the other did under the wallet's locks its first posting takes: the one committing second
    turns into cash the refunded bonus the rejected withdrawal's forfeit took."""
    first_id, second_id = refunded_bonus_taken_by_a_second_withdrawal(uow)
    service.decide_withdrawal(uow(), TransferThatSucceeds(), withdrawal_id=first_id, approve=True, note="ok",
                              decided_by=FINANCE, now=NOW)

    paid = payout_job(uow)

    def rejected(work: SqlMemberUnitOfWork) -> object:
        return give_back("rejected", second_id, work, uow)

    results = (first_then_second(engine, uow, rejected, paid) if rejected_first
               else first_then_second(engine, uow, paid, rejected)[::-1])

    assert results == ("REJECTED", 1)
    assert balances(uow) == (RECHARGE + BONUS, 0, 0, -BONUS)


@pytest.mark.parametrize("given_back_first", [True, False])
def test_refunded_bonus_a_withdrawal_asked_for_before_the_repaying_one_took_ends_as_cash_once_it_is_rejected(
        given_back_first: bool, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    """The refund comes first: the earlier withdrawal's forfeit takes the refunded 2,000, the repaying one keeps all its
    3,000 from the transfer; the earlier rejected, before or after that payout, the 2,000 ends as cash."""
    recharge, _ = service.create_recharge(uow(), SimulatedPayment(), user_id=ALICE, amount_fen=RECHARGE,
                                          channel="wechat", idempotency_key="r", now=NOW)
    service.credit_recharge(uow(), recharge_no=recharge.recharge_no, paid_fen=RECHARGE, channel_txn_id="T1",
                            channel="wechat", now=NOW)
    service.pay_with_balance(uow(), user_id=ALICE, order_no="O1", amount_fen=BONUS, now=NOW)  # all the bonus
    service.refund_to_balance(uow(), user_id=ALICE, refund_no="RF-O1", order_no="O1", amount_fen=2_000, now=NOW)
    earlier = service.request_withdrawal(uow(), user_id=ALICE, amount_fen=20_000, idempotency_key="w1", now=NOW)
    repaying = service.request_withdrawal(uow(), user_id=ALICE, amount_fen=30_000, idempotency_key="w2", now=NOW)
    assert (earlier.deducted_fen, repaying.deducted_fen) == (0, 3_000)

    def pay_repaying() -> None:
        service.decide_withdrawal(uow(), SimulatedPayout(), withdrawal_id=repaying.id or 0, approve=True, note="ok",
                                  decided_by=FINANCE, now=NOW)

    if not given_back_first:
        pay_repaying()
    assert give_back("rejected", earlier.id or 0, uow(), uow) == "REJECTED"
    if given_back_first:
        pay_repaying()

    # 27,000 paid out and 22,000 of cash: 49,000, as had the earlier never been asked for
    assert balances(uow) == (22_000, 0, 0, -2_000)  # 5,000 of bonus given, 3,000 of it repaid
