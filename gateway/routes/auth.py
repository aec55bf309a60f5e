"""Authentication: SMS codes, SMS login, password login."""

from __future__ import annotations

from typing import Any

import grpc
from flask import Blueprint, current_app, request
from mall.user.v1 import user_pb2

from gateway.api import PUBLIC, json_body, operation
from gateway.errors import ApiError
from gateway.ratelimit import FailureGuard, Limit, client_address

bp = Blueprint("auth", __name__, url_prefix="/api/v1/auth")

PHONE = {"type": "string", "pattern": "^1[3-9][0-9]{9}$", "description": "mainland mobile number"}

USER = {"type": "object", "properties": {
    "id": {"type": "integer"}, "phone": {"type": "string", "description": "masked, 138****8000"},
    "nickname": {"type": "string"}, "avatar_url": {"type": "string"}, "roles": {"type": "array"}}}

SESSION = {"type": "object", "required": ["access_token", "refresh_token", "expires_in", "user"], "properties": {
    "access_token": {"type": "string"}, "refresh_token": {"type": "string"}, "token_type": {"const": "Bearer"},
    "expires_in": {"type": "integer"}, "is_new_user": {"type": "boolean"}, "user": USER}}


# Per IP generous (shoppers share carrier NAT addresses), per phone from each address tight; the
# user service also allows one SMS code a minute and ten a day per phone, and five tries per code
# (so SMS logins need no per-account ceiling here). SMS codes have no per-phone limit here: it
# would count requests the service refused, so a stranger's burst from a few addresses would lock
# the owner out for the hour. The per-phone budget lives only in the user service, which counts
# codes actually sent, and those reach the owner's phone. Password logins have a ceiling that cannot
# lock the owner out: after 20 failures in an hour, addresses that have not logged into the
# account within 30 days are refused for the rest of the hour; the owner's usual addresses are not.
SMS_CODE_LIMITS = (Limit("ip", 20, 60), Limit("phone+ip", 10, 3600))
LOGIN_LIMITS = (Limit("ip", 30, 60), Limit("phone+ip", 10, 300))
PASSWORD_GUARD = FailureGuard(failures=Limit("phone", 20, 3600), trusted=Limit("phone+ip", 1, 30 * 86400))


def _clients() -> Any:
    return current_app.extensions["clients"]


@bp.post("/sms-codes")
@operation(summary="Send a 6-digit SMS verification code", tag="auth", access=PUBLIC, limits=SMS_CODE_LIMITS,
           body={"type": "object", "required": ["phone", "purpose"], "additionalProperties": False, "properties": {
               "phone": PHONE, "purpose": {"enum": ["login", "reset", "bind", "signup"]}}},
           responses={202: {"type": "object", "properties": {
               "expires_in": {"type": "integer"}, "resend_after": {"type": "integer"},
               "dev_code": {"type": "string", "description": "only with the dev console SMS provider"}}}})
def send_sms_code() -> tuple[dict[str, Any], int]:
    body = json_body()
    clients = _clients()
    sent = clients.call(clients.user.SendSmsCode,
                        user_pb2.SendSmsCodeRequest(phone=body["phone"], purpose=body["purpose"]))
    reply: dict[str, Any] = {"expires_in": sent.expires_in, "resend_after": sent.resend_after}
    if sent.dev_code:
        reply["dev_code"] = sent.dev_code
    return reply, 202


@bp.post("/login/sms")
@operation(summary="Log in (registering on first login) with phone and SMS code", tag="auth", access=PUBLIC,
           limits=LOGIN_LIMITS,
           body={"type": "object", "required": ["phone", "code"], "additionalProperties": False, "properties": {
               "phone": PHONE, "code": {"type": "string", "pattern": "^[0-9]{6}$"}}},
           responses={200: SESSION})
def login_sms() -> dict[str, Any]:
    body = json_body()
    clients = _clients()
    return session_json(clients.call(clients.user.LoginWithSms,
                                     user_pb2.LoginWithSmsRequest(phone=body["phone"], code=body["code"])))


@bp.post("/login/password")
@operation(summary="Log in with phone and password (staff and shoppers who set one). After 20 failures "
                   "in an hour, only addresses that logged into the account lately may try again that hour", tag="auth", access=PUBLIC,
           limits=LOGIN_LIMITS,
           body={"type": "object", "required": ["phone", "password"], "additionalProperties": False, "properties": {
               "phone": PHONE, "password": {"type": "string", "minLength": 1, "maxLength": 128}}},
           responses={200: SESSION})
def login_password() -> dict[str, Any]:
    body = json_body()
    clients = _clients()
    limiter, endpoint = current_app.extensions["rate_limiter"], request.endpoint or ""
    values = {"phone": body["phone"], "ip": client_address(request.remote_addr)}
    wait = PASSWORD_GUARD.wait(limiter, endpoint, values)
    if wait is not None:
        raise ApiError.too_many_requests(wait)
    try:
        reply = clients.call(clients.user.LoginWithPassword,
                             user_pb2.LoginWithPasswordRequest(phone=body["phone"], password=body["password"]))
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            PASSWORD_GUARD.record(limiter, endpoint, values, succeeded=False)
        raise
    PASSWORD_GUARD.record(limiter, endpoint, values, succeeded=True)
    return session_json(reply)


def session_json(reply: user_pb2.LoginResponse) -> dict[str, Any]:
    user = reply.user
    return {
        "access_token": reply.access_token, "refresh_token": reply.refresh_token, "token_type": "Bearer",
        "expires_in": reply.expires_in, "is_new_user": reply.is_new_user,
        "user": {"id": user.id, "phone": user.phone_masked, "nickname": user.nickname,
                 "avatar_url": user.avatar_url, "roles": list(user.roles)},
    }
