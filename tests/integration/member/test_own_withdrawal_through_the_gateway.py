"""Separation of duties through the whole stack: the gateway, a real member gRPC server, PostgreSQL. A finance staff
member who withdraws from their own wallet cannot approve it (403 OWN_REQUEST in the error format, nothing moved);
another finance staff member can."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from flask.testing import FlaskClient
from mall.member.v1 import member_pb2, member_pb2_grpc

from gateway.app import create_app
from gateway.config import GatewaySettings
from services.common.config import ServiceSettings
from services.common.grpc_server import create_server, registration
from services.member.channels import RechargeChannels
from services.member.db import SqlMemberUnitOfWork
from services.member.domain import PLATFORM, Account, transfer
from services.member.grpc_api import MemberServicer
from services.user.domain import User
from services.user.tokens import TokenIssuer
from tests.fakes import FakeCategories, FakePhones, SimulatedPayout
from tests.fixtures.keys import JwtKeys

pytestmark = pytest.mark.integration

CLERK, COLLEAGUE = 901, 902  # finance staff; the clerk also shops, with a wallet


@pytest.fixture
def gateway(uow: Callable[[], SqlMemberUnitOfWork], jwt_keys: JwtKeys) -> Iterator[FlaskClient]:
    """The gateway app, its member service a real gRPC server on PostgreSQL."""
    settings = ServiceSettings.from_env("member", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                   "MEMBER_GRPC_LISTEN": "127.0.0.1:0"})
    servicer = MemberServicer(uow, SimulatedPayout(), RechargeChannels({}),
                              categories=FakeCategories(), phones=FakePhones())
    server, port = create_server(settings, [registration(member_pb2, member_pb2_grpc, "MemberService", servicer)])
    server.start()
    app = create_app(GatewaySettings(jwt_public_key_pem=jwt_keys.public_pem, consul_http_addr=None,
                                     grpc_timeout_seconds=5, log_level="INFO",
                                     environ={"MEMBER_GRPC_TARGET": f"127.0.0.1:{port}"}))
    yield app.test_client()
    app.extensions["clients"].close()
    server.stop(grace=None)


@pytest.fixture
def bearer(jwt_keys: JwtKeys) -> Callable[..., dict[str, str]]:
    issuer = TokenIssuer(jwt_keys.private_pem, access_ttl_seconds=300, refresh_ttl_seconds=600)

    def header(user_id: int, roles: str = "") -> dict[str, str]:
        user = User(phone="13800000000", created_at=datetime.now(UTC), roles=roles, id=user_id)
        return {"Authorization": f"Bearer {issuer.access_token(user, user.role_set, datetime.now(UTC))}"}
    return header


def balances(uow: Callable[[], SqlMemberUnitOfWork], user_id: int) -> tuple[int, int]:
    with uow() as work:
        found = work.ledger.balance(user_id, Account.AVAILABLE), work.ledger.balance(user_id, Account.PENDING)
        work.commit()
    return found


def test_finance_staff_cannot_approve_their_own_withdrawal_but_a_colleague_can(
        gateway: FlaskClient, uow: Callable[[], SqlMemberUnitOfWork], bearer: Callable[..., dict[str, str]]) -> None:
    with uow() as work:
        work.ledger.post(transfer(f"seed:{CLERK}", "recharge", "seed", amount=10_000,
                                  source=(PLATFORM, Account.CLEARING), target=(CLERK, Account.AVAILABLE)),
                         datetime.now(UTC))
        work.commit()
    clerk = bearer(CLERK, "finance")
    asked = gateway.post("/api/v1/member/withdrawals", json={"amount_fen": 6_000},
                         headers={**clerk, "Idempotency-Key": "own-1"})
    assert asked.status_code == 201, asked.get_json()
    decision = f"/api/v1/admin/withdrawals/{asked.get_json()['id']}/decision"

    own = gateway.post(decision, json={"approve": True, "note": "ok"}, headers=clerk)

    error = own.get_json()["error"]
    assert (own.status_code, error["code"], bool(error["request_id"])) == (403, "OWN_REQUEST", True)
    listed = gateway.get("/api/v1/member/withdrawals", headers=clerk).get_json()["items"]
    assert ([item["status"] for item in listed], balances(uow, CLERK)) == (["PENDING_REVIEW"], (4_000, 6_000))

    approved = gateway.post(decision, json={"approve": True, "note": "ok"}, headers=bearer(COLLEAGUE, "finance"))

    assert (approved.status_code, approved.get_json()["status"]) == (200, "PAID")
    assert balances(uow, CLERK) == (4_000, 0)
