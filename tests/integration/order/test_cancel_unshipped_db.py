"""Cancelling a partly shipped order's unshipped units on PostgreSQL: exact refund of their paid share (level
discount and a category coupon split), reserved on their lines, restocked by the product service from the
order-returned it publishes, the order SHIPPED, and a retry under the same key doing nothing twice. Through the
gRPC server too: staff roles, the idempotency key, the answer. The points spent on the units reach the member
service's ledger once, from the outbox's order-refunded."""

from __future__ import annotations

import concurrent.futures
import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.message import Message
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.order_events_pb2 import OrderPaid, OrderRefunded, OrderReturned
from mall.order.v1 import order_pb2
from sqlalchemy import Engine, select

from services.common.errors import Conflict
from services.common.events import decode, timestamp, unpack
from services.common.outbox import outbox
from services.common.wechatpay import WechatPayApiError
from services.member import consumers as member_consumers
from services.member import service as members
from services.member.db import SqlMemberUnitOfWork
from services.member.domain import Account
from services.order import aftersales, refunds, service
from services.order.db import SqlOrderUnitOfWork
from services.order.domain import FreightRule, OrderLine, new_order, price
from services.product import consumers
from services.product import service as products
from services.product.db import SqlProductUnitOfWork
from services.product.db import start_mappers as start_product_mappers
from services.product.domain import StockLine
from tests.fakes import HOME, FakeMembers, FakePhones, FakeRefundPayments
from tests.integration.order.conftest import OrderServer
from tests.integration.order.test_order_grpc import ALICE, failure, submit
from tests.integration.product.conftest import Shelf, confirm_paid

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 8, tzinfo=UTC)
CANCELLED_AT = NOW + timedelta(days=2)
ORDER_NO = "PC-1"


def returned_events(engine: Engine) -> list[OrderReturned]:
    with engine.connect() as connection:
        rows = connection.execute(select(outbox.c.envelope).where(outbox.c.event_type == "order-returned")
                                  .order_by(outbox.c.id)).scalars().all()
    return [unpack(decode(row), OrderReturned) for row in rows]


def test_the_unshipped_units_are_refunded_exactly_restocked_exactly_and_the_order_shipped_once(
        pg_engine: Engine, pg_uow: Callable[[], SqlOrderUnitOfWork],
        service_engine: Callable[[str], Engine]) -> None:
    uow = pg_uow
    start_product_mappers()
    shelf = Shelf(functools.partial(SqlProductUnitOfWork, service_engine("product"), "product"))
    product_id = shelf.product("保温杯", stock=10, price_fen=10_000, colours=("黑", "白"))
    black, white = shelf.sku_ids(product_id)
    products.reserve_stock(shelf.uow(), order_no=ORDER_NO, lines=[StockLine(black, 3), StockLine(white, 1)], now=NOW)
    confirm_paid(shelf.uow(), ORDER_NO)  # paid: the units are sold
    # 3 x 10000 (the coupon's category) + 1 x 10001 = 40001; member level 95%: -2000; coupon -1000; freight 800.
    order = new_order(user_id=ALICE, order_no=ORDER_NO, address=HOME, now=NOW, pay_minutes=30, coupon_id=9,
                      lines=[OrderLine(black, product_id, "保温杯", "黑", 10_000, 3, coupon_applied=True),
                             OrderLine(white, product_id, "保温杯", "白", 10_001, 1, coupon_applied=False)],
                      amounts=price(40_001, discount_bp=9_500, coupon_fen=1000, freight=FreightRule(flat_fen=800)))
    with uow() as tx:
        tx.orders.add(order)
        tx.commit()
    service.mark_paid(uow(), order_no=ORDER_NO, channel="wechat", out_trade_no=ORDER_NO, paid_fen=37_801,
                      actor="wechatpay", now=NOW)
    first, second = (line.id or 0 for line in order.lines)
    service.ship_order(uow(), order_id=order.id or 0, carrier="SF", tracking_no="SF1", lines={first: 1},
                       actor="staff:7", now=NOW + timedelta(hours=1))
    payments = FakeRefundPayments()

    for _ in range(2):  # the answer was lost: staff send it again with the same key
        done = refunds.cancel_unshipped(uow(), payments, FakeMembers(), order_id=order.id or 0, reason="白色停产",
                                        shopper_reason="白色已停产", actor="staff:9", idempotency_key="cu-1",
                                        request_fingerprint=b"same body", now=CANCELLED_AT)

    # Goods paid 37001 split: the coupon's line 27500, the other 9501. 2 of 3 units: 27500 * 2 // 3 = 18333.
    with uow() as tx:
        [refund] = tx.refunds.for_order(order.id or 0)
        stored = tx.orders.get(order.id or 0)
        assert stored is not None
        assert (refund.amount_fen, refund.source, [(line.line_id, line.quantity, line.amount_fen)
                                                   for line in refund.lines]) == (
            27_834, "cancel_unshipped", [(first, 2, 18_333), (second, 1, 9501)])
        assert (stored.status, stored.shipped_at, stored.refunded_fen) == ("SHIPPED", CANCELLED_AT, 27_834)
        assert [(line.refunded_quantity, line.refunded_fen) for line in stored.lines] == [(2, 18_333), (1, 9501)]
        assert [(kept.quantity, kept.kept_fen) for kept in stored.kept()] == [(1, 9167)]
        assert (stored.history[-1].status, stored.history[-1].shopper_reason) == (
            "SHIPPED", f"{refunds.UNSHIPPED_SHOPPER_WORDS}: 白色已停产")
        tx.commit()
    assert (done.status, list(payments.asked.values())[0].refund_fen, len(payments.asked)) == ("SHIPPED", 27_834, 1)

    [event] = returned_events(pg_engine)
    assert (event.order_no, event.case_no, [(line.sku_id, line.quantity) for line in event.lines]) == (
        ORDER_NO, refund.refund_no, [(black, 2), (white, 1)])
    with shelf.uow() as tx:
        consumers.on_order_returned(tx, event, EventEnvelope(event_id="returned-1"))
        tx.commit()
    skus = {sku.id: (sku.stock, sku.sales) for sku in
            products.get_admin_product(shelf.uow(), product_id=product_id).product.skus}
    assert skus == {black: (9, 1), white: (10, 0)}  # only the shipped unit stays sold
    assert products.check_stock_ledger(shelf.uow())[1] == []

    refunds.settle_refund(uow(), refund_no=refund.refund_no, status=refunds.RefundStatus.SUCCESS,
                          actor="wechatpay", now=CANCELLED_AT)
    later = refunds.start_refund(uow(), payments, FakeMembers(), order_id=order.id or 0, items=[
        refunds.RefundItem(first, 1, 9167)], reason="质量问题", actor="staff:9", source="after_sale:1",
        now=CANCELLED_AT)
    assert later.amount_fen + 27_834 == 37_001  # every fen of the goods paid, never the freight
    with pytest.raises(refunds.Conflict) as exceeded:
        refunds.start_refund(uow(), payments, FakeMembers(), order_id=order.id or 0, items=[
            refunds.RefundItem(second, 0, 1)], reason="x", actor="staff:9", source="after_sale:2", now=CANCELLED_AT)
    assert exceeded.value.code == "REFUND_EXCEEDS_PAID"


def test_racing_requests_cancel_the_units_once_whatever_their_keys(pg_uow: Callable[[], SqlOrderUnitOfWork],
                                                                    pg_engine: Engine) -> None:
    order = new_order(user_id=ALICE, order_no="PC-2", lines=[OrderLine(101, 10, "茶", "", 1000, 3)], address=HOME,
                      amounts=price(3000), now=NOW, pay_minutes=30)
    with pg_uow() as tx:
        tx.orders.add(order)
        tx.commit()
    service.mark_paid(pg_uow(), order_no="PC-2", channel="wechat", out_trade_no="PC-2", paid_fen=3000,
                      actor="wechatpay", now=NOW)
    service.ship_order(pg_uow(), order_id=order.id or 0, carrier="SF", tracking_no="SF2",
                       lines={order.lines[0].id or 0: 1}, actor="staff:7", now=NOW)
    payments = FakeRefundPayments()

    def attempt(key: str) -> str:
        try:
            return refunds.cancel_unshipped(pg_uow(), payments, FakeMembers(), order_id=order.id or 0, reason="缺货",
                                            shopper_reason="", actor="staff:9", idempotency_key=key,
                                            request_fingerprint=b"body", now=CANCELLED_AT).status
        except Conflict as exc:
            return exc.code
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        outcomes = sorted(pool.map(attempt, ["a", "a", "b", "b"]))

    assert outcomes == ["ORDER_STATE_CONFLICT"] * 2 + ["SHIPPED"] * 2  # the losing key claimed nothing
    with pg_uow() as tx:
        [refund] = tx.refunds.for_order(order.id or 0)
        assert (refund.amount_fen, tx.orders.get(order.id or 0).refunded_fen) == (2000, 2000)  # type: ignore[union-attr]
        tx.commit()
    assert (len(returned_events(pg_engine)), len(payments.asked)) == (1, 1)


def test_units_cancelled_whose_refund_was_refused_are_not_claimable_and_their_refund_is_paid_again_later(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine) -> None:
    order = new_order(user_id=ALICE, order_no="PC-4", lines=[OrderLine(101, 10, "茶", "", 1000, 3)], address=HOME,
                      amounts=price(3000), now=NOW, pay_minutes=30)
    with pg_uow() as tx:
        tx.orders.add(order)
        tx.commit()
    service.mark_paid(pg_uow(), order_no="PC-4", channel="wechat", out_trade_no="PC-4", paid_fen=3000,
                      actor="wechatpay", now=NOW)
    line = order.lines[0].id or 0
    service.ship_order(pg_uow(), order_id=order.id or 0, carrier="SF", tracking_no="SF4", lines={line: 1},
                       actor="staff:7", now=NOW)
    payments = FakeRefundPayments(error=WechatPayApiError(400, "NOT_ENOUGH", "余额不足"))

    def cancel(key: str) -> None:
        refunds.cancel_unshipped(pg_uow(), payments, FakeMembers(), order_id=order.id or 0, reason="缺货",
                                 shopper_reason="", actor="staff:9", idempotency_key=key, request_fingerprint=b"b",
                                 now=CANCELLED_AT)
    with pytest.raises(Conflict):
        cancel("a")  # 2 units cancelled and restocked; their 2000-fen refund refused: CLOSED, owed
    payments.error = None

    def open_case(units: int) -> aftersales.AfterSale:
        return aftersales.open_case(pg_uow(), aftersales.AfterSaleSettings(), user_id=ALICE, now=CANCELLED_AT,
                                    request=aftersales.CaseRequest(order_id=order.id or 0, type="refund_only",
                                                                   lines={line: units}, reason="坏了"))
    with pytest.raises(Conflict) as too_many:
        open_case(2)
    case = open_case(0)  # every unit the shopper got
    aftersales.decide(pg_uow, aftersales.EngineRefunder(payments, FakeMembers()), case_id=case.id or 0, approve=True,
                      reason="ok", actor="staff:8", now=CANCELLED_AT)
    cancel("b")

    assert (too_many.value.code, too_many.value.details) == ("AFTER_SALE_QUANTITY_INVALID", {"line_id": line,
                                                                                             "left": 1})
    assert [(item.quantity, item.amount_fen) for item in case.lines] == [(1, 1000)]
    with pg_uow() as tx:
        stored = tx.orders.get(order.id or 0)
        assert stored is not None
        assert [(refund.source, refund.status, refund.amount_fen) for refund in tx.refunds.for_order(order.id or 0)] \
            == [("cancel_unshipped", "CLOSED", 2000), (f"after_sale:{case.id}", "PENDING", 1000),
                ("cancel_unshipped", "PENDING", 2000)]
        assert (stored.refunded_fen, stored.lines[0].refunded_quantity) == (3000, 3)
        tx.commit()
    assert [[(item.sku_id, item.quantity) for item in event.lines] for event in returned_events(pg_engine)] == [
        [(101, 2)]]  # restocked once


def test_staff_cancel_the_unshipped_units_over_grpc_once_per_key_and_operators_and_finance_may_not(
        server: OrderServer) -> None:
    server.members.balance_fen = 10_000
    order = submit(server, checkout=order_pb2.CheckoutRequest(sku_id=101, quantity=3, address_id=7))
    server.stub.PayOrder(order_pb2.PayOrderRequest(id=order.id, channel="balance"), metadata=server.as_user(ALICE))
    line = order.lines[0].id
    ship = server.stub.ShipOrder(order_pb2.ShipOrderRequest(
        id=order.id, carrier="SF", tracking_no="SF1", lines=[order_pb2.ShipmentLine(line_id=line, quantity=1)]),
        metadata=server.as_user(9, "operator"))
    assert ship.status == "PAID"
    ask = order_pb2.CancelUnshippedRequest(id=order.id, reason="缺货", idempotency_key="cu-1")

    for refused in ("finance", "operator"):  # an operator ships; paying money back is customer service's decision
        assert failure(lambda r=refused: server.stub.CancelUnshipped(ask, metadata=server.as_user(9, r))) == (
            grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")
    answers = [server.stub.CancelUnshipped(ask, metadata=server.as_user(8, "customer_service")) for _ in range(2)]

    # 3 x 1999 = 5997 paid from the wallet; 2 units back: 5997 * 2 // 3 = 3998, at once (the wallet answers).
    assert [(a.status, a.refunded_fen) for a in answers] == [("SHIPPED", 3998)] * 2
    assert (server.events("order-returned"), server.events("order-refunded")) == (1, 1)
    changed = order_pb2.CancelUnshippedRequest(id=order.id, reason="停产", idempotency_key="cu-1")
    assert failure(lambda: server.stub.CancelUnshipped(changed, metadata=server.as_user(8, "admin"))) == (
        grpc.StatusCode.ABORTED, "IDEMPOTENCY_KEY_REUSED")
    again = order_pb2.CancelUnshippedRequest(id=order.id, reason="缺货", idempotency_key="cu-2")
    assert failure(lambda: server.stub.CancelUnshipped(again, metadata=server.as_user(8, "admin"))) == (
        grpc.StatusCode.ABORTED, "ORDER_STATE_CONFLICT")


def test_the_points_spent_on_the_cancelled_units_reach_the_member_ledger_once_from_the_outbox(
        pg_engine: Engine, pg_uow: Callable[[], SqlOrderUnitOfWork],
        member_uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    shopper = 301
    members.sign_up(member_uow(), user_id=shopper, channel="self", invite_code=None, now=NOW)
    deliver_to_members(member_uow, OrderPaid(order_no="O0", user_id=shopper, paid_fen=120_000,
                                             paid_at=timestamp(NOW)), "e-0")  # 1,200 points at normal; silver after
    members.lock_points(member_uow(), user_id=shopper, order_no="PC-3", points=300, payable_fen=3000, now=NOW)
    # 3 x 1000, 300 points (300 fen): 2700 paid with WeChat Pay; one unit shipped, two never will.
    order = new_order(user_id=shopper, order_no="PC-3", lines=[OrderLine(101, 10, "茶", "", 1000, 3)], address=HOME,
                      amounts=price(3000, points_fen=300), now=NOW, pay_minutes=30, points_used=300)
    with pg_uow() as tx:
        tx.orders.add(order)
        tx.commit()
    service.mark_paid(pg_uow(), order_no="PC-3", channel="wechat", out_trade_no="PC-3", paid_fen=2700,
                      actor="wechatpay", now=NOW)
    deliver_to_members(member_uow, OrderPaid(order_no="PC-3", user_id=shopper, paid_fen=2700,
                                             paid_at=timestamp(NOW)), "e-1")  # 300 used, 32 earned
    service.ship_order(pg_uow(), order_id=order.id or 0, carrier="SF", tracking_no="SF3",
                       lines={order.lines[0].id or 0: 1}, actor="staff:7", now=NOW)

    refunds.cancel_unshipped(pg_uow(), FakeRefundPayments(), FakeMembers(), order_id=order.id or 0, reason="缺货",
                             shopper_reason="", actor="staff:9", idempotency_key="cu-3", request_fingerprint=b"b",
                             now=CANCELLED_AT)
    with pg_uow() as tx:
        [refund] = tx.refunds.for_order(order.id or 0)
        tx.commit()
    assert (refund.amount_fen, refund.points_returned) == (1800, 200)  # 2 of 3 units: 2700 x 2/3, 300 x 2/3
    for _ in range(2):  # a notify and the fallback job
        refunds.settle_refund(pg_uow(), refund_no=refund.refund_no, status=refunds.RefundStatus.SUCCESS,
                              actor="wechatpay", now=CANCELLED_AT)
    [event] = refunded_events(pg_engine)
    assert (event.refund_no, event.amount_fen, event.points_returned) == (refund.refund_no, 1800, 200)

    for event_id in ("e-2", "e-3"):  # the event delivered again
        deliver_to_members(member_uow, event, event_id)

    with member_uow() as tx:
        balance = tx.ledger.balance(shopper, Account.POINTS)
        tx.commit()
    assert balance == 1_200 - 300 + 32 - 32 * 1800 // 2700 + 200
    entries, _ = members.points_entries(member_uow(), user_id=shopper, offset=0, limit=20)
    assert sorted((entry.kind, entry.amount) for entry in entries if entry.reference == refund.refund_no) == [
        ("order_refunded", -21), ("points_returned", 200)]
    assert members.check_ledgers(member_uow())[1] == []


def refunded_events(engine: Engine) -> list[OrderRefunded]:
    with engine.connect() as connection:
        rows = connection.execute(select(outbox.c.envelope).where(outbox.c.event_type == "order-refunded")
                                  .order_by(outbox.c.id)).scalars().all()
    return [unpack(decode(row), OrderRefunded) for row in rows]


def deliver_to_members(uow: Callable[[], SqlMemberUnitOfWork], event: Message, event_id: str) -> None:
    """What the member consumer does with one record: its handler inside a transaction of its own."""
    with uow() as tx:
        member_consumers.handlers(FakePhones())[type(event)](tx, event, EventEnvelope(event_id=event_id))  # type: ignore[index]
        tx.commit()


@pytest.mark.parametrize(("cheap_fen", "points", "cash_and_points"), [
    # 1998 points off [1999, 1999, 1]: 2001 paid, 1000 / 1000 / 1 fen. The floors left the gift 2 points: it was
    # cancelled for 1 fen and 2 points, 3 fen of value for a 1-fen gift. Its fen fill it: no points.
    (1, 1998, (1, 0)),
    # 2000 points off [1999, 1999, 5]: 1000 / 1000 / 3 fen, and 4 points where 2 fit beside the 3 fen.
    (5, 2000, (3, 2)),
])
def test_cancelling_the_unshipped_cheap_line_gives_back_exactly_its_cash_and_the_points_that_fit_its_total(
        pg_engine: Engine, pg_uow: Callable[[], SqlOrderUnitOfWork], cheap_fen: int, points: int,
        cash_and_points: tuple[int, int]) -> None:
    order_no = f"PC-GIFT-{cheap_fen}"
    order = new_order(user_id=ALICE, order_no=order_no, address=HOME, now=NOW, pay_minutes=30, points_used=points,
                      lines=[OrderLine(101, 10, "茶", "", 1999, 1), OrderLine(102, 10, "茶", "", 1999, 1),
                             OrderLine(103, 11, "赠品", "", cheap_fen, 1)],
                      amounts=price(3998 + cheap_fen, points_fen=points))  # 1 point a fen, as the member service
    with pg_uow() as tx:
        tx.orders.add(order)
        tx.commit()
    service.mark_paid(pg_uow(), order_no=order_no, channel="wechat", out_trade_no=order_no,
                      paid_fen=order.payable_fen, actor="wechatpay", now=NOW)
    first, second, cheap = (line.id or 0 for line in order.lines)
    service.ship_order(pg_uow(), order_id=order.id or 0, carrier="SF", tracking_no="SF9", lines={first: 1, second: 1},
                       actor="staff:7", now=NOW)

    refunds.cancel_unshipped(pg_uow(), FakeRefundPayments(), FakeMembers(), order_id=order.id or 0, reason="赠品缺货",
                             shopper_reason="", actor="staff:9", idempotency_key="cu-gift", request_fingerprint=b"b",
                             now=CANCELLED_AT)
    with pg_uow() as tx:
        [refund] = tx.refunds.for_order(order.id or 0)
        tx.commit()
    refunds.settle_refund(pg_uow(), refund_no=refund.refund_no, status=refunds.RefundStatus.SUCCESS,
                          actor="wechatpay", now=CANCELLED_AT)

    [event] = refunded_events(pg_engine)
    assert ([(line.line_id, line.quantity) for line in refund.lines], refund.amount_fen, refund.points_returned) == (
        [(cheap, 1)], *cash_and_points)
    assert (event.amount_fen, event.points_returned) == cash_and_points
