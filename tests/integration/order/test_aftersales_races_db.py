"""After-sales requests racing on PostgreSQL: one held open before its commit while the other waits for it, so each
race is run, not hoped for (no sleeps)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from services.order import aftersales, service
from services.order.aftersales import AfterSaleSettings, CaseRequest
from services.order.db import SqlOrderUnitOfWork, after_sale_lines
from services.order.domain import OrderLine, new_order, price
from tests.fakes import HOME, first_call_followed_by, pause
from tests.fixtures.postgres import start_thread, wait_until_blocked

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 8, tzinfo=UTC)
ALICE = 1


def shipped_order(uow: Callable[[], SqlOrderUnitOfWork], order_no: str) -> tuple[int, list[int]]:
    """A delivered-to-carrier order of two lines of 3 units (1000 and 500 fen each), paid from the wallet."""
    lines = [OrderLine(101, 10, "茶", "", 1000, 3), OrderLine(102, 10, "杯", "", 500, 3)]
    order = new_order(user_id=ALICE, order_no=order_no, lines=lines, address=HOME, amounts=price(4500), now=NOW,
                      pay_minutes=30)
    with uow() as tx:
        tx.orders.add(order)
        tx.commit()
    service.mark_paid(uow(), order_no=order_no, channel="balance", out_trade_no=order_no, paid_fen=4500, actor="test",
                      now=NOW)
    service.ship_order(uow(), order_id=order.id or 0, carrier="SF", tracking_no=order_no, lines=None, actor="staff:7",
                       now=NOW)
    return order.id or 0, [line.id or 0 for line in order.lines]


def opening(order_id: int, units: dict[int, int]) -> Callable[[SqlOrderUnitOfWork], object]:
    def open_case(tx: SqlOrderUnitOfWork) -> object:
        return aftersales.open_case(tx, AfterSaleSettings(), user_id=ALICE, now=NOW + timedelta(days=1),
                                    request=CaseRequest(order_id=order_id, type="refund_only", lines=units,
                                                        reason="坏了")).lines
    return open_case


def first_then_second(engine: Engine, uow: Callable[[], SqlOrderUnitOfWork],
                      first: Callable[[SqlOrderUnitOfWork], object],
                      second: Callable[[SqlOrderUnitOfWork], object]) -> tuple[object, object]:
    """`first` runs up to its commit and holds its transaction open until `second` waits on it (or ends); what each
    returned, or the code of the error it raised."""
    reached, go = threading.Event(), threading.Event()
    results: dict[str, object] = {}
    held_open = SqlOrderUnitOfWork(engine, "order")
    held_open.commit = first_call_followed_by(held_open.commit, pause(reached, go), before=True)  # type: ignore[method-assign]

    one = start_thread(results, "first", lambda: first(held_open))
    assert reached.wait(60)
    two = start_thread(results, "second", lambda: second(uow()))
    wait_until_blocked(engine, two)
    go.set()
    one.join(60)
    two.join(60)
    return results["first"], results["second"]


def open_case_lines(engine: Engine) -> list[tuple[int, int]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(
            select(after_sale_lines.c.line_id, func.sum(after_sale_lines.c.quantity))
            .where(after_sale_lines.c.open).group_by(after_sale_lines.c.line_id).order_by(after_sale_lines.c.line_id))]


def test_two_requests_for_one_line_at_once_open_one_case_and_the_other_is_409_line_open(
        pg_engine: Engine, pg_uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    # The shopper taps twice, or asks on two phones: one unit, then the whole line.
    order_id, (tea, _) = shipped_order(pg_uow, "ASR-1")

    first, second = first_then_second(pg_engine, pg_uow, opening(order_id, {tea: 1}), opening(order_id, {tea: 0}))

    assert [(line.line_id, line.quantity, line.amount_fen) for line in first] == [(tea, 1, 1000)]  # type: ignore[attr-defined]
    assert second == "AFTER_SALE_LINE_OPEN"
    assert open_case_lines(pg_engine) == [(tea, 1)]


def test_two_requests_for_different_lines_at_once_both_open_each_on_its_own_units(
        pg_engine: Engine, pg_uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    order_id, (tea, cups) = shipped_order(pg_uow, "ASR-2")

    first, second = first_then_second(pg_engine, pg_uow, opening(order_id, {tea: 0}), opening(order_id, {cups: 2}))

    assert [(line.line_id, line.quantity, line.amount_fen) for line in first] == [(tea, 3, 3000)]  # type: ignore[attr-defined]
    assert [(line.line_id, line.quantity, line.amount_fen) for line in second] == [(cups, 2, 1000)]  # type: ignore[attr-defined]
    assert open_case_lines(pg_engine) == [(tea, 3), (cups, 2)]
