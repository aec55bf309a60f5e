"""Refunds on PostgreSQL: the refunded total never passes what was paid under concurrency, and the refund
notify (WeChat Pay by the simulator, through the real gRPC server) settles once and rejects forgeries."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from mall.order.v1 import order_pb2
from prometheus_client import REGISTRY
from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError

from services.common.errors import Conflict
from services.common.outbox import outbox
from services.common.wechatpay import Refund as ChannelRefund
from services.common.wechatpay import WechatPay, WechatPayApiError, WechatPayUnavailable
from services.order import db, refunds, service
from services.order.db import SqlOrderUnitOfWork, order_lines, orders
from services.order.domain import OrderLine, RefundItem, line_refund_fen, new_order, paid_shares, price
from services.order.service import CheckoutInput, OrderSettings
from tests.fakes import HOME, FakeCatalog, FakeMembers, FakeRefundPayments, FakeStock, FakeUsers
from tests.fixtures.metrics import CounterDeltas
from tests.fixtures.simulator import RunningSimulator
from tests.integration.order.conftest import OrderServer
from tests.integration.order.test_order_grpc import ALICE, failure, paid_notify

pytestmark = pytest.mark.integration

STAFF = 9


def paid(uow: Callable[[], SqlOrderUnitOfWork], order_no: str, *lines: OrderLine, discount_bp: int = 10_000,
         channel: str = "wechat") -> int:
    """An order of `lines` paid through `channel` (no discounts but the member's rate `discount_bp`, no freight: without
    it each line's share is its total)."""
    now = datetime.now(UTC)
    order = new_order(user_id=ALICE, order_no=order_no, lines=list(lines), address=HOME,
                      amounts=price(sum(line.total_fen for line in lines), discount_bp=discount_bp), now=now,
                      pay_minutes=30)
    with uow() as tx:
        tx.orders.add(order)
        tx.commit()
    service.mark_paid(uow(), order_no=order_no, channel=channel, out_trade_no=order_no, paid_fen=order.payable_fen,
                      actor="wechatpay" if channel == "wechat" else "member", now=now)
    return order.id or 0


def refunded(engine: Engine, order_id: int) -> tuple[int, list[tuple[int, int]]]:
    with engine.connect() as connection:
        total = connection.execute(select(orders.c.refunded_fen).where(orders.c.id == order_id)).scalar_one()
        lines = connection.execute(select(order_lines.c.refunded_quantity, order_lines.c.refunded_fen)
                                   .where(order_lines.c.order_id == order_id).order_by(order_lines.c.id)).all()
    return total, [tuple(line) for line in lines]


def race(uow: Callable[[], SqlOrderUnitOfWork], order_id: int, items: list[RefundItem], times: int = 20) -> list[str]:
    """`times` refunds of `items` at once: each thread's outcome, the refund's status or the conflict's code."""
    payments, members = FakeRefundPayments(), FakeMembers()

    def one(_: int) -> str:
        try:
            return refunds.start_refund(uow(), payments, members, order_id=order_id, items=items, reason="race",
                                        actor=f"staff:{STAFF}", source="after_sale:1").status
        except Conflict as exc:
            return exc.code

    with concurrent.futures.ThreadPoolExecutor(times) as pool:
        return sorted(pool.map(one, range(times)))


def test_twenty_concurrent_refunds_of_a_line_never_refund_more_than_the_line(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine) -> None:
    order_id = paid(pg_uow, "R-LINE", OrderLine(101, 10, "茶", "", 1000, 10), OrderLine(102, 10, "杯", "", 300, 1))
    line_id = service.get_order(pg_uow(), user_id=None, order_id=order_id).lines[0].id or 0

    outcomes = race(pg_uow, order_id, [RefundItem(line_id, 3, 3000)])

    assert outcomes == ["PENDING"] * 3 + ["REFUND_EXCEEDS_PAID"] * 17
    assert refunded(pg_engine, order_id) == (9000, [(9, 9000), (0, 0)])
    with pg_engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(db.refunds)).scalar_one() == 3


def test_the_lines_a_category_coupon_applies_to_are_kept_with_the_order_and_alone_carry_it(
        uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    catalog = FakeCatalog()
    catalog.put(101, price_fen=1999)
    catalog.put(103, price_fen=3000, category_id=5)
    members = FakeMembers(coupon_fen=1000, coupon_categories=(5,))
    cart = [service.add_cart_item(uow(), catalog, user_id=ALICE, sku_id=sku_id, quantity=1).item.id or 0
            for sku_id in (101, 103)]
    placed = service.submit_order(uow(), members, FakeStock(catalog, {101: 10, 103: 10}), FakeUsers(),
                                  OrderSettings(), user_id=ALICE, request=CheckoutInput(
                                      cart_item_ids=tuple(cart), address_id=7, coupon_id=9),
                                  note="", idempotency_key="k", request_fingerprint=b"k")

    order = service.get_order(uow(), user_id=None, order_id=placed.id or 0)

    assert [(line.sku_id, line.coupon_applied) for line in order.lines] == [(101, False), (103, True)]
    assert list(paid_shares(order).values()) == [1999, 2000]


def test_twenty_concurrent_whole_order_refunds_start_exactly_one(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine) -> None:
    order_id = paid(pg_uow, "R-WHOLE", OrderLine(101, 10, "茶", "", 1000, 2), OrderLine(102, 10, "杯", "", 300, 1))

    outcomes = race(pg_uow, order_id, [])

    assert outcomes == ["PENDING"] + ["REFUND_NOTHING_LEFT"] * 19
    assert refunded(pg_engine, order_id) == (2300, [(2, 2000), (1, 300)])


def test_an_approved_cancellation_of_an_order_ending_in_a_one_fen_gift_refunds_it_all_and_no_line_above_its_total(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine) -> None:
    order_id = gift_order(pg_uow, "R-GIFT")
    service.cancel_order(pg_uow(), user_id=ALICE, order_id=order_id, reason="买错了")

    order = refunds.review_cancellation(pg_uow(), FakeRefundPayments(), FakeMembers(), order_id=order_id,
                                        approve=True, reason="同意", actor=f"staff:{STAFF}")

    assert (order.status, order.payable_fen) == ("REFUNDING", 3800)
    assert refunded(pg_engine, order_id) == (3800, [(1, 1900), (1, 1899), (1, 1)])


def test_a_refund_of_just_the_one_fen_gift_returns_its_fen(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine) -> None:
    order_id = gift_order(pg_uow, "R-GIFT-ONLY")
    order = service.get_order(pg_uow(), user_id=None, order_id=order_id)
    gift = order.lines[-1].id or 0

    refund = refunds.start_refund(pg_uow(), FakeRefundPayments(), FakeMembers(), order_id=order_id,
                                  items=[RefundItem(gift, 1, line_refund_fen(order, gift, 1))], reason="赠品破损",
                                  actor=f"staff:{STAFF}", source="after_sale:1")

    assert refund.amount_fen == 1
    assert refunded(pg_engine, order_id) == (1, [(0, 0), (0, 0), (1, 1)])


def gift_order(uow: Callable[[], SqlOrderUnitOfWork], order_no: str) -> int:
    """A member at 95% paid [1999, 1999, 1-fen gift], in that order: the floors of the two 1999 lines (1899.52..)
    left the gift 2 fen of the 3800 paid, and the CHECK refused any refund of it."""
    return paid(uow, order_no, OrderLine(101, 10, "茶", "", 1999, 1), OrderLine(103, 10, "壶", "", 1999, 1),
                OrderLine(104, 10, "赠品", "", 1, 1), discount_bp=9_500)


def test_the_database_itself_refuses_a_refunded_total_above_the_paid_amount(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine) -> None:
    order_id = paid(pg_uow, "R-CHECK", OrderLine(101, 10, "茶", "", 1000, 2))
    for table, key, values in ((orders, orders.c.id, {"refunded_fen": 2001}),
                               (order_lines, order_lines.c.order_id, {"refunded_quantity": 3}),
                               (order_lines, order_lines.c.order_id, {"refunded_fen": 2001})):
        with pytest.raises(IntegrityError), pg_engine.begin() as connection:
            connection.execute(update(table).where(key == order_id).values(**values))
    assert refunded(pg_engine, order_id) == (0, [(0, 0)])


def cancelled_and_approved(server: OrderServer, simulator: RunningSimulator) -> tuple[order_pb2.Order, str]:
    """A WeChat-paid order whose cancellation customer service approved: REFUNDING, its refund PENDING."""
    order, notify = paid_notify(server, simulator)
    server.stub.HandleWechatPayNotify(notify)
    alice = server.as_user(ALICE)
    requested = server.stub.CancelOrder(order_pb2.CancelOrderRequest(id=order.id, reason="买错了"), metadata=alice)
    assert requested.status == "CANCEL_REQUESTED"
    approved = server.stub.ReviewCancellation(order_pb2.ReviewCancellationRequest(id=order.id, approve=True,
                                                                                  reason="同意"),
                                              metadata=server.as_user(STAFF, "customer_service"))
    assert (approved.status, approved.refunded_fen) == ("REFUNDING", order.amounts.payable_fen)
    with server.engine.connect() as connection:
        refund_no = connection.execute(select(db.refunds.c.refund_no)).scalar_one()
    return order, refund_no


def refund_notify(simulator: RunningSimulator, refund_no: str, status: str = "SUCCESS",
                  tamper: str | None = None) -> order_pb2.WechatPayNotifyRequest:
    sent = simulator.client.wechatpay_refund_complete(refund_no, status, tamper=tamper)["notify"]
    return order_pb2.WechatPayNotifyRequest(body=sent["body"].encode(), headers=sent["headers"])


def test_a_refund_notify_replayed_in_sequence_and_concurrently_settles_once(
        server: OrderServer, simulator: RunningSimulator) -> None:
    order, refund_no = cancelled_and_approved(server, simulator)
    notify = refund_notify(simulator, refund_no)

    for _ in range(10):
        server.stub.HandleWechatRefundNotify(notify)
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        list(pool.map(lambda _: server.stub.HandleWechatRefundNotify(notify), range(20)))

    read = server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id), metadata=server.as_user(ALICE))
    assert [step.status for step in read.history] == ["PENDING_PAYMENT", "PAID", "CANCEL_REQUESTED", "REFUNDING",
                                                      "REFUNDED"]
    assert (read.refunded_fen, server.events("order-refunded"), server.events("order-cancelled")) == (
        order.amounts.payable_fen, 1, 1)
    assert simulator.client.wechatpay_order(order.order_no)["refunded_fen"] == order.amounts.payable_fen


def test_twenty_first_refund_notifies_at_once_still_settle_once(server: OrderServer,
                                                                 simulator: RunningSimulator) -> None:
    order, refund_no = cancelled_and_approved(server, simulator)
    payable = order.amounts.payable_fen
    notify = refund_notify(simulator, refund_no)
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: server.stub.HandleWechatRefundNotify(notify), range(20)))
    assert answers == [order_pb2.WechatPayNotifyResponse()] * 20
    read = server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id), metadata=server.as_user(ALICE))
    assert (read.status, read.refunded_fen, server.events("order-refunded")) == ("REFUNDED", payable, 1)
    assert simulator.client.wechatpay_order(order.order_no)["refunded_fen"] == payable


@pytest.mark.parametrize("tamper", ["bad_signature", "tampered_body", "unknown_serial", "stale_timestamp", "bad_tag",
                                    "wrong_mchid", "wrong_amount"])
def test_a_forged_or_tampered_refund_notify_is_rejected_and_changes_nothing(
        server: OrderServer, simulator: RunningSimulator, tamper: str) -> None:
    order, refund_no = cancelled_and_approved(server, simulator)
    notify = refund_notify(simulator, refund_no, tamper=tamper)
    assert failure(lambda: server.stub.HandleWechatRefundNotify(notify)) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                                              "NOTIFY_REJECTED")
    read = server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id), metadata=server.as_user(ALICE))
    assert (read.status, server.events("order-refunded")) == ("REFUNDING", 0)


def test_a_closed_refund_frees_the_amount_and_approving_again_refunds_anew(
        server: OrderServer, simulator: RunningSimulator, pg_uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    order, refund_no = cancelled_and_approved(server, simulator)
    server.stub.HandleWechatRefundNotify(refund_notify(simulator, refund_no, "CLOSED"))
    staff = server.as_user(STAFF, "customer_service")
    read = server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id), metadata=staff)
    assert (read.status, read.refunded_fen, server.events("order-refunded")) == ("REFUNDING", 0, 0)

    again = server.stub.ReviewCancellation(order_pb2.ReviewCancellationRequest(id=order.id, approve=True), metadata=staff)
    assert (again.status, again.refunded_fen, server.events("order-cancelled")) == (
        "REFUNDING", order.amounts.payable_fen, 1)
    assert failure(lambda: server.stub.ReviewCancellation(order_pb2.ReviewCancellationRequest(id=order.id, approve=True),
                                                          metadata=staff)) == (grpc.StatusCode.ABORTED,
                                                                               "ORDER_STATE_CONFLICT")


def test_an_abnormal_refund_stays_reserved_until_an_admin_closes_it_with_a_reason_then_it_refunds_anew(
        server: OrderServer, simulator: RunningSimulator) -> None:
    order, refund_no = cancelled_and_approved(server, simulator)
    payable = order.amounts.payable_fen
    server.stub.HandleWechatRefundNotify(refund_notify(simulator, refund_no, "ABNORMAL"))
    service_staff, admin = server.as_user(STAFF, "customer_service"), server.as_user(STAFF, "admin")
    read = server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id), metadata=service_staff)
    assert (read.status, read.refunded_fen, refund_no in read.history[-1].reason) == ("REFUNDING", payable, True)
    retried = server.stub.ReviewCancellation(order_pb2.ReviewCancellationRequest(id=order.id, approve=True),
                                             metadata=service_staff)  # asks WeChat Pay: still ABNORMAL
    assert (retried.status, retried.refunded_fen) == ("REFUNDING", payable)

    simulator.client.wechatpay_refund_complete(refund_no, "CLOSED")  # given up at WeChat Pay; its notify is lost
    close = order_pb2.CloseRefundRequest(refund_no=refund_no, reason="卡已注销,款项退回商户后线下转账")
    assert failure(lambda: server.stub.CloseRefund(close, metadata=service_staff)) == (
        grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")
    closed = server.stub.CloseRefund(close, metadata=admin)

    assert (closed.status, closed.refunded_fen, closed.history[-1].actor) == ("REFUNDING", 0, f"staff:{STAFF}")
    assert "卡已注销,款项退回商户后线下转账" in closed.history[-1].reason
    again = server.stub.ReviewCancellation(order_pb2.ReviewCancellationRequest(id=order.id, approve=True),
                                           metadata=service_staff)
    assert (again.refunded_fen, server.events("order-refunded")) == (payable, 0)
    with server.engine.connect() as connection:
        statuses = connection.execute(select(db.refunds.c.status).order_by(db.refunds.c.id)).scalars().all()
    assert statuses == ["CLOSED", "PENDING"]


def test_an_abnormal_refund_completed_at_wechat_pay_is_refunded_once_and_can_no_longer_be_closed(
        server: OrderServer, simulator: RunningSimulator) -> None:
    order, refund_no = cancelled_and_approved(server, simulator)
    server.stub.HandleWechatRefundNotify(refund_notify(simulator, refund_no, "ABNORMAL"))

    server.stub.HandleWechatRefundNotify(refund_notify(simulator, refund_no, "SUCCESS"))  # the merchant console

    read = server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id), metadata=server.as_user(ALICE))
    assert (read.status, read.refunded_fen, server.events("order-refunded")) == (
        "REFUNDED", order.amounts.payable_fen, 1)
    assert failure(lambda: server.stub.CloseRefund(order_pb2.CloseRefundRequest(refund_no=refund_no, reason="?"),
                                                   metadata=server.as_user(STAFF, "admin"))) == (
        grpc.StatusCode.ABORTED, "REFUND_STATE_CONFLICT")


def test_cancellation_review_is_for_customer_service_and_a_rejection_pays_the_order_again(
        server: OrderServer, simulator: RunningSimulator) -> None:
    order, notify = paid_notify(server, simulator)
    server.stub.HandleWechatPayNotify(notify)
    review = order_pb2.ReviewCancellationRequest(id=order.id, approve=False, reason="已发货")
    assert failure(lambda: server.stub.ReviewCancellation(review, metadata=server.as_user(STAFF, "customer_service"))
                   ) == (grpc.StatusCode.ABORTED, "ORDER_STATE_CONFLICT")
    server.stub.CancelOrder(order_pb2.CancelOrderRequest(id=order.id, reason="不想要了"), metadata=server.as_user(ALICE))
    for who in (server.as_user(ALICE), server.as_user(STAFF, "operator")):
        assert failure(lambda who=who: server.stub.ReviewCancellation(review, metadata=who)) == (
            grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")
    rejected = server.stub.ReviewCancellation(review, metadata=server.as_user(STAFF, "admin"))
    assert (rejected.status, rejected.history[-1].actor, rejected.history[-1].reason) == ("PAID", f"staff:{STAFF}",
                                                                                           "已发货")
    assert server.events("order-cancelled") == 0


def test_a_lost_refund_notify_is_found_by_the_refund_query_and_settles_once(
        server: OrderServer, simulator: RunningSimulator, pg_uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    order, refund_no = cancelled_and_approved(server, simulator)
    simulator.client.wechatpay_refund_complete(refund_no)  # its notify goes to an address nobody answers
    payments = refunds.WechatRefunds(WechatPay(simulator.wechatpay_settings()), "http://127.0.0.1:9/unreachable")
    later = datetime.now(UTC) + timedelta(minutes=10)

    assert refunds.reconcile_refunds(pg_uow, payments, FakeMembers(), now=datetime.now(UTC)) == 0  # too recent
    assert refunds.reconcile_refunds(pg_uow, payments, FakeMembers(), now=later) == 1
    assert refunds.reconcile_refunds(pg_uow, payments, FakeMembers(), now=later) == 0

    read = server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id), metadata=server.as_user(ALICE))
    assert (read.status, read.history[-1].actor, server.events("order-refunded")) == ("REFUNDED", "reconciliation", 1)


@dataclass
class PaidAtWechatPay(FakeRefundPayments):
    """WeChat Pay reporting the refunds in `paid` SUCCESS and every other one PROCESSING (a bank card's, for days)."""

    paid: set[str] = field(default_factory=set)

    def query_refund(self, out_refund_no: str) -> ChannelRefund:
        answer = super().query_refund(out_refund_no)
        return replace(answer, status="SUCCESS") if out_refund_no in self.paid else answer


def cancellations_a_minute_apart(uow: Callable[[], SqlOrderUnitOfWork], wechat: FakeRefundPayments, prefix: str,
                                  count: int, noon: datetime) -> list[str]:
    """`count` paid orders `prefix`-0, -1, ... refunded whole (an approved cancellation) a minute apart from `noon`:
    their refund numbers, oldest first."""
    return [refunds.start_refund(uow(), wechat, FakeMembers(),
                                 order_id=paid(uow, f"{prefix}-{number}", OrderLine(101, 10, "茶", "", 1000, 1)),
                                 items=[], reason="r", actor="staff:9", source="cancel",
                                 now=noon + timedelta(minutes=number)).refund_no
            for number in range(count)]


@dataclass
class HeldQueries(FakeRefundPayments):
    """WeChat Pay's refund query (PROCESSING), the first query held until `release` is set (`inside` is set when it
    is held): a round under way. `queried`: every query, in order."""

    queried: list[str] = field(default_factory=list)
    inside: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def query_refund(self, out_refund_no: str) -> ChannelRefund:
        self.queried.append(out_refund_no)
        if len(self.queried) == 1:
            self.inside.set()
            assert self.release.wait(30), "the test never let the first round go on"
        return super().query_refund(out_refund_no)


def test_a_replicas_refund_fallback_round_while_another_is_under_way_asks_wechat_pay_nothing(
        pg_uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    noon = datetime(2026, 12, 1, 12, tzinfo=UTC)
    wechat = HeldQueries()
    started = cancellations_a_minute_apart(pg_uow, wechat, "R-ROUND", 3, noon)
    later = noon + timedelta(hours=1)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        first = pool.submit(refunds.reconcile_refunds, pg_uow, wechat, FakeMembers(), now=later, batch=2)
        assert wechat.inside.wait(30)
        second = refunds.reconcile_refunds(pg_uow, wechat, FakeMembers(), now=later, batch=2)
        asked_meanwhile = list(wechat.queried)
        wechat.release.set()
        assert first.result(timeout=30) == 0  # PROCESSING: all still PENDING

    assert (second, asked_meanwhile, wechat.queried) == (0, started[:1], started)  # each asked once
    assert refunds.reconcile_refunds(pg_uow, wechat, FakeMembers(), now=later, batch=2) == 0
    assert wechat.queried == started * 2  # the next round, the lock free again, reaches every refund


def test_a_replicas_refund_fallback_round_within_the_interval_of_the_last_asks_wechat_pay_nothing(
        pg_uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    noon = datetime(2026, 12, 1, 12, tzinfo=UTC)
    wechat = HeldQueries()
    wechat.release.set()  # no round is held here
    started = cancellations_a_minute_apart(pg_uow, wechat, "R-INTERVAL", 2, noon)

    def round_at(seconds: int) -> int:  # each replica's timer, `seconds` after the first round
        return refunds.reconcile_refunds(pg_uow, wechat, FakeMembers(), now=noon + timedelta(hours=1, seconds=seconds),
                                         interval_seconds=60)

    assert (round_at(0), wechat.queried) == (0, started)  # PROCESSING: all still PENDING
    assert (round_at(59), wechat.queried) == (0, started)  # another replica, within the interval: nothing asked
    assert (round_at(60), wechat.queried) == (0, started * 2)  # the interval over: every refund asked again
    assert (round_at(119), wechat.queried) == (0, started * 2)


def test_refunds_under_way_for_days_do_not_hide_a_newer_one_whose_notify_was_lost_from_the_fallback_job(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine) -> None:
    noon = datetime(2026, 12, 1, 12, tzinfo=UTC)
    wechat = PaidAtWechatPay()
    started = cancellations_a_minute_apart(pg_uow, wechat, "R-SLOW", 5, noon)
    wechat.paid.add(started[-1])  # the newest was paid at WeChat Pay and its notify was lost

    ended = refunds.reconcile_refunds(pg_uow, wechat, FakeMembers(), now=noon + timedelta(hours=1), batch=2)

    with pg_engine.connect() as connection:
        statuses = dict(connection.execute(select(db.refunds.c.refund_no, db.refunds.c.status)).all())
        published = connection.execute(select(func.count()).select_from(outbox)
                                       .where(outbox.c.event_type == "order-refunded")).scalar_one()
    assert ended == 1
    assert statuses == {**{refund_no: "PENDING" for refund_no in started[:-1]}, started[-1]: "SUCCESS"}
    assert published == 1


def test_a_cancellation_refund_closed_by_an_admin_that_wechat_pay_pays_after_all_refunds_the_order_once(
        server: OrderServer, simulator: RunningSimulator) -> None:
    """Staff closed the cancellation's ABNORMAL refund and nothing refunded the order since: WeChat Pay paying it after
    all is the order's refund, as a paid refund is (`refunds._paid_after_close`): its amount reserved again,
    order-refunded once, and the order REFUNDED by the state machine's "refunded" step, recorded for staff and the
    shopper; approving the cancellation again refunds nothing more. The step and the count are recorded once."""
    order, refund_no = cancelled_and_approved(server, simulator)
    payable = order.amounts.payable_fen
    server.stub.HandleWechatRefundNotify(refund_notify(simulator, refund_no, "ABNORMAL"))
    admin = server.as_user(STAFF, "admin")
    closed = server.stub.CloseRefund(order_pb2.CloseRefundRequest(refund_no=refund_no, reason="卡已注销,线下转账"),
                                     metadata=admin)
    assert (closed.status, closed.refunded_fen) == ("REFUNDING", 0)
    deltas = CounterDeltas()

    paid_anyway = refund_notify(simulator, refund_no, "SUCCESS")  # the merchant completed it at WeChat Pay after all
    for _ in range(3):
        server.stub.HandleWechatRefundNotify(paid_anyway)

    read = server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id), metadata=admin)
    assert (read.status, read.refunded_fen) == ("REFUNDED", payable)
    assert [(step.status, step.actor, step.reason, step.shopper_visible, step.shopper_reason)
            for step in read.history[-2:]] == [
        ("REFUNDING", "wechatpay", f"refund {refund_no} was closed here but WeChat Pay paid it: {payable} fen and its "
         "units count as refunded again", False, ""),
        ("REFUNDED", "wechatpay", f"refund {refund_no}: {payable} fen", True, "refunded in full")]
    mine = server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id), metadata=server.as_user(ALICE))
    assert [(step.status, step.reason) for step in mine.history[-2:]] == [  # the note is staff's
        ("REFUNDING", "cancellation approved"), ("REFUNDED", "refunded in full")]
    assert [(refund.refund_no, refund.status, refund.amount_fen, refund.HasField("paid_after_close_at"))
            for refund in mine.refunds] == [(refund_no, "CLOSED", payable, True)]
    assert (server.events("order-refunded"), deltas()["mall_refunds_paid_after_close_total"]) == (1, 1)

    assert failure(lambda: server.stub.ReviewCancellation(
        order_pb2.ReviewCancellationRequest(id=order.id, approve=True, reason="再退"),
        metadata=server.as_user(STAFF, "customer_service")))[1] == "ORDER_STATE_CONFLICT"
    with server.engine.connect() as connection:
        assert connection.execute(select(db.refunds.c.refund_no, db.refunds.c.status)).all() == [(refund_no, "CLOSED")]
    assert simulator.client.wechatpay_order(order.order_no)["refunded_fen"] == payable


def test_the_abnormal_refund_gauges_read_the_abnormal_refunds_and_since_when(
        uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    order_id = paid(uow, "R-GAUGE", OrderLine(101, 10, "茶", "", 1000, 4))
    line_id = service.get_order(uow(), user_id=None, order_id=order_id).lines[0].id or 0
    started = [refunds.start_refund(uow(), FakeRefundPayments(), FakeMembers(), order_id=order_id,
                                    items=[RefundItem(line_id, 1, 1000)], reason="r", actor="staff:9",
                                    source="after_sale:1").refund_no for _ in range(4)]
    noon = datetime(2026, 12, 1, 12, tzinfo=UTC)
    for refund_no, status, at in zip(started, ("ABNORMAL", "ABNORMAL", "SUCCESS", "PENDING"),
                                     (noon + timedelta(minutes=30), noon, noon, noon), strict=True):
        refunds.settle_refund(uow(), refund_no=refund_no, status=refunds.RefundStatus(status), actor="wechatpay",
                              now=at)

    refunds.watch_abnormal_refunds(uow(), now=noon + timedelta(days=1))

    assert (REGISTRY.get_sample_value("mall_refunds_abnormal"),
            REGISTRY.get_sample_value("mall_refunds_abnormal_oldest_seconds")) == (2, 86400)


def test_the_stuck_refund_gauges_read_refunds_pending_past_the_threshold_and_since_when(
        uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    order_id = paid(uow, "R-STUCK", OrderLine(101, 10, "茶", "", 1000, 4))
    line_id = service.get_order(uow(), user_id=None, order_id=order_id).lines[0].id or 0
    noon = datetime(2026, 12, 1, 12, tzinfo=UTC)
    lost = FakeRefundPayments(error=WechatPayUnavailable("no answer"))
    started = [refunds.start_refund(uow(), lost, FakeMembers(), order_id=order_id,
                                    items=[RefundItem(line_id, 1, 1000)], reason="r", actor="staff:9",
                                    source="after_sale:1", now=noon + timedelta(minutes=minutes)).refund_no
               for minutes in (0, 30, 90, 0)]
    refunds.settle_refund(uow(), refund_no=started[3], status=refunds.RefundStatus.ABNORMAL, actor="wechatpay",
                          now=noon)

    refunds.watch_abnormal_refunds(uow(), now=noon + timedelta(hours=2), stuck_seconds=3600)

    assert (REGISTRY.get_sample_value("mall_refunds_pending_stuck"),
            REGISTRY.get_sample_value("mall_refunds_pending_stuck_oldest_seconds")) == (2, 7200)


class RefusingResend(FakeRefundPayments):
    """WeChat Pay knowing no refund (RESOURCE_NOT_EXISTS) and refusing one sent again: the merchant's balance is short."""

    def refund(self, *, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int,
               reason: str | None = None) -> ChannelRefund:
        raise WechatPayApiError(403, "NOT_ENOUGH", "余额不足")


def test_a_stuck_refund_wechat_pay_refuses_when_sent_again_turns_abnormal_and_staff_close_it(
        uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    order_id = paid(uow, "R-REFUSED", OrderLine(101, 10, "茶", "", 1000, 4))
    noon = datetime(2026, 12, 1, 12, tzinfo=UTC)
    refund = refunds.start_refund(uow(), FakeRefundPayments(error=WechatPayUnavailable("no answer")), FakeMembers(),
                                  order_id=order_id, items=[], reason="r", actor="staff:9", source="cancel", now=noon)
    engine = uow().engine

    refunds.reconcile_refunds(uow, RefusingResend(), FakeMembers(), now=noon + timedelta(minutes=30),
                              stuck_seconds=3600)
    with engine.connect() as connection:
        assert connection.execute(select(db.refunds.c.status)).scalar_one() == "PENDING"
    later = noon + timedelta(hours=2)
    refunds.reconcile_refunds(uow, RefusingResend(), FakeMembers(), now=later, stuck_seconds=3600)

    with engine.connect() as connection:
        assert tuple(connection.execute(select(db.refunds.c.status, db.refunds.c.updated_at,
                                               db.refunds.c.settled_at)).one()) == ("ABNORMAL", later, None)
    order = service.get_order(uow(), user_id=None, order_id=order_id)
    assert (order.history[-1].actor, order.history[-1].reason) == (
        "reconciliation", refunds.resend_refused_note(refund, "NOT_ENOUGH"))
    assert refunded(engine, order_id) == (4000, [(4, 4000)])

    refunds.close_refund(uow(), RefusingResend(), refund_no=refund.refund_no, reason="已线下转账", actor="staff:9",
                         now=later)

    with engine.connect() as connection:
        assert connection.execute(select(db.refunds.c.status)).scalar_one() == "CLOSED"
    assert refunded(engine, order_id) == (0, [(0, 0)])
