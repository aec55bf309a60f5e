"""A withdrawal paid by a WeChat Pay merchant transfer that the shopper must confirm, through the whole stack: the
gateway, a real member gRPC server, PostgreSQL and the simulator's WeChat Pay, which answers a transfer
WAIT_USER_CONFIRM with a package_info as WeChat Pay does. The withdrawal stays PAYING, its owner alone given what
wx.requestMerchantTransfer confirms it with, until the shopper confirms (then the payout job pays it, once) or WeChat
Pay cancels it unconfirmed (then the amount is back in the wallet, once)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from mall.member.v1 import member_pb2, member_pb2_grpc

from gateway.app import create_app
from gateway.config import GatewaySettings
from services.common.config import ServiceSettings
from services.common.db import utcnow
from services.common.grpc_server import create_server, registration
from services.common.wechatpay import WechatPay
from services.member import service
from services.member.channels import RechargeChannels, WechatTransferPayout
from services.member.db import SqlMemberUnitOfWork
from services.member.domain import PLATFORM, Account, transfer
from services.member.grpc_api import MemberServicer
from services.user.domain import User
from services.user.tokens import TokenIssuer
from tests.fakes import FakeCategories, FakePhones
from tests.fixtures.keys import JwtKeys
from tests.fixtures.simulator import RunningSimulator

pytestmark = pytest.mark.integration

SHOPPER, STRANGER, FINANCE = 6161, 6162, 906


class Payers:
    """The shopper's WeChat and verified real name, as the user service gives them to the member service."""

    def __init__(self, openid: str, real_name: str = "张三") -> None:
        self.openid, self.real_name = openid, real_name

    def payer_openid(self, user_id: int) -> str:
        return self.openid if user_id == SHOPPER else ""

    def payee_name(self, user_id: int) -> str:
        return self.real_name if user_id == SHOPPER else ""


class Shop:
    """The gateway over a member gRPC server paying withdrawals by the simulator's WeChat Pay merchant transfers."""

    def __init__(self, client: FlaskClient, uow: Callable[[], SqlMemberUnitOfWork], payout: WechatTransferPayout,
                 simulator: RunningSimulator, openid: str, issuer: TokenIssuer) -> None:
        self.client, self.uow, self.payout, self.sim, self.openid = client, uow, payout, simulator.client, openid
        self.issuer = issuer

    def bearer(self, user_id: int, roles: str = "") -> dict[str, str]:
        user = User(phone="13800000000", created_at=datetime.now(UTC), roles=roles, id=user_id)
        return {"Authorization": f"Bearer {self.issuer.access_token(user, user.role_set, datetime.now(UTC))}"}

    def approved_withdrawal(self, amount_fen: int = 6_000) -> dict[str, Any]:
        """The shopper (4,000 fen more than `amount_fen`) asks to withdraw `amount_fen`; finance approves: the
        transfer is sent."""
        approved = self.approve(self.asked_withdrawal(amount_fen))
        assert approved.status_code == 200, approved.get_json()
        return approved.get_json()

    def asked_withdrawal(self, amount_fen: int) -> int:
        with self.uow() as work:
            work.ledger.post(transfer(f"seed:{SHOPPER}", "recharge", "seed", amount=amount_fen + 4_000,
                                      source=(PLATFORM, Account.CLEARING), target=(SHOPPER, Account.AVAILABLE)),
                             utcnow())
            work.commit()
        asked = self.client.post("/api/v1/member/withdrawals", json={"amount_fen": amount_fen},
                                 headers={**self.bearer(SHOPPER), "Idempotency-Key": "w-1"})
        assert asked.status_code == 201, asked.get_json()
        return int(asked.get_json()["id"])

    def approve(self, withdrawal_id: int) -> Any:
        return self.client.post(f"/api/v1/admin/withdrawals/{withdrawal_id}/decision",
                                json={"approve": True, "note": "ok"}, headers=self.bearer(FINANCE, "finance"))

    def mine(self, withdrawal_id: int, user_id: int = SHOPPER) -> Any:
        return self.client.get(f"/api/v1/member/withdrawals/{withdrawal_id}", headers=self.bearer(user_id))

    def settle(self, minutes: int = 2) -> int:
        return service.settle_payouts(self.uow, self.payout, now=utcnow() + timedelta(minutes=minutes))

    def balances(self) -> tuple[int, int]:
        with self.uow() as work:
            found = work.ledger.balance(SHOPPER, Account.AVAILABLE), work.ledger.balance(SHOPPER, Account.PENDING)
            work.commit()
        return found

    def transfers(self) -> list[tuple[str, int, str]]:
        return [(t["out_bill_no"], t["transfer_amount"], t["state"]) for t in self.sim.wechatpay_transfers(self.openid)]

    def payers(self) -> Payers:
        return self.payout.payers  # type: ignore[return-value]


@pytest.fixture
def shop(uow: Callable[[], SqlMemberUnitOfWork], jwt_keys: JwtKeys, simulator: RunningSimulator) -> Iterator[Shop]:
    openid = f"o-confirm-{uuid.uuid4().hex[:10]}"
    payout = WechatTransferPayout(WechatPay(simulator.wechatpay_settings()), Payers(openid))
    settings = ServiceSettings.from_env("member", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                   "MEMBER_GRPC_LISTEN": "127.0.0.1:0"})
    servicer = MemberServicer(uow, payout, RechargeChannels({}), categories=FakeCategories(), phones=FakePhones())
    server, port = create_server(settings, [registration(member_pb2, member_pb2_grpc, "MemberService", servicer)])
    server.start()
    app = create_app(GatewaySettings(jwt_public_key_pem=jwt_keys.public_pem, consul_http_addr=None,
                                     grpc_timeout_seconds=5, log_level="INFO",
                                     environ={"MEMBER_GRPC_TARGET": f"127.0.0.1:{port}"}))
    issuer = TokenIssuer(jwt_keys.private_pem, access_ttl_seconds=300, refresh_ttl_seconds=600)
    yield Shop(app.test_client(), uow, payout, simulator, openid, issuer)
    app.extensions["clients"].close()
    server.stop(grace=None)


def test_a_withdrawal_waits_for_the_shopper_to_confirm_its_transfer_and_is_paid_once_they_do(shop: Shop) -> None:
    approved = shop.approved_withdrawal()
    no, withdrawal_id = approved["withdrawal_no"], approved["id"]
    [bill] = shop.sim.wechatpay_transfers(shop.openid)
    merchant = shop.payout.wechat.settings
    waiting, strangers = shop.mine(withdrawal_id), shop.mine(withdrawal_id, user_id=STRANGER)
    listed = shop.client.get("/api/v1/member/withdrawals", headers=shop.bearer(SHOPPER)).get_json()["items"]
    staff = shop.client.get("/api/v1/admin/withdrawals?status=PAYING",
                            headers=shop.bearer(FINANCE, "finance")).get_json()["items"]
    not_yet = shop.settle()
    held = shop.balances()

    confirmed = shop.sim.wechatpay_transfer_confirm(no, waiting.get_json()["wx_transfer_confirm"]["package"])
    ended = [shop.settle(), shop.settle()]
    paid = shop.mine(withdrawal_id).get_json()

    confirm = {"mch_id": merchant.mchid, "app_id": merchant.appid, "package": bill["package_info"]}
    assert (approved["status"], approved["awaits_shopper"], bill["state"]) == ("PAYING", True, "WAIT_USER_CONFIRM")
    assert "wx_transfer_confirm" not in approved  # finance's answer: never the shopper's package
    assert (waiting.status_code, waiting.get_json()["wx_transfer_confirm"]) == (200, confirm)
    assert [item["wx_transfer_confirm"] for item in listed] == [confirm]
    assert (strangers.status_code, strangers.get_json()["error"]["code"]) == (404, "WITHDRAWAL_NOT_FOUND")
    assert [(item["id"], item["awaits_shopper"], "wx_transfer_confirm" in item) for item in staff] == [
        (withdrawal_id, True, False)]
    assert (not_yet, held) == (0, (4_000, 6_000))
    assert (confirmed["state"], ended) == ("SUCCESS", [1, 0])
    assert (paid["status"], paid["awaits_shopper"], paid["wx_transfer_confirm"]) == ("PAID", False, None)
    assert shop.balances() == (4_000, 0)
    assert shop.transfers() == [(no, 6_000, "SUCCESS")]  # one transfer, ever
    with shop.uow() as work:
        assert work.ledger.check()[1] == []


def test_a_transfer_never_confirmed_that_wechat_pay_cancels_gives_the_amount_back_once(shop: Shop) -> None:
    approved = shop.approved_withdrawal()
    no, withdrawal_id = approved["withdrawal_no"], approved["id"]
    shop.sim.wechatpay_transfer_settle(no, "CANCELLED")  # 24 hours unconfirmed

    ended = [shop.settle(minutes=24 * 60 + 5) for _ in range(3)]
    failed = shop.mine(withdrawal_id).get_json()
    entries = shop.client.get("/api/v1/member/ledger", headers=shop.bearer(SHOPPER)).get_json()["items"]

    assert ended == [1, 0, 0]
    assert (failed["status"], failed["awaits_shopper"], failed["wx_transfer_confirm"]) == ("FAILED", False, None)
    assert shop.balances() == (10_000, 0)
    assert sorted((e["kind"], e["account"], e["amount_fen"]) for e in entries) == [
        ("recharge", "available", 10_000), ("withdrawal_failed", "available", 6_000),
        ("withdrawal_failed", "pending", -6_000), ("withdrawal_requested", "available", -6_000),
        ("withdrawal_requested", "pending", 6_000)]
    assert shop.transfers() == [(no, 6_000, "CANCELLED")]


def test_a_withdrawal_of_two_thousand_yuan_names_its_payee_to_wechat_pay_and_is_paid_once_confirmed(shop: Shop) -> None:
    approved = shop.approved_withdrawal(200_000)
    [bill] = shop.sim.wechatpay_transfers(shop.openid)

    shop.sim.wechatpay_transfer_confirm(approved["withdrawal_no"], shop.mine(approved["id"]).get_json()[
        "wx_transfer_confirm"]["package"])
    shop.settle()

    assert (approved["status"], bill["transfer_amount"], bill["user_name"]) == ("PAYING", 200_000, "张三")
    assert shop.mine(approved["id"]).get_json()["status"] == "PAID"
    assert shop.balances() == (4_000, 0)


def test_a_two_thousand_yuan_withdrawal_of_a_shopper_without_a_verified_name_goes_back_to_review_unsent(
        shop: Shop) -> None:
    """Refused before anything is sent: finance is told why and may reject it, or approve it again once the shopper
    has verified their identity."""
    shop.payers().real_name = ""
    withdrawal_id = shop.asked_withdrawal(200_000)

    refused = shop.approve(withdrawal_id)
    state_then, balances_then, transfers_then = shop.mine(withdrawal_id).get_json()["status"], shop.balances(), \
        shop.transfers()
    shop.payers().real_name = "张三"  # the shopper verifies their identity
    approved = shop.approve(withdrawal_id)

    error = refused.get_json()["error"]
    assert (refused.status_code, error["code"]) == (422, "PAYOUT_FAILED")
    assert "not verified their identity" in error["message"]
    assert (state_then, balances_then, transfers_then) == ("PENDING_REVIEW", (4_000, 200_000), [])
    assert (approved.status_code, approved.get_json()["status"]) == (200, "PAYING")
    assert [t["user_name"] for t in shop.sim.wechatpay_transfers(shop.openid)] == ["张三"]


def test_a_withdrawal_over_a_days_limit_is_refused_with_nothing_moved(shop: Shop) -> None:
    with shop.uow() as work:
        work.ledger.post(transfer(f"seed:{SHOPPER}", "recharge", "seed", amount=600_000,
                                  source=(PLATFORM, Account.CLEARING), target=(SHOPPER, Account.AVAILABLE)), utcnow())
        work.commit()

    refused = shop.client.post("/api/v1/member/withdrawals", json={"amount_fen": 500_001},
                               headers={**shop.bearer(SHOPPER), "Idempotency-Key": "w-big"})

    error = refused.get_json()["error"]
    assert (refused.status_code, error["code"], error["details"]) == (422, "WITHDRAWAL_TOO_LARGE", {"max_fen": 500_000})
    assert shop.balances() == (600_000, 0)
