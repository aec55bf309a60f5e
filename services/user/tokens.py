"""Signing access tokens (EdDSA JWT) and minting refresh tokens; only the user service holds the key."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import datetime, timedelta

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from services.common.auth import ALGORITHM, AUDIENCE, ISSUER, key_id
from services.user.domain import User


def token_hash(raw: str) -> str:
    """How refresh tokens are stored: a leaked table does not give working tokens."""
    return hashlib.sha256(raw.encode()).hexdigest()


class TokenIssuer:
    def __init__(self, private_key_pem: bytes, *, access_ttl_seconds: int, refresh_ttl_seconds: int) -> None:
        self._key = load_pem_private_key(private_key_pem, password=None)
        self.key_id = key_id(self._key.public_key())  # the `kid` verifiers pick the key by
        self.access_ttl = timedelta(seconds=access_ttl_seconds)
        self.refresh_ttl = timedelta(seconds=refresh_ttl_seconds)
        # Keyed hash for SMS codes, derived from the signing key so no extra secret must be managed.
        self.sms_key = hashlib.sha256(b"minimall-sms-code:" + private_key_pem).digest()

    def access_token(self, user: User, roles: frozenset[str], now: datetime) -> str:
        claims = {
            "iss": ISSUER, "aud": AUDIENCE, "sub": str(user.id), "jti": str(uuid.uuid4()),
            "iat": int(now.timestamp()), "exp": int((now + self.access_ttl).timestamp()),
            "roles": sorted(roles),
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.key_id})

    @staticmethod
    def refresh_token() -> str:
        return secrets.token_urlsafe(32)

    def sms_code_hash(self, phone: str, code: str) -> str:
        return hmac.new(self.sms_key, f"{phone}:{code}".encode(), hashlib.sha256).hexdigest()
