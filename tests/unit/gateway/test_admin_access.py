"""Who may call the admin API, and what an allowed call returns."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from mall.analytics.v1 import analytics_pb2

from gateway.api import operation
from gateway.app import _check_admin_routes_declare_roles

OVERVIEW = "/api/v1/admin/analytics/overview"


def error_of(response) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    return response.status_code, response.get_json()["error"]["code"]


def test_admin_route_without_token_asks_for_one(client: FlaskClient, clients) -> None:
    response = client.get(OVERVIEW)

    assert (response.status_code, response.get_json()) == (401, {"error": {
        "code": "AUTH_REQUIRED", "message": "this endpoint needs 'Authorization: Bearer <access token>'",
        "request_id": response.headers["X-Request-ID"]}})


def test_admin_route_with_a_non_bearer_authorization_is_refused(client: FlaskClient) -> None:
    response = client.get(OVERVIEW, headers={"Authorization": "Basic YWRtaW46YWRtaW4="})

    assert error_of(response) == (401, "TOKEN_INVALID")


def test_tampered_token_claiming_admin_is_refused(client: FlaskClient, mint, tamper_payload, clients) -> None:
    token = tamper_payload(mint(roles=""), roles=["admin"])

    response = client.get(OVERVIEW, headers={"Authorization": f"Bearer {token}"})

    assert (error_of(response), clients.analytics.GetOverview.calls) == ((401, "TOKEN_INVALID"), [])


def test_expired_admin_token_is_refused_as_expired(client: FlaskClient, mint) -> None:
    token = mint(roles="admin", issued_ago=timedelta(hours=1))

    response = client.get(OVERVIEW, headers={"Authorization": f"Bearer {token}"})

    assert error_of(response) == (401, "TOKEN_EXPIRED")


def test_alg_none_token_claiming_admin_is_refused(client: FlaskClient, unsigned_token, clients) -> None:
    response = client.get(OVERVIEW, headers={"Authorization": f"Bearer {unsigned_token(roles=['admin'])}"})

    assert (error_of(response), clients.analytics.GetOverview.calls) == ((401, "TOKEN_INVALID"), [])


def test_hs256_token_keyed_with_the_public_key_is_refused(client: FlaskClient, hs256_with_public_key) -> None:
    response = client.get(OVERVIEW, headers={"Authorization": f"Bearer {hs256_with_public_key(roles=['admin'])}"})

    assert error_of(response) == (401, "TOKEN_INVALID")


def test_shopper_is_forbidden_and_analytics_is_not_called(client: FlaskClient, bearer, clients) -> None:
    response = client.get(OVERVIEW, headers=bearer(roles=""))

    assert (response.status_code, response.get_json()["error"]["code"], response.get_json()["error"]["message"],
            clients.analytics.GetOverview.calls) == (403, "FORBIDDEN", "your account may not do this", [])


def test_customer_service_is_forbidden_the_reports(client: FlaskClient, bearer, clients) -> None:
    response = client.get(OVERVIEW, headers=bearer(roles="customer_service"))

    assert (error_of(response), clients.analytics.GetOverview.calls) == ((403, "FORBIDDEN"), [])


# Finance reads the shop's figures and exports its ledgers; it does not look shoppers up, ship or edit products.
FINANCE_MAY = [("get", OVERVIEW, "GetOverview", 200), ("get", "/api/v1/admin/analytics/retention", "GetRetention", 200),
               ("post", "/api/v1/admin/reports", "CreateReport", 202), ("get", "/api/v1/admin/reports/7", "GetReport", 200),
               ("get", "/api/v1/admin/reports/7/file", "GetReportChunk", 200)]
MONEY_CSV = "kind,amount_fen\r\npayment,3799\r\n".encode()
FINANCE_MAY_NOT = [("get", "/api/v1/admin/users?phone=13800138000", "user", "SearchUsers"),
                   ("post", "/api/v1/admin/users/search", "user", "SearchUsers"),
                   ("get", "/api/v1/admin/orders/5/waybill", "order", "GetWaybill"),
                   ("post", "/api/v1/admin/orders/5/ship", "order", "ShipOrder"),
                   ("get", "/api/v1/admin/orders/5", "order", "GetOrder"),
                   ("post", "/api/v1/admin/products", "product", "CreateProduct"),
                   ("put", "/api/v1/admin/users/5/roles", "user", "SetUserRoles"),
                   ("post", "/api/v1/admin/users/5/password", "user", "SetStaffPassword")]


@pytest.mark.parametrize(("method", "path", "rpc", "status"), FINANCE_MAY)
def test_finance_reads_the_reports_and_exports_the_money_ledger(client: FlaskClient, bearer, clients, method: str,
                                                                path: str, rpc: str, status: int) -> None:
    report = analytics_pb2.Report(id=7, kind="money", format="csv", from_date="2026-11-01", to_date="2026-11-30",
                                  status="done", percent=100, rows=1, size_bytes=len(MONEY_CSV),
                                  file_name="7-money-2026-11-01-2026-11-30.csv")
    clients.analytics.CreateReport.reply = clients.analytics.GetReport.reply = report
    clients.analytics.GetReportChunk.reply = analytics_pb2.GetReportChunkResponse(report=report, data=MONEY_CSV)
    body = {"kind": "money", "format": "csv", "from": "2026-11-01", "to": "2026-11-30"} if method == "post" else None

    response = getattr(client, method)(path, json=body, headers=bearer(roles="finance"))

    assert (response.status_code, len(getattr(clients.analytics, rpc).calls)) == (status, 1)


@pytest.mark.parametrize(("method", "path", "svc", "rpc"), FINANCE_MAY_NOT)
def test_finance_does_not_look_up_users_ship_or_edit_products(client: FlaskClient, bearer, clients, method: str,
                                                               path: str, svc: str, rpc: str) -> None:
    response = getattr(client, method)(path, json={} if method != "get" else None, headers=bearer(roles="finance"))

    assert (error_of(response), getattr(getattr(clients, svc), rpc).calls) == ((403, "FORBIDDEN"), [])


ZERO = {name: 0 for name in analytics_pb2.Figures.DESCRIPTOR.fields_by_name}


@pytest.fixture
def overview_reply(clients) -> analytics_pb2.GetOverviewResponse:
    reply = analytics_pb2.GetOverviewResponse(
        from_date="2026-11-24", to_date="2026-11-25", totals=analytics_pb2.Figures(new_users=7, gmv_fen=12000),
        days=[analytics_pb2.DailyOverview(date="2026-11-24", figures=analytics_pb2.Figures(new_users=3)),
              analytics_pb2.DailyOverview(date="2026-11-25", figures=analytics_pb2.Figures(new_users=4,
                                                                                           gmv_fen=12000))])
    clients.analytics.GetOverview.reply = reply
    return reply


@pytest.mark.parametrize("role", ["admin", "operator", "finance", "finance,customer_service"])
def test_report_readers_get_the_overview_as_json(client: FlaskClient, bearer, overview_reply, role: str) -> None:
    response = client.get(f"{OVERVIEW}?from=2026-11-24&to=2026-11-25", headers=bearer(roles=role))

    assert (response.status_code, response.get_json()) == (200, {
        "from": "2026-11-24", "to": "2026-11-25", **ZERO, "new_users": 7, "gmv_fen": 12000, "days": [
            {"date": "2026-11-24", **ZERO, "new_users": 3},
            {"date": "2026-11-25", **ZERO, "new_users": 4, "gmv_fen": 12000}]})


def test_overview_passes_the_period_to_analytics(client: FlaskClient, bearer, clients, overview_reply) -> None:
    client.get(f"{OVERVIEW}?from=2026-11-01&to=2026-11-30", headers=bearer(roles="admin"))

    assert [call.message for call in clients.analytics.GetOverview.calls] == [
        analytics_pb2.GetOverviewRequest(from_date="2026-11-01", to_date="2026-11-30")]


def test_overview_without_dates_leaves_the_period_to_analytics(client: FlaskClient, bearer, clients,
                                                               overview_reply) -> None:
    client.get(OVERVIEW, headers=bearer(roles="admin"))

    assert [call.message for call in clients.analytics.GetOverview.calls] == [analytics_pb2.GetOverviewRequest()]


def test_overview_of_an_empty_reply_is_zero_with_no_days(client: FlaskClient, bearer) -> None:
    response = client.get(OVERVIEW, headers=bearer(roles="admin"))

    assert response.get_json() == {"from": "", "to": "", **ZERO, "days": []}


def test_app_refuses_to_start_with_an_admin_route_that_declares_no_roles() -> None:
    app = Flask("unit-test")

    @app.get("/api/v1/admin/refunds")
    @operation(summary="List refunds", tag="admin")
    def refunds() -> dict:
        return {}

    with pytest.raises(RuntimeError, match="admin route /api/v1/admin/refunds must declare the roles"):
        _check_admin_routes_declare_roles(app)
