"""The shared gRPC client against a real server: deadlines, context passed on, reads retried, writes not."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc
import pytest
from mall.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from mall.analytics.v1.analytics_pb2_grpc import AnalyticsServiceStub
from mall.user.v1 import user_pb2, user_pb2_grpc
from mall.user.v1.user_pb2_grpc import UserServiceStub

from services.common.auth import TokenVerifier, caller_var
from services.common.clients import ServiceClients
from services.common.config import Env, ServiceSettings
from services.common.discovery import Discovery
from services.common.grpc_server import create_server, registration
from services.common.logs import request_id_var
from services.user.domain import User
from services.user.tokens import TokenIssuer
from tests.fixtures.keys import JwtKeys, service_token

pytestmark = pytest.mark.integration

TIMEOUT_SECONDS = 4.0


@dataclass
class Seen:
    """What the server saw of each call: (request id, caller's user id or None, seconds left)."""

    calls: list[tuple[str, int | None, float]] = field(default_factory=list)
    fail_first: int = 0
    services: list[str] = field(default_factory=list)  # the calling service's name, "" for a user or nobody

    def record(self, context: grpc.ServicerContext) -> None:
        caller = caller_var.get()
        self.calls.append((request_id_var.get(), caller.user_id if caller else None, context.time_remaining()))
        self.services.append(caller.service if caller else "")
        if len(self.calls) <= self.fail_first:
            context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")


class FlakyAnalytics(analytics_pb2_grpc.AnalyticsServiceServicer):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    def GetOverview(self, request: analytics_pb2.GetOverviewRequest,
                    context: grpc.ServicerContext) -> analytics_pb2.GetOverviewResponse:
        self.seen.record(context)
        return analytics_pb2.GetOverviewResponse(totals=analytics_pb2.Figures(new_users=7))


class FlakyUser(user_pb2_grpc.UserServiceServicer):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    def SendSmsCode(self, request: user_pb2.SendSmsCodeRequest,
                    context: grpc.ServicerContext) -> user_pb2.SendSmsCodeResponse:
        self.seen.record(context)
        return user_pb2.SendSmsCodeResponse(expires_in=300)


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def clients(seen: Seen, jwt_keys: JwtKeys) -> Iterator[ServiceClients]:
    settings = ServiceSettings.from_env("analytics", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                      "ANALYTICS_GRPC_LISTEN": "127.0.0.1:0"})
    server, port = create_server(settings, [
        registration(analytics_pb2, analytics_pb2_grpc, "AnalyticsService", FlakyAnalytics(seen)),
        registration(user_pb2, user_pb2_grpc, "UserService", FlakyUser(seen))])
    server.start()
    target = f"127.0.0.1:{port}"
    env = Env({"ANALYTICS_GRPC_TARGET": target, "USER_GRPC_TARGET": target})
    clients = ServiceClients(Discovery(None, env), TIMEOUT_SECONDS, service_token=service_token(jwt_keys, "order"))
    yield clients
    clients.close()
    server.stop(grace=None)


@pytest.fixture
def as_caller(jwt_keys: JwtKeys) -> Iterator[None]:
    """Run the test as user 7 handling request "req-77", as a gateway request or a service call would."""
    issuer = TokenIssuer(jwt_keys.private_pem, access_ttl_seconds=300, refresh_ttl_seconds=600)
    user = User(phone="13800000000", created_at=datetime.now(UTC), id=7)
    caller = TokenVerifier(jwt_keys.public_pem).verify(issuer.access_token(user, frozenset(), datetime.now(UTC)))
    rid, who = request_id_var.set("req-77"), caller_var.set(caller)
    yield
    caller_var.reset(who)
    request_id_var.reset(rid)


def test_request_id_and_caller_reach_the_called_service(clients: ServiceClients, seen: Seen, as_caller: None) -> None:
    clients.get(AnalyticsServiceStub).GetOverview(analytics_pb2.GetOverviewRequest())

    assert [(rid, user) for rid, user, _ in seen.calls] == [("req-77", 7)]


def test_a_call_without_a_caller_carries_no_identity(clients: ServiceClients, seen: Seen) -> None:
    clients.get(AnalyticsServiceStub).GetOverview(analytics_pb2.GetOverviewRequest())

    assert [(rid, user) for rid, user, _ in seen.calls] == [("", None)]


def test_a_stub_as_the_service_sends_its_own_token_instead_of_the_callers(clients: ServiceClients, seen: Seen,
                                                                          as_caller: None) -> None:
    clients.get(AnalyticsServiceStub, as_service=True).GetOverview(analytics_pb2.GetOverviewRequest())
    clients.get(AnalyticsServiceStub).GetOverview(analytics_pb2.GetOverviewRequest())

    assert [(rid, user) for rid, user, _ in seen.calls] == [("req-77", 0), ("req-77", 7)]
    assert seen.services == ["order", ""]
    assert all(0 < left < TIMEOUT_SECONDS + 1 for _, _, left in seen.calls)  # the default deadline, as for any call


def test_a_job_without_a_caller_calls_as_the_service(clients: ServiceClients, seen: Seen) -> None:
    clients.get(AnalyticsServiceStub, as_service=True).GetOverview(analytics_pb2.GetOverviewRequest())

    assert (seen.services, [user for _, user, _ in seen.calls]) == (["order"], [0])


def test_a_process_without_a_service_token_cannot_call_as_a_service(seen: Seen) -> None:
    clients = ServiceClients(Discovery(None, Env({"ANALYTICS_GRPC_TARGET": "127.0.0.1:1"})), TIMEOUT_SECONDS)

    with pytest.raises(RuntimeError, match="SERVICE_TOKEN"):
        clients.get(AnalyticsServiceStub, as_service=True)
    assert seen.calls == []


def test_every_call_gets_the_default_deadline(clients: ServiceClients, seen: Seen) -> None:
    clients.get(AnalyticsServiceStub).GetOverview(analytics_pb2.GetOverviewRequest())

    remaining = seen.calls[0][2]  # None without a deadline; the server's clock may read a hair over
    assert remaining is not None and TIMEOUT_SECONDS - 2 < remaining < TIMEOUT_SECONDS + 0.5


def test_a_read_that_finds_the_service_unavailable_is_retried(clients: ServiceClients, seen: Seen) -> None:
    seen.fail_first = 2

    reply = clients.get(AnalyticsServiceStub).GetOverview(analytics_pb2.GetOverviewRequest())

    assert (reply.totals.new_users, len(seen.calls)) == (7, 3)


def test_a_write_is_never_retried_by_the_client(clients: ServiceClients, seen: Seen) -> None:
    seen.fail_first = 1

    with pytest.raises(grpc.RpcError) as failed:
        clients.get(UserServiceStub).SendSmsCode(user_pb2.SendSmsCodeRequest(phone="13800138000", purpose="login"))

    assert (failed.value.code(), len(seen.calls)) == (grpc.StatusCode.UNAVAILABLE, 1)


@dataclass
class Counting(analytics_pb2_grpc.AnalyticsServiceServicer):
    calls: int = 0

    def GetOverview(self, request: analytics_pb2.GetOverviewRequest,
                    context: grpc.ServicerContext) -> analytics_pb2.GetOverviewResponse:
        self.calls += 1
        return analytics_pb2.GetOverviewResponse()


def test_calls_are_spread_round_robin_over_every_address_of_a_static_target(jwt_keys: JwtKeys) -> None:
    # A headless Service's DNS name resolves to every ready pod; two loopback addresses stand in for two pods.
    replicas, servers, addresses = [Counting(), Counting()], [], []
    for host, replica in zip(("127.0.0.1", "127.0.0.2"), replicas, strict=True):
        settings = ServiceSettings.from_env("analytics", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                          "ANALYTICS_GRPC_LISTEN": f"{host}:0"})
        server, port = create_server(settings, [registration(analytics_pb2, analytics_pb2_grpc, "AnalyticsService",
                                                             replica)])
        server.start()
        servers.append(server)
        addresses.append(f"{host}:{port}")
    clients = ServiceClients(Discovery(None, Env({"ANALYTICS_GRPC_TARGET": f"ipv4:{','.join(addresses)}"})),
                             TIMEOUT_SECONDS)
    try:
        stub = clients.get(AnalyticsServiceStub)
        deadline = time.monotonic() + 10
        while not all(r.calls for r in replicas) and time.monotonic() < deadline:  # both connections up
            stub.GetOverview(analytics_pb2.GetOverviewRequest())
        for replica in replicas:
            replica.calls = 0
        for _ in range(10):
            stub.GetOverview(analytics_pb2.GetOverviewRequest())

        assert [r.calls for r in replicas] == [5, 5]
    finally:
        clients.close()
        for server in servers:
            server.stop(grace=None)


def test_a_dns_scheme_target_is_resolved_by_grpc(seen: Seen, jwt_keys: JwtKeys) -> None:
    settings = ServiceSettings.from_env("analytics", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                      "ANALYTICS_GRPC_LISTEN": "127.0.0.1:0"})
    server, port = create_server(settings, [registration(analytics_pb2, analytics_pb2_grpc, "AnalyticsService",
                                                         FlakyAnalytics(seen))])
    server.start()
    clients = ServiceClients(Discovery(None, Env({"ANALYTICS_GRPC_TARGET": f"dns:///localhost:{port}"})),
                             TIMEOUT_SECONDS)
    try:
        reply = clients.get(AnalyticsServiceStub).GetOverview(analytics_pb2.GetOverviewRequest())
    finally:
        clients.close()
        server.stop(grace=None)

    assert (reply.totals.new_users, len(seen.calls)) == (7, 1)
