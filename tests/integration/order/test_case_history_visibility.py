"""After-sales case history on the databases, through the real AfterSaleService: the shopper's RPCs answer every
step in their words or the shop's wording for them, never staff's notes or ids; staff's RPCs every row as stored;
and order migration 0012 sorts the steps recorded before it without changing any."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import text_format
from mall.order.v1 import after_sale_pb2, after_sale_pb2_grpc
from sqlalchemy import Engine, insert, select

from services.common import migrations
from services.common.config import ServiceSettings
from services.common.db import make_engine
from services.common.grpc_server import create_server, registration
from services.order import aftersales, db, refunds, service
from services.order.aftersales import SHOPPER_WORDS, AfterSaleSettings
from services.order.db import SqlOrderUnitOfWork, after_sale_steps, start_mappers
from services.order.domain import OrderLine
from services.order.grpc_api import AfterSaleServicer
from services.user.domain import User
from services.user.tokens import TokenIssuer
from tests.fakes import FakeMembers, FakeRefundPayments
from tests.fixtures.keys import JwtKeys
from tests.fixtures.postgres import drop_databases, migrations_dir, recreate_database, session_database_name
from tests.fixtures.statements import statements
from tests.integration.order.test_order_grpc import ALICE
from tests.integration.order.test_refunds import paid

pytestmark = pytest.mark.integration

STAFF = 9
# What staff type that is not for the shopper: decision notes, a reject reason, the receiving note.
APPROVED_BECAUSE = "老客户,内部备注:上次也退过"
DECLINED_BECAUSE = "疑似职业退货人,已拉黑"
RECEIVED_NOTE = "外包装破损,已拍照存档,扣5元?"
FOR_THE_SHOPPER = "商品已拆封使用,不支持仅退款"

Step = tuple[str, str, str, bool, str]


@dataclass
class CaseApi:
    stub: after_sale_pb2_grpc.AfterSaleServiceStub
    payments: FakeRefundPayments
    issuer: TokenIssuer

    def as_user(self, user_id: int, roles: str = "") -> list[tuple[str, str]]:
        user = User(phone=None, created_at=datetime.now(UTC), roles=roles, id=user_id)
        token = self.issuer.access_token(user, frozenset(filter(None, roles.split(","))), datetime.now(UTC))
        return [("authorization", f"Bearer {token}")]


@pytest.fixture
def api(pg_engine: Engine, jwt_keys: JwtKeys) -> Iterator[CaseApi]:
    """The AfterSaleService behind a real gRPC server on PostgreSQL, refunds through WeChat Pay (a fake)."""
    start_mappers()
    payments = FakeRefundPayments(status="ABNORMAL")
    servicer = AfterSaleServicer(functools.partial(SqlOrderUnitOfWork, pg_engine, "order"),
                                 aftersales.EngineRefunder(payments, FakeMembers()), AfterSaleSettings())
    settings = ServiceSettings.from_env("order", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                  "ORDER_GRPC_LISTEN": "127.0.0.1:0"})
    server, port = create_server(settings, [registration(after_sale_pb2, after_sale_pb2_grpc, "AfterSaleService",
                                                         servicer)])
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield CaseApi(after_sale_pb2_grpc.AfterSaleServiceStub(channel), payments,
                          TokenIssuer(jwt_keys.private_pem, access_ttl_seconds=900, refresh_ttl_seconds=86400))
    finally:
        server.stop(grace=None)


def stored(engine: Engine, case_id: int) -> list[Step]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(after_sale_steps.c.status, after_sale_steps.c.actor, after_sale_steps.c.reason,
                   after_sale_steps.c.shopper_visible, after_sale_steps.c.shopper_reason)
            .where(after_sale_steps.c.case_id == case_id).order_by(after_sale_steps.c.id)).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def steps(case: after_sale_pb2.AfterSale) -> list[Step]:
    return [(step.status, step.actor, step.reason, step.shopper_visible, step.shopper_reason) for step in case.history]


def test_a_shopper_never_reads_staff_notes_or_ids_in_their_cases_and_staff_read_every_stored_step(
        api: CaseApi, pg_engine: Engine, pg_uow: functools.partial[SqlOrderUnitOfWork]) -> None:
    order_id = paid(pg_uow, "CV-1", OrderLine(101, 10, "茶", "", 1000, 1), OrderLine(102, 11, "杯", "", 500, 1))
    service.ship_order(pg_uow(), order_id=order_id, carrier="SF", tracking_no="SF1", lines=None, actor="staff:7")
    tea, cup = (line.id for line in service.get_order(pg_uow(), user_id=None, order_id=order_id).lines)
    alice, desk = api.as_user(ALICE), api.as_user(STAFF, "customer_service")
    returned = api.stub.CreateAfterSale(after_sale_pb2.CreateAfterSaleRequest(
        order_id=order_id, type="return_refund", reason="坏了", lines=[after_sale_pb2.AfterSaleLine(line_id=tea)]),
        metadata=alice)
    declined = api.stub.CreateAfterSale(after_sale_pb2.CreateAfterSaleRequest(
        order_id=order_id, type="refund_only", reason="不想要了", lines=[after_sale_pb2.AfterSaleLine(line_id=cup)]),
        metadata=alice)

    api.stub.DecideAfterSale(after_sale_pb2.DecideAfterSaleRequest(id=returned.id, approve=True,
                                                                   reason=APPROVED_BECAUSE), metadata=desk)
    sent = api.stub.SubmitReturnShipment(after_sale_pb2.SubmitReturnShipmentRequest(
        id=returned.id, carrier="ZTO", tracking_no="R1"), metadata=alice)
    stuck = api.stub.ReceiveReturn(after_sale_pb2.ReceiveReturnRequest(id=returned.id, note=RECEIVED_NOTE),
                                   metadata=desk)  # WeChat Pay answers the refund ABNORMAL
    api.payments.status = "SUCCESS"  # completed at WeChat Pay by the merchant
    api.stub.RetryAfterSaleRefund(after_sale_pb2.GetAfterSaleRequest(id=returned.id), metadata=desk)
    api.stub.DecideAfterSale(after_sale_pb2.DecideAfterSaleRequest(
        id=declined.id, approve=False, reason=DECLINED_BECAUSE, shopper_reason=FOR_THE_SHOPPER), metadata=desk)

    mine = [api.stub.GetAfterSale(after_sale_pb2.GetAfterSaleRequest(id=case_id), metadata=alice)
            for case_id in (returned.id, declined.id)]
    listed = api.stub.ListAfterSales(after_sale_pb2.ListAfterSalesRequest(limit=10), metadata=alice).cases
    theirs = [api.stub.GetAfterSale(after_sale_pb2.GetAfterSaleRequest(id=case_id), metadata=desk)
              for case_id in (returned.id, declined.id)]
    found = api.stub.SearchAfterSales(after_sale_pb2.SearchAfterSalesRequest(order_no="CV-1", limit=10),
                                      metadata=desk).cases

    assert stuck.status == "REFUND_ABNORMAL" and mine[0].status == "REFUNDED"
    refund = f"refund:{mine[0].refund_no}"
    assert steps(mine[0]) == [
        ("REQUESTED", f"user:{ALICE}", "坏了", True, "坏了"),
        ("AWAITING_RETURN", "staff", SHOPPER_WORDS["approve_return"], True, SHOPPER_WORDS["approve_return"]),
        ("RETURN_SHIPPED", f"user:{ALICE}", "ZTO R1", True, "ZTO R1"),
        ("REFUNDING", "staff", "returned goods received", True, "returned goods received"),
        ("REFUND_ABNORMAL", refund, SHOPPER_WORDS["refund_abnormal"], True, SHOPPER_WORDS["refund_abnormal"]),
        ("REFUNDED", refund, "refunded", True, "refunded")]
    told = f"request declined: {FOR_THE_SHOPPER}"
    assert steps(mine[1]) == [("REQUESTED", f"user:{ALICE}", "不想要了", True, "不想要了"),
                              ("REJECTED", "staff", told, True, told)]
    shown = "".join(text_format.MessageToString(case, as_utf8=True) for case in [*mine, *listed, sent, declined])
    for staff_only in (APPROVED_BECAUSE, DECLINED_BECAUSE, RECEIVED_NOTE, f"staff:{STAFF}", "staff:", "close the refund"):
        assert staff_only not in shown
    assert sorted(steps(case) for case in listed) == sorted(steps(case) for case in mine)
    assert [steps(case) for case in theirs] == [stored(pg_engine, returned.id), stored(pg_engine, declined.id)]
    assert sorted(steps(case) for case in found) == sorted(steps(case) for case in theirs)
    assert [(actor, reason) for _, actor, reason, _, _ in steps(theirs[0])[1:5:2]] == [
        (f"staff:{STAFF}", APPROVED_BECAUSE), (f"staff:{STAFF}", RECEIVED_NOTE)]
    assert steps(theirs[1])[1] == ("REJECTED", f"staff:{STAFF}", DECLINED_BECAUSE, True, told)


# -- order migration 0012 -------------------------------------------------------------------------------------------

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
ABNORMAL_FOR_STAFF = aftersales.ON_REFUND[refunds.RefundStatus.ABNORMAL][1]
# Steps as releases before 0012 recorded them, per case: (status, actor, reason).
BEFORE_0012: dict[str, list[tuple[str, str, str]]] = {
    "returned": [("REQUESTED", "user:1", "坏了"), ("AWAITING_RETURN", "staff:9", APPROVED_BECAUSE),
                 ("RETURN_SHIPPED", "user:1", "ZTO R1"), ("REFUNDING", "staff:7", RECEIVED_NOTE),
                 ("REFUND_FAILED", "staff:7", "REFUND_REFUSED: the channel refused the refund"),
                 ("REFUNDING", "staff:8", "refund again"), ("REFUND_ABNORMAL", "refund:RF2", ABNORMAL_FOR_STAFF),
                 ("REFUNDING", "refund:RF2", "WeChat Pay is paying the refund again"),
                 ("REFUNDED", "refund:RF2", "refunded")],
    "declined": [("REQUESTED", "user:1", "不想要了"), ("REJECTED", "staff:9", DECLINED_BECAUSE)],
    "given_up": [("REQUESTED", "user:1", "少发了"), ("REFUNDING", "staff:9", "同意"),
                 ("REFUND_FAILED", "refund:RF3", "the refund did not go through; retry it"),
                 ("REJECTED", "staff:9", "线下转账了")],
    "withdrawn": [("REQUESTED", "user:1", "买错了"), ("WITHDRAWN", "user:1", "又想要了")],
    "expired": [("REQUESTED", "user:1", "不合适"), ("AWAITING_RETURN", "staff:9", "ok"),
                ("WITHDRAWN", "system", "the goods were not sent back within 7 days of approval")],
    "free": [("REQUESTED", "user:1", "坏了"), ("REFUNDING", "staff:9", "同意"),
             ("REFUNDED", "refund:RF4", refunds.NOTHING_PAID)],
}
# What the shopper reads of each step after it (every step is shown: each changed the case's status): the words
# the code writes now.
W = SHOPPER_WORDS
AFTER_0012: dict[str, list[str]] = {
    "returned": ["坏了", W["approve_return"], "ZTO R1", W["receive"], W["refund_failed"], W["retry"],
                 W["refund_abnormal"], W["refund_resumed"], W["refunded"]],
    "declined": ["不想要了", W["reject"]],
    "given_up": ["少发了", W["approve_refund"], W["refund_failed"], W["reject"]],
    "withdrawn": ["买错了", "又想要了"],
    "expired": ["不合适", W["approve_return"], "the goods were not sent back within 7 days of approval"],
    "free": ["坏了", W["approve_refund"], refunds.NOTHING_PAID],
}


@pytest.fixture(params=["postgresql", "sqlite"])
def database_at_0011(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An order database of its own at revision 0010 (before case steps said what the shopper sees)."""
    if request.param == "sqlite":
        url, name = f"sqlite:///{tmp_path / 'order.db'}", None
    else:
        name = session_database_name("it", "casebackfill")
        url = recreate_database(name)
    migrations.upgrade(url, migrations_dir("order"), "0011")
    yield url
    if name:
        drop_databases([name])


def add_cases_before_0012(engine: Engine) -> dict[str, int]:
    """The cases of BEFORE_0012 on one order, their steps interleaved (ids in turn across cases)."""
    ids: dict[str, int] = {}
    with engine.begin() as connection:
        order_id = connection.execute(insert(db.orders).values(
            order_no="20261201080000000000000000cv", user_id=1, status="SHIPPED", items_total_fen=3998,
            level_discount_fen=0, coupon_discount_fen=0, points_discount_fen=0, freight_fen=0, payable_fen=3998,
            coupon_id=0, points_used=0, note="", ship_name="张三", ship_phone="13800138000", ship_province="浙江省",
            ship_city="杭州市", ship_district="西湖区", ship_detail="文三路1号", pay_deadline=T0, pay_channel="wechat",
            out_trade_no="CV", created_at=T0, updated_at=T0)).inserted_primary_key[0]
        for n, name in enumerate(BEFORE_0012):
            ids[name] = connection.execute(insert(db.after_sales).values(
                case_no=f"AS-CV-{n}", order_id=order_id, order_no="CV", user_id=1, type="return_refund",
                status=BEFORE_0012[name][-1][0], reason=BEFORE_0012[name][0][2], images=[], refund_fen=1999,
                return_carrier="", return_tracking_no="", refund_no="", created_at=T0,
                updated_at=T0)).inserted_primary_key[0]
        for turn in range(max(len(found) for found in BEFORE_0012.values())):
            for name, found in BEFORE_0012.items():
                if turn < len(found):
                    status, actor, reason = found[turn]
                    connection.execute(insert(after_sale_steps).values(
                        case_id=ids[name], status=status, actor=actor, reason=reason,
                        at=T0 + timedelta(minutes=turn)))
    return ids


def test_migration_0012_shows_the_shopper_each_step_in_the_words_written_for_them_and_loses_nothing(
        database_at_0011: str) -> None:
    engine = make_engine(database_at_0011)
    try:
        ids = add_cases_before_0012(engine)

        migrations.upgrade(database_at_0011, migrations_dir("order"))

        for name, case_id in ids.items():
            assert stored(engine, case_id) == [(*step, True, told) for step, told in zip(BEFORE_0012[name],
                                                                                         AFTER_0012[name], strict=True)]
        start_mappers()
        with SqlOrderUnitOfWork(engine, "order") as uow:
            declined = uow.after_sales.get(ids["declined"])
            assert declined is not None
            assert [(step.status, step.actor, step.reason, step.at) for step in declined.shopper_history()] == [
                ("REQUESTED", "user:1", "不想要了", T0), ("REJECTED", "staff", "request declined", T0 + timedelta(minutes=1))]
            uow.commit()
    finally:
        engine.dispose()


def test_a_page_of_cases_names_its_goods_from_one_read_of_their_orders_lines_whatever_its_size(
        api: CaseApi, pg_engine: Engine, pg_uow: functools.partial[SqlOrderUnitOfWork]) -> None:
    alice, desk = api.as_user(ALICE), api.as_user(STAFF, "customer_service")

    def case_on_new_order(order_no: str) -> None:
        order_id = paid(pg_uow, order_no, OrderLine(101, 10, f"茶 {order_no}", "", 1000, 1))
        service.ship_order(pg_uow(), order_id=order_id, carrier="SF", tracking_no=order_no, lines=None, actor="staff:7")
        [line] = service.get_order(pg_uow(), user_id=None, order_id=order_id).lines
        api.stub.CreateAfterSale(after_sale_pb2.CreateAfterSaleRequest(
            order_id=order_id, type="refund_only", reason="坏了", lines=[after_sale_pb2.AfterSaleLine(line_id=line.id)]),
            metadata=alice)

    def page() -> tuple[list[str], list[str]]:
        with statements(pg_engine) as sent:
            cases = api.stub.SearchAfterSales(after_sale_pb2.SearchAfterSalesRequest(limit=10), metadata=desk).cases
        return sent, sorted(line.name for case in cases for line in case.lines)

    case_on_new_order("NP-1")
    one_case = page()
    case_on_new_order("NP-2")
    case_on_new_order("NP-3")
    three_cases = page()

    assert one_case[0] == three_cases[0]  # the same statements for a page of one case and of three
    assert three_cases[1] == ["茶 NP-1", "茶 NP-2", "茶 NP-3"]
