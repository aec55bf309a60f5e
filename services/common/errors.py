"""Domain errors: a stable code, a message and a kind. Transport-free: the gRPC mapping is in grpc_server."""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    """What went wrong, as the caller must react to it (grpc_server maps each to one status)."""

    INVALID = "invalid"                  # bad input (HTTP 400)
    UNAUTHENTICATED = "unauthenticated"  # 401
    FORBIDDEN = "forbidden"              # 403
    NOT_FOUND = "not_found"              # 404
    CONFLICT = "conflict"                # 409: state or idempotency conflict
    BUSINESS_RULE = "business_rule"      # 422
    RATE_LIMITED = "rate_limited"        # 429
    UNAVAILABLE = "unavailable"          # 503


class DomainError(Exception):
    """A business error: a stable machine code (`OUT_OF_STOCK`), a human message, a kind."""

    kind: ErrorKind = ErrorKind.BUSINESS_RULE

    def __init__(self, code: str, message: str, *, kind: ErrorKind | None = None,
                 details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        if kind is not None:
            self.kind = kind
        self.details = details or {}


class InvalidInput(DomainError):
    kind = ErrorKind.INVALID


class NotFound(DomainError):
    kind = ErrorKind.NOT_FOUND


class Unauthenticated(DomainError):
    kind = ErrorKind.UNAUTHENTICATED


class Forbidden(DomainError):
    kind = ErrorKind.FORBIDDEN


class Conflict(DomainError):
    kind = ErrorKind.CONFLICT


class RateLimited(DomainError):
    kind = ErrorKind.RATE_LIMITED


class ChannelError(Exception):
    """What a payment or payout channel's adapter raises (a notify not to trust, no usable answer): not a domain
    error, but its `reason` is safe to log and to answer the channel with."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
