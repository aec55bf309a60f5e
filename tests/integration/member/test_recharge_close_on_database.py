"""A shopper closing a recharge awaiting payment, through the member service's real gRPC server on PostgreSQL and the
simulator's WeChat Pay and Alipay: the channel closes the payment, the recharge is CLOSED and a new one may start in
its place; one the payer paid first is credited once and answered PAID; another shopper's is not found; a channel
that does not answer leaves it PENDING."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime

import grpc
import pytest
import requests
from mall.member.v1 import member_pb2 as pb
from mall.member.v1 import member_pb2_grpc
from sqlalchemy import Engine, func, select

from services.common.alipay import Alipay, AlipaySettings
from services.common.config import ServiceSettings
from services.common.grpc_server import create_server, from_grpc, registration
from services.common.outbox import outbox
from services.common.wechatpay import WechatPay
from services.member.channels import AlipayRecharge, RechargeChannels, WechatRecharge
from services.member.db import SqlMemberUnitOfWork, recharges
from services.member.domain import Account
from services.member.grpc_api import MemberServicer
from services.user.domain import User
from services.user.tokens import TokenIssuer
from tests.fakes import FakeCategories, FakePhones, SimulatedPayout
from tests.fixtures.keys import JwtKeys
from tests.fixtures.simulator import RunningSimulator

pytestmark = pytest.mark.integration

ALICE, BOB = 7171, 7172
LOST = "http://127.0.0.1:9/payments/notify"  # nothing listens: every notify the simulator sends is lost
DOWN = "http://127.0.0.1:9"                  # nothing listens: WeChat Pay is unreachable


class Payers:
    """Every shopper has a WeChat bound (their own openid)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def payer_openid(self, user_id: int) -> str:
        return f"{self.prefix}-{user_id}"

    def payee_name(self, user_id: int) -> str:
        return ""


class Shop:
    """The member gRPC server with the simulator's channels; the calls a shopper makes and what the books say."""

    def __init__(self, stub: member_pb2_grpc.MemberServiceStub, channels: RechargeChannels,
                 simulator: RunningSimulator, uow: Callable[[], SqlMemberUnitOfWork], engine: Engine,
                 issuer: TokenIssuer) -> None:
        self.stub, self.channels, self.sim, self.uow, self.engine = stub, channels, simulator, uow, engine
        self.issuer = issuer

    def caller(self, user_id: int) -> list[tuple[str, str]]:
        user = User(phone="13800000000", created_at=datetime.now(UTC), roles="", id=user_id)
        return [("authorization", f"Bearer {self.issuer.access_token(user, user.role_set, datetime.now(UTC))}")]

    def recharge(self, amount_fen: int = 5_000, channel: str = "wechat", user_id: int = ALICE) -> pb.Recharge:
        return self.stub.CreateRecharge(pb.CreateRechargeRequest(
            amount_fen=amount_fen, channel=channel, idempotency_key=uuid.uuid4().hex), metadata=self.caller(user_id))

    def close(self, recharge_no: str, user_id: int = ALICE) -> pb.Recharge:
        return self.stub.CloseRecharge(pb.CloseRechargeRequest(recharge_no=recharge_no), metadata=self.caller(user_id))

    def refused(self, call: Callable[[], object]) -> tuple[grpc.StatusCode, str, dict[str, object]]:
        with pytest.raises(grpc.RpcError) as failed:
            call()
        status, code, _, details = from_grpc(failed.value)
        return status, code, details

    def status(self, recharge_no: str) -> str:
        with self.engine.connect() as connection:
            return connection.execute(select(recharges.c.status).where(
                recharges.c.recharge_no == recharge_no)).scalar_one()

    def wechat_state(self, recharge_no: str) -> str:
        return str(self.sim.client.wechatpay_order(recharge_no)["trade_state"])

    def wallet(self, user_id: int = ALICE) -> tuple[int, int, int]:
        """(available fen, bonus fen, member-recharged events)."""
        with self.uow() as work:
            balances = work.ledger.balance(user_id, Account.AVAILABLE), work.ledger.balance(user_id, Account.BONUS)
            work.commit()
        with self.engine.connect() as connection:
            events = connection.execute(select(func.count()).select_from(outbox).where(
                outbox.c.event_type == "member-recharged", outbox.c.aggregate_id == str(user_id))).scalar_one()
        return (*balances, events)

    def wechat_down(self) -> None:
        """WeChat Pay stops answering: its adapter now aims at a port nothing listens on."""
        wechat: WechatRecharge = self.channels.adapters["wechat"]  # type: ignore[assignment]
        self.channels.adapters["wechat"] = WechatRecharge(
            WechatPay(replace(wechat.wechat.settings, api_base=DOWN, timeout_seconds=1)), wechat.payers, LOST)


@pytest.fixture
def shop(uow: Callable[[], SqlMemberUnitOfWork], engine: Engine, jwt_keys: JwtKeys,
         simulator: RunningSimulator) -> Iterator[Shop]:
    alipay_settings = AlipaySettings.from_env(simulator.env(), "test")
    assert alipay_settings is not None
    channels = RechargeChannels({
        "wechat": WechatRecharge(WechatPay(simulator.wechatpay_settings()), Payers(f"o-close-{uuid.uuid4().hex[:8]}"),
                                 LOST),
        "alipay": AlipayRecharge(Alipay(alipay_settings), LOST)})
    servicer = MemberServicer(uow, SimulatedPayout(), channels, categories=FakeCategories(), phones=FakePhones())
    settings = ServiceSettings.from_env("member", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                   "MEMBER_GRPC_LISTEN": "127.0.0.1:0"})
    server, port = create_server(settings, [registration(pb, member_pb2_grpc, "MemberService", servicer)])
    server.start()
    issuer = TokenIssuer(jwt_keys.private_pem, access_ttl_seconds=300, refresh_ttl_seconds=600)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield Shop(member_pb2_grpc.MemberServiceStub(channel), channels, simulator, uow, engine, issuer)
    server.stop(grace=None)


def test_three_pending_recharges_refuse_a_fourth_until_one_is_closed_at_wechat_pay(shop: Shop) -> None:
    started = [shop.recharge(5_000 + n).recharge_no for n in range(3)]
    refused = shop.refused(lambda: shop.recharge(6_000))

    closed = shop.close(started[0])
    fourth = shop.recharge(6_000)
    listed = shop.stub.ListMyRecharges(pb.ListRechargesRequest(status="CLOSED", limit=20),
                                       metadata=shop.caller(ALICE))

    assert refused == (grpc.StatusCode.FAILED_PRECONDITION, "TOO_MANY_PENDING_RECHARGES",
                       {"pending_recharges": 3, "limit": 3})
    assert (closed.recharge_no, closed.status, shop.wechat_state(started[0])) == (started[0], "CLOSED", "CLOSED")
    assert [shop.wechat_state(no) for no in started[1:]] == ["NOTPAY", "NOTPAY"]
    assert (fourth.status, fourth.amount_fen) == ("PENDING", 6_000)
    assert ([r.recharge_no for r in listed.recharges], listed.total) == ([started[0]], 1)


def test_a_closed_wechat_order_takes_no_payment_and_closing_it_again_answers_it_as_it_is(shop: Shop) -> None:
    recharge_no = shop.recharge().recharge_no
    shop.close(recharge_no)

    again = shop.close(recharge_no)
    with pytest.raises(requests.HTTPError) as refused:
        shop.sim.client.wechatpay_pay(recharge_no, notify=False)

    assert "the order is closed" in refused.value.response.json()["error"]
    assert (again.status, shop.status(recharge_no), shop.wallet()) == ("CLOSED", "CLOSED", (0, 0, 0))


def test_closing_a_recharge_the_payer_paid_first_credits_it_once_and_answers_paid(shop: Shop) -> None:
    recharge_no = shop.recharge(50_005).recharge_no
    paid = shop.sim.client.wechatpay_pay(recharge_no)  # its notify is lost on the way
    assert paid["notify_status"] == 0

    closed = shop.close(recharge_no)
    after_close = shop.wallet()
    late = shop.stub.HandleRechargeNotify(pb.RechargeNotifyRequest(
        channel="wechat", body=paid["notify"]["body"].encode(), headers=paid["notify"]["headers"]))
    again = shop.close(recharge_no)

    assert (closed.status, closed.bonus_fen, shop.wechat_state(recharge_no)) == ("PAID", 5_000, "SUCCESS")
    assert after_close == (50_005, 5_000, 1)  # the amount, the 500-get-50 bonus, one member-recharged
    assert (late.recharge_no, shop.wallet()) == (recharge_no, (50_005, 5_000, 1))
    assert (again.status, shop.wallet()) == ("PAID", (50_005, 5_000, 1))  # answered as it is, nothing moved


def test_another_shoppers_recharge_is_not_found_and_stays_open(shop: Shop) -> None:
    alices = shop.recharge().recharge_no

    refused = [shop.refused(lambda no=no: shop.close(no, user_id=BOB)) for no in (alices, "R20261206000000000000")]

    assert refused == [(grpc.StatusCode.NOT_FOUND, "RECHARGE_NOT_FOUND", {})] * 2
    assert (shop.status(alices), shop.wechat_state(alices)) == ("PENDING", "NOTPAY")


def test_while_wechat_pay_is_down_closing_is_unavailable_and_the_recharge_stays_pending(shop: Shop) -> None:
    recharge_no = shop.recharge().recharge_no
    shop.wechat_down()

    refused = shop.refused(lambda: shop.close(recharge_no))

    assert refused[:2] == (grpc.StatusCode.UNAVAILABLE, "WECHATPAY_UNAVAILABLE")
    assert (shop.status(recharge_no), shop.wechat_state(recharge_no)) == ("PENDING", "NOTPAY")


def test_ten_closes_of_one_recharge_at_once_close_it_once(shop: Shop) -> None:
    recharge_no = shop.recharge().recharge_no

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: shop.close(recharge_no).status, range(10)))

    assert (answers, shop.status(recharge_no), shop.wechat_state(recharge_no)) == (["CLOSED"] * 10, "CLOSED",
                                                                                   "CLOSED")


def test_an_alipay_trade_the_shopper_opened_is_closed_at_alipay_and_takes_no_payment(shop: Shop) -> None:
    started = shop.recharge(channel="alipay")
    shop.sim.client.alipay_open(started.payment["order_string"])

    closed = shop.close(started.recharge_no)
    with pytest.raises(requests.HTTPError) as refused:
        shop.sim.client.alipay_pay(started.payment["order_string"])

    assert "ACQ.TRADE_HAS_CLOSE" in refused.value.response.json()["error"]
    assert (closed.status, shop.status(started.recharge_no), shop.wallet()) == ("CLOSED", "CLOSED", (0, 0, 0))


def test_an_alipay_trade_paid_first_refuses_the_close_and_is_credited_once(shop: Shop) -> None:
    started = shop.recharge(50_005, channel="alipay")
    shop.sim.client.alipay_pay(started.payment["order_string"])  # its notify is lost on the way

    closed = shop.close(started.recharge_no)

    assert (closed.status, shop.wallet()) == ("PAID", (50_005, 5_000, 1))


def test_an_alipay_order_string_never_opened_cannot_be_closed_and_stays_pending(shop: Shop) -> None:
    started = shop.recharge(channel="alipay")

    refused = shop.refused(lambda: shop.close(started.recharge_no))

    assert refused == (grpc.StatusCode.FAILED_PRECONDITION, "RECHARGE_NOT_CLOSABLE", {"channel": "alipay"})
    assert shop.status(started.recharge_no) == "PENDING"
