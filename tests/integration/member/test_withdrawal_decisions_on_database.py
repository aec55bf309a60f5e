"""A withdrawal's review steps on PostgreSQL: the rows withdrawal_decisions keeps are what the in-memory test of them
asserts (tests/unit/member/test_withdrawal_decisions.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine, select

from services.common.formats import PAYOUT_REFUSED_SHOPPER
from services.member.db import SqlMemberUnitOfWork, withdrawal_decisions, withdrawals
from tests.unit.member.test_withdrawal_decisions import T1, T2, approved_refused_approved

pytestmark = pytest.mark.integration


def test_an_approval_the_channel_refused_and_the_approval_after_are_three_rows_in_order(
        engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    status, _ = approved_refused_approved(uow)

    with engine.connect() as conn:
        withdrawal_id = conn.execute(select(withdrawals.c.id)).scalar_one()
        rows = conn.execute(select(withdrawal_decisions.c.withdrawal_id, withdrawal_decisions.c.outcome,
                                   withdrawal_decisions.c.actor_id, withdrawal_decisions.c.note,
                                   withdrawal_decisions.c.shopper_reason, withdrawal_decisions.c.decided_at,
                                   ).order_by(withdrawal_decisions.c.id)).all()
    assert status == "PAID"
    assert rows == [(withdrawal_id, "APPROVED", 77, "checked the bank statement", "", T1),
                    (withdrawal_id, "PAYOUT_REFUSED", None, "NAME_MISMATCH", PAYOUT_REFUSED_SHOPPER, T1),
                    (withdrawal_id, "APPROVED", 88, "", "", T2)]
