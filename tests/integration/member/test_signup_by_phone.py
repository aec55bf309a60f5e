"""Membership is by phone number (M1), through the whole stack: the gateway, a real member gRPC server on PostgreSQL
asking a user gRPC server, as the member service itself (user.HasPhone), whether the caller bound a phone. A WeChat-only account is refused
422 PHONE_REQUIRED and joins nothing; a user service that does not answer is 503 USER_UNAVAILABLE."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import grpc
import pytest
from flask.testing import FlaskClient
from mall.member.v1 import member_pb2, member_pb2_grpc
from mall.user.v1 import user_pb2, user_pb2_grpc

from gateway.app import create_app
from gateway.config import GatewaySettings
from services.common.auth import require_service
from services.common.clients import ServiceClients
from services.common.config import Env, ServiceSettings
from services.common.discovery import Discovery
from services.common.grpc_server import create_server, registration
from services.member.channels import RechargeChannels
from services.member.db import SqlMemberUnitOfWork
from services.member.grpc_api import MemberServicer
from services.member.phones import GrpcBuyerPhones
from services.user.domain import User
from services.user.tokens import TokenIssuer
from tests.fakes import FakeCategories, SimulatedPayout
from tests.fixtures.keys import JwtKeys, service_token

pytestmark = pytest.mark.integration

WITH_PHONE, WECHAT_ONLY = 911, 912


class Profiles(user_pb2_grpc.UserServiceServicer):
    """The user service as far as HasPhone, which answers the member service alone: a phone bound but for
    WECHAT_ONLY."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def HasPhone(self, request: user_pb2.HasPhoneRequest, context: grpc.ServicerContext) -> user_pb2.HasPhoneResponse:
        require_service("member")
        self.asked.append(request.user_id)
        return user_pb2.HasPhoneResponse(has_phone=request.user_id != WECHAT_ONLY)


@pytest.fixture
def profiles() -> Profiles:
    return Profiles()


@pytest.fixture
def user_server(jwt_keys: JwtKeys, profiles: Profiles) -> Iterator[tuple[grpc.Server, int]]:
    settings = ServiceSettings.from_env("user", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                 "USER_GRPC_LISTEN": "127.0.0.1:0"})
    server, port = create_server(settings, [registration(user_pb2, user_pb2_grpc, "UserService", profiles)])
    server.start()
    yield server, port
    server.stop(grace=None)


@pytest.fixture
def gateway(uow: Callable[[], SqlMemberUnitOfWork], jwt_keys: JwtKeys,
            user_server: tuple[grpc.Server, int]) -> Iterator[FlaskClient]:
    """The gateway app, its member service a real gRPC server on PostgreSQL asking the user server above."""
    clients = ServiceClients(Discovery(None, Env({"USER_GRPC_TARGET": f"127.0.0.1:{user_server[1]}"})), 2,
                             service_token=service_token(jwt_keys, "member"))
    settings = ServiceSettings.from_env("member", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                   "MEMBER_GRPC_LISTEN": "127.0.0.1:0"})
    servicer = MemberServicer(uow, SimulatedPayout(), RechargeChannels({}), categories=FakeCategories(),
                              phones=GrpcBuyerPhones(clients))
    server, port = create_server(settings, [registration(member_pb2, member_pb2_grpc, "MemberService", servicer)])
    server.start()
    app = create_app(GatewaySettings(jwt_public_key_pem=jwt_keys.public_pem, consul_http_addr=None,
                                     grpc_timeout_seconds=5, log_level="INFO",
                                     environ={"MEMBER_GRPC_TARGET": f"127.0.0.1:{port}"}))
    yield app.test_client()
    app.extensions["clients"].close()
    server.stop(grace=None)
    clients.close()


@pytest.fixture
def bearer(jwt_keys: JwtKeys) -> Callable[[int], dict[str, str]]:
    issuer = TokenIssuer(jwt_keys.private_pem, access_ttl_seconds=300, refresh_ttl_seconds=600)

    def header(user_id: int) -> dict[str, str]:
        user = User(phone=None, created_at=datetime.now(UTC), id=user_id)
        return {"Authorization": f"Bearer {issuer.access_token(user, user.role_set, datetime.now(UTC))}"}
    return header


def member_of(uow: Callable[[], SqlMemberUnitOfWork], user_id: int) -> bool:
    with uow() as work:
        member = work.members.get(user_id)
        return member is not None and member.is_member


def test_a_wechat_only_shopper_is_refused_422_phone_required_and_joins_nothing(
        gateway: FlaskClient, bearer: Callable[[int], dict[str, str]], uow: Callable[[], SqlMemberUnitOfWork],
        profiles: Profiles) -> None:
    refused = gateway.post("/api/v1/member/signup", json={"channel": "self"}, headers=bearer(WECHAT_ONLY))

    error = refused.get_json()["error"]
    assert (refused.status_code, error["code"], error["details"], member_of(uow, WECHAT_ONLY), profiles.asked) == (
        422, "PHONE_REQUIRED", {"phone": "required"}, False, [WECHAT_ONLY])


def test_a_shopper_with_a_bound_phone_joins(gateway: FlaskClient, bearer: Callable[[int], dict[str, str]],
                                            uow: Callable[[], SqlMemberUnitOfWork], profiles: Profiles) -> None:
    joined = gateway.post("/api/v1/member/signup", json={"channel": "self"}, headers=bearer(WITH_PHONE))

    assert (joined.status_code, joined.get_json()["channel"], member_of(uow, WITH_PHONE), profiles.asked) == (
        200, "self", True, [WITH_PHONE])


def test_while_the_user_service_does_not_answer_signup_is_503_and_joins_nothing(
        gateway: FlaskClient, bearer: Callable[[int], dict[str, str]], uow: Callable[[], SqlMemberUnitOfWork],
        user_server: tuple[grpc.Server, int]) -> None:
    user_server[0].stop(grace=None)

    refused = gateway.post("/api/v1/member/signup", json={"channel": "self"}, headers=bearer(WITH_PHONE))

    assert (refused.status_code, refused.get_json()["error"]["code"], member_of(uow, WITH_PHONE)) == (
        503, "USER_UNAVAILABLE", False)
