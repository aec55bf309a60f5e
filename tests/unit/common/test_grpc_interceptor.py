"""The server interceptor, driven in-process: request id, caller, and domain errors turned into statuses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import grpc
import psycopg
import psycopg.errors
import pytest
from sqlalchemy.exc import DataError, OperationalError

from services.common.auth import Caller, TokenVerifier, caller_var, require_caller
from services.common.errors import NotFound
from services.common.grpc_server import CODE_KEY, DETAILS_KEY, ContextInterceptor
from services.common.logs import request_id_var


class Aborted(Exception):
    """What grpc's ServicerContext.abort raises to end the call."""


@dataclass
class FakeContext:
    status: grpc.StatusCode | None = None
    message: str = ""
    trailers: tuple = ()
    remaining: float | None = 30.0  # seconds left of the caller's deadline, as grpc says (never below 0)

    def time_remaining(self) -> float | None:
        return self.remaining

    def code(self) -> grpc.StatusCode | None:
        return self.status

    def set_trailing_metadata(self, trailers: tuple) -> None:
        self.trailers = trailers

    def abort(self, status: grpc.StatusCode, message: str) -> None:
        self.status, self.message = status, message
        raise Aborted(message)


@dataclass
class CallDetails:
    method: str
    invocation_metadata: tuple


@dataclass
class Servicer:
    """A servicer method whose body the test chooses; it records what it saw of the call's context."""

    body: Callable[[Any], Any] = lambda request: "reply"
    seen: list[tuple[str, Caller | None]] = field(default_factory=list)

    def __call__(self, request: Any, context: Any) -> Any:
        self.seen.append((request_id_var.get(), caller_var.get()))
        return self.body(request)


@pytest.fixture
def servicer() -> Servicer:
    return Servicer()


@pytest.fixture
def invoke(verifier: TokenVerifier, servicer: Servicer) -> Callable[..., tuple[Any, FakeContext]]:
    """invoke(metadata): run one unary call of `servicer` through the interceptor; (reply or Aborted, context)."""
    interceptor = ContextInterceptor("user", verifier)

    def _invoke(metadata: tuple = (), remaining: float | None = 30.0) -> tuple[Any, FakeContext]:
        handler = interceptor.intercept_service(
            lambda details: grpc.unary_unary_rpc_method_handler(servicer),
            CallDetails("/mall.user.v1.UserService/SendSmsCode", metadata))
        context = FakeContext(remaining=remaining)
        try:
            return handler.unary_unary("request", context), context
        except Aborted as aborted:
            return aborted, context
    return _invoke


def test_call_sees_the_request_id_from_metadata(invoke, servicer: Servicer) -> None:
    invoke((("x-request-id", "r-77"),))

    assert servicer.seen == [("r-77", None)]


def test_call_sees_the_verified_caller(invoke, servicer: Servicer, mint) -> None:
    invoke((("authorization", f"Bearer {mint(user_id=5, roles='admin')}"),))

    assert [(caller.user_id, caller.roles) for _, caller in servicer.seen] == [(5, frozenset({"admin"}))]


def test_request_id_and_caller_do_not_outlive_the_call(invoke, mint) -> None:
    invoke((("x-request-id", "r-77"), ("authorization", f"Bearer {mint()}")))

    assert (request_id_var.get(), caller_var.get()) == ("", None)


def test_reply_of_the_servicer_is_returned(invoke) -> None:
    assert invoke()[0] == "reply"


def test_a_call_whose_deadline_passed_while_it_waited_for_a_thread_is_not_run(invoke, servicer: Servicer) -> None:
    """Its caller gave up and may have undone what it asked for (a submit's compensation): running it now would hold
    stock, a coupon or points for an order that never exists."""
    _, context = invoke(remaining=0.0)

    assert (context.status, context.trailers, servicer.seen) == (
        grpc.StatusCode.DEADLINE_EXCEEDED, ((CODE_KEY, "DEADLINE_EXCEEDED"),), [])


@pytest.mark.parametrize("remaining", [0.2, None])  # time left, or no deadline at all
def test_a_call_within_its_deadline_or_without_one_is_run(invoke, remaining: float | None) -> None:
    assert invoke(remaining=remaining)[0] == "reply"


def test_domain_error_becomes_its_status_with_code_and_details_trailers(invoke, servicer: Servicer) -> None:
    def fails(request: Any) -> Any:
        raise NotFound("PRODUCT_NOT_FOUND", "no such product", details={"id": 9})
    servicer.body = fails

    _, context = invoke()

    assert (context.status, context.message, context.trailers) == (
        grpc.StatusCode.NOT_FOUND, "no such product", ((CODE_KEY, "PRODUCT_NOT_FOUND"), (DETAILS_KEY, '{"id": 9}')))


def test_unexpected_error_becomes_internal_without_detail(invoke, servicer: Servicer) -> None:
    servicer.body = lambda request: {}["missing"]

    _, context = invoke()

    assert (context.status, context.message, context.trailers) == (grpc.StatusCode.INTERNAL, "internal error", ())


def test_data_the_database_refuses_is_invalid_argument_not_internal(invoke, servicer: Servicer) -> None:
    def stores_a_nul(request: Any) -> Any:
        raise DataError("INSERT INTO recharges ...", {}, psycopg.DataError(
            "PostgreSQL text fields cannot contain NUL (0x00) bytes"))
    servicer.body = stores_a_nul

    _, context = invoke()

    assert (context.status, context.trailers) == (grpc.StatusCode.INVALID_ARGUMENT, ((CODE_KEY, "VALUE_NOT_STORABLE"),))


@pytest.mark.parametrize("cancelled", [psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"),
                                       psycopg.errors.QueryCanceled("canceling statement due to statement timeout")])
def test_a_statement_a_session_timeout_cut_short_is_unavailable_database_busy(
        invoke, servicer: Servicer, cancelled: psycopg.Error) -> None:
    def waits_on_a_row(request: Any) -> Any:
        raise OperationalError("UPDATE ledger_accounts ...", {}, cancelled)
    servicer.body = waits_on_a_row

    _, context = invoke()

    assert (context.status, context.trailers) == (grpc.StatusCode.UNAVAILABLE, ((CODE_KEY, "DATABASE_BUSY"),))


def test_a_database_out_of_reach_is_unavailable_database_unavailable(invoke, servicer: Servicer) -> None:
    def connects(request: Any) -> Any:
        raise OperationalError("SELECT 1", {}, psycopg.OperationalError("connection refused"))
    servicer.body = connects

    _, context = invoke()

    assert (context.status, context.trailers) == (grpc.StatusCode.UNAVAILABLE, ((CODE_KEY, "DATABASE_UNAVAILABLE"),))


def test_protected_call_without_token_is_unauthenticated(invoke, servicer: Servicer) -> None:
    servicer.body = lambda request: require_caller("admin")

    _, context = invoke()

    assert (context.status, context.trailers) == (grpc.StatusCode.UNAUTHENTICATED, ((CODE_KEY, "AUTH_REQUIRED"),))


def test_protected_call_with_an_expired_token_says_expired(invoke, servicer: Servicer, mint) -> None:
    servicer.body = lambda request: require_caller("admin")

    _, context = invoke((("authorization", f"Bearer {mint(roles='admin', issued_ago=timedelta(hours=1))}"),))

    assert (context.status, context.trailers) == (grpc.StatusCode.UNAUTHENTICATED, ((CODE_KEY, "TOKEN_EXPIRED"),))


def test_any_token_sent_must_be_valid_even_where_no_caller_is_needed(invoke, servicer: Servicer, mint) -> None:
    """Why the gateway forwards only tokens it has verified: a stale one would fail even a public call."""
    _, context = invoke((("authorization", f"Bearer {mint(issued_ago=timedelta(hours=1))}"),))

    assert (context.status, context.trailers, servicer.seen) == (
        grpc.StatusCode.UNAUTHENTICATED, ((CODE_KEY, "TOKEN_EXPIRED"),), [])
