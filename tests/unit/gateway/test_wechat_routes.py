"""WeChat login and binding routes: what is asked of the user service, and what is refused before."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from mall.user.v1 import user_pb2


def test_wechat_login_passes_the_code_and_answers_a_session(client: FlaskClient, clients) -> None:  # type: ignore[no-untyped-def]
    clients.user.LoginWithWechat.reply = user_pb2.LoginResponse(
        access_token="a", refresh_token="r", expires_in=900, is_new_user=True,
        user=user_pb2.User(id=7, phone_masked="", nickname="微信用户abcd"))

    response = client.post("/api/v1/auth/login/wechat", json={"code": "wx-code-1"})

    assert [call.message for call in clients.user.LoginWithWechat.calls] == [
        user_pb2.LoginWithWechatRequest(code="wx-code-1")]
    assert (response.status_code, response.get_json()["is_new_user"], response.get_json()["user"]["phone"]) == (
        200, True, "")


@pytest.mark.parametrize("body", [{}, {"code": ""}, {"code": "x" * 129}, {"code": 12}, {"code": "c", "openid": "o"}])
def test_a_malformed_wechat_code_is_refused_before_the_service(client: FlaskClient, clients, body: dict) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/auth/login/wechat", json=body)

    assert (response.status_code, clients.user.LoginWithWechat.calls) == (400, [])


def test_binding_needs_a_logged_in_caller(client: FlaskClient, clients) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/me/wechat", json={"code": "c", "sms_code": "123456"})

    assert (response.status_code, clients.user.BindWechat.calls) == (401, [])


def test_binding_passes_the_callers_token_and_the_codes(client: FlaskClient, clients, bearer) -> None:  # type: ignore[no-untyped-def]
    clients.user.BindWechat.reply = user_pb2.WechatBinding(wechat_bound=True)
    headers = bearer(user_id=42)

    response = client.post("/api/v1/me/wechat", json={"code": "c", "sms_code": "123456"}, headers=headers)

    call = clients.user.BindWechat.calls[0]
    assert (response.get_json(), call.message, call.metadata["authorization"]) == (
        {"wechat_bound": True}, user_pb2.BindWechatRequest(code="c", sms_code="123456"), headers["Authorization"])


@pytest.mark.parametrize("body", [{"code": "c"}, {"code": "c", "sms_code": "12345"}, {"sms_code": "123456"}],
                         ids=["no-sms-code", "short-sms-code", "no-code"])
def test_binding_without_both_codes_is_400_and_nothing_is_asked(client: FlaskClient, clients, bearer,  # type: ignore[no-untyped-def]
                                                                body: dict) -> None:
    response = client.post("/api/v1/me/wechat", json=body, headers=bearer())

    assert (response.status_code, clients.user.BindWechat.calls) == (400, [])


def test_unbinding_passes_the_callers_token_and_the_sms_code(client: FlaskClient, clients, bearer) -> None:  # type: ignore[no-untyped-def]
    clients.user.UnbindWechat.reply = user_pb2.WechatBinding(wechat_bound=False)
    headers = bearer(user_id=42)

    response = client.delete("/api/v1/me/wechat", json={"sms_code": "123456"}, headers=headers)

    call = clients.user.UnbindWechat.calls[0]
    assert (response.status_code, response.get_json(), call.message, call.metadata["authorization"]) == (
        200, {"wechat_bound": False}, user_pb2.UnbindWechatRequest(sms_code="123456"), headers["Authorization"])


@pytest.mark.parametrize(("body", "status"), [(None, 415), ({}, 400), ({"sms_code": "12345"}, 400),
                                              ({"sms_code": 123456}, 400)],
                         ids=["no-body", "no-sms-code", "short-sms-code", "number"])
def test_unbinding_without_an_sms_code_is_refused_and_nothing_is_asked(client: FlaskClient, clients, bearer,  # type: ignore[no-untyped-def]
                                                                       body: dict | None, status: int) -> None:
    response = client.delete("/api/v1/me/wechat", json=body, headers=bearer())

    assert (response.status_code, clients.user.UnbindWechat.calls) == (status, [])
