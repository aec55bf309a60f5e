"""The gateway app built from its factory, with the one fake of every gRPC service (tests/fixtures/fake_services.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from flask import Flask
from flask.testing import FlaskClient
from mall.user.v1 import user_pb2

import gateway.ratelimit
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


PASSWORD_OWNER_PHONE, PASSWORD_OWNER_PASSWORD = "13800000001", "right-pass-1"


@pytest.fixture
def password_login(client: FlaskClient, clients, rpc_error):  # type: ignore[no-untyped-def]
    """password_login(ip, password=wrong) → response of a password login to PASSWORD_OWNER_PHONE from `ip`; the
    fake user service knows PASSWORD_OWNER_PASSWORD only; `.calls` are the passwords it was asked about."""
    calls = []

    def user_service(message):  # type: ignore[no-untyped-def]
        calls.append(message.password)
        if (message.phone, message.password) != (PASSWORD_OWNER_PHONE, PASSWORD_OWNER_PASSWORD):
            raise rpc_error(grpc.StatusCode.UNAUTHENTICATED, "phone or password is wrong")
        return user_pb2.LoginResponse(access_token="t", refresh_token="r", expires_in=900)

    clients.user.LoginWithPassword.answer = user_service

    def login(ip: str, password: str = "guess-123"):  # type: ignore[no-untyped-def]
        return client.post("/api/v1/auth/login/password", json={"phone": PASSWORD_OWNER_PHONE, "password": password},
                           environ_base={"REMOTE_ADDR": ip})

    login.calls = calls  # type: ignore[attr-defined]
    return login


class FrozenClock:
    """The rate limiter's clock, moved only by the test: `.now` (seconds since the epoch)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    """The rate limiter's clock, held at a fixed instant (2026-11-30) until the test moves `.now`."""
    frozen = FrozenClock(1_796_000_000.0)
    monkeypatch.setattr(gateway.ratelimit, "clock", frozen)
    return frozen


@pytest.fixture
def bearer(mint: Callable[..., str]) -> Callable[..., dict[str, str]]:
    """bearer(roles="", user_id=42): an Authorization header with a genuine access token."""
    def _bearer(roles: str = "", user_id: int = 42) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint(user_id=user_id, roles=roles)}"}
    return _bearer


def history_item(spec: dict[str, Any], path: str, method: str = "get") -> str:
    """The name of the schema of one step of the `history` that the OpenAPI document `spec` says the route answers."""
    reply = spec["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    schemas = spec["components"]["schemas"]
    return schemas[reply.rsplit("/", 1)[1]]["properties"]["history"]["items"]["$ref"].rsplit("/", 1)[1]


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
