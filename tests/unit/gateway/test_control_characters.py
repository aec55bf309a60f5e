"""Text with control characters, ids past int64 and path segments that name nothing: refused by the gateway, which
asks no service (a NUL reaching PostgreSQL was a 500, or an event retried for ever by the analytics consumer)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from mall.member.v1 import member_pb2
from mall.order.v1 import order_pb2
from mall.product.v1 import product_pb2
from mall.user.v1 import user_pb2
from pydantic import ValidationError

from gateway.api import Body, IdConverter, Operation
from tests.fixtures.fake_services import FakeServices

API = "/api/v1"
REFUSED = "must not contain control characters"
REFUSED_MULTILINE = "must not contain control characters other than tab and line breaks"
TOO_LARGE = f"Input should be less than or equal to {IdConverter.schema['maximum']}"  # the largest id
COUPON = {"name": "5 yuan off", "kind": "fixed", "amount_fen": 500, "total": 10,
          "valid_from": "2026-12-01T00:00:00+08:00", "valid_to": "2026-12-31T00:00:00+08:00"}
VIEW = {"type": "page_view", "page": "pages/index/index", "session_id": "s-1"}


@pytest.fixture
def reviewable(clients: FakeServices) -> FakeServices:
    clients.order.GetOrder.reply = order_pb2.Order(id=5, order_no="N5", user_id=42, status="COMPLETED",
                                                   lines=[order_pb2.OrderLine(id=9, sku_id=11, product_id=3)])
    clients.user.GetProfile.reply = user_pb2.Profile(id=42, nickname="张三")
    clients.product.CreateReview.reply = product_pb2.Review(id=1, product_id=3, sku_id=11, rating=5)
    return clients


# (method, path, roles or None for no token, body or None, the 400's details)
REFUSED_INPUT = {
    "anonymous page view: NUL in the referrer": (
        "POST", "/track", None, {"device_id": "device-0001", "events": [{**VIEW, "referrer": "pages/a\u0000/a"}]},
        {"events.0.referrer": REFUSED}),
    "staff body: NUL in a coupon template's name": (
        "POST", "/admin/coupons", "operator", {**COUPON, "name": "5 yuan\u0000off"}, {"name": REFUSED}),
    "staff body: NUL in a disable reason": (
        "POST", "/admin/coupon-templates/3/disable", "operator", {"reason": "ty\u0000po"}, {"reason": REFUSED}),
    "staff body: BEL in the reason a refund is closed": (
        "POST", "/admin/refunds/RF1/close", "admin", {"reason": "card\u0007cancelled"}, {"reason": REFUSED}),
    "shopper body: an escape sequence in a nickname": (
        "PATCH", "/me", "", {"nickname": "\u001b[31mred"}, {"nickname": REFUSED}),
    "shopper body: a line break in one-line text": (
        "PATCH", "/me", "", {"nickname": "two\nlines"}, {"nickname": REFUSED}),
    "shopper body: NUL even in multi-line text": (
        "POST", "/orders/5/lines/9/review", "", {"rating": 5, "content": "good\u0000"}, {"content": REFUSED_MULTILINE}),
    "query string: NUL in a search": (
        "GET", "/products?q=phone%00", None, None, {"q": REFUSED}),
    "staff query string: DEL in a refund source": (
        "GET", "/admin/refunds?source=a%7F", "admin", None, {"source": REFUSED}),
    "staff body: a category id past int64": (
        "POST", "/admin/coupons", "operator", {**COUPON, "category_ids": [7, 10**30]}, {"category_ids.1": TOO_LARGE}),
    "shopper body: a cart line id past int64": (
        "POST", "/checkout/preview", "", {"cart_item_ids": [10**19], "address_id": 1},
        {"cart_item_ids.0": TOO_LARGE}),
}


def send(client: FlaskClient, bearer: Callable[..., dict[str, str]], method: str, path: str, roles: str | None,
         body: dict[str, Any] | None) -> Any:
    headers = {"X-Request-ID": "r-ctl"} if roles is None else {"X-Request-ID": "r-ctl", **bearer(roles=roles)}
    return client.open(API + path, method=method, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "roles", "body", "details"), REFUSED_INPUT.values(), ids=REFUSED_INPUT)
def test_refused_input_is_a_400_naming_the_field_and_reaches_no_service(
        client: FlaskClient, clients: FakeServices, bearer, method: str, path: str, roles: str | None,
        body: dict[str, Any] | None, details: dict[str, str]) -> None:
    response = send(client, bearer, method, path, roles, body)

    where = "body" if body is not None else "query"
    assert (response.status_code, response.get_json(), clients.called()) == (400, {"error": {
        "code": "INVALID_REQUEST", "message": f"the request {where} is invalid", "request_id": "r-ctl",
        "details": details}}, [])


# (method, path, roles, body): a path segment that is no recharge or refund number, or text with a control character
UNKNOWN_PATHS = {
    "a recharge number with NUL": ("GET", "/member/recharges/R2026%00", "", None),
    "a recharge number that is not one": ("GET", "/member/recharges/%ff%fe", "", None),
    "a recharge number past 64 characters": ("GET", "/member/recharges/" + "R" * 65, "", None),
    "a refund number with NUL (close)": ("POST", "/admin/refunds/RF1%00/close", "admin", {"reason": "lost card"}),
    "a refund number with NUL (retry)": ("POST", "/admin/refunds/RF1%00/retry", "admin", None),
    "a province with a control character": ("PUT", "/admin/delivery-estimates/%E5%B9%BF%E4%B8%9C%01",
                                            "operator", {"estimate_days": 3}),
}


@pytest.mark.parametrize(("method", "path", "roles", "body"), UNKNOWN_PATHS.values(), ids=UNKNOWN_PATHS)
def test_a_path_segment_that_names_nothing_is_a_404_and_reaches_no_service(
        client: FlaskClient, clients: FakeServices, bearer, method: str, path: str, roles: str,
        body: dict[str, Any] | None) -> None:
    response = send(client, bearer, method, path, roles, body)

    assert (response.status_code, response.get_json()["error"]["code"], clients.called()) == (404, "NOT_FOUND", [])


def test_a_recharge_number_is_passed_on_as_it_was_given(client: FlaskClient, clients: FakeServices, bearer) -> None:
    clients.member.GetRecharge.reply = member_pb2.Recharge(recharge_no="R2026120612000012345678", status="PAID")

    client.get(f"{API}/member/recharges/R2026120612000012345678", headers=bearer())

    assert clients.member.GetRecharge.calls[0].message.recharge_no == "R2026120612000012345678"


def test_a_late_payments_refund_number_is_passed_on(client: FlaskClient, clients: FakeServices, bearer) -> None:
    clients.order.RetryRefund.reply = order_pb2.Order(id=1, order_no="2026120612000000000000a1b2c3d4")

    client.post(f"{API}/admin/refunds/LATE2026120612000000000000a1b2c3d4/retry", headers=bearer(roles="admin"))

    assert clients.order.RetryRefund.calls[0].message.refund_no == "LATE2026120612000000000000a1b2c3d4"


def test_a_province_in_chinese_is_passed_on(client: FlaskClient, clients: FakeServices, bearer) -> None:
    clients.product.SetDeliveryEstimate.reply = product_pb2.DeliveryEstimate(province="广东省", estimate_days=3)

    response = client.put(f"{API}/admin/delivery-estimates/广东省", json={"estimate_days": 3},
                          headers=bearer(roles="operator"))

    assert (response.status_code, clients.product.SetDeliveryEstimate.calls[0].message.province) == (200, "广东省")


def test_multi_line_text_keeps_its_tabs_and_line_breaks(client: FlaskClient, reviewable: FakeServices, bearer) -> None:
    response = client.post(f"{API}/orders/5/lines/9/review", json={"rating": 5, "content": "好用\r\n推荐:\t五星\n"},
                           headers=bearer(user_id=42))

    assert (response.status_code, reviewable.product.CreateReview.calls[0].message.content) == (
        201, "好用\r\n推荐:\t五星\n")


class Nested(Body):
    spec: dict[str, str]
    values: list[str]


@pytest.mark.parametrize(("spec", "values", "where"), [({"颜\u0000色": "黑"}, [], "spec"), ({"颜色": "黑\u0000"}, [], "spec"),
                                                      ({}, ["ok", "no\u001f"], "values")],
                         ids=["a dict's key", "a dict's value", "an item of a list"])
def test_text_inside_a_dict_or_a_list_is_checked_too(spec: dict[str, str], values: list[str], where: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Nested.model_validate({"spec": spec, "values": values})

    assert [(error["loc"], error["msg"]) for error in refused.value.errors()] == [((where,), REFUSED)]


def test_the_api_document_says_which_text_is_refused(client: FlaskClient) -> None:
    description = client.get("/openapi.json").get_json()["info"]["description"]

    assert "Text refuses control characters (U+0000-U+001F, U+007F" in description


# Every operation, now and to come: the declarations themselves keep each id within what a protobuf int64 holds
# and each text path parameter to a pattern.

def operations(app: Flask) -> Iterator[tuple[str, Operation]]:
    for rule in app.url_map.iter_rules():
        op = getattr(app.view_functions[rule.endpoint], "operation", None)
        if op is not None:
            yield rule.rule, op


def unbounded_integers(schema: Any, where: str) -> Iterator[str]:
    if isinstance(schema, dict):
        if schema.get("type") == "integer" and not (-(2**63) <= schema.get("minimum", -(2**64))
                                                    and schema.get("maximum", 2**64) < 2**63):
            yield where
        for key, value in schema.items():
            yield from unbounded_integers(value, f"{where}.{key}")
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from unbounded_integers(value, f"{where}.{index}")


def test_every_integer_a_request_model_takes_is_bounded_within_int64(app: Flask) -> None:
    found = {f"{rule} {name}" for rule, op in operations(app)
             for model in (op.body, op.query) if model is not None
             for name in unbounded_integers(model.model_json_schema(), model.__name__)}

    assert found == set()


def test_every_text_path_parameter_has_a_pattern(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    parameters = [(path, p["name"], p["schema"]) for path, methods in spec["paths"].items()
                  for entry in methods.values() for p in entry.get("parameters", []) if p["in"] == "path"]

    assert [(path, name) for path, name, schema in parameters
            if schema["type"] == "string" and "pattern" not in schema] == []
