"""Access tokens: verification (every process) and the identity of the current caller.

Two kinds of token, both signed by the user service's key (same issuer, same `kid` rotation):
- a user's access token (audience AUDIENCE): a shopper or staff member, forwarded by the gateway;
- a service token (audience SERVICE_AUDIENCE, subject `service:<name>`, role `service`, claim `svc`):
  a service calling as itself, for calls only it may make (stock reservations) and for background
  work that has no user (refund reconciliation). Minted for deployment by
  `python -m services.user service-token --service <name>`; accepted only by the gRPC services
  (TokenVerifier(accept_services=True)), never by the gateway.
"""

from __future__ import annotations

import contextvars
import enum
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from services.common.config import SERVICES, ConfigError, Env, ServiceSettings
from services.common.errors import Forbidden, Unauthenticated

log = logging.getLogger(__name__)

ISSUER = "minimall-user"
AUDIENCE = "minimall"
SERVICE_AUDIENCE = "minimall-internal"  # service tokens: the gateway's verifier refuses this audience
SERVICE_ROLE = "service"  # the one role of a service token; no user token may carry it
SERVICE_SUBJECT_PREFIX = "service:"
VERIFIED_TOKENS_KEPT = 4096  # per verifier (process): ~2 MB at most
LEEWAY_SECONDS = 10  # clock skew allowed on exp/iat; ended sessions' marks are kept this much longer too
ALGORITHM = "EdDSA"  # pinned: tokens signed any other way (HS256 with the public key, "none") are refused


class Role(enum.StrEnum):
    """Staff roles; the only place their names are spelled. Shoppers have none."""

    ADMIN = "admin"
    OPERATOR = "operator"
    CUSTOMER_SERVICE = "customer_service"
    FINANCE = "finance"


STAFF_ROLES = frozenset(Role)
# Who reads the shop's figures: the analytics reports and their exports, the orders ledger among them (the money
# ledger and raw events: WALLET_REPORT_READERS only). The gateway's routes, the analytics service and the
# admin dashboard's login (gateway/static/admin/admin.js, tested to agree) all go by this one set.
REPORT_READERS = (Role.ADMIN, Role.OPERATOR, Role.FINANCE)
# Of those, who export (and follow and download) the money ledger and the raw events (which carry the same member
# events): every shopper's recharges, withdrawals and wallet balances, member numbers. As for MEMBER_READERS, operators
# do not read shoppers' wallets. The orders ledger stays with REPORT_READERS: operators read any order (ORDER_STAFF).
WALLET_REPORT_READERS = (Role.ADMIN, Role.FINANCE)
WALLET_REPORTS = ("money", "events")
# Who acts on refunds stuck at the channel, and who reads the list of refunds (everyone who may act on one, and
# finance, who reconcile the money): the gateway's routes, the order service and the admin console (tested to agree
# through the routes' x-roles) all go by these.
# Who finds users (by phone, id or nickname; each search audited by the user service).
USER_FINDERS = (Role.ADMIN, Role.OPERATOR, Role.CUSTOMER_SERVICE)
# Who reads a shopper's member record (level, points, points owed, wallet, coupons) and points entries, to answer
# "where are my points?": each read audited by the member service (member_lookups). Operators do not serve shoppers'
# money questions.
MEMBER_READERS = (Role.ADMIN, Role.CUSTOMER_SERVICE, Role.FINANCE)
# Who creates, lists, finds and disables coupon templates. A template is money the shop gives away: one created by
# anyone but an admin waits (pending_approval) until an approver who did not create it approves it, and nobody claims
# a coupon of a template they created or approved (services.member.domain.CouponTemplate). Operators ship; they do
# not pay out. Approvers also read the templates (to find those waiting).
TEMPLATE_EDITORS = (Role.ADMIN, Role.OPERATOR)
TEMPLATE_APPROVERS = (Role.ADMIN, Role.FINANCE)
TEMPLATE_READERS = tuple(dict.fromkeys((*TEMPLATE_EDITORS, *TEMPLATE_APPROVERS)))
# Who hides a product review (moderation: off its product page and rating, audited; its author still reads it).
REVIEW_MODERATORS = (Role.ADMIN, Role.OPERATOR, Role.CUSTOMER_SERVICE)
# Who reads the wallet charges left for staff (customer service answers the shoppers), and who resolves one (money
# back to a wallet, or settled elsewhere: finance decides).
WALLET_REVIEWERS = (Role.ADMIN, Role.FINANCE, Role.CUSTOMER_SERVICE)
WALLET_RESOLVERS = (Role.ADMIN, Role.FINANCE)
# Staff who search and read any order; of them, who ship (customer service answers shoppers, it does not pack).
ORDER_STAFF = (Role.ADMIN, Role.OPERATOR, Role.CUSTOMER_SERVICE)
SHIPPERS = (Role.ADMIN, Role.OPERATOR)
# Who decides that money goes back to a shopper: approving a paid order's cancellation, cancelling a partly shipped
# order's unshipped units. Operators ship; they do not pay out.
REFUND_DECIDERS = (Role.ADMIN, Role.CUSTOMER_SERVICE)
REFUND_CLOSERS = (Role.ADMIN,)  # closing frees money for a second refund: admins only
REFUND_RETRIERS = (Role.ADMIN, Role.CUSTOMER_SERVICE)  # as for approving a cancellation again: it only asks
REFUND_READERS = tuple(dict.fromkeys((*REFUND_RETRIERS, *REFUND_CLOSERS, Role.FINANCE)))
OWN_REQUEST = "OWN_REQUEST"


def report_readers(kind: str) -> tuple[Role, ...]:
    """Who may export a report of `kind` (services.common.formats.REPORT_KINDS), follow its job and download it."""
    return WALLET_REPORT_READERS if kind in WALLET_REPORTS else REPORT_READERS


def refuse_own(actor_user_id: int, owner_user_id: int | None,
               message: str = "staff cannot decide on their own order, case or withdrawal; another staff member "
                              "must") -> None:
    """Separation of duties: a staff member never decides on their own order, after-sales case, wallet charge or
    withdrawal (approving or rejecting a cancellation or a refund, receiving a return, retrying a refund, crediting a
    wallet, paying out), nor approves or claims a coupon template they created or approved, or they could pay themselves; another
    staff member must. Forbidden OWN_REQUEST (403) when the one deciding is the owner (None: no owner recorded).
    Every such decision calls this with the owner it loaded, in the service that decides."""
    if owner_user_id is not None and actor_user_id == owner_user_id:
        raise Forbidden(OWN_REQUEST, message)


@dataclass(frozen=True)
class Caller:
    """Who is calling, as a verified token says: a user (user_id, roles) or a service (`service`, user_id 0)."""

    user_id: int
    roles: frozenset[str]
    token_id: str
    token: str = field(default="", repr=False, compare=False)  # the access token itself, passed on to callees
    service: str = ""  # "order" when the order service calls as itself; "" for a user
    issued_at: float = 0.0  # the token's `iat` (Unix seconds, fractional): ended sessions end tokens issued before
    session_id: str = ""  # the token's `sid` (its session's refresh-token family); "" in tokens minted before it

    @property
    def is_service(self) -> bool:
        return bool(self.service)

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

    Users' tokens are always accepted; service tokens only with `accept_services` (the gRPC
    servers, not the gateway). A user token claiming the service role, or a service token whose
    subject, role or `svc` is not exactly one known service's, is refused as invalid.

    A token that passed is remembered until its expiry (plus the leeway): everything checked here is in
    the token itself, so the answer cannot change before then, and one request's token is checked
    by the gateway and every service it calls, several times per order. Refusals are not remembered.
    Whether the token's session has ended since is not in the token: the gateway asks its session
    marks on every request, after this (gateway/sessions.py).
    """

    def __init__(self, public_key_pem: bytes, *, previous_public_key_pem: bytes | None = None,
                 leeway_seconds: int = LEEWAY_SECONDS, accept_services: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        keys = [load_pem_public_key(pem) for pem in (public_key_pem, previous_public_key_pem) if pem]
        self._keys = {key_id(key): key for key in keys}
        self._leeway = leeway_seconds
        self._audiences = [AUDIENCE, SERVICE_AUDIENCE] if accept_services else [AUDIENCE]
        self._clock = clock
        self._verified: dict[str, tuple[Caller, float]] = {}  # token -> (its caller, valid until)

    def _candidates(self, token: str) -> list[Any]:
        kid = jwt.get_unverified_header(token).get("kid")
        if kid is None:
            return list(self._keys.values())
        return [self._keys[kid]] if kid in self._keys else []

    def verify(self, token: str) -> Caller:
        known = self._verified.get(token)
        if known is not None and self._clock() < known[1]:
            return known[0]
        caller, expires_at = self._verify(token)
        if len(self._verified) >= VERIFIED_TOKENS_KEPT:
            self._verified.clear()  # bounded: at worst the live tokens are checked once more
        self._verified[token] = (caller, expires_at + self._leeway)
        return caller

    def _verify(self, token: str) -> tuple[Caller, float]:
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

    def _caller(self, token: str, key: Any) -> tuple[Caller, float]:
        claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=self._audiences, issuer=ISSUER,
                            leeway=self._leeway, options={"require": ["exp", "iat", "sub", "jti", "aud"]})
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise jwt.InvalidTokenError("roles must be a list of names")
        if claims["aud"] == SERVICE_AUDIENCE:
            return Caller(user_id=0, roles=frozenset(roles), token_id=str(claims["jti"]), token=token,
                          service=_service_of(claims)), float(claims["exp"])
        if claims["aud"] != AUDIENCE or SERVICE_ROLE in roles or "svc" in claims:
            raise jwt.InvalidTokenError("a user's token names one audience and never the service role")
        return (Caller(user_id=int(claims["sub"]), roles=frozenset(roles), token_id=str(claims["jti"]), token=token,
                       issued_at=float(claims["iat"]), session_id=str(claims.get("sid", ""))),
                float(claims["exp"]))


def _service_of(claims: dict[str, Any]) -> str:
    """The service a service token speaks for; subject, role and `svc` must all name the same known service."""
    name = claims.get("svc")
    if (name not in SERVICES or claims["sub"] != f"{SERVICE_SUBJECT_PREFIX}{name}"
            or claims.get("roles") != [SERVICE_ROLE]):
        raise jwt.InvalidTokenError("not a service token of a known service")
    return str(name)


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("TOKEN_INVALID", "Authorization must be 'Bearer <access token>'")
    return token.strip()


def require_caller(*roles: str, services: tuple[str, ...] = ()) -> Caller:
    """The verified caller of this request: a user holding one of `roles` (any user when none are
    given), or one of `services` calling as itself. A service is never taken for a user: an RPC
    that acts for "the caller" (user_id) refuses it unless it names the service here."""
    caller = caller_var.get()
    if caller is None:
        raise Unauthenticated("AUTH_REQUIRED", "this operation needs an access token")
    if caller.is_service:
        if caller.service not in services:
            raise Forbidden("FORBIDDEN", f"the {caller.service} service may not do this")
        return caller
    if roles and not caller.has_any_role(*roles):
        raise Forbidden("FORBIDDEN", "your account may not do this")
    return caller


def require_service(*names: str) -> Caller:
    """The verified caller of this request, which must be one of the services `names` calling as itself
    (users, staff included, are refused: these are calls between services)."""
    caller = caller_var.get()
    if caller is None:
        raise Unauthenticated("AUTH_REQUIRED", "this operation needs a service token")
    if caller.service not in names or not caller.is_service:
        raise Forbidden("FORBIDDEN", "only another service may do this")
    return caller


EXPIRY_WARNING = timedelta(days=14)


def service_identity(settings: ServiceSettings, environ: Mapping[str, str] | None = None,
                     now: datetime | None = None) -> str:
    """This service's own token (SERVICE_TOKEN, read here and not by ServiceSettings: only the code that calls as the
    service reads it, so a relay's pods need not hold it), checked at start-up: it must verify with the trusted keys
    and name this service. ConfigError otherwise, saying how to mint one; a warning when it expires soon."""
    how = f"mint one with `python -m services.user service-token --service {settings.service}`"
    token = Env(environ).optional("SERVICE_TOKEN")
    if not token:
        raise ConfigError(f"SERVICE_TOKEN must be set: the {settings.service} service calls others as itself; {how}")
    verifier = TokenVerifier(settings.jwt_public_key_pem, previous_public_key_pem=settings.jwt_previous_public_key_pem,
                             leeway_seconds=0, accept_services=True)
    try:
        caller = verifier.verify(token)
    except Unauthenticated as exc:
        raise ConfigError(f"SERVICE_TOKEN is not a valid service token ({exc.code}); {how}") from None
    if caller.service != settings.service:
        raise ConfigError(f"SERVICE_TOKEN is not the {settings.service} service's token; {how}")
    expires = datetime.fromtimestamp(jwt.decode(token, options={"verify_signature": False})["exp"], UTC)
    if expires - (now or datetime.now(UTC)) < EXPIRY_WARNING:
        log.warning("SERVICE_TOKEN expires at %s; %s and replace the secret", expires.isoformat(), how)
    return token
