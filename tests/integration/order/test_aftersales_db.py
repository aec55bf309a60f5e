"""After-sales cases on the order service's databases: round trip, one open case per line under concurrency."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.common.errors import Conflict
from services.common.outbox import outbox
from services.order import aftersales, service
from services.order.aftersales import AfterSaleSettings, CaseLine, CaseRequest
from services.order.db import SqlOrderUnitOfWork
from services.order.domain import OrderLine, new_order, price
from services.order.uow import CaseSearch, OrderSearch
from tests.fakes import HOME, FakeMembers, FakeRefundPayments
from tests.integration.order.test_fulfilment_grpc import paid
from tests.integration.order.test_order_grpc import ALICE

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 8, tzinfo=UTC)
IMAGE = "/media/uploads/" + "b" * 32 + ".png"


def shipped(uow: Callable[[], SqlOrderUnitOfWork], order_no: str) -> int:
    order_id = paid(uow, order_no, NOW)
    service.ship_order(uow(), order_id=order_id, carrier="SF", tracking_no=order_no, lines=None, actor="staff:7",
                       now=NOW)
    return order_id


def ask(uow: Callable[[], SqlOrderUnitOfWork], order_id: int) -> aftersales.AfterSale:
    line_id = service.get_order(uow(), user_id=ALICE, order_id=order_id).lines[0].id or 0
    return aftersales.open_case(uow(), AfterSaleSettings(), user_id=ALICE, now=NOW + timedelta(days=1),
                                request=CaseRequest(order_id=order_id, type="return_refund", lines={line_id: 1},
                                                    reason="坏了", images=(IMAGE,)))


def test_a_case_round_trips_with_lines_images_history_and_is_found_by_the_queue(
        uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    order_id = shipped(uow, "AS-1")
    case = ask(uow, order_id)
    read = aftersales.get_case(uow(), user_id=ALICE, case_id=case.id or 0)
    assert (read.status, read.images, read.refund_fen, read.order_no) == ("REQUESTED", [IMAGE], 1000, "AS-1")
    assert [(line.quantity, line.amount_fen, line.open) for line in read.lines] == [(1, 1000, True)]
    assert [(step.status, step.actor, step.reason) for step in read.history] == [("REQUESTED", "user:1", "坏了")]
    aftersales.decide(uow, aftersales.EngineRefunder(None, FakeMembers()), case_id=case.id or 0, approve=False, reason="no", actor="staff:8",
                      now=NOW + timedelta(days=2))
    rejected = aftersales.get_case(uow(), user_id=None, case_id=case.id or 0)
    assert (rejected.status, [line.open for line in rejected.lines]) == ("REJECTED", [False])
    assert [c.id for c in aftersales.search_cases(uow(), CaseSearch(status="REJECTED", order_no="AS-1"))[0]] == [
        case.id]
    assert aftersales.search_cases(uow(), CaseSearch(user_id=ALICE + 1))[1] == 0
    assert ask(uow, order_id).status == "REQUESTED"  # the line is free again


def test_the_database_refuses_a_second_open_case_on_a_line(uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    order_id = shipped(uow, "AS-2")
    first = ask(uow, order_id)
    twin = aftersales.AfterSale(case_no="AS-twin", order_id=order_id, order_no="AS-2", user_id=ALICE,
                                type="refund_only", status="REQUESTED", reason="x", images=[], refund_fen=1,
                                created_at=NOW, updated_at=NOW,
                                lines=[CaseLine(line_id=first.lines[0].line_id, quantity=1, amount_fen=1)])
    with pytest.raises(IntegrityError), uow() as tx:
        tx.after_sales.add(twin)


def test_concurrent_cases_on_one_line_open_exactly_one(pg_uow: Callable[[], SqlOrderUnitOfWork],
                                                       pg_engine: object) -> None:
    order_id = shipped(pg_uow, "AS-3")

    def attempt(_: int) -> str:
        try:
            return ask(pg_uow, order_id).status
        except Conflict as exc:
            return exc.code
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        outcomes = sorted(pool.map(attempt, range(6)))
    assert outcomes == ["AFTER_SALE_LINE_OPEN"] * 5 + ["REQUESTED"]


def test_a_partly_shipped_order_stored_with_its_parcel_takes_a_case_on_the_shipped_units_only(
        uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    order = new_order(user_id=ALICE, order_no="AS-P", lines=[OrderLine(101, 10, "茶", "", 1000, 3)], address=HOME,
                      amounts=price(3000), now=NOW, pay_minutes=30)
    with uow() as tx:
        tx.orders.add(order)
        tx.commit()
    service.mark_paid(uow(), order_no="AS-P", channel="balance", out_trade_no="AS-P", paid_fen=3000, actor="test",
                      now=NOW)
    line_id = order.lines[0].id or 0
    service.ship_order(uow(), order_id=order.id or 0, carrier="SF", tracking_no="P1", lines={line_id: 1},
                       actor="staff:7", now=NOW)

    case = aftersales.open_case(uow(), AfterSaleSettings(), user_id=ALICE, now=NOW, request=CaseRequest(
        order_id=order.id or 0, type="return_refund", lines={line_id: 0}, reason="坏了"))

    read = aftersales.get_case(uow(), user_id=ALICE, case_id=case.id or 0)
    assert (read.status, [(line.quantity, line.amount_fen) for line in read.lines]) == ("REQUESTED", [(1, 1000)])
    assert service.get_order(uow(), user_id=ALICE, order_id=order.id or 0).status == "PAID"


def test_a_withdrawn_case_is_stored_with_its_step_and_its_line_takes_a_new_case(
        uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    order_id = shipped(uow, "AS-4")
    case = ask(uow, order_id)

    aftersales.withdraw_case(uow(), user_id=ALICE, case_id=case.id or 0, reason="不退了", now=NOW + timedelta(days=2))

    read = aftersales.get_case(uow(), user_id=ALICE, case_id=case.id or 0)
    assert (read.status, [line.open for line in read.lines]) == ("WITHDRAWN", [False])
    assert [(step.status, step.actor, step.reason) for step in read.history] == [
        ("REQUESTED", "user:1", "坏了"), ("WITHDRAWN", "user:1", "不退了")]
    assert ask(uow, order_id).status == "REQUESTED"  # the partial unique index lets the line open again


def test_a_withdrawal_racing_the_approval_ends_in_exactly_one_of_them(pg_uow: Callable[[], SqlOrderUnitOfWork],
                                                                      pg_engine: object) -> None:
    order_id = shipped(pg_uow, "AS-5")
    case_id = ask(pg_uow, order_id).id or 0
    refunder = aftersales.EngineRefunder(None, FakeMembers())

    def withdraw() -> str:
        try:
            return aftersales.withdraw_case(pg_uow(), user_id=ALICE, case_id=case_id).status
        except Conflict as exc:
            return exc.code

    def reject() -> str:
        try:
            return aftersales.decide(pg_uow, refunder, case_id=case_id, approve=False, reason="no",
                                     actor="staff:8").status
        except Conflict as exc:
            return exc.code
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        outcomes = sorted(future.result() for future in [pool.submit(withdraw), pool.submit(reject)])

    read = aftersales.get_case(pg_uow(), user_id=None, case_id=case_id)
    assert outcomes in (["AFTER_SALE_STATE_CONFLICT", "WITHDRAWN"], ["AFTER_SALE_STATE_CONFLICT", "REJECTED"])
    assert [step.status for step in read.history] == ["REQUESTED", read.status]


def test_the_return_expiry_closes_overdue_returns_and_skips_a_case_another_replica_holds(
        pg_uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    refunder = aftersales.EngineRefunder(None, FakeMembers())
    held, free = (ask(pg_uow, shipped(pg_uow, order_no)).id or 0 for order_no in ("AS-X1", "AS-X2"))
    for case_id in (held, free):
        aftersales.decide(pg_uow, refunder, case_id=case_id, approve=True, reason="send it", actor="staff:8",
                          now=NOW + timedelta(days=2))
    due = NOW + timedelta(days=9)
    with pg_uow() as other:  # another replica is closing (or the shopper is shipping) this one
        other.after_sales.get(held, lock=True)
        assert aftersales.expire_returns(pg_uow(), AfterSaleSettings(return_ship_days=7), now=due) == 1

    assert aftersales.expire_returns(pg_uow(), AfterSaleSettings(return_ship_days=7), now=due) == 1
    assert aftersales.expire_returns(pg_uow(), AfterSaleSettings(return_ship_days=7), now=due) == 0
    for case_id in (held, free):
        read = aftersales.get_case(pg_uow(), user_id=None, case_id=case_id)
        assert (read.status, [line.open for line in read.lines], read.history[-1].actor) == (
            "WITHDRAWN", [False], "system")


class DiesBeforeRefunding:
    """The process dies (or an unexpected error hits) after the case went REFUNDING, before its refund started."""

    def start(self, uow: SqlOrderUnitOfWork, **_: object) -> str:
        raise RuntimeError("killed")


def test_a_case_whose_refund_never_started_is_refunded_once_by_retries_racing_each_other(
        pg_uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    order_id = shipped(pg_uow, "AS-R1")
    case_id = ask(pg_uow, order_id).id or 0
    members = FakeMembers()
    engine = aftersales.EngineRefunder(None, members)
    aftersales.decide(pg_uow, engine, case_id=case_id, approve=True, reason="send it", actor="staff:8")
    aftersales.submit_return_shipment(pg_uow(), user_id=ALICE, case_id=case_id, carrier="SF", tracking_no="R1")
    with pytest.raises(RuntimeError):
        aftersales.receive_return(pg_uow, DiesBeforeRefunding(), case_id=case_id, note="", actor="staff:9")
    stuck = aftersales.get_case(pg_uow(), user_id=None, case_id=case_id)
    assert stuck.status == "REFUNDING"

    def retry() -> str:
        try:
            return aftersales.retry_refund(pg_uow, engine, case_id=case_id, actor="staff:8").status
        except Conflict as exc:
            return exc.code
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        outcomes = [future.result() for future in [pool.submit(retry), pool.submit(retry)]]

    done = aftersales.get_case(pg_uow(), user_id=None, case_id=case_id)
    with pg_uow() as tx:
        refunds = [(r.refund_no, r.amount_fen, r.status) for r in tx.refunds.for_order(order_id)]
        refunded_fen = tx.orders.get(order_id).refunded_fen
    assert "REFUNDED" in outcomes and done.status == "REFUNDED"
    assert refunds == [(stuck.refund_no, 1000, "SUCCESS")] and done.refund_no == stuck.refund_no
    assert (refunded_fen, members.balance_refunds) == (1000, {stuck.refund_no: 1000})
    again = engine.start(pg_uow(), order_id=order_id, lines=stuck.lines, reason="x", actor="staff:8",
                         source=f"after_sale:{case_id}", now=NOW + timedelta(days=3), refund_no=stuck.refund_no)
    with pg_uow() as tx:
        assert (again, len(tx.refunds.for_order(order_id)), tx.orders.get(order_id).refunded_fen) == (
            stuck.refund_no, 1, 1000)


def test_returned_units_a_category_coupon_paid_for_entirely_store_a_0_fen_refund_and_end_refunded(
        uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    # The cups (2 x 3000) carry the whole 6000 coupon of their category: their paid share is 0 fen.
    lines = [OrderLine(101, 10, "茶", "", 1999, 1, coupon_applied=False),
             OrderLine(103, 11, "杯", "", 3000, 2, coupon_applied=True)]
    order = new_order(user_id=ALICE, order_no="AS-0", lines=lines, address=HOME, amounts=price(7999, coupon_fen=6000),
                      now=NOW, pay_minutes=30, coupon_id=9)
    with uow() as tx:
        tx.orders.add(order)
        tx.commit()
    service.mark_paid(uow(), order_no="AS-0", channel="wechat", out_trade_no="AS-0", paid_fen=order.payable_fen,
                      actor="wechatpay", now=NOW)
    service.ship_order(uow(), order_id=order.id or 0, carrier="SF", tracking_no="AS-0", lines=None, actor="staff:7",
                       now=NOW)
    cups = order.lines[1].id or 0
    case = aftersales.open_case(uow(), AfterSaleSettings(), user_id=ALICE, now=NOW + timedelta(days=1),
                                request=CaseRequest(order_id=order.id or 0, type="return_refund", lines={cups: 0},
                                                    reason="坏了", images=(IMAGE,)))
    payments = FakeRefundPayments(status="SUCCESS")
    engine = aftersales.EngineRefunder(payments, FakeMembers())
    aftersales.decide(uow, engine, case_id=case.id or 0, approve=True, reason="寄回", actor="staff:8", now=NOW)
    aftersales.submit_return_shipment(uow(), user_id=ALICE, case_id=case.id or 0, carrier="ZTO", tracking_no="R1",
                                      now=NOW)

    aftersales.receive_return(uow, engine, case_id=case.id or 0, note="完好", actor="staff:9", now=NOW)

    read = aftersales.get_case(uow(), user_id=None, case_id=case.id or 0)
    assert (read.status, read.refund_fen, read.history[-1].reason) == (
        "REFUNDED", 0, "nothing to refund (0 fen paid for these units)")
    with uow() as tx:
        [refund] = tx.refunds.for_order(order.id or 0)
        stored = (refund.refund_no, refund.status, refund.amount_fen, refund.channel,
                  [(line.line_id, line.quantity, line.amount_fen) for line in refund.lines])
        published = list(tx.session.execute(select(outbox.c.event_type).where(outbox.c.aggregate_id == "AS-0")
                                            .order_by(outbox.c.id)).scalars())
        tx.commit()
    assert stored == (read.refund_no, "SUCCESS", 0, "none", [(cups, 2, 0)])
    assert payments.asked == {}
    assert published == ["order-paid", "order-shipped", "order-returned"]  # no order-refunded: nothing was refunded
    after = service.get_order(uow(), user_id=ALICE, order_id=order.id or 0)
    assert (after.refunded_fen, [line.refunded_quantity for line in after.lines]) == (0, [0, 2])


def test_a_page_of_orders_and_a_detail_read_each_lines_open_case_until_it_closes(
        uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    order_id, other_id = shipped(uow, "AS-LINE-1"), shipped(uow, "AS-LINE-2")
    case = ask(uow, order_id)
    line_id = case.lines[0].line_id

    page = service.search_orders(uow(), OrderSearch(user_id=ALICE, limit=10))
    detail = service.get_order_detail(uow(), user_id=ALICE, order_id=order_id)
    aftersales.withdraw_case(uow(), user_id=ALICE, case_id=case.id or 0, now=NOW + timedelta(days=2))
    after = service.search_orders(uow(), OrderSearch(user_id=ALICE, limit=10))

    assert ([order.id for order in page.orders], page.open_cases, detail.open_cases) == (
        [other_id, order_id], {line_id: case.id}, {line_id: case.id})
    assert (len(after.orders), after.open_cases) == (2, {})


def test_my_cases_of_one_order_come_in_exact_pages_and_another_shoppers_order_finds_none(
        uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    order_id, other_id = shipped(uow, "AS-BY-1"), shipped(uow, "AS-BY-2")
    cases = []
    for _ in range(3):  # opened and withdrawn in turn: three cases of the order's one line
        case = ask(uow, order_id)
        aftersales.withdraw_case(uow(), user_id=ALICE, case_id=case.id or 0, now=NOW + timedelta(days=2))
        cases.append(case.id)
    elsewhere = ask(uow, other_id)

    pages = [aftersales.search_cases(uow(), CaseSearch(user_id=ALICE, order_id=order_id, offset=offset, limit=2))
             for offset in (0, 2)]
    strangers = aftersales.search_cases(uow(), CaseSearch(user_id=ALICE + 1, order_id=order_id))

    # newest first: opened at the same instant, the later id first
    assert [([case.id for case in found], total) for found, total in pages] == [
        ([cases[2], cases[1]], 3), ([cases[0]], 3)]
    assert aftersales.search_cases(uow(), CaseSearch(user_id=ALICE, order_id=other_id))[0][0].id == elsewhere.id
    assert strangers == ([], 0)
