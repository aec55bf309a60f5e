"""An order's wallet charge and its void at the same moment, on PostgreSQL: whichever commits first decides, the other
waits for it: a void answers the charge it waited for, a charge waiting for a void is refused and moves nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from services.member import service
from services.member.db import SqlMemberUnitOfWork
from services.member.domain import PLATFORM, Account
from tests.fixtures.postgres import start_thread, wait_until_blocked
from tests.integration.member.test_member_grpc import fund, wallet

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
ALICE = 101
WALLET, PAYABLE = 10_000, 3_000


def charge(uow: SqlMemberUnitOfWork) -> object:
    return service.pay_with_balance(uow, user_id=ALICE, order_no="O1", amount_fen=PAYABLE, now=NOW)


def void(uow: SqlMemberUnitOfWork) -> object:
    return service.void_balance_payment(uow, order_no="O1")


def first_then_second(engine: Engine, uow: Callable[[], SqlMemberUnitOfWork], first: Callable[[SqlMemberUnitOfWork],
                      object], second: Callable[[SqlMemberUnitOfWork], object]) -> tuple[object, object]:
    """`first` runs up to its commit and holds its transaction open until `second` waits on it; each one's result
    (or the code of the DomainError it raised)."""
    reached, go = threading.Event(), threading.Event()
    results: dict[str, object] = {}

    class HeldOpen(SqlMemberUnitOfWork):
        def commit(self) -> None:
            reached.set()
            assert go.wait(60)
            super().commit()

    one = start_thread(results, "first", lambda: first(HeldOpen(engine, "member")))
    assert reached.wait(60)
    two = start_thread(results, "second", lambda: second(uow()))
    wait_until_blocked(engine, two)
    go.set()
    one.join(60)
    two.join(60)
    return results["first"], results["second"]


def sales(uow: Callable[[], SqlMemberUnitOfWork]) -> int:
    with uow() as tx:
        return tx.ledger.balance(PLATFORM, Account.SALES)


def test_a_void_waiting_for_a_charge_under_way_answers_the_charge(
        engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    fund(uow, ALICE, WALLET)

    charged, voided = first_then_second(engine, uow, charge, void)

    assert (charged, voided) == (WALLET - PAYABLE, service.BalancePayment(user_id=ALICE, amount_fen=PAYABLE))
    assert (wallet(uow, ALICE), sales(uow)) == ((WALLET - PAYABLE, 0), PAYABLE)


def test_a_charge_waiting_for_a_void_under_way_is_refused_and_moves_nothing(
        engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    fund(uow, ALICE, WALLET)

    voided, charged = first_then_second(engine, uow, void, charge)

    assert (voided, charged) == (None, "BALANCE_PAYMENT_VOID")
    assert (wallet(uow, ALICE), sales(uow)) == ((WALLET, 0), 0)
