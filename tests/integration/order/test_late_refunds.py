"""A late WeChat Pay payment's refund on PostgreSQL with the WeChat Pay simulator, through the real gRPC server: paid
by its notify (replayed, concurrently) or found by the fallback job, late-payment-refunded once with its exact fen
and never order-refunded; ABNORMAL, it is counted for the alert and staff retry or close it."""

from __future__ import annotations

import concurrent.futures
import functools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from mall.events.v1.order_events_pb2 import LatePaymentReceived, LatePaymentRefunded
from mall.order.v1 import order_pb2
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common import migrations
from services.common.db import make_engine
from services.common.events import decode, unpack
from services.common.idempotency import fingerprint, idempotency_keys, run_once
from services.common.outbox import add_to_outbox, outbox
from services.common.wechatpay import WechatPay
from services.order import db, refunds, service
from services.order.db import SqlOrderUnitOfWork
from services.order.domain import PAYABLE_WITHIN
from tests.fakes import FakeMembers
from tests.fixtures.postgres import drop_databases, migrations_dir, recreate_database, session_database_name
from tests.fixtures.simulator import RunningSimulator
from tests.integration.order.conftest import OrderServer
from tests.integration.order.test_order_grpc import ALICE, failure, paid_notify
from tests.integration.order.test_refunds import STAFF, refund_notify

pytestmark = pytest.mark.integration

UNREACHABLE = "http://127.0.0.1:9/unreachable"


def paid_too_late(server: OrderServer, simulator: RunningSimulator) -> tuple[order_pb2.Order, str]:
    """Alice pays with WeChat Pay; the order service learns of it only PAYABLE_WITHIN later (its notify, three
    times): the order is cancelled and the payment's refund asked for (PROCESSING at the simulator)."""
    order, notify = paid_notify(server, simulator)
    wechat = WechatPay(simulator.wechatpay_settings(), refund_notify_url=UNREACHABLE)
    uow = functools.partial(SqlOrderUnitOfWork, server.engine, "order")
    late = datetime.now(UTC) + PAYABLE_WITHIN + timedelta(minutes=1)
    for _ in range(3):
        service.handle_wechat_notify(uow(), wechat, headers=dict(notify.headers), body=notify.body, now=late)
    return order, f"LATE{order.order_no}"


def refund_rows(server: OrderServer) -> list[tuple[str, str, str, int]]:
    with server.engine.connect() as connection:
        return [tuple(row) for row in connection.execute(select(
            db.refunds.c.refund_no, db.refunds.c.source, db.refunds.c.status, db.refunds.c.amount_fen))]


def late_refunds_published(server: OrderServer) -> list[tuple[str, str, int, str, int]]:
    with server.engine.connect() as connection:
        envelopes = [decode(row) for row in connection.execute(select(outbox.c.envelope).where(
            outbox.c.event_type == "late-payment-refunded")).scalars()]
    return [(event.order_no, event.refund_no, event.amount_fen, event.channel, event.user_id)
            for event in (unpack(envelope, LatePaymentRefunded) for envelope in envelopes)]


def read(server: OrderServer, order: order_pb2.Order) -> order_pb2.Order:
    return server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id), metadata=server.as_user(STAFF, "admin"))


def test_a_late_refund_paid_by_its_notify_replayed_and_concurrent_publishes_late_payment_refunded_once(
        server: OrderServer, simulator: RunningSimulator) -> None:
    order, refund_no = paid_too_late(server, simulator)
    payable = order.amounts.payable_fen
    assert refund_rows(server) == [(refund_no, "late_payment", "PENDING", payable)]
    notify = refund_notify(simulator, refund_no)

    for _ in range(3):
        server.stub.HandleWechatRefundNotify(notify)
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda _: server.stub.HandleWechatRefundNotify(notify), range(10)))

    assert refund_rows(server) == [(refund_no, "late_payment", "SUCCESS", payable)]
    assert late_refunds_published(server) == [(order.order_no, refund_no, payable, "wechat", ALICE)]
    assert (server.events("late-payment-received"), server.events("order-refunded")) == (1, 0)
    assert (read(server, order).status, read(server, order).refunded_fen) == ("CANCELLED", 0)
    assert simulator.client.wechatpay_order(order.order_no)["refunded_fen"] == payable


def test_a_late_refund_whose_notify_is_lost_is_paid_by_the_fallback_job_once(
        server: OrderServer, simulator: RunningSimulator) -> None:
    order, refund_no = paid_too_late(server, simulator)
    simulator.client.wechatpay_refund_complete(refund_no)  # its notify goes to an address nobody answers
    payments = refunds.WechatRefunds(WechatPay(simulator.wechatpay_settings()), UNREACHABLE)
    uow = functools.partial(SqlOrderUnitOfWork, server.engine, "order")
    later = datetime.now(UTC) + PAYABLE_WITHIN + timedelta(minutes=10)  # the refund was asked for PAYABLE_WITHIN on

    ended = [refunds.reconcile_refunds(uow, payments, FakeMembers(), now=later) for _ in range(2)]

    assert (ended, refund_rows(server)) == ([1, 0], [(refund_no, "late_payment", "SUCCESS", order.amounts.payable_fen)])
    assert late_refunds_published(server) == [(order.order_no, refund_no, order.amounts.payable_fen, "wechat", ALICE)]
    assert (server.events("order-refunded"), read(server, order).refunded_fen) == (0, 0)


def test_an_abnormal_late_refund_is_counted_and_customer_service_retry_it_once_the_merchant_completed_it(
        server: OrderServer, simulator: RunningSimulator) -> None:
    order, refund_no = paid_too_late(server, simulator)
    server.stub.HandleWechatRefundNotify(refund_notify(simulator, refund_no, "ABNORMAL"))
    refunds.watch_abnormal_refunds(functools.partial(SqlOrderUnitOfWork, server.engine, "order")())
    counted = REGISTRY.get_sample_value("mall_refunds_abnormal")
    retry = order_pb2.RetryRefundRequest(refund_no=refund_no)
    assert failure(lambda: server.stub.RetryRefund(retry, metadata=server.as_user(STAFF, "operator"))) == (
        grpc.StatusCode.PERMISSION_DENIED, "FORBIDDEN")
    still = server.stub.RetryRefund(retry, metadata=server.as_user(STAFF, "customer_service"))  # not fixed yet

    simulator.client.wechatpay_refund_complete(refund_no)  # the merchant completed it; its notify is lost
    retried = server.stub.RetryRefund(retry, metadata=server.as_user(STAFF, "customer_service"))

    assert (counted, refund_no in still.history[-1].reason, "ABNORMAL" in still.history[-1].reason) == (1, True, True)
    assert (retried.status, retried.refunded_fen, refund_rows(server)) == (
        "CANCELLED", 0, [(refund_no, "late_payment", "SUCCESS", order.amounts.payable_fen)])
    assert late_refunds_published(server) == [(order.order_no, refund_no, order.amounts.payable_fen, "wechat", ALICE)]
    assert server.events("order-refunded") == 0


def test_an_admin_closes_an_abnormal_late_refund_given_up_at_wechat_pay_and_nothing_is_published(
        server: OrderServer, simulator: RunningSimulator) -> None:
    order, refund_no = paid_too_late(server, simulator)
    server.stub.HandleWechatRefundNotify(refund_notify(simulator, refund_no, "ABNORMAL"))
    simulator.client.wechatpay_refund_complete(refund_no, "CLOSED")  # given up at WeChat Pay; its notify is lost

    closed = server.stub.CloseRefund(order_pb2.CloseRefundRequest(refund_no=refund_no, reason="卡已注销,已线下转账"),
                                     metadata=server.as_user(STAFF, "admin"))

    assert (closed.status, closed.refunded_fen, closed.history[-1].actor) == ("CANCELLED", 0, f"staff:{STAFF}")
    assert "卡已注销,已线下转账" in closed.history[-1].reason
    assert refund_rows(server) == [(refund_no, "late_payment", "CLOSED", order.amounts.payable_fen)]
    assert (late_refunds_published(server), server.events("order-refunded")) == ([], 0)


def test_a_late_refund_wechat_pay_closes_is_abnormal_listed_for_staff_until_an_admin_closes_it(
        server: OrderServer, simulator: RunningSimulator) -> None:
    order, refund_no = paid_too_late(server, simulator)
    payable = order.amounts.payable_fen
    closed_there = refund_notify(simulator, refund_no, "CLOSED")  # WeChat Pay closed it: the money never went back

    for _ in range(2):
        server.stub.HandleWechatRefundNotify(closed_there)
    listed = server.stub.ListRefunds(order_pb2.ListRefundsRequest(status="ABNORMAL", limit=10),
                                     metadata=server.as_user(STAFF, "admin"))
    notes = [step.reason for step in read(server, order).history].count(
        f"refund {refund_no} of a late payment CLOSED at WeChat Pay: {payable} fen not paid back; ABNORMAL until "
        "staff return it another way and close it")
    closed = server.stub.CloseRefund(order_pb2.CloseRefundRequest(refund_no=refund_no, reason="已线下转账"),
                                     metadata=server.as_user(STAFF, "admin"))

    assert ([(row.refund_no, row.status, row.amount_fen) for row in listed.refunds], notes) == (
        [(refund_no, "ABNORMAL", payable)], 1)
    assert (closed.status, closed.refunded_fen, refund_rows(server)) == (
        "CANCELLED", 0, [(refund_no, "late_payment", "CLOSED", payable)])
    assert (server.events("late-payment-received"), late_refunds_published(server)) == (1, [])


@pytest.fixture(params=["postgresql", "sqlite"])
def database_at_0013(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An order database of its own at revision 0013 (late-payment-received guarded only by the history step)."""
    if request.param == "sqlite":
        url, name = f"sqlite:///{tmp_path / 'order.db'}", None
    else:
        name = session_database_name("it", "latereceived")
        url = recreate_database(name)
    migrations.upgrade(url, migrations_dir("order"), "0013")
    yield url
    if name:
        drop_databases([name])


def test_migration_0014_claims_each_wechat_late_receipt_already_published_so_a_replay_does_not_publish_it_again(
        database_at_0013: str) -> None:
    engine = make_engine(database_at_0013)
    order_no, other = "2026120108000000000000000000a1", "2026120108000000000000000000b2"
    received = {"channel": "wechat", "out_trade_no": order_no, "amount_fen": 3998, "refund_no": f"LATE{order_no}",
                "reason": "cancelled", "user_id": 1}
    try:
        with Session(engine) as session, session.begin():
            event_id = add_to_outbox(session, LatePaymentReceived(order_no=order_no, **received), producer="order",
                                     aggregate_id=order_no)
            add_to_outbox(session, LatePaymentReceived(  # a wallet charge's: published with its credit back
                order_no=other, channel="balance", out_trade_no=other, amount_fen=500, refund_no=f"LATEW{other}",
                reason="cancelled", user_id=2), producer="order", aggregate_id=other)

        migrations.upgrade(database_at_0013, migrations_dir("order"))

        with engine.connect() as connection:
            claimed = [tuple(row) for row in connection.execute(select(
                idempotency_keys.c.scope, idempotency_keys.c.key, idempotency_keys.c.request_hash,
                idempotency_keys.c.response))]
        assert claimed == [(service.LATE_RECEIVED_SCOPE, f"LATE{order_no}", fingerprint(b"3998"), event_id.encode())]
        with Session(engine) as session, session.begin():  # what refund_late_payment's replay then does
            response = run_once(session, scope=service.LATE_RECEIVED_SCOPE, key=f"LATE{order_no}", request=b"3998",
                                execute=lambda: pytest.fail("published again"))
        assert response == event_id.encode()
    finally:
        engine.dispose()
