"""Request ids, what is passed on to the services with each call, and input validation."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from mall.order.v1 import order_pb2
from mall.product.v1 import product_pb2
from pydantic import Field, ValidationError

from gateway.api import Query
from services.common.logs import request_id_var

SMS_CODES = "/api/v1/auth/sms-codes"
OVERVIEW = "/api/v1/admin/analytics/overview"
GENERATED_ID = re.compile(r"[0-9a-f]{32}")


# Request ids

@pytest.mark.parametrize("incoming", ["abc-123", "req.2026_11_26", "A" * 64])
def test_well_formed_request_id_from_the_client_is_echoed(client: FlaskClient, incoming: str) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": incoming})

    assert response.headers["X-Request-ID"] == incoming


@pytest.mark.parametrize("incoming", ["has space", "A" * 65, "semi;colon", "<script>", "中文"])
def test_malformed_request_id_is_replaced_by_a_fresh_one(client: FlaskClient, incoming: str) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": incoming.encode().decode("latin-1")})

    assert GENERATED_ID.fullmatch(response.headers["X-Request-ID"])


def test_request_without_id_gets_a_fresh_one_each_time(client: FlaskClient) -> None:
    first, second = (client.get("/healthz").headers["X-Request-ID"] for _ in range(2))

    assert (bool(GENERATED_ID.fullmatch(first)), bool(GENERATED_ID.fullmatch(second)), first != second) == (
        True, True, True)


def test_error_body_carries_the_request_id(client: FlaskClient) -> None:
    response = client.get("/no/such/page", headers={"X-Request-ID": "trace-me-1"})

    assert response.get_json()["error"]["request_id"] == "trace-me-1"


def test_request_id_is_not_left_behind_after_the_request(client: FlaskClient) -> None:
    client.get("/healthz", headers={"X-Request-ID": "leak-check"})

    assert request_id_var.get() == ""


def test_request_id_and_bearer_token_are_passed_to_the_service(client: FlaskClient, clients, mint) -> None:
    token = mint(roles="admin")

    client.get(OVERVIEW, headers={"X-Request-ID": "abc-123", "Authorization": f"Bearer {token}"})

    call = clients.analytics.GetOverview.calls[0]
    assert (call.metadata, call.timeout) == ({"x-request-id": "abc-123", "authorization": f"Bearer {token}"}, 2.5)


def test_generated_request_id_is_the_one_passed_to_the_service(client: FlaskClient, clients) -> None:
    response = client.post(SMS_CODES, json={"phone": "13800138000", "purpose": "login"})

    assert clients.user.SendSmsCode.calls[0].metadata == {"x-request-id": response.headers["X-Request-ID"]}


# Validation: the gateway checks the shape of input; the services check what it means

def test_body_missing_a_required_field_is_refused_naming_it(client: FlaskClient) -> None:
    response = client.post(SMS_CODES, json={"phone": "13800138000"}, headers={"X-Request-ID": "r1"})

    assert (response.status_code, response.get_json()) == (400, {"error": {
        "code": "INVALID_REQUEST", "message": "the request body is invalid", "request_id": "r1",
        "details": {"purpose": "Field required"}}})


def test_every_bad_field_is_reported(client: FlaskClient) -> None:
    response = client.post(SMS_CODES, json={"phone": 13800138000, "purpose": ["login"]})

    assert (response.status_code, response.get_json()["error"]["details"]) == (
        400, {"phone": "Input should be a valid string", "purpose": "Input should be 'login', 'reset', 'bind', 'unbind' or 'signup'"})


def test_body_values_are_not_coerced(client: FlaskClient, clients) -> None:
    response = client.post("/api/v1/auth/login/sms", json={"phone": "13800138000", "code": 123456})

    assert (response.status_code, response.get_json()["error"]["details"], clients.user.LoginWithSms.calls) == (
        400, {"code": "Input should be a valid string"}, [])


CART_ITEMS = "/api/v1/cart/items"


def test_a_whole_number_written_with_a_fraction_is_that_integer(client: FlaskClient, clients, bearer) -> None:
    # JSON has one number type: to JSON Schema (the OpenAPI document) 2.0 is the integer 2. Found by schemathesis.
    clients.order.AddCartItem.reply = order_pb2.CartItem(id=1, sku_id=101, quantity=2, valid=True)

    response = client.post(CART_ITEMS, data='{"sku_id": 101.0, "quantity": 2e0}', content_type="application/json",
                           headers=bearer())

    assert (response.status_code, clients.order.AddCartItem.calls[0].message) == (
        201, order_pb2.AddCartItemRequest(sku_id=101, quantity=2))


@pytest.mark.parametrize("body", ['{"sku_id": 101, "quantity": 1, "quantity": 999}',
                                  '{"sku_id": 101, "quantity": 1, "quantit\\u0079": 999}'])
def test_a_field_given_twice_in_a_body_is_refused_and_nothing_is_called(client: FlaskClient, clients, bearer,
                                                                        body: str) -> None:
    # Found fuzzing by hand: the last value silently won, as `?quantity=1&quantity=999` never does.
    response = client.post(CART_ITEMS, data=body, content_type="application/json", headers=bearer())

    assert (response.status_code, response.get_json()["error"]["details"], clients.order.AddCartItem.calls) == (
        400, {"quantity": "given more than once"}, [])


def test_a_field_given_twice_in_a_nested_object_is_refused(client: FlaskClient, clients, bearer) -> None:
    response = client.post("/api/v1/orders/5/after-sales", data='{"type": "refund_only", "reason": "坏了", '
                           '"lines": [{"line_id": 1, "quantity": 1, "line_id": 2}]}', content_type="application/json",
                           headers=bearer())

    assert (response.status_code, response.get_json()["error"]["details"], clients.called()) == (
        400, {"line_id": "given more than once"}, [])


def test_whole_numbers_with_a_fraction_in_a_list_of_ids_are_those_integers(client: FlaskClient, clients,
                                                                           bearer) -> None:
    clients.order.QuoteCheckout.reply = order_pb2.CheckoutQuote()

    response = client.post("/api/v1/checkout/preview", data='{"cart_item_ids": [3.0, 4], "address_id": 7.0}',
                           content_type="application/json", headers=bearer())

    assert (response.status_code, clients.order.QuoteCheckout.calls[0].message) == (
        200, order_pb2.CheckoutRequest(cart_item_ids=[3, 4], address_id=7))


@pytest.mark.parametrize(("quantity", "problem"), [
    ("2.5", "Input should be a valid integer"),
    ('"2"', "Input should be a valid integer"),
    ("true", "Input should be a valid integer"),
    ("1e300", "Input should be a valid integer"),
    ("1e3", "Input should be less than or equal to 999"),
])
def test_a_number_that_is_not_whole_is_still_refused(client: FlaskClient, clients, bearer, quantity: str,
                                                     problem: str) -> None:
    response = client.post(CART_ITEMS, data=f'{{"sku_id": 101, "quantity": {quantity}}}',
                           content_type="application/json", headers=bearer())

    assert (response.status_code, response.get_json()["error"]["details"], clients.order.AddCartItem.calls) == (
        400, {"quantity": problem}, [])


def test_a_whole_number_with_a_fraction_is_read_from_its_text_not_through_a_float(client: FlaskClient, clients,
                                                                                  bearer) -> None:
    # As a float 9007199254740993.0 would be 9007199254740992: another SKU than the one the client named.
    clients.order.AddCartItem.reply = order_pb2.CartItem(id=1, sku_id=9007199254740993, quantity=1, valid=True)

    response = client.post(CART_ITEMS, data='{"sku_id": 9007199254740993.0, "quantity": 1}',
                           content_type="application/json", headers=bearer())

    assert (response.status_code, clients.order.AddCartItem.calls[0].message.sku_id) == (201, 9007199254740993)


def test_unknown_body_field_is_refused(client: FlaskClient) -> None:
    response = client.post(SMS_CODES, json={"phone": "13800138000", "purpose": "login", "debug": True})

    assert (response.status_code, response.get_json()["error"]["details"]) == (
        400, {"debug": "Extra inputs are not permitted"})


def test_a_huge_unknown_field_name_is_not_echoed_whole(client: FlaskClient) -> None:
    response = client.post(SMS_CODES, json={"phone": "13800138000", "purpose": "login", "x" * 100_000: 1})

    assert (response.status_code, response.get_json()["error"]["details"]) == (
        400, {"x" * 64 + "…": "Extra inputs are not permitted"})


@pytest.mark.parametrize("value", ["hunter2-secret-" + "x" * 200, "A" * 300_000, None, 12.5, ["hunter2-secret"]])
def test_field_errors_never_repeat_the_value_sent(client: FlaskClient, value: object) -> None:
    response = client.post("/api/v1/auth/login/password", json={"phone": "13800138000", "password": value})

    text = response.get_data(as_text=True)
    assert (response.status_code, str(value) in text, "None" in text, len(text) < 500) == (400, False, False, True)


def test_length_limits_are_enforced_before_the_service_is_called(client: FlaskClient, clients) -> None:
    response = client.post("/api/v1/auth/login/password", json={"phone": "13800138000", "password": "p" * 129})

    assert (response.status_code, response.get_json()["error"]["details"], clients.user.LoginWithPassword.calls) == (
        400, {"password": "String should have at most 128 characters"}, [])


@pytest.mark.parametrize(("data", "content_type", "status"), [
    ("phone=13800138000&purpose=login", "application/x-www-form-urlencoded", 415),
    ("{not json", "application/json", 400),
    ("", "application/json", 400),
])
def test_body_that_is_not_json_is_refused(client: FlaskClient, data: str, content_type: str, status: int) -> None:
    response = client.post(SMS_CODES, data=data, content_type=content_type)

    assert (response.status_code, response.get_json()["error"]["code"]) == (
        status, "INVALID_REQUEST" if status == 400 else "UNSUPPORTED_MEDIA_TYPE")


def test_json_nested_thousands_deep_is_a_400_not_a_500(client: FlaskClient) -> None:
    deep = "[" * 100_000 + "]" * 100_000

    response = client.post(SMS_CODES, data=deep, content_type="application/json")

    assert (response.status_code, response.get_json()["error"]) == (400, {
        "code": "INVALID_REQUEST", "message": "the request body is invalid",
        "request_id": response.headers["X-Request-ID"], "details": {"body": "not valid JSON (or nested too deeply)"}})


def test_json_that_is_not_an_object_is_refused(client: FlaskClient) -> None:
    response = client.post(SMS_CODES, json=["13800138000", "login"])

    assert (response.status_code, response.get_json()["error"]["details"]) == (
        400, {"body": "Input should be an object"})


def test_invalid_request_never_reaches_the_service(client: FlaskClient, clients) -> None:
    client.post(SMS_CODES, json={"phone": "13800138000"})

    assert clients.user.SendSmsCode.calls == []


@pytest.mark.parametrize("phone", ["13800138000\n", "1380013800", "12800138000", "１３８００１３８０００", " 13800138000"])
def test_a_phone_must_match_the_pattern_whole(client: FlaskClient, clients, phone: str) -> None:
    response = client.post(SMS_CODES, json={"phone": phone, "purpose": "login"})

    assert (response.status_code, list(response.get_json()["error"]["details"]), clients.user.SendSmsCode.calls) == (
        400, ["phone"], [])


def test_sms_purpose_must_be_one_of_the_documented_ones(client: FlaskClient, clients) -> None:
    response = client.post(SMS_CODES, json={"phone": "13800138000", "purpose": "payment"})

    assert (response.status_code, response.get_json()["error"]["details"], clients.user.SendSmsCode.calls) == (
        400, {"purpose": "Input should be 'login', 'reset', 'bind', 'unbind' or 'signup'"}, [])


def test_unknown_query_parameter_is_refused(client: FlaskClient, bearer) -> None:
    response = client.get(f"{OVERVIEW}?since=2026-11-01", headers=bearer(roles="admin"))

    assert (response.status_code, response.get_json()["error"]["details"]) == (
        400, {"since": "Extra inputs are not permitted"})


def test_a_query_string_on_an_operation_without_parameters_is_refused(client: FlaskClient, clients) -> None:
    response = client.post(f"{SMS_CODES}?debug=1", json={"phone": "13800138000", "purpose": "login"})

    assert (response.status_code, response.get_json()["error"]["details"], clients.user.SendSmsCode.calls) == (
        400, {"debug": "unknown parameter"}, [])


PRODUCTS = "/api/v1/products"


@pytest.mark.parametrize(("query", "named"), [
    ("q=%ff", "q"), ("q=%E6%89", "q"), ("q=%C0%AF", "q"), ("q=%ED%A0%80", "q"),  # a stray, cut, overlong, surrogate
    ("q=%E6%89%8B&brand_id=%ff", "brand_id"), ("%ff=1", "\\xff")])
def test_a_query_parameter_that_is_not_utf8_is_a_400_naming_it_and_nothing_is_searched(
        client: FlaskClient, clients, query: str, named: str) -> None:
    response = client.get(f"{PRODUCTS}?{query}")

    error = response.get_json()["error"]
    assert (response.status_code, error["code"], error["details"], clients.product.SearchProducts.calls) == (
        400, "QUERY_ENCODING_INVALID", {named: "not valid UTF-8"}, [])


def test_a_raw_query_byte_that_is_not_utf8_is_a_400_not_a_500(client: FlaskClient, clients) -> None:
    response = client.get(PRODUCTS, environ_overrides={"QUERY_STRING": "q=\xff"})  # as a server passes it on: latin-1

    assert (response.status_code, response.get_json()["error"]["code"], clients.product.SearchProducts.calls) == (
        400, "QUERY_ENCODING_INVALID", [])


def test_a_query_in_utf8_percent_encoded_or_not_is_searched_as_written(client: FlaskClient, clients) -> None:
    clients.product.SearchProducts.reply = product_pb2.SearchProductsResponse()

    encoded = client.get(f"{PRODUCTS}?q=%E6%89%8B%E6%9C%BA+%2B1")
    raw = client.get(PRODUCTS, environ_overrides={"QUERY_STRING": "q=手机".encode().decode("latin-1")})

    assert ([encoded.status_code, raw.status_code], [c.message.q for c in clients.product.SearchProducts.calls]) == (
        [200, 200], ["手机 +1", "手机"])


ORDERS = "/api/v1/orders"


@pytest.mark.parametrize("written", [" 1", "1 ", "+1", "1_000", "01", "00", "1.0", "1e2", "0x1", "١", "１", ""])
def test_a_query_integer_is_taken_only_in_ascii_digits_as_written(client: FlaskClient, clients, bearer,
                                                                   written: str) -> None:
    response = client.get(ORDERS, query_string={"page": written}, headers=bearer())

    assert (response.status_code, response.get_json()["error"]["code"], list(response.get_json()["error"]["details"]),
            clients.order.ListOrders.calls) == (400, "INVALID_REQUEST", ["page"], [])


def test_a_query_integer_written_plainly_is_read(client: FlaskClient, clients, bearer) -> None:
    clients.order.ListOrders.reply = order_pb2.ListOrdersResponse(total=0)

    response = client.get(f"{ORDERS}?page=12&page_size=10", headers=bearer())

    assert (response.status_code, clients.order.ListOrders.calls[0].message.offset) == (200, 110)


@pytest.mark.parametrize(("written", "status"), [("0", 200), ("-0", 400), ("-1", 400), ("+0", 400)])
def test_zero_is_a_query_integer_but_a_signed_zero_or_a_negative_below_the_bound_is_not(
        client: FlaskClient, clients, written: str, status: int) -> None:
    clients.product.SearchProducts.reply = product_pb2.SearchProductsResponse(total=0)

    response = client.get("/api/v1/products", query_string={"price_min_fen": written})

    assert response.status_code == status
    if status == 400:
        assert list(response.get_json()["error"]["details"]) == ["price_min_fen"]


class Shift(Query):
    """A query model with a parameter that may be negative, and a list of integers."""

    delta: int = Field(0, ge=-10, le=10)
    ids: list[int] = []


@pytest.mark.parametrize(("values", "read"), [({"delta": "-3"}, -3), ({"delta": "0"}, 0), ({"delta": "7"}, 7)])
def test_a_negative_query_integer_is_read_where_the_parameter_allows_one(values: dict, read: int) -> None:
    assert Shift.model_validate(values).delta == read


@pytest.mark.parametrize("values", [{"delta": "-03"}, {"delta": "--3"}, {"delta": "- 3"}, {"delta": "-0"},
                                    {"ids": ["1", "+2"]}, {"ids": ["٣"]}])
def test_each_query_integer_is_checked_as_written_lists_included(values: dict) -> None:
    with pytest.raises(ValidationError) as refused:
        Shift.model_validate(values)

    assert [e["type"] for e in refused.value.errors()] == ["integer_text"]


def test_a_body_sharing_a_query_models_integers_still_refuses_them_as_text(client: FlaskClient, clients,
                                                                         bearer) -> None:
    response = client.post("/api/v1/admin/users/search", json={"id": 9, "page": "2"},
                           headers=bearer(roles="customer_service"))

    assert (response.status_code, list(response.get_json()["error"]["details"]), clients.user.SearchUsers.calls) == (
        400, ["page"], [])


def test_the_openapi_document_says_how_query_integers_are_written(client: FlaskClient) -> None:
    description = client.get("/openapi.json").get_json()["info"]["description"]

    assert "An integer in a query string is written in ASCII digits" in description


def test_access_is_checked_before_input(client: FlaskClient) -> None:
    response = client.get(f"{OVERVIEW}?from=bad")

    assert (response.status_code, response.get_json()["error"]["code"]) == (401, "AUTH_REQUIRED")
