"""Page views from POST /track through the outbox, the broker and the consumer to the admin reports."""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import requests

from tests.fixtures.platform import Platform

pytestmark = pytest.mark.e2e

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def admin(platform: Platform) -> dict[str, str]:
    reply = requests.post(f"{platform.api}/auth/login/password",
                          json={"phone": platform.admin_phone, "password": platform.admin_password}, timeout=10)
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def report(platform: Platform, admin: dict[str, str], name: str) -> dict:
    """Today's report (Shanghai day), once analytics has applied every page view tracked so far."""
    platform.wait_until_consumed("page-viewed", "analytics")
    platform.wait_until_consumed("user-registered", "analytics")
    today = datetime.now(SHANGHAI).date().isoformat()
    reply = requests.get(f"{platform.api}/admin/analytics/{name}", params={"from": today, "to": today},
                         headers=admin, timeout=10)
    assert reply.status_code == 200, reply.text
    return reply.json()


def track(platform: Platform, device: str, pages: list[str], headers: dict[str, str] | None = None) -> dict:
    now = datetime.now(SHANGHAI).isoformat()
    reply = requests.post(f"{platform.api}/track", headers=headers or {}, timeout=10, json={
        "device_id": device, "events": [{"type": "page_view", "page": page, "referrer": "", "ts": now,
                                         "session_id": "launch-1"} for page in pages]})
    assert reply.status_code == 202, reply.text
    return reply.json()


def test_an_anonymous_visitors_page_views_are_counted_once_with_one_visitor_and_one_visit(
        platform: Platform, admin: dict[str, str]) -> None:
    before = report(platform, admin, "overview")

    accepted = track(platform, f"dev-{uuid.uuid4().hex}", ["pages/index/index", "pages/product/detail"])

    after = report(platform, admin, "overview")
    assert accepted == {"accepted": 2}
    assert [after[k] - before[k] for k in ("page_views", "unique_visitors", "visits")] == [2, 1, 1]


def test_a_logged_in_shoppers_views_put_them_in_the_funnel(platform: Platform, admin: dict[str, str]) -> None:
    sent = requests.post(f"{platform.api}/auth/sms-codes", json={"phone": "13900000077", "purpose": "login"},
                         timeout=10).json()
    session = requests.post(f"{platform.api}/auth/login/sms", json={"phone": "13900000077", "code": sent["dev_code"]},
                            timeout=10).json()
    before = report(platform, admin, "funnel")

    track(platform, f"dev-{uuid.uuid4().hex}", ["pages/index/index"],
          headers={"Authorization": f"Bearer {session['access_token']}"})

    assert report(platform, admin, "funnel")["viewed"] == before["viewed"] + 1


def test_a_shopper_may_not_read_the_reports(platform: Platform) -> None:
    sent = requests.post(f"{platform.api}/auth/sms-codes", json={"phone": "13900000078", "purpose": "login"},
                         timeout=10).json()
    token = requests.post(f"{platform.api}/auth/login/sms", json={"phone": "13900000078", "code": sent["dev_code"]},
                          timeout=10).json()["access_token"]

    statuses = {name: requests.get(f"{platform.api}/admin/analytics/{name}", timeout=10,
                                   headers={"Authorization": f"Bearer {token}"}).status_code
                for name in ("overview", "preferences", "regions", "funnel", "retention")}

    assert statuses == dict.fromkeys(statuses, 403)


def test_a_profiles_region_set_by_short_name_is_tracked_in_its_provinces_row(platform: Platform,
                                                                             admin: dict[str, str]) -> None:
    sent = requests.post(f"{platform.api}/auth/sms-codes", json={"phone": "13900000079", "purpose": "login"},
                         timeout=10).json()
    token = requests.post(f"{platform.api}/auth/login/sms", json={"phone": "13900000079", "code": sent["dev_code"]},
                          timeout=10).json()["access_token"]
    shopper = {"Authorization": f"Bearer {token}"}
    before = {r["province"]: r["page_views"] for r in report(platform, admin, "regions")["provinces"]}

    saved = requests.patch(f"{platform.api}/me", json={"region": "宁夏"}, headers=shopper, timeout=10).json()["region"]
    tracked = requests.post(f"{platform.api}/track", headers=shopper, timeout=10, json={
        "device_id": f"dev-{uuid.uuid4().hex}", "events": [
            {"type": "page_view", "page": "pages/index/index", "session_id": "launch-1", "region": region}
            for region in (saved, "宁夏")]})

    after = {r["province"]: r["page_views"] for r in report(platform, admin, "regions")["provinces"]}
    assert (saved, tracked.status_code, after.get("宁夏回族自治区", 0) - before.get("宁夏回族自治区", 0),
            "宁夏" in after) == ("宁夏回族自治区", 202, 2, False)
