"""Access control generated from /openapi.json: no route of tomorrow escapes these checks.

For every documented operation:
- staff operations (`x-roles`) answer a shopper 403, and every bearer-only operation answers 401
  without a token;
- shopper operations whose path names a resource another shopper owns answer 404 (BOLA), with a
  body that would otherwise be valid, and nothing of the owner's changes;
- every request body refuses an unknown field (mass assignment) with 400, statically (the schema
  says `additionalProperties: false`) and on the wire.
A new path parameter fails the suite until OWNED or NOT_OWNED says what it names.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from tests.fixtures.platform import Platform
from tests.fixtures.shop import admin_headers, product_on_shelf, verified_wechat_shopper
from tools.simulator.client import SimulatorClient

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]

METHODS = ("get", "post", "put", "patch", "delete")
# Path parameters naming something a shopper owns: the victim's value is put there.
OWNED = {"order_id", "item_id", "address_id", "line_id", "case_id", "recharge_no"}
# Path parameters naming shared things (the catalogue, plans) or reachable by staff only.
NOT_OWNED = {"product_id", "sku_id", "plan_id", "user_id", "withdrawal_id", "report_id", "category_id", "brand_id",
             "province", "refund_no", "review_id", "template_id"}
# Bodies the minimal-body builder cannot guess (an enum the route narrows further, say).
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/api/v1/orders/{order_id}/pay"): {"channel": "wechat"},
    ("post", "/api/v1/orders/{order_id}/after-sales"): {"type": "refund_only", "reason": "坏了", "line_ids": [1]},
    ("post", "/api/v1/after-sales/{case_id}/return-shipment"): {"carrier": "SF", "tracking_no": "SF1"},
    # a change that changes something: an empty one is refused (400 CART_ITEM_CHANGE_EMPTY) whoever owns the line
    ("patch", "/api/v1/cart/items/{item_id}"): {"quantity": 2},
    ("put", "/api/v1/me/addresses/{address_id}"): {
        "receiver_name": "李四", "receiver_phone": "13900002222", "province": "江苏省", "city": "南京市",
        "district": "玄武区", "detail": "中山路 2 号"},
}
UNKNOWN_FIELDS = {"user_id": 1, "status": "PAID", "paid_fen": 1}


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    spec: dict[str, Any]

    @property
    def params(self) -> list[str]:
        return [p["name"] for p in self.spec.get("parameters", []) if p["in"] == "path"]

    @property
    def staff_only(self) -> bool:
        return bool(self.spec.get("x-roles"))

    @property
    def bearer_only(self) -> bool:
        return self.spec.get("security") == [{"bearer": []}]

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path}"


@pytest.fixture(scope="module")
def spec(platform: Platform) -> dict[str, Any]:
    return requests.get(f"{platform.base_url}/openapi.json", timeout=10).json()


@pytest.fixture(scope="module")
def operations(spec: dict[str, Any]) -> list[Op]:
    ops = [Op(method, path, entry) for path, entries in spec["paths"].items()
           for method, entry in entries.items() if method in METHODS]
    assert len(ops) > 40  # the document was read, not silently empty
    return ops


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def example(spec: dict[str, Any], schema: dict[str, Any]) -> Any:
    """The smallest value the schema accepts: required properties only, lowest bounds, first enum."""
    schema = resolve(spec, schema)
    if "anyOf" in schema:
        return example(spec, next(s for s in schema["anyOf"] if s.get("type") != "null"))
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type")
    if kind == "object":
        return {name: example(spec, schema["properties"][name]) for name in schema.get("required", [])}
    if kind == "array":
        return [example(spec, schema["items"]) for _ in range(schema.get("minItems", 0))]
    if kind == "integer":
        return max(schema.get("minimum", 1), 1)
    if kind == "boolean":
        return True
    if kind == "string":
        return "x" * max(schema.get("minLength", 1), 1)
    return None


def body_for(spec: dict[str, Any], op: Op) -> dict[str, Any] | None:
    if (op.method, op.path) in BODIES:
        return BODIES[op.method, op.path]
    json_body = op.spec.get("requestBody", {}).get("content", {}).get("application/json")
    if json_body is None:  # none, or not JSON (POST /uploads: multipart, the file refused or asked for unsent)
        return None
    return example(spec, json_body["schema"])


def call(platform: Platform, op: Op, ids: dict[str, int | str], headers: dict[str, str],
         body: dict[str, Any] | None) -> requests.Response:
    path = op.path.removeprefix("/api/v1")
    for name in op.params:
        path = path.replace("{" + name + "}", str(ids[name]))
    return requests.request(op.method.upper(), f"{platform.api}{path}", json=body, timeout=10,
                            headers={**headers, "Idempotency-Key": uuid.uuid4().hex})


@dataclass
class Shopper:
    headers: dict[str, str]
    ids: dict[str, int | str]


def shopper_with_things(platform: Platform) -> Shopper:
    """A verified shopper with an address, a cart line, a shipped order and an after-sales case on it, and a
    recharge: one of each thing a shopper owns."""
    api = platform.api
    _, sku_id = product_on_shelf(platform, stock=50, price_fen=1200)
    headers, address_id = verified_wechat_shopper(platform)
    item = requests.post(f"{api}/cart/items", json={"sku_id": sku_id, "quantity": 1}, headers=headers, timeout=10)
    assert item.status_code == 201, item.text
    order = requests.post(f"{api}/orders", json={"sku_id": sku_id, "quantity": 2, "address_id": address_id},
                          headers={**headers, "Idempotency-Key": uuid.uuid4().hex}, timeout=10)
    assert order.status_code == 201, order.text
    order_id, line_id = order.json()["id"], order.json()["lines"][0]["id"]
    pay = requests.post(f"{api}/orders/{order_id}/pay", json={"channel": "wechat"}, headers=headers, timeout=10)
    assert SimulatorClient(platform.simulator_url).wechatpay_pay(pay.json()["out_trade_no"])["notify_status"] == 200
    shipped = requests.post(f"{api}/admin/orders/{order_id}/ship", headers=admin_headers(platform), timeout=10,
                            json={"carrier": "SF", "tracking_no": f"SF{uuid.uuid4().hex[:12]}"})
    assert shipped.status_code == 200, shipped.text
    case = requests.post(f"{api}/orders/{order_id}/after-sales", headers=headers, timeout=10, json={
        "type": "refund_only", "reason": "少了一件", "lines": [{"line_id": line_id, "quantity": 1}]})
    assert case.status_code == 201, case.text
    recharge = requests.post(f"{api}/member/recharges", json={"amount_fen": 1_000, "channel": "bank_card"},
                             headers={**headers, "Idempotency-Key": uuid.uuid4().hex}, timeout=10)
    assert recharge.status_code == 201, recharge.text
    return Shopper(headers, {"order_id": order_id, "item_id": item.json()["id"], "address_id": address_id,
                             "line_id": line_id, "case_id": case.json()["id"],
                             "recharge_no": recharge.json()["recharge_no"]})


def snapshot(platform: Platform, shopper: Shopper) -> list[Any]:
    """Everything a shopper can see of what they own."""
    answers = [requests.get(f"{platform.api}{path}", headers=shopper.headers, timeout=10).json()
               for path in ("/orders", f"/orders/{shopper.ids['order_id']}", "/cart", "/me/addresses", "/member",
                            f"/after-sales/{shopper.ids['case_id']}", "/me/reviews", "/member/recharges")]
    return [{"error": answer["error"]["code"]} if "error" in answer else answer for answer in answers]


@pytest.fixture(scope="module")
def victim(platform: Platform) -> Shopper:
    return shopper_with_things(platform)


@pytest.fixture(scope="module")
def intruder(platform: Platform) -> Shopper:
    return shopper_with_things(platform)


@pytest.fixture(scope="module")
def victim_unchanged(platform: Platform, victim: Shopper) -> Iterator[None]:
    before = snapshot(platform, victim)
    yield
    assert snapshot(platform, victim) == before


def test_every_path_parameter_is_known_to_the_battery(operations: list[Op]) -> None:
    unknown = {name for op in operations for name in op.params} - OWNED - NOT_OWNED
    assert unknown == set(), f"say in OWNED or NOT_OWNED what these name: {sorted(unknown)}"


def test_every_request_body_refuses_unknown_fields_in_its_schema(spec: dict[str, Any], operations: list[Op]) -> None:
    open_bodies = [str(op) for op in operations
                   if "application/json" in op.spec.get("requestBody", {}).get("content", {})
                   and resolve(spec, op.spec["requestBody"]["content"]["application/json"]["schema"])
                   .get("additionalProperties") is not False]
    assert open_bodies == []


def test_staff_operations_answer_a_shopper_403(platform: Platform, spec: dict[str, Any], operations: list[Op],
                                               intruder: Shopper) -> None:
    staff_ops = [op for op in operations if op.staff_only]
    answers = {str(op): call(platform, op, {name: 1 for name in op.params}, intruder.headers,
                             body_for(spec, op)).status_code for op in staff_ops}
    assert len(staff_ops) >= 10
    assert {op: status for op, status in answers.items() if status != 403} == {}


def test_bearer_only_operations_answer_401_without_a_token(platform: Platform, spec: dict[str, Any],
                                                           operations: list[Op]) -> None:
    protected = [op for op in operations if op.bearer_only]
    answers = {str(op): call(platform, op, {name: 1 for name in op.params}, {}, body_for(spec, op)).status_code
               for op in protected}
    assert {op: status for op, status in answers.items() if status != 401} == {}


def test_another_shoppers_things_answer_404_and_stay_as_they_were(
        platform: Platform, spec: dict[str, Any], operations: list[Op], victim: Shopper, intruder: Shopper,
        victim_unchanged: None) -> None:
    targeted = [op for op in operations if not op.staff_only and OWNED & set(op.params)]
    answers = {str(op): call(platform, op, {**intruder.ids, **{n: victim.ids[n] for n in op.params if n in OWNED}},
                             intruder.headers, body_for(spec, op)) for op in targeted}
    assert len(targeted) >= 8
    wrong = {op: (reply.status_code, reply.text[:200]) for op, reply in answers.items() if reply.status_code != 404}
    assert wrong == {}
    assert {reply.json()["error"]["code"] for reply in answers.values()} <= {
        "ORDER_NOT_FOUND", "CART_ITEM_NOT_FOUND", "ADDRESS_NOT_FOUND", "NOT_FOUND", "ORDER_LINE_NOT_FOUND",
        "AFTER_SALE_NOT_FOUND", "RECHARGE_NOT_FOUND"}


def test_unknown_fields_in_a_shoppers_own_requests_are_refused_and_change_nothing(
        platform: Platform, spec: dict[str, Any], operations: list[Op], intruder: Shopper) -> None:
    with_bodies = [op for op in operations if not op.staff_only
                   and "application/json" in op.spec.get("requestBody", {}).get("content", {})
                   and set(op.params) <= OWNED | NOT_OWNED]
    before = snapshot(platform, intruder)
    answers = {str(op): call(platform, op, {**{n: 1 for n in op.params}, **intruder.ids}, intruder.headers,
                             {**(body_for(spec, op) or {}), **UNKNOWN_FIELDS}) for op in with_bodies}
    assert len(with_bodies) >= 10
    wrong = {op: (reply.status_code, reply.text[:200]) for op, reply in answers.items()
             if reply.status_code != 400 or not set(UNKNOWN_FIELDS) <= set(reply.json()["error"].get("details", {}))}
    assert wrong == {}
    assert snapshot(platform, intruder) == before
