"""How many SQL statements the auto-confirm job costs on PostgreSQL: its reads are a fixed number per batch, whatever
the number of orders in it.

A count, not a timing: it fails when the job goes back to reading each order's after-sales cases (with their lines
and history) one order at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from services.order import aftersales, service
from services.order.db import SqlOrderUnitOfWork
from tests.fixtures.statements import statements
from tests.integration.order.test_completion_after_sales_db import ALICE, DAY, NOW, SETTINGS, ask, shipped

pytestmark = pytest.mark.integration

Uow = Callable[[], SqlOrderUnitOfWork]


def due_with_a_withdrawn_case(uow: Uow, order_no: str) -> None:
    """An order shipped at NOW whose one case was open from day 1 to day 2: due to confirm from day 11."""
    order_id, [line_id, _] = shipped(uow, order_no)
    case = ask(uow, order_id, {line_id: 1}, NOW + DAY)
    aftersales.withdraw_case(uow(), user_id=ALICE, case_id=case.id or 0, now=NOW + 2 * DAY)


def confirm(uow: Uow, engine: Engine, order_nos: list[str]) -> list[str]:
    """The statements the job sends to confirm these orders (each due, each with a case)."""
    for order_no in order_nos:
        due_with_a_withdrawn_case(uow, order_no)
    with statements(engine) as sent:
        assert service.auto_confirm_orders(uow(), SETTINGS, now=NOW + 11 * DAY) == len(order_nos)
    return sent


# The due orders locked, their lines, history and parcels, then their cases' times: one query each for the batch.
READS = ["SELECT orders", "SELECT order_lines", "SELECT order_transitions", "SELECT shipments", "SELECT shipment_lines",
         "SELECT after_sales"]
CONFIRMED = ["UPDATE orders", "INSERT order_transitions", "INSERT outbox"]  # each order: COMPLETED, order-completed


def test_a_batch_of_n_orders_costs_six_reads_and_three_writes_an_order(pg_uow: Uow, pg_engine: Engine) -> None:
    one = confirm(pg_uow, pg_engine, ["ACS-1"])
    three = confirm(pg_uow, pg_engine, ["ACS-2", "ACS-3", "ACS-4"])

    # in any order: SQLAlchemy chooses in which order it loads the orders' lines, history and parcels
    assert sorted(one) == sorted([*READS, *CONFIRMED])
    assert sorted(three) == sorted([*READS, *CONFIRMED * 3])
