"""The gateway app built from its factory, with the one fake of every gRPC service (tests/fixtures/fake_services.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


# The staff of the console's browser tests: one member per role, known by phone; any other phone is a shopper.
STAFF_PHONES = {"admin": "13800000001", "operator": "13800000002", "customer_service": "13800000003",
                "finance": "13800000004"}
SHOPPER_PHONE = "13900000002"


@pytest.fixture
def log_in_as(page: Any, gateway_url: str, clients: FakeServices, mint: Callable[..., str]) -> Callable[[str], None]:
    """log_in_as(role): the console's login form submitted by the staff member of that role (STAFF_PHONES), or by a
    shopper for any other name, the fake user service answering as the real one would; returns once the console
    answered (its sections shown, or the login refused)."""
    def login(message: user_pb2.LoginWithPasswordRequest) -> user_pb2.LoginResponse:
        roles = [role for role, phone in STAFF_PHONES.items() if phone == message.phone]
        return user_pb2.LoginResponse(access_token=mint(user_id=7, roles=",".join(roles)), refresh_token="refresh",
                                      expires_in=900, user=user_pb2.User(id=7, phone_masked="138****0003",
                                                                          nickname="客服小王", roles=roles))
    clients.user.LoginWithPassword.answer = login

    def log_in(role: str) -> None:
        page.goto(f"{gateway_url}/admin/")
        page.fill("#phone", STAFF_PHONES.get(role, SHOPPER_PHONE))
        page.fill("#password", "staff-password-1")
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#sections:not([hidden]), #login-error:not(:empty)")
    return log_in
