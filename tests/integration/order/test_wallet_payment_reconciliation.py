"""Wallet payments whose answer was lost, on PostgreSQL over real gRPC to the member service: the shopper's
PayWithBalance charges the wallet and the answer never arrives; the wallet-reconciliation job, which has no
caller, asks the member service as the order service (VoidBalancePayment) and pays the order, or credits the
charge back, exactly once, also when two replicas resolve the same attempt at the same time; a charge still under
way when it heard "none" is refused when it arrives."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from mall.member.v1 import member_pb2, member_pb2_grpc
from sqlalchemy import Engine, func, select

from services.common.auth import Caller, caller_var
from services.common.errors import DomainError, ErrorKind
from services.common.outbox import outbox
from services.member.db import SqlMemberUnitOfWork
from services.member.domain import Account
from services.order import service
from services.order.db import SqlOrderUnitOfWork
from services.order.domain import OrderLine, new_order, new_order_no, price
from services.order.neighbours import GrpcMembers
from services.order.ports import WalletCharge
from services.order.service import OrderSettings
from services.user.domain import User
from services.user.tokens import TokenIssuer
from tests.fakes import HOME, FakeUsers
from tests.fixtures.keys import JwtKeys, as_service
from tests.integration.member.test_member_grpc import fund, wallet

pytestmark = pytest.mark.integration

ALICE = 101
PAYABLE = 3_000
WALLET = 10_000
SETTLED = timedelta(seconds=service.WALLET_SETTLE_SECONDS)
LOST = DomainError("MEMBER_UNAVAILABLE", "the member service did not answer", kind=ErrorKind.UNAVAILABLE)


class AnswerLost(GrpcMembers):
    """The order service's member client whose PayWithBalance reaches the member service, charges the wallet,
    and whose answer never comes back (the deadline passed, the connection dropped)."""

    def pay_with_balance(self, order_no: str, amount_fen: int) -> None:
        super().pay_with_balance(order_no, amount_fen)
        raise LOST


class StillCharging(GrpcMembers):
    """The order service's member client whose PayWithBalance times out while the member service is still working
    on it: the charge reaches the member service only when `arrive()` is called."""

    def pay_with_balance(self, order_no: str, amount_fen: int) -> None:
        caller = caller_var.get()
        self.arrive = lambda: self._arrive(caller, order_no, amount_fen)
        raise LOST

    def _arrive(self, caller: Caller | None, order_no: str, amount_fen: int) -> None:
        token = caller_var.set(caller)
        try:
            super().pay_with_balance(order_no, amount_fen)
        finally:
            caller_var.reset(token)


def alices_token(jwt_keys: JwtKeys) -> str:
    user = User(phone="13800000000", created_at=datetime.now(UTC), id=ALICE)
    issuer = TokenIssuer(jwt_keys.private_pem, access_ttl_seconds=300, refresh_ttl_seconds=600)
    return issuer.access_token(user, user.role_set, datetime.now(UTC))


@pytest.fixture
def alice(jwt_keys: JwtKeys) -> Iterator[None]:
    """Alice is the caller (her access token goes with calls that act for the caller, as in a request)."""
    token = caller_var.set(Caller(user_id=ALICE, roles=frozenset(), token_id="t", token=alices_token(jwt_keys)))
    yield
    caller_var.reset(token)


@pytest.fixture
def answer_lost(members: GrpcMembers) -> AnswerLost:
    return AnswerLost(members.clients)


def unpaid_order(uow: Callable[[], SqlOrderUnitOfWork], member_uow: Callable[[], SqlMemberUnitOfWork],
                 now: datetime) -> int:
    """Alice's order of PAYABLE fen, unpaid; her wallet holds WALLET fen."""
    order = new_order(user_id=ALICE, order_no=new_order_no(now), lines=[OrderLine(101, 10, "茶", "", PAYABLE, 1)],
                      address=HOME, amounts=price(PAYABLE), now=now, pay_minutes=30)
    with uow() as tx:
        tx.orders.add(order)
        tx.commit()
    fund(member_uow, ALICE, WALLET)
    return order.id or 0


def pay_unanswered(uow: Callable[[], SqlOrderUnitOfWork], members: GrpcMembers, order_id: int, now: datetime) -> None:
    with pytest.raises(DomainError) as lost:
        service.pay_order(uow(), members, FakeUsers(), None, OrderSettings(), user_id=ALICE, order_id=order_id,
                          channel="balance", now=now)
    assert lost.value is LOST


def order_state(uow: Callable[[], SqlOrderUnitOfWork], order_id: int) -> tuple[str, str, bool]:
    """(status, pay channel, whether a wallet attempt is still unresolved)."""
    with uow() as tx:
        order = tx.orders.get(order_id)
        assert order is not None
        return order.status, order.pay_channel, order.wallet_attempt_at is not None


def published(engine: Engine, event_type: str) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(outbox)
                            .where(outbox.c.event_type == event_type)).scalar_one()


def order_no_of(uow: Callable[[], SqlOrderUnitOfWork], order_id: int) -> str:
    with uow() as tx:
        order = tx.orders.get(order_id)
        assert order is not None
        return order.order_no


def test_a_charge_whose_answer_was_lost_pays_the_order_once_and_the_timeout_waits_for_it(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine, member_uow: Callable[[], SqlMemberUnitOfWork],
        alice: None, answer_lost: AnswerLost, members: GrpcMembers, members_down: GrpcMembers) -> None:
    now = datetime.now(UTC)
    order_id = unpaid_order(pg_uow, member_uow, now)
    pay_unanswered(pg_uow, answer_lost, order_id, now)
    assert (order_state(pg_uow, order_id), wallet(member_uow, ALICE)) == (
        ("PENDING_PAYMENT", "", True), (WALLET - PAYABLE, 0))  # charged, not PAID, the attempt on record
    caller_var.set(None)  # the jobs have no caller
    deadline = now + timedelta(minutes=30)

    expired = service.expire_orders(pg_uow(), now=deadline)
    unanswered = service.reconcile_wallet_payments(pg_uow, members_down, now=deadline)
    resolved = [service.reconcile_wallet_payments(pg_uow, members, now=deadline) for _ in range(2)]

    assert (expired, unanswered, resolved) == (0, 0, [1, 0])
    assert (order_state(pg_uow, order_id), wallet(member_uow, ALICE)) == (
        ("PAID", "balance", False), (WALLET - PAYABLE, 0))
    assert (published(pg_engine, "order-paid"), published(pg_engine, "order-cancelled")) == (1, 0)
    assert service.expire_orders(pg_uow(), now=deadline) == 0


def test_a_lost_charge_of_an_order_cancelled_meanwhile_is_credited_back_once(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine, member_uow: Callable[[], SqlMemberUnitOfWork],
        alice: None, answer_lost: AnswerLost, members: GrpcMembers, members_down: GrpcMembers) -> None:
    now = datetime.now(UTC)
    order_id = unpaid_order(pg_uow, member_uow, now)
    pay_unanswered(pg_uow, answer_lost, order_id, now)
    service.cancel_order(pg_uow(), user_id=ALICE, order_id=order_id, reason="付款没反应", now=now)
    caller_var.set(None)

    unanswered = service.reconcile_wallet_payments(pg_uow, members_down, now=now + SETTLED)
    resolved = [service.reconcile_wallet_payments(pg_uow, members, now=now + SETTLED) for _ in range(2)]

    refund_no = f"LATEW{order_no_of(pg_uow, order_id)}"
    with member_uow() as tx:
        credited = tx.ledger.find(f"balance-refund:{refund_no}")
    assert (unanswered, resolved, order_state(pg_uow, order_id)) == (0, [1, 0], ("CANCELLED", "", False))
    assert credited is not None and [(leg.account, leg.amount) for leg in credited.legs if leg.user_id] == [
        (Account.AVAILABLE, PAYABLE)]
    assert (wallet(member_uow, ALICE), published(pg_engine, "order-paid")) == ((WALLET, 0), 0)


def test_an_attempt_that_charged_nothing_is_forgotten_and_the_order_expires(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine, member_uow: Callable[[], SqlMemberUnitOfWork],
        alice: None, members: GrpcMembers, members_down: GrpcMembers) -> None:
    now = datetime.now(UTC)
    order_id = unpaid_order(pg_uow, member_uow, now)
    with pytest.raises(DomainError) as down:
        service.pay_order(pg_uow(), members_down, FakeUsers(), None, OrderSettings(), user_id=ALICE,
                          order_id=order_id, channel="balance", now=now)
    caller_var.set(None)
    deadline = now + timedelta(minutes=30)

    steps = [service.expire_orders(pg_uow(), now=deadline),
             service.reconcile_wallet_payments(pg_uow, members, now=deadline),
             service.expire_orders(pg_uow(), now=deadline)]

    assert (down.value.code, steps, order_state(pg_uow, order_id)) == (
        "MEMBER_UNAVAILABLE", [0, 1, 1], ("CANCELLED", "", False))
    assert (wallet(member_uow, ALICE), published(pg_engine, "order-cancelled")) == ((WALLET, 0), 1)


def test_a_charge_still_under_way_when_reconciliation_found_none_is_refused_when_it_arrives(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine, member_uow: Callable[[], SqlMemberUnitOfWork],
        alice: None, members: GrpcMembers) -> None:
    now = datetime.now(UTC)
    order_id = unpaid_order(pg_uow, member_uow, now)
    slow = StillCharging(members.clients)
    pay_unanswered(pg_uow, slow, order_id, now)
    caller_var.set(None)
    deadline = now + timedelta(minutes=30)
    steps = [service.reconcile_wallet_payments(pg_uow, members, now=deadline),
             service.expire_orders(pg_uow(), now=deadline)]

    with pytest.raises(DomainError) as refused:
        slow.arrive()

    assert (steps, refused.value.code, order_state(pg_uow, order_id)) == (
        [1, 1], "BALANCE_PAYMENT_VOID", ("CANCELLED", "", False))
    assert (wallet(member_uow, ALICE), published(pg_engine, "order-paid")) == ((WALLET, 0), 0)


def test_two_replicas_resolving_the_same_attempt_at_once_pay_the_order_once(
        pg_uow: Callable[[], SqlOrderUnitOfWork], pg_engine: Engine, member_uow: Callable[[], SqlMemberUnitOfWork],
        alice: None, answer_lost: AnswerLost, members: GrpcMembers) -> None:
    now = datetime.now(UTC)
    order_id = unpaid_order(pg_uow, member_uow, now)
    pay_unanswered(pg_uow, answer_lost, order_id, now)
    both_answered = threading.Barrier(2, timeout=30)

    class Replica(GrpcMembers):
        def void_balance_payment(self, order_no: str) -> WalletCharge | None:
            charge = super().void_balance_payment(order_no)
            both_answered.wait()  # both hold the member service's answer before either settles the order
            return charge

    with ThreadPoolExecutor(2) as pool:  # each thread starts with no caller, as a job
        resolved = list(pool.map(lambda _: service.reconcile_wallet_payments(
            pg_uow, Replica(members.clients), now=now + SETTLED), range(2)))

    assert (sorted(resolved), order_state(pg_uow, order_id), wallet(member_uow, ALICE)) == (
        [1, 1], ("PAID", "balance", False), (WALLET - PAYABLE, 0))
    assert published(pg_engine, "order-paid") == 1


@pytest.mark.parametrize("who", ["product", "user", "shopper"])
def test_only_the_order_service_may_void_a_wallet_payment(
        member_target: str, member_uow: Callable[[], SqlMemberUnitOfWork], jwt_keys: JwtKeys, who: str) -> None:
    order_no = new_order_no(datetime.now(UTC))
    fund(member_uow, ALICE, WALLET)
    as_alice = [("authorization", f"Bearer {alices_token(jwt_keys)}")]
    with grpc.insecure_channel(member_target) as channel:
        stub = member_pb2_grpc.MemberServiceStub(channel)
        stub.PayWithBalance(member_pb2.PayWithBalanceRequest(order_no=order_no, amount_fen=PAYABLE),
                            metadata=as_alice, timeout=10)
        ask = member_pb2.VoidBalancePaymentRequest(order_no=order_no)
        told = stub.VoidBalancePayment(ask, metadata=as_service(jwt_keys, "order"), timeout=10)
        never = stub.VoidBalancePayment(member_pb2.VoidBalancePaymentRequest(order_no="N0"),
                                        metadata=as_service(jwt_keys, "order"), timeout=10)
        with pytest.raises(grpc.RpcError) as refused:
            stub.VoidBalancePayment(ask, metadata=as_alice if who == "shopper" else as_service(jwt_keys, who),
                                   timeout=10)

    assert (told.charged, told.user_id, told.amount_fen, never.charged) == (True, ALICE, PAYABLE, False)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
