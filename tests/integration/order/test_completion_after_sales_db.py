"""Auto-confirm and after-sales on the order service's databases: the batch query leaves out orders with a case open,
moves the clock of those cases held, and order-completed in the outbox carries what the shopper kept."""

from __future__ import annotations

import concurrent.futures
import functools
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from mall.events.v1.order_events_pb2 import OrderCompleted
from sqlalchemy import Engine, select

from services.common.events import decode, unpack
from services.common.outbox import outbox
from services.order import aftersales, service
from services.order.aftersales import AfterSale, AfterSaleSettings, CaseRequest
from services.order.db import SqlOrderUnitOfWork
from services.order.domain import OrderLine, new_order, price
from services.order.service import OrderSettings
from services.order.uow import CaseSearch
from tests.fakes import HOME, FakeMembers
from tests.integration.order.test_order_grpc import ALICE

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 8, tzinfo=UTC)
DAY = timedelta(days=1)
SETTINGS = OrderSettings(auto_confirm_days=10)
Uow = Callable[[], SqlOrderUnitOfWork]


def shipped(uow: Uow, order_no: str, at: datetime = NOW) -> tuple[int, list[int]]:
    """A wallet-paid order of 2 x 1999 and 3 x 500 (5498 fen), paid at NOW and shipped `at`: its id and line ids."""
    order = new_order(user_id=ALICE, order_no=order_no, address=HOME, amounts=price(5498), now=NOW, pay_minutes=30,
                      lines=[OrderLine(101, 10, "茶", "", 1999, 2), OrderLine(102, 10, "杯", "", 500, 3)])
    with uow() as tx:
        tx.orders.add(order)
        tx.commit()
    service.mark_paid(uow(), order_no=order_no, channel="balance", out_trade_no=order_no, paid_fen=5498, actor="test",
                      now=NOW)
    service.ship_order(uow(), order_id=order.id or 0, carrier="SF", tracking_no=order_no, lines=None, actor="staff:7",
                       now=at)
    return order.id or 0, [line.id or 0 for line in order.lines]


def ask(uow: Uow, order_id: int, lines: dict[int, int], at: datetime) -> AfterSale:
    return aftersales.open_case(uow(), AfterSaleSettings(), user_id=ALICE, now=at, request=CaseRequest(
        order_id=order_id, type="refund_only", lines=lines, reason="坏了"))


def status(uow: Uow, order_id: int) -> str:
    return service.get_order(uow(), user_id=None, order_id=order_id).status


def completed_events(engine: Engine) -> list[OrderCompleted]:
    with engine.connect() as conn:
        rows = conn.execute(select(outbox.c.envelope).where(outbox.c.event_type == "order-completed")
                            .order_by(outbox.c.id)).scalars().all()
    return [unpack(decode(row), OrderCompleted) for row in rows]


def test_the_batch_skips_orders_with_a_case_open_and_confirms_the_others_when_their_held_clock_is_due(
        uow: Uow) -> None:
    plain, _ = shipped(uow, "AC-plain")
    held, [held_line, _] = shipped(uow, "AC-held")
    ended, [ended_line, _] = shipped(uow, "AC-ended")
    ask(uow, held, {held_line: 1}, NOW + 3 * DAY)
    case = ask(uow, ended, {ended_line: 1}, NOW + 3 * DAY)
    aftersales.withdraw_case(uow(), user_id=ALICE, case_id=case.id or 0, now=NOW + 5 * DAY)

    assert service.auto_confirm_orders(uow(), SETTINGS, now=NOW + 10 * DAY) == 1
    assert [status(uow, order_id) for order_id in (plain, held, ended)] == ["COMPLETED", "SHIPPED", "SHIPPED"]
    assert service.get_order(uow(), user_id=None, order_id=ended).confirm_clock_at == NOW + 2 * DAY
    assert service.auto_confirm_orders(uow(), SETTINGS, now=NOW + 12 * DAY - timedelta(seconds=1)) == 0
    assert service.auto_confirm_orders(uow(), SETTINGS, now=NOW + 12 * DAY) == 1
    assert service.auto_confirm_orders(uow(), SETTINGS, now=NOW + 25 * DAY - timedelta(seconds=1)) == 0  # 15 held
    assert [status(uow, order_id) for order_id in (plain, held, ended)] == ["COMPLETED", "SHIPPED", "COMPLETED"]


def test_a_full_batch_of_orders_held_by_closed_cases_does_not_starve_the_orders_behind_it(uow: Uow) -> None:
    held = []
    for number in range(3):  # shipped first, so first in the batch while their clocks are not moved
        order_id, [line, _] = shipped(uow, f"AC-h{number}")
        case = ask(uow, order_id, {line: 1}, NOW + DAY)
        aftersales.withdraw_case(uow(), user_id=ALICE, case_id=case.id or 0, now=NOW + 4 * DAY)
        held.append(order_id)
    behind, _ = shipped(uow, "AC-behind")

    confirmed = [service.auto_confirm_orders(uow(), SETTINGS, now=NOW + 10 * DAY, batch=3) for _ in range(2)]

    assert confirmed == [0, 1] and status(uow, behind) == "COMPLETED"
    assert {status(uow, order_id) for order_id in held} == {"SHIPPED"}


def test_a_full_batch_of_orders_with_cases_open_is_not_chosen_so_the_orders_behind_are_confirmed(uow: Uow) -> None:
    held = []
    for number in range(3):
        order_id, [line, _] = shipped(uow, f"AC-o{number}")
        ask(uow, order_id, {line: 1}, NOW + DAY)
        held.append(order_id)
    behind, _ = shipped(uow, "AC-after")

    assert service.auto_confirm_orders(uow(), SETTINGS, now=NOW + 10 * DAY, batch=3) == 1
    assert status(uow, behind) == "COMPLETED" and {status(uow, order_id) for order_id in held} == {"SHIPPED"}


def test_a_full_batch_of_old_orders_a_late_case_still_holds_does_not_hold_back_the_due_ones_behind(
        uow: Uow) -> None:
    """After the job paused: orders shipped long ago, each with a case opened yesterday, are chosen by their shipping
    time and then left to their case; the batch reads on past them to the due order behind."""
    settings = replace(SETTINGS, auto_confirm_max_pause_days=15)
    held = []
    for number in range(3):
        order_id, [line, _] = shipped(uow, f"AC-late{number}")
        ask(uow, order_id, {line: 1}, NOW + 26 * DAY)
        held.append(order_id)
    behind, _ = shipped(uow, "AC-due", at=NOW + DAY)

    assert service.auto_confirm_orders(uow(), settings, now=NOW + 27 * DAY, batch=3) == 1
    assert status(uow, behind) == "COMPLETED" and {status(uow, order_id) for order_id in held} == {"SHIPPED"}


def test_the_batch_confirms_orders_whose_cases_held_them_the_most_they_may_even_with_a_case_open(uow: Uow) -> None:
    left_open, [open_line, _] = shipped(uow, "AC-left-open")
    ask(uow, left_open, {open_line: 1}, NOW + DAY)
    cycled, [cycled_line, _] = shipped(uow, "AC-cycled")
    for day in range(1, 22, 2):  # opened and withdrawn again and again: 11 cases, 22 days held
        case = ask(uow, cycled, {cycled_line: 1}, NOW + day * DAY)
        aftersales.withdraw_case(uow(), user_id=ALICE, case_id=case.id or 0, now=NOW + (day + 2) * DAY)
    ask(uow, cycled, {cycled_line: 1}, NOW + 24 * DAY)  # and one more, open
    young, [young_line, _] = shipped(uow, "AC-young", at=NOW + 9 * DAY)  # its open case has held it 14 days only
    ask(uow, young, {young_line: 1}, NOW + 11 * DAY)
    settings = replace(SETTINGS, auto_confirm_max_pause_days=15)

    assert service.auto_confirm_orders(uow(), settings, now=NOW + 25 * DAY - timedelta(seconds=1)) == 0
    assert service.auto_confirm_orders(uow(), settings, now=NOW + 25 * DAY) == 2
    assert [status(uow, order_id) for order_id in (left_open, cycled, young)] == ["COMPLETED", "COMPLETED", "SHIPPED"]
    assert service.auto_confirm_orders(uow(), settings, now=NOW + 34 * DAY - timedelta(seconds=1)) == 0
    assert service.auto_confirm_orders(uow(), settings, now=NOW + 34 * DAY) == 1
    open_cases = aftersales.search_cases(uow(), CaseSearch(status="REQUESTED"))[1]
    assert open_cases == 3  # the cases go on: staff still decide them


def test_replicas_at_once_confirm_each_order_after_sales_held_the_most_they_may_exactly_once(
        pg_uow: Uow, pg_engine: Engine) -> None:
    orders = []
    for number in range(12):  # half with a case left open, half with cases opened and withdrawn for 20 days
        order_id, [line, _] = shipped(pg_uow, f"AC-r{number}")
        case = ask(pg_uow, order_id, {line: 1}, NOW + DAY)
        if number % 2:
            aftersales.withdraw_case(pg_uow(), user_id=ALICE, case_id=case.id or 0, now=NOW + 21 * DAY)
        orders.append(order_id)
    settings = replace(SETTINGS, auto_confirm_max_pause_days=15)
    confirm = functools.partial(service.auto_confirm_orders, settings=settings, now=NOW + 25 * DAY, batch=2)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        confirmed = sum(pool.map(lambda _: sum(iter(lambda: confirm(pg_uow()), 0)), range(4)))

    assert confirmed == len(completed_events(pg_engine)) == 12
    assert {status(pg_uow, order_id) for order_id in orders} == {"COMPLETED"}


def test_order_completed_in_the_outbox_carries_the_units_and_fen_kept_after_refunds(uow: Uow) -> None:
    order_id, [first, second] = shipped(uow, "AC-kept")
    engine = aftersales.EngineRefunder(None, FakeMembers())  # the wallet refunds at once
    for lines in ({first: 1}, {second: 0}):
        case = ask(uow, order_id, lines, NOW + 3 * DAY)
        assert aftersales.decide(uow, engine, case_id=case.id or 0, approve=True, reason="ok", actor="staff:8",
                                 now=NOW + 3 * DAY).status == "REFUNDED"

    assert service.auto_confirm_orders(uow(), SETTINGS, now=NOW + 10 * DAY) == 1
    [event] = completed_events(_engine(uow))
    assert [(line.line_id, line.line.sku_id, line.line.quantity, line.refunded_quantity, line.kept_fen)
            for line in event.lines] == [(first, 101, 1, 1, 1999)]
    assert (event.kept_fen, event.confirmed_by) == (5498 - 1999 - 1500, "auto")


def _engine(uow: Uow) -> Engine:
    """The engine the unit of work runs on (PostgreSQL or SQLite)."""
    with uow() as tx:
        engine = tx.session.get_bind()
        tx.commit()
    assert isinstance(engine, Engine)
    return engine
