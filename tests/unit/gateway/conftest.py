"""The gateway app built from its factory, with in-process fakes standing in for the gRPC services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from mall.analytics.v1 import analytics_pb2
from mall.user.v1 import user_pb2

from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.grpc_clients import ServiceClients
from services.common.config import SERVICES, Env
from services.common.discovery import Discovery

GRPC_TIMEOUT_SECONDS = 2.5


@dataclass
class Call:
    message: Any
    timeout: float
    metadata: dict[str, str]


@dataclass
class FakeRpc:
    """One stub method: records each call and answers with `reply`, or raises `error` when set."""

    reply: Any = None
    error: BaseException | None = None
    calls: list[Call] = field(default_factory=list)

    def __call__(self, message: Any, *, timeout: float, metadata: list[tuple[str, str]]) -> Any:
        self.calls.append(Call(message, timeout, dict(metadata)))
        if self.error is not None:
            raise self.error
        return self.reply


@dataclass
class FakeUserService:
    SendSmsCode: FakeRpc = field(default_factory=lambda: FakeRpc(
        user_pb2.SendSmsCodeResponse(expires_in=300, resend_after=60)))
    LoginWithSms: FakeRpc = field(default_factory=FakeRpc)
    LoginWithPassword: FakeRpc = field(default_factory=FakeRpc)


@dataclass
class FakeAnalyticsService:
    GetOverview: FakeRpc = field(default_factory=lambda: FakeRpc(analytics_pb2.GetOverviewResponse()))


class FakeClients(ServiceClients):
    """The real ServiceClients.call (deadline and metadata) over fake stubs; no channel is ever opened."""

    user = None  # plain attributes here, instead of the base class's stub-making properties
    analytics = None

    def __init__(self) -> None:
        super().__init__(discovery=Discovery(None, Env({})), timeout_seconds=GRPC_TIMEOUT_SECONDS)
        self.user = FakeUserService()
        self.analytics = FakeAnalyticsService()
        self.statuses = {service: "SERVING" for service in SERVICES}

    def health(self, timeout_seconds: float = 1.0) -> dict[str, str]:
        return dict(self.statuses)

    def channel(self, service: str) -> Any:
        raise AssertionError(f"a unit test tried to open a gRPC channel to {service}")


@pytest.fixture
def clients() -> FakeClients:
    return FakeClients()


@pytest.fixture
def settings(public_pem: bytes) -> GatewaySettings:
    return GatewaySettings(jwt_public_key_pem=public_pem, consul_http_addr=None,
                           grpc_timeout_seconds=GRPC_TIMEOUT_SECONDS, log_level="INFO", environ={})


@pytest.fixture
def app(settings: GatewaySettings, clients: FakeClients) -> Flask:
    app = create_app(settings, clients)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def bearer(mint: Callable[..., str]) -> Callable[..., dict[str, str]]:
    """bearer(roles="", user_id=42): an Authorization header with a genuine access token."""
    def _bearer(roles: str = "", user_id: int = 42) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint(user_id=user_id, roles=roles)}"}
    return _bearer
