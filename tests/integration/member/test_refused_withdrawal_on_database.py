"""A withdrawal refused for the balance on PostgreSQL: what the in-memory unit of work's test of it asserts
(tests/unit/member/test_use_cases.py) is what the database does, so the fake's rollback stays honest."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from services.member.db import SqlMemberUnitOfWork
from tests.unit.member.test_use_cases import withdrawal_refused_then_another

pytestmark = pytest.mark.integration


def test_a_withdrawal_refused_for_the_balance_leaves_no_withdrawal_and_no_draw_on_a_recharge_behind_in_the_database(
        uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    refused, withdrawals, bonus_left = withdrawal_refused_then_another(uow)

    assert (refused, bonus_left) == ("INSUFFICIENT_BALANCE", 0)
    assert [(w.amount_fen, w.bonus_forfeited_fen, w.status) for w in withdrawals] == [
        (50_000, 5_000, "PENDING_REVIEW")]
