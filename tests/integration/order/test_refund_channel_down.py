"""Staff refund actions while WeChat Pay does not answer, through the gRPC services the admin routes call: a clear
503 PAYMENT_CHANNEL_UNAVAILABLE (the gateway answers it as is), and not a row of the order service's database
changed."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from mall.order.v1 import after_sale_pb2, after_sale_pb2_grpc, order_pb2, order_pb2_grpc
from sqlalchemy import Engine, Table, select

from services.common.config import ServiceSettings
from services.common.devbroker import free_port
from services.common.grpc_server import create_server, registration
from services.common.outbox import outbox
from services.common.wechatpay import WechatPay
from services.order import aftersales, db, refunds, service
from services.order.aftersales import AfterSaleSettings, CaseRequest
from services.order.db import SqlOrderUnitOfWork
from services.order.domain import OrderLine
from services.order.grpc_api import AfterSaleServicer, OrderServicer
from services.order.refunds import WechatRefunds
from services.order.service import OrderSettings
from services.user.domain import User
from services.user.tokens import TokenIssuer
from tests.fakes import FakeCatalog, FakeMembers, FakeRefundPayments, FakeStock, FakeUsers
from tests.fixtures.keys import JwtKeys
from tests.fixtures.simulator import RunningSimulator
from tests.integration.order.test_order_grpc import ALICE, failure
from tests.integration.order.test_refunds import paid

pytestmark = pytest.mark.integration

STAFF = 9
UNAVAILABLE = (grpc.StatusCode.UNAVAILABLE, "PAYMENT_CHANNEL_UNAVAILABLE")
TABLES: list[Table] = [db.orders, db.order_lines, db.order_transitions, db.refunds, db.refund_lines, db.after_sales,
                       db.after_sale_lines, db.after_sale_steps, outbox]


@dataclass
class StaffApi:
    """The order service's two gRPC services as the gateway's admin routes call them, WeChat Pay unreachable."""

    orders: order_pb2_grpc.OrderServiceStub
    after_sales: after_sale_pb2_grpc.AfterSaleServiceStub
    issuer: TokenIssuer

    def staff(self, roles: str) -> list[tuple[str, str]]:
        user = User(phone=None, created_at=datetime.now(UTC), roles=roles, id=STAFF)
        token = self.issuer.access_token(user, frozenset(roles.split(",")), datetime.now(UTC))
        return [("authorization", f"Bearer {token}")]


@pytest.fixture
def api(pg_engine: Engine, jwt_keys: JwtKeys, simulator: RunningSimulator) -> Iterator[StaffApi]:
    db.start_mappers()
    uow = functools.partial(SqlOrderUnitOfWork, pg_engine, "order")
    # The dev merchant account, at an address where nothing listens: every call fails to connect.
    wechat = WechatPay(replace(simulator.wechatpay_settings(), api_base=f"http://127.0.0.1:{free_port()}"))
    payments = WechatRefunds(wechat, "http://127.0.0.1:9/unreachable")
    members = FakeMembers()
    catalog = FakeCatalog()
    orders = OrderServicer(uow, catalog, FakeStock(catalog), members, FakeUsers(), OrderSettings(), wechat, payments)
    cases = AfterSaleServicer(uow, aftersales.EngineRefunder(payments, members), AfterSaleSettings())
    settings = ServiceSettings.from_env("order", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                  "ORDER_GRPC_LISTEN": "127.0.0.1:0"})
    server, port = create_server(settings, [
        registration(order_pb2, order_pb2_grpc, "OrderService", orders),
        registration(after_sale_pb2, after_sale_pb2_grpc, "AfterSaleService", cases)])
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield StaffApi(order_pb2_grpc.OrderServiceStub(channel), after_sale_pb2_grpc.AfterSaleServiceStub(channel),
                           TokenIssuer(jwt_keys.private_pem, access_ttl_seconds=900, refresh_ttl_seconds=86400))
    finally:
        server.stop(grace=None)


def snapshot(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the tables a refund, its order or its case could change."""
    with engine.connect() as connection:
        return {table.name: [tuple(row) for row in connection.execute(select(table).order_by(*table.primary_key))]
                for table in TABLES}


ABNORMAL_AT_WECHAT_PAY = FakeRefundPayments(status="ABNORMAL")  # how the refunds below were answered when sent


def abnormal_case(uow: Callable[[], SqlOrderUnitOfWork]) -> tuple[int, str]:
    """A shipped WeChat-paid order's refund-only case, approved, whose refund WeChat Pay answered ABNORMAL."""
    order_id = paid(uow, "R-DOWN-AS", OrderLine(101, 10, "茶", "", 1000, 2))
    service.ship_order(uow(), order_id=order_id, carrier="SF", tracking_no="SF1", lines=None, actor="staff:7")
    line_id = service.get_order(uow(), user_id=None, order_id=order_id).lines[0].id or 0
    case = aftersales.open_case(uow(), AfterSaleSettings(), user_id=ALICE, request=CaseRequest(
        order_id=order_id, type="refund_only", lines={line_id: 1}, reason="坏了"))
    decided = aftersales.decide(uow, aftersales.EngineRefunder(ABNORMAL_AT_WECHAT_PAY, FakeMembers()),
                                case_id=case.id or 0, approve=True, reason="同意", actor="staff:8")
    assert (decided.status, decided.refund_fen) == ("REFUND_ABNORMAL", 1000)
    return case.id or 0, decided.refund_no


def abnormal_cancellation(uow: Callable[[], SqlOrderUnitOfWork]) -> tuple[int, str]:
    """A WeChat-paid order whose cancellation was approved, its refund answered ABNORMAL: REFUNDING."""
    order_id = paid(uow, "R-DOWN-CANCEL", OrderLine(101, 10, "茶", "", 1000, 2))
    service.cancel_order(uow(), user_id=ALICE, order_id=order_id, reason="买错了")
    order = refunds.review_cancellation(uow(), ABNORMAL_AT_WECHAT_PAY, FakeMembers(), order_id=order_id, approve=True,
                                        reason="同意", actor="staff:8")
    with uow() as tx:
        [refund] = tx.refunds.for_order(order_id)
        tx.commit()
    assert (order.status, order.refunded_fen, refund.status) == ("REFUNDING", 2000, "ABNORMAL")
    return order_id, refund.refund_no


def test_retrying_an_abnormal_after_sales_refund_while_wechat_pay_is_down_is_a_503_and_changes_nothing(
        api: StaffApi, pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine) -> None:
    case_id, _ = abnormal_case(pg_uow)
    before = snapshot(pg_engine)

    retry = after_sale_pb2.GetAfterSaleRequest(id=case_id)
    assert failure(lambda: api.after_sales.RetryAfterSaleRefund(retry, metadata=api.staff("customer_service"))
                   ) == UNAVAILABLE

    assert snapshot(pg_engine) == before


def test_approving_an_abnormal_cancellation_again_while_wechat_pay_is_down_is_a_503_and_changes_nothing(
        api: StaffApi, pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine) -> None:
    order_id, _ = abnormal_cancellation(pg_uow)
    before = snapshot(pg_engine)

    again = order_pb2.ReviewCancellationRequest(id=order_id, approve=True, reason="再试")
    assert failure(lambda: api.orders.ReviewCancellation(again, metadata=api.staff("customer_service"))) == UNAVAILABLE

    assert snapshot(pg_engine) == before


def test_closing_an_abnormal_refund_while_wechat_pay_is_down_is_a_503_and_changes_nothing(
        api: StaffApi, pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine) -> None:
    _, refund_no = abnormal_cancellation(pg_uow)
    before = snapshot(pg_engine)

    close = order_pb2.CloseRefundRequest(refund_no=refund_no, reason="卡已注销")
    assert failure(lambda: api.orders.CloseRefund(close, metadata=api.staff("admin"))) == UNAVAILABLE

    assert snapshot(pg_engine) == before


def test_the_fallback_job_leaves_a_pending_refund_as_it_was_while_wechat_pay_is_down(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine, simulator: RunningSimulator) -> None:
    order_id = paid(pg_uow, "R-DOWN-JOB", OrderLine(101, 10, "茶", "", 1000, 1))
    refunds.start_refund(pg_uow(), FakeRefundPayments(), FakeMembers(), order_id=order_id, items=[], reason="退款",
                         actor="staff:8", source="cancel")
    before = snapshot(pg_engine)
    down = WechatRefunds(WechatPay(replace(simulator.wechatpay_settings(), api_base=f"http://127.0.0.1:{free_port()}")),
                         "http://127.0.0.1:9/unreachable")

    assert refunds.reconcile_refunds(pg_uow, down, FakeMembers(), now=datetime.now(UTC) + timedelta(hours=1)) == 0

    assert snapshot(pg_engine) == before
