"""Access tokens: verification (every process) and the identity of the current caller."""

from __future__ import annotations

import contextvars
import enum
import hashlib
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from services.common.errors import Forbidden, Unauthenticated

ISSUER = "minimall-user"
AUDIENCE = "minimall"
ALGORITHM = "EdDSA"  # pinned: tokens signed any other way (HS256 with the public key, "none") are refused



class Role(enum.StrEnum):
    """Staff roles; the only place their names are spelled. Shoppers have none."""

    ADMIN = "admin"
    OPERATOR = "operator"
    CUSTOMER_SERVICE = "customer_service"
    FINANCE = "finance"


STAFF_ROLES = frozenset(Role)


@dataclass(frozen=True)
class Caller:
    """Who is calling, as a verified access token says."""

    user_id: int
    roles: frozenset[str]
    token_id: str
    token: str = field(default="", repr=False, compare=False)  # the access token itself, passed on to callees

    def has_any_role(self, *roles: str) -> bool:
        return bool(self.roles & set(roles))


caller_var: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("caller", default=None)


def key_id(public_key: Any) -> str:
    """The `kid` of a key: the first 16 hex digits of the SHA-256 of its DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


class TokenVerifier:
    """Checks signature, algorithm, issuer, audience and expiry with the user service's public key.

    During a key rotation it also accepts the previous key (JWT_PREVIOUS_PUBLIC_KEY_FILE): a token
    names its key in the `kid` header; one without `kid` (signed before kids existed) is tried
    with each key.
    """

    def __init__(self, public_key_pem: bytes, *, previous_public_key_pem: bytes | None = None,
                 leeway_seconds: int = 10) -> None:
        keys = [load_pem_public_key(pem) for pem in (public_key_pem, previous_public_key_pem) if pem]
        self._keys = {key_id(key): key for key in keys}
        self._leeway = leeway_seconds

    def _candidates(self, token: str) -> list[Any]:
        kid = jwt.get_unverified_header(token).get("kid")
        if kid is None:
            return list(self._keys.values())
        return [self._keys[kid]] if kid in self._keys else []

    def verify(self, token: str) -> Caller:
        try:
            for key in self._candidates(token):
                try:
                    return self._caller(token, key)
                except jwt.InvalidSignatureError:
                    continue
            raise jwt.InvalidSignatureError("no key of this process signed it")
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("TOKEN_EXPIRED", "access token has expired") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise Unauthenticated("TOKEN_INVALID", "access token is invalid") from None

    def _caller(self, token: str, key: Any) -> Caller:
        claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
                            leeway=self._leeway, options={"require": ["exp", "iat", "sub", "jti"]})
        return Caller(user_id=int(claims["sub"]), roles=frozenset(claims.get("roles", [])),
                      token_id=str(claims["jti"]), token=token)


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("TOKEN_INVALID", "Authorization must be 'Bearer <access token>'")
    return token.strip()


def require_caller(*roles: str) -> Caller:
    """The verified caller of this request, who must hold one of `roles` when any are given."""
    caller = caller_var.get()
    if caller is None:
        raise Unauthenticated("AUTH_REQUIRED", "this operation needs an access token")
    if roles and not caller.has_any_role(*roles):
        raise Forbidden("FORBIDDEN", "your account may not do this")
    return caller
