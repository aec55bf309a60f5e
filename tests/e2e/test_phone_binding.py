"""A WeChat-first shopper binds a phone through the gateway (console SMS codes), and staff find users, on PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
import requests
from sqlalchemy import create_engine, func, select
from sqlalchemy.pool import NullPool

from services.user.db import user_lookups
from tests.fixtures.platform import Platform
from tests.fixtures.shop import TIMEOUT, admin_headers, new_phone, sms_code, sms_login_reply, staff, wechat_login
from tools.simulator.client import SimulatorClient

pytestmark = pytest.mark.e2e


def bind(platform: Platform, headers: dict[str, str], phone: str, code: str, openid: str) -> requests.Response:
    """Bind as the holder of `openid`'s WeChat (a fresh wx.login code of it from the simulator)."""
    wechat_code = SimulatorClient(platform.simulator_url).wechat_login_code(openid)
    return requests.post(f"{platform.api}/me/phone", json={"phone": phone, "code": code, "wechat_code": wechat_code},
                         headers=headers, timeout=TIMEOUT)


def openid() -> str:
    return f"o-e2e-bind-{uuid.uuid4().hex[:10]}"


def error_code(response: requests.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_a_wechat_first_shopper_binds_a_phone_then_logs_in_and_resets_the_password_with_it(
        platform: Platform) -> None:
    mine, phone = openid(), new_phone()
    headers = wechat_login(platform, mine)
    me = requests.get(f"{platform.api}/me", headers=headers, timeout=TIMEOUT).json()

    bound = bind(platform, headers, phone, sms_code(platform, phone, "bind"), mine)
    by_sms = sms_login_reply(platform, phone)
    reset = requests.post(f"{platform.api}/auth/password/reset", timeout=TIMEOUT, json={
        "phone": phone, "code": sms_code(platform, phone, "reset"), "new_password": "bound-phone-9"})
    by_password = requests.post(f"{platform.api}/auth/login/password", json={"phone": phone, "password": "bound-phone-9"},
                                timeout=TIMEOUT)
    ended = requests.delete(f"{platform.api}/me/wechat", headers=headers, json={"sms_code": "123456"},
                            timeout=TIMEOUT)  # the reset ended it
    unbound = requests.delete(f"{platform.api}/me/wechat", timeout=TIMEOUT,
                              json={"sms_code": sms_code(platform, phone, "unbind")},
                              headers={"Authorization": f"Bearer {by_password.json()['access_token']}"})

    masked = f"{phone[:3]}****{phone[-4:]}"
    assert (me["phone"], bound.status_code, bound.json()["id"], bound.json()["phone"]) == ("", 200, me["id"], masked)
    assert (by_sms["is_new_user"], by_sms["user"]["id"], by_sms["user"]["phone"]) == (False, me["id"], masked)
    assert (reset.status_code, by_password.status_code, by_password.json()["user"]["id"]) == (200, 200, me["id"])
    assert error_code(ended) == (401, "SESSION_ENDED")
    assert (unbound.status_code, unbound.json()) == (200, {"wechat_bound": False})  # a phone to log in with now
    assert phone not in platform.log_file.read_text(errors="replace")  # masked in every service's log


def test_a_phone_of_another_account_is_409_and_stays_with_that_account(platform: Platform) -> None:
    phone = new_phone()
    owner = sms_login_reply(platform, phone)
    mine = openid()
    headers = wechat_login(platform, mine)

    refused = bind(platform, headers, phone, sms_code(platform, phone, "bind"), mine)
    holders = requests.post(f"{platform.api}/admin/users/search", json={"phone": phone},
                            headers=admin_headers(platform), timeout=TIMEOUT).json()

    assert error_code(refused) == (409, "PHONE_BOUND_ELSEWHERE")
    assert ([u["id"] for u in holders["items"]], holders["total"]) == ([owner["user"]["id"]], 1)
    assert requests.get(f"{platform.api}/me", headers=headers, timeout=TIMEOUT).json()["phone"] == ""


def test_code_errors_are_those_of_sms_login(platform: Platform) -> None:
    mine, phone = openid(), new_phone()
    headers = wechat_login(platform, mine)
    login_code = sms_code(platform, phone, "login")  # another purpose: no bind code was sent
    bind_code = sms_code(platform, phone, "bind")
    wrong = f"{(int(bind_code) + 1) % 10**6:06d}"

    assert error_code(bind(platform, headers, phone, login_code, mine)) == (400, "SMS_CODE_INVALID")
    assert error_code(bind(platform, headers, phone, wrong, mine)) == (400, "SMS_CODE_INVALID")
    assert bind(platform, headers, phone, bind_code, mine).status_code == 200
    assert error_code(bind(platform, headers, phone, bind_code, mine)) == (400, "SMS_CODE_EXPIRED")


def test_a_stolen_token_with_the_thiefs_own_wechat_and_phone_binds_nothing(platform: Platform) -> None:
    headers, phone = wechat_login(platform, openid()), new_phone()  # the victim's token, the thief's phone
    code = sms_code(platform, phone, "bind")

    refused = bind(platform, headers, phone, code, openid())  # a wx.login code of the thief's WeChat

    assert error_code(refused) == (403, "WECHAT_MISMATCH")
    assert requests.get(f"{platform.api}/me", headers=headers, timeout=TIMEOUT).json()["phone"] == ""
    assert sms_login_reply(platform, phone)["is_new_user"] is True  # the phone reaches no existing account


def test_an_account_with_a_phone_cannot_bind_another(platform: Platform) -> None:
    mine, other = new_phone(), new_phone()
    headers = {"Authorization": f"Bearer {sms_login_reply(platform, mine)['access_token']}"}

    assert error_code(bind(platform, headers, other, sms_code(platform, other, "bind"), openid())) == (
        409, "PHONE_ALREADY_BOUND")  # no WeChat bound: no wx.login code is asked of it


def test_staff_find_a_shopper_by_phone_masked_and_shoppers_may_not(platform: Platform) -> None:
    phone = new_phone()
    shopper = sms_login_reply(platform, phone)

    def search(headers: dict[str, str], query: str) -> requests.Response:
        return requests.get(f"{platform.api}/admin/users?{query}", headers=headers, timeout=TIMEOUT)

    def search_by_body(headers: dict[str, str], body: dict[str, object]) -> requests.Response:
        return requests.post(f"{platform.api}/admin/users/search", json=body, headers=headers, timeout=TIMEOUT)

    engine = create_engine(platform.database_urls["user"], poolclass=NullPool)
    with engine.connect() as conn:
        audited_before = conn.execute(select(func.coalesce(func.max(user_lookups.c.id), 0))).scalar_one()
    by_admin = search(admin_headers(platform), f"phone={phone}")
    by_service = search(staff(platform, ["customer_service"]), f"id={shopper['user']['id']}")
    by_body = search_by_body(staff(platform, ["operator"]), {"phone": phone, "page": 1, "page_size": 20})
    past_the_end = search_by_body(admin_headers(platform), {"phone": phone, "page": 2, "page_size": 1})

    assert by_admin.status_code == 200, by_admin.text
    assert [(u["id"], u["phone"]) for u in by_admin.json()["items"]] == [
        (shopper["user"]["id"], f"{phone[:3]}****{phone[-4:]}")]
    assert (by_admin.json()["total"], by_admin.json()["page"], by_admin.json()["page_size"]) == (1, 1, 20)
    assert [u["id"] for u in by_service.json()["items"]] == [shopper["user"]["id"]]
    assert error_code(search({"Authorization": f"Bearer {shopper['access_token']}"}, f"phone={phone}")) == (
        403, "FORBIDDEN")
    assert error_code(search(admin_headers(platform), "page=1")) == (400, "USER_SEARCH_EMPTY")
    assert (by_body.status_code, by_body.json()) == (200, by_admin.json())  # the POST is the same search
    assert (past_the_end.json()["items"], past_the_end.json()["total"], past_the_end.json()["page"]) == ([], 1, 2)
    assert error_code(search_by_body({"Authorization": f"Bearer {shopper['access_token']}"}, {"phone": phone})) == (
        403, "FORBIDDEN")
    assert error_code(search_by_body(admin_headers(platform), {"page": 1})) == (400, "USER_SEARCH_EMPTY")
    assert error_code(search_by_body(admin_headers(platform), {"phone": int(phone)})) == (400, "INVALID_REQUEST")
    with engine.connect() as conn:  # each search audited alike, the phone masked
        audited = conn.execute(select(user_lookups.c.criteria, user_lookups.c.user_ids, user_lookups.c.total)
                               .where(user_lookups.c.id > audited_before).order_by(user_lookups.c.id)).all()
    masked, found = f"phone={phone[:3]}****{phone[-4:]}", str(shopper["user"]["id"])
    assert [tuple(row) for row in audited] == [(masked, found, 1), (f"id={found}", found, 1), (masked, found, 1),
                                               (masked, "", 1)]
