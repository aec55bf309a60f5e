"""Wallet charges that cannot pay their order, and payments learned of after the order's stock hold, on PostgreSQL
over real gRPC to the member service.

A charge from another user's wallet is left for staff once (also when two replicas find it at once) and leaves the
reconciliation's oldest-first batch, so newer lost answers are still resolved; staff credit it back to the wallet
it came from once, also when two of them do it at once. A wallet answer learned of only when the order's stock may
be on sale again cancels the order and credits the charge back, once, instead of paying it. The gauges' counts."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from mall.order.v1 import order_pb2
from sqlalchemy import Engine

from services.common.auth import Caller, caller_var
from services.member.db import SqlMemberUnitOfWork
from services.order import service, wallet_reviews
from services.order.db import SqlOrderUnitOfWork
from services.order.domain import PAYABLE_WITHIN, OrderLine, new_order, new_order_no, price
from services.order.neighbours import GrpcMembers
from services.order.ports import WalletCharge
from services.user.domain import User
from services.user.tokens import TokenIssuer
from tests.fakes import HOME
from tests.fixtures.keys import JwtKeys
from tests.integration.member.test_member_grpc import fund, wallet
from tests.integration.order.conftest import OrderServer
from tests.integration.order.test_wallet_payment_reconciliation import (
    ALICE,
    LOST,
    PAYABLE,
    SETTLED,
    WALLET,
    AnswerLost,
    order_no_of,
    order_state,
    pay_unanswered,
    published,
    unpaid_order,
)

pytestmark = pytest.mark.integration

BOB = 202


def token_of(jwt_keys: JwtKeys, user_id: int) -> str:
    user = User(phone="13800000001", created_at=datetime.now(UTC), id=user_id)
    issuer = TokenIssuer(jwt_keys.private_pem, access_ttl_seconds=300, refresh_ttl_seconds=600)
    return issuer.access_token(user, user.role_set, datetime.now(UTC))


class BobsWalletPays(GrpcMembers):
    """Alice's wallet payment reaches the member service carrying Bob's token (a member client that mixed up its
    callers): Bob's wallet is charged for Alice's order, and the answer is lost."""

    def __init__(self, members: GrpcMembers, bobs_token: str) -> None:
        super().__init__(members.clients)
        self.bobs_token = bobs_token

    def pay_with_balance(self, order_no: str, amount_fen: int) -> None:
        token = caller_var.set(Caller(user_id=BOB, roles=frozenset(), token_id="b", token=self.bobs_token))
        try:
            super().pay_with_balance(order_no, amount_fen)
        finally:
            caller_var.reset(token)
        raise LOST


@pytest.fixture
def alice(jwt_keys: JwtKeys) -> Iterator[None]:
    token = caller_var.set(Caller(user_id=ALICE, roles=frozenset(), token_id="t", token=token_of(jwt_keys, ALICE)))
    yield
    caller_var.reset(token)


@pytest.fixture
def answer_lost(members: GrpcMembers) -> AnswerLost:
    return AnswerLost(members.clients)


@pytest.fixture
def bobs_wallet(members: GrpcMembers, member_uow: Callable[[], SqlMemberUnitOfWork],
                jwt_keys: JwtKeys) -> BobsWalletPays:
    fund(member_uow, BOB, WALLET)
    return BobsWalletPays(members, token_of(jwt_keys, BOB))


def charged_to_bob(uow: Callable[[], SqlOrderUnitOfWork], member_uow: Callable[[], SqlMemberUnitOfWork],
                   bobs_wallet: BobsWalletPays, now: datetime) -> int:
    order_id = unpaid_order(uow, member_uow, now)
    pay_unanswered(uow, bobs_wallet, order_id, now)
    return order_id


def reviews_of(engine: Engine) -> list[tuple[str, int, int, str, str]]:
    with SqlOrderUnitOfWork(engine, "order") as tx:
        found, _ = tx.wallet_reviews.search(status="", offset=0, limit=100)
        return [(review.order_no, review.user_id, review.amount_fen, review.problem, review.status)
                for review in found]


def steps_by(uow: Callable[[], SqlOrderUnitOfWork], order_id: int, actor_prefix: str) -> list[tuple[str, str]]:
    with uow() as tx:
        order = tx.orders.get(order_id)
        assert order is not None
        return [(step.actor, step.reason) for step in order.history if step.actor.startswith(actor_prefix)]


def test_charges_of_another_wallet_leave_the_batch_so_a_newer_lost_answer_is_resolved(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine, member_uow: Callable[[], SqlMemberUnitOfWork],
        alice: None, bobs_wallet: BobsWalletPays, answer_lost: AnswerLost, members: GrpcMembers) -> None:
    now = datetime.now(UTC)
    stuck = [charged_to_bob(pg_uow, member_uow, bobs_wallet, now + timedelta(seconds=n)) for n in range(2)]
    mine = unpaid_order(pg_uow, member_uow, now)
    pay_unanswered(pg_uow, answer_lost, mine, now + timedelta(seconds=2))  # the newest attempt
    caller_var.set(None)
    later = now + timedelta(minutes=1)

    rounds = [service.reconcile_wallet_payments(pg_uow, members, now=later, batch=2) for _ in range(2)]

    assert (rounds, order_state(pg_uow, mine)) == ([2, 1], ("PAID", "balance", False))
    assert [order_state(pg_uow, order_id) for order_id in stuck] == [("PENDING_PAYMENT", "", False)] * 2
    assert reviews_of(pg_engine) == [(order_no_of(pg_uow, order_id), BOB, PAYABLE, "OTHER_USERS_WALLET", "OPEN")
                                     for order_id in stuck]
    assert steps_by(pg_uow, stuck[0], "reconciliation") == [(
        "reconciliation", f"wallet charge of {PAYABLE} fen by user {BOB} cannot pay this order (OTHER_USERS_WALLET): "
                          "left for staff")]
    assert (wallet(member_uow, BOB), published(pg_engine, "order-paid")) == ((WALLET - 2 * PAYABLE, 0), 1)
    assert service.payment_backlog(pg_uow(), now=later).wallet_charges_for_staff == 2


def test_two_replicas_finding_the_same_foreign_charge_at_once_leave_it_for_staff_once(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine, member_uow: Callable[[], SqlMemberUnitOfWork],
        alice: None, bobs_wallet: BobsWalletPays, members: GrpcMembers) -> None:
    now = datetime.now(UTC)
    order_id = charged_to_bob(pg_uow, member_uow, bobs_wallet, now)
    both_answered = threading.Barrier(2, timeout=30)

    class Replica(GrpcMembers):
        def void_balance_payment(self, order_no: str) -> WalletCharge | None:
            charge = super().void_balance_payment(order_no)
            both_answered.wait()  # both hold the member service's answer before either records it
            return charge

    with ThreadPoolExecutor(2) as pool:
        resolved = list(pool.map(lambda _: service.reconcile_wallet_payments(
            pg_uow, Replica(members.clients), now=now + SETTLED), range(2)))

    assert sorted(resolved) == [0, 1]  # the second found the attempt resolved under the row lock
    assert len(reviews_of(pg_engine)) == 1 and len(steps_by(pg_uow, order_id, "reconciliation")) == 1
    assert order_state(pg_uow, order_id) == ("PENDING_PAYMENT", "", False)


def test_two_staff_crediting_the_same_charge_at_once_return_it_to_the_wallet_it_came_from_once(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine, member_uow: Callable[[], SqlMemberUnitOfWork],
        alice: None, bobs_wallet: BobsWalletPays, members: GrpcMembers) -> None:
    now = datetime.now(UTC)
    order_id = charged_to_bob(pg_uow, member_uow, bobs_wallet, now)
    caller_var.set(None)
    service.reconcile_wallet_payments(pg_uow, members, now=now + SETTLED)
    [review] = wallet_reviews.list_reviews(pg_uow(), status="OPEN", offset=0, limit=10)[0]
    both_credited = threading.Barrier(2, timeout=30)

    class Staff(GrpcMembers):
        def refund_to_balance(self, refund_no: str, order_no: str, user_id: int, amount_fen: int) -> None:
            super().refund_to_balance(refund_no, order_no, user_id, amount_fen)
            both_credited.wait()  # both asked the member service before either records the resolution

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda staff: wallet_reviews.resolve_review(
            pg_uow(), Staff(members.clients), review_id=review.id or 0, resolution="credit_back",
            reason="不是本人订单", actor=f"staff:{staff}"), (7, 9)))

    refund_no = f"LATEW{order_no_of(pg_uow, order_id)}"
    with member_uow() as tx:
        credited = tx.ledger.find(f"balance-refund:{refund_no}")
    assert {(answer.status, answer.refund_no) for answer in answers} == {("CREDITED", refund_no)}
    assert credited is not None and [(leg.user_id, leg.amount) for leg in credited.legs if leg.user_id] == [
        (BOB, PAYABLE)]
    assert (wallet(member_uow, BOB), wallet(member_uow, ALICE)) == ((WALLET, 0), (WALLET, 0))
    assert [reason for _, reason in steps_by(pg_uow, order_id, "staff:")] == [
        f"wallet charge of {PAYABLE} fen by user {BOB} credited back ({refund_no}): 不是本人订单"]
    assert reviews_of(pg_engine)[0][-1] == "CREDITED"


def test_a_wallet_answer_learned_of_after_the_stock_hold_cancels_the_order_and_credits_the_charge_back_once(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine, member_uow: Callable[[], SqlMemberUnitOfWork],
        alice: None, answer_lost: AnswerLost, members: GrpcMembers, members_down: GrpcMembers) -> None:
    now = datetime.now(UTC)
    order_id = unpaid_order(pg_uow, member_uow, now)
    pay_unanswered(pg_uow, answer_lost, order_id, now)
    caller_var.set(None)
    too_late = now + PAYABLE_WITHIN
    unanswered = service.reconcile_wallet_payments(pg_uow, members_down, now=too_late - timedelta(minutes=1))
    overdue = service.payment_backlog(pg_uow(), now=too_late - timedelta(minutes=1)).unpaid_overdue
    both_answered = threading.Barrier(2, timeout=30)

    class Replica(GrpcMembers):
        def void_balance_payment(self, order_no: str) -> WalletCharge | None:
            charge = super().void_balance_payment(order_no)
            both_answered.wait()
            return charge

    with ThreadPoolExecutor(2) as pool:
        resolved = list(pool.map(lambda _: service.reconcile_wallet_payments(
            pg_uow, Replica(members.clients), now=too_late), range(2)))

    assert (unanswered, overdue, sorted(resolved)) == (0, {"wallet": 1}, [1, 1])
    assert order_state(pg_uow, order_id) == ("CANCELLED", "", False)
    assert wallet(member_uow, ALICE) == (WALLET, 0)  # the charge went back, once
    assert (published(pg_engine, "order-paid"), published(pg_engine, "order-cancelled")) == (0, 1)
    assert service.payment_backlog(pg_uow(), now=too_late).unpaid_overdue == {}


def test_the_backlog_counts_overdue_unpaid_orders_by_what_they_wait_for(
        uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    now = datetime.now(UTC)
    waiting = [{"wallet_attempt_at": now}, {"wallet_attempt_at": now}, {"prepaid_at": now}, {}]
    for n, fields in enumerate(waiting):
        order = new_order(user_id=ALICE, order_no=new_order_no(now + timedelta(microseconds=n)),
                          lines=[OrderLine(101, 10, "茶", "", PAYABLE, 1)], address=HOME, amounts=price(PAYABLE),
                          now=now, pay_minutes=30)
        for name, value in fields.items():
            setattr(order, name, value)
        with uow() as tx:
            tx.orders.add(order)
            tx.commit()
    due = now + timedelta(minutes=30) + service.OVERDUE

    assert service.payment_backlog(uow(), now=due) == service.PaymentBacklog({"wallet": 2, "wechat": 1, "none": 1}, 0)
    assert service.payment_backlog(uow(), now=due - timedelta(seconds=1)).unpaid_overdue == {}


def test_customer_service_lists_the_charges_and_only_finance_or_admins_resolve_them(
        server: OrderServer, pg_uow: Callable[[], SqlOrderUnitOfWork]) -> None:
    now = datetime.now(UTC)
    order = new_order(user_id=ALICE, order_no=new_order_no(now), lines=[OrderLine(101, 10, "茶", "", PAYABLE, 1)],
                      address=HOME, amounts=price(PAYABLE), now=now, pay_minutes=30)
    order.wallet_attempt_at = now
    with pg_uow() as tx:
        tx.orders.add(order)
        tx.commit()
    wallet_reviews.leave_for_staff(pg_uow(), order_no=order.order_no, attempt_at=now,
                                   charge=WalletCharge(BOB, PAYABLE), problem="OTHER_USERS_WALLET", now=now)
    resolve = order_pb2.ResolveWalletReviewRequest(id=1, resolution="handled", reason="已线下退款")

    listed = server.stub.ListWalletReviews(order_pb2.ListWalletReviewsRequest(status="OPEN"),
                                           metadata=server.as_user(8, "customer_service"))
    refused = [code_of(lambda who=who: server.stub.ResolveWalletReview(resolve, metadata=server.as_user(8, who)))
               for who in ("customer_service", "operator", "")]
    refused.append(code_of(lambda: server.stub.ListWalletReviews(order_pb2.ListWalletReviewsRequest(),
                                                                 metadata=server.as_user(ALICE))))
    handled = server.stub.ResolveWalletReview(resolve, metadata=server.as_user(9, "finance"))

    assert ([review.order_no for review in listed.reviews], listed.total) == ([order.order_no], 1)
    assert refused == [grpc.StatusCode.PERMISSION_DENIED] * 4
    assert (handled.status, handled.resolved_by, handled.note, handled.HasField("resolved_at")) == (
        "HANDLED", "staff:9", "已线下退款", True)


def code_of(call: Callable[[], object]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK
