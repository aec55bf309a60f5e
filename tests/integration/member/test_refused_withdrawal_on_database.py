"""A withdrawal (and a wallet payment) refused for the balance on PostgreSQL: what the in-memory unit of work's test of it asserts
(tests/unit/member/test_use_cases.py) is what the database does, so the fake's rollback stays honest."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from services.member.db import SqlMemberUnitOfWork
from tests.unit.member.test_use_cases import wallet_payment_refused, withdrawal_refused_then_another

pytestmark = pytest.mark.integration


def test_a_withdrawal_refused_for_the_balance_leaves_no_withdrawal_and_no_draw_on_a_recharge_behind_in_the_database(
        uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    refused, withdrawals, bonus_left = withdrawal_refused_then_another(uow)

    assert (refused, bonus_left) == ("INSUFFICIENT_BALANCE", 0)
    assert [(w.amount_fen, w.bonus_forfeited_fen, w.status) for w in withdrawals] == [
        (50_000, 5_000, "PENDING_REVIEW")]


def test_a_wallet_payment_refused_in_the_database_says_what_the_order_needs_and_the_wallet_has(
        uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    refused = wallet_payment_refused(uow)

    assert (refused.code, refused.details) == (
        "INSUFFICIENT_BALANCE", {"account": "available", "needed_fen": 60_000, "available_fen": 55_000})
