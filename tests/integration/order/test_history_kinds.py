"""Order history step kinds on the databases: each step is stored with its kind and the order's RPCs answer it (the
shopper's and staff's alike), and order migration 0026 gives every step recorded before it its kind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mall.order.v1 import order_pb2
from sqlalchemy import Engine, select

from services.common import migrations
from services.common.db import make_engine
from services.order.db import order_transitions
from tests.fixtures.postgres import drop_databases, migrations_dir, recreate_database, session_database_name
from tests.fixtures.simulator import RunningSimulator
from tests.integration.order.conftest import OrderServer
from tests.integration.order.test_history_visibility import BEFORE_0010, add_orders_before_0010
from tests.integration.order.test_order_grpc import ALICE
from tests.integration.order.test_refunds import STAFF, cancelled_and_approved, refund_notify

pytestmark = pytest.mark.integration


def stored_kinds(engine: Engine, order_id: int) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(select(order_transitions.c.kind).where(order_transitions.c.order_id == order_id)
                                       .order_by(order_transitions.c.id)).scalars())


def test_a_refunded_cancellation_is_stored_and_answered_with_its_kinds(server: OrderServer,
                                                                       simulator: RunningSimulator) -> None:
    order, refund_no = cancelled_and_approved(server, simulator)
    server.stub.HandleWechatRefundNotify(refund_notify(simulator, refund_no))

    mine = server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id), metadata=server.as_user(ALICE))
    theirs = server.stub.GetOrder(order_pb2.GetOrderRequest(id=order.id),
                                  metadata=server.as_user(STAFF, "customer_service"))

    kinds = ["placed", "paid", "cancel_requested", "cancel_approved", "refunded_in_full"]
    assert [step.kind for step in mine.history] == [step.kind for step in theirs.history] == kinds
    assert stored_kinds(server.engine, order.id) == kinds


# -- order migration 0026 -------------------------------------------------------------------------------------------

# Steps as releases before 0026 recorded them (status, actor, reason), besides BEFORE_0010's.
BEFORE_0026: dict[str, list[tuple[str, str, str]]] = {
    **BEFORE_0010,
    "received": [("PENDING_PAYMENT", "user:1", "placed"), ("PAID", "wechatpay", "wechat"),
                 ("PAID", "staff:7", "partly shipped: 顺丰 SF1"),
                 ("SHIPPED", "staff:7", "unshipped units cancelled (line 2 x1): 缺货"),
                 ("SHIPPED", "staff:7", "refund RF3 of the cancelled unshipped units was closed: nothing owed"),
                 ("COMPLETED", "user:1", "receipt confirmed"), ("CLOSED", "system", "")],
    "mine": [("PENDING_PAYMENT", "user:1", "placed"), ("CANCELLED", "user:1", "拍错了")],
    "too_late": [("PENDING_PAYMENT", "user:1", "placed"),
                 ("CANCELLED", "system:timeout", "paid too late: its stock may be on sale again"),
                 ("CANCELLED", "wechatpay", "paid again with WeChat Pay, refunded (LATE2, 3998 fen)")],
    "reviewed": [("PENDING_PAYMENT", "user:1", "placed"), ("PAID", "user:1", "balance"),
                 ("PAID", "reconciliation", "wallet charge of 3998 fen by user 2 cannot pay this order (other "
                                            "user): left for staff"),
                 ("PAID", "staff:1", "wallet charge of 3998 fen by user 2 credited back (W1): 核实"),
                 ("PAID", "refund:RF9", "after-sales case AS1 was refunded by RF9 after its close and by RF10 too"),
                 ("SHIPPED", "staff:7", "SF A3"),
                 ("COMPLETED", "system:auto-confirm", "confirmed automatically 10 days after shipping")],
}
AFTER_0026: dict[str, list[str]] = {
    "refunded": ["placed", "paid", "cancel_requested", "cancel_approved", "refund_note", "refund_note",
                 "refunded_in_full"],
    "declined": ["placed", "paid", "cancel_requested", "cancel_rejected", "partly_shipped", "shipped",
                 "auto_completed"],
    "late": ["placed", "cancelled_unpaid_timeout", "payment_note", "payment_note"],
    "received": ["placed", "paid", "partly_shipped", "unshipped_cancelled", "refund_note", "received", "closed"],
    "mine": ["placed", "cancelled_by_shopper"],
    "too_late": ["placed", "cancelled_paid_too_late", "payment_note"],
    "reviewed": ["placed", "paid", "payment_note", "payment_note", "refund_note", "shipped", "auto_completed"],
}


@pytest.fixture(params=["postgresql", "sqlite"])
def database_at_0025(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An order database of its own at revision 0025 (before steps said their kind)."""
    if request.param == "sqlite":
        url, name = f"sqlite:///{tmp_path / 'order.db'}", None
    else:
        name = session_database_name("it", "historykinds")
        url = recreate_database(name)
    migrations.upgrade(url, migrations_dir("order"), "0025")
    yield url
    if name:
        drop_databases([name])


def test_migration_0026_gives_every_step_recorded_before_its_kind_and_changes_no_reason(
        database_at_0025: str) -> None:
    engine = make_engine(database_at_0025)
    try:
        ids = add_orders_before_0010(engine, BEFORE_0026)

        migrations.upgrade(database_at_0025, migrations_dir("order"))

        assert {name: stored_kinds(engine, order_id) for name, order_id in ids.items()} == AFTER_0026
        with engine.connect() as connection:
            reasons = connection.execute(select(order_transitions.c.order_id, order_transitions.c.reason)
                                         .order_by(order_transitions.c.id)).all()
        by_order = {order_id: [reason for found, reason in reasons if found == order_id] for order_id in ids.values()}
        assert by_order == {ids[name]: [reason for _, _, reason in steps] for name, steps in BEFORE_0026.items()}
    finally:
        engine.dispose()
