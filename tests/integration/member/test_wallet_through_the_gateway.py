"""Any shopper reads their wallet (GET /member/wallet), through the gateway, a real member gRPC server and PostgreSQL:
a WeChat-only shopper cannot join (M1 needs a phone) and GET /member is 404 for them, yet they may recharge; a member
reads there the same numbers as in GET /member."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from services.common.db import utcnow
from services.member import service
from services.member.db import SqlMemberUnitOfWork
from services.member.grpc_api import MemberServicer
from tests.fakes import FakeCategories, FakePhones, SimulatedPayment, SimulatedPayout
from tests.fixtures.keys import JwtKeys
from tests.integration.member.conftest import gateway_over

pytestmark = pytest.mark.integration

WECHAT_ONLY, WITH_PHONE = 931, 932


@pytest.fixture
def gateway(uow: Callable[[], SqlMemberUnitOfWork], jwt_keys: JwtKeys) -> Iterator[FlaskClient]:
    servicer = MemberServicer(uow, SimulatedPayout(), SimulatedPayment(), categories=FakeCategories(),
                              phones=FakePhones(wechat_only=[WECHAT_ONLY]))
    with gateway_over(servicer, jwt_keys) as client:
        yield client


def paid_recharge(gateway: FlaskClient, uow: Callable[[], SqlMemberUnitOfWork], headers: dict[str, str],
                  amount_fen: int) -> dict[str, Any]:
    """A WeChat Pay recharge started through the gateway, then credited as its verified notify credits it."""
    started = gateway.post("/api/v1/member/recharges", json={"amount_fen": amount_fen, "channel": "wechat"},
                           headers={**headers, "Idempotency-Key": f"r-{amount_fen}"})
    assert started.status_code == 201, started.get_json()
    no = started.get_json()["recharge_no"]
    service.credit_recharge(uow(), recharge_no=no, paid_fen=amount_fen, channel_txn_id=f"T-{no}", channel="wechat",
                            now=utcnow())
    return gateway.get(f"/api/v1/member/recharges/{no}", headers=headers).get_json()


def test_a_wechat_only_shopper_who_cannot_join_reads_the_10000_fen_they_recharged(
        gateway: FlaskClient, uow: Callable[[], SqlMemberUnitOfWork], bearer: Callable[..., dict[str, str]]) -> None:
    shopper = bearer(WECHAT_ONLY)
    recharge = paid_recharge(gateway, uow, shopper, 10_000)
    signup = gateway.post("/api/v1/member/signup", json={"channel": "self"}, headers=shopper)
    member = gateway.get("/api/v1/member", headers=shopper)

    wallet = gateway.get("/api/v1/member/wallet", headers=shopper)

    assert (recharge["status"], signup.status_code, signup.get_json()["error"]["code"], member.status_code) == (
        "PAID", 422, "PHONE_REQUIRED", 404)
    assert (wallet.status_code, wallet.get_json()) == (200, {"balance_fen": 10_000, "pending_fen": 0, "bonus_fen": 0})


def test_a_member_reads_in_their_wallet_the_numbers_get_member_shows(
        gateway: FlaskClient, uow: Callable[[], SqlMemberUnitOfWork], bearer: Callable[..., dict[str, str]]) -> None:
    member = bearer(WITH_PHONE)
    assert gateway.post("/api/v1/member/signup", json={"channel": "self"}, headers=member).status_code == 200
    paid_recharge(gateway, uow, member, 50_000)  # earns 5,000 fen of bonus credit
    # withdrawing 2/5 of the recharge forfeits 2/5 of its bonus: 2,000 of 5,000
    asked = gateway.post("/api/v1/member/withdrawals", json={"amount_fen": 20_000},
                         headers={**member, "Idempotency-Key": "w-1"})
    assert asked.status_code == 201, asked.get_json()

    wallet = gateway.get("/api/v1/member/wallet", headers=member).get_json()
    account = gateway.get("/api/v1/member", headers=member).get_json()

    assert wallet == {key: account[key] for key in ("balance_fen", "pending_fen", "bonus_fen")} == {
        "balance_fen": 30_000, "pending_fen": 20_000, "bonus_fen": 3_000}
