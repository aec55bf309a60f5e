"""The withdrawal day on PostgreSQL: what a shopper asked for since midnight in Shanghai (16:00 UTC), read through the
database (ix_withdrawals_user_created), is what the daily maximum counts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from services.common.errors import DomainError
from services.member import service
from services.member.db import SqlMemberUnitOfWork
from tests.integration.member.test_member_grpc import fund, wallet

pytestmark = pytest.mark.integration

ALICE = 101


def test_the_withdrawal_day_read_from_the_database_is_the_shanghai_day(uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    fund(uow, ALICE, 1_500_000)
    service.request_withdrawal(uow(), user_id=ALICE, amount_fen=500_000, idempotency_key="w1",
                               now=datetime(2026, 12, 7, 15, 59, tzinfo=UTC))  # 23:59 on 12-07 in Shanghai
    service.request_withdrawal(uow(), user_id=ALICE, amount_fen=400_000, idempotency_key="w2",
                               now=datetime(2026, 12, 7, 16, 0, tzinfo=UTC))   # 00:00 on 12-08

    with pytest.raises(DomainError) as refused:
        service.request_withdrawal(uow(), user_id=ALICE, amount_fen=100_001, idempotency_key="w3",
                                   now=datetime(2026, 12, 8, 1, 0, tzinfo=UTC))  # 09:00 on 12-08

    assert (refused.value.code, refused.value.details) == (
        "WITHDRAWAL_DAILY_LIMIT", {"remaining_fen": 100_000})
    assert wallet(uow, ALICE) == (600_000, 900_000)
