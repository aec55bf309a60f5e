"""The session timeouts on PostgreSQL (DB_LOCK_TIMEOUT_SECONDS): a row another transaction holds too long makes an RPC
answer DATABASE_BUSY with nothing changed, and a consumer try the event again until it applies, once."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import grpc
import pytest
from mall.events.v1.order_events_pb2 import OrderPaid
from mall.member.v1 import member_pb2 as pb
from mall.member.v1 import member_pb2_grpc
from sqlalchemy import Connection, Engine, func, select, text

from services.common.config import DatabaseTimeouts, KafkaSettings, ServiceSettings
from services.common.consumer import EventConsumer
from services.common.db import make_engine
from services.common.events import encode, new_envelope, timestamp
from services.common.grpc_server import create_server, from_grpc, registration
from services.common.metrics import DB_STATEMENTS_CANCELLED
from services.common.outbox import dead_letters, outbox, processed_events
from services.member import consumers
from services.member.channels import RechargeChannels
from services.member.db import SqlMemberUnitOfWork, members, start_mappers
from services.member.domain import PLATFORM, Account, transfer
from services.member.grpc_api import MemberServicer
from services.user.domain import User
from services.user.tokens import TokenIssuer
from tests.fakes import FakeCategories, FakePhones, SimulatedPayout
from tests.fixtures.kafka import Delivered, ScriptedConsumer, batch
from tests.fixtures.keys import JwtKeys
from tests.fixtures.postgres import start_thread

pytestmark = pytest.mark.integration

ALICE = 101
# Small, so the tests are quick; the statement timeout above the lock timeout, as DatabaseTimeouts requires.
TIMEOUTS = DatabaseTimeouts(statement_seconds=1.0, lock_seconds=0.3, idle_in_transaction_seconds=10.0)
KAFKA = KafkaSettings(bootstrap_servers="unused:9092", max_poll_interval_ms=1000, topic_prefix="",
                      request_timeout_ms=1000)


@pytest.fixture
def impatient_uow(engine: Engine, migrated_database: Callable[[str], str]) -> Iterator[Callable[[], SqlMemberUnitOfWork]]:
    """Units of work on the member database (emptied by `engine`) whose sessions have TIMEOUTS."""
    start_mappers()
    impatient = make_engine(migrated_database("member"), TIMEOUTS)
    yield functools.partial(SqlMemberUnitOfWork, impatient, "member")
    impatient.dispose()


@pytest.fixture
def stub(impatient_uow: Callable[[], SqlMemberUnitOfWork],
         jwt_keys: JwtKeys) -> Iterator[member_pb2_grpc.MemberServiceStub]:
    servicer = MemberServicer(impatient_uow, SimulatedPayout(), RechargeChannels({}),
                              categories=FakeCategories(), phones=FakePhones())
    settings = ServiceSettings.from_env("member", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                   "MEMBER_GRPC_LISTEN": "127.0.0.1:0"})
    server, port = create_server(settings, [registration(pb, member_pb2_grpc, "MemberService", servicer)])
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield member_pb2_grpc.MemberServiceStub(channel)
    server.stop(grace=None)


def as_user(jwt_keys: JwtKeys, user_id: int) -> list[tuple[str, str]]:
    issuer = TokenIssuer(jwt_keys.private_pem, access_ttl_seconds=300, refresh_ttl_seconds=600)
    user = User(phone="13800000000", created_at=datetime.now(UTC), roles="", id=user_id)
    return [("authorization", f"Bearer {issuer.access_token(user, user.role_set, datetime.now(UTC))}")]


def fund(uow: Callable[[], SqlMemberUnitOfWork], user_id: int, amount_fen: int) -> None:
    with uow() as work:
        work.ledger.post(transfer(f"seed:{user_id}", "recharge", "seed", amount=amount_fen,
                                  source=(PLATFORM, Account.CLEARING), target=(user_id, Account.AVAILABLE)),
                         datetime.now(UTC))
        work.commit()


def hold_rows(conn: Connection, query: str) -> None:
    """Lock the rows `query` selects in `conn`'s transaction, left open: a stuck transaction holding them."""
    assert conn.execute(text(query + " FOR UPDATE")).all()


def cancelled(reason: str) -> float:
    return DB_STATEMENTS_CANCELLED.labels(reason)._value.get()


def test_a_balance_payment_waiting_on_a_wallet_another_transaction_holds_answers_database_busy_and_changes_nothing(
        stub: member_pb2_grpc.MemberServiceStub, impatient_uow: Callable[[], SqlMemberUnitOfWork], engine: Engine,
        jwt_keys: JwtKeys) -> None:
    fund(impatient_uow, ALICE, 10_000)
    counted = cancelled("lock_timeout")

    with engine.connect() as holder:
        hold_rows(holder, f"SELECT id FROM ledger_accounts WHERE user_id = {ALICE}")
        with pytest.raises(grpc.RpcError) as raised:
            stub.PayWithBalance(pb.PayWithBalanceRequest(order_no="O-1", amount_fen=3_333),
                                metadata=as_user(jwt_keys, ALICE), timeout=10)
        holder.rollback()

    status, code, _, _ = from_grpc(raised.value)
    assert (status, code) == (grpc.StatusCode.UNAVAILABLE, "DATABASE_BUSY")
    assert cancelled("lock_timeout") - counted == 1
    with impatient_uow() as work:
        assert (work.ledger.balance(ALICE, Account.AVAILABLE), work.ledger.balance(ALICE, Account.PENDING)) == (10_000, 0)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 0
    # Once the wallet is free, the same payment goes through.
    paid = stub.PayWithBalance(pb.PayWithBalanceRequest(order_no="O-1", amount_fen=3_333),
                               metadata=as_user(jwt_keys, ALICE), timeout=10)
    assert paid.balance_fen == 6_667


def order_paid(order_no: str, paid_fen: int, offset: int) -> Delivered:
    event = OrderPaid(order_no=order_no, user_id=ALICE, paid_fen=paid_fen,
                      paid_at=timestamp(datetime(2026, 12, 1, tzinfo=UTC)))
    envelope = new_envelope(event, producer="order", aggregate_id=order_no)
    return Delivered(KAFKA.topic("order-paid"), 0, offset, encode(envelope))


def test_an_order_paid_waiting_on_a_member_another_transaction_holds_is_retried_and_applied_once_when_it_is_free(
        impatient_uow: Callable[[], SqlMemberUnitOfWork], engine: Engine) -> None:
    first, second = order_paid("O-1", 1_000, 7), order_paid("O-2", 2_500, 8)
    scripted = ScriptedConsumer([batch(first), batch(second), batch(second), batch(second)])
    consumer = EventConsumer("member", impatient_uow, KAFKA, consumers.handlers(FakePhones()),
                             consumer_factory=lambda *_: scripted)  # type: ignore[arg-type,return-value]
    assert consumer.poll_once() == 1  # ALICE's member row now exists

    results: dict[str, object] = {}
    with engine.connect() as holder:
        hold_rows(holder, f"SELECT user_id FROM members WHERE user_id = {ALICE}")
        try:
            blocked = start_thread(results, "poll", consumer.poll_once)
            blocked.join(timeout=30)
            assert not blocked.is_alive(), "the consumer still waits for the row"
        finally:
            holder.rollback()
            blocked.join()

    assert results["poll"] == "HandlerFailed"  # logged by run(), which polls again after its back-off
    assert scripted.seeks == [(0, 8)]  # the partition rewound to the record, delivered again by the next poll
    assert consumer.poll_once() == 1  # the row is free: applied
    assert consumer.poll_once() == 1  # delivered once more (a crash before the offset commit): a duplicate

    assert scripted.commits == [(0, 8), (0, 9), (0, 9)]
    with engine.connect() as conn:
        assert conn.execute(select(members.c.total_spend_fen).where(members.c.user_id == ALICE)).scalar_one() == 3_500
        assert conn.execute(select(func.count()).select_from(processed_events)).scalar_one() == 2
        assert conn.execute(select(func.count()).select_from(dead_letters)).scalar_one() == 0
