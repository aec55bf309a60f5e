"""Locked reads on PostgreSQL read the row again: what the session loaded earlier in the transaction may be stale."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, update

from services.order.db import SqlOrderUnitOfWork, after_sales, orders
from tests.integration.order.test_aftersales_db import ask, shipped
from tests.integration.order.test_fulfilment_grpc import place

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 8, tzinfo=UTC)


def paid_elsewhere(engine: Engine, order_id: int) -> None:
    """What a payment notify committing on another connection meanwhile writes."""
    with engine.begin() as conn:
        conn.execute(update(orders).where(orders.c.id == order_id).values(status="PAID", paid_at=NOW))


def test_an_order_locked_by_id_after_an_unlocked_read_is_read_again(
        pg_engine: Engine, pg_uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    order_id = place(pg_uow, "LOCKED-1", NOW).id or 0
    with pg_uow() as tx:
        loaded = tx.orders.get(order_id)  # held: the session keeps only the objects someone holds
        paid_elsewhere(pg_engine, order_id)

        locked = tx.orders.get(order_id, lock=True)

        assert locked is loaded
        assert (locked.status, locked.paid_at) == ("PAID", NOW)  # type: ignore[union-attr]


def test_an_order_locked_by_order_no_after_an_unlocked_read_is_read_again(
        pg_engine: Engine, pg_uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    order_id = place(pg_uow, "LOCKED-2", NOW).id or 0
    with pg_uow() as tx:
        loaded = tx.orders.by_order_no("LOCKED-2")
        paid_elsewhere(pg_engine, order_id)

        locked = tx.orders.by_order_no("LOCKED-2", lock=True)

        assert locked is loaded
        assert (locked.status, locked.paid_at) == ("PAID", NOW)  # type: ignore[union-attr]


def test_an_after_sale_case_locked_after_an_unlocked_read_is_read_again(
        pg_engine: Engine, pg_uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    case_id = ask(pg_uow, shipped(pg_uow, "LOCKED-3")).id or 0
    with pg_uow() as tx:
        loaded = tx.after_sales.get(case_id)
        with pg_engine.begin() as conn:
            conn.execute(update(after_sales).where(after_sales.c.id == case_id).values(status="REJECTED"))

        locked = tx.after_sales.get(case_id, lock=True)

        assert locked is loaded
        assert locked.status == "REJECTED"  # type: ignore[union-attr]
