"""A shopper's first recharge credited while they ask for their first withdrawal, on PostgreSQL, before either has any
wallet account: each race made certain by holding one of them open until the other waits on it. The one that comes
second waits for the first to end (the wallet's accounts are created, then locked, before either reads or moves
them), so the withdrawal either forfeits the bonus of the recharge it draws on or finds nothing to withdraw yet: it
never pays out the recharge's money while its bonus stays in the wallet."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Self

import pytest
from sqlalchemy import Engine

from services.member import service
from services.member.db import SqlMemberUnitOfWork
from tests.fakes import SimulatedPayment, first_call_followed_by, pause
from tests.fixtures.postgres import start_thread, wait_until_blocked
from tests.integration.member.pausing import PausingLedger
from tests.integration.member.test_withdrawal_give_back_races_on_database import (
    ALICE,
    BONUS,
    NOW,
    RECHARGE,
    balances,
)

pytestmark = pytest.mark.integration


class PausingBeforeItsWithdrawal(SqlMemberUnitOfWork):
    """A unit of work that, once a withdrawal request has read the wallet (and before it adds the withdrawal or moves
    any money), waits for `go` (having set `reached`)."""

    def __init__(self, engine: Engine, reached: threading.Event, go: threading.Event) -> None:
        super().__init__(engine, "member")
        self.reached, self.go = reached, go

    def __enter__(self) -> Self:
        super().__enter__()
        self.withdrawals.add = first_call_followed_by(  # type: ignore[method-assign]
            self.withdrawals.add, pause(self.reached, self.go), before=True)
        return self


def recharge_no(uow: Callable[[], SqlMemberUnitOfWork]) -> str:
    """Alice's recharge of 500 yuan (+50 of bonus once credited), not paid yet; she has no wallet account."""
    recharge, _ = service.create_recharge(uow(), SimulatedPayment(), user_id=ALICE, amount_fen=RECHARGE,
                                          channel="wechat", idempotency_key="r", now=NOW)
    assert balances(uow) == (0, 0, 0, 0)
    return recharge.recharge_no


def credit(work: SqlMemberUnitOfWork, no: str) -> str:
    return service.credit_recharge(work, recharge_no=no, paid_fen=RECHARGE, channel_txn_id="T1", channel="wechat",
                                   now=NOW).status


def withdraw(work: SqlMemberUnitOfWork) -> tuple[int, int]:
    made = service.request_withdrawal(work, user_id=ALICE, amount_fen=RECHARGE, idempotency_key="w1", now=NOW)
    return made.bonus_forfeited_fen, made.payout_fen


def test_a_first_withdrawal_asked_for_while_the_first_recharge_is_credited_forfeits_its_bonus(
        engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    """The credit has made the wallet's accounts and put the 500 yuan in, not committed yet. Finding no account to
    lock, the request used to read no recharge and no bonus, then wait only when it moved the money, by then there:
    it paid the 500 yuan out and the 50 of bonus stayed."""
    no = recharge_no(uow)
    reached, go, results = threading.Event(), threading.Event(), {}

    crediting = start_thread(results, "credit", lambda: credit(PausingLedger(engine, "post", reached, go), no))
    assert reached.wait(60)  # the 500 yuan are in available, the bonus not yet given
    asking = start_thread(results, "request", lambda: withdraw(uow()))
    wait_until_blocked(engine, asking)
    go.set()
    crediting.join(60)
    asking.join(60)

    assert results == {"credit": "PAID", "request": (BONUS, RECHARGE)}  # the unspent bonus forfeited, all paid
    assert balances(uow) == (0, RECHARGE, 0, 0)  # (available, pending, bonus, the platform's promotions)


def test_a_first_withdrawal_read_before_the_first_recharge_is_credited_finds_nothing_to_withdraw(
        engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    """The request has read the wallet (empty) and not moved anything yet. It used to hold no lock the credit needed:
    the credit went through, and the request, which had read no recharge to forfeit the bonus of, paid its 500 yuan
    out."""
    no = recharge_no(uow)
    reached, go, results = threading.Event(), threading.Event(), {}

    asking = start_thread(results, "request", lambda: withdraw(PausingBeforeItsWithdrawal(engine, reached, go)))
    assert reached.wait(60)  # the wallet read, empty
    crediting = start_thread(results, "credit", lambda: credit(uow(), no))
    wait_until_blocked(engine, crediting)
    go.set()
    asking.join(60)
    crediting.join(60)

    assert results == {"request": "INSUFFICIENT_BALANCE", "credit": "PAID"}
    assert balances(uow) == (RECHARGE, 0, BONUS, -BONUS)
