"""SMS codes and logins: what is asked of the user service, and the JSON made of its reply."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from mall.user.v1 import user_pb2

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
