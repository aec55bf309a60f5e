"""Catalogue and admin product routes: what they send to the product service and what shoppers and staff get back."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from flask import Flask
from flask.testing import FlaskClient
from google.protobuf.timestamp_pb2 import Timestamp
from mall.product.v1 import product_pb2

from services.common.errors import Conflict, InvalidInput
from services.common.grpc_server import CODE_KEY, to_grpc
from services.common.idempotency import key_reused
from tests.fixtures.fake_services import FakeServices

API = "/api/v1"
CREATED = Timestamp(seconds=1_795_000_000)


def phone(**overrides: object) -> product_pb2.Product:
    product = product_pb2.Product(
        id=5, name="华为 Mate 60 智能手机", subtitle="鸿蒙", category_id=3,
        brand=product_pb2.Brand(id=1, name="华为", logo="/media/catalog/h.png"), description="旗舰",
        images=["/media/catalog/a.png", "/media/catalog/b.png"], params=[product_pb2.Param(name="屏幕", value="6.7")],
        specs=[product_pb2.Spec(name="颜色", values=["黑", "白"])],
        skus=[product_pb2.Sku(id=11, spec={"颜色": "黑"}, price_fen=549_900, market_price_fen=599_900, stock=3,
                              stock_status="low", weight_g=225, sales=2)],
        after_sales_policy="7天无理由", status="APPROVED", on_shelf=True, price_fen=549_900,
        market_price_fen=599_900, sales=2, rating=product_pb2.Rating(average=4.3, count=3, average_tenths=43, distribution=[0, 0, 0, 2, 1]),
        delivery=product_pb2.Delivery(province="上海市", estimate_days=1), created_at=CREATED, updated_at=CREATED)
    for name, value in overrides.items():
        setattr(product, name, value)
    return product


NEW_PRODUCT = {"name": "华为 Mate 60 智能手机", "category_id": 3, "brand_id": 1,
               "specs": [{"name": "颜色", "values": ["黑", "白"]}],
               "skus": [{"spec": {"颜色": "黑"}, "price_fen": 549_900, "stock": 50}]}


def test_the_product_list_passes_filters_and_pages_and_answers_summaries(client: FlaskClient,
                                                                        clients: FakeServices) -> None:
    clients.product.SearchProducts.reply = product_pb2.SearchProductsResponse(items=[phone()], total=41)

    response = client.get(f"{API}/products?category_id=1&brand_id=1&price_min_fen=100&q=手机&sort=price_asc"
                          "&page=3&page_size=20")

    sent = clients.product.SearchProducts.calls[0].message
    assert (sent.category_id, sent.brand_id, sent.price_min_fen, sent.price_max_fen, sent.q, sent.sort, sent.offset,
            sent.limit) == (1, 1, 100, 0, "手机", "price_asc", 40, 20)
    assert response.get_json() == {"items": [{
        "id": 5, "name": "华为 Mate 60 智能手机", "subtitle": "鸿蒙", "main_image": "/media/catalog/a.png",
        "price_fen": 549_900, "market_price_fen": 599_900, "sales": 2, "brand": {"id": 1, "name": "华为"},
        "category_id": 3}], "page": 3, "page_size": 20, "total": 41}


def test_an_unknown_sort_is_a_400_naming_the_field(client: FlaskClient, clients: FakeServices) -> None:
    response = client.get(f"{API}/products?sort=cheapest")

    assert (response.status_code, list(response.get_json()["error"]["details"]), clients.product.SearchProducts.calls
            ) == (400, ["sort"], [])


def test_the_detail_shows_stock_status_but_never_a_count(client: FlaskClient, clients: FakeServices) -> None:
    clients.product.ViewProduct.reply = phone()

    body = client.get(f"{API}/products/5?province=上海").get_json()

    assert (body["skus"], body["delivery"], body["rating"], clients.product.ViewProduct.calls[0].message) == (
        [{"id": 11, "spec": {"颜色": "黑"}, "price_fen": 549_900, "market_price_fen": 599_900, "stock_status": "low"}],
        {"province": "上海市", "estimate_days": 1},
        {"average": 4.3, "average_tenths": 43, "count": 3, "distribution": {"1": 0, "2": 0, "3": 0, "4": 2, "5": 1}},
        product_pb2.ViewProductRequest(id=5, province="上海市"))


def test_the_delivery_estimate_is_asked_by_the_provinces_full_name_whether_sent_short_or_full(
        client: FlaskClient, clients: FakeServices) -> None:
    clients.product.ViewProduct.reply = phone()

    answered = [client.get(f"{API}/products/5?province={p}").status_code for p in ("广西", "内蒙古自治区", "")]

    assert (answered, [c.message.province for c in clients.product.ViewProduct.calls]) == (
        [200] * 3, ["广西壮族自治区", "内蒙古自治区", ""])


def test_the_short_and_full_name_of_a_province_share_one_cached_page(client: FlaskClient,
                                                                     clients: FakeServices) -> None:
    clients.product.ViewProduct.reply = phone()

    bodies = [client.get(f"{API}/products/5?province={p}").get_json() for p in ("上海", "上海市", "上海")]

    assert (bodies[0] == bodies[1] == bodies[2], len(clients.product.ViewProduct.calls)) == (True, 1)


@pytest.mark.parametrize("province", ["Shanghai", "上海 ", "上海市浦东新区", "*", "火星"])
def test_a_delivery_estimate_to_no_province_is_refused_naming_it(client: FlaskClient, clients: FakeServices,
                                                                 province: str) -> None:
    response = client.get(f"{API}/products/5", query_string={"province": province})

    assert (response.status_code, response.get_json()["error"]["code"], response.get_json()["error"]["details"],
            clients.product.ViewProduct.calls) == (
        400, "INVALID_REQUEST", {"province": "must be a provincial-level division, by its full name (上海市, 广东省, "
                                             "广西壮族自治区) or its short one (上海, 广东, 广西)"}, [])


def test_the_delivery_provinces_are_documented_by_full_and_short_name(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    parameters = spec["paths"]["/api/v1/products/{product_id}"]["get"]["parameters"]

    assert [p["schema"]["enum"][:3] + p["schema"]["enum"][35:38] + [len(p["schema"]["enum"])]
            for p in parameters if p["name"] == "province"] == [["", "北京市", "天津市", "北京", "天津", "河北", 69]]


def test_an_anonymous_detail_view_passes_no_caller(client: FlaskClient, clients: FakeServices) -> None:
    clients.product.ViewProduct.reply = phone()

    response = client.get(f"{API}/products/5")

    assert (response.status_code, "authorization" in clients.product.ViewProduct.calls[0].metadata) == (200, False)


def test_a_shoppers_detail_view_passes_the_caller_on(client: FlaskClient, clients: FakeServices,
                                                     bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.ViewProduct.reply = phone()
    headers = bearer(user_id=42)

    client.get(f"{API}/products/5", headers=headers)

    assert clients.product.ViewProduct.calls[0].metadata["authorization"] == headers["Authorization"]


def test_a_bad_token_on_the_detail_is_a_401_not_an_anonymous_view(client: FlaskClient, clients: FakeServices) -> None:
    response = client.get(f"{API}/products/5", headers={"Authorization": "Bearer nonsense"})

    assert (response.status_code, clients.product.ViewProduct.calls) == (401, [])


def test_a_hidden_product_is_a_404(client: FlaskClient, clients: FakeServices, rpc_error) -> None:  # type: ignore[no-untyped-def]
    clients.product.ViewProduct.error = rpc_error(grpc.StatusCode.NOT_FOUND, "no such product",
                                                  ((CODE_KEY, "PRODUCT_NOT_FOUND"),))

    response = client.get(f"{API}/products/5")

    assert (response.status_code, response.get_json()["error"]["code"]) == (404, "PRODUCT_NOT_FOUND")


def test_the_category_tree_keeps_its_levels(client: FlaskClient, clients: FakeServices) -> None:
    clients.product.ListCategories.reply = product_pb2.ListCategoriesResponse(items=[product_pb2.Category(
        id=1, name="数码", children=[product_pb2.Category(id=3, name="手机", children=[
            product_pb2.Category(id=9, name="5G手机")])])])

    body = client.get(f"{API}/categories").get_json()

    assert body == {"items": [{"id": 1, "name": "数码", "icon": "", "children": [
        {"id": 3, "name": "手机", "icon": "", "children": [{"id": 9, "name": "5G手机", "icon": "", "children": []}]}]}]}


def test_a_shopper_on_an_admin_product_route_gets_403(client: FlaskClient, clients: FakeServices,
                                                       bearer: Callable[..., dict[str, str]]) -> None:
    response = client.post(f"{API}/admin/products", json=NEW_PRODUCT, headers=bearer())

    assert (response.status_code, clients.product.CreateProduct.calls) == (403, [])


def test_an_operator_may_not_audit(client: FlaskClient, clients: FakeServices,
                                   bearer: Callable[..., dict[str, str]]) -> None:
    response = client.post(f"{API}/admin/products/5/audit", json={"approve": True},
                           headers=bearer(roles="operator"))

    assert (response.status_code, clients.product.AuditProduct.calls) == (403, [])


def test_an_operator_creates_a_product_and_gets_201_with_exact_stock(client: FlaskClient, clients: FakeServices,
                                                                     bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.CreateProduct.reply = phone(status="DRAFT", on_shelf=False)

    response = client.post(f"{API}/admin/products", json=NEW_PRODUCT, headers=bearer(roles="operator"))

    sent = clients.product.CreateProduct.calls[0].message.product
    body = response.get_json()
    assert (response.status_code, body["status"], body["on_shelf"], body["skus"][0]["stock"]) == (201, "DRAFT", False, 3)
    assert (sent.name, dict(sent.skus[0].spec), sent.skus[0].price_fen, sent.skus[0].stock) == (
        "华为 Mate 60 智能手机", {"颜色": "黑"}, 549_900, 50)


def test_a_price_of_zero_is_a_400_with_the_field(client: FlaskClient, clients: FakeServices,
                                                bearer: Callable[..., dict[str, str]]) -> None:
    bad = {**NEW_PRODUCT, "skus": [{"spec": {"颜色": "黑"}, "price_fen": 0}]}

    response = client.post(f"{API}/admin/products", json=bad, headers=bearer(roles="admin"))

    assert (response.status_code, list(response.get_json()["error"]["details"])) == (400, ["skus.0.price_fen"])


def test_the_audit_log_pages_and_answers_before_and_after_as_objects(client: FlaskClient, clients: FakeServices,
                                                                     bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.ListProductAuditLog.reply = product_pb2.ListProductAuditLogResponse(total=5, items=[
        product_pb2.AuditEntry(actor_id=7, action="submit", at=CREATED, before_json='{"status": "DRAFT"}',
                               after_json='{"status": "PENDING_AUDIT"}')])

    body = client.get(f"{API}/admin/products/5/audit-log?page=3&page_size=2",
                      headers=bearer(roles="operator")).get_json()

    assert (body, clients.product.ListProductAuditLog.calls[0].message) == (
        {"items": [{"actor": 7, "action": "submit", "at": "2026-11-18T11:06:40Z",
                    "before": {"status": "DRAFT"}, "after": {"status": "PENDING_AUDIT"}}],
         "page": 3, "page_size": 2, "total": 5},
        product_pb2.ListProductAuditLogRequest(id=5, offset=4, limit=2))


def test_a_stock_adjustment_names_product_sku_and_delta(client: FlaskClient, clients: FakeServices,
                                                       bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.AdjustStock.reply = product_pb2.Sku(id=11, spec={"颜色": "黑"}, price_fen=1, stock=8,
                                                        stock_status="low")

    response = client.post(f"{API}/admin/products/5/skus/11/stock", json={"delta": 5, "reason": "补货"},
                           headers=bearer(roles="operator"))

    assert (response.get_json()["stock"], clients.product.AdjustStock.calls[0].message) == (
        8, product_pb2.AdjustStockRequest(product_id=5, sku_id=11, delta=5, reason="补货"))


def test_a_stock_adjustment_passes_its_idempotency_key_and_sends_none_without_the_header(
        client: FlaskClient, clients: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.AdjustStock.reply = product_pb2.Sku(id=11, spec={"颜色": "黑"}, price_fen=1, stock=8,
                                                        stock_status="low")
    keyed = {**bearer(roles="operator"), "Idempotency-Key": "stock-form-1"}

    statuses = [client.post(f"{API}/admin/products/5/skus/11/stock", json={"delta": 5}, headers=headers).status_code
                for headers in (keyed, bearer(roles="operator"))]

    assert (statuses, [c.message.idempotency_key for c in clients.product.AdjustStock.calls]) == (
        [200, 200], ["stock-form-1", ""])


def test_a_skus_stock_ledger_pages_with_the_units_moved_per_bucket(client: FlaskClient, clients: FakeServices,
                                                                    bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.ListStockMovements.reply = product_pb2.ListStockMovementsResponse(total=3, items=[
        product_pb2.StockMovement(id=9, sku_id=11, product_id=5, kind="reserve", available=-2, reserved=2,
                                  reference="20261206080000001", at=CREATED)])

    body = client.get(f"{API}/admin/products/5/skus/11/stock-movements?page=2&page_size=1",
                      headers=bearer(roles="operator")).get_json()

    assert (body, clients.product.ListStockMovements.calls[0].message) == (
        {"items": [{"id": 9, "kind": "reserve", "available": -2, "reserved": 2, "sold": 0,
                    "reference": "20261206080000001", "actor": 0, "reason": "", "at": "2026-11-18T11:06:40Z"}],
         "page": 2, "page_size": 1, "total": 3},
        product_pb2.ListStockMovementsRequest(product_id=5, sku_id=11, offset=1, limit=1))


def test_a_shopper_cannot_read_a_stock_ledger(client: FlaskClient, clients: FakeServices,
                                              bearer: Callable[..., dict[str, str]]) -> None:
    response = client.get(f"{API}/admin/products/5/skus/11/stock-movements", headers=bearer())

    assert (response.status_code, clients.product.ListStockMovements.calls) == (403, [])


def test_an_unchanged_list_answers_304_to_its_etag(client: FlaskClient, clients: FakeServices) -> None:
    clients.product.SearchProducts.reply = product_pb2.SearchProductsResponse(items=[phone()], total=1)
    first = client.get(f"{API}/products")

    again = client.get(f"{API}/products", headers={"If-None-Match": first.headers["ETag"]})

    assert (first.headers["Cache-Control"], again.status_code, again.data) == ("public, max-age=1", 304, b"")


# Found by fuzzing by hand: werkzeug's make_conditional answers an If-Match no ETag meets with 412 and the page
# itself as the body (and its public Cache-Control), a status and a body outside the error format.
@pytest.mark.parametrize("path", ["/brands", "/products", "/products/5"])
def test_an_if_match_the_etag_does_not_meet_is_a_412_in_the_error_format(client: FlaskClient, clients: FakeServices,
                                                                          path: str) -> None:
    clients.product.ListBrands.reply = product_pb2.ListBrandsResponse(items=[phone().brand])
    clients.product.SearchProducts.reply = product_pb2.SearchProductsResponse(items=[phone()], total=1)
    clients.product.ViewProduct.reply = phone()

    response = client.get(f"{API}{path}", headers={"If-Match": '"not-its-etag"'})

    assert (response.status_code, response.get_json()["error"]["code"], response.headers["Cache-Control"]) == (
        412, "PRECONDITION_FAILED", "no-store")


def test_an_if_match_of_any_version_or_of_its_etag_answers_the_page(client: FlaskClient, clients: FakeServices) -> None:
    # If-Match: * holds whenever the page exists (RFC 9110 13.1.1); werkzeug answered it 412.
    clients.product.SearchProducts.reply = product_pb2.SearchProductsResponse(items=[phone()], total=1)
    etag = client.get(f"{API}/products").headers["ETag"]

    answers = [client.get(f"{API}/products", headers={"If-Match": tag}) for tag in ("*", etag, f'"x", {etag}')]

    assert [(answer.status_code, answer.get_json()["total"]) for answer in answers] == [(200, 1)] * 3


def test_a_changed_list_answers_200_with_a_new_etag(app: Flask, client: FlaskClient, clients: FakeServices) -> None:
    clients.product.SearchProducts.reply = product_pb2.SearchProductsResponse(items=[phone()], total=1)
    first = client.get(f"{API}/products")
    clients.product.SearchProducts.reply = product_pb2.SearchProductsResponse(items=[phone(sales=3)], total=1)
    app.extensions["catalog_cache"].invalidate()  # what a product-changed event does

    again = client.get(f"{API}/products", headers={"If-None-Match": first.headers["ETag"]})

    assert (again.status_code, again.headers["ETag"] != first.headers["ETag"]) == (200, True)


def test_a_detail_is_revalidated_every_time_so_logged_in_views_are_recorded(client: FlaskClient,
                                                                            clients: FakeServices) -> None:
    clients.product.ViewProduct.reply = phone()

    response = client.get(f"{API}/products/5")

    assert (response.headers["Cache-Control"], "ETag" in response.headers) == ("no-cache, private", True)


def test_the_detail_documents_its_token_as_optional(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()

    assert (spec["paths"]["/api/v1/products/{product_id}"]["get"]["security"],
            "security" in spec["paths"]["/api/v1/products"]["get"]) == ([{}, {"bearer": []}], False)


def test_an_edit_sends_the_version_its_form_was_read_at_and_answers_the_new_one(
        client: FlaskClient, clients: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.UpdateProduct.reply = phone(version=4)

    response = client.put(f"{API}/admin/products/5", json={**NEW_PRODUCT, "version": 3},
                          headers=bearer(roles="operator"))

    assert (response.get_json()["version"], clients.product.UpdateProduct.calls[0].message.version) == (4, 3)


def test_staff_see_retired_skus_still_holding_stock_apart_from_the_skus_a_form_sends_back(
        client: FlaskClient, clients: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    white = product_pb2.Sku(id=12, spec={"颜色": "白"}, price_fen=549_900, stock=4, stock_status="low", sales=1)
    reply = phone(version=2)
    reply.retired_skus.append(white)
    clients.product.GetAdminProduct.reply = reply

    body = client.get(f"{API}/admin/products/5", headers=bearer(roles="operator")).get_json()

    assert ([sku["id"] for sku in body["skus"]], body["retired_skus"]) == ([11], [
        {"id": 12, "spec": {"颜色": "白"}, "price_fen": 549_900, "market_price_fen": 0, "stock": 4,
         "stock_status": "low", "weight_g": 0, "sales": 1}])


def test_an_edit_without_a_version_is_refused_before_the_product_service(
        client: FlaskClient, clients: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    response = client.put(f"{API}/admin/products/5", json=NEW_PRODUCT, headers=bearer(roles="operator"))

    assert (response.status_code, response.get_json()["error"]["details"], clients.product.UpdateProduct.calls) == (
        400, {"version": "Field required"}, [])


def test_an_edit_from_a_stale_form_is_409_with_the_current_version(
        client: FlaskClient, clients: FakeServices, bearer: Callable[..., dict[str, str]], rpc_error) -> None:
    clients.product.UpdateProduct.error = rpc_error(*to_grpc(Conflict(
        "PRODUCT_CHANGED", "the product was changed since it was read", details={"version": 4})))

    response = client.put(f"{API}/admin/products/5", json={**NEW_PRODUCT, "version": 3},
                          headers=bearer(roles="operator"))

    assert (response.status_code, response.get_json()["error"]["code"], response.get_json()["error"]["details"]) == (
        409, "PRODUCT_CHANGED", {"version": 4})


def test_an_audit_sends_the_version_the_auditor_read(client: FlaskClient, clients: FakeServices,
                                                      bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.AuditProduct.reply = phone(version=3)

    client.post(f"{API}/admin/products/5/audit", json={"approve": True, "version": 3}, headers=bearer(roles="admin"))

    assert clients.product.AuditProduct.calls[0].message == product_pb2.AuditProductRequest(id=5, approve=True,
                                                                                             version=3)


def test_an_audit_without_the_version_read_is_refused_before_the_product_service(
        client: FlaskClient, clients: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    response = client.post(f"{API}/admin/products/5/audit", json={"approve": True}, headers=bearer(roles="admin"))

    assert (response.status_code, response.get_json()["error"]["details"], clients.product.AuditProduct.calls) == (
        400, {"version": "Field required"}, [])


OLD_IMAGE = "http://old-cdn.example/p/1.jpg"  # stored before images had to be our media or https


def test_an_edit_sending_back_a_stored_http_image_reaches_the_product_service_which_keeps_it(
        client: FlaskClient, clients: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.UpdateProduct.reply = phone(version=4)

    response = client.put(f"{API}/admin/products/5", json={**NEW_PRODUCT, "images": [OLD_IMAGE], "version": 3},
                          headers=bearer(roles="operator"))

    assert (response.status_code, list(clients.product.UpdateProduct.calls[0].message.product.images)) == (
        200, [OLD_IMAGE])


def test_an_image_the_product_service_refuses_is_a_400_naming_images(
        client: FlaskClient, clients: FakeServices, bearer: Callable[..., dict[str, str]], rpc_error) -> None:
    clients.product.UpdateProduct.error = rpc_error(*to_grpc(InvalidInput(
        "PRODUCT_INVALID", "the product is invalid", details={"images": "/media/... paths or https:// URLs"})))

    response = client.put(f"{API}/admin/products/5", json={
        **NEW_PRODUCT, "images": ["http://other-cdn.example/p/2.jpg"], "version": 3}, headers=bearer(roles="operator"))

    assert (response.status_code, response.get_json()["error"]["code"], response.get_json()["error"]["details"]) == (
        400, "PRODUCT_INVALID", {"images": "/media/... paths or https:// URLs"})


def test_a_product_image_too_long_or_with_control_characters_is_refused_before_the_product_service(
        client: FlaskClient, clients: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    statuses = [client.post(f"{API}/admin/products", json={**NEW_PRODUCT, "images": [image]},
                            headers=bearer(roles="operator")).status_code
                for image in ("https://cdn.example/" + "a" * 493, "/media/a.png\n")]

    assert (statuses, clients.product.CreateProduct.calls) == ([400, 400], [])


def test_a_sku_price_above_the_shop_maximum_is_refused_before_the_product_service(
        client: FlaskClient, clients: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    sku = {"spec": {"颜色": "黑"}, "price_fen": 100_000_001, "stock": 1}

    response = client.post(f"{API}/admin/products", json={**NEW_PRODUCT, "skus": [sku]},
                           headers=bearer(roles="operator"))

    assert (response.status_code, list(response.get_json()["error"]["details"]), clients.product.CreateProduct.calls) \
        == (400, ["skus.0.price_fen"], [])


def test_a_product_create_passes_its_idempotency_key_and_sends_none_without_the_header(
        client: FlaskClient, clients: FakeServices, bearer: Callable[..., dict[str, str]]) -> None:
    clients.product.CreateProduct.reply = phone(status="DRAFT", on_shelf=False)

    keyed = client.post(f"{API}/admin/products", json=NEW_PRODUCT,
                        headers={**bearer(roles="operator"), "Idempotency-Key": "form-1"})
    unkeyed = client.post(f"{API}/admin/products", json=NEW_PRODUCT, headers=bearer(roles="operator"))

    assert [c.message.idempotency_key for c in clients.product.CreateProduct.calls] == ["form-1", ""]
    assert (keyed.status_code, unkeyed.status_code) == (201, 201)


def test_a_product_create_key_reused_for_another_body_is_a_409_and_a_malformed_key_a_400(
        client: FlaskClient, clients: FakeServices, bearer: Callable[..., dict[str, str]], rpc_error) -> None:
    malformed = client.post(f"{API}/admin/products", json=NEW_PRODUCT,
                            headers={**bearer(roles="operator"), "Idempotency-Key": "x" * 129})
    status, message, trailers = to_grpc(key_reused())
    clients.product.CreateProduct.error = rpc_error(status, message, trailers)

    reused = client.post(f"{API}/admin/products", json=NEW_PRODUCT,
                         headers={**bearer(roles="operator"), "Idempotency-Key": "form-1"})

    assert (malformed.status_code, malformed.get_json()["error"]["code"]) == (400, "IDEMPOTENCY_KEY_INVALID")
    assert (reused.status_code, reused.get_json()["error"]["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")
    assert [c.message.idempotency_key for c in clients.product.CreateProduct.calls] == ["form-1"]
