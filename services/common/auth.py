"""Access tokens: verification (every process) and the identity of the current caller."""

from __future__ import annotations

import contextvars
import enum
from dataclasses import dataclass, field

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

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


class TokenVerifier:
    """Checks signature, algorithm, issuer, audience and expiry with the user service's public key."""

    def __init__(self, public_key_pem: bytes, *, leeway_seconds: int = 10) -> None:
        self._key = load_pem_public_key(public_key_pem)
        self._leeway = leeway_seconds

    def verify(self, token: str) -> Caller:
        try:
            claims = jwt.decode(
                token, self._key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
                leeway=self._leeway, options={"require": ["exp", "iat", "sub", "jti"]},
            )
            return Caller(user_id=int(claims["sub"]), roles=frozenset(claims.get("roles", [])),
                          token_id=str(claims["jti"]), token=token)
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("TOKEN_EXPIRED", "access token has expired") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise Unauthenticated("TOKEN_INVALID", "access token is invalid") from None


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
