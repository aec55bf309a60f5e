"""Fixtures of the unit suite: token issuer and verifier, forged tokens, a fake failed gRPC call."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from services.common.auth import AUDIENCE, ISSUER, TokenVerifier
from services.common.logs import request_id_var
from services.user.domain import User
from services.user.tokens import TokenIssuer
from tests.fixtures.keys import JwtKeys

ACCESS_TTL_SECONDS = 900


@pytest.fixture(scope="session")
def private_pem(jwt_keys: JwtKeys) -> bytes:
    """The Ed25519 key the user service signs access tokens with (tests/fixtures/keys.py)."""
    return jwt_keys.private_pem


@pytest.fixture(scope="session")
def public_pem(jwt_keys: JwtKeys) -> bytes:
    return jwt_keys.public_pem


@pytest.fixture(scope="session")
def other_private_pem() -> bytes:
    """An Ed25519 key the platform does not trust."""
    return Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


@pytest.fixture(scope="session")
def issuer(private_pem: bytes) -> TokenIssuer:
    return TokenIssuer(private_pem, access_ttl_seconds=ACCESS_TTL_SECONDS, refresh_ttl_seconds=86_400)


@pytest.fixture(scope="session")
def verifier(public_pem: bytes) -> TokenVerifier:
    return TokenVerifier(public_pem)


def make_user(user_id: int, roles: str = "") -> User:
    return User(phone="13800138000", created_at=datetime(2026, 1, 1, tzinfo=UTC), roles=roles, id=user_id)


@pytest.fixture
def mint(issuer: TokenIssuer) -> Callable[..., str]:
    """mint(user_id, roles="", issued_ago=0s): a genuine access token from the user service's issuer."""
    def _mint(user_id: int = 42, roles: str = "", issued_ago: timedelta = timedelta(0)) -> str:
        user = make_user(user_id, roles)
        return issuer.access_token(user, user.role_set, datetime.now(UTC) - issued_ago)
    return _mint


def good_claims(**overrides: Any) -> dict[str, Any]:
    """Claims of a valid access token for user 42; an override of None removes that claim."""
    now = int(datetime.now(UTC).timestamp())
    claims: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": "42", "jti": str(uuid.uuid4()),
                              "iat": now, "exp": now + ACCESS_TTL_SECONDS, "roles": []}
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


@pytest.fixture
def sign(private_pem: bytes) -> Callable[..., str]:
    """sign(signing_key=trusted key, **claim overrides): an EdDSA token with the claims as given."""
    def _sign(signing_key: bytes = private_pem, **overrides: Any) -> str:
        return jwt.encode(good_claims(**overrides), signing_key, algorithm="EdDSA")
    return _sign


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


@pytest.fixture
def unsigned_token() -> Callable[..., str]:
    """unsigned_token(**claim overrides): an `alg: none` token, the classic attempt to skip signature checks."""
    def _unsigned(**overrides: Any) -> str:
        return f"{b64url_json({'alg': 'none', 'typ': 'JWT'})}.{b64url_json(good_claims(**overrides))}."
    return _unsigned


@pytest.fixture
def tamper_payload() -> Callable[..., str]:
    """tamper_payload(token, **claims): same header and signature over a payload with some claims changed."""
    def _tamper(token: str, **overrides: Any) -> str:
        header, payload, signature = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims.update(overrides)
        return f"{header}.{b64url_json(claims)}.{signature}"
    return _tamper


@pytest.fixture
def hs256_with_public_key(public_pem: bytes) -> Callable[..., str]:
    """An HS256 token whose HMAC secret is the public key PEM: the algorithm-confusion attack."""
    def _forge(**overrides: Any) -> str:
        signing_input = f"{b64url_json({'alg': 'HS256', 'typ': 'JWT'})}.{b64url_json(good_claims(**overrides))}"
        mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"
    return _forge


@pytest.fixture
def request_id() -> Any:
    """Sets the current request id for the test, then restores it."""
    token = request_id_var.set("req-test-1")
    yield "req-test-1"
    request_id_var.reset(token)
