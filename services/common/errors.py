"""Domain errors with stable codes, and the one mapping from error kind to gRPC status."""

from __future__ import annotations

import enum
import json

import grpc


class ErrorKind(enum.Enum):
    """What went wrong, as the caller must react to it; each kind is one gRPC status."""

    INVALID = grpc.StatusCode.INVALID_ARGUMENT            # bad input (HTTP 400)
    UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED     # 401
    FORBIDDEN = grpc.StatusCode.PERMISSION_DENIED         # 403
    NOT_FOUND = grpc.StatusCode.NOT_FOUND                 # 404
    CONFLICT = grpc.StatusCode.ABORTED                    # 409: state or idempotency conflict
    BUSINESS_RULE = grpc.StatusCode.FAILED_PRECONDITION   # 422
    RATE_LIMITED = grpc.StatusCode.RESOURCE_EXHAUSTED     # 429
    UNAVAILABLE = grpc.StatusCode.UNAVAILABLE             # 503


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


# Trailing-metadata keys that carry a DomainError across gRPC to the gateway.
CODE_KEY = "mall-error-code"
DETAILS_KEY = "mall-error-details"


def to_grpc(error: DomainError) -> tuple[grpc.StatusCode, str, tuple[tuple[str, str], ...]]:
    """Status, message and trailing metadata that represent a domain error on the wire."""
    trailers = [(CODE_KEY, error.code)]
    if error.details:
        # gRPC metadata values must be printable ASCII: keep json's \uXXXX escapes.
        trailers.append((DETAILS_KEY, json.dumps(error.details)))
    return error.kind.value, error.message, tuple(trailers)


def from_grpc(exc: grpc.RpcError) -> tuple[grpc.StatusCode, str, str, dict[str, object]]:
    """(status, code, message, details) of a failed call; code is "" when no domain code was sent."""
    trailers = dict(exc.trailing_metadata() or ())
    details = json.loads(trailers[DETAILS_KEY]) if DETAILS_KEY in trailers else {}
    return exc.code(), str(trailers.get(CODE_KEY, "")), exc.details() or "", details
