"""The OpenAPI document is valid, declares path parameters, and views answer only what they declare."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from typing import Annotated

import pytest
from flask import Blueprint, Flask
from hypothesis import given
from hypothesis import strategies as st
from openapi_spec_validator import validate
from pydantic import AwareDatetime, ValidationError

from gateway.api import (
    CONTROL_CHARACTER,
    CONTROL_CHARACTER_BUT_LINE_BREAKS,
    IDEMPOTENCY_HEADER,
    IDEMPOTENCY_KEY_SCHEMA,
    MULTILINE_TEXT_PATTERN,
    RULE_VARIABLE,
    TEXT_PATTERN,
    Body,
    Page,
    PageQuery,
    Reply,
    Years,
    operation,
)
from gateway.app import create_app
from gateway.config import GatewaySettings
from services.common import formats, idempotency
from services.common.errors import InvalidInput
from tests.fixtures.fake_services import FakeServices


class Thing(Reply):
    """A thing."""

    id: int
    name: str


def things_app(settings: GatewaySettings, answer: object = None) -> Flask:
    """The gateway with one extra blueprint: a list and a detail route with a path parameter."""
    bp = Blueprint("things", __name__, url_prefix="/api/v1/things")

    @bp.get("")
    @operation(summary="List things", tag="things", query=PageQuery, responses={200: Page[Thing]})
    def list_things(query: PageQuery) -> Page[Thing]:
        everything = [Thing(id=n, name=f"thing {n}") for n in range(1, 46)]
        return Page[Thing].of(everything[query.offset:query.offset + query.page_size], query, total=len(everything))

    @bp.get("/<id:thing_id>")
    @operation(summary="One thing", tag="things", responses={200: Thing})
    def get_thing(thing_id: int) -> object:
        return answer if answer is not None else Thing(id=thing_id, name="a thing")

    app = create_app(settings, FakeServices())
    app.register_blueprint(bp)
    return app


@pytest.fixture
def things(settings: GatewaySettings) -> Flask:
    return things_app(settings)


def test_the_openapi_document_is_valid_openapi_3_1(client) -> None:  # type: ignore[no-untyped-def]
    validate(client.get("/openapi.json").get_json())


def test_a_document_with_path_parameters_and_pages_is_valid_too(things: Flask) -> None:
    validate(things.test_client().get("/openapi.json").get_json())


def test_path_parameters_are_declared_with_their_type(things: Flask) -> None:
    spec = things.test_client().get("/openapi.json").get_json()

    assert spec["paths"]["/api/v1/things/{thing_id}"]["get"]["parameters"] == [
        {"name": "thing_id", "in": "path", "required": True,
         "schema": {"type": "integer", "minimum": 1, "maximum": 999_999_999_999_999_999}}]


@pytest.mark.parametrize("raw", ["0", "-1", "abc", "1" * 19, "1.5"])
def test_an_id_that_is_not_a_positive_int64_is_not_found(things: Flask, bearer, raw: str) -> None:  # type: ignore[no-untyped-def]
    response = things.test_client().get(f"/api/v1/things/{raw}", headers=bearer())

    assert (response.status_code, response.get_json()["error"]["code"]) == (404, "NOT_FOUND")


def test_a_path_parameter_reaches_the_view_as_an_int(things: Flask, bearer) -> None:  # type: ignore[no-untyped-def]
    response = things.test_client().get("/api/v1/things/123456789012345678", headers=bearer())

    assert (response.status_code, response.get_json()) == (200, {"id": 123456789012345678, "name": "a thing"})


def test_query_values_are_coerced_and_a_page_says_where_it_is(things: Flask, bearer) -> None:  # type: ignore[no-untyped-def]
    response = things.test_client().get("/api/v1/things?page=3&page_size=20", headers=bearer())

    body = response.get_json()
    assert (response.status_code, [t["id"] for t in body["items"]], body["page"], body["page_size"], body["total"]) == (
        200, [41, 42, 43, 44, 45], 3, 20, 45)


@pytest.mark.parametrize(("query", "field"), [("page_size=101", "page_size"), ("page=0", "page"),
                                              ("page=two", "page")])
def test_page_bounds_are_enforced(things: Flask, bearer, query: str, field: str) -> None:  # type: ignore[no-untyped-def]
    response = things.test_client().get(f"/api/v1/things?{query}", headers=bearer())

    assert (response.status_code, list(response.get_json()["error"]["details"])) == (400, [field])


def test_a_view_answering_an_undeclared_model_is_a_500_not_a_silent_contract_break(
        settings: GatewaySettings, bearer) -> None:  # type: ignore[no-untyped-def]
    app = things_app(settings, answer=Page.of([], PageQuery(), total=0))

    response = app.test_client().get("/api/v1/things/1", headers=bearer())

    assert (response.status_code, response.get_json()["error"]["code"]) == (500, "INTERNAL")


def test_a_query_parameter_given_twice_is_refused_not_picked(settings: GatewaySettings, bearer) -> None:  # type: ignore[no-untyped-def]
    client = things_app(settings).test_client()

    reply = client.get("/api/v1/things?page=1&page=2", headers=bearer())

    assert (reply.status_code, reply.get_json()["error"]["details"]) == (400, {"page": "given more than once"})


def reads_the_idempotency_key(view: object) -> bool:
    """Whether a view's own code (not its decorators) takes or names the key: the keyword, or the header itself."""
    code = ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(view)))).body[0]  # type: ignore[arg-type]
    if not isinstance(code, ast.FunctionDef):  # Flask's static view, a lambda
        return False
    names = {arg.arg for arg in code.args.args + code.args.kwonlyargs}
    for node in ast.walk(ast.Module(body=code.body, type_ignores=[])):
        if isinstance(node, ast.Name | ast.keyword | ast.Attribute):
            names.add(getattr(node, "id", None) or getattr(node, "arg", None) or getattr(node, "attr", ""))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                node.value.lower() == IDEMPOTENCY_HEADER.lower():
            return True
    return "idempotency_key" in names


# Routes that took no key before, kept working for clients that send none: the header is declared, optional.
KEY_OPTIONAL = {("/api/v1/member/coupons/claim", "post"), ("/api/v1/admin/products", "post"),
                ("/api/v1/admin/coupons", "post"), ("/api/v1/admin/categories", "post"),
                ("/api/v1/admin/brands", "post"), ("/api/v1/admin/products/{product_id}/skus/{sku_id}/stock", "post")}


def test_exactly_the_routes_that_read_the_idempotency_key_declare_it_as_a_required_header(app: Flask) -> None:
    spec = app.test_client().get("/openapi.json").get_json()
    declared = {(path, method): [p for p in entry.get("parameters", []) if p["in"] == "header"]
                for path, methods in spec["paths"].items() for method, entry in methods.items()}
    reading = {(RULE_VARIABLE.sub(r"{\2}", rule.rule), method.lower()) for rule in app.url_map.iter_rules()
               if reads_the_idempotency_key(app.view_functions[rule.endpoint])
               for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}}
    with_header = {route for route, headers in declared.items() if headers}

    assert len(reading) >= 4  # POST /orders, /member/recharges, /member/withdrawals, /member/plans/{id}/subscribe
    assert with_header == reading
    assert {route: headers for route, headers in declared.items() if headers} == {
        route: [{"name": IDEMPOTENCY_HEADER, "in": "header", "required": route not in KEY_OPTIONAL,
                 "schema": IDEMPOTENCY_KEY_SCHEMA, "description": headers[0]["description"]}]
        for route, headers in declared.items() if headers}


def test_a_key_optional_view_gets_an_empty_key_without_the_header_and_the_key_with_it(
        settings: GatewaySettings, bearer) -> None:  # type: ignore[no-untyped-def]
    bp = Blueprint("keyed", __name__, url_prefix="/api/v1/keyed")

    @bp.post("")
    @operation(summary="Take a thing", tag="things", responses={201: Thing}, idempotent=True, key_optional=True)
    def take_thing(idempotency_key: str) -> tuple[Thing, int]:
        return Thing(id=1, name=idempotency_key), 201

    app = create_app(settings, FakeServices())
    app.register_blueprint(bp)
    client = app.test_client()

    without = client.post("/api/v1/keyed", headers=bearer())
    keyed = client.post("/api/v1/keyed", headers={**bearer(), IDEMPOTENCY_HEADER: "tap-1"})
    malformed = client.post("/api/v1/keyed", headers={**bearer(), IDEMPOTENCY_HEADER: "é"})

    assert [(r.status_code, r.get_json()) for r in (without, keyed)] == [
        (201, {"id": 1, "name": ""}), (201, {"id": 1, "name": "tap-1"})]
    assert (malformed.status_code, malformed.get_json()["error"]["code"]) == (400, "IDEMPOTENCY_KEY_INVALID")


def test_an_optional_key_on_a_view_not_declared_idempotent_is_refused_at_import() -> None:
    with pytest.raises(TypeError, match="key_optional"):
        @operation(summary="Buy a thing", tag="things", responses={201: Thing}, key_optional=True)
        def buy_thing() -> Thing:
            return Thing(id=1, name="a thing")


def test_a_view_taking_the_key_without_declaring_it_idempotent_is_refused_at_import() -> None:
    with pytest.raises(TypeError, match="idempotency_key"):
        @operation(summary="Buy a thing", tag="things", responses={201: Thing})
        def buy_thing(idempotency_key: str) -> Thing:
            return Thing(id=1, name=idempotency_key)


def test_an_idempotent_view_that_ignores_the_key_is_refused_at_import() -> None:
    with pytest.raises(TypeError, match="idempotency_key"):
        @operation(summary="Buy a thing", tag="things", responses={201: Thing}, idempotent=True)
        def buy_thing() -> Thing:
            return Thing(id=1, name="a thing")


@given(st.text(alphabet=st.characters(max_codepoint=0x2FF), max_size=130))
def test_the_documented_key_format_is_the_one_the_gateway_accepts(key: str) -> None:
    documented = (IDEMPOTENCY_KEY_SCHEMA["minLength"] <= len(key) <= IDEMPOTENCY_KEY_SCHEMA["maxLength"]
                  # JSON Schema's $ is the end of the text; Python's would also match before a final newline
                  and re.fullmatch(IDEMPOTENCY_KEY_SCHEMA["pattern"].strip("^$"), key) is not None)
    try:
        idempotency.validate("gateway", key)
        accepted = True
    except InvalidInput:
        accepted = False

    assert documented == accepted


# Text rules documented: a request the document allows is not refused for a character the document does not mention
# (schemathesis sent valid examples with a tab in a nickname and got 400).

def request_strings(spec: dict, schema: dict, path: str) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    """Every string schema reachable from a request's `schema`, named by where it is."""
    if "$ref" in schema:
        return request_strings(spec, spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]], path)
    found = [(path, schema)] if schema.get("type") == "string" else []
    for option in schema.get("anyOf", []):
        found += request_strings(spec, option, path)
    if "items" in schema:
        found += request_strings(spec, schema["items"], path + "[]")
    for name, prop in schema.get("properties", {}).items():
        found += request_strings(spec, prop, f"{path}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        found += request_strings(spec, schema["additionalProperties"], path + "{}")
    if "propertyNames" in schema:  # a dict's keys: text whether or not it says "type": "string"
        found += [(path + "{key}", schema["propertyNames"])]
    return found


def test_every_text_a_request_takes_is_documented_with_the_characters_it_may_hold(client) -> None:  # type: ignore[no-untyped-def]
    spec = client.get("/openapi.json").get_json()
    strings = []
    for route, methods in spec["paths"].items():
        for method, entry in methods.items():
            where = f"{method.upper()} {route}"
            body = entry.get("requestBody", {}).get("content", {}).get("application/json")
            strings += request_strings(spec, body["schema"], where) if body else []
            for parameter in entry.get("parameters", []):
                strings += request_strings(spec, parameter["schema"], f"{where} {parameter['name']}")

    unconstrained = [where for where, schema in strings
                     if not any(key in schema for key in ("pattern", "format", "enum", "const"))]
    assert (len(strings) > 100, unconstrained) == (True, [])


def test_free_text_is_documented_as_single_line_or_multi_line(client) -> None:  # type: ignore[no-untyped-def]
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]

    assert (schemas["AddressIn"]["properties"]["receiver_name"]["pattern"],
            schemas["ReviewIn"]["properties"]["content"]["pattern"]) == (
        "^[^\\u0000-\\u001f\\u007f]*$", "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f]*$")


@given(st.text(alphabet=st.characters(max_codepoint=0x9F), max_size=20))
def test_the_documented_text_patterns_are_the_rules_the_gateway_applies(text: str) -> None:
    # JSON Schema's $ is the end of the text; Python's would also match before a final newline: fullmatch, unanchored
    assert ((re.fullmatch(TEXT_PATTERN.strip("^$"), text) is not None,
             re.fullmatch(MULTILINE_TEXT_PATTERN.strip("^$"), text) is not None)
            == (CONTROL_CHARACTER.search(text) is None, CONTROL_CHARACTER_BUT_LINE_BREAKS.search(text) is None))


def test_an_upload_documents_its_multipart_file_field(client) -> None:  # type: ignore[no-untyped-def]
    # The document said POST /uploads takes no body, and the gateway answered 400 {"file": "required"} to it.
    upload = client.get("/openapi.json").get_json()["paths"]["/api/v1/uploads"]["post"]

    assert upload["requestBody"] == {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"], "properties": {"file": {"type": "string", "format": "binary"}}}}}}


def test_times_document_the_years_the_gateway_accepts(client) -> None:  # type: ignore[no-untyped-def]
    # schemathesis's valid examples had coupons valid from the year 0413 and page views of 0649: refused (400).
    spec = client.get("/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    created_from = next(p for p in spec["paths"]["/api/v1/admin/orders"]["get"]["parameters"]
                        if p["name"] == "created_from")

    assert (schemas["CouponTemplateIn"]["properties"]["valid_from"]["pattern"],
            created_from["schema"]["anyOf"][0]["pattern"],
            schemas["TrackedEvent"]["properties"]["ts"]["anyOf"][0]["pattern"]) == (
        "^(20|21)[0-9]{2}-", "^(20|21)[0-9]{2}-", "^(20)[0-9]{2}-")


@given(st.integers(min_value=1, max_value=9999), st.sampled_from([(2000, 2199), (2000, 2099), (1900, 1999)]))
def test_a_documented_year_range_is_the_range_checked(year: int, span: tuple[int, int]) -> None:
    years = Years(*span)

    class Moment(Body):
        at: Annotated[AwareDatetime, years]

    documented = re.match(Moment.model_json_schema()["properties"]["at"]["pattern"], f"{year:04d}-06-01") is not None
    try:
        Moment.model_validate_json(f'{{"at": "{year:04d}-06-01T00:00:00+08:00"}}')
        accepted = True
    except ValidationError:
        accepted = False

    assert documented == accepted


def test_a_stock_change_documents_that_it_is_never_zero(client) -> None:  # type: ignore[no-untyped-def]
    # A delta of 0 was documented as valid and refused by the product service (400 STOCK_DELTA_INVALID).
    delta = client.get("/openapi.json").get_json()["components"]["schemas"]["StockIn"]["properties"]["delta"]

    assert (delta["minimum"], delta["maximum"], delta["not"]) == (-(10**9), 10**9, {"const": 0})


def test_every_new_password_documents_the_rule_the_user_service_applies(client) -> None:  # type: ignore[no-untyped-def]
    spec = client.get("/openapi.json").get_json()
    documented = {name: model["properties"]["new_password"] for name, model in spec["components"]["schemas"].items()
                  if "new_password" in model.get("properties", {})}

    assert sorted(documented) == ["PasswordChange", "PasswordLogin", "PasswordReset", "StaffPasswordIn"]
    assert {(schema["minLength"], schema["maxLength"], schema["description"]) for schema in documented.values()} == {
        (formats.PASSWORD_MIN_LENGTH, formats.PASSWORD_MAX_LENGTH,
         f"{formats.PASSWORD_RULE} (400 PASSWORD_TOO_WEAK otherwise)")}


@pytest.mark.parametrize("password", ["", "short1", "nodigitshere"])
def test_a_new_password_breaking_the_rule_is_judged_by_the_user_service_alone(
        client, clients, bearer, password: str) -> None:  # type: ignore[no-untyped-def]
    client.post("/api/v1/admin/users/7/password", json={"new_password": password}, headers=bearer(roles="admin"))

    assert [call.message.new_password for call in clients.user.SetStaffPassword.calls] == [password]
