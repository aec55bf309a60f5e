"""Only the order service, calling as itself, may reserve and release stock (real gRPC, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from mall.product.v1 import product_pb2
from mall.product.v1.product_pb2_grpc import ProductServiceStub

from services.common.auth import TokenVerifier, caller_var
from services.common.clients import ServiceClients
from services.common.config import Env
from services.common.discovery import Discovery
from services.common.grpc_server import from_grpc
from services.order.neighbours import GrpcStock
from services.order.ports import StockLine
from tests.fixtures.keys import JwtKeys, as_service, service_token
from tests.integration.product.conftest import Shelf

pytestmark = pytest.mark.integration

Metadata = list[tuple[str, str]]
SHOPPER, ADMIN = 42, 1


def outcome(call: Callable[[], object]) -> tuple[str, str]:
    try:
        call()
    except grpc.RpcError as exc:
        status, code, _, _ = from_grpc(exc)
        return status.name, code
    return "OK", ""


def inventory_calls(stub: ProductServiceStub, sku_id: int, metadata: Metadata | None) -> list[tuple[str, str]]:
    """ReserveStock and ReleaseReservation of one order, each with `metadata`."""
    ref = product_pb2.ReservationRef(order_no="O-ACCESS")
    return [
        outcome(lambda: stub.ReserveStock(product_pb2.ReserveStockRequest(
            order_no="O-ACCESS", lines=[product_pb2.StockLine(sku_id=sku_id, quantity=2)]), metadata=metadata,
            timeout=10)),
        outcome(lambda: stub.ReleaseReservation(ref, metadata=metadata, timeout=10)),
    ]


DENIED = [("PERMISSION_DENIED", "FORBIDDEN")] * 2


@pytest.mark.parametrize("who", ["shopper", "admin", "product service"])
def test_inventory_rpcs_deny_anyone_but_the_order_service_and_change_no_stock(
        shelf: Shelf, stub: ProductServiceStub, jwt_keys: JwtKeys, user_token: Callable[..., str], who: str) -> None:
    product_id = shelf.product("手机", stock=10)
    [sku_id] = shelf.sku_ids(product_id)
    token = {"shopper": lambda: user_token(SHOPPER), "admin": lambda: user_token(ADMIN, "admin"),
             "product service": lambda: service_token(jwt_keys, "product")}[who]()

    assert inventory_calls(stub, sku_id, [("authorization", f"Bearer {token}")]) == DENIED
    assert shelf.stock(product_id) == [10]


def test_inventory_rpcs_without_a_token_are_unauthenticated(shelf: Shelf, stub: ProductServiceStub) -> None:
    product_id = shelf.product("手机", stock=10)
    [sku_id] = shelf.sku_ids(product_id)

    assert inventory_calls(stub, sku_id, None) == [("UNAUTHENTICATED", "AUTH_REQUIRED")] * 2
    assert shelf.stock(product_id) == [10]


def test_the_order_service_token_reserves_and_releases(shelf: Shelf, stub: ProductServiceStub,
                                                       jwt_keys: JwtKeys) -> None:
    product_id = shelf.product("手机", stock=10)
    [sku_id] = shelf.sku_ids(product_id)
    order = as_service(jwt_keys, "order")

    reply = stub.ReserveStock(product_pb2.ReserveStockRequest(
        order_no="O-1", lines=[product_pb2.StockLine(sku_id=sku_id, quantity=3)]), metadata=order, timeout=10)
    reserved = shelf.stock(product_id)
    released = stub.ReleaseReservation(product_pb2.ReservationRef(order_no="O-1"), metadata=order, timeout=10)

    assert (reply.status, reserved, released.status, shelf.stock(product_id)) == ("RESERVED", [7], "RELEASED", [10])


def test_the_order_services_client_reserves_as_itself_while_serving_a_shopper(
        shelf: Shelf, product_port: int, jwt_keys: JwtKeys, user_token: Callable[..., str]) -> None:
    """The shopper's token rides on the order service's other calls; stock calls carry the service's own."""
    product_id = shelf.product("手机", stock=10)
    [sku_id] = shelf.sku_ids(product_id)
    clients = ServiceClients(Discovery(None, Env({"PRODUCT_GRPC_TARGET": f"127.0.0.1:{product_port}"})), 10,
                             service_token=service_token(jwt_keys, "order"))
    shopper = caller_var.set(TokenVerifier(jwt_keys.public_pem).verify(user_token(SHOPPER)))
    try:
        GrpcStock(clients).reserve("O-2", [StockLine(sku_id=sku_id, quantity=4)])
        after_reserve = shelf.stock(product_id)
        GrpcStock(clients).release("O-2")
        # the same client's shared stub still carries the shopper's token, which may not reserve
        as_shopper = outcome(lambda: clients.get(ProductServiceStub).ReserveStock(product_pb2.ReserveStockRequest(
            order_no="O-3", lines=[product_pb2.StockLine(sku_id=sku_id, quantity=1)])))
    finally:
        caller_var.reset(shopper)
        clients.close()

    assert (after_reserve, shelf.stock(product_id), as_shopper) == ([6], [10], ("PERMISSION_DENIED", "FORBIDDEN"))


def test_get_skus_tells_the_units_free_to_reserve_to_the_order_service_alone(
        shelf: Shelf, stub: ProductServiceStub, jwt_keys: JwtKeys, user_token: Callable[..., str]) -> None:
    product_id = shelf.product("手机", stock=10)
    [sku_id] = shelf.sku_ids(product_id)
    stub.ReserveStock(product_pb2.ReserveStockRequest(order_no="O-4", lines=[product_pb2.StockLine(
        sku_id=sku_id, quantity=3)]), metadata=as_service(jwt_keys, "order"), timeout=10)

    def stock_told(metadata: Metadata) -> tuple[int, str]:
        [offer] = stub.GetSkus(product_pb2.GetSkusRequest(sku_ids=[sku_id]), metadata=metadata, timeout=10).skus
        return offer.sku.stock, offer.sku.stock_status

    shopper = [("authorization", f"Bearer {user_token(SHOPPER)}")]
    product = [("authorization", f"Bearer {service_token(jwt_keys, 'product')}")]
    assert (stock_told(as_service(jwt_keys, "order")), stock_told(shopper), stock_told(product)) == (
        (7, "low"), (0, "low"), (0, "low"))
