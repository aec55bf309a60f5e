"""A product's purchase limit (限购) through the gateway: staff set it on create and edit, staff and shoppers read it,
and checkout past it is a 422 with the numbers."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient

from services.common.errors import DomainError
from services.common.grpc_server import to_grpc
from tests.fixtures.fake_services import FakeServices
from tests.unit.gateway.test_catalog_routes import API, NEW_PRODUCT, phone


def test_staff_set_a_products_limit_and_read_it_back(client: FlaskClient, clients: FakeServices,
                                                     bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.CreateProduct.reply = phone(status="DRAFT", on_shelf=False, max_per_shopper=2)
    clients.product.UpdateProduct.reply = phone(status="DRAFT", on_shelf=False, max_per_shopper=0)

    created = client.post(f"{API}/admin/products", json={**NEW_PRODUCT, "max_per_shopper": 2},
                          headers=bearer(roles="operator"))
    edited = client.put(f"{API}/admin/products/5", json={**NEW_PRODUCT, "version": 1},
                        headers=bearer(roles="operator"))

    assert (created.status_code, created.get_json()["max_per_shopper"]) == (201, 2)
    assert (edited.status_code, edited.get_json()["max_per_shopper"]) == (200, 0)
    assert [call.message.product.max_per_shopper for call in
            (*clients.product.CreateProduct.calls, *clients.product.UpdateProduct.calls)] == [2, 0]  # 0: no limit


def test_a_limit_above_999_or_below_0_is_refused_before_the_product_service(
        client: FlaskClient, clients: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    answers = [client.post(f"{API}/admin/products", json={**NEW_PRODUCT, "max_per_shopper": limit},
                           headers=bearer(roles="operator")) for limit in (1000, -1)]

    assert [(a.status_code, list(a.get_json()["error"]["details"])) for a in answers] == [
        (400, ["max_per_shopper"])] * 2
    assert clients.product.CreateProduct.calls == []


def test_shoppers_see_the_limit_on_the_product_detail(client: FlaskClient, clients: FakeServices) -> None:
    clients.product.ViewProduct.reply = phone(max_per_shopper=2)

    assert client.get(f"{API}/products/5").get_json()["max_per_shopper"] == 2


def test_a_checkout_past_a_products_limit_is_a_422_with_the_numbers(
        client: FlaskClient, clients: FakeServices, bearer: Callable[..., dict[str, str]],
        rpc_error) -> None:  # type: ignore[no-untyped-def]
    auth = bearer(user_id=42)
    details = {"product_id": 20, "max_per_shopper": 3, "already": 3, "requested": 1}
    refused = rpc_error(*to_grpc(DomainError(  # as service._check_purchase_limits refuses
        "PURCHASE_LIMIT_EXCEEDED", "at most 3 of this product per shopper; your orders hold 3 already",
        details=details)))
    clients.order.SubmitOrder.error = clients.order.QuoteCheckout.error = refused

    answers = [client.post(f"{API}/orders", json={"sku_id": 201, "quantity": 1, "address_id": 7},
                           headers={**auth, "Idempotency-Key": "abc-1"}),
               client.post(f"{API}/checkout/preview", json={"sku_id": 201, "quantity": 1, "address_id": 7},
                           headers=auth)]

    assert [(a.status_code, a.get_json()["error"]["code"], a.get_json()["error"]["details"]) for a in answers] == [
        (422, "PURCHASE_LIMIT_EXCEEDED", details)] * 2
