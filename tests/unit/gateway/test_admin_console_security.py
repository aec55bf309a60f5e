"""The /admin/ console in headless Chromium, as an attacker or the next person at a shared desk would try it: no
password in a URL, and nothing of a staff member's session left once the console shows its login again.

The gateway runs on a local port with the fake services (the browser, the page and its screenshots:
tests/fixtures/browser.py); staff log in with log_in_as (tests/unit/gateway/conftest.py).
"""

from __future__ import annotations

from typing import Any

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
