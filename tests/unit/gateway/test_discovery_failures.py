"""When Consul cannot say where a service is, or the instance it named is gone."""

from __future__ import annotations

import concurrent.futures
import threading

import grpc
import pytest
from mall.user.v1 import user_pb2
from mall.user.v1.user_pb2_grpc import UserServiceStub

from gateway.app import create_app
from gateway.config import GatewaySettings
from services.common.clients import ServiceClients
from services.common.discovery import DiscoveryError
from tests.fixtures.fake_services import FakeChannel, FakeRpcError, FakeServices


class NoInstances:
    consul = object()  # "Consul is configured"

    def target(self, service: str) -> str:
        raise DiscoveryError(f"no healthy {service} instance registered in Consul")


def test_no_healthy_instance_is_503_not_500(settings: GatewaySettings) -> None:
    app = create_app(settings, ServiceClients(NoInstances(), timeout_seconds=1))  # type: ignore[arg-type]

    reply = app.test_client().post("/api/v1/auth/sms-codes", json={"phone": "13900000001", "purpose": "login"})

    assert reply.status_code == 503
    assert reply.get_json()["error"]["code"] == "SERVICE_UNAVAILABLE"


def test_an_unavailable_instance_makes_the_next_call_ask_consul_again() -> None:
    class Picks:
        consul = object()
        asked = 0

        def target(self, service: str) -> str:
            Picks.asked += 1
            return f"10.0.0.{Picks.asked}:50051"

    fakes = FakeServices()
    fakes.user.SendSmsCode.error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused")
    clients = ServiceClients(Picks(), timeout_seconds=1,  # type: ignore[arg-type]
                             channel_factory=lambda service, _target: FakeChannel(fakes, service))
    first = clients.channel("user")

    with pytest.raises(grpc.RpcError):
        clients.get(UserServiceStub).SendSmsCode(user_pb2.SendSmsCodeRequest(phone="13900000001"))

    assert clients.channel("user") is not first
    assert Picks.asked == 2


class SlowForAnalytics:
    """Consul that hangs on analytics lookups until released."""

    consul = object()

    def __init__(self) -> None:
        self.analytics_asked = threading.Event()
        self.release = threading.Event()

    def target(self, service: str) -> str:
        if service == "analytics":
            self.analytics_asked.set()
            self.release.wait(timeout=10)
        return f"{service}.invalid:50051"


def test_a_stub_is_built_once_per_channel_and_again_once_the_channel_is_forgotten() -> None:
    class Picks:
        consul = object()

        def target(self, service: str) -> str:
            return "10.0.0.1:50051"

    fakes = FakeServices()
    clients = ServiceClients(Picks(), timeout_seconds=1,  # type: ignore[arg-type]
                             channel_factory=lambda service, _target: FakeChannel(fakes, service))
    first = clients.get(UserServiceStub)

    assert clients.get(UserServiceStub) is first
    clients.forget_discovered()
    assert clients.get(UserServiceStub) is not first


def test_a_slow_consul_lookup_for_one_service_does_not_hold_up_channels_to_others() -> None:
    discovery = SlowForAnalytics()
    clients = ServiceClients(discovery, timeout_seconds=1)  # type: ignore[arg-type]
    lookups = concurrent.futures.ThreadPoolExecutor(2)
    try:
        analytics_channel = lookups.submit(clients.channel, "analytics")
        assert discovery.analytics_asked.wait(timeout=5)  # analytics is now waiting on Consul

        user_channel = lookups.submit(clients.channel, "user")

        assert user_channel.result(timeout=5) is clients.channel("user")
        assert not analytics_channel.done()
    finally:
        discovery.release.set()  # before the shutdown, which waits for the analytics lookup
        lookups.shutdown(wait=True)
        clients.close()
