"""SMS codes and logins: what is asked of the user service, and the JSON made of its reply."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from flask.testing import FlaskClient
from mall.user.v1 import user_pb2

from services.common.grpc_server import CODE_KEY

SMS_CODES = "/api/v1/auth/sms-codes"


@pytest.fixture
def login_reply() -> user_pb2.LoginResponse:
    return user_pb2.LoginResponse(
        access_token="access.jwt.token", refresh_token="refresh-opaque", expires_in=900, is_new_user=True,
        user=user_pb2.User(id=1001, phone_masked="138****8000", nickname="用户8000", avatar_url="",
                           roles=["admin", "operator"]))


SESSION_JSON = {
    "access_token": "access.jwt.token", "refresh_token": "refresh-opaque", "token_type": "Bearer",
    "expires_in": 900, "is_new_user": True,
    "user": {"id": 1001, "phone": "138****8000", "nickname": "用户8000", "avatar_url": "",
             "roles": ["admin", "operator"]},
}


def test_sms_code_request_asks_the_user_service_for_that_phone_and_purpose(client: FlaskClient, clients) -> None:
    client.post(SMS_CODES, json={"phone": "13800138000", "purpose": "signup"})

    assert [call.message for call in clients.user.SendSmsCode.calls] == [
        user_pb2.SendSmsCodeRequest(phone="13800138000", purpose="signup")]


def test_sms_code_sent_is_202_without_the_code(client: FlaskClient) -> None:
    response = client.post(SMS_CODES, json={"phone": "13800138000", "purpose": "login"})

    assert (response.status_code, response.get_json()) == (202, {"expires_in": 300, "resend_after": 60})


def test_sms_code_is_returned_as_dev_code_only_when_the_service_reveals_it(client: FlaskClient, clients) -> None:
    clients.user.SendSmsCode.reply = user_pb2.SendSmsCodeResponse(expires_in=300, resend_after=60, dev_code="042042")

    response = client.post(SMS_CODES, json={"phone": "13800138000", "purpose": "login"})

    assert (response.status_code, response.get_json()) == (
        202, {"expires_in": 300, "resend_after": 60, "dev_code": "042042"})


def test_sms_login_passes_phone_and_code(client: FlaskClient, clients, login_reply) -> None:
    clients.user.LoginWithSms.reply = login_reply

    client.post("/api/v1/auth/login/sms", json={"phone": "13800138000", "code": "123456"})

    assert [call.message for call in clients.user.LoginWithSms.calls] == [
        user_pb2.LoginWithSmsRequest(phone="13800138000", code="123456")]


def test_sms_login_answers_the_session(client: FlaskClient, clients, login_reply) -> None:
    clients.user.LoginWithSms.reply = login_reply

    response = client.post("/api/v1/auth/login/sms", json={"phone": "13800138000", "code": "123456"})

    assert (response.status_code, response.get_json()) == (200, SESSION_JSON)


def test_password_login_passes_phone_and_password(client: FlaskClient, clients, login_reply) -> None:
    clients.user.LoginWithPassword.reply = login_reply

    client.post("/api/v1/auth/login/password", json={"phone": "13800138000", "password": "abcd1234"})

    assert [call.message for call in clients.user.LoginWithPassword.calls] == [
        user_pb2.LoginWithPasswordRequest(phone="13800138000", password="abcd1234")]


def test_password_login_passes_the_change_of_a_password_an_admin_set(client: FlaskClient, clients,
                                                                      login_reply) -> None:
    clients.user.LoginWithPassword.reply = login_reply

    response = client.post("/api/v1/auth/login/password", json={
        "phone": "13800138000", "password": "abcd1234", "new_password": "mypass2026", "sms_code": "123456"})

    assert response.status_code == 200
    assert [call.message for call in clients.user.LoginWithPassword.calls] == [user_pb2.LoginWithPasswordRequest(
        phone="13800138000", password="abcd1234", new_password="mypass2026", sms_code="123456")]


def test_a_password_an_admin_set_is_403_password_change_required(client: FlaskClient, clients, rpc_error) -> None:
    clients.user.LoginWithPassword.error = rpc_error(grpc.StatusCode.PERMISSION_DENIED, "change it",
                                                     ((CODE_KEY, "PASSWORD_CHANGE_REQUIRED"),))

    response = client.post("/api/v1/auth/login/password", json={"phone": "13800138000", "password": "abcd1234"})

    assert (response.status_code, response.get_json()["error"]["code"]) == (403, "PASSWORD_CHANGE_REQUIRED")


@pytest.mark.parametrize("extra", [{"sms_code": "12345"}, {"sms_code": None}, {"new_password": None},
                                   {"new_password": "a1" * 65}])
def test_password_login_refuses_a_malformed_change_before_the_user_service(client: FlaskClient, clients,
                                                                          extra: dict) -> None:
    response = client.post("/api/v1/auth/login/password",
                           json={"phone": "13800138000", "password": "abcd1234"} | extra)

    assert (response.status_code, clients.user.LoginWithPassword.calls) == (400, [])


def test_password_login_answers_the_session(client: FlaskClient, clients, login_reply) -> None:
    clients.user.LoginWithPassword.reply = login_reply

    response = client.post("/api/v1/auth/login/password", json={"phone": "13800138000", "password": "abcd1234"})

    assert (response.status_code, response.get_json()) == (200, SESSION_JSON)


def test_gateway_does_not_check_tokens_on_public_routes(client: FlaskClient) -> None:
    response = client.post(SMS_CODES, json={"phone": "13800138000", "purpose": "login"},
                           headers={"Authorization": "Bearer not-a-token"})

    assert response.status_code == 202


def test_unverified_token_on_a_public_route_is_not_passed_on(client: FlaskClient, clients, mint) -> None:
    """Services refuse any token they are sent, so a stale one must not block asking for a code or logging in."""
    stale = mint(issued_ago=timedelta(hours=1))

    client.post(SMS_CODES, json={"phone": "13800138000", "purpose": "login"},
                headers={"Authorization": f"Bearer {stale}", "X-Request-ID": "r-stale"})

    assert clients.user.SendSmsCode.calls[0].metadata == {"x-request-id": "r-stale"}
