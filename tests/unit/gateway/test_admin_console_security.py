"""The /admin/ console in headless Chromium, as an attacker or the next person at a shared desk would try it: no
password in a URL, and nothing of a staff member's session left once the console shows its login again.

The gateway runs on a local port with the fake services (the browser, the page and its screenshots:
tests/fixtures/browser.py); staff log in with log_in_as (tests/unit/gateway/conftest.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import grpc
from mall.analytics.v1 import analytics_pb2
from mall.order.v1 import order_pb2
from mall.user.v1 import user_pb2

from services.common.grpc_server import CODE_KEY
from tests.fixtures.fake_services import FakeServices
from tests.unit.gateway.conftest import STAFF_PHONES

PASSWORD = "staff-password-1"


def log_in_at_the_same_page(page: Any, role: str) -> None:
    """The next staff member logs in at the page the last one logged out of (log_in_as would load it afresh)."""
    page.fill("#phone", STAFF_PHONES[role])
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#sections:not([hidden])")


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
    clients.analytics.ListReports.reply = analytics_pb2.ListReportsResponse(reports=[done], total=1)
    clients.order.SearchOrders.reply = order_pb2.ListOrdersResponse(orders=[], total=0)
    log_in_as("admin")
    page.wait_for_selector("body[data-loaded]", state="attached")
    with page.expect_download():
        page.click("#export-form button[type=submit]")
    file_url = page.get_attribute("#exports a", "href")
    page.wait_for_selector("#reports tr[data-report-id='3']")
    assert file_url.startswith("blob:") and page.inner_text("#cards").count("¥1,234.56") == 1
    # Which blob: URLs the page gives up (a revoked one no longer reads; the page's CSP keeps a test from fetching it).
    page.evaluate("""() => {
        const revoke = URL.revokeObjectURL.bind(URL);
        window.revoked = [];
        URL.revokeObjectURL = (url) => { window.revoked.push(url); revoke(url); };
    }""")

    page.click("#logout")
    log_in_at_the_same_page(page, "customer_service")  # who may not read the reports
    page.wait_for_selector("#order-count:not(:empty)")

    assert page.evaluate("window.revoked") == [file_url]
    assert page.query_selector_all("#exports li") == [] and page.query_selector_all("#cards .card") == []
    assert page.query_selector_all("#dashboard-view svg") == [] and page.query_selector_all("#reports tr") == []
    assert "¥1,234.56" not in page.content() and page.get_attribute("body", "data-loaded") is None


# Each answer the page reads (Response.json), by its URL, once the value is handed on: a test waits for an answer to be
# read, and whatever the page does with it then (draws it, or drops it) is done in the same turn.
ANSWERS_READ = """
    window.answersRead = [];
    const read = Response.prototype.json;
    Response.prototype.json = function () {
        return read.call(this).then((value) => { window.answersRead.push(this.url); return value; });
    };
"""


def wait_until_read(page: Any, paths: list[str]) -> None:
    """Returns once the page has read an answer of each path (ANSWERS_READ)."""
    # A function, not an expression: the page's CSP forbids the eval a polled expression needs.
    page.wait_for_function("(paths) => paths.every((path) => window.answersRead.some((url) => url.includes(path)))",
                           arg=paths)


def held_until_released(reply: Any) -> tuple[threading.Event, threading.Event, Callable[[Any], Any]]:
    """(asked, release, answer): a fake RPC's answer that sets `asked` and answers `reply` only once `release` is set."""
    asked, release = threading.Event(), threading.Event()

    def answer(message: Any) -> Any:
        asked.set()
        assert release.wait(timeout=10)
        return reply
    return asked, release, answer


def test_a_list_answered_after_logging_out_is_not_drawn_for_the_next_staff_member(
        page: Any, log_in_as, clients: FakeServices) -> None:
    asked, release, clients.order.SearchOrders.answer = held_until_released(order_pb2.ListOrdersResponse(
        orders=[order_pb2.Order(id=5, order_no="2026112912000000000000abcd1234", status="PAID")], total=1))
    page.add_init_script(ANSWERS_READ)
    log_in_as("customer_service")  # the orders are asked for at once, and answered only after the logout
    assert asked.wait(timeout=10)

    page.click("#logout")
    release.set()
    wait_until_read(page, ["/api/v1/admin/orders?"])

    assert page.query_selector_all("#orders tr") == [] and page.inner_text("#order-count") == ""
    assert "2026112912000000000000abcd1234" not in page.content()
    assert page.errors == []


def test_reports_answered_after_logging_out_are_not_drawn_for_the_next_staff_member(
        page: Any, log_in_as, clients: FakeServices) -> None:
    day = "2026-11-15"
    asked, release, clients.analytics.GetOverview.answer = held_until_released(analytics_pb2.GetOverviewResponse(
        from_date=day, to_date=day, totals=analytics_pb2.Figures(gmv_fen=123_456, paid_orders=7),
        days=[analytics_pb2.DailyOverview(date=day, figures=analytics_pb2.Figures(gmv_fen=123_456, paid_orders=7))]))
    page.add_init_script(ANSWERS_READ)
    log_in_as("admin")  # the five reports are asked for at once; the overview is answered only after the logout
    assert asked.wait(timeout=10)

    page.click("#logout")
    release.set()
    wait_until_read(page, [f"/api/v1/admin/analytics/{report}?"
                           for report in ("overview", "preferences", "regions", "funnel", "retention")])

    assert page.query_selector_all("#cards .card") == [] and page.query_selector_all("#dashboard-view svg") == []
    assert page.get_attribute("body", "data-loaded") is None and page.inner_text("#status") == ""
    assert "¥1,234.56" not in page.content()
    assert page.errors == []


def form_fields(page: Any) -> dict[str, str]:
    """The value of each field of the console's forms (the login's aside), by its id."""
    return dict(page.eval_on_selector_all("main form:not(#login-form) :is(input, select)",
                                          "fields => fields.map((field) => [field.id, field.value])"))


def test_the_next_staff_member_finds_every_search_and_filter_empty(page: Any, log_in_as,
                                                                   clients: FakeServices) -> None:
    clients.order.SearchOrders.reply = order_pb2.ListOrdersResponse(orders=[], total=0)
    log_in_as("admin")
    defaults = form_fields(page)
    entered = {"order-status": "PAID", "order-no": "2026112912000000000000abcd1234", "order-user": "42",
               "order-from": "2026-11-01", "order-to": "2026-11-02", "case-status": "REQUESTED",
               "case-type": "refund_only", "case-order-no": "2026112912000000000000abcd1234",
               "refund-status": "ABNORMAL", "refund-source": "cancel", "refund-order-no": "20261129120000",
               "close-refund-no": "R2026112900001", "close-refund-reason": "the shopper's bank account is closed",
               "wallet-status": "HANDLED", "withdrawal-status": "PAID", "product-q": "龙井", "product-status": "DRAFT",
               "coupon-status": "active", "review-product": "100", "review-rating": "1", "review-hidden": "true",
               "user-phone": "13800138000", "user-id": "42",
               "user-nickname": "小王", "from": "2026-01-01", "to": "2026-01-31", "export-kind": "money",
               "export-format": "csv"}
    page.evaluate("""(entered) => { for (const [id, value] of Object.entries(entered)) {
        document.getElementById(id).value = value; } }""", entered)
    assert {id: page.input_value(f"#{id}") for id in entered} == entered  # each value is one its field takes
    assert set(entered) == set(defaults)  # every search, filter and form field of the console

    page.click("#logout")
    log_in_at_the_same_page(page, "customer_service")

    assert form_fields(page) == defaults
    assert page.errors == []


def test_a_create_form_left_open_goes_with_its_key_for_the_next_staff_member(page: Any, log_in_as,
                                                                            clients: FakeServices) -> None:
    log_in_as("operator")
    page.click("[data-section=products-view]")
    page.click("#new-product")
    page.fill("#product-form-name", "明前龙井")
    page.click("[data-section=coupons-view]")
    page.click("#new-coupon")
    page.fill("#coupon-form-name", "满50减5")

    page.click("#logout")
    log_in_at_the_same_page(page, "admin")

    assert page.query_selector_all("form.create") == [] and "明前龙井" not in page.content()
    page.click("[data-section=products-view]")
    page.click("#new-product")
    assert page.input_value("#product-form-name") == ""
    assert page.errors == []


def test_a_create_form_still_loading_at_logout_is_not_drawn_and_its_button_works_for_the_next_one(
        page: Any, log_in_as, clients: FakeServices) -> None:
    held: list[Any] = []
    log_in_as("operator")
    page.click("[data-section=products-view]")
    page.route("**/api/v1/categories", lambda route: held.append(route))
    with page.expect_request("**/api/v1/categories"):
        page.click("#new-product")

    page.click("#logout")
    log_in_at_the_same_page(page, "admin")
    with page.expect_response("**/api/v1/categories"):  # the last session's answer, after the next login
        held[0].continue_()
    page.unroute("**/api/v1/categories")
    page.click("[data-section=products-view]")

    assert page.is_enabled("#new-product") and page.query_selector("#product-form") is None
    page.click("#new-product")
    page.wait_for_selector("#product-form")
    assert page.errors == []


def refused_unless(token: Callable[[], str]) -> Callable[[Any], None]:
    """A route handler for /api/v1/admin/**: 401, as for an expired access token, unless the call carries `token()`."""
    def answer(route: Any) -> None:
        if route.request.headers.get("authorization") == f"Bearer {token()}":
            route.continue_()
        else:
            route.fulfill(status=401, content_type="application/json",
                          body='{"error": {"code": "UNAUTHENTICATED", "message": "expired"}}')
    return answer


def test_a_refresh_answered_after_the_next_login_does_not_hand_over_the_last_staff_members_session(
        page: Any, log_in_as, clients: FakeServices, mint: Callable[..., str]) -> None:
    """Customer service's token expired, the console asked for a refresh, they logged out and an admin logged in at
    the same desk; the old refresh answered then must not replace the admin's session with customer service's."""
    asked, release, clients.user.RefreshSession.answer = held_until_released(user_pb2.LoginResponse(
        access_token=mint(user_id=9, roles="customer_service"), refresh_token="cs-refresh", expires_in=900,
        user=user_pb2.User(id=9, nickname="客服小王", roles=["customer_service"])))
    page.route("**/api/v1/admin/**", refused_unless(lambda: "none"))
    log_in_as("customer_service")
    assert asked.wait(timeout=10)
    page.evaluate("() => { window.heldRefresh = refreshing.done; }")
    page.unroute("**/api/v1/admin/**")

    page.click("#logout")
    log_in_at_the_same_page(page, "admin")
    admins = page.evaluate("() => sessionStorage.getItem('access_token')")
    release.set()

    assert page.evaluate("() => window.heldRefresh") is False  # the old session's refresh, answered and dropped
    assert page.evaluate("() => sessionStorage.getItem('access_token')") == admins


def test_calls_refused_together_share_one_refresh_so_the_session_is_not_ended_for_a_reused_token(
        page: Any, log_in_as, clients: FakeServices, mint: Callable[..., str]) -> None:
    """The dashboard's five reports are refused together when the access token expires: one refresh for all of them
    (each presenting the same refresh token, the user service would take the second for a stolen one)."""
    renewed = mint(user_id=7, roles="admin")
    asked, release, held = held_until_released(user_pb2.LoginResponse(
        access_token=renewed, refresh_token="refresh-2", expires_in=900,
        user=user_pb2.User(id=7, nickname="管理员", roles=["admin"])))
    presented: list[str] = []

    def refresh(message: user_pb2.RefreshSessionRequest) -> user_pb2.LoginResponse:
        presented.append(message.refresh_token)
        return held(message)
    clients.user.RefreshSession.answer = refresh
    page.add_init_script("""
        window.refused = 0;
        const send = window.fetch;
        window.fetch = (...args) => send(...args).then((response) => {
            if (response.status === 401) window.refused += 1;
            return response;
        });
    """)
    page.add_init_script(ANSWERS_READ)
    page.route("**/api/v1/admin/**", refused_unless(lambda: renewed))
    log_in_as("admin")  # the five reports are asked for at once, each refused
    assert asked.wait(timeout=10)
    page.wait_for_function("() => window.refused >= 5")

    release.set()
    wait_until_read(page, [f"/api/v1/admin/analytics/{report}?"
                           for report in ("overview", "preferences", "regions", "funnel", "retention")])

    assert presented == ["refresh"]
    assert page.evaluate("() => sessionStorage.getItem('access_token')") == renewed


def test_a_password_an_admin_set_is_changed_with_a_reset_code_before_the_console_opens(
        page: Any, log_in_as, clients: FakeServices, rpc_error, gateway_url: str) -> None:
    answer = clients.user.LoginWithPassword.answer  # log_in_as's: as the real user service answers logins
    assert answer is not None

    def one_time(message: user_pb2.LoginWithPasswordRequest) -> user_pb2.LoginResponse:
        if not message.new_password:
            raise rpc_error(grpc.StatusCode.PERMISSION_DENIED, "an admin set this password",
                            ((CODE_KEY, "PASSWORD_CHANGE_REQUIRED"),))
        return answer(message)
    clients.user.LoginWithPassword.answer = one_time
    clients.user.SendSmsCode.reply = user_pb2.SendSmsCodeResponse(expires_in=300, resend_after=60)
    page.goto(f"{gateway_url}/admin/")
    page.fill("#phone", STAFF_PHONES["finance"])
    page.fill("#password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#password-change:not([hidden])")
    asked = page.is_hidden("#sections")

    page.click("#send-reset-code")
    page.wait_for_selector("#login-error:text('The code is on its way to your phone.')")
    page.fill("#new-password", "mypass2026")
    page.fill("#reset-code", "123456")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#sections:not([hidden])")

    assert asked and page.is_hidden("#password-change") and page.input_value("#new-password") == ""
    assert [call.message for call in clients.user.SendSmsCode.calls] == [
        user_pb2.SendSmsCodeRequest(phone=STAFF_PHONES["finance"], purpose="reset")]
    assert [call.message for call in clients.user.LoginWithPassword.calls] == [
        user_pb2.LoginWithPasswordRequest(phone=STAFF_PHONES["finance"], password=PASSWORD),
        user_pb2.LoginWithPasswordRequest(phone=STAFF_PHONES["finance"], password=PASSWORD,
                                          new_password="mypass2026", sms_code="123456")]
    assert [error for error in page.errors if "status of 403" not in error] == []  # the browser logs the 403
