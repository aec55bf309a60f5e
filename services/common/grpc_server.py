"""gRPC server builder: interceptors (request id, caller, errors, metrics), health and reflection."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from types import ModuleType
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SqlTimeoutError

from services.common import errors, sessions
from services.common.auth import TokenVerifier, bearer_token, caller_var
from services.common.config import ServiceSettings
from services.common.db import cancelled_by_timeout, refused_data
from services.common.logs import request_id_var
from services.common.metrics import RPC_HANDLED, RPC_LATENCY

log = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"
AUTHORIZATION_KEY = "authorization"

MAX_PAGE = 100  # rows one list RPC answers at most
DEFAULT_PAGE = 20  # rows a list RPC answers when the request names no limit


class PageRequest(Protocol):
    """A list RPC's request: every one carries the page it wants as offset and limit."""

    offset: int
    limit: int


def page(request: PageRequest) -> dict[str, int]:
    """The request's page as the use cases take it (`offset=`, `limit=`): a negative offset reads from the start,
    no limit (0) is DEFAULT_PAGE, and a limit is held to 1..MAX_PAGE, so no caller can ask for a whole table."""
    limit = max(request.limit, 1) if request.limit else DEFAULT_PAGE
    return {"offset": max(request.offset, 0), "limit": min(limit, MAX_PAGE)}


# The one mapping from a domain error's kind to the gRPC status it travels as.
GRPC_STATUS = {
    errors.ErrorKind.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    errors.ErrorKind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    errors.ErrorKind.FORBIDDEN: grpc.StatusCode.PERMISSION_DENIED,
    errors.ErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    errors.ErrorKind.CONFLICT: grpc.StatusCode.ABORTED,
    errors.ErrorKind.BUSINESS_RULE: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ErrorKind.RATE_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.ErrorKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}

# The database unreachable (refused, dropped, pool exhausted) or asking to retry (deadlock, serialization):
# UNAVAILABLE (503, try again), not a bug. Usually the unit of work rolled back and nothing changed; but when the
# connection drops after the COMMIT reached the server, the change is saved and the caller cannot tell: writes that
# must not happen twice on a retry take an Idempotency-Key (orders, payments, refunds, withdrawals, claims).
DATABASE_DOWN = (OperationalError, InterfaceError, SqlTimeoutError)
DATABASE_UNAVAILABLE = errors.DomainError("DATABASE_UNAVAILABLE", "the database is unavailable; try again",
                                          kind=errors.ErrorKind.UNAVAILABLE)
# One of them: a statement PostgreSQL cut short after the session's lock or statement timeout (DB_LOCK_TIMEOUT_SECONDS,
# DB_STATEMENT_TIMEOUT_SECONDS: a row another transaction holds too long, a query too slow). The unit of work rolled
# back, nothing was committed: UNAVAILABLE too (503, try again), under a code of its own.
DATABASE_BUSY = errors.DomainError("DATABASE_BUSY", "the database did not answer in time (a row another transaction "
                                   "holds, or a slow query); nothing was changed, try again",
                                   kind=errors.ErrorKind.UNAVAILABLE)

# A value of the request the database refuses to store or compare (a DataError, SQLSTATE class 22: NUL in text, a
# number out of range, text too long for its column): the same request fails the same way every time, so it is the
# caller's to fix, INVALID_ARGUMENT (400), not INTERNAL (500, "try again", an alert for someone else's input). The
# unit of work rolled back, so nothing was changed; the warning names the RPC whose checks let the value through.
DATA_REFUSED = errors.InvalidInput("VALUE_NOT_STORABLE", "a value of the request cannot be stored (a control "
                                   "character in text, or a number or text too large)")

# A call whose caller's deadline passed before its handler started (it waited for one of the server's threads): the
# caller has given up, and may have undone what it asked for already (the order service releases the stock, coupon
# and points of a submit that failed), so the handler is not run. Answered DEADLINE_EXCEEDED, which no one reads.
# grpcio itself skips most such calls (those whose cancellation it has seen); a handler that starts in time and then
# waits past the deadline (a connection, a lock) still runs: what must not land late checks for itself
# (product: released_orders, member: a released points hold or coupon lock).
DEADLINE_PASSED = errors.DomainError("DEADLINE_EXCEEDED", "the call's deadline passed before it was handled; "
                                     "nothing was done", kind=errors.ErrorKind.UNAVAILABLE)

# Trailing-metadata keys that carry a DomainError across gRPC to the gateway.
CODE_KEY = "mall-error-code"
DETAILS_KEY = "mall-error-details"


def to_grpc(error: errors.DomainError) -> tuple[grpc.StatusCode, str, tuple[tuple[str, str], ...]]:
    """Status, message and trailing metadata that represent a domain error on the wire."""
    trailers = [(CODE_KEY, error.code)]
    if error.details:
        # gRPC metadata values must be printable ASCII: keep json's \uXXXX escapes.
        trailers.append((DETAILS_KEY, json.dumps(error.details)))
    return GRPC_STATUS[error.kind], error.message, tuple(trailers)


def from_grpc(exc: grpc.RpcError) -> tuple[grpc.StatusCode, str, str, dict[str, object]]:
    """(status, code, message, details) of a failed call; code is "" when no domain code was sent."""
    trailers = dict(exc.trailing_metadata() or ())
    details = json.loads(trailers[DETAILS_KEY]) if DETAILS_KEY in trailers else {}
    return exc.code(), str(trailers.get(CODE_KEY, "")), exc.details() or "", details


# (add_XServicer_to_server, servicer instance, full service name such as "mall.user.v1.UserService")
Registration = tuple[Callable[[Any, grpc.Server], None], Any, str]


def registration(pb2: ModuleType, pb2_grpc: ModuleType, service_name: str, servicer: Any) -> Registration:
    """What create_server needs for `servicer` of the proto service `service_name` (e.g. "UserService")."""
    full_name = pb2.DESCRIPTOR.services_by_name[service_name].full_name
    return getattr(pb2_grpc, f"add_{service_name}Servicer_to_server"), servicer, full_name


class ContextInterceptor(grpc.ServerInterceptor):
    """Per call: sets request id and verified caller, maps DomainError to a status, records metrics."""

    def __init__(self, service: str, verifier: TokenVerifier) -> None:
        self.service = service
        self.verifier = verifier

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler],
                          handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method.rsplit("/", 1)[-1]
        metadata = dict(handler_call_details.invocation_metadata or ())
        inner = handler.unary_unary

        def call(request: Any, context: grpc.ServicerContext) -> Any:
            started = time.perf_counter()
            status = grpc.StatusCode.OK
            rid_token = request_id_var.set(str(metadata.get(REQUEST_ID_KEY, "")))
            caller_token = caller_var.set(None)
            # Sessions the call ended (committed) are told to the gateway in the trailers, whatever the status.
            with sessions.collecting() as ended:
                try:
                    remaining = context.time_remaining()
                    if remaining is not None and remaining <= 0:
                        _, message, trailers = to_grpc(DEADLINE_PASSED)
                        context.set_trailing_metadata(trailers)
                        context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, message)  # status counted below
                    token = bearer_token(metadata.get(AUTHORIZATION_KEY))
                    if token:
                        caller_var.set(self.verifier.verify(token))
                    response = inner(request, context)
                    if ended:
                        context.set_trailing_metadata(sessions.trailers(ended))
                    return response
                except errors.DomainError as exc:
                    status, message, trailers = to_grpc(exc)
                    context.set_trailing_metadata((*trailers, *sessions.trailers(ended)))
                    context.abort(status, message)
                except DataError as exc:
                    status, message, trailers = to_grpc(DATA_REFUSED)
                    log.warning("data refused by the database in %s: %s", method,
                                refused_data(exc))
                    context.set_trailing_metadata((*trailers, *sessions.trailers(ended)))
                    context.abort(status, message)
                except DATABASE_DOWN as exc:
                    timeout = cancelled_by_timeout(exc)
                    status, message, trailers = to_grpc(DATABASE_BUSY if timeout else DATABASE_UNAVAILABLE)
                    if timeout:
                        log.warning("%s ran out in %s (rolled back): %s", timeout, method, refused_data(exc))
                    else:
                        log.warning("database unavailable in %s: %s", method, exc)
                    context.set_trailing_metadata((*trailers, *sessions.trailers(ended)))
                    context.abort(status, message)
                except Exception:
                    if context.code() not in (None, grpc.StatusCode.OK):  # the servicer aborted on purpose
                        status = context.code()
                        raise
                    status = grpc.StatusCode.INTERNAL
                    log.exception("unhandled error in %s", method)
                    if ended:
                        context.set_trailing_metadata(sessions.trailers(ended))
                    context.abort(status, "internal error")
                finally:
                    RPC_HANDLED.labels(self.service, method, status.name).inc()
                    RPC_LATENCY.labels(self.service, method).observe(time.perf_counter() - started)
                    caller_var.reset(caller_token)
                    request_id_var.reset(rid_token)

        return grpc.unary_unary_rpc_method_handler(
            call, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)


# Clients re-resolve a DNS name when a connection ends: ending each one after five minutes (calls in
# flight get 30 s more) lets round_robin clients find pods that started since (services/common/clients.py).
CONNECTION_OPTIONS = [("grpc.max_connection_age_ms", 300_000), ("grpc.max_connection_age_grace_ms", 30_000)]


def create_server(settings: ServiceSettings, registrations: Sequence[Registration], *,
                  health_servicer: health.HealthServicer | None = None,
                  max_workers: int = 16) -> tuple[grpc.Server, int]:
    """Build (not start) the server of `settings.service` on `settings.grpc_listen` ("host:0" = any free port).

    Returns the server and the bound port. Pass `health_servicer` to keep a handle on it (for
    graceful shutdown); every registered service and "" report SERVING.
    """
    # Other services' own tokens too (auth.py): RPCs decide with require_service / require_caller(services=...).
    verifier = TokenVerifier(settings.jwt_public_key_pem, previous_public_key_pem=settings.jwt_previous_public_key_pem,
                             accept_services=True)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers),
                         interceptors=[ContextInterceptor(settings.service, verifier)], options=CONNECTION_OPTIONS)
    health_servicer = health_servicer or health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME]
    for add, servicer, name in registrations:
        add(servicer, server)
        names.append(name)
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(names, server)
    port = server.add_insecure_port(settings.grpc_listen)
    if port == 0:
        raise RuntimeError(f"cannot bind gRPC server to {settings.grpc_listen}")
    return server, port
