"""The gateway app built from its factory, with the one fake of every gRPC service (tests/fixtures/fake_services.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from mall.user.v1 import user_pb2

from gateway.app import create_app
from gateway.config import GatewaySettings
from tests.fixtures.fake_services import TIMEOUT_SECONDS, FakeServices

GRPC_TIMEOUT_SECONDS = TIMEOUT_SECONDS


@pytest.fixture
def clients(fake_services: FakeServices) -> FakeServices:
    fake_services.user.SendSmsCode.reply = user_pb2.SendSmsCodeResponse(expires_in=300, resend_after=60)
    return fake_services


@pytest.fixture
def settings(public_pem: bytes) -> GatewaySettings:
    return GatewaySettings(jwt_public_key_pem=public_pem, consul_http_addr=None,
                           grpc_timeout_seconds=GRPC_TIMEOUT_SECONDS, log_level="INFO", environ={})


@pytest.fixture
def app(settings: GatewaySettings, clients: FakeServices) -> Flask:
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
