"""A submit whose COMMIT raises, on PostgreSQL: the stock, coupon and points are released only when the
order is known not to exist.

Three ways a commit can raise: the server committed and the answer was lost (the order exists: it is
answered, nothing released), the server did not commit (released), or the database cannot be asked
afterwards (kept: releasing an order that may exist would sell its stock twice).
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

from services.order import service
from services.order.db import SqlOrderUnitOfWork, orders, start_mappers, submit_attempts
from services.order.service import CheckoutInput, OrderSettings
from tests.fakes import FakeCatalog, FakeMembers, FakeStock, FakeUsers
from tests.unit.order.conftest import NOW

pytestmark = pytest.mark.integration

ORDER = CheckoutInput(sku_id=101, quantity=2, address_id=7, coupon_id=9, points=300)


def connection_lost() -> OperationalError:
    return OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))


# submit_order commits the order in its first unit of work (the attempt, recorded before anything is held, commits on
# a connection of its own).
ORDER_COMMIT = 1


class CommitRaises(SqlOrderUnitOfWork):
    """The order's commit raises, after the server committed (`committed=True`) or without committing; with
    `then_unreachable`, every later unit of work fails to start, as when the database went away."""

    def __init__(self, engine: Engine, *, committed: bool, then_unreachable: bool = False) -> None:
        super().__init__(engine, "order")
        self.committed, self.then_unreachable, self.commits = committed, then_unreachable, 0

    def __enter__(self) -> CommitRaises:
        if self.commits >= ORDER_COMMIT and self.then_unreachable:
            raise connection_lost()
        return super().__enter__()

    def commit(self) -> None:
        self.commits += 1
        if self.commits != ORDER_COMMIT:
            return super().commit()
        if self.committed:
            super().commit()
        raise connection_lost()


@pytest.fixture
def neighbours() -> tuple[FakeStock, FakeMembers, FakeUsers]:
    start_mappers()
    catalog = FakeCatalog()
    catalog.put(101, price_fen=10_000)
    return FakeStock(catalog, {101: 10}), FakeMembers(coupon_fen=500, points=1_000), FakeUsers()


def submit(uow: SqlOrderUnitOfWork, neighbours: tuple[FakeStock, FakeMembers, FakeUsers]) -> Any:
    stock, members, users = neighbours
    return service.submit_order(uow, members, stock, users, OrderSettings(), user_id=1, request=ORDER, note="",
                                idempotency_key="k1", request_fingerprint=b"k1", now=NOW)


def held(engine: Engine, neighbours: tuple[FakeStock, FakeMembers, FakeUsers]) -> tuple[int, int, int, int]:
    """(orders stored, units of SKU 101 left, coupons locked, points locked)."""
    stock, members, _ = neighbours
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(orders)).scalar_one()
    return stored, stock.available[101], len(members.locked_coupons), sum(members.locked_points.values())


def test_a_commit_whose_answer_was_lost_answers_the_order_and_keeps_what_it_holds(
        pg_engine: Engine, neighbours: tuple[FakeStock, FakeMembers, FakeUsers]) -> None:
    order = submit(CommitRaises(pg_engine, committed=True), neighbours)

    assert (order.status, order.payable_fen) == ("PENDING_PAYMENT", 20_000 - 500 - 3)
    assert held(pg_engine, neighbours) == (1, 8, 1, 300)
    assert service.get_order(functools.partial(SqlOrderUnitOfWork, pg_engine, "order")(), user_id=1,
                             order_id=order.id).order_no == order.order_no


def test_a_commit_that_failed_releases_the_stock_coupon_and_points(
        pg_engine: Engine, neighbours: tuple[FakeStock, FakeMembers, FakeUsers]) -> None:
    with pytest.raises(OperationalError):
        submit(CommitRaises(pg_engine, committed=False), neighbours)

    assert held(pg_engine, neighbours) == (0, 10, 0, 0)


def test_when_the_database_cannot_tell_nothing_is_released(
        pg_engine: Engine, neighbours: tuple[FakeStock, FakeMembers, FakeUsers]) -> None:
    with pytest.raises(OperationalError):
        submit(CommitRaises(pg_engine, committed=False, then_unreachable=True), neighbours)

    assert held(pg_engine, neighbours) == (0, 8, 1, 300)  # held until the reservation and the locks lapse


def test_a_lost_attempt_stays_recorded_for_the_key_s_next_attempt_on_either_database(
        uow: functools.partial[SqlOrderUnitOfWork], neighbours: tuple[FakeStock, FakeMembers, FakeUsers]) -> None:
    engine = uow().engine  # the attempt is autocommitted apart: on SQLite too, where transactions begin IMMEDIATE
    with pytest.raises(OperationalError):
        submit(CommitRaises(engine, committed=False, then_unreachable=True), neighbours)

    with engine.connect() as conn:
        recorded = conn.execute(select(submit_attempts.c.user_id, submit_attempts.c.idempotency_key)).all()
    assert [tuple(row) for row in recorded] == [(1, "k1")]
    assert held(engine, neighbours) == (0, 8, 1, 300)
