"""Liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.api import BEARER_NOTE, PUBLIC, RULE_VARIABLE
from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.routes.admin import analytics_overview
from gateway.routes.auth import send_sms_code
from gateway.routes.dashboard import POLICY
from gateway.routes.meta import written_out
from services.common.config import SERVICES, ConfigError

ALL_SERVING = {"user": "SERVING", "product": "SERVING", "order": "SERVING", "member": "SERVING",
               "analytics": "SERVING"}


def test_healthz_answers_ok(client: FlaskClient) -> None:
    response = client.get("/healthz")

    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_readyz_is_ready_when_every_service_is_serving(client: FlaskClient) -> None:
    response = client.get("/readyz")

    assert (response.status_code, response.get_json()) == (200, {"status": "ready", "services": ALL_SERVING})


@pytest.mark.parametrize("status", ["NOT_SERVING", "UNREACHABLE", "SERVICE_UNKNOWN", "UNKNOWN"])
def test_readyz_is_503_when_the_user_service_is_not_serving(client: FlaskClient, clients, status: str) -> None:  # type: ignore[no-untyped-def]
    clients.statuses["user"] = status

    response = client.get("/readyz")

    assert (response.status_code, response.get_json()) == (
        503, {"status": "not_ready", "services": {**ALL_SERVING, "user": status}})


def test_by_default_readyz_ignores_other_services_but_still_reports_them(client: FlaskClient, clients) -> None:  # type: ignore[no-untyped-def]
    clients.statuses["order"] = "UNREACHABLE"

    response = client.get("/readyz")

    assert (response.status_code, response.get_json()) == (
        200, {"status": "ready", "services": {**ALL_SERVING, "order": "UNREACHABLE"}})


def test_readyz_waits_for_every_service_it_is_told_to_require(settings, clients) -> None:  # type: ignore[no-untyped-def]
    clients.statuses["order"] = "NOT_SERVING"
    app = create_app(dataclasses.replace(settings, ready_requires=SERVICES), clients)

    response = app.test_client().get("/readyz")

    assert (response.status_code, response.get_json()["status"]) == (503, "not_ready")


@pytest.mark.parametrize(("value", "required"), [(None, ("user",)), ("", ()), ("user, order", ("user", "order"))])
def test_ready_requires_comes_from_the_environment(tmp_path, value, required) -> None:  # type: ignore[no-untyped-def]
    key = tmp_path / "public.pem"
    key.write_bytes(b"k")
    environ = {"JWT_PUBLIC_KEY_FILE": str(key)} | ({} if value is None else {"GATEWAY_READY_REQUIRES": value})

    assert GatewaySettings.from_env(environ).ready_requires == required


def test_ready_requires_refuses_unknown_service_names(tmp_path) -> None:  # type: ignore[no-untyped-def]
    key = tmp_path / "public.pem"
    key.write_bytes(b"k")

    with pytest.raises(ConfigError, match="names unknown services: orders"):
        GatewaySettings.from_env({"JWT_PUBLIC_KEY_FILE": str(key), "GATEWAY_READY_REQUIRES": "user,orders"})


def test_metrics_count_requests_by_route_template_and_status(client: FlaskClient) -> None:
    client.get("/api/v1/admin/analytics/overview")

    text = client.get("/metrics").get_data(as_text=True)

    assert 'mall_http_requests_total{method="GET",route="/api/v1/admin/analytics/overview",status="401"}' in text


# OpenAPI

@pytest.fixture
def spec(client: FlaskClient) -> dict:
    return client.get("/openapi.json").get_json()


def test_openapi_lists_the_operations_of_the_first_slice(spec: dict) -> None:
    documented = {(path, method) for path, methods in spec["paths"].items() for method in methods}

    assert documented >= {("/api/v1/admin/analytics/overview", "get"), ("/api/v1/auth/login/password", "post"),
                          ("/api/v1/auth/login/sms", "post"), ("/api/v1/auth/sms-codes", "post")}


def test_every_registered_api_route_is_documented(app: Flask, spec: dict) -> None:
    api_rules = {RULE_VARIABLE.sub(r"{\2}", rule.rule) for rule in app.url_map.iter_rules()
                 if rule.rule.startswith("/api/")}

    assert api_rules == set(spec["paths"])


def test_admin_operation_needs_a_bearer_token_and_says_which_roles(spec: dict) -> None:
    overview = spec["paths"]["/api/v1/admin/analytics/overview"]["get"]

    assert (overview["security"], overview["description"]) == ([{"bearer": []}], "Roles: admin, finance, operator.")


def test_exactly_the_public_operations_need_no_token(app: Flask, spec: dict) -> None:
    public = {f"{rule.endpoint}_{method.lower()}" for rule in app.url_map.iter_rules()
              for method in rule.methods or () if method not in ("HEAD", "OPTIONS")
              if getattr(app.view_functions[rule.endpoint], "operation", None) is not None
              and app.view_functions[rule.endpoint].operation.access == PUBLIC}
    tokenless = {op["operationId"] for methods in spec["paths"].values() for op in methods.values()
                 if "security" not in op}

    assert (tokenless, {"auth.send_sms_code_post", "auth.login_sms_post"} <= public) == (public, True)


def test_request_body_schema_is_the_one_the_gateway_validates_with(spec: dict) -> None:
    documented = spec["paths"]["/api/v1/auth/sms-codes"]["post"]["requestBody"]
    model = send_sms_code.operation.body

    assert (documented, spec["components"]["schemas"][model.__name__]) == (
        {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SmsCodeRequest"}}}},
        model.model_json_schema())


def test_query_parameters_are_documented_as_optional(spec: dict) -> None:
    parameters = spec["paths"]["/api/v1/admin/analytics/overview"]["get"]["parameters"]
    properties = analytics_overview.operation.query.model_json_schema()["properties"]

    assert parameters == [
        {"name": "from", "in": "query", "required": False, "schema": properties["from"]},
        {"name": "to", "in": "query", "required": False, "schema": properties["to"]},
    ]


def test_every_operation_documents_the_error_format(spec: dict) -> None:
    defaults = [op["responses"]["default"] for methods in spec["paths"].values() for op in methods.values()]

    assert (len(defaults) >= 4, {str(d) for d in defaults}) == (True, {str({"$ref": "#/components/responses/Error"})})


def test_openapi_declares_the_bearer_scheme(spec: dict) -> None:
    assert (spec["openapi"], spec["components"]["securitySchemes"]) == (
        "3.1.0", {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": BEARER_NOTE}})


def test_docs_page_shows_every_operation(client: FlaskClient, spec: dict) -> None:
    page = client.get("/docs").get_data(as_text=True)

    assert [path for path in spec["paths"] if f"<code>{path}</code>" not in page] == []


def test_docs_page_shows_each_request_body_with_its_media_type(client: FlaskClient) -> None:
    page = client.get("/docs").get_data(as_text=True)

    assert ("application/json: {" in page, "multipart/form-data: {" in page) == (True, True)


def docs_entry(page: str, method: str, path: str) -> str:
    """The page's block of one operation."""
    start = page.index(f'<span class="m">{method}</span> <code>{path}</code>')
    return page[start:page.index('<div class="op">', start)]


def test_the_docs_page_writes_out_what_each_schema_refers_to(client: FlaskClient) -> None:
    page = client.get("/docs").get_data(as_text=True)

    cart = docs_entry(page, "post", "/api/v1/cart/items")
    assert ('"sku_id": {' in cart, '"quantity": {' in cart, '"maximum": 999' in cart) == (True, True, True)
    assert "$ref" not in page


def test_the_docs_page_shows_query_parameters_and_responses(client: FlaskClient) -> None:
    page = client.get("/docs").get_data(as_text=True)

    orders = docs_entry(page, "get", "/api/v1/orders")
    assert ("<code>status</code> (query)" in orders, "<code>page_size</code> (query)" in orders) == (True, True)
    assert ("<summary>200 " in orders, '"order_no": {' in orders, '"total": {' in orders) == (True, True, True)
    assert '<summary>default Error</summary>' in orders and '"request_id"' in orders


@pytest.mark.parametrize(("method", "path", "locked"), [("get", "/api/v1/products/{product_id}", False),
                                                        ("post", "/api/v1/track", False),
                                                        ("get", "/api/v1/categories", False),
                                                        ("get", "/api/v1/orders", True)])
def test_the_docs_page_locks_only_the_routes_that_need_a_token(client: FlaskClient, method: str, path: str,
                                                               locked: bool) -> None:
    page = client.get("/docs").get_data(as_text=True)

    assert ('class="lock"' in docs_entry(page, method, path)) is locked


def test_a_schema_inside_itself_is_named_not_written_out_for_ever() -> None:
    components = {"schemas": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/components/schemas/Node"}}}}}

    shown = written_out({"$ref": "#/components/schemas/Node"}, components)

    assert shown == {"type": "object", "properties": {"next": {"title": "Node"}}}


def test_the_docs_page_runs_and_loads_nothing_but_its_own_style_and_is_never_framed(client: FlaskClient) -> None:
    response = client.get("/docs")

    policy = response.headers["Content-Security-Policy"]
    assert policy.startswith("default-src 'none'; style-src 'sha256-") and "script-src" not in policy
    assert ("frame-ancestors 'none'" in policy, response.headers["X-Frame-Options"]) == (True, "DENY")


@pytest.mark.parametrize(("path", "status"), [("/api/v1/categories", 200), ("/api/v1/me", 401),
                                              ("/api/v1/no-such-route", 404), ("/openapi.json", 200)])
def test_json_answers_load_nothing_and_are_never_framed(client: FlaskClient, path: str, status: int) -> None:
    response = client.get(path)

    assert (response.status_code, response.mimetype, response.headers["Content-Security-Policy"],
            response.headers["X-Frame-Options"]) == (
        status, "application/json", "default-src 'none'; frame-ancestors 'none'", "DENY")


def test_the_console_keeps_its_own_policy(client: FlaskClient) -> None:
    response = client.get("/admin/")

    assert (response.headers["Content-Security-Policy"], response.headers["X-Frame-Options"]) == (POLICY, "DENY")


def test_the_docs_page_shows_styled_in_a_browser_under_its_policy(page: Any, gateway_url: str) -> None:
    """Its inline style is allowed by its hash (a wrong hash leaves it unstyled, with a CSP error on the console)."""
    page.goto(f"{gateway_url}/docs")

    assert page.eval_on_selector("body", "b => [getComputedStyle(b).maxWidth, getComputedStyle(b).fontSize]") == [
        "960px", "15px"]
    assert page.eval_on_selector(".op .m", "m => getComputedStyle(m).textTransform") == "uppercase"
    assert page.errors == []
