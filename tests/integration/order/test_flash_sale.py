"""A flash sale through the real order and product services over gRPC on PostgreSQL: exactly the stock is sold.

The gateway is left out on purpose: 1,000 orders through gunicorn on the two cores CI has take
far longer than the services' own work. tests/e2e/test_order_flow.py runs a smaller flash sale
through the gateway, and bench/checkout.py measures the whole path.
"""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import grpc
import pytest
from mall.order.v1 import order_pb2, order_pb2_grpc
from mall.product.v1 import product_pb2, product_pb2_grpc
from sqlalchemy import Engine, func, select

from services.common.clients import ServiceClients
from services.common.config import Env, ServiceSettings
from services.common.discovery import Discovery
from services.common.grpc_server import create_server, from_grpc, registration
from services.common.outbox import outbox
from services.order.db import SqlOrderUnitOfWork
from services.order.db import start_mappers as start_order_mappers
from services.order.grpc_api import OrderServicer
from services.order.neighbours import GrpcCatalog, GrpcStock
from services.order.service import OrderSettings
from services.product.db import SqlProductUnitOfWork, reservations, skus
from services.product.db import start_mappers as start_product_mappers
from services.product.grpc_api import ProductServicer
from services.user.domain import User
from services.user.tokens import TokenIssuer
from tests.fakes import HOME, FakeMembers, FakeUsers
from tests.fixtures.keys import JwtKeys, service_token
from tests.integration.product.conftest import Shelf

pytestmark = pytest.mark.integration

STOCK, SHOPPERS = 100, 1000
# One order each, by shoppers 1 to SHOPPERS, every one verified with address 7: a shopper's submits take their lock
# one at a time (the unpaid orders limit, ORDER_MAX_UNPAID_PER_USER), so one shopper placing all 1,000 would race
# nothing, and would be refused past the limit.
VERIFIED = FakeUsers(verified_ids=set(range(1, SHOPPERS + 1)),
                     addresses={(user_id, 7): HOME for user_id in range(1, SHOPPERS + 1)})


def started(service: str, jwt_keys: JwtKeys, pb: object, pb_grpc: object, name: str, servicer: object) -> tuple[grpc.Server, int]:
    settings = ServiceSettings.from_env(service, {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                  f"{service.upper()}_GRPC_LISTEN": "127.0.0.1:0"})
    server, port = create_server(settings, [registration(pb, pb_grpc, name, servicer)])
    server.start()
    return server, port


@pytest.fixture
def product_engine(service_engine: Callable[[str], Engine]) -> Engine:
    start_product_mappers()
    return service_engine("product")


@pytest.fixture
def shelf(product_engine: Engine) -> Shelf:
    return Shelf(functools.partial(SqlProductUnitOfWork, product_engine, "product"))


@pytest.fixture
def orders(product_engine: Engine, pg_engine: Engine, jwt_keys: JwtKeys) -> Iterator[order_pb2_grpc.OrderServiceStub]:
    """The order service calling the real product service (catalogue and stock); member and user are fakes."""
    start_order_mappers()
    product_server, product_port = started("product", jwt_keys, product_pb2, product_pb2_grpc, "ProductService",
                                           ProductServicer(functools.partial(SqlProductUnitOfWork, product_engine,
                                                                             "product")))
    clients = ServiceClients(Discovery(None, Env({"PRODUCT_GRPC_TARGET": f"127.0.0.1:{product_port}"})), 30,
                             service_token=service_token(jwt_keys, "order"))  # stock calls go as the order service
    servicer = OrderServicer(functools.partial(SqlOrderUnitOfWork, pg_engine, "order"), GrpcCatalog(clients),
                             GrpcStock(clients), FakeMembers(), VERIFIED, OrderSettings())
    order_server, order_port = started("order", jwt_keys, order_pb2, order_pb2_grpc, "OrderService", servicer)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{order_port}") as channel:
            yield order_pb2_grpc.OrderServiceStub(channel)
    finally:
        clients.close()
        order_server.stop(grace=None)
        product_server.stop(grace=None)


def shoppers(jwt_keys: JwtKeys) -> list[list[tuple[str, str]]]:
    """The call metadata of each shopper, 1 to SHOPPERS."""
    issuer = TokenIssuer(jwt_keys.private_pem, access_ttl_seconds=900, refresh_ttl_seconds=86400)
    now = datetime.now(UTC)
    return [[("authorization", f"Bearer {issuer.access_token(User(phone=None, created_at=now, id=user_id), frozenset(), now)}")]
            for user_id in range(1, SHOPPERS + 1)]


def count(engine: Engine, query: object) -> int:
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()  # type: ignore[call-overload]


def test_1000_concurrent_orders_for_100_units_place_exactly_100_and_refuse_900_out_of_stock(
        orders: order_pb2_grpc.OrderServiceStub, shelf: Shelf, product_engine: Engine, pg_engine: Engine,
        jwt_keys: JwtKeys) -> None:
    product_id = shelf.product("秒杀茶具", stock=STOCK)
    [sku_id] = shelf.sku_ids(product_id)
    metadata = shoppers(jwt_keys)
    lowest, done = [STOCK], threading.Event()

    def watch_stock() -> None:  # samples the stock while the orders race: it must never go below zero
        with product_engine.connect() as conn:
            while not done.is_set():
                lowest[0] = min(lowest[0], conn.execute(select(skus.c.stock).where(skus.c.id == sku_id)).scalar_one())
                conn.rollback()

    def order(number: int) -> str:
        try:
            orders.SubmitOrder(order_pb2.SubmitOrderRequest(
                checkout=order_pb2.CheckoutRequest(sku_id=sku_id, quantity=1, address_id=7),
                idempotency_key=f"flash-{number}"), metadata=metadata[number], timeout=60)
            return "placed"
        except grpc.RpcError as exc:
            status, code, _, _ = from_grpc(exc)
            return f"{status.name} {code}"

    watcher = threading.Thread(target=watch_stock)
    watcher.start()
    with ThreadPoolExecutor(max_workers=32) as pool:
        outcomes = Counter(pool.map(order, range(SHOPPERS)))
    done.set()
    watcher.join()

    assert outcomes == Counter({"placed": STOCK, "FAILED_PRECONDITION OUT_OF_STOCK": SHOPPERS - STOCK})
    assert (shelf.stock(product_id), lowest[0]) == ([0], 0)
    assert count(product_engine, select(func.coalesce(func.sum(reservations.c.quantity), 0))) == STOCK
    assert count(pg_engine, select(func.count()).select_from(outbox).where(outbox.c.event_type == "order-created")) == (
        STOCK)
