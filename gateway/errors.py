"""The REST error format, and the one mapping from gRPC status to HTTP status."""

from __future__ import annotations

import logging

import grpc
from flask import Flask, Response, g, jsonify
from werkzeug.exceptions import HTTPException

from services.common import errors as domain_errors
from services.common.discovery import DiscoveryError
from services.common.grpc_server import GRPC_STATUS, from_grpc

log = logging.getLogger(__name__)

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 422,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 503,
}

# Domain codes of things that existed and were removed on purpose: they travel as NOT_FOUND (gRPC has no
# "gone") and are answered 410 Gone, so that a client knows asking again for the same thing is pointless.
GONE_CODES = frozenset({"REPORT_EXPIRED"})

FALLBACK_CODES = {400: "INVALID_REQUEST", 401: "UNAUTHENTICATED", 403: "FORBIDDEN", 404: "NOT_FOUND",
                  405: "METHOD_NOT_ALLOWED", 409: "CONFLICT", 410: "GONE", 412: "PRECONDITION_FAILED",
                  413: "PAYLOAD_TOO_LARGE", 414: "URI_TOO_LONG",
                  415: "UNSUPPORTED_MEDIA_TYPE", 416: "RANGE_NOT_SATISFIABLE", 417: "EXPECTATION_FAILED", 422: "BUSINESS_RULE",
                  429: "RATE_LIMITED", 431: "HEADERS_TOO_LARGE", 500: "INTERNAL", 501: "NOT_IMPLEMENTED",
                  503: "SERVICE_UNAVAILABLE"}


class ApiError(Exception):
    """An error answered as `{"error": {"code", "message", "request_id", "details"?}}`."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}

    @classmethod
    def too_many_requests(cls, wait_seconds: int, code: str = "RATE_LIMITED",
                          message: str = "too many requests") -> ApiError:
        return cls(429, code, f"{message}; try again in {wait_seconds}s", {"retry_after": wait_seconds})

    @classmethod
    def from_domain(cls, exc: domain_errors.DomainError) -> ApiError:
        return cls(http_status(GRPC_STATUS[exc.kind], exc.code), exc.code, exc.message, exc.details)

    @classmethod
    def from_rpc(cls, exc: grpc.RpcError) -> ApiError:
        status_code, code, message, details = from_grpc(exc)
        status = http_status(status_code, code)
        if status == 500:
            log.error("upstream call failed: %s %s", status_code, message)
            return cls(500, "INTERNAL", "internal error")
        if not code:  # not a domain error: the service is down, slow or refused the call itself
            code = FALLBACK_CODES.get(status, "ERROR")
            message = "a backing service is unavailable; try again" if status == 503 else message
        return cls(status, code, message, details)


def http_status(status_code: grpc.StatusCode, code: str) -> int:
    """The HTTP status of a gRPC status carrying the domain error code `code` ("" when none); 500 when unmapped."""
    status = HTTP_STATUS.get(status_code, 500)
    return 410 if status == 404 and code in GONE_CODES else status


def error_response(error: ApiError) -> Response:
    body: dict[str, object] = {"code": error.code, "message": error.message, "request_id": g.get("request_id", "")}
    if error.details:
        body["details"] = error.details
    response = jsonify({"error": body})
    response.status_code = error.status
    if error.status == 429:
        response.headers["Retry-After"] = str(error.details.get("retry_after", 60))
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return error_response(error)

    @app.errorhandler(domain_errors.DomainError)
    def _domain_error(error: domain_errors.DomainError) -> Response:
        return error_response(ApiError.from_domain(error))

    @app.errorhandler(grpc.RpcError)
    def _rpc_error(error: grpc.RpcError) -> Response:
        return error_response(ApiError.from_rpc(error))

    @app.errorhandler(DiscoveryError)
    def _no_address(error: DiscoveryError) -> Response:
        log.error("service discovery failed: %s", error)
        return error_response(ApiError(503, "SERVICE_UNAVAILABLE", "a backing service is unavailable; try again"))

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        response = error_response(ApiError(status, FALLBACK_CODES.get(status, "ERROR"), error.description or error.name))
        for name, value in error.get_headers():  # e.g. the Allow header a 405 must carry
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(ApiError(500, "INTERNAL", "internal error"))


ERROR_SCHEMA = {
    "type": "object", "required": ["error"], "additionalProperties": False,
    "properties": {"error": {"type": "object", "required": ["code", "message", "request_id"],
                             "additionalProperties": False, "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}, "request_id": {"type": "string"},
        "details": {"type": "object"}}}},
}
