"""The /admin/ console in headless Chromium, as an attacker or the next person at a shared desk would try it: no
password in a URL, and nothing of a staff member's session left once the console shows its login again.

The gateway runs on a local port with the fake services (the browser, the page and its screenshots:
tests/fixtures/browser.py); staff log in with log_in_as (tests/unit/gateway/conftest.py).
"""

from __future__ import annotations

from typing import Any

import grpc
from mall.analytics.v1 import analytics_pb2
from mall.order.v1 import order_pb2

from tests.fixtures.fake_services import FakeServices
from tests.unit.gateway.conftest import STAFF_PHONES

PASSWORD = "staff-password-1"


def test_before_its_script_runs_the_login_form_cannot_send_the_password_in_a_url(page: Any,
                                                                                  gateway_url: str) -> None:
    # admin.js not loaded (yet, or at all): the form is the browser's own. A native submit of a form without a method
    # is a GET of /admin/?phone=...&password=..., the password then kept by the history and every access log.
    page.route("**/admin/admin.js", lambda route: route.abort())
    page.goto(f"{gateway_url}/admin/")
    page.fill("#phone", STAFF_PHONES["admin"])
    page.fill("#password", PASSWORD)

    assert page.is_disabled("#login-form button[type=submit]")  # neither a click nor Enter submits it
    with page.expect_request(lambda request: request.is_navigation_request()) as submitted:
        page.evaluate("document.getElementById('login-form').requestSubmit()")  # submitted all the same
    assert submitted.value.url == f"{gateway_url}/admin/"  # not /admin/?phone=...&password=...
    assert submitted.value.method == "POST"


def test_once_its_script_runs_the_login_form_logs_in(page: Any, log_in_as, gateway_url: str) -> None:
    log_in_as("customer_service")

    assert page.is_visible("#sections") and page.url == f"{gateway_url}/admin/"
    assert page.errors == []


def test_when_the_console_asks_to_log_in_again_the_session_is_gone_from_the_tab(
        page: Any, log_in_as, clients: FakeServices, rpc_error) -> None:
    clients.order.SearchOrders.reply = order_pb2.ListOrdersResponse(orders=[], total=0)
    log_in_as("customer_service")
    page.wait_for_selector("#order-count:not(:empty)")
    # The access token is refused, and the refresh fails for now (the user service down): the console gives up.
    clients.order.SearchOrders.error = rpc_error(grpc.StatusCode.UNAUTHENTICATED, "the token has expired")
    clients.user.RefreshSession.error = rpc_error(grpc.StatusCode.UNAVAILABLE, "the user service is down")
    page.click("#order-search button[type=submit]")
    page.wait_for_selector("#login-view:not([hidden])")
    assert page.inner_text("#login-error") == "Your session ended; log in again."

    assert page.evaluate("[sessionStorage.getItem('access_token'), sessionStorage.getItem('refresh_token')]") == [
        None, None]
    # The outage over, the next person at the desk reloads the page: they get the login, not the last session.
    clients.order.SearchOrders.error = clients.user.RefreshSession.error = None
    calls = len(clients.order.SearchOrders.calls)
    page.reload()
    assert page.is_visible("#login-view") and page.is_hidden("#sections") and page.is_hidden("#orders-view")
    assert len(clients.order.SearchOrders.calls) == calls


def test_logging_out_leaves_neither_the_reports_nor_the_exported_files_for_the_next_staff_member(
        page: Any, log_in_as, clients: FakeServices) -> None:
    day = "2026-11-15"
    clients.analytics.GetOverview.reply = analytics_pb2.GetOverviewResponse(
        from_date=day, to_date=day, totals=analytics_pb2.Figures(gmv_fen=123_456, paid_orders=7),
        days=[analytics_pb2.DailyOverview(date=day, figures=analytics_pb2.Figures(gmv_fen=123_456, paid_orders=7))])
    content = "date,gmv_fen\r\n2026-11-15,123456\r\n".encode()
    done = analytics_pb2.Report(id=3, kind="money", format="csv", from_date=day, to_date=day, status="done",
                                percent=100, rows=1, size_bytes=len(content), file_name="3-money.csv")
    clients.analytics.CreateReport.reply = done
    clients.analytics.GetReport.reply = done
    clients.analytics.GetReportChunk.reply = analytics_pb2.GetReportChunkResponse(report=done, data=content)
    clients.order.SearchOrders.reply = order_pb2.ListOrdersResponse(orders=[], total=0)
    log_in_as("admin")
    page.wait_for_selector("body[data-loaded]")
    with page.expect_download():
        page.click("#export-form button[type=submit]")
    file_url = page.get_attribute("#exports a", "href")
    assert file_url.startswith("blob:") and page.inner_text("#cards").count("¥1,234.56") == 1
    # Which blob: URLs the page gives up (a revoked one no longer reads; the page's CSP keeps a test from fetching it).
    page.evaluate("""() => {
        const revoke = URL.revokeObjectURL.bind(URL);
        window.revoked = [];
        URL.revokeObjectURL = (url) => { window.revoked.push(url); revoke(url); };
    }""")

    page.click("#logout")
    page.fill("#phone", STAFF_PHONES["customer_service"])  # at the same page, who may not read the reports
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#order-count:not(:empty)")

    assert page.evaluate("window.revoked") == [file_url]
    assert page.query_selector_all("#exports li") == [] and page.query_selector_all("#cards .card") == []
    assert page.query_selector_all("#dashboard-view svg") == []
    assert "¥1,234.56" not in page.content() and page.get_attribute("body", "data-loaded") is None
