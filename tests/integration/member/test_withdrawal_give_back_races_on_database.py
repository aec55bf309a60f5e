"""A withdrawal given back (rejected by finance, or its transfer failed) while the same shopper asks for another, on
PostgreSQL, each race made certain by holding one of them open until the other waits on it: both go through (the
wallet's one lock order: bonus, available, pending), and the request, reading under the wallet's locks, counts the
given-back withdrawal's draws on the shopper's recharges as gone, so it forfeits the bonus of the principal it takes
out again."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from services.member import service
from services.member.channels import Payout, PayoutState
from services.member.db import SqlMemberUnitOfWork
from services.member.domain import PLATFORM, Account, transfer
from tests.fakes import SimulatedPayment, SimulatedPayout
from tests.fixtures.postgres import start_thread, wait_until_blocked
from tests.integration.member.pausing import PausingLedger
from tests.integration.member.test_balance_payment_void_on_database import first_then_second

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 9, 8, 0, tzinfo=UTC)
ALICE, FINANCE = 101, 900
RECHARGE, BONUS = 50_000, 5_000  # 500 yuan earns 50 yuan of bonus credit


class FailingTransfer(SimulatedPayout):
    """A transfer accepted at first (in flight), which the channel later reports failed."""

    def pay(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        return Payout(PayoutState.IN_FLIGHT, "T-" + payout_no)

    def status(self, *, payout_no: str, user_id: int, amount_fen: int) -> Payout:
        return Payout(PayoutState.FAILED, "T-" + payout_no, reason="the payee's account is frozen")


def recharged_and_withdrawing(uow: Callable[[], SqlMemberUnitOfWork], *, spend_bonus: bool) -> int:
    """Alice recharges 500 yuan (+50 of bonus), spends the bonus or not, and asks to withdraw all 500: the
    withdrawal's id."""
    recharge, _ = service.create_recharge(uow(), SimulatedPayment(), user_id=ALICE, amount_fen=RECHARGE,
                                          channel="wechat", idempotency_key="r", now=NOW)
    service.credit_recharge(uow(), recharge_no=recharge.recharge_no, paid_fen=RECHARGE, channel_txn_id="T1",
                            channel="wechat", now=NOW)
    if spend_bonus:
        service.pay_with_balance(uow(), user_id=ALICE, order_no="O1", amount_fen=BONUS, now=NOW)
    first = service.request_withdrawal(uow(), user_id=ALICE, amount_fen=RECHARGE, idempotency_key="w1", now=NOW)
    assert (first.bonus_forfeited_fen, first.payout_fen) == (BONUS, RECHARGE - BONUS if spend_bonus else RECHARGE)
    return first.id or 0


def give_back(how: str, withdrawal_id: int, giving_back: SqlMemberUnitOfWork,
              uow: Callable[[], SqlMemberUnitOfWork]) -> str:
    """Give the withdrawal back as `how` says, in the unit of work `giving_back` (any other transaction in one from
    `uow`); its status after."""
    if how == "rejected":
        return service.decide_withdrawal(giving_back, SimulatedPayout(), withdrawal_id=withdrawal_id, approve=False,
                                         note="no", decided_by=FINANCE, now=NOW).status
    units = iter([uow(), giving_back])  # the job reads the page of withdrawals due, then settles each
    service.settle_payouts(lambda: next(units, None) or uow(), FailingTransfer(), now=NOW + timedelta(minutes=2))
    with uow() as tx:
        withdrawal = tx.withdrawals.get(withdrawal_id)
        assert withdrawal is not None
        return withdrawal.status


def approve_in_flight(withdrawal_id: int, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    approved = service.decide_withdrawal(uow(), FailingTransfer(), withdrawal_id=withdrawal_id, approve=True,
                                         note="ok", decided_by=FINANCE, now=NOW)
    assert approved.status == "PAYING"


def balances(uow: Callable[[], SqlMemberUnitOfWork]) -> tuple[int, int, int, int]:
    """(available, pending, bonus, the platform's promotions account)."""
    with uow() as tx:
        assert tx.ledger.check()[1] == []
        return (tx.ledger.balance(ALICE, Account.AVAILABLE), tx.ledger.balance(ALICE, Account.PENDING),
                tx.ledger.balance(ALICE, Account.BONUS), tx.ledger.balance(PLATFORM, Account.PROMOTIONS))


@pytest.mark.parametrize("how", ["rejected", "FAILED"])
def test_a_withdrawal_asked_for_while_one_whose_bonus_was_spent_is_given_back_keeps_that_bonus_from_its_transfer(
        how: str, engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    """The bonus was spent, so the forfeit came out of pending and its return has no bonus leg. Read while the
    give-back was under way (the forfeit back in pending, the amount not yet in available), the first withdrawal's
    draws still stood: the second drew on no recharge, forfeited nothing and paid the spent 50 yuan out."""
    first_id = recharged_and_withdrawing(uow, spend_bonus=True)
    if how == "FAILED":
        approve_in_flight(first_id, uow)
    reached, go, results = threading.Event(), threading.Event(), {}

    def request() -> tuple[int, int]:
        made = service.request_withdrawal(uow(), user_id=ALICE, amount_fen=RECHARGE, idempotency_key="w2", now=NOW)
        return made.bonus_forfeited_fen, made.payout_fen

    giving_back = start_thread(results, "give-back", lambda: give_back(
        how, first_id, PausingLedger(engine, "post", reached, go), uow))
    assert reached.wait(60)  # the forfeit is back in pending, the amount not yet in available
    asking = start_thread(results, "request", request)
    wait_until_blocked(engine, asking)
    go.set()
    giving_back.join(60)
    asking.join(60)

    # the second withdrawal draws the whole recharge again: its bonus (spent) is kept from the transfer again
    assert results == {"give-back": how.upper(), "request": (BONUS, RECHARGE - BONUS)}
    assert balances(uow) == (0, RECHARGE - BONUS, 0, 0)


@pytest.mark.parametrize("how", ["rejected", "FAILED"])
def test_a_withdrawal_asked_for_while_another_is_given_back_forfeits_the_bonus_of_what_it_draws(
        how: str, engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    """Read before the give-back committed, the first withdrawal's draws still stood: the recharge looked drawn
    wholly, the second withdrawal forfeited nothing, and the 50 yuan of bonus returned by the give-back stayed."""
    first_id = recharged_and_withdrawing(uow, spend_bonus=False)
    if how == "FAILED":
        approve_in_flight(first_id, uow)

    def given_back(work: SqlMemberUnitOfWork) -> object:
        return give_back(how, first_id, work, uow)

    def request(work: SqlMemberUnitOfWork) -> object:
        made = service.request_withdrawal(work, user_id=ALICE, amount_fen=RECHARGE, idempotency_key="w2", now=NOW)
        return made.bonus_forfeited_fen, made.payout_fen

    assert first_then_second(engine, uow, given_back, request) == (how.upper(), (BONUS, RECHARGE))
    assert balances(uow) == (0, RECHARGE, 0, 0)


@pytest.mark.parametrize("how", ["rejected", "FAILED"])
def test_a_withdrawal_asked_for_while_another_is_given_back_never_deadlocks(
        how: str, engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    """The request is past finding its accounts when the give-back returns the forfeit to pending (no bonus leg: the
    bonus was spent); then the request takes available and waits for pending, the give-back waits for available.
    Taking the wallet in its one lock order (bonus, available, pending) first, one of them waits for the other before
    it holds anything the other needs: here the give-back for the request, which, first, still finds the 500 yuan
    held by the first withdrawal and the recharge drawn wholly by it."""
    first_id = recharged_and_withdrawing(uow, spend_bonus=True)
    with uow() as tx:  # 100 yuan no recharge brought: withdrawing it draws on no recharge
        tx.ledger.post(transfer("seed", "recharge", "seed", amount=10_000, source=(PLATFORM, Account.CLEARING),
                                target=(ALICE, Account.AVAILABLE)), NOW)
        tx.commit()
    if how == "FAILED":
        approve_in_flight(first_id, uow)
    asked, ask, given, give = (threading.Event() for _ in range(4))
    results: dict[str, object] = {}

    def request() -> tuple[int, int]:
        made = service.request_withdrawal(PausingLedger(engine, "_account_ids", asked, ask), user_id=ALICE,
                                          amount_fen=10_000, idempotency_key="w2", now=NOW)
        return made.bonus_forfeited_fen, made.payout_fen

    asking = start_thread(results, "request", request)
    assert asked.wait(60)
    giving_back = start_thread(results, "give-back", lambda: give_back(
        how, first_id, PausingLedger(engine, "post", given, give), uow))
    wait_until_blocked(engine, giving_back, until=given)  # it waits for the request, or has returned the forfeit
    ask.set()
    wait_until_blocked(engine, asking)
    give.set()
    asking.join(60)
    giving_back.join(60)

    assert results == {"give-back": how.upper(), "request": (0, 10_000)}
    assert balances(uow) == (RECHARGE, 10_000, 0, -BONUS)  # the spent bonus stays given away
