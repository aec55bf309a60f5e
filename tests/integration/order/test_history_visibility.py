"""Order history on the databases: the shopper's RPCs answer only the steps shown to them, staff's every row as
stored (nothing lost), and order migration 0010 sorts the steps recorded before it without changing any."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mall.order.v1 import order_pb2
from sqlalchemy import Engine, insert, select

from services.common import migrations
from services.common.db import make_engine
from services.order import db
from services.order.db import SqlOrderUnitOfWork, order_transitions, start_mappers
from tests.fixtures.postgres import drop_databases, migrations_dir, recreate_database, session_database_name
from tests.fixtures.simulator import RunningSimulator
from tests.integration.order.conftest import OrderServer
from tests.integration.order.test_order_grpc import ALICE
from tests.integration.order.test_refunds import STAFF, cancelled_and_approved, refund_notify

pytestmark = pytest.mark.integration

CLOSED_BECAUSE = "卡已注销,款项退回商户后线下转账"


def stored(engine: Engine, order_id: int) -> list[tuple[str, str, str, bool, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(order_transitions.c.status, order_transitions.c.actor, order_transitions.c.reason,
                   order_transitions.c.shopper_visible, order_transitions.c.shopper_reason)
            .where(order_transitions.c.order_id == order_id).order_by(order_transitions.c.id)).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def steps(order: order_pb2.Order) -> list[tuple[str, str, str, bool, str]]:
    return [(step.status, step.actor, step.reason, step.shopper_visible, step.shopper_reason) for step in order.history]


def test_the_shopper_reads_their_steps_and_staff_read_every_stored_step_with_its_actor(
        server: OrderServer, simulator: RunningSimulator) -> None:
    order, refund_no = cancelled_and_approved(server, simulator)
    server.stub.HandleWechatRefundNotify(refund_notify(simulator, refund_no, "ABNORMAL"))
    simulator.client.wechatpay_refund_complete(refund_no, "CLOSED")  # given up at WeChat Pay; its notify is lost
    server.stub.CloseRefund(order_pb2.CloseRefundRequest(refund_no=refund_no, reason=CLOSED_BECAUSE),
                            metadata=server.as_user(STAFF, "admin"))
    alice, desk = server.as_user(ALICE), server.as_user(STAFF, "customer_service")

    mine = server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id), metadata=alice)
    [listed] = server.stub.ListOrders(order_pb2.ListOrdersRequest(), metadata=alice).orders
    theirs = server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id), metadata=desk)
    [found] = server.stub.SearchOrders(order_pb2.SearchOrdersRequest(order_no=order.order_no), metadata=desk).orders

    assert steps(mine) == steps(listed) == [
        ("PENDING_PAYMENT", f"user:{ALICE}", "placed", True, "placed"), ("PAID", "wechatpay", "wechat", True, "wechat"),
        ("CANCEL_REQUESTED", f"user:{ALICE}", "买错了", True, "买错了"),
        ("REFUNDING", "staff", "cancellation approved", True, "cancellation approved")]
    everything = stored(server.engine, order.id)
    assert steps(theirs) == steps(found) == everything
    assert [(actor, reason, visible) for _, actor, reason, visible, _ in everything[3:]] == [
        (f"staff:{STAFF}", "同意", True),
        ("wechatpay", f"refund {refund_no} ABNORMAL at WeChat Pay: {order.amounts.payable_fen} fen held until it is "
                      "completed there or closed by staff", False),
        (f"staff:{STAFF}", f"refund {refund_no} closed ({order.amounts.payable_fen} fen freed): {CLOSED_BECAUSE}",
         False)]


# -- order migration 0010 -------------------------------------------------------------------------------------------

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
# Steps as releases before 0010 recorded them, per order: (status, actor, reason).
BEFORE_0010: dict[str, list[tuple[str, str, str]]] = {
    "refunded": [("PENDING_PAYMENT", "user:1", "placed"), ("PAID", "wechatpay", "wechat"),
                 ("CANCEL_REQUESTED", "user:1", "买错了"), ("REFUNDING", "staff:9", "同意,客户来电"),
                 ("REFUNDING", "wechatpay", "refund RF1 ABNORMAL at WeChat Pay: 3998 fen held until it is completed "
                                            "there or closed by staff"),
                 ("REFUNDING", "staff:2", "refund RF1 closed (3998 fen freed): 卡已注销"),
                 ("REFUNDED", "wechatpay", "refund RF2: 3998 fen")],
    "declined": [("PENDING_PAYMENT", "user:1", "placed"), ("PAID", "user:1", "balance"),
                 ("CANCEL_REQUESTED", "user:1", ""), ("PAID", "staff:9", "已打包,无法取消"),
                 ("PAID", "staff:7", "partly shipped: SF A1"), ("SHIPPED", "staff:7", "SF A2"),
                 ("COMPLETED", "system:auto-confirm", "confirmed automatically 10 days after shipping")],
    "late": [("PENDING_PAYMENT", "user:1", "placed"), ("CANCELLED", "system:timeout", "payment deadline passed"),
             ("CANCELLED", "wechatpay", "paid after cancellation, refunded (LATE1, 3998 fen)"),
             ("CANCELLED", "reconciliation", "paid from the wallet too late, refunded (LATEW1, 3998 fen)")],
}
# What the shopper is shown of each step after it: (shopper_visible, shopper_reason).
AFTER_0010: dict[str, list[tuple[bool, str]]] = {
    "refunded": [(True, "placed"), (True, "wechat"), (True, "买错了"), (True, "cancellation approved"), (False, ""),
                 (False, ""), (True, "refunded in full")],
    "declined": [(True, "placed"), (True, "balance"), (True, ""), (True, "cancellation declined"), (False, ""),
                 (True, "SF A2"), (True, "confirmed automatically 10 days after shipping")],
    "late": [(True, "placed"), (True, "payment deadline passed"), (False, ""), (False, "")],
}


@pytest.fixture(params=["postgresql", "sqlite"])
def database_at_0009(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An order database of its own at revision 0009 (before steps said what the shopper sees)."""
    if request.param == "sqlite":
        url, name = f"sqlite:///{tmp_path / 'order.db'}", None
    else:
        name = session_database_name("it", "historybackfill")
        url = recreate_database(name)
    migrations.upgrade(url, migrations_dir("order"), "0009")
    yield url
    if name:
        drop_databases([name])


def add_orders_before_0010(engine: Engine,
                           before: dict[str, list[tuple[str, str, str]]] = BEFORE_0010) -> dict[str, int]:
    """The orders of `before` (BEFORE_0010), their steps interleaved (ids in turn across orders, as concurrent orders
    get), stored as releases before 0010 stored them."""
    ids: dict[str, int] = {}
    with engine.begin() as connection:
        for n, name in enumerate(before, start=1):
            ids[name] = connection.execute(insert(db.orders).values(
                order_no=f"2026120108000000000000{n:08x}", user_id=1, status=before[name][-1][0],
                items_total_fen=3998, level_discount_fen=0, coupon_discount_fen=0, points_discount_fen=0,
                freight_fen=0, payable_fen=3998, coupon_id=0, points_used=0, note="", ship_name="张三",
                ship_phone="13800138000", ship_province="浙江省", ship_city="杭州市", ship_district="西湖区",
                ship_detail="文三路1号", pay_deadline=T0, pay_channel="", out_trade_no="", created_at=T0,
                updated_at=T0)).inserted_primary_key[0]
        for turn in range(max(len(found) for found in before.values())):
            for name, found in before.items():
                if turn < len(found):
                    status, actor, reason = found[turn]
                    connection.execute(insert(order_transitions).values(
                        order_id=ids[name], status=status, actor=actor, reason=reason,
                        at=T0 + timedelta(minutes=turn)))
    return ids


def test_migration_0009_shows_the_shopper_only_status_changes_with_safe_reasons_and_loses_nothing(
        database_at_0009: str) -> None:
    engine = make_engine(database_at_0009)
    try:
        ids = add_orders_before_0010(engine)

        migrations.upgrade(database_at_0009, migrations_dir("order"))

        for name, order_id in ids.items():
            assert stored(engine, order_id) == [(*step, *seen) for step, seen in zip(BEFORE_0010[name],
                                                                                     AFTER_0010[name], strict=True)]
        start_mappers()
        with SqlOrderUnitOfWork(engine, "order") as uow:
            refunded = uow.orders.get(ids["refunded"])
            assert refunded is not None
            assert [(step.status, step.actor, step.reason, step.at) for step in refunded.shopper_history()] == [
                ("PENDING_PAYMENT", "user:1", "placed", T0), ("PAID", "wechatpay", "wechat", T0 + timedelta(minutes=1)),
                ("CANCEL_REQUESTED", "user:1", "买错了", T0 + timedelta(minutes=2)),
                ("REFUNDING", "staff", "cancellation approved", T0 + timedelta(minutes=3)),
                ("REFUNDED", "wechatpay", "refunded in full", T0 + timedelta(minutes=6))]
            uow.commit()
    finally:
        engine.dispose()
