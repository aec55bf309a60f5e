"""Recharge reconciliation on PostgreSQL against the simulator's Alipay gateway and bank-card status query:
a recharge whose notify was lost is credited once by asking the channel, through the notify's own code path
(so the late notify changes nothing); a forged answer or another amount credits nothing; replicas racing
over the same recharges credit each once."""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from services.common.alipay import Alipay, AlipaySettings
from services.common.bankcard import Bankcard, BankcardSettings
from services.common.db import utcnow
from services.common.outbox import outbox
from services.member import service
from services.member.channels import AlipayRecharge, BankcardRecharge, RechargeChannels
from services.member.db import SqlMemberUnitOfWork
from services.member.domain import Account
from tests.fixtures.simulator import RunningSimulator

pytestmark = pytest.mark.integration

LOST = "http://127.0.0.1:9/payments/notify"  # nothing listens: every notify the simulator sends is lost
CHANNELS = ("alipay", "bank_card")


@pytest.fixture
def channels(simulator: RunningSimulator) -> RechargeChannels:
    env = simulator.env()
    alipay_settings = AlipaySettings.from_env(env, "test")
    bankcard_settings = BankcardSettings.from_env("test", env)
    assert alipay_settings is not None and bankcard_settings is not None
    return RechargeChannels({"alipay": AlipayRecharge(Alipay(alipay_settings), LOST),
                             "bank_card": BankcardRecharge(Bankcard(bankcard_settings), LOST)})


class Shopper:
    """One user's recharges, paid at the simulator with the notify lost; what the ledger and outbox say."""

    def __init__(self, uow: Callable[[], SqlMemberUnitOfWork], channels: RechargeChannels,
                 simulator: RunningSimulator, engine: Engine, user_id: int) -> None:
        self.uow, self.channels, self.sim, self.engine, self.user_id = uow, channels, simulator.client, engine, user_id

    def another(self, user_id: int) -> Shopper:
        """Another user paying the same way (a shopper keeps MAX_PENDING_RECHARGES awaiting payment at most)."""
        twin = copy.copy(self)
        twin.user_id = user_id
        return twin

    def recharge(self, channel: str, amount_fen: int) -> tuple[str, dict[str, str]]:
        recharge, payment = service.create_recharge(self.uow(), self.channels, user_id=self.user_id,
                                                    amount_fen=amount_fen, channel=channel,
                                                    idempotency_key=uuid.uuid4().hex)
        return recharge.recharge_no, payment

    def pay_and_lose_notify(self, channel: str, payment: dict[str, str]) -> dict[str, Any]:
        """The payer pays; the channel's notify goes nowhere. The notify it sent, for a late replay."""
        paid = (self.sim.alipay_pay(payment["order_string"]) if channel == "alipay"
                else self.sim.bankcard_pay(payment))
        assert paid["notify_status"] == 0  # lost on the way
        return paid["notify"]

    def tamper_queries(self, channel: str, recharge_no: str, tamper: str) -> None:
        if channel == "alipay":
            self.sim.alipay_query_tamper(recharge_no, tamper)
        else:
            self.sim.bankcard_query_tamper(recharge_no, tamper)

    def late_notify(self, channel: str, notify: dict[str, Any]) -> str:
        return service.handle_recharge_notify(self.uow(), self.channels, channel=channel,
                                              headers=notify.get("headers") or {}, body=notify["body"].encode())

    def reconcile(self) -> int:
        return service.reconcile_recharges(self.uow, self.channels, now=utcnow() + timedelta(minutes=2))

    def state(self) -> tuple[int, int, int]:
        """(available fen, bonus fen, member-recharged events)."""
        with self.uow() as tx:
            balances = tx.ledger.balance(self.user_id, Account.AVAILABLE), tx.ledger.balance(self.user_id,
                                                                                              Account.BONUS)
            tx.commit()
        with self.engine.connect() as connection:
            events = connection.execute(select(func.count()).select_from(outbox).where(
                outbox.c.event_type == "member-recharged", outbox.c.aggregate_id == str(self.user_id))).scalar_one()
        return (*balances, events)

    def status(self, recharge_no: str) -> str:
        with self.uow() as tx:
            recharge = tx.recharges.by_no(recharge_no)
            assert recharge is not None
            tx.commit()
            return recharge.status


@pytest.fixture
def shopper(uow: Callable[[], SqlMemberUnitOfWork], channels: RechargeChannels, simulator: RunningSimulator,
            engine: Engine) -> Shopper:
    return Shopper(uow, channels, simulator, engine, user_id=4242)


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_paid_recharge_whose_notify_was_lost_is_credited_once_by_reconciliation(shopper: Shopper,
                                                                                   channel: str) -> None:
    recharge_no, payment = shopper.recharge(channel, 50_005)
    notify = shopper.pay_and_lose_notify(channel, payment)

    credited = [shopper.reconcile(), shopper.reconcile()]
    after_reconcile = shopper.state()
    late = shopper.late_notify(channel, notify)

    assert credited == [1, 0]
    assert after_reconcile == (50_005, 5_000, 1)  # the amount, the 500-get-50 bonus, one member-recharged
    assert (late, shopper.state(), shopper.status(recharge_no)) == (recharge_no, (50_005, 5_000, 1), "PAID")


@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("tamper", ["bad_signature", "wrong_amount"])
def test_a_forged_or_mismatched_channel_answer_credits_nothing(shopper: Shopper, channel: str, tamper: str) -> None:
    recharge_no, payment = shopper.recharge(channel, 20_000)
    shopper.pay_and_lose_notify(channel, payment)
    shopper.tamper_queries(channel, recharge_no, tamper)

    credited = shopper.reconcile()

    assert (credited, shopper.state(), shopper.status(recharge_no)) == (0, (0, 0, 0), "PENDING")


@pytest.mark.parametrize("channel", CHANNELS)
def test_an_unpaid_recharge_stays_pending_and_is_asked_about_again(shopper: Shopper, channel: str) -> None:
    never_seen, _ = shopper.recharge(channel, 10_000)

    assert (shopper.reconcile(), shopper.state(), shopper.status(never_seen)) == (0, (0, 0, 0), "PENDING")


def test_replicas_reconciling_at_once_credit_each_recharge_once(shopper: Shopper) -> None:
    shoppers = [shopper, shopper.another(shopper.user_id + 1)]
    for n, channel in enumerate(CHANNELS * 3):
        _, payment = shoppers[n // 3].recharge(channel, 10_000)
        shopper.pay_and_lose_notify(channel, payment)
    barrier, credited = threading.Barrier(4), []

    def replica() -> None:
        barrier.wait()
        credited.append(shopper.reconcile())

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert (sum(credited), [each.state() for each in shoppers]) == (6, [(30_000, 0, 3)] * 2)
