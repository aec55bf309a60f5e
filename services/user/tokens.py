"""Signing access tokens (EdDSA JWT) and minting refresh tokens; only the user service holds the key."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from services.common.auth import (
    ALGORITHM,
    AUDIENCE,
    ISSUER,
    SERVICE_AUDIENCE,
    SERVICE_ROLE,
    SERVICE_SUBJECT_PREFIX,
    key_id,
)
from services.common.config import SERVICES
from services.user.domain import User


def token_hash(raw: str) -> str:
    """How refresh tokens are stored: a leaked table does not give working tokens."""
    return hashlib.sha256(raw.encode()).hexdigest()


class TokenIssuer:
    def __init__(self, private_key_pem: bytes, *, access_ttl_seconds: int, refresh_ttl_seconds: int,
                 staff_session_max_hours: int = 12, refresh_reuse_grace_seconds: int = 30) -> None:
        self._key = load_pem_private_key(private_key_pem, password=None)
        self.key_id = key_id(self._key.public_key())  # the `kid` verifiers pick the key by
        self.access_ttl = timedelta(seconds=access_ttl_seconds)
        self.refresh_ttl = timedelta(seconds=refresh_ttl_seconds)
        # How long a session carrying staff roles lasts after its password login, refreshed or not.
        self.staff_session_max = timedelta(hours=staff_session_max_hours)
        # How long a shopper's spent refresh token still gives a pair of its session (see domain.rotate).
        self.refresh_reuse_grace = timedelta(seconds=refresh_reuse_grace_seconds)
        # Keyed hash for SMS codes, derived from the signing key so no extra secret must be managed.
        self.sms_key = hashlib.sha256(b"minimall-sms-code:" + private_key_pem).digest()

    def access_token(self, user: User, roles: frozenset[str], now: datetime, *, session_id: str | None = None,
                     expires_at: datetime | None = None) -> str:
        """A user's access token of the session `session_id` (its refresh tokens' family: the `sid` claim; a
        session of its own when None, as tests mint them), expiring `expires_at` (at most the access TTL away).

        `iat` keeps its microseconds (a NumericDate may be fractional): sessions ended at an instant end the
        tokens issued before it (services/common/sessions.py), and a login in the same second must survive.
        """
        claims = {
            "iss": ISSUER, "aud": AUDIENCE, "sub": str(user.id), "jti": str(uuid.uuid4()),
            "sid": session_id or str(uuid.uuid4()), "iat": now.timestamp(),
            "exp": int(min(now + self.access_ttl, expires_at or now + self.access_ttl).timestamp()),
            "roles": sorted(roles),
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.key_id})

    def service_token(self, service: str, now: datetime, ttl: timedelta) -> str:
        """A service's own token (services/common/auth.py): how it calls other services as itself."""
        return mint_service_token(self._key, service, now=now, ttl=ttl)

    @staticmethod
    def refresh_token() -> str:
        return secrets.token_urlsafe(32)

    def sms_code_hash(self, phone: str, code: str) -> str:
        return hmac.new(self.sms_key, f"{phone}:{code}".encode(), hashlib.sha256).hexdigest()


def mint_service_token(private_key_pem: bytes | Any, service: str, *, now: datetime, ttl: timedelta) -> str:
    """A service token for `service` signed with the user service's key (a PEM, or the loaded key), with its `kid`.

    For deployment secrets (`python -m services.user service-token`), the dev runner and tests; never logged.
    """
    if service not in SERVICES:
        raise ValueError(f"no service is called {service!r}; one of {', '.join(SERVICES)}")
    if ttl <= timedelta(0):
        raise ValueError("a service token must live longer than 0 seconds")
    key = load_pem_private_key(private_key_pem, password=None) if isinstance(private_key_pem, bytes) else private_key_pem
    claims = {
        "iss": ISSUER, "aud": SERVICE_AUDIENCE, "sub": f"{SERVICE_SUBJECT_PREFIX}{service}", "svc": service,
        "roles": [SERVICE_ROLE], "jti": str(uuid.uuid4()),
        "iat": int(now.timestamp()), "exp": int((now + ttl).timestamp()),
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": key_id(key.public_key())})
