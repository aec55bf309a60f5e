"""The member service's database on PostgreSQL, shared by its integration tests."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient
from mall.member.v1 import member_pb2, member_pb2_grpc
from sqlalchemy.engine import Engine

from gateway.app import create_app
from gateway.config import GatewaySettings
from services.common.config import ServiceSettings
from services.common.grpc_server import create_server, registration
from services.member.db import SqlMemberUnitOfWork, start_mappers
from services.member.grpc_api import MemberServicer
from services.user.domain import User
from services.user.tokens import TokenIssuer
from tests.fixtures.keys import JwtKeys


@pytest.fixture
def engine(service_engine: Callable[[str], Engine]) -> Engine:
    return service_engine("member")


@pytest.fixture
def uow(engine: Engine) -> Callable[[], SqlMemberUnitOfWork]:
    start_mappers()
    return functools.partial(SqlMemberUnitOfWork, engine, "member")


@contextmanager
def gateway_over(servicer: MemberServicer, jwt_keys: JwtKeys) -> Iterator[FlaskClient]:
    """The gateway app whose member service is `servicer` behind a real gRPC server (port 0)."""
    settings = ServiceSettings.from_env("member", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                   "MEMBER_GRPC_LISTEN": "127.0.0.1:0"})
    server, port = create_server(settings, [registration(member_pb2, member_pb2_grpc, "MemberService", servicer)])
    server.start()
    app = create_app(GatewaySettings(jwt_public_key_pem=jwt_keys.public_pem, consul_http_addr=None,
                                     grpc_timeout_seconds=5, log_level="INFO",
                                     environ={"MEMBER_GRPC_TARGET": f"127.0.0.1:{port}"}))
    try:
        yield app.test_client()
    finally:
        app.extensions["clients"].close()
        server.stop(grace=None)


@pytest.fixture
def bearer(jwt_keys: JwtKeys) -> Callable[..., dict[str, str]]:
    """bearer(user_id, roles="") → the Authorization header of a genuine access token."""
    issuer = TokenIssuer(jwt_keys.private_pem, access_ttl_seconds=300, refresh_ttl_seconds=600)

    def header(user_id: int, roles: str = "") -> dict[str, str]:
        user = User(phone="13800000000", created_at=datetime.now(UTC), roles=roles, id=user_id)
        return {"Authorization": f"Bearer {issuer.access_token(user, user.role_set, datetime.now(UTC))}"}
    return header
