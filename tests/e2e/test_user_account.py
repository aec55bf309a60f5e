"""A shopper's account through the gateway on PostgreSQL: sessions, profile, addresses, identity, passwords, roles."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import create_engine, select
from sqlalchemy.pool import NullPool

from services.user.db import user_role_changes
from tests.fixtures.platform import Platform
from tests.fixtures.shop import new_phone, sms_code, sms_login_reply

pytestmark = pytest.mark.e2e

ADDRESS = {"receiver_name": "张三", "receiver_phone": "13800138000", "province": "广东省", "city": "深圳市",
           "district": "南山区", "detail": "科技园 1 号"}


def call(platform: Platform, method: str, path: str, token: str | None = None, **kwargs: object) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.request(method, f"{platform.api}{path}", headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]


def error_code(response: requests.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def first_login(platform: Platform, phone: str, admin_set: str, own: str) -> requests.Response:
    """The first login with a password an admin set: changed to `own` with a reset code sent to the phone."""
    return call(platform, "POST", "/auth/login/password", json={
        "phone": phone, "password": admin_set, "new_password": own, "sms_code": sms_code(platform, phone, "reset")})


def test_refresh_rotates_and_replaying_the_old_token_ends_the_login(platform: Platform) -> None:
    login = sms_login_reply(platform, "13710000001")

    first = call(platform, "POST", "/auth/refresh", json={"refresh_token": login["refresh_token"]})
    # The session moved on: the old token presented now is no retry of the client's, grace window or not.
    second = call(platform, "POST", "/auth/refresh", json={"refresh_token": first.json()["refresh_token"]})
    replay = call(platform, "POST", "/auth/refresh", json={"refresh_token": login["refresh_token"]})
    after = call(platform, "POST", "/auth/refresh", json={"refresh_token": second.json()["refresh_token"]})

    assert (first.status_code, first.json()["user"]["phone"], first.json()["is_new_user"]) == (200, "137****0001", False)
    assert (first.json()["refresh_token"] != login["refresh_token"], second.status_code) == (True, 200)
    assert error_code(replay) == (401, "REFRESH_TOKEN_REUSED")
    assert error_code(after) == (401, "REFRESH_TOKEN_REVOKED")
    assert [error_code(call(platform, "GET", "/me", token)) for token in (
        login["access_token"], first.json()["access_token"], second.json()["access_token"])] == [
        (401, "SESSION_ENDED")] * 3  # the login's, at once


def test_a_refresh_retried_after_a_lost_answer_keeps_the_session(platform: Platform) -> None:
    login = sms_login_reply(platform, new_phone())

    lost = call(platform, "POST", "/auth/refresh", json={"refresh_token": login["refresh_token"]})
    retried = call(platform, "POST", "/auth/refresh", json={"refresh_token": login["refresh_token"]})

    assert (lost.status_code, retried.status_code) == (200, 200)
    assert [call(platform, "GET", "/me", reply.json()["access_token"]).status_code for reply in (lost, retried)] == [
        200, 200]


def test_logout_ends_the_session_of_its_refresh_token(platform: Platform) -> None:
    login = sms_login_reply(platform, "13710000002")
    tablet = call(platform, "POST", "/auth/refresh", json={"refresh_token": login["refresh_token"]}).json()

    logged_out = call(platform, "POST", "/auth/logout", json={"refresh_token": tablet["refresh_token"]})
    again = call(platform, "POST", "/auth/logout", json={"refresh_token": tablet["refresh_token"]})

    assert (logged_out.status_code, logged_out.json(), again.json()) == (200, {"sessions_ended": 1},
                                                                         {"sessions_ended": 0})
    assert error_code(call(platform, "POST", "/auth/refresh", json={"refresh_token": tablet["refresh_token"]})) == (
        401, "REFRESH_TOKEN_REVOKED")
    assert error_code(call(platform, "GET", "/me", tablet["access_token"])) == (401, "SESSION_ENDED")


def test_after_a_logout_the_access_token_is_refused_at_once_and_a_new_login_works_at_once(
        platform: Platform) -> None:
    phone = "13710000013"
    sms_login_reply(platform, phone)  # the account
    other = sms_login_reply(platform, "13710000014")
    reset = call(platform, "POST", "/auth/password/reset",  # a password, to log in again within the second
                 json={"phone": phone, "code": sms_code(platform, phone, "reset"), "new_password": "newpass99"})
    login = call(platform, "POST", "/auth/login/password", json={"phone": phone, "password": "newpass99"}).json()
    verified = call(platform, "GET", "/me", login["access_token"]).status_code

    call(platform, "POST", "/auth/logout", json={"refresh_token": login["refresh_token"]})
    again = call(platform, "POST", "/auth/login/password", json={"phone": phone, "password": "newpass99"}).json()

    assert (reset.status_code, verified) == (200, 200)
    assert error_code(call(platform, "GET", "/me", login["access_token"])) == (401, "SESSION_ENDED")
    assert [call(platform, "GET", "/me", session["access_token"]).status_code for session in (again, other)] == [
        200, 200]


def test_logout_all_ends_every_session_of_the_caller(platform: Platform) -> None:
    login = sms_login_reply(platform, "13710000003")
    second = call(platform, "POST", "/auth/refresh", json={"refresh_token": login["refresh_token"]}).json()

    ended = call(platform, "POST", "/auth/logout-all", second["access_token"])

    assert (ended.status_code, ended.json()) == (200, {"sessions_ended": 1})
    assert call(platform, "POST", "/auth/refresh", json={"refresh_token": second["refresh_token"]}).status_code == 401
    assert error_code(call(platform, "GET", "/me", second["access_token"])) == (401, "SESSION_ENDED")


def test_profile_changes_only_by_the_allowlist(platform: Platform) -> None:
    token = sms_login_reply(platform, "13710000004")["access_token"]

    changed = call(platform, "PATCH", "/me", token, json={"nickname": "小明", "birthday": "1990-05-17", "gender": "male"})
    mass = call(platform, "PATCH", "/me", token, json={"nickname": "黑客", "phone": "13800000000", "roles": ["admin"]})
    invalid = call(platform, "PATCH", "/me", token, json={"nickname": "黑客", "birthday": "2999-01-01"})
    me = call(platform, "GET", "/me", token)

    assert changed.status_code == 200
    assert (mass.status_code, sorted(mass.json()["error"]["details"])) == (400, ["phone", "roles"])
    assert (invalid.status_code, invalid.json()["error"]["details"]) == (
        400, {"birthday": "must be between 1900-01-01 and today"})
    assert me.json() == {"id": me.json()["id"], "phone": "137****0004", "nickname": "小明", "avatar_url": "",
                         "gender": "male", "birthday": "1990-05-17", "region": "", "identity_verified": False,
                         "wechat_bound": False}


def test_addresses_keep_one_default_and_are_invisible_to_other_shoppers(platform: Platform) -> None:
    alice = sms_login_reply(platform, "13710000005")["access_token"]
    bob = sms_login_reply(platform, "13710000006")["access_token"]
    home = call(platform, "POST", "/me/addresses", alice, json=ADDRESS)
    office = call(platform, "POST", "/me/addresses", alice, json={**ADDRESS, "detail": "福田 8 楼", "is_default": True})
    home_id = home.json()["id"]

    assert (home.status_code, home.json()["is_default"], home.json()["receiver_phone"]) == (201, True, "138****8000")
    assert office.json()["is_default"] is True
    listed = call(platform, "GET", "/me/addresses", alice).json()
    assert ([(a["id"], a["is_default"]) for a in listed["items"]], listed["total"]) == (
        [(office.json()["id"], True), (home_id, False)], 2)

    assert error_code(call(platform, "PUT", f"/me/addresses/{home_id}", bob, json={**ADDRESS, "detail": "改"})) == (
        400, "INVALID_REQUEST")  # too short: refused before ownership is even looked at
    assert error_code(call(platform, "PUT", f"/me/addresses/{home_id}", bob, json={**ADDRESS, "detail": "改掉它"})) == (
        404, "ADDRESS_NOT_FOUND")
    assert error_code(call(platform, "DELETE", f"/me/addresses/{home_id}", bob)) == (404, "ADDRESS_NOT_FOUND")
    assert call(platform, "GET", "/me/addresses", bob).json()["total"] == 0
    assert [a["detail"] for a in call(platform, "GET", "/me/addresses", alice).json()["items"]] == [
        "福田 8 楼", "科技园 1 号"]

    deleted = call(platform, "DELETE", f"/me/addresses/{office.json()['id']}", alice)
    assert (deleted.json(), call(platform, "GET", "/me/addresses", alice).json()["items"][0]["is_default"]) == (
        {"id": office.json()["id"], "deleted": True}, True)


def test_identity_is_verified_once_per_id_number_and_shown_masked(platform: Platform) -> None:
    alice = sms_login_reply(platform, "13710000007")["access_token"]
    bob = sms_login_reply(platform, "13710000008")["access_token"]
    identity = {"real_name": "张三", "id_number": "11010519491231002X"}

    wrong = call(platform, "POST", "/me/identity", alice, json={"real_name": "张三", "id_number": "110105194912310021"})
    verified = call(platform, "POST", "/me/identity", alice, json=identity)
    taken = call(platform, "POST", "/me/identity", bob, json={**identity, "real_name": "李四"})

    assert (wrong.status_code, wrong.json()["error"]["details"]) == (400, {"id_number": "wrong check digit"})
    assert (verified.status_code, verified.json()["real_name"], verified.json()["id_number"]) == (
        200, "张*", "1101**********002X")
    assert error_code(taken) == (409, "ID_NUMBER_TAKEN")
    assert call(platform, "GET", "/me", alice).json()["identity_verified"] is True
    assert call(platform, "GET", "/me/identity", bob).json() == {"verified": False, "real_name": None,
                                                                 "id_number": None, "verified_at": None}
    assert "11010519491231002X" not in platform.log_file.read_text(errors="replace")


def test_a_forgotten_password_is_reset_by_sms_and_every_session_ends(platform: Platform) -> None:
    phone = "13710000009"
    login = sms_login_reply(platform, phone)

    reset = call(platform, "POST", "/auth/password/reset",
                 json={"phone": phone, "code": sms_code(platform, phone, "reset"), "new_password": "newpass99"})
    by_password = call(platform, "POST", "/auth/login/password", json={"phone": phone, "password": "newpass99"})
    changed = call(platform, "PUT", "/me/password", by_password.json()["access_token"],
                   json={"current_password": "newpass99", "new_password": "weak"})

    assert (reset.status_code, reset.json()) == (200, {"sessions_ended": 1})
    assert call(platform, "POST", "/auth/refresh", json={"refresh_token": login["refresh_token"]}).status_code == 401
    assert error_code(call(platform, "GET", "/me", login["access_token"])) == (401, "SESSION_ENDED")
    assert by_password.status_code == 200
    assert (changed.status_code, changed.json()["error"]["code"], changed.json()["error"]["details"]) == (
        400, "PASSWORD_TOO_WEAK", {"new_password": "too weak"})


def test_an_admin_grants_a_role_which_rides_only_on_password_logins(platform: Platform) -> None:
    phone = "13710000010"
    shopper = sms_login_reply(platform, phone)
    admin = call(platform, "POST", "/auth/login/password",
                 json={"phone": platform.admin_phone, "password": platform.admin_password}).json()["access_token"]

    refused = call(platform, "PUT", f"/admin/users/{shopper['user']['id']}/roles", shopper["access_token"],
                   json={"roles": ["admin"]})
    granted = call(platform, "PUT", f"/admin/users/{shopper['user']['id']}/roles", admin, json={"roles": ["finance"]})
    sms_session = call(platform, "POST", "/auth/refresh", json={"refresh_token": shopper["refresh_token"]})
    by_sms = call(platform, "POST", "/auth/password/reset",
                  json={"phone": phone, "code": sms_code(platform, phone, "reset"), "new_password": "staffpass1"})
    by_admin = call(platform, "POST", f"/admin/users/{shopper['user']['id']}/password", admin,
                    json={"new_password": "staffpass1"})
    by_password = call(platform, "POST", "/auth/login/password", json={"phone": phone, "password": "staffpass1"})

    assert refused.status_code == 403
    assert (granted.status_code, granted.json()["roles"], granted.json()["phone"]) == (200, ["finance"], "137****0010")
    assert (granted.json()["password_cleared"], granted.json()["sessions_ended"]) == (True, 1)  # the SMS login's
    assert error_code(sms_session) == (401, "REFRESH_TOKEN_REVOKED")  # the first staff role ends their sessions
    assert (by_sms.status_code, by_sms.json()["error"]["code"]) == (403, "STAFF_PASSWORD_BY_ADMIN")
    assert by_admin.status_code == 200
    assert error_code(by_password) == (403, "PASSWORD_CHANGE_REQUIRED")  # one-time: its owner changes it first
    engine = create_engine(platform.database_urls["user"], poolclass=NullPool)
    with engine.connect() as conn:
        audit = conn.execute(select(user_role_changes.c.before, user_role_changes.c.after)
                             .where(user_role_changes.c.user_id == shopper["user"]["id"])).all()
    assert [tuple(row) for row in audit] == [("", "finance")]


def test_a_password_set_by_sms_carries_no_staff_role_granted_later(platform: Platform) -> None:
    phone = "13710000012"
    shopper = sms_login_reply(platform, phone)
    admin = call(platform, "POST", "/auth/login/password",
                 json={"phone": platform.admin_phone, "password": platform.admin_password}).json()["access_token"]
    by_sms = call(platform, "POST", "/auth/password/reset",
                  json={"phone": phone, "code": sms_code(platform, phone, "reset"), "new_password": "phonepass1"})

    call(platform, "PUT", f"/admin/users/{shopper['user']['id']}/roles", admin, json={"roles": ["operator"]})
    old_password = call(platform, "POST", "/auth/login/password", json={"phone": phone, "password": "phonepass1"})
    call(platform, "POST", f"/admin/users/{shopper['user']['id']}/password", admin, json={"new_password": "staffpass1"})
    admin_set = call(platform, "POST", "/auth/login/password", json={"phone": phone, "password": "staffpass1"})

    assert by_sms.status_code == 200
    assert error_code(old_password) == (401, "INVALID_CREDENTIALS")
    assert error_code(admin_set) == (403, "PASSWORD_CHANGE_REQUIRED")  # right, and one-time: tests/integration/user
    engine = create_engine(platform.database_urls["user"], poolclass=NullPool)
    with engine.connect() as conn:
        audit = conn.execute(select(user_role_changes.c.after, user_role_changes.c.password_cleared)
                             .where(user_role_changes.c.user_id == shopper["user"]["id"])).all()
    assert [tuple(row) for row in audit] == [("operator", True)]


def test_guessing_a_staff_password_with_a_stolen_token_locks_the_change_even_to_the_right_one(
        platform: Platform) -> None:
    phone = "13710000011"
    shopper = sms_login_reply(platform, phone)
    admin = call(platform, "POST", "/auth/login/password",
                 json={"phone": platform.admin_phone, "password": platform.admin_password}).json()["access_token"]
    call(platform, "PUT", f"/admin/users/{shopper['user']['id']}/roles", admin, json={"roles": ["admin"]})
    call(platform, "POST", f"/admin/users/{shopper['user']['id']}/password", admin, json={"new_password": "staffpass1"})
    assert error_code(call(platform, "GET", "/me", shopper["access_token"])) == (401, "SESSION_ENDED")
    stolen = first_login(platform, phone, "staffpass1", "ownpass11").json()["access_token"]  # its token stolen
    for n in range(20):
        wrong = call(platform, "PUT", "/me/password", stolen,
                     json={"current_password": f"guess{n:04d}", "new_password": "takenover1"})
        assert error_code(wrong) == (400, "PASSWORD_WRONG")

    right = call(platform, "PUT", "/me/password", stolen,
                 json={"current_password": "ownpass11", "new_password": "takenover1"})

    assert error_code(right) == (429, "PASSWORD_LOCKED")
    assert 0 < int(right.headers["Retry-After"]) <= 3600 and right.json()["error"]["request_id"]
    assert call(platform, "POST", "/auth/login/password",
                json={"phone": phone, "password": "ownpass11"}).json()["user"]["roles"] == ["admin"]


def test_staff_whose_roles_are_taken_away_are_refused_on_admin_routes_at_once(platform: Platform) -> None:
    phone = "13710000015"
    shopper = sms_login_reply(platform, phone)
    admin = call(platform, "POST", "/auth/login/password",
                 json={"phone": platform.admin_phone, "password": platform.admin_password}).json()["access_token"]
    user_id = shopper["user"]["id"]
    call(platform, "PUT", f"/admin/users/{user_id}/roles", admin, json={"roles": ["operator"]})
    call(platform, "POST", f"/admin/users/{user_id}/password", admin, json={"new_password": "staffpass1"})
    staff = first_login(platform, phone, "staffpass1", "ownpass11").json()
    search = {"phone": phone}
    before = call(platform, "POST", "/admin/users/search", staff["access_token"], json=search).status_code

    taken = call(platform, "PUT", f"/admin/users/{user_id}/roles", admin, json={"roles": []})
    refused = call(platform, "POST", "/admin/users/search", staff["access_token"], json=search)
    refreshed = call(platform, "POST", "/auth/refresh", json={"refresh_token": staff["refresh_token"]}).json()

    assert (before, taken.status_code, error_code(refused)) == (200, 200, (401, "SESSION_ENDED"))
    assert (refreshed["user"]["roles"], error_code(call(platform, "POST", "/admin/users/search",
                                                        refreshed["access_token"], json=search))) == (
        [], (403, "FORBIDDEN"))
    assert call(platform, "POST", "/admin/users/search", admin, json=search).status_code == 200
