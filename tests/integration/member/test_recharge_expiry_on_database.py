"""Recharge expiry on PostgreSQL against the simulator's Alipay gateway and bank-card status query: a recharge past
its payment deadline that the channel never saw becomes EXPIRED, one paid with its notify lost is credited instead,
one the channel gives no trustworthy answer about waits; a recharge another transaction holds is skipped, not
waited for (FOR UPDATE SKIP LOCKED), and replicas expiring at once handle each recharge once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine, select, text, update

from services.common.db import utcnow
from services.member import service
from services.member.db import SqlMemberUnitOfWork, recharges
from tests.integration.member import test_recharge_reconciliation as reconciliation
from tests.integration.member.test_recharge_reconciliation import CHANNELS, Shopper

pytestmark = pytest.mark.integration

channels, shopper = reconciliation.channels, reconciliation.shopper  # the simulator's channels, a shopper using them

PAST_EXPIRY = timedelta(minutes=30, seconds=901)  # after the 30-minute payment window and the 900 s grace


def expire(shopper: Shopper, after: timedelta = PAST_EXPIRY) -> int:
    return service.expire_recharges(shopper.uow, shopper.channels, now=utcnow() + after, expire_seconds=900)


def statuses(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(  # type: ignore[misc]
            select(recharges.c.amount_fen, recharges.c.status).order_by(recharges.c.id))]


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_recharge_the_channel_never_saw_expires_once_past_its_deadline_and_the_grace(
        shopper: Shopper, engine: Engine, channel: str) -> None:
    recharge_no, _ = shopper.recharge(channel, 10_000)

    early = expire(shopper, timedelta(minutes=30, seconds=890))
    assert (early, shopper.status(recharge_no)) == (0, "PENDING")
    expired = [expire(shopper), expire(shopper)]

    assert (expired, statuses(engine), shopper.state()) == ([1, 0], [(10_000, "EXPIRED")], (0, 0, 0))


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_paid_recharge_whose_notify_was_lost_is_credited_at_its_expiry_not_expired(
        shopper: Shopper, engine: Engine, channel: str) -> None:
    recharge_no, payment = shopper.recharge(channel, 50_005)
    notify = shopper.pay_and_lose_notify(channel, payment)

    expired = expire(shopper)
    late = shopper.late_notify(channel, notify)

    assert (expired, statuses(engine), late) == (0, [(50_005, "PAID")], recharge_no)
    assert shopper.state() == (50_005, 5_000, 1)  # the amount, the 500-get-50 bonus, one member-recharged


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_paid_recharge_the_channel_answers_about_untrustworthily_is_neither_expired_nor_credited(
        shopper: Shopper, engine: Engine, channel: str) -> None:
    recharge_no, payment = shopper.recharge(channel, 20_000)
    shopper.pay_and_lose_notify(channel, payment)
    shopper.tamper_queries(channel, recharge_no, "bad_signature")

    assert (expire(shopper), statuses(engine), shopper.state()) == (0, [(20_000, "PENDING")], (0, 0, 0))


def test_a_recharge_another_transaction_holds_is_skipped_not_waited_for_and_expired_next_run(
        shopper: Shopper, engine: Engine) -> None:
    held, _ = shopper.recharge("alipay", 10_000)
    free, _ = shopper.recharge("bank_card", 20_000)

    with engine.connect() as other:  # a notify (or another replica) has the row locked
        other.execute(text("SELECT id FROM recharges WHERE recharge_no = :no FOR UPDATE"), {"no": held})
        first = expire(shopper)  # would block here without SKIP LOCKED
        other.rollback()
    second = expire(shopper)

    assert (first, second, statuses(engine)) == (1, 1, [(10_000, "EXPIRED"), (20_000, "EXPIRED")])


def test_replicas_expiring_at_once_handle_each_recharge_once(shopper: Shopper, engine: Engine) -> None:
    shoppers = [shopper.another(shopper.user_id + n) for n in range(4)]
    for each, channel in zip(shoppers, CHANNELS * 2, strict=True):
        each.recharge(channel, 10_000)  # never paid
        _, payment = each.recharge(channel, 30_000)
        each.pay_and_lose_notify(channel, payment)
    barrier, expired = threading.Barrier(4), []

    def replica() -> None:
        barrier.wait()
        expired.append(expire(shopper))

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert (sum(expired), [each.state() for each in shoppers]) == (4, [(30_000, 0, 1)] * 4)
    assert sorted(statuses(engine)) == [(10_000, "EXPIRED")] * 4 + [(30_000, "PAID")] * 4


def test_the_shoppers_list_shows_expired_recharges(uow: Callable[[], SqlMemberUnitOfWork], shopper: Shopper) -> None:
    lapsed, _ = shopper.recharge("alipay", 10_000)
    expire(shopper)

    found, total = service.my_recharges(uow(), user_id=shopper.user_id, status="EXPIRED", offset=0, limit=20)

    assert ([(r.recharge_no, r.status) for r in found], total) == ([(lapsed, "EXPIRED")], 1)


def test_a_recharge_left_pending_past_the_grace_is_counted_with_how_long_past_its_deadline_it_is(
        shopper: Shopper, engine: Engine) -> None:
    unanswered, payment = shopper.recharge("alipay", 20_000)
    shopper.pay_and_lose_notify("alipay", payment)
    shopper.tamper_queries("alipay", unanswered, "bad_signature")
    never_seen, _ = shopper.recharge("bank_card", 30_000)
    started = utcnow().replace(microsecond=0) - timedelta(hours=2)
    with engine.begin() as connection:  # started two hours ago, ten seconds apart
        for offset, recharge_no in enumerate((unanswered, never_seen)):
            connection.execute(update(recharges).where(recharges.c.recharge_no == recharge_no)
                               .values(created_at=started + timedelta(seconds=10 * offset)))

    expired = service.expire_recharges(shopper.uow, shopper.channels, now=started + timedelta(minutes=30, seconds=1_000),
                                       expire_seconds=900)

    assert (expired, statuses(engine)) == (1, [(20_000, "PENDING"), (30_000, "EXPIRED")])
    assert (REGISTRY.get_sample_value("mall_recharges_pending_overdue"),
            REGISTRY.get_sample_value("mall_recharges_pending_overdue_oldest_seconds")) == (1, 1_000)
