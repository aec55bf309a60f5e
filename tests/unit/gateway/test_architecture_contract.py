"""The OpenAPI document keeps the REST contract of shared/ARCHITECTURE.md: its routes, statuses, access and fields.

The design document is not in this repository, so what the mini-program codes against ("REST contract" and "Core
payloads") is copied here: a rename or a removed field fails this test before it reaches a phone. Additions are
fine (README, "Where the code goes beyond"); the contract is only ever extended.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from flask import Flask

from gateway.app import create_app
from gateway.config import GatewaySettings
from tests.fixtures.fake_services import FakeServices

API = "/api/v1"

# Every core route of the contract, with the success status the Core payloads give it (200 when they say none).
CORE_ROUTES: dict[tuple[str, str], int] = {
    ("POST", "/auth/sms-codes"): 202, ("POST", "/auth/login/sms"): 200, ("POST", "/auth/login/password"): 200,
    ("POST", "/auth/login/wechat"): 200, ("POST", "/auth/refresh"): 200, ("POST", "/auth/logout"): 200,
    ("POST", "/auth/password/reset"): 200,
    ("GET", "/me"): 200, ("PATCH", "/me"): 200, ("PUT", "/me/password"): 200, ("POST", "/me/wechat"): 200,
    ("DELETE", "/me/wechat"): 200, ("POST", "/me/identity"): 200, ("GET", "/me/addresses"): 200,
    ("POST", "/me/addresses"): 201, ("PUT", "/me/addresses/{address_id}"): 200,
    ("DELETE", "/me/addresses/{address_id}"): 200, ("GET", "/me/history"): 200, ("DELETE", "/me/history"): 200,
    ("GET", "/me/reviews"): 200,
    ("GET", "/categories"): 200, ("GET", "/brands"): 200, ("GET", "/products"): 200,
    ("GET", "/products/{product_id}"): 200, ("GET", "/products/{product_id}/reviews"): 200,
    ("POST", "/orders/{order_id}/lines/{line_id}/review"): 201,
    ("GET", "/cart"): 200, ("POST", "/cart/items"): 201, ("PATCH", "/cart/items/{item_id}"): 200,
    ("DELETE", "/cart/items/{item_id}"): 200, ("POST", "/checkout/preview"): 200, ("POST", "/orders"): 201,
    ("GET", "/orders"): 200, ("GET", "/orders/{order_id}"): 200, ("POST", "/orders/{order_id}/pay"): 200,
    ("POST", "/orders/{order_id}/cancel"): 200, ("POST", "/orders/{order_id}/confirm-receipt"): 200,
    ("POST", "/orders/{order_id}/after-sales"): 201, ("GET", "/after-sales/{case_id}"): 200,
    ("POST", "/payments/wechat/notify"): 200, ("POST", "/payments/alipay/notify"): 200,
    ("POST", "/member/signup"): 200, ("GET", "/member"): 200, ("GET", "/member/ledger"): 200,
    ("GET", "/member/points"): 200, ("GET", "/member/coupons"): 200, ("POST", "/member/coupons/claim"): 201,
    ("POST", "/member/recharges"): 201, ("POST", "/member/withdrawals"): 201, ("GET", "/member/plans"): 200,
    ("POST", "/member/plans/{plan_id}/subscribe"): 200,
    ("POST", "/track"): 202, ("POST", "/uploads"): 201,
    ("POST", "/admin/products"): 201, ("PUT", "/admin/products/{product_id}"): 200,
    ("POST", "/admin/products/{product_id}/submit"): 200, ("POST", "/admin/products/{product_id}/audit"): 200,
    ("POST", "/admin/products/{product_id}/shelf"): 200, ("GET", "/admin/products/{product_id}/audit-log"): 200,
    ("GET", "/admin/orders"): 200, ("POST", "/admin/orders/{order_id}/ship"): 200,
    ("POST", "/admin/orders/{order_id}/cancel-review"): 200, ("POST", "/admin/after-sales/{case_id}/decision"): 200,
    ("POST", "/admin/withdrawals/{withdrawal_id}/decision"): 200, ("POST", "/admin/coupons"): 201,
    ("GET", "/admin/analytics/overview"): 200, ("PUT", "/admin/users/{user_id}/roles"): 200,
}

# Routes the contract opens to callers without a token (the payment notifies are signed instead; tracking takes a
# device id; the catalog is the shop window).
PUBLIC_ROUTES = {("POST", "/auth/sms-codes"), ("POST", "/auth/login/sms"), ("POST", "/auth/login/password"),
                 ("POST", "/auth/login/wechat"), ("POST", "/auth/refresh"), ("POST", "/auth/password/reset"),
                 ("GET", "/categories"), ("GET", "/brands"), ("GET", "/products"), ("GET", "/products/{product_id}"),
                 ("GET", "/products/{product_id}/reviews"), ("POST", "/payments/wechat/notify"),
                 ("POST", "/payments/alipay/notify"), ("POST", "/track")}

# Roles the contract names for a route: these alone may call it.
ROLES = {("POST", "/admin/products/{product_id}/audit"): ["admin"],
         ("POST", "/admin/withdrawals/{withdrawal_id}/decision"): ["finance"],
         ("PUT", "/admin/users/{user_id}/roles"): ["admin"]}

# Fields of the Core payloads, as dotted paths ("items[].brand.id"); request fields are those a body must accept.
REQUEST_FIELDS: dict[tuple[str, str], list[str]] = {
    ("POST", "/auth/sms-codes"): ["phone", "purpose"],
    ("POST", "/auth/login/sms"): ["phone", "code"],
    ("POST", "/auth/login/wechat"): ["code"],
    ("POST", "/auth/refresh"): ["refresh_token"],
    ("POST", "/me/addresses"): ["receiver_name", "receiver_phone", "province", "city", "district", "detail",
                                "is_default"],
    ("POST", "/me/identity"): ["real_name", "id_number"],
    ("POST", "/cart/items"): ["sku_id", "quantity"],
    ("POST", "/checkout/preview"): ["cart_item_ids", "sku_id", "quantity", "address_id", "coupon_id", "points"],
    ("POST", "/orders"): ["cart_item_ids", "sku_id", "quantity", "address_id", "coupon_id", "points", "note"],
    ("POST", "/orders/{order_id}/pay"): ["channel"],
    ("POST", "/orders/{order_id}/cancel"): ["reason"],
    ("POST", "/orders/{order_id}/after-sales"): ["type", "line_ids", "reason", "images"],
    ("POST", "/member/signup"): ["channel", "invite_code"],
    ("POST", "/member/recharges"): ["amount_fen", "channel"],
    ("POST", "/member/withdrawals"): ["amount_fen"],
    ("POST", "/track"): ["device_id", "events[].type", "events[].page", "events[].referrer", "events[].ts",
                         "events[].session_id"],
    ("POST", "/admin/orders/{order_id}/ship"): ["carrier", "tracking_no"],
    ("POST", "/orders/{order_id}/lines/{line_id}/review"): ["rating", "content", "images"],
    ("POST", "/admin/products"): ["name", "subtitle", "category_id", "brand_id", "description", "images",
                                  "params[].name", "params[].value", "specs[].name", "specs[].values",
                                  "skus[].spec", "skus[].price_fen", "skus[].market_price_fen", "skus[].stock"],
    ("POST", "/admin/products/{product_id}/audit"): ["approve", "reason", "version"],
    ("POST", "/admin/products/{product_id}/shelf"): ["on_shelf"],
    ("POST", "/admin/orders/{order_id}/cancel-review"): ["approve", "reason"],
    ("POST", "/admin/after-sales/{case_id}/decision"): ["approve", "note"],
    ("POST", "/admin/withdrawals/{withdrawal_id}/decision"): ["approve", "note"],
    ("POST", "/admin/coupons"): ["name", "kind", "amount_fen", "percent_off", "threshold_fen", "cap_fen", "total",
                                 "per_user_limit", "valid_from", "valid_to", "category_ids"],
    ("POST", "/member/coupons/claim"): ["template_id"],
    ("PUT", "/admin/users/{user_id}/roles"): ["roles"],
}

SESSION = ["access_token", "refresh_token", "expires_in", "user.id", "user.phone", "user.nickname"]
ORDER = ["id", "order_no", "status", "payable_fen", "pay_deadline", "lines[].id", "lines[].sku_id", "lines[].name",
         "lines[].spec", "lines[].price_fen", "lines[].quantity", "address", "amounts", "history[].status",
         "history[].kind", "history[].at", "history[].actor", "history[].reason"]
RESPONSE_FIELDS: dict[tuple[str, str], list[str]] = {
    ("POST", "/auth/sms-codes"): ["expires_in", "resend_after", "dev_code"],
    ("POST", "/auth/login/sms"): SESSION,
    ("POST", "/auth/login/wechat"): [*SESSION, "is_new_user"],
    ("POST", "/auth/refresh"): SESSION,
    ("GET", "/me"): ["id", "phone", "nickname", "avatar_url", "gender", "birthday", "region", "identity_verified",
                     "wechat_bound"],
    ("POST", "/me/addresses"): ["id", "receiver_name", "receiver_phone", "province", "city", "district", "detail",
                                "is_default"],
    ("POST", "/me/identity"): ["verified", "real_name", "id_number"],
    ("GET", "/products"): ["items[].id", "items[].name", "items[].subtitle", "items[].main_image", "items[].price_fen",
                           "items[].market_price_fen", "items[].sales", "items[].brand.id", "items[].brand.name",
                           "items[].category_id", "page", "page_size", "total"],
    ("GET", "/products/{product_id}"): ["id", "name", "description", "images", "params[].name", "params[].value",
                                        "specs[].name", "specs[].values", "skus[].id", "skus[].spec",
                                        "skus[].price_fen", "skus[].stock_status", "rating.average", "rating.count",
                                        "after_sales_policy", "delivery.province", "delivery.estimate_days"],
    ("POST", "/cart/items"): ["id", "sku_id", "quantity", "selected"],
    ("GET", "/cart"): ["items[].id", "items[].sku_id", "items[].product_id", "items[].name", "items[].spec",
                       "items[].price_fen", "items[].quantity", "items[].selected", "items[].valid",
                       "items[].price_changed", "selected_total_fen"],
    ("POST", "/checkout/preview"): ["lines", "items_total_fen", "level_discount_fen", "coupon_discount_fen",
                                    "points_discount_fen", "freight_fen", "payable_fen", "usable_coupons"],
    ("POST", "/orders"): ORDER,
    ("GET", "/orders/{order_id}"): ORDER,
    ("POST", "/orders/{order_id}/cancel"): ORDER,
    ("POST", "/admin/orders/{order_id}/ship"): ORDER,
    ("POST", "/admin/orders/{order_id}/cancel-review"): ORDER,
    ("POST", "/orders/{order_id}/pay"): ["channel", "out_trade_no", "wx_request_payment", "status"],
    ("POST", "/orders/{order_id}/after-sales"): ["id", "status"],
    ("POST", "/member/signup"): ["member_no", "level"],
    ("GET", "/member"): ["member_no", "level", "discount_rate", "points", "balance_fen", "pending_fen",
                         "coupons_available", "total_spend_fen", "plan.name", "plan.expires_at"],
    ("POST", "/member/recharges"): ["id", "recharge_no", "status", "payment"],
    ("POST", "/member/withdrawals"): ["id", "status", "amount_fen"],
    ("POST", "/track"): ["accepted"],
    ("GET", "/admin/analytics/overview"): ["page_views", "unique_visitors", "visits", "new_users", "orders",
                                           "paying_users", "gmv_fen"],
    ("GET", "/categories"): ["items[].id", "items[].name", "items[].icon", "items[].children"],
    ("GET", "/brands"): ["items[].id", "items[].name", "items[].logo"],
    ("POST", "/uploads"): ["url", "width", "height"],
    ("POST", "/admin/products"): ["id", "status", "on_shelf"],
    ("POST", "/admin/products/{product_id}/submit"): ["status"],
    ("POST", "/admin/products/{product_id}/audit"): ["status"],
    ("POST", "/admin/products/{product_id}/shelf"): ["id", "status", "on_shelf"],
    ("GET", "/admin/products/{product_id}/audit-log"): ["items[].actor", "items[].action", "items[].at",
                                                        "items[].before", "items[].after"],
    # Not in the Core payloads, but the wallet's ledger is money: "Money fields are integers in fen named *_fen".
    ("GET", "/member/ledger"): ["items[].amount_fen", "items[].balance_after_fen", "items[].created_at"],
}

# Every list of the contract pages as `{"items", "page", "page_size", "total"}` (?page, ?page_size up to 100).
PAGED_LISTS = [("GET", "/orders"), ("GET", "/products"), ("GET", "/me/addresses"), ("GET", "/me/history"),
               ("GET", "/me/reviews"), ("GET", "/products/{product_id}/reviews"), ("GET", "/member/ledger"),
               ("GET", "/member/points"), ("GET", "/member/coupons"), ("GET", "/admin/orders"),
               ("GET", "/admin/products/{product_id}/audit-log")]

# Money is integer fen named *_fen: integer fields with these names would be money under another name.
MONEY_WORDS = re.compile(r"(^|_)(amount|price|balance|cost|fee|gmv|payable|freight|spend|payout|refund)(_|$)")
# Money-looking names that are not money, each with why.
NOT_MONEY = {("LedgerEntryOut", "amount"): "points",
             ("LedgerEntryOut", "balance_after"): "points",
             ("Mismatch", "balance"): "the staff ledger audit: fen or points, by the account it names"}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    """The document the gateway serves (built once for the module: each test only reads it)."""
    pem = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    app: Flask = create_app(GatewaySettings(jwt_public_key_pem=pem, consul_http_addr=None, grpc_timeout_seconds=1,
                                            log_level="INFO", environ={}), FakeServices())
    return app.test_client().get("/openapi.json").get_json()  # type: ignore[no-any-return]


def operation_of(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    return spec["paths"].get(API + path, {}).get(method.lower(), {})  # type: ignore[no-any-return]


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The schema itself: references followed, a nullable `anyOf` taken for its one non-null branch."""
    while True:
        if "$ref" in schema:
            schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        elif "anyOf" in schema:
            schema = next(s for s in schema["anyOf"] if s.get("type") != "null")
        elif schema.get("type") == "array" and "items" in schema:
            schema = schema["items"]
        else:
            return schema


def has_field(spec: dict[str, Any], schema: dict[str, Any], dotted: str) -> bool:
    for part in dotted.replace("[]", "").split("."):
        properties = resolve(spec, schema).get("properties", {})
        if part not in properties:
            return False
        schema = properties[part]
    return True


def success_schema(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    responses = operation_of(spec, method, path)["responses"]
    status = next(s for s in responses if s.startswith("2"))
    return responses[status]["content"]["application/json"]["schema"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(("method", "path"), sorted(CORE_ROUTES))
def test_every_core_route_is_served_with_its_success_status(spec: dict[str, Any], method: str, path: str) -> None:
    operation = operation_of(spec, method, path)

    assert [s for s in operation.get("responses", {}) if s.startswith("2")] == [str(CORE_ROUTES[method, path])]


@pytest.mark.parametrize(("method", "path"), sorted(CORE_ROUTES))
def test_a_core_route_needs_a_token_unless_the_contract_opens_it(spec: dict[str, Any], method: str, path: str) -> None:
    security = operation_of(spec, method, path).get("security")
    anonymous = security is None or {} in security

    assert anonymous == ((method, path) in PUBLIC_ROUTES or path == "/auth/logout")  # logout: its refresh token


@pytest.mark.parametrize(("method", "path"), sorted(CORE_ROUTES))
def test_admin_routes_take_staff_roles_and_the_ones_the_contract_names(spec: dict[str, Any], method: str,
                                                                        path: str) -> None:
    roles = operation_of(spec, method, path).get("x-roles", [])

    if (method, path) in ROLES:
        assert roles == ROLES[method, path]
    assert bool(roles) == path.startswith("/admin/")
    assert set(roles) <= {"admin", "operator", "customer_service", "finance"}


@pytest.mark.parametrize(("method", "path"), sorted(REQUEST_FIELDS))
def test_a_body_accepts_the_fields_of_the_contract(spec: dict[str, Any], method: str, path: str) -> None:
    body = operation_of(spec, method, path)["requestBody"]["content"]["application/json"]["schema"]

    assert [f for f in REQUEST_FIELDS[method, path] if not has_field(spec, body, f)] == []


@pytest.mark.parametrize(("method", "path"), sorted(RESPONSE_FIELDS))
def test_an_answer_carries_the_fields_of_the_contract(spec: dict[str, Any], method: str, path: str) -> None:
    answer = success_schema(spec, method, path)

    assert [f for f in RESPONSE_FIELDS[method, path] if not has_field(spec, answer, f)] == []


@pytest.mark.parametrize(("method", "path"), PAGED_LISTS)
def test_a_list_is_a_page(spec: dict[str, Any], method: str, path: str) -> None:
    operation = operation_of(spec, method, path)
    answer = resolve(spec, success_schema(spec, method, path))
    page_size = next(p["schema"] for p in operation["parameters"] if p["name"] == "page_size")

    assert {"items", "page", "page_size", "total"} <= set(answer["required"])
    assert {p["name"] for p in operation["parameters"] if p["in"] == "query"} >= {"page", "page_size"}
    assert (page_size["default"], page_size["maximum"]) == (20, 100)


def test_money_in_answers_is_named_fen(spec: dict[str, Any]) -> None:
    """Every integer field of an answer whose name says money ends in _fen (points are not money); a field kept
    for clients written before, beside its `_fen` twin, is marked deprecated."""
    schemas = spec["components"]["schemas"]
    to_read = _schemas_named_in([op["responses"] for methods in spec["paths"].values() for op in methods.values()])
    seen: set[str] = set()
    misnamed: list[tuple[str, str]] = []
    while to_read:
        name = to_read.pop()
        seen.add(name)
        for field, prop in schemas[name].get("properties", {}).items():
            to_read |= _schemas_named_in(prop) - seen
            integer = '"integer"' in _dumps(prop) and '"array"' not in _dumps(prop)
            if (integer and MONEY_WORDS.search(field) and not field.endswith("_fen") and not prop.get("deprecated")
                    and (name, field) not in NOT_MONEY):
                misnamed.append((name, field))

    assert len(seen) > 50  # the answers were read, and the models inside them
    assert misnamed == []


def test_times_in_answers_are_date_times(spec: dict[str, Any]) -> None:
    """Every `*_at` field and deadline of an answer is declared an ISO 8601 date-time."""
    untyped = [(name, field) for name, schema in spec["components"]["schemas"].items()
               for field, prop in schema.get("properties", {}).items()
               if (field.endswith("_at") or field.endswith("deadline") or field == "at")
               and '"date-time"' not in _dumps(prop)]

    assert untyped == []


def _dumps(value: object) -> str:
    return json.dumps(value)


def _schemas_named_in(value: object) -> set[str]:
    return set(re.findall(r'"#/components/schemas/([^"]+)"', _dumps(value)))
