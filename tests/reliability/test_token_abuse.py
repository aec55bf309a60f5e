"""Forged, expired and misdirected tokens, a replayed refresh token and SMS code guessing, through the gateway."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_private_key

from services.common.auth import AUDIENCE, ISSUER
from tests.fixtures.platform import Platform
from tests.fixtures.shop import bearer, new_phone, sms_code, sms_login_reply

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]

ADMIN_ROUTE = "/admin/orders"


def claims(**changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "1", "jti": str(uuid.uuid4()), "roles": ["admin"],
            "iat": int(now.timestamp()), "exp": int((now + timedelta(minutes=5)).timestamp())}
    return {**base, **changes}


def signed(platform: Platform, payload: dict[str, Any]) -> str:
    key = load_pem_private_key(platform.jwt_private_pem, password=None)
    return jwt.encode(payload, key, algorithm="EdDSA")  # type: ignore[arg-type]


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def hs256(payload: dict[str, Any], secret: bytes) -> str:
    """The algorithm-confusion attack, signed by hand (PyJWT itself refuses to key HMAC with a PEM)."""
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(payload)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def forged_tokens(platform: Platform) -> dict[str, str]:
    public_pem = load_pem_private_key(platform.jwt_private_pem, password=None).public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    past = datetime.now(UTC) - timedelta(hours=2)
    good = signed(platform, claims())
    head, body, signature = good.split(".")
    return {
        "alg none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}.",
        "hs256 keyed with the public key": hs256(claims(), public_pem),
        "expired": signed(platform, claims(iat=int(past.timestamp()), exp=int((past + timedelta(minutes=5)).timestamp()))),
        "wrong audience": signed(platform, claims(aud="someone-else")),
        "wrong issuer": signed(platform, claims(iss="https://evil.example")),
        "payload swapped under a valid signature": f"{head}.{b64(claims(sub='2'))}.{signature}",
    }


def test_forged_expired_and_misdirected_tokens_get_401_everywhere(platform: Platform) -> None:
    answers = {name: [requests.get(f"{platform.api}{path}", headers=bearer(token), timeout=10).status_code
                      for path in (ADMIN_ROUTE, "/me")]
               for name, token in forged_tokens(platform).items()}
    assert answers == {name: [401, 401] for name in answers}
    assert requests.get(f"{platform.api}{ADMIN_ROUTE}", headers=bearer(signed(platform, claims())),
                        timeout=10).status_code == 200  # the same claims, honestly signed, do pass


def test_a_replayed_refresh_token_ends_the_whole_login(platform: Platform) -> None:
    login = sms_login_reply(platform, new_phone())
    rotated = requests.post(f"{platform.api}/auth/refresh", json={"refresh_token": login["refresh_token"]}, timeout=10)
    # The owner's next refresh: the old token presented after it is no retry (REFRESH_TOKEN_REUSE_GRACE_SECONDS).
    successor = requests.post(f"{platform.api}/auth/refresh", json={"refresh_token": rotated.json()["refresh_token"]},
                              timeout=10)
    replayed = requests.post(f"{platform.api}/auth/refresh", json={"refresh_token": login["refresh_token"]}, timeout=10)
    owners = requests.post(f"{platform.api}/auth/refresh", json={"refresh_token": successor.json()["refresh_token"]},
                           timeout=10)

    assert (rotated.status_code, successor.status_code) == (200, 200)
    assert (replayed.status_code, replayed.json()["error"]["code"]) == (401, "REFRESH_TOKEN_REUSED")
    assert owners.status_code == 401  # the thief's and the owner's tokens die together


def test_guessing_an_sms_code_locks_it_so_even_the_right_code_fails(platform: Platform) -> None:
    phone = new_phone()
    code = sms_code(platform, phone)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    guesses = [requests.post(f"{platform.api}/auth/login/sms", json={"phone": phone, "code": wrong},
                             timeout=10) for _ in range(5)]
    right = requests.post(f"{platform.api}/auth/login/sms", json={"phone": phone, "code": code}, timeout=10)

    assert [(g.status_code, g.json()["error"]["code"]) for g in guesses] == [(400, "SMS_CODE_INVALID")] * 5
    assert (right.status_code, right.json()["error"]["code"], "access_token" in right.json()) == (
        400, "SMS_CODE_LOCKED", False)
