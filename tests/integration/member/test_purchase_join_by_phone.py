"""Joining by purchase is by phone number too (M1): the member service's order-paid handler on PostgreSQL asks a real
user gRPC server on PostgreSQL, as the member service itself, whether the buyer has bound a phone. A WeChat-only buyer
has their spend counted and stays a non-member until they bind one; a user service that does not answer fails the
event (the consumer delivers it again), nothing written."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import grpc
import pytest
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.order_events_pb2 import OrderPaid
from mall.user.v1 import user_pb2, user_pb2_grpc
from sqlalchemy import Engine, select

from services.common.clients import ServiceClients
from services.common.config import Env, ServiceSettings
from services.common.discovery import Discovery
from services.common.errors import DomainError
from services.common.events import timestamp
from services.common.grpc_server import create_server, registration
from services.common.outbox import outbox
from services.member import consumers
from services.member.db import SqlMemberUnitOfWork
from services.user.db import SqlUserUnitOfWork
from services.user.db import start_mappers as start_user_mappers
from services.user.domain import User
from services.user.grpc_api import UserServicer
from services.user.identity import FormatOnlyIdentityChecker, IdentityKeys, IdentityVault
from services.user.sms import ConsoleSms
from services.user.tokens import TokenIssuer
from tests.fakes import FakePasswords
from tests.fixtures.keys import JwtKeys, service_token

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


@pytest.fixture
def user_uow(service_engine: Callable[[str], Engine]) -> Callable[[], SqlUserUnitOfWork]:
    start_user_mappers()
    return functools.partial(SqlUserUnitOfWork, service_engine("user"), "user")


@pytest.fixture
def user_server(user_uow: Callable[[], SqlUserUnitOfWork], jwt_keys: JwtKeys) -> Iterator[tuple[grpc.Server, str]]:
    """The user service behind a real gRPC server on PostgreSQL, and its address."""
    servicer = UserServicer(user_uow, ConsoleSms(), TokenIssuer(jwt_keys.private_pem, access_ttl_seconds=900,
                                                                refresh_ttl_seconds=86400),
                            FakePasswords(), FormatOnlyIdentityChecker(),
                            IdentityVault(IdentityKeys.derived_for_dev(b"test")))
    settings = ServiceSettings.from_env("user", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                 "USER_GRPC_LISTEN": "127.0.0.1:0"})
    server, port = create_server(settings, [registration(user_pb2, user_pb2_grpc, "UserService", servicer)])
    server.start()
    yield server, f"127.0.0.1:{port}"
    server.stop(grace=None)


@pytest.fixture
def deliver(user_server: tuple[grpc.Server, str], jwt_keys: JwtKeys,
            uow: Callable[[], SqlMemberUnitOfWork]) -> Iterator[Callable[[OrderPaid, str], None]]:
    """What the member consumer does with one order-paid record, its handlers wired as its consume role wires them:
    the handler in a transaction of its own, the user service asked as the member service."""
    clients = ServiceClients(Discovery(None, Env({"USER_GRPC_TARGET": user_server[1]})), 2,
                             service_token=service_token(jwt_keys, "member"))
    handlers = consumers.consume_role_handlers(clients)

    def record(event: OrderPaid, event_id: str) -> None:
        with uow() as tx:
            handlers[OrderPaid](tx, event, EventEnvelope(event_id=event_id))
            tx.commit()
    yield record
    clients.close()


def account(user_uow: Callable[[], SqlUserUnitOfWork], phone: str | None) -> int:
    with user_uow() as tx:
        user = User(phone=phone, created_at=NOW)
        tx.users.add(user)
        tx.commit()
    return user.id or 0


def paid(order_no: str, user_id: int, paid_fen: int) -> OrderPaid:
    return OrderPaid(order_no=order_no, user_id=user_id, paid_fen=paid_fen, paid_at=timestamp(NOW))


def membership(uow: Callable[[], SqlMemberUnitOfWork], user_id: int) -> tuple[bool, str | None, int] | None:
    with uow() as tx:
        member = tx.members.get(user_id)
        return (member.is_member, member.channel, member.total_spend_fen) if member is not None else None


def joined_events(engine: Engine) -> int:
    with engine.connect() as connection:
        return len(connection.execute(select(outbox.c.id).where(outbox.c.event_type == "member-joined")).all())


def test_a_wechat_only_buyer_is_counted_not_joined_and_joins_by_purchase_once_they_bind_a_phone(
        deliver: Callable[[OrderPaid, str], None], user_uow: Callable[[], SqlUserUnitOfWork],
        uow: Callable[[], SqlMemberUnitOfWork], engine: Engine) -> None:
    buyer = account(user_uow, None)

    deliver(paid("O-1", buyer, 12_000), "e-1")
    assert (membership(uow, buyer), joined_events(engine)) == ((False, None, 12_000), 0)

    with user_uow() as tx:  # they bind a phone (BindPhone, proven by an SMS code)
        user = tx.users.get(buyer, lock=True)
        assert user is not None
        user.phone = "13900000077"
        tx.commit()
    deliver(paid("O-2", buyer, 3_000), "e-2")

    assert (membership(uow, buyer), joined_events(engine)) == ((True, "purchase", 15_000), 1)


def test_a_buyer_with_a_phone_joins_by_purchase_at_the_threshold(
        deliver: Callable[[OrderPaid, str], None], user_uow: Callable[[], SqlUserUnitOfWork],
        uow: Callable[[], SqlMemberUnitOfWork], engine: Engine) -> None:
    buyer = account(user_uow, "13900000078")

    deliver(paid("O-1", buyer, 10_000), "e-1")

    assert (membership(uow, buyer), joined_events(engine)) == ((True, "purchase", 10_000), 1)


def test_an_order_paid_fails_and_writes_nothing_while_the_user_service_does_not_answer(
        deliver: Callable[[OrderPaid, str], None], user_server: tuple[grpc.Server, str],
        user_uow: Callable[[], SqlUserUnitOfWork], uow: Callable[[], SqlMemberUnitOfWork], engine: Engine) -> None:
    buyer = account(user_uow, "13900000079")
    user_server[0].stop(grace=None)

    with pytest.raises(DomainError) as raised:
        deliver(paid("O-1", buyer, 12_000), "e-1")

    assert (raised.value.code, membership(uow, buyer), joined_events(engine)) == ("USER_UNAVAILABLE", None, 0)
