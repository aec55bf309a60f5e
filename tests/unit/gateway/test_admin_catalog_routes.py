"""Admin catalogue settings routes: what they send to the product service, who may call them, the cache they drop."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient
from google.protobuf.timestamp_pb2 import Timestamp
from mall.product.v1 import product_pb2

from services.common.grpc_server import to_grpc
from services.common.idempotency import key_reused
from tests.fixtures.fake_services import FakeServices
from tests.unit.gateway.test_catalog_routes import API, phone


def test_an_operator_creates_a_sub_category(client: FlaskClient, clients: FakeServices,
                                            bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.SaveCategory.reply = product_pb2.Category(id=9, name="平板", parent_id=1, sort=2)

    response = client.post(f"{API}/admin/categories", json={"name": "平板", "parent_id": 1, "sort": 2},
                           headers=bearer("operator"))

    assert (response.status_code, response.get_json(), clients.product.SaveCategory.calls[0].message) == (
        201, {"id": 9, "name": "平板", "parent_id": 1, "icon": "", "sort": 2},
        product_pb2.SaveCategoryRequest(name="平板", parent_id=1, sort=2))


def test_a_brand_edit_names_the_brand(client: FlaskClient, clients: FakeServices,
                                      bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.SaveBrand.reply = product_pb2.Brand(id=3, name="膳魔师", logo="/media/t.png")

    response = client.put(f"{API}/admin/brands/3", json={"name": "膳魔师", "logo": "/media/t.png"},
                          headers=bearer("admin"))

    assert (response.get_json(), clients.product.SaveBrand.calls[0].message) == (
        {"id": 3, "name": "膳魔师", "logo": "/media/t.png"},
        product_pb2.SaveBrandRequest(id=3, name="膳魔师", logo="/media/t.png"))


def test_a_delivery_row_is_set_by_province_and_the_next_detail_read_sees_it(
        client: FlaskClient, clients: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.ViewProduct.reply = phone()
    client.get(f"{API}/products/5?province=西藏")
    clients.product.SetDeliveryEstimate.reply = product_pb2.DeliveryEstimate(province="西藏", estimate_days=9)

    response = client.put(f"{API}/admin/delivery-estimates/西藏", json={"estimate_days": 9},
                          headers=bearer("operator"))
    client.get(f"{API}/products/5?province=西藏")

    assert (response.get_json(), clients.product.SetDeliveryEstimate.calls[0].message,
            len(clients.product.ViewProduct.calls)) == (
        {"province": "西藏", "estimate_days": 9}, product_pb2.DeliveryEstimate(province="西藏", estimate_days=9), 2)


def test_too_many_days_is_a_400_before_the_service(client: FlaskClient, clients: FakeServices,
                                                   bearer: Callable[..., dict[str, str]]) -> None:
    response = client.put(f"{API}/admin/delivery-estimates/西藏", json={"estimate_days": 61},
                          headers=bearer("operator"))

    assert (response.status_code, list(response.get_json()["error"]["details"]),
            clients.product.SetDeliveryEstimate.calls) == (400, ["estimate_days"], [])


def test_the_settings_audit_log_pages_with_before_and_after(client: FlaskClient, clients: FakeServices,
                                                           bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.ListSettingsAuditLog.reply = product_pb2.ListSettingsAuditLogResponse(total=3, items=[
        product_pb2.SettingsAuditEntry(entity="delivery", entity_key="西藏", actor_id=7, action="update",
                                       at=Timestamp(seconds=1_796_000_000), before_json='{"estimate_days": 7}',
                                       after_json='{"estimate_days": 9}')])

    body = client.get(f"{API}/admin/catalog-settings/audit-log?entity=delivery&page=2&page_size=1",
                      headers=bearer("operator")).get_json()

    assert (body, clients.product.ListSettingsAuditLog.calls[0].message) == (
        {"items": [{"entity": "delivery", "key": "西藏", "actor": 7, "action": "update", "at": "2026-11-30T00:53:20Z",
                    "before": {"estimate_days": 7}, "after": {"estimate_days": 9}}],
         "page": 2, "page_size": 1, "total": 3},
        product_pb2.ListSettingsAuditLogRequest(entity="delivery", offset=1, limit=1))


def test_a_shopper_may_not_change_catalogue_settings(client: FlaskClient, clients: FakeServices,
                                                     bearer: Callable[..., dict[str, str]]) -> None:
    statuses = {client.open(path, method=method, json=body, headers=bearer()).status_code for method, path, body in (
        ("POST", f"{API}/admin/categories", {"name": "x"}), ("PUT", f"{API}/admin/brands/1", {"name": "x"}),
        ("PUT", f"{API}/admin/delivery-estimates/*", {"estimate_days": 3}),
        ("GET", f"{API}/admin/delivery-estimates", None))}

    assert (statuses, clients.product.SaveCategory.calls, clients.product.SaveBrand.calls) == ({403}, [], [])


def test_a_brand_rename_sending_back_its_stored_http_logo_reaches_the_product_service(
        client: FlaskClient, clients: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    # the product service keeps a logo sent back as stored and refuses a new or changed one that is not ours or https
    logo = "http://old-cdn.example/b.png"
    clients.product.SaveBrand.reply = product_pb2.Brand(id=3, name="膳魔师中国", logo=logo)
    clients.product.SaveCategory.reply = product_pb2.Category(id=9, name="平板电脑", icon=logo)

    brand = client.put(f"{API}/admin/brands/3", json={"name": "膳魔师中国", "logo": logo}, headers=bearer("operator"))
    category = client.put(f"{API}/admin/categories/9", json={"name": "平板电脑", "icon": logo},
                          headers=bearer("operator"))

    assert ((brand.status_code, clients.product.SaveBrand.calls[0].message.logo),
            (category.status_code, clients.product.SaveCategory.calls[0].message.icon)) == ((200, logo), (200, logo))


def test_a_brand_logo_over_512_characters_is_a_400_before_the_service(
        client: FlaskClient, clients: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    response = client.post(f"{API}/admin/brands", json={"name": "膳魔师", "logo": "https://cdn.example/" + "a" * 493},
                           headers=bearer(roles="operator"))

    assert (response.status_code, list(response.get_json()["error"]["details"]), clients.product.SaveBrand.calls) == (
        400, ["logo"], [])


def test_category_and_brand_creates_pass_their_idempotency_key_and_send_none_without_the_header(
        client: FlaskClient, clients: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.SaveCategory.reply = product_pb2.Category(id=9, name="平板")
    clients.product.SaveBrand.reply = product_pb2.Brand(id=3, name="膳魔师")
    keyed = {**bearer("operator"), "Idempotency-Key": "form-1"}

    statuses = [client.post(f"{API}/admin/categories", json={"name": "平板"}, headers=keyed).status_code,
                client.post(f"{API}/admin/categories", json={"name": "平板"}, headers=bearer("operator")).status_code,
                client.post(f"{API}/admin/brands", json={"name": "膳魔师"}, headers=keyed).status_code,
                client.post(f"{API}/admin/brands", json={"name": "膳魔师"}, headers=bearer("operator")).status_code]

    assert (statuses, [c.message.idempotency_key for c in clients.product.SaveCategory.calls],
            [c.message.idempotency_key for c in clients.product.SaveBrand.calls]) == (
        [201, 201, 201, 201], ["form-1", ""], ["form-1", ""])


def test_a_category_or_brand_create_key_reused_is_a_409_and_a_malformed_key_a_400_before_the_service(
        client: FlaskClient, clients: FakeServices, bearer: Callable[..., dict[str, str]], rpc_error) -> None:
    malformed = {**bearer("operator"), "Idempotency-Key": "x" * 129}
    bad = [client.post(f"{API}/admin/{path}", json={"name": "x"}, headers=malformed) for path in ("categories", "brands")]
    status, message, trailers = to_grpc(key_reused())
    clients.product.SaveCategory.error = clients.product.SaveBrand.error = rpc_error(status, message, trailers)

    reused = [client.post(f"{API}/admin/{path}", json={"name": "x"},
                          headers={**bearer("operator"), "Idempotency-Key": "form-1"})
              for path in ("categories", "brands")]

    assert [(r.status_code, r.get_json()["error"]["code"]) for r in bad + reused] == [
        (400, "IDEMPOTENCY_KEY_INVALID"), (400, "IDEMPOTENCY_KEY_INVALID"),
        (409, "IDEMPOTENCY_KEY_REUSED"), (409, "IDEMPOTENCY_KEY_REUSED")]
    assert (len(clients.product.SaveCategory.calls), len(clients.product.SaveBrand.calls)) == (1, 1)
