"""Exports through the admin API: staff only, the job as JSON, the file streamed piece by piece from analytics."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from google.protobuf.timestamp_pb2 import Timestamp
from mall.analytics.v1 import analytics_pb2

from services.common.errors import Conflict, NotFound
from services.common.formats import REPORT_KINDS
from services.common.grpc_server import to_grpc

BODY = {"kind": "daily", "format": "xlsx", "from": "2026-11-20", "to": "2026-11-21"}
CREATED = Timestamp(seconds=1_795_000_000)
CONTENT = "date,page_views\r\n2026-11-20,6\r\n".encode() * 3


def done_report(**changes: object) -> analytics_pb2.Report:
    report = analytics_pb2.Report(id=7, kind="daily", format="csv", from_date="2026-11-20", to_date="2026-11-21",
                                  status="done", percent=100, rows=3, size_bytes=len(CONTENT),
                                  file_name="7-daily-2026-11-20-2026-11-21.csv", created_at=CREATED,
                                  finished_at=Timestamp(seconds=1_795_000_009))
    for name, value in changes.items():
        setattr(report, name, value)
    return report


@pytest.mark.parametrize(("method", "path"), [("post", "/api/v1/admin/reports"), ("get", "/api/v1/admin/reports/7"),
                                              ("get", "/api/v1/admin/reports/7/file"), ("get", "/api/v1/admin/reports")])
def test_a_shopper_is_forbidden_exports(client: FlaskClient, bearer, clients, method: str, path: str) -> None:
    response = getattr(client, method)(path, json=BODY if method == "post" else None, headers=bearer(roles=""))

    calls = [getattr(clients.analytics, rpc).calls
             for rpc in ("CreateReport", "GetReport", "GetReportChunk", "ListReports")]
    assert (response.status_code, response.get_json()["error"]["code"], calls) == (403, "FORBIDDEN", [[], [], [], []])


def test_staff_list_their_export_jobs_a_page_at_a_time(client: FlaskClient, bearer, clients) -> None:
    clients.analytics.ListReports.reply = analytics_pb2.ListReportsResponse(
        reports=[done_report(id=9), done_report(id=8, status="queued", percent=0)], total=12)

    response = client.get("/api/v1/admin/reports?page=2&page_size=2", headers=bearer(roles="finance"))

    body = response.get_json()
    assert clients.analytics.ListReports.calls[0].message == analytics_pb2.ListReportsRequest(offset=2, limit=2)
    assert (response.status_code, body["page"], body["page_size"], body["total"]) == (200, 2, 2, 12)
    assert [(item["id"], item["status"], item["file_url"]) for item in body["items"]] == [
        (9, "done", "/api/v1/admin/reports/9/file"), (8, "queued", None)]


def test_an_operator_queues_an_export_and_gets_the_job(client: FlaskClient, bearer, clients) -> None:
    clients.analytics.CreateReport.reply = analytics_pb2.Report(
        id=7, kind="daily", format="xlsx", from_date="2026-11-20", to_date="2026-11-21", status="queued",
        created_at=CREATED)

    response = client.post("/api/v1/admin/reports", json=BODY, headers=bearer(roles="operator"))

    assert clients.analytics.CreateReport.calls[0].message == analytics_pb2.CreateReportRequest(
        kind="daily", format="xlsx", from_date="2026-11-20", to_date="2026-11-21")
    assert (response.status_code, response.get_json()) == (202, {
        "id": 7, "kind": "daily", "format": "xlsx", "from": "2026-11-20", "to": "2026-11-21", "status": "queued",
        "percent": 0, "rows": 0, "size_bytes": 0, "error": None, "created_at": "2026-11-18T11:06:40Z",
        "finished_at": None, "file_url": None})


@pytest.mark.parametrize("change", [{"kind": "payroll"}, {"format": "pdf"}, {"from": "20261120"}])
def test_an_export_of_an_unknown_kind_format_or_malformed_day_is_refused(client: FlaskClient, bearer, clients,
                                                                         change: dict[str, str]) -> None:
    response = client.post("/api/v1/admin/reports", json={**BODY, **change}, headers=bearer(roles="admin"))

    assert (response.status_code, list(response.get_json()["error"]["details"]), clients.analytics.CreateReport.calls) \
        == (400, list(change), [])


def test_a_done_job_says_where_its_file_is(client: FlaskClient, bearer, clients) -> None:
    clients.analytics.GetReport.reply = done_report()

    body = client.get("/api/v1/admin/reports/7", headers=bearer(roles="admin")).get_json()

    assert (body["status"], body["percent"], body["file_url"], body["finished_at"]) == (
        "done", 100, "/api/v1/admin/reports/7/file", "2026-11-18T11:06:49Z")


def test_the_file_is_streamed_in_the_pieces_analytics_hands_over_each_as_the_caller(client: FlaskClient, bearer,
                                                                                     clients) -> None:
    clients.analytics.GetReportChunk.answer = lambda m: analytics_pb2.GetReportChunkResponse(
        report=done_report(), data=CONTENT[m.offset:m.offset + 40])

    response = client.get("/api/v1/admin/reports/7/file", headers=bearer(roles="admin", user_id=5))

    assert (response.status_code, response.data) == (200, CONTENT)
    assert (response.headers["Content-Type"], response.headers["Content-Length"],
            response.headers["Content-Disposition"]) == (
        "text/csv; charset=utf-8", str(len(CONTENT)), 'attachment; filename="7-daily-2026-11-20-2026-11-21.csv"')
    calls = clients.analytics.GetReportChunk.calls
    assert [c.message.offset for c in calls] == list(range(0, len(CONTENT), 40))
    assert all(c.metadata["authorization"] == calls[0].metadata["authorization"] for c in calls)


def test_a_file_not_ready_yet_is_a_conflict(client: FlaskClient, bearer, clients, rpc_error) -> None:
    clients.analytics.GetReportChunk.error = rpc_error(*to_grpc(Conflict("REPORT_NOT_READY", "the report is running")))

    response = client.get("/api/v1/admin/reports/7/file", headers=bearer(roles="admin"))

    assert (response.status_code, response.get_json()["error"]["code"]) == (409, "REPORT_NOT_READY")


def test_an_expired_file_is_gone_in_the_error_format(client: FlaskClient, bearer, clients, rpc_error) -> None:
    clients.analytics.GetReportChunk.error = rpc_error(*to_grpc(NotFound("REPORT_EXPIRED", "the file was deleted")))

    response = client.get("/api/v1/admin/reports/7/file", headers=bearer(roles="admin"))

    assert response.status_code == 410
    assert response.get_json()["error"] | {"request_id": ""} == {
        "code": "REPORT_EXPIRED", "message": "the file was deleted", "request_id": ""}


def test_a_report_that_does_not_exist_is_still_not_found(client: FlaskClient, bearer, clients, rpc_error) -> None:
    clients.analytics.GetReportChunk.error = rpc_error(*to_grpc(NotFound("REPORT_NOT_FOUND", "no such report")))

    response = client.get("/api/v1/admin/reports/7/file", headers=bearer(roles="admin"))

    assert (response.status_code, response.get_json()["error"]["code"]) == (404, "REPORT_NOT_FOUND")


def test_the_openapi_document_describes_the_file_as_csv_or_xlsx(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()

    assert set(spec["paths"]["/api/v1/admin/reports/{report_id}/file"]["get"]["responses"]["200"]["content"]) == {
        "text/csv; charset=utf-8", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


@pytest.mark.parametrize("kind", ["orders", "money"])
def test_an_admin_queues_an_export_of_a_ledger(client: FlaskClient, bearer, clients, kind: str) -> None:
    clients.analytics.CreateReport.reply = analytics_pb2.Report(
        id=8, kind=kind, format="csv", from_date="2026-11-20", to_date="2026-11-21", status="queued", created_at=CREATED)

    response = client.post("/api/v1/admin/reports", json={**BODY, "kind": kind, "format": "csv"},
                           headers=bearer(roles="admin"))

    assert clients.analytics.CreateReport.calls[0].message.kind == kind
    assert (response.status_code, response.get_json()["kind"]) == (202, kind)


def test_the_api_document_and_the_dashboard_offer_every_kind_of_report(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    dashboard = client.get("/admin/").get_data(as_text=True)

    request = spec["paths"]["/api/v1/admin/reports"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    schema = spec["components"]["schemas"][request["$ref"].rsplit("/", 1)[1]] if "$ref" in request else request
    select = dashboard[dashboard.index('<select id="export-kind">'):]
    assert schema["properties"]["kind"]["enum"] == list(REPORT_KINDS)
    assert re.findall(r'<option value="(\w+)">', select[:select.index("</select>")]) == list(REPORT_KINDS)



@pytest.mark.parametrize("kind", ["money", "events"])
def test_an_operator_may_not_export_the_money_ledger_or_the_events_of_shoppers_wallets(client: FlaskClient, bearer,
                                                                                      clients, kind: str) -> None:
    response = client.post("/api/v1/admin/reports", json={**BODY, "kind": kind}, headers=bearer(roles="operator"))

    assert response.status_code == 403
    assert (response.get_json()["error"] | {"request_id": ""}, clients.analytics.CreateReport.calls) == (
        {"code": "FORBIDDEN", "message": "your account may not do this", "request_id": ""}, [])


@pytest.mark.parametrize("path", ["/api/v1/admin/reports/7", "/api/v1/admin/reports/7/file"])
def test_an_operator_may_not_follow_or_download_a_money_export(client: FlaskClient, bearer, clients, path: str) -> None:
    clients.analytics.GetReport.reply = done_report(kind="money")
    clients.analytics.GetReportChunk.reply = analytics_pb2.GetReportChunkResponse(report=done_report(kind="money"),
                                                                                   data=CONTENT)

    response = client.get(path, headers=bearer(roles="operator"))

    assert (response.status_code, response.get_json()["error"]["code"]) == (403, "FORBIDDEN")


def test_finance_exports_the_money_ledger(client: FlaskClient, bearer, clients) -> None:
    clients.analytics.CreateReport.reply = analytics_pb2.Report(
        id=8, kind="money", format="csv", from_date="2026-11-20", to_date="2026-11-21", status="queued", created_at=CREATED)

    response = client.post("/api/v1/admin/reports", json={**BODY, "kind": "money"}, headers=bearer(roles="finance"))

    assert (response.status_code, response.get_json()["kind"]) == (202, "money")


def test_the_export_summary_names_the_route_that_follows_the_job(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").get_json()["paths"]

    assert "GET /admin/reports/{report_id}" in paths["/api/v1/admin/reports"]["post"]["summary"]
    assert "get" in paths["/api/v1/admin/reports/{report_id}"]
