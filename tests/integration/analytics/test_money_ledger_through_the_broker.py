"""The money ledger from the producers' outboxes through a real broker: a WeChat Pay payment for a cancelled order and
its automatic refund (order service), a recharge and a withdrawal with its forfeited bonus (member service), each
counted once however often it is delivered or re-published (PostgreSQL)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from mall.events.v1.envelope_pb2 import EventEnvelope
from sqlalchemy import Engine, select

from services.analytics import ledgers, service
from services.analytics.consumers import HANDLERS
from services.analytics.db import SqlAnalyticsUnitOfWork
from services.analytics.domain import Period
from services.common.config import KafkaSettings
from services.common.consumer import EventConsumer
from services.common.events import decode
from services.common.outbox import OutboxRelay, outbox
from services.member import service as member_service
from services.member.db import SqlMemberUnitOfWork
from services.member.db import start_mappers as start_member_mappers
from services.order import refunds
from services.order import service as order_service
from services.order.db import SqlOrderUnitOfWork, start_mappers
from services.order.domain import OrderLine, RefundStatus, new_order, new_order_no, price
from tests.fakes import HOME, SimulatedPayment, SimulatedPayout
from tests.fixtures.analytics_stream import republished
from tests.integration.analytics.test_analytics_on_postgres import consume, processed, send
from tests.unit.order.test_cart_checkout_payment import FakeWechatPay, notice

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
DAY = Period(NOW.date(), NOW.date())
ALICE, BOB = 1, 2
PAYABLE = 3_998


@pytest.fixture
def engines(service_engine: Callable[[str], Engine]) -> dict[str, Engine]:
    start_mappers()
    start_member_mappers()
    return {name: service_engine(name) for name in ("order", "member", "analytics")}


@pytest.fixture
def analytics(engines: dict[str, Engine]) -> Callable[[], SqlAnalyticsUnitOfWork]:
    return functools.partial(SqlAnalyticsUnitOfWork, engines["analytics"], "analytics")


def late_payment_of_a_cancelled_order(engine: Engine) -> str:
    """Alice's unpaid order, cancelled; WeChat Pay then notifies her payment of it three times, and its refund's end."""
    uow = functools.partial(SqlOrderUnitOfWork, engine, "order")
    order = new_order(user_id=ALICE, order_no=new_order_no(NOW), lines=[OrderLine(101, 10, "茶", "", PAYABLE, 1)],
                      address=HOME, amounts=price(PAYABLE), now=NOW, pay_minutes=30)
    with uow() as tx:
        tx.orders.add(order)
        tx.commit()
    order_service.cancel_order(uow(), user_id=ALICE, order_id=order.id or 0, reason="不要了", now=NOW)
    wechat = FakeWechatPay(notice(order))
    for _ in range(3):
        order_service.handle_wechat_notify(uow(), wechat, headers={}, body=b"{}", now=NOW)
    assert [(r["out_refund_no"], r["refund_fen"]) for r in wechat.refunds] == [(f"LATE{order.order_no}", PAYABLE)] * 3
    for _ in range(2):  # WeChat Pay pays the refund back (its notify, replayed): late-payment-refunded once
        refunds.settle_refund(uow(), refund_no=f"LATE{order.order_no}", status=RefundStatus.SUCCESS,
                              actor="wechatpay", now=NOW)
    return order.order_no


def withdrawal_forfeiting_a_bonus(engine: Engine) -> tuple[str, str]:
    """Bob recharges 500 yuan (50 of bonus), spends 20 of the bonus, withdraws all 500: 50 of bonus forfeited, the 20
    spent kept from the transfer, which pays 480. (recharge_no, withdrawal_no)"""
    uow = functools.partial(SqlMemberUnitOfWork, engine, "member")
    made, _ = member_service.create_recharge(uow(), SimulatedPayment(), user_id=BOB, amount_fen=50_000,
                                             channel="wechat", idempotency_key="r1", now=NOW)
    member_service.credit_recharge(uow(), recharge_no=made.recharge_no, paid_fen=50_000, channel_txn_id="T1", now=NOW)
    member_service.pay_with_balance(uow(), user_id=BOB, order_no="O-BOB", amount_fen=2_000, now=NOW)
    withdrawal = member_service.request_withdrawal(uow(), user_id=BOB, amount_fen=50_000, idempotency_key="w1",
                                                   now=NOW)
    member_service.decide_withdrawal(uow(), SimulatedPayout(), withdrawal_id=withdrawal.id or 0, approve=True,
                                     note="ok", decided_by=9, now=NOW)
    return made.recharge_no, withdrawal.withdrawal_no


def relay(service_name: str, engine: Engine, settings: KafkaSettings) -> list[EventEnvelope]:
    """Publish the service's outbox through its relay; the envelopes it held."""
    publisher = OutboxRelay(service_name, engine, settings)
    try:
        while publisher.publish_pending():
            pass
    finally:
        publisher.close()
    with engine.connect() as conn:
        return [decode(row) for row in conn.execute(select(outbox.c.envelope).order_by(outbox.c.id)).scalars()]


def money(analytics: Callable[[], SqlAnalyticsUnitOfWork]) -> list[tuple[Any, ...]]:
    names = ("movement", "channel", "amount_fen", "user_id", "order_no", "out_trade_no", "refund_no", "recharge_no",
             "withdrawal_no", "requested_fen", "bonus_forfeited_fen", "reason")
    columns = [ledgers.MONEY_COLUMNS.index(name) for name in names]
    return sorted(tuple(row[i] for i in columns) for row in ledgers.money_rows(analytics(), DAY))


def test_late_payments_refunds_and_withdrawals_reach_the_money_ledger_once(
        engines: dict[str, Engine], analytics: Callable[[], SqlAnalyticsUnitOfWork],
        kafka_settings: KafkaSettings) -> None:
    order_no = late_payment_of_a_cancelled_order(engines["order"])
    recharge_no, withdrawal_no = withdrawal_forfeiting_a_bonus(engines["member"])
    published = relay("order", engines["order"], kafka_settings) + relay("member", engines["member"], kafka_settings)
    counted = [e for e in published if e.event_type in {"order-cancelled", "late-payment-received",
                                                        "late-payment-refunded", "member-recharged",
                                                        "member-withdrawn"}]
    consume(EventConsumer("analytics", analytics, kafka_settings, HANDLERS, batched=True),
            lambda: processed(engines["analytics"]) == len(counted))
    first = money(analytics)

    # Delivered again, and the late payment's refund re-published under a new event id by a replaying producer.
    again = [republished(e) for e in published if e.event_type == "late-payment-refunded"]
    send(kafka_settings, [*published, *again])
    consume(EventConsumer("analytics", analytics, kafka_settings, HANDLERS, batched=True),
            lambda: processed(engines["analytics"]) == len(counted) + len(again))

    assert sorted(e.event_type for e in published) == [
        "late-payment-received", "late-payment-refunded", "member-recharged", "member-withdrawn", "order-cancelled"]
    assert money(analytics) == first == sorted([
        ("late_payment", "wechat", PAYABLE, ALICE, order_no, order_no, None, None, None, None, None, "cancelled"),
        ("late_payment_refund", "wechat", -PAYABLE, ALICE, order_no, order_no, f"LATE{order_no}", None, None, None,
         None, None),
        ("recharge", "wechat", 50_000, BOB, None, None, None, recharge_no, None, None, None, None),
        ("withdrawal", "simulated", -48_000, BOB, None, None, None, None, withdrawal_no, 50_000, 5_000, None),
    ])
    figures = service.get_overview(analytics(), from_date=NOW.date().isoformat(), to_date=NOW.date().isoformat())
    day = figures.days[0].figures
    assert {name: day[name] for name in ("late_payments", "late_payment_fen", "late_refunds", "late_refund_fen",
                                         "gmv_fen", "refund_fen", "withdrawals", "withdrawal_fen", "recharge_fen")} == {
        "late_payments": 1, "late_payment_fen": PAYABLE, "late_refunds": 1, "late_refund_fen": PAYABLE,
        "gmv_fen": 0, "refund_fen": 0, "withdrawals": 1, "withdrawal_fen": 48_000, "recharge_fen": 50_000}
