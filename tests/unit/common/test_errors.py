"""Domain errors: each kind is one gRPC status (grpc_server.GRPC_STATUS), and code/details survive the trip through trailing metadata."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from services.common.errors import (
    Conflict,
    DomainError,
    ErrorKind,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from services.common.grpc_server import CODE_KEY, DETAILS_KEY, GRPC_STATUS, from_grpc, to_grpc


@pytest.mark.parametrize(("error", "status"), [
    (InvalidInput("X", "m"), grpc.StatusCode.INVALID_ARGUMENT),
    (Unauthenticated("X", "m"), grpc.StatusCode.UNAUTHENTICATED),
    (Forbidden("X", "m"), grpc.StatusCode.PERMISSION_DENIED),
    (NotFound("X", "m"), grpc.StatusCode.NOT_FOUND),
    (Conflict("X", "m"), grpc.StatusCode.ABORTED),
    (DomainError("X", "m"), grpc.StatusCode.FAILED_PRECONDITION),
    (RateLimited("X", "m"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (DomainError("X", "m", kind=ErrorKind.UNAVAILABLE), grpc.StatusCode.UNAVAILABLE),
], ids=lambda value: type(value).__name__ if isinstance(value, DomainError) else value.name)
def test_each_error_class_travels_as_its_grpc_status(error: DomainError, status: grpc.StatusCode) -> None:
    assert to_grpc(error)[0] == status


def test_every_error_kind_is_a_distinct_grpc_status() -> None:
    statuses = [GRPC_STATUS[kind] for kind in ErrorKind]

    assert len(set(statuses)) == len(statuses) == 8


def test_a_plain_domain_error_is_a_business_rule_violation() -> None:
    assert DomainError("OUT_OF_STOCK", "sold out").kind is ErrorKind.BUSINESS_RULE


def test_kind_given_to_one_error_does_not_change_its_class() -> None:
    DomainError("X", "m", kind=ErrorKind.NOT_FOUND)

    assert DomainError("Y", "m").kind is ErrorKind.BUSINESS_RULE


def test_error_without_details_sends_only_its_code_as_trailer() -> None:
    assert to_grpc(NotFound("PRODUCT_NOT_FOUND", "no such product")) == (
        grpc.StatusCode.NOT_FOUND, "no such product", ((CODE_KEY, "PRODUCT_NOT_FOUND"),))


def test_error_details_travel_as_json_trailer() -> None:
    _, _, trailers = to_grpc(RateLimited("SMS_RESEND_TOO_SOON", "wait", details={"retry_after": 41}))

    assert trailers == ((CODE_KEY, "SMS_RESEND_TOO_SOON"), (DETAILS_KEY, '{"retry_after": 41}'))


def test_code_message_and_details_survive_the_round_trip(rpc_error: Callable[..., grpc.RpcError]) -> None:
    error = InvalidInput("PHONE_INVALID", "phone must be 11 digits", details={"phone": "invalid", "n": 3})
    status, message, trailers = to_grpc(error)

    received = from_grpc(rpc_error(status, message, trailers))

    assert received == (grpc.StatusCode.INVALID_ARGUMENT, "PHONE_INVALID", "phone must be 11 digits",
                        {"phone": "invalid", "n": 3})


@pytest.mark.parametrize("trailers", [None, ()], ids=["none", "empty"])
def test_failure_without_domain_trailers_has_empty_code_and_details(
        rpc_error: Callable[..., grpc.RpcError], trailers: tuple | None) -> None:
    received = from_grpc(rpc_error(grpc.StatusCode.UNAVAILABLE, "connection refused", trailers))

    assert received == (grpc.StatusCode.UNAVAILABLE, "", "connection refused", {})


def test_failure_without_message_has_empty_message(rpc_error: Callable[..., grpc.RpcError]) -> None:
    assert from_grpc(rpc_error(grpc.StatusCode.INTERNAL, None))[2] == ""


def test_details_with_chinese_text_still_make_legal_grpc_metadata() -> None:
    _, _, trailers = to_grpc(InvalidInput("NICKNAME_INVALID", "昵称太长", details={"nickname": "最多二十个字"}))

    assert all(value.isascii() and value.isprintable() for _, value in trailers)
