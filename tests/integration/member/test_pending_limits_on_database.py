"""The caps on what one shopper may keep waiting, on PostgreSQL: two requests for the last place at once make one,
the other refused (each made certain by holding the first transaction open until the second waits on it)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select

from services.member import service
from services.member.db import SqlMemberUnitOfWork, recharges, withdrawals
from tests.fakes import SimulatedPayment
from tests.integration.member.test_balance_payment_void_on_database import first_then_second
from tests.integration.member.test_member_grpc import fund, wallet

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 8, 8, 0, tzinfo=UTC)
ALICE = 101


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()  # type: ignore[arg-type]


def test_two_recharges_racing_for_the_last_place_make_one(engine: Engine,
                                                          uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    def start(key: str) -> Callable[[SqlMemberUnitOfWork], object]:
        return lambda work: service.create_recharge(work, SimulatedPayment(), user_id=ALICE, amount_fen=10_000,
                                                    channel="alipay", idempotency_key=key, now=NOW)[0].status

    for key in ("tap-1", "tap-2"):
        start(key)(uow())

    first, second = first_then_second(engine, uow, start("tap-3"), start("tap-4"))

    assert (first, second, count(engine, recharges)) == ("PENDING", "TOO_MANY_PENDING_RECHARGES", 3)


def test_two_withdrawals_racing_for_the_last_place_under_review_make_one(
        engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    fund(uow, ALICE, 10_000)

    def ask(key: str) -> Callable[[SqlMemberUnitOfWork], object]:
        return lambda work: service.request_withdrawal(work, user_id=ALICE, amount_fen=1_000, idempotency_key=key,
                                                       now=NOW).status

    for key in ("w1", "w2"):
        ask(key)(uow())

    first, second = first_then_second(engine, uow, ask("w3"), ask("w4"))

    assert (first, second, count(engine, withdrawals)) == ("PENDING_REVIEW", "TOO_MANY_PENDING_WITHDRAWALS", 3)
    assert wallet(uow, ALICE) == (7_000, 3_000)
