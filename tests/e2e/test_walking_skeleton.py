"""The first slice through the whole platform: SMS login → user-registered → analytics → admin overview."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from sqlalchemy import Interval, create_engine, literal, text, update

from services.common.auth import AUDIENCE, ISSUER
from services.user.db import sms_codes
from services.user.domain import SMS_RESEND_AFTER
from tests.fixtures.platform import Platform
from tests.fixtures.shop import sms_login_reply

pytestmark = pytest.mark.e2e

OVERVIEW = "/admin/analytics/overview"


@pytest.fixture(scope="module")
def admin_token(platform: Platform) -> str:
    reply = requests.post(f"{platform.api}/auth/login/password",
                          json={"phone": platform.admin_phone, "password": platform.admin_password}, timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.json()["user"]["roles"] == ["admin"]
    return reply.json()["access_token"]


@pytest.fixture
def days_of_this_test() -> tuple[date, date]:
    """Today and tomorrow (UTC) as the test starts: the Asia/Shanghai day (UTC+8) of its registrations falls in
    them, even if it runs past midnight."""
    today = datetime.now(UTC).date()
    return today, today + timedelta(days=1)


def registrations_counted(platform: Platform, token: str, days: tuple[date, date]) -> int:
    """New users the admin overview shows for `days`, once analytics has counted every registration so far.

    Waiting for the user-registered events themselves, not for the count to reach some value,
    lets a test assert an exact change: a registration that should not have happened (or one
    left over from another test) would be counted by then, and show.
    """
    platform.wait_until_consumed("user-registered", "analytics")
    reply = requests.get(f"{platform.api}{OVERVIEW}", headers={"Authorization": f"Bearer {token}"}, timeout=10,
                         params={"from": days[0].isoformat(), "to": days[1].isoformat()})
    assert reply.status_code == 200, reply.text
    return reply.json()["new_users"]


def let_the_resend_wait_pass(platform: Platform, phone: str) -> None:
    """Backdate the phone's codes by the resend wait, so it may ask for another code at once."""
    engine = create_engine(platform.database_urls["user"])
    try:
        with engine.begin() as conn:
            conn.execute(update(sms_codes).where(sms_codes.c.phone == phone)
                         .values(created_at=sms_codes.c.created_at - literal(SMS_RESEND_AFTER, Interval())))
    finally:
        engine.dispose()


def users_with_phone(platform: Platform, phone: str) -> int:
    engine = create_engine(platform.database_urls["user"])
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM users WHERE phone = :p"), {"p": phone}).scalar_one()
    finally:
        engine.dispose()


def test_sms_login_registers_a_shopper_whom_the_admin_overview_counts(
        platform: Platform, admin_token: str, days_of_this_test: tuple[date, date]) -> None:
    before = registrations_counted(platform, admin_token, days_of_this_test)

    session = sms_login_reply(platform, "13900000001")

    assert session["is_new_user"] is True
    assert session["user"]["phone"] == "139****0001"
    assert session["expires_in"] == 900
    counted = registrations_counted(platform, admin_token, days_of_this_test)
    assert counted == before + 1, f"the overview went from {before} to {counted} new users; expected one more"


def test_a_second_sms_login_of_the_same_shopper_is_not_counted_again(
        platform: Platform, admin_token: str, days_of_this_test: tuple[date, date]) -> None:
    phone = "13900000003"
    sms_login_reply(platform, phone)
    before = registrations_counted(platform, admin_token, days_of_this_test)
    let_the_resend_wait_pass(platform, phone)

    session = sms_login_reply(platform, phone)

    assert session["is_new_user"] is False
    counted = registrations_counted(platform, admin_token, days_of_this_test)
    assert counted == before, f"the overview went from {before} to {counted} new users on a returning login"


def test_an_sms_login_to_a_staff_phone_gives_only_a_shopper_session(platform: Platform) -> None:
    session = sms_login_reply(platform, platform.admin_phone)

    reply = requests.get(f"{platform.api}{OVERVIEW}", timeout=10,
                         headers={"Authorization": f"Bearer {session['access_token']}"})

    assert session["user"]["roles"] == []
    assert reply.status_code == 403


def test_asking_for_a_second_code_at_once_gets_429_with_retry_after(platform: Platform) -> None:
    body = {"phone": "13900000002", "purpose": "login"}
    first = requests.post(f"{platform.api}/auth/sms-codes", json=body, timeout=10)

    second = requests.post(f"{platform.api}/auth/sms-codes", json=body, timeout=10)

    assert first.status_code == 202
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "SMS_RESEND_TOO_SOON"
    assert 0 < int(second.headers["Retry-After"]) <= 60


def test_a_shopper_token_gets_403_on_admin_routes(platform: Platform) -> None:
    shopper = sms_login_reply(platform, "13900000004")["access_token"]

    reply = requests.get(f"{platform.api}{OVERVIEW}", headers={"Authorization": f"Bearer {shopper}"}, timeout=10)

    assert reply.status_code == 403
    assert reply.json()["error"]["code"] == "FORBIDDEN"


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(**overrides: object) -> dict:
    now = datetime.now(UTC)
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "1", "jti": "x", "roles": ["admin"],
              "iat": int(now.timestamp()), "exp": int((now + timedelta(minutes=5)).timestamp())}
    return {**claims, **overrides}


def bad_tokens(platform: Platform, admin_token: str) -> dict[str, str]:
    key = load_pem_private_key(platform.jwt_private_pem, password=None)
    header, payload, signature = admin_token.split(".")
    past = datetime.now(UTC) - timedelta(hours=1)
    return {
        "tampered": f"{header}.{_b64(_claims(sub='2'))}.{signature}",
        "expired": jwt.encode(_claims(iat=int(past.timestamp()), exp=int((past + timedelta(minutes=15)).timestamp())),
                              key, algorithm="EdDSA"),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims())}.",
    }


@pytest.mark.parametrize("kind, code", [("tampered", "TOKEN_INVALID"), ("expired", "TOKEN_EXPIRED"),
                                        ("alg none", "TOKEN_INVALID")])
def test_tampered_expired_and_unsigned_tokens_get_401(platform: Platform, admin_token: str, kind: str,
                                                      code: str) -> None:
    token = bad_tokens(platform, admin_token)[kind]

    reply = requests.get(f"{platform.api}{OVERVIEW}", headers={"Authorization": f"Bearer {token}"}, timeout=10)

    assert reply.status_code == 401
    assert reply.json()["error"]["code"] == code
    assert reply.json()["error"]["request_id"] == reply.headers["X-Request-ID"]


def test_a_wrong_sms_code_is_refused_and_creates_no_user(platform: Platform, admin_token: str,
                                                          days_of_this_test: tuple[date, date]) -> None:
    phone = "13900000005"
    before = registrations_counted(platform, admin_token, days_of_this_test)
    sent = requests.post(f"{platform.api}/auth/sms-codes", json={"phone": phone, "purpose": "login"}, timeout=10)
    wrong = f"{(int(sent.json()['dev_code']) + 1) % 1_000_000:06d}"

    reply = requests.post(f"{platform.api}/auth/login/sms", json={"phone": phone, "code": wrong}, timeout=10)

    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "SMS_CODE_INVALID"
    assert users_with_phone(platform, phone) == 0
    counted = registrations_counted(platform, admin_token, days_of_this_test)
    assert counted == before, f"the overview went from {before} to {counted} new users on a refused login"


def test_the_platform_serves_docs_openapi_metrics_and_readiness(platform: Platform) -> None:
    spec = requests.get(f"{platform.base_url}/openapi.json", timeout=10).json()
    ready = requests.get(f"{platform.base_url}/readyz", timeout=10)
    metrics = requests.get(f"{platform.base_url}/metrics", timeout=10).text

    assert {"/api/v1/auth/sms-codes", "/api/v1/auth/login/sms", "/api/v1/admin/analytics/overview"} <= set(spec["paths"])
    assert ready.json()["services"] == dict.fromkeys(["user", "product", "order", "member", "analytics"], "SERVING")
    assert "mall_http_requests_total" in metrics
    assert requests.get(f"{platform.base_url}/docs", timeout=10).status_code == 200
