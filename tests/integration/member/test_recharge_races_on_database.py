"""Races on PostgreSQL, each made certain by holding the first transaction open until the second waits on it:
two recharge requests under one idempotency key make one recharge."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select

from services.common.errors import DomainError
from services.member import service
from services.member.channels import SimulatedPayment
from services.member.db import SqlMemberUnitOfWork, recharges
from tests.fixtures.postgres import wait_until_blocked

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 8, 8, 0, tzinfo=UTC)
ALICE = 101


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

    def run(name: str, step: Callable[[SqlMemberUnitOfWork], object], work: SqlMemberUnitOfWork) -> None:
        try:
            results[name] = step(work)
        except DomainError as exc:
            results[name] = exc.code

    one = threading.Thread(target=run, args=("first", first, HeldOpen(engine, "member")))
    one.start()
    assert reached.wait(60)
    two = threading.Thread(target=run, args=("second", second, uow()))
    two.start()
    wait_until_blocked(engine, two)
    go.set()
    one.join(60)
    two.join(60)
    return results["first"], results["second"]


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()  # type: ignore[arg-type]


class CountingPayment(SimulatedPayment):
    """Simulated parameters, numbered by how often the channel was asked to prepare a payment."""

    def __init__(self) -> None:
        self.prepared: list[str] = []

    def prepare(self, *, channel: str, out_trade_no: str, amount_fen: int, user_id: int = 0,
                now: datetime | None = None, expires_at: datetime | None = None) -> dict[str, str]:
        self.prepared.append(out_trade_no)
        return {"out_trade_no": out_trade_no, "prepared": str(len(self.prepared))}


def test_two_recharge_requests_racing_with_one_key_make_one_recharge(
        engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    payment = CountingPayment()

    def start(work: SqlMemberUnitOfWork) -> object:
        recharge, params = service.create_recharge(work, payment, user_id=ALICE, amount_fen=10_000, channel="alipay",
                                                   idempotency_key="double-tap", now=NOW)
        return recharge.recharge_no, params

    first, second = first_then_second(engine, uow, start, start)

    assert first == second == (payment.prepared[0], {"out_trade_no": payment.prepared[0], "prepared": "1"})
    assert (len(payment.prepared), count(engine, recharges)) == (1, 1)


def test_a_recharge_the_channel_refuses_is_not_kept(engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    class Refusing(SimulatedPayment):
        def prepare(self, **_: object) -> dict[str, str]:  # type: ignore[override]
            raise DomainError("WECHAT_NOT_BOUND", "sign in with WeChat to pay with WeChat Pay")

    with pytest.raises(DomainError) as refused:
        service.create_recharge(uow(), Refusing(), user_id=ALICE, amount_fen=10_000, channel="wechat",
                                idempotency_key="tap-1", now=NOW)
    retried, _ = service.create_recharge(uow(), SimulatedPayment(), user_id=ALICE, amount_fen=10_000,
                                         channel="wechat", idempotency_key="tap-1", now=NOW)

    found, total = service.my_recharges(uow(), user_id=ALICE, status="", offset=0, limit=20)
    assert (refused.value.code, [r.recharge_no for r in found], total) == (
        "WECHAT_NOT_BOUND", [retried.recharge_no], 1)

