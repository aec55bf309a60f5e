"""The REST error format and the one mapping from a failed gRPC call to an HTTP answer."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from flask.testing import FlaskClient
from werkzeug.exceptions import MethodNotAllowed, NotFound

from gateway.errors import ApiError
from services.common.errors import DomainError, ErrorKind, RateLimited
from services.common.grpc_server import CODE_KEY, DETAILS_KEY, to_grpc

SMS_CODES = "/api/v1/auth/sms-codes"
SMS_REQUEST = {"phone": "13800138000", "purpose": "login"}


@pytest.fixture
def send_sms_fails(clients, rpc_error: Callable[..., grpc.RpcError]) -> Callable[..., None]:
    """send_sms_fails(status, message, trailers): the user service's SendSmsCode fails like that."""
    def _fail(status: grpc.StatusCode, message: str = "", trailers: tuple = ()) -> None:
        clients.user.SendSmsCode.error = rpc_error(status, message, trailers)
    return _fail


def test_unknown_route_is_404_in_the_error_format(client: FlaskClient) -> None:
    response = client.get("/api/v1/nothing-here", headers={"X-Request-ID": "r-404"})

    assert (response.status_code, response.get_json()) == (404, {"error": {
        "code": "NOT_FOUND", "message": NotFound.description, "request_id": "r-404"}})


def test_wrong_method_is_405_in_the_error_format(client: FlaskClient) -> None:
    response = client.get(SMS_CODES)

    assert (response.status_code, response.get_json()["error"]["code"], response.get_json()["error"]["message"]) == (
        405, "METHOD_NOT_ALLOWED", MethodNotAllowed.description)


def test_body_over_one_mebibyte_is_refused_unread(client: FlaskClient, clients) -> None:
    response = client.post(SMS_CODES, data=b"{" + b" " * (1 << 20) + b"}", content_type="application/json")

    assert (response.status_code, response.get_json()["error"]["code"], clients.user.SendSmsCode.calls) == (
        413, "PAYLOAD_TOO_LARGE", [])


def test_unavailable_service_is_503_service_unavailable(client: FlaskClient, send_sms_fails) -> None:
    send_sms_fails(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")

    response = client.post(SMS_CODES, json=SMS_REQUEST, headers={"X-Request-ID": "r-503"})

    assert (response.status_code, response.get_json()) == (503, {"error": {
        "code": "SERVICE_UNAVAILABLE", "message": "a backing service is unavailable; try again",
        "request_id": "r-503"}})


def test_deadline_exceeded_is_503_service_unavailable(client: FlaskClient, send_sms_fails) -> None:
    send_sms_fails(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")

    response = client.post(SMS_CODES, json=SMS_REQUEST)

    assert (response.status_code, response.get_json()["error"]["code"]) == (503, "SERVICE_UNAVAILABLE")


def test_rate_limited_domain_error_is_429_with_retry_after(client: FlaskClient, send_sms_fails) -> None:
    send_sms_fails(grpc.StatusCode.RESOURCE_EXHAUSTED, "wait 41s before asking for another code",
                   ((CODE_KEY, "SMS_RESEND_TOO_SOON"), (DETAILS_KEY, '{"retry_after": 41}')))

    response = client.post(SMS_CODES, json=SMS_REQUEST, headers={"X-Request-ID": "r-429"})

    assert (response.status_code, response.headers["Retry-After"], response.get_json()) == (429, "41", {"error": {
        "code": "SMS_RESEND_TOO_SOON", "message": "wait 41s before asking for another code", "request_id": "r-429",
        "details": {"retry_after": 41}}})


def test_rate_limited_without_retry_after_says_a_minute(client: FlaskClient, send_sms_fails) -> None:
    send_sms_fails(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down")

    response = client.post(SMS_CODES, json=SMS_REQUEST)

    assert (response.status_code, response.headers["Retry-After"], response.get_json()["error"]["code"]) == (
        429, "60", "RATE_LIMITED")


def test_domain_code_and_details_from_the_service_reach_the_client(client: FlaskClient, send_sms_fails) -> None:
    send_sms_fails(grpc.StatusCode.INVALID_ARGUMENT, "phone must be an 11-digit mainland mobile number",
                   ((CODE_KEY, "PHONE_INVALID"), (DETAILS_KEY, '{"phone": "invalid"}')))

    response = client.post(SMS_CODES, json=SMS_REQUEST)

    assert (response.status_code, response.get_json()["error"]["code"], response.get_json()["error"]["details"]) == (
        400, "PHONE_INVALID", {"phone": "invalid"})


@pytest.mark.parametrize("status", [grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN,
                                    grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.DATA_LOSS])
def test_other_failures_are_500_without_the_upstream_message(client: FlaskClient, send_sms_fails,
                                                             status: grpc.StatusCode) -> None:
    send_sms_fails(status, "Exception calling application: secret stack detail")

    response = client.post(SMS_CODES, json=SMS_REQUEST, headers={"X-Request-ID": "r-500"})

    assert (response.status_code, response.get_json()) == (500, {"error": {
        "code": "INTERNAL", "message": "internal error", "request_id": "r-500"}})


def test_unexpected_exception_in_the_gateway_is_500_without_detail(client: FlaskClient, clients) -> None:
    clients.user.SendSmsCode.error = KeyError("secret")

    response = client.post(SMS_CODES, json=SMS_REQUEST, headers={"X-Request-ID": "r-boom"})

    assert (response.status_code, response.get_json()) == (500, {"error": {
        "code": "INTERNAL", "message": "internal error", "request_id": "r-boom"}})


# The mapping itself

@pytest.mark.parametrize(("status", "http_status", "code"), [
    (grpc.StatusCode.INVALID_ARGUMENT, 400, "INVALID_REQUEST"),
    (grpc.StatusCode.OUT_OF_RANGE, 400, "INVALID_REQUEST"),
    (grpc.StatusCode.UNAUTHENTICATED, 401, "UNAUTHENTICATED"),
    (grpc.StatusCode.PERMISSION_DENIED, 403, "FORBIDDEN"),
    (grpc.StatusCode.NOT_FOUND, 404, "NOT_FOUND"),
    (grpc.StatusCode.ALREADY_EXISTS, 409, "CONFLICT"),
    (grpc.StatusCode.ABORTED, 409, "CONFLICT"),
    (grpc.StatusCode.FAILED_PRECONDITION, 422, "BUSINESS_RULE"),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, 429, "RATE_LIMITED"),
    (grpc.StatusCode.UNAVAILABLE, 503, "SERVICE_UNAVAILABLE"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, 503, "SERVICE_UNAVAILABLE"),
    (grpc.StatusCode.CANCELLED, 500, "INTERNAL"),
], ids=lambda value: value.name if isinstance(value, grpc.StatusCode) else None)
def test_status_without_domain_code_maps_to_http_and_a_generic_code(
        rpc_error: Callable[..., grpc.RpcError], status: grpc.StatusCode, http_status: int, code: str) -> None:
    error = ApiError.from_rpc(rpc_error(status, "upstream says no"))

    assert (error.status, error.code) == (http_status, code)


def test_non_domain_4xx_keeps_the_upstream_message(rpc_error: Callable[..., grpc.RpcError]) -> None:
    error = ApiError.from_rpc(rpc_error(grpc.StatusCode.NOT_FOUND, "Method not found!"))

    assert (error.status, error.code, error.message, error.details) == (404, "NOT_FOUND", "Method not found!", {})


@pytest.mark.parametrize(("kind", "http_status"), [
    (ErrorKind.INVALID, 400), (ErrorKind.UNAUTHENTICATED, 401), (ErrorKind.FORBIDDEN, 403),
    (ErrorKind.NOT_FOUND, 404), (ErrorKind.CONFLICT, 409), (ErrorKind.BUSINESS_RULE, 422),
    (ErrorKind.RATE_LIMITED, 429), (ErrorKind.UNAVAILABLE, 503),
], ids=lambda value: value.name if isinstance(value, ErrorKind) else None)
def test_every_domain_error_kind_has_its_http_status_end_to_end(
        rpc_error: Callable[..., grpc.RpcError], kind: ErrorKind, http_status: int) -> None:
    status, message, trailers = to_grpc(DomainError("SOME_CODE", "some message", kind=kind, details={"x": 1}))

    error = ApiError.from_rpc(rpc_error(status, message, trailers))

    assert (error.status, error.code, error.message, error.details) == (
        http_status, "SOME_CODE", "some message", {"x": 1})


def test_domain_error_raised_in_the_gateway_is_answered_in_the_error_format(app, client: FlaskClient) -> None:
    @app.get("/unit-test/raises")
    def raises() -> dict:
        raise RateLimited("TOO_FAST", "slow down", details={"retry_after": 5})

    response = client.get("/unit-test/raises", headers={"X-Request-ID": "r-dom"})

    assert (response.status_code, response.headers["Retry-After"], response.get_json()) == (429, "5", {"error": {
        "code": "TOO_FAST", "message": "slow down", "request_id": "r-dom", "details": {"retry_after": 5}}})
