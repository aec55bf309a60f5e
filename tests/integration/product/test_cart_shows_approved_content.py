"""A cart never shows an edit awaiting audit: the order service's cart listing through the real product gRPC API
(PostgreSQL) shows a product edited by staff off sale under its approved name and image; staff read the edit."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from mall.product.v1 import product_pb2
from mall.product.v1.product_pb2_grpc import ProductServiceStub

from services.common.auth import TokenVerifier, caller_var
from services.common.clients import ServiceClients
from services.common.config import Env
from services.common.discovery import Discovery
from services.order import service as orders
from services.order.neighbours import GrpcCatalog
from services.product.domain import UNAPPROVED_NAME
from tests.fakes import FakeOrderUnitOfWork
from tests.fixtures.keys import JwtKeys, service_token
from tests.integration.product.conftest import Shelf

pytestmark = pytest.mark.integration

SHOPPER, ADMIN = 42, 1
APPROVED_IMAGE, EDITED_IMAGE = "/media/mate60.jpg", "/media/mate70-unreleased.jpg"


@pytest.fixture
def catalog(product_port: int, jwt_keys: JwtKeys, user_token: Callable[..., str]) -> Iterator[GrpcCatalog]:
    """The order service's catalogue port, serving the shopper (it asks as the order service itself)."""
    clients = ServiceClients(Discovery(None, Env({"PRODUCT_GRPC_TARGET": f"127.0.0.1:{product_port}"})), 10,
                             service_token=service_token(jwt_keys, "order"))
    shopper = caller_var.set(TokenVerifier(jwt_keys.public_pem).verify(user_token(SHOPPER)))
    yield GrpcCatalog(clients)
    caller_var.reset(shopper)
    clients.close()


def staff_edit(stub: ProductServiceStub, admin: list[tuple[str, str]], product_id: int, *, name: str = "",
               images: list[str] | None = None, price_fen: int = 0) -> None:
    """An admin renames the product, replaces its images or reprices its SKUs (what is not given stays as read),
    as the admin form does."""
    read = stub.GetAdminProduct(product_pb2.ProductRef(id=product_id), metadata=admin, timeout=10)
    edited = product_pb2.ProductInput(
        name=name or read.name, category_id=read.category_id, brand_id=read.brand.id,
        images=read.images if images is None else images, specs=read.specs,
        skus=[product_pb2.SkuInput(spec=sku.spec, price_fen=price_fen or sku.price_fen) for sku in read.skus])
    stub.UpdateProduct(product_pb2.UpdateProductRequest(id=product_id, version=read.version, product=edited),
                       metadata=admin, timeout=10)


def test_a_cart_shows_a_product_edited_since_it_was_added_off_sale_under_its_approved_name_and_image(
        shelf: Shelf, stub: ProductServiceStub, catalog: GrpcCatalog, user_token: Callable[..., str]) -> None:
    product_id = shelf.product("华为 Mate 60", images=(APPROVED_IMAGE,))
    [sku_id] = shelf.sku_ids(product_id)
    cart = FakeOrderUnitOfWork()
    orders.add_cart_item(cart, catalog, user_id=SHOPPER, sku_id=sku_id, quantity=1)
    admin = [("authorization", f"Bearer {user_token(ADMIN, 'admin')}")]

    staff_edit(stub, admin, product_id, name="华为 Mate 70 (未发布)", images=[EDITED_IMAGE])
    [line] = orders.list_cart(cart, catalog, user_id=SHOPPER).lines
    staff_view = stub.GetAdminProduct(product_pb2.ProductRef(id=product_id), metadata=admin, timeout=10)

    assert (line.valid, line.sku is not None and (line.sku.name, line.sku.image)) == (
        False, ("华为 Mate 60", APPROVED_IMAGE))
    assert (staff_view.name, list(staff_view.images), staff_view.status) == (
        "华为 Mate 70 (未发布)", [EDITED_IMAGE], "PENDING_AUDIT")


def test_a_product_never_approved_is_shown_by_a_placeholder_not_its_draft(
        shelf: Shelf, catalog: GrpcCatalog) -> None:
    [sku_id] = shelf.sku_ids(shelf.product("未审核的新品", status="draft", images=(EDITED_IMAGE,)))

    sku = catalog.skus({sku_id})[sku_id]

    assert (sku.name, sku.image, sku.on_sale) == (UNAPPROVED_NAME, "", False)


def test_a_cart_of_a_product_repriced_since_it_was_added_shows_the_price_it_was_added_at_never_the_new_one(
        shelf: Shelf, stub: ProductServiceStub, catalog: GrpcCatalog, user_token: Callable[..., str]) -> None:
    product_id = shelf.product("华为 Mate 60", price_fen=549_900)
    [sku_id] = shelf.sku_ids(product_id)
    cart = FakeOrderUnitOfWork()
    orders.add_cart_item(cart, catalog, user_id=SHOPPER, sku_id=sku_id, quantity=1)
    admin = [("authorization", f"Bearer {user_token(ADMIN, 'admin')}")]

    staff_edit(stub, admin, product_id, price_fen=100)  # waiting for audit: never approved
    looked_up = catalog.skus({sku_id})[sku_id]
    [line] = orders.list_cart(cart, catalog, user_id=SHOPPER).lines
    staff_view = stub.GetAdminProduct(product_pb2.ProductRef(id=product_id), metadata=admin, timeout=10)

    assert (looked_up.on_sale, looked_up.price_fen) == (False, 0)
    assert (line.valid, line.price_fen, line.price_changed) == (False, 549_900, False)
    assert [sku.price_fen for sku in staff_view.skus] == [100]
