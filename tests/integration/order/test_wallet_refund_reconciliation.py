"""The refund job has no caller: it retries wallet refunds as the order service itself, over real gRPC to the
member service (both on PostgreSQL), and the wallet is credited exactly once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from mall.member.v1 import member_pb2, member_pb2_grpc
from sqlalchemy import Engine, func, select

from services.common.auth import caller_var
from services.common.outbox import outbox
from services.member import service as member_service
from services.member.db import SqlMemberUnitOfWork
from services.order import refunds, service
from services.order.db import SqlOrderUnitOfWork
from services.order.domain import OrderLine, new_order, new_order_no, price
from services.order.neighbours import GrpcMembers
from tests.fakes import HOME
from tests.fixtures.keys import JwtKeys, as_service
from tests.integration.member.test_member_grpc import fund, wallet

pytestmark = pytest.mark.integration

ALICE = 101
PAID_FEN = 3_000
LATER = timedelta(minutes=10)  # past ORDER_REFUND_SETTLE_SECONDS' default


def balance_paid_order(uow: Callable[[], SqlOrderUnitOfWork], member_uow: Callable[[], SqlMemberUnitOfWork]) -> int:
    """Alice pays PAID_FEN of her 10,000 fen wallet for an order: 7,000 fen are left."""
    now = datetime.now(UTC)
    order = new_order(user_id=ALICE, order_no=new_order_no(now), lines=[OrderLine(101, 10, "茶", "", PAID_FEN, 1)],
                      address=HOME, amounts=price(PAID_FEN), now=now, pay_minutes=30)
    with uow() as tx:
        tx.orders.add(order)
        tx.commit()
    fund(member_uow, ALICE, 10_000)
    member_service.pay_with_balance(member_uow(), user_id=ALICE, order_no=order.order_no, amount_fen=PAID_FEN, now=now)
    service.mark_paid(uow(), order_no=order.order_no, channel="balance", out_trade_no=order.order_no,
                      paid_fen=PAID_FEN, actor="member", now=now)
    return order.id or 0


def pending_wallet_refund(uow: Callable[[], SqlOrderUnitOfWork], members_down: GrpcMembers, order_id: int) -> str:
    """Staff refund the whole order while the member service is down: the refund waits, PENDING."""
    refund = refunds.start_refund(uow(), None, members_down, order_id=order_id, items=[], reason="取消",
                                  actor="staff:9", source="cancel")
    assert refund.status == "PENDING"
    return refund.refund_no


def refund_state(uow: Callable[[], SqlOrderUnitOfWork], order_id: int, refund_no: str) -> tuple[str, int]:
    with uow() as tx:
        refund, order = tx.refunds.get(refund_no), tx.orders.get(order_id)
        assert refund is not None and order is not None
        return refund.status, order.refunded_fen


def refunded_events(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(outbox)
                            .where(outbox.c.event_type == "order-refunded")).scalar_one()


def test_the_job_refunds_a_pending_wallet_refund_as_the_order_service_once(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine, member_uow: Callable[[], SqlMemberUnitOfWork],
        members: GrpcMembers, members_down: GrpcMembers) -> None:
    order_id = balance_paid_order(pg_uow, member_uow)
    refund_no = pending_wallet_refund(pg_uow, members_down, order_id)
    assert (caller_var.get(), wallet(member_uow, ALICE)) == (None, (7_000, 0))  # a job: nobody is calling

    later = datetime.now(UTC) + LATER
    ended = [refunds.reconcile_refunds(pg_uow, None, members, now=later) for _ in range(2)]

    assert (ended, refund_state(pg_uow, order_id, refund_no), wallet(member_uow, ALICE),
            refunded_events(pg_engine)) == ([1, 0], ("SUCCESS", PAID_FEN), (10_000, 0), 1)


def test_a_wallet_credit_whose_answer_was_lost_is_not_paid_twice_by_the_job(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine, member_uow: Callable[[], SqlMemberUnitOfWork],
        member_target: str, jwt_keys: JwtKeys, members: GrpcMembers, members_down: GrpcMembers) -> None:
    order_id = balance_paid_order(pg_uow, member_uow)
    refund_no = pending_wallet_refund(pg_uow, members_down, order_id)
    with pg_uow() as tx:
        order_no = tx.orders.get(order_id).order_no  # type: ignore[union-attr]
    with grpc.insecure_channel(member_target) as channel:  # the member service credited it; its answer was lost
        member_pb2_grpc.MemberServiceStub(channel).RefundToBalance(member_pb2.RefundToBalanceRequest(
            refund_no=refund_no, order_no=order_no, user_id=ALICE, amount_fen=PAID_FEN),
            metadata=as_service(jwt_keys, "order"), timeout=10)

    ended = [refunds.reconcile_refunds(pg_uow, None, members, now=datetime.now(UTC) + LATER) for _ in range(2)]

    assert (ended, refund_state(pg_uow, order_id, refund_no), wallet(member_uow, ALICE),
            refunded_events(pg_engine)) == ([1, 0], ("SUCCESS", PAID_FEN), (10_000, 0), 1)


@pytest.mark.parametrize("who", ["product", "user"])
def test_refund_to_balance_refuses_other_services(member_target: str, member_uow: Callable[[], SqlMemberUnitOfWork],
                                                   jwt_keys: JwtKeys, who: str) -> None:
    with grpc.insecure_channel(member_target) as channel, pytest.raises(grpc.RpcError) as refused:
        member_pb2_grpc.MemberServiceStub(channel).RefundToBalance(member_pb2.RefundToBalanceRequest(
            refund_no="RF1", order_no=new_order_no(datetime.now(UTC)), user_id=ALICE, amount_fen=PAID_FEN),
            metadata=as_service(jwt_keys, who), timeout=10)

    assert (refused.value.code(), wallet(member_uow, ALICE)) == (grpc.StatusCode.PERMISSION_DENIED, (0, 0))
