"""Two refunds of one wallet payment credited at the same moment, on PostgreSQL: together they never return more than
the payment charged, whether or not the shopper ever had bonus credit (a bonus account to lock)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine

from services.member import service
from services.member.db import SqlMemberUnitOfWork
from services.member.domain import PLATFORM, Account
from tests.integration.member.test_balance_payment_void_on_database import first_then_second
from tests.integration.member.test_member_grpc import fund, wallet

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
ALICE = 101
WALLET, PAID = 10_000, 3_000


def refund(refund_no: str) -> Callable[[SqlMemberUnitOfWork], object]:
    def step(uow: SqlMemberUnitOfWork) -> object:
        return service.refund_to_balance(uow, user_id=ALICE, refund_no=refund_no, order_no="O1", amount_fen=PAID,
                                         now=NOW)
    return step


def test_two_refunds_of_one_payment_at_once_return_it_once(engine: Engine,
                                                           uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    fund(uow, ALICE, WALLET)  # no bonus credit: the shopper has no bonus account
    service.pay_with_balance(uow(), user_id=ALICE, order_no="O1", amount_fen=PAID, now=NOW)

    first, second = first_then_second(engine, uow, refund("RF1"), refund("RF2"))

    assert (first, second) == (WALLET, "REFUND_EXCEEDS_PAYMENT")
    with uow() as tx:
        sales = tx.ledger.balance(PLATFORM, Account.SALES)
    assert (wallet(uow, ALICE), sales) == ((WALLET, 0), 0)


def test_a_refund_asked_for_again_while_the_first_ask_is_under_way_credits_it_once(
        engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    """The order service asks again (its retry, or the fallback job's) with the same refund number while the first
    ask, whose answer it lost, is still under way: the second waits for the first (the order's refund lock, which
    every ask takes), then answers the credit the first made."""
    fund(uow, ALICE, WALLET)
    service.pay_with_balance(uow(), user_id=ALICE, order_no="O1", amount_fen=PAID, now=NOW)

    first, again = first_then_second(engine, uow, refund("RF1"), refund("RF1"))

    assert (first, again) == (WALLET, WALLET)
    with uow() as tx:
        assert tx.ledger.sum_entries(ALICE, Account.AVAILABLE, ("balance_refund",), reference="O1") == PAID
        sales = tx.ledger.balance(PLATFORM, Account.SALES)
    assert (wallet(uow, ALICE), sales) == ((WALLET, 0), 0)
