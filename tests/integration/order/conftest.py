"""Order service fixtures: its PostgreSQL (or SQLite) unit of work and the servicer behind a real gRPC server; the
member service behind one, and the order service's own client of it."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
import pytest
from mall.member.v1 import member_pb2, member_pb2_grpc
from mall.order.v1 import order_pb2, order_pb2_grpc
from sqlalchemy import Engine, func, select

from services.common.clients import ServiceClients
from services.common.config import Env, ServiceSettings
from services.common.devbroker import free_port
from services.common.discovery import Discovery
from services.common.grpc_server import create_server, registration
from services.common.outbox import outbox
from services.common.wechatpay import WechatPay
from services.member.channels import RechargeChannels
from services.member.db import SqlMemberUnitOfWork
from services.member.db import start_mappers as start_member_mappers
from services.member.grpc_api import MemberServicer
from services.order.db import SqlOrderUnitOfWork, start_mappers
from services.order.grpc_api import OrderServicer
from services.order.neighbours import GrpcMembers
from services.order.refunds import WechatRefunds
from services.order.service import OrderSettings
from services.user.domain import User
from services.user.tokens import TokenIssuer
from tests.fakes import FakeCatalog, FakeCategories, FakeMembers, FakePhones, FakeStock, FakeUsers, SimulatedPayout
from tests.fixtures.keys import JwtKeys, service_token
from tests.fixtures.simulator import RunningSimulator

Metadata = list[tuple[str, str]]


@pytest.fixture
def uow(each_service_engine: Callable[[str], Engine]) -> Callable[[], SqlOrderUnitOfWork]:
    start_mappers()
    return functools.partial(SqlOrderUnitOfWork, each_service_engine("order"), "order")


@pytest.fixture
def pg_engine(service_engine: Callable[[str], Engine]) -> Engine:
    """PostgreSQL only: for races, which need its row locks."""
    return service_engine("order")


@pytest.fixture
def pg_uow(pg_engine: Engine) -> Callable[[], SqlOrderUnitOfWork]:
    start_mappers()
    return functools.partial(SqlOrderUnitOfWork, pg_engine, "order")


@dataclass
class OrderServer:
    stub: order_pb2_grpc.OrderServiceStub
    engine: Engine
    catalog: FakeCatalog
    stock: FakeStock
    members: FakeMembers
    users: FakeUsers
    issuer: TokenIssuer

    def as_user(self, user_id: int, roles: str = "") -> Metadata:
        user = User(phone=None, created_at=datetime.now(UTC), roles=roles, id=user_id)
        token = self.issuer.access_token(user, frozenset(filter(None, roles.split(","))), datetime.now(UTC))
        return [("authorization", f"Bearer {token}")]

    def events(self, event_type: str) -> int:
        with self.engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(outbox)
                                      .where(outbox.c.event_type == event_type)).scalar_one()


@pytest.fixture
def server(pg_engine: Engine, jwt_keys: JwtKeys, simulator: RunningSimulator) -> Iterator[OrderServer]:
    start_mappers()
    catalog = FakeCatalog()
    catalog.put(101, price_fen=1999)
    catalog.put(102, price_fen=500)
    stock, members, users = FakeStock(catalog, {101: 10, 102: 100}), FakeMembers(), FakeUsers()
    # As build_app wires it: a late payment's refund, asked for on the payment paths, notifies the refund route too.
    wechat = WechatPay(simulator.wechatpay_settings(), refund_notify_url="http://127.0.0.1:9/unreachable")
    # max_unpaid_orders: room for the six unpaid orders test_reconciliation_rounds.py opens for Alice.
    servicer = OrderServicer(functools.partial(SqlOrderUnitOfWork, pg_engine, "order"), catalog, stock, members,
                             users, OrderSettings(notify_url="http://127.0.0.1:9/unreachable", max_unpaid_orders=6),
                             wechat, WechatRefunds(wechat, "http://127.0.0.1:9/unreachable"))
    settings = ServiceSettings.from_env("order", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                  "ORDER_GRPC_LISTEN": "127.0.0.1:0"})
    grpc_server, port = create_server(settings, [registration(order_pb2, order_pb2_grpc, "OrderService", servicer)])
    grpc_server.start()
    issuer = TokenIssuer(jwt_keys.private_pem, access_ttl_seconds=900, refresh_ttl_seconds=86400)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield OrderServer(order_pb2_grpc.OrderServiceStub(channel), pg_engine, catalog, stock, members, users,
                              issuer)
    finally:
        grpc_server.stop(grace=None)


# The member service on its own PostgreSQL database behind a real gRPC server, and the order service's client of
# it as build_app wires it (its own service token), for wallet payments and refunds.

@pytest.fixture
def member_uow(service_engine: Callable[[str], Engine]) -> Callable[[], SqlMemberUnitOfWork]:
    start_member_mappers()
    return functools.partial(SqlMemberUnitOfWork, service_engine("member"), "member")


@pytest.fixture
def member_target(member_uow: Callable[[], SqlMemberUnitOfWork], jwt_keys: JwtKeys) -> Iterator[str]:
    settings = ServiceSettings.from_env("member", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                   "MEMBER_GRPC_LISTEN": "127.0.0.1:0"})
    servicer = MemberServicer(member_uow, SimulatedPayout(), RechargeChannels({}),
                              categories=FakeCategories(), phones=FakePhones())
    server, port = create_server(settings, [registration(member_pb2, member_pb2_grpc, "MemberService", servicer)])
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(grace=None)


def order_members(jwt_keys: JwtKeys, target: str) -> Iterator[GrpcMembers]:
    """The order service's member client as build_app wires it: its own service token, discovery by address."""
    clients = ServiceClients(Discovery(None, Env({"MEMBER_GRPC_TARGET": target})), 5,
                             service_token=service_token(jwt_keys, "order"))
    yield GrpcMembers(clients)
    clients.close()


@pytest.fixture
def members(jwt_keys: JwtKeys, member_target: str) -> Iterator[GrpcMembers]:
    yield from order_members(jwt_keys, member_target)


@pytest.fixture
def members_down(jwt_keys: JwtKeys) -> Iterator[GrpcMembers]:
    """The same client, the member service not answering (nothing listens on its port)."""
    yield from order_members(jwt_keys, f"127.0.0.1:{free_port()}")
