"""Product integration fixtures: a product database (PostgreSQL, or SQLite too), its unit of work, a shelf helper."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.message import Message
from mall.order.v1 import order_pb2, order_pb2_grpc
from mall.product.v1 import product_pb2, product_pb2_grpc
from sqlalchemy import Engine

from services.common.config import ServiceSettings
from services.common.grpc_server import create_server, registration
from services.order import db as order_db
from services.order.domain import OrderLine, new_order, price
from services.order.grpc_api import OrderServicer
from services.order.service import OrderSettings
from services.product import service
from services.product.db import SqlProductUnitOfWork, start_mappers
from services.product.domain import Brand, Category, ProductDraft, SkuDraft
from services.product.grpc_api import ProductServicer
from services.product.uow import ProductUnitOfWork
from services.user.domain import User
from services.user.tokens import TokenIssuer
from tests.fakes import HOME
from tests.fixtures import kafka
from tests.fixtures.kafka import OFFLINE_KAFKA, Delivered
from tests.fixtures.keys import JwtKeys

UowFactory = Callable[[], SqlProductUnitOfWork]
T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
KAFKA = OFFLINE_KAFKA


def delivered(event: Message, topic: str, aggregate_id: str) -> Delivered:
    """`event` published by the order service on `topic`, as the product consumer receives it."""
    return kafka.delivered(event, topic, producer="order", aggregate_id=aggregate_id)


@pytest.fixture
def pg_engine(service_engine: Callable[[str], Engine]) -> Engine:
    return service_engine("product")


@pytest.fixture
def pg_uow(pg_engine: Engine) -> UowFactory:
    start_mappers()
    return functools.partial(SqlProductUnitOfWork, pg_engine, "product")


@pytest.fixture
def uow(each_service_engine: Callable[[str], Engine]) -> UowFactory:
    start_mappers()
    return functools.partial(SqlProductUnitOfWork, each_service_engine("product"), "product")


# The product service behind a real gRPC server, and the tokens its callers carry

@pytest.fixture
def product_port(pg_uow: UowFactory, jwt_keys: JwtKeys) -> Iterator[int]:
    settings = ServiceSettings.from_env("product", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                    "PRODUCT_GRPC_LISTEN": "127.0.0.1:0"})
    server, port = create_server(settings, [registration(product_pb2, product_pb2_grpc, "ProductService",
                                                         ProductServicer(pg_uow))])
    server.start()
    yield port
    server.stop(grace=None)


@pytest.fixture
def stub(product_port: int) -> Iterator[product_pb2_grpc.ProductServiceStub]:
    """A client of that server (a test whose caller must be another service's defines its own)."""
    with grpc.insecure_channel(f"127.0.0.1:{product_port}") as channel:
        yield product_pb2_grpc.ProductServiceStub(channel)


@pytest.fixture
def user_token(jwt_keys: JwtKeys) -> Callable[..., str]:
    """`user_token(42)` a shopper's access token, `user_token(1, "admin")` staff's."""
    issuer = TokenIssuer(jwt_keys.private_pem, access_ttl_seconds=300, refresh_ttl_seconds=600)

    def _token(user_id: int, roles: str = "") -> str:
        user = User(phone="13800000000", created_at=datetime.now(UTC), roles=roles, id=user_id)
        return issuer.access_token(user, user.role_set, datetime.now(UTC))
    return _token


# The order service on its own database behind a real gRPC server: what the reservation sweep asks (GetOrderStates)

@pytest.fixture
def order_uow(service_engine: Callable[[str], Engine]) -> Callable[[], order_db.SqlOrderUnitOfWork]:
    order_db.start_mappers()
    return functools.partial(order_db.SqlOrderUnitOfWork, service_engine("order"), "order")


@pytest.fixture
def order_target(order_uow: Callable[[], order_db.SqlOrderUnitOfWork], jwt_keys: JwtKeys) -> Iterator[str]:
    # GetOrderStates reads orders only: no catalogue, stock, members or users behind it
    servicer = OrderServicer(order_uow, None, None, None, None, OrderSettings())  # type: ignore[arg-type]
    settings = ServiceSettings.from_env("order", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                  "ORDER_GRPC_LISTEN": "127.0.0.1:0"})
    server, port = create_server(settings, [registration(order_pb2, order_pb2_grpc, "OrderService", servicer)])
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(grace=None)


def place_order(order_uow: Callable[[], order_db.SqlOrderUnitOfWork], order_no: str, *, paid: bool) -> None:
    """An order in the order service's database, PENDING_PAYMENT or PAID."""
    now = datetime.now(UTC)
    order = new_order(user_id=1, order_no=order_no, lines=[OrderLine(101, 10, "手机", "", 1000, 1)], address=HOME,
                      amounts=price(1000), now=now, pay_minutes=30)
    if paid:
        order.status, order.paid_at = "PAID", now
    with order_uow() as tx:
        tx.orders.add(order)
        tx.commit()


def confirm_paid(uow: ProductUnitOfWork, order_no: str) -> str:
    """Order `order_no` was paid, as the order-paid consumer applies it (services/product/consumers.py): its
    reservation becomes a sale, in a transaction of its own. CONFIRMED, or OVERSOLD."""
    with uow:
        status = service.confirm_held_stock(uow, order_no=order_no)
        uow.commit()
    return status


class Shelf:
    """Builds a small catalogue: categories 数码 > 手机, 家居; brands; products on sale or not."""

    def __init__(self, uow: UowFactory) -> None:
        self.uow = uow
        with uow() as u:
            for category in (Category("数码"), Category("家居", sort=1)):
                u.categories.add(category)
            u.categories.add(Category("手机", parent_id=1))
            u.brands.add(Brand("华为"))
            u.brands.add(Brand("象印"))
            u.commit()
        self.created = 0

    def draft(self, name: str, *, category_id: int = 3, brand_id: int = 1, price_fen: int = 10_000,
              stock: int = 50, subtitle: str = "", description: str = "", colours: tuple[str, ...] = ("黑",),
              images: tuple[str, ...] = ()) -> ProductDraft:
        return ProductDraft(name=name, subtitle=subtitle, description=description, category_id=category_id,
                            images=images,
                            brand_id=brand_id, specs=(("颜色", colours),),
                            skus=tuple(SkuDraft(spec={"颜色": c}, price_fen=price_fen + i, stock=stock)
                                       for i, c in enumerate(colours)))

    def product(self, name: str, *, status: str = "on_sale", **draft: object) -> int:
        """A product, by default approved and on the shelf; status draft | rejected | off_shelf too."""
        self.created += 1
        now = T0.replace(minute=self.created)  # later products are newer
        view = service.create_product(self.uow(), actor_id=7, draft=self.draft(name, **draft), now=now)  # type: ignore[arg-type]
        product_id = view.product.id
        assert product_id is not None
        if status == "draft":
            return product_id
        service.submit_product(self.uow(), actor_id=7, product_id=product_id, now=now)
        service.audit_product(self.uow(), actor_id=1, product_id=product_id, approve=status != "rejected",
                              reason="不合规", now=now)
        if status != "rejected":
            service.set_shelf(self.uow(), actor_id=7, product_id=product_id, on_shelf=status == "on_sale", now=now)
        return product_id

    def sku_ids(self, product_id: int) -> list[int]:
        view = service.get_admin_product(self.uow(), product_id=product_id)
        return [sku.id for sku in view.product.active_skus]  # type: ignore[misc]

    def stock(self, product_id: int) -> list[int]:
        return [sku.stock for sku in service.get_admin_product(self.uow(), product_id=product_id).product.active_skus]


@pytest.fixture
def shelf(pg_uow: UowFactory) -> Shelf:
    return Shelf(pg_uow)
