"""Session routes: refresh, logout, logout everywhere, password reset; what is asked of the user service."""

from __future__ import annotations

import grpc
import pytest
from flask.testing import FlaskClient
from mall.user.v1 import user_pb2

from services.common.grpc_server import CODE_KEY

LOGIN_REPLY = user_pb2.LoginResponse(
    access_token="access.jwt.token", refresh_token="refresh-2", expires_in=900,
    user=user_pb2.User(id=1001, phone_masked="138****8000", nickname="用户8000", avatar_url="", roles=[]))


def test_refresh_passes_the_token_and_answers_the_new_session(client: FlaskClient, clients) -> None:
    clients.user.RefreshSession.reply = LOGIN_REPLY

    response = client.post("/api/v1/auth/refresh", json={"refresh_token": "refresh-1"})

    assert [call.message for call in clients.user.RefreshSession.calls] == [
        user_pb2.RefreshSessionRequest(refresh_token="refresh-1")]
    assert (response.status_code, response.get_json()) == (200, {
        "access_token": "access.jwt.token", "refresh_token": "refresh-2", "token_type": "Bearer", "expires_in": 900,
        "is_new_user": False,
        "user": {"id": 1001, "phone": "138****8000", "nickname": "用户8000", "avatar_url": "", "roles": []}})


def test_a_reused_refresh_token_is_401_with_its_code(client: FlaskClient, clients, rpc_error) -> None:
    clients.user.RefreshSession.error = rpc_error(grpc.StatusCode.UNAUTHENTICATED, "already used",
                                                  ((CODE_KEY, "REFRESH_TOKEN_REUSED"),))

    response = client.post("/api/v1/auth/refresh", json={"refresh_token": "refresh-1"})

    assert (response.status_code, response.get_json()["error"]["code"]) == (401, "REFRESH_TOKEN_REUSED")


@pytest.mark.parametrize("body", [{}, {"refresh_token": ""}, {"refresh_token": 7}, {"refresh_token": "x" * 129},
                                  {"refresh_token": "r", "user_id": 1}])
def test_refresh_with_a_malformed_body_is_400_and_calls_nothing(client: FlaskClient, clients, body: dict) -> None:
    response = client.post("/api/v1/auth/refresh", json=body)

    assert (response.status_code, response.get_json()["error"]["code"], clients.user.RefreshSession.calls) == (
        400, "INVALID_REQUEST", [])


def test_logout_passes_the_refresh_token_without_needing_an_access_token(client: FlaskClient, clients) -> None:
    clients.user.Logout.reply = user_pb2.LogoutResponse(sessions_ended=1)

    response = client.post("/api/v1/auth/logout", json={"refresh_token": "refresh-1"})

    assert (response.status_code, response.get_json()) == (200, {"sessions_ended": 1})
    assert [call.message for call in clients.user.Logout.calls] == [user_pb2.LogoutRequest(refresh_token="refresh-1")]


def test_logout_all_needs_an_access_token(client: FlaskClient, clients) -> None:
    response = client.post("/api/v1/auth/logout-all")

    assert (response.status_code, clients.user.LogoutAll.calls) == (401, [])


def test_logout_all_passes_the_callers_token_to_the_user_service(client: FlaskClient, clients, mint) -> None:
    clients.user.LogoutAll.reply = user_pb2.LogoutResponse(sessions_ended=3)
    token = mint(user_id=7)

    response = client.post("/api/v1/auth/logout-all", headers={"Authorization": f"Bearer {token}"})

    assert (response.status_code, response.get_json()) == (200, {"sessions_ended": 3})
    assert clients.user.LogoutAll.calls[0].metadata["authorization"] == f"Bearer {token}"


def test_password_reset_passes_phone_code_and_new_password(client: FlaskClient, clients) -> None:
    clients.user.ResetPassword.reply = user_pb2.LogoutResponse(sessions_ended=2)

    response = client.post("/api/v1/auth/password/reset",
                           json={"phone": "13800138000", "code": "123456", "new_password": "newpass99"})

    assert (response.status_code, response.get_json()) == (200, {"sessions_ended": 2})
    assert [call.message for call in clients.user.ResetPassword.calls] == [
        user_pb2.ResetPasswordRequest(phone="13800138000", code="123456", new_password="newpass99")]


def test_password_reset_with_a_bad_phone_is_400_naming_the_field(client: FlaskClient, clients) -> None:
    response = client.post("/api/v1/auth/password/reset",
                           json={"phone": "12345", "code": "123456", "new_password": "newpass99"})

    assert (response.status_code, list(response.get_json()["error"]["details"]), clients.user.ResetPassword.calls) == (
        400, ["phone"], [])
