"""WeChat login through the gateway, the user service and the simulator's code2session, on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.e2e.test_walking_skeleton import registrations_counted
from tests.fixtures.platform import Platform
from tests.fixtures.shop import admin_headers
from tools.simulator.client import SimulatorClient

pytestmark = pytest.mark.e2e


def wechat_login(platform: Platform, openid: str) -> requests.Response:
    code = SimulatorClient(platform.simulator_url).wechat_login_code(openid)
    return requests.post(f"{platform.api}/auth/login/wechat", json={"code": code}, timeout=10)


def test_a_new_wechat_user_is_registered_counted_and_logged_in_again(platform: Platform) -> None:
    admin = admin_headers(platform)["Authorization"].removeprefix("Bearer ")
    today = datetime.now(UTC).date()  # its registration's Shanghai day falls in today or tomorrow (UTC)
    days = (today, today + timedelta(days=1))
    before = registrations_counted(platform, admin, days)

    first = wechat_login(platform, "o-e2e-wechat-1")
    again = wechat_login(platform, "o-e2e-wechat-1")

    assert (first.status_code, first.json()["is_new_user"], first.json()["user"]["phone"]) == (200, True, "")
    assert (again.status_code, again.json()["is_new_user"], again.json()["user"]["id"]) == (
        200, False, first.json()["user"]["id"])
    assert registrations_counted(platform, admin, days) == before + 1  # the second login registered no one


def test_a_reused_code_is_a_400_in_the_error_format(platform: Platform) -> None:
    code = SimulatorClient(platform.simulator_url).wechat_login_code("o-e2e-wechat-2")
    requests.post(f"{platform.api}/auth/login/wechat", json={"code": code}, timeout=10)

    reused = requests.post(f"{platform.api}/auth/login/wechat", json={"code": code}, timeout=10)

    assert (reused.status_code, reused.json()["error"]["code"]) == (400, "WECHAT_CODE_INVALID")


def test_wechat_down_is_a_503(platform: Platform) -> None:
    simulator = SimulatorClient(platform.simulator_url)
    code = simulator.wechat_login_code("o-e2e-wechat-3")
    simulator.wechat_fail_next(-1)

    response = requests.post(f"{platform.api}/auth/login/wechat", json={"code": code}, timeout=10)

    assert (response.status_code, response.json()["error"]["code"]) == (503, "WECHAT_UNAVAILABLE")


def test_a_wechat_only_account_cannot_unbind_its_last_login_method(platform: Platform) -> None:
    token = wechat_login(platform, "o-e2e-wechat-4").json()["access_token"]

    response = requests.delete(f"{platform.api}/me/wechat", headers={"Authorization": f"Bearer {token}"},
                               json={"sms_code": "123456"}, timeout=10)

    assert (response.status_code, response.json()["error"]["code"]) == (422, "LAST_LOGIN_METHOD")


def test_an_sms_shopper_binds_a_wechat_then_logs_in_with_it_and_unbinds_it_with_an_unbind_code(
        platform: Platform) -> None:
    phone = "13600001234"
    sent = requests.post(f"{platform.api}/auth/sms-codes", json={"phone": phone, "purpose": "login"}, timeout=10)
    session = requests.post(f"{platform.api}/auth/login/sms", json={"phone": phone, "code": sent.json()["dev_code"]},
                            timeout=10).json()
    headers = {"Authorization": f"Bearer {session['access_token']}"}
    simulator = SimulatorClient(platform.simulator_url)

    bind_code = requests.post(f"{platform.api}/auth/sms-codes", json={"phone": phone, "purpose": "bind"},
                              timeout=10).json()["dev_code"]
    guessed = requests.post(f"{platform.api}/me/wechat", headers=headers, timeout=10,  # a stolen token alone
                            json={"code": simulator.wechat_login_code("o-e2e-wechat-5"),
                                  "sms_code": f"{(int(bind_code) + 1) % 10**6:06d}"})
    bound = requests.post(f"{platform.api}/me/wechat", headers=headers, timeout=10,
                          json={"code": simulator.wechat_login_code("o-e2e-wechat-5"), "sms_code": bind_code})
    by_wechat = wechat_login(platform, "o-e2e-wechat-5")
    bodiless = requests.delete(f"{platform.api}/me/wechat", headers=headers, timeout=10)  # a stolen token alone
    with_bind_code = requests.delete(f"{platform.api}/me/wechat", headers=headers, json={"sms_code": bind_code},
                                     timeout=10)
    still = wechat_login(platform, "o-e2e-wechat-5")
    unbind_code = requests.post(f"{platform.api}/auth/sms-codes", json={"phone": phone, "purpose": "unbind"},
                                timeout=10).json()["dev_code"]
    unbound = requests.delete(f"{platform.api}/me/wechat", headers=headers, json={"sms_code": unbind_code},
                              timeout=10)
    anew = wechat_login(platform, "o-e2e-wechat-5")
    me_by = {name: requests.get(f"{platform.api}/me", timeout=10, headers=token) for name, token in (
        ("wechat", {"Authorization": f"Bearer {by_wechat.json()['access_token']}"}), ("owner", headers))}

    assert (guessed.status_code, guessed.json()["error"]["code"]) == (400, "SMS_CODE_INVALID")
    assert (bound.status_code, bound.json()) == (200, {"wechat_bound": True})
    assert (by_wechat.json()["is_new_user"], by_wechat.json()["user"]["id"]) == (False, session["user"]["id"])
    assert (bodiless.status_code, with_bind_code.status_code, with_bind_code.json()["error"]["code"]) == (
        415, 400, "SMS_CODE_INVALID")
    assert (still.json()["is_new_user"], still.json()["user"]["id"]) == (False, session["user"]["id"])
    assert (unbound.status_code, unbound.json()) == (200, {"wechat_bound": False})
    assert anew.json()["is_new_user"] is True and anew.json()["user"]["id"] != session["user"]["id"]
    # The sessions the WeChat started end with its binding (whoever else holds it is out); the owner's goes on.
    assert ((me_by["wechat"].status_code, me_by["wechat"].json()["error"]["code"]), me_by["owner"].status_code) == (
        (401, "SESSION_ENDED"), 200)
