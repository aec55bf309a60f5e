"""The member service's handlers of order events, each run as the consumer runs it: inside an open unit of work."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.order_events_pb2 import OrderCancelled, OrderPaid, OrderRefunded
from sqlalchemy import Engine, select

from services.common.consumer import EventConsumer, HandlerFailed
from services.common.errors import DomainError
from services.common.events import InvalidEvent, encode, new_envelope, timestamp
from services.common.outbox import dead_letters
from services.member import consumers, service
from services.member.db import SqlMemberUnitOfWork, start_mappers
from services.member.domain import Account, HoldStatus, OrderLine
from tests.fakes import FakeCategories, FakePhones
from tests.fixtures.kafka import OFFLINE_KAFKA, Delivered, ScriptedConsumer, batch
from tests.unit.member.fakes import FakeMemberUnitOfWork

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
ALICE = 1
# The handlers as the consumer runs them; every buyer here has bound a phone (FakePhones), so order-paid joins a
# buyer whose spend reaches the threshold, as before M1 reached purchases.
HANDLERS = consumers.handlers(FakePhones())


def deliver(uow: FakeMemberUnitOfWork, event: object, event_id: str) -> None:
    with uow:
        HANDLERS[type(event)](uow, event, EventEnvelope(event_id=event_id))  # type: ignore[index]
        uow.commit()


def paid(order_no: str, paid_fen: int) -> OrderPaid:
    return OrderPaid(order_no=order_no, user_id=ALICE, paid_fen=paid_fen, paid_at=timestamp(NOW))


def test_an_order_paid_twice_under_two_event_ids_awards_points_once() -> None:
    uow = FakeMemberUnitOfWork()
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)

    deliver(uow, paid("O1", 20_000), "e-1")
    deliver(uow, paid("O1", 20_000), "e-2")  # the same payment published again

    assert (uow.ledger.balance(ALICE, Account.POINTS), service.get_member(uow, user_id=ALICE, now=NOW)
            .member.total_spend_fen) == (200, 20_000)


def test_a_refund_takes_back_its_share_of_spend_and_points() -> None:
    uow = FakeMemberUnitOfWork()
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    deliver(uow, paid("O1", 20_000), "e-1")

    deliver(uow, OrderRefunded(order_no="O1", user_id=ALICE, refund_no="RF1", amount_fen=5_000,
                               refunded_at=timestamp(NOW)), "e-2")

    assert (uow.ledger.balance(ALICE, Account.POINTS), service.get_member(uow, user_id=ALICE, now=NOW)
            .member.total_spend_fen) == (150, 15_000)


def test_cancelling_an_unpaid_order_gives_its_held_points_back() -> None:
    uow = FakeMemberUnitOfWork()
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    deliver(uow, paid("O0", 120_000), "e-0")  # 1,200 points (at normal: it makes her silver)
    service.lock_points(uow, user_id=ALICE, order_no="O1", points=300, payable_fen=1_000, now=NOW)

    deliver(uow, OrderCancelled(order_no="O1", user_id=ALICE, was_paid=False, cancelled_at=timestamp(NOW)), "e-1")

    assert (uow.ledger.balance(ALICE, Account.POINTS), uow.ledger.balance(ALICE, Account.POINTS_LOCKED)) == (1_200, 0)


# Joining by purchase (M1): only a buyer who has bound a phone, as the user service says (asked as the member service).

def deliver_asking(uow: FakeMemberUnitOfWork, phones: FakePhones, event: OrderPaid, event_id: str) -> None:
    """`deliver`, order-paid's handler asking `phones` whether the buyer has bound a phone."""
    with uow:
        consumers.handlers(phones)[OrderPaid](uow, event, EventEnvelope(event_id=event_id))
        uow.commit()


def joined_events(uow: FakeMemberUnitOfWork) -> list[tuple[int, str]]:
    return [(e.payload.user_id, e.payload.channel) for e in uow.published if e.event_type == "member-joined"]


def test_a_wechat_only_buyer_whose_spend_reaches_the_threshold_has_it_counted_but_does_not_join() -> None:
    uow, phones = FakeMemberUnitOfWork(), FakePhones(wechat_only=[ALICE])

    deliver_asking(uow, phones, paid("O1", 12_000), "e-1")

    member = uow.members.get(ALICE)
    assert member is not None
    assert (member.is_member, member.total_spend_fen, uow.ledger.balance(ALICE, Account.POINTS), joined_events(uow),
            phones.asked) == (False, 12_000, 0, [], [ALICE])


def test_the_first_order_paid_after_a_wechat_only_buyer_binds_a_phone_joins_them_by_purchase() -> None:
    uow, phones = FakeMemberUnitOfWork(), FakePhones(wechat_only=[ALICE])
    deliver_asking(uow, phones, paid("O1", 12_000), "e-1")  # counted, not joined
    phones.wechat_only = []  # she binds a phone

    deliver_asking(uow, phones, paid("O2", 3_000), "e-2")

    summary = service.get_member(uow, user_id=ALICE, now=NOW)
    assert (summary.member.channel, summary.member.total_spend_fen, summary.points, joined_events(uow),
            phones.asked) == ("purchase", 15_000, 30, [(ALICE, "purchase")], [ALICE, ALICE])


def test_a_buyer_with_a_phone_joins_by_purchase_with_the_order_that_reaches_the_threshold_and_is_asked_once() -> None:
    uow, phones = FakeMemberUnitOfWork(), FakePhones()

    deliver_asking(uow, phones, paid("O1", 5_000), "e-1")  # below the threshold: not asked
    deliver_asking(uow, phones, paid("O2", 5_000), "e-2")  # reaches it: asked, joins, earns
    deliver_asking(uow, phones, paid("O3", 5_000), "e-3")  # a member: not asked

    summary = service.get_member(uow, user_id=ALICE, now=NOW)
    assert (summary.member.channel, summary.member.total_spend_fen, summary.points, joined_events(uow),
            phones.asked) == ("purchase", 15_000, 50 + 50, [(ALICE, "purchase")], [ALICE])


def test_order_paid_fails_and_writes_nothing_when_the_user_service_cannot_say_and_applies_once_when_retried() -> None:
    uow, phones = FakeMemberUnitOfWork(), FakePhones(unavailable=True)

    with pytest.raises(DomainError) as raised:
        deliver_asking(uow, phones, paid("O1", 12_000), "e-1")
    assert (raised.value.code, uow.members.get(ALICE), uow.published) == ("USER_UNAVAILABLE", None, [])

    phones.unavailable = False
    deliver_asking(uow, phones, paid("O1", 12_000), "e-1")  # the consumer delivers it again

    summary = service.get_member(uow, user_id=ALICE, now=NOW)
    assert (summary.member.channel, summary.member.total_spend_fen, summary.points, joined_events(uow)) == (
        "purchase", 12_000, 120, [(ALICE, "purchase")])


def test_a_join_the_read_before_the_lock_did_not_foresee_fails_the_event_and_its_redelivery_asks_before_locking(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Another order of the buyer's counted between the unlocked read and the lock: the user service is never asked
    with the rows held; the event fails, writing nothing, and is applied when delivered again."""
    uow, phones = FakeMemberUnitOfWork(), FakePhones()
    deliver_asking(uow, phones, paid("O1", 9_000), "e-1")  # 90 yuan: not asked, not joined
    unlocked_read = uow.members.get
    monkeypatch.setattr(uow.members, "get", lambda user_id: None)  # the read before the lock saw no row yet

    with pytest.raises(service.JoinDecidedUnderLock):
        deliver_asking(uow, phones, paid("O2", 1_000), "e-2")
    asked_then, spend_then = list(phones.asked), uow.members.get_or_add_locked(ALICE).total_spend_fen
    monkeypatch.setattr(uow.members, "get", unlocked_read)
    deliver_asking(uow, phones, paid("O2", 1_000), "e-2")  # the consumer delivers it again

    summary = service.get_member(uow, user_id=ALICE, now=NOW)
    assert (asked_then, spend_then) == ([], 9_000)
    assert (summary.member.channel, summary.member.total_spend_fen, joined_events(uow), phones.asked) == (
        "purchase", 10_000, [(ALICE, "purchase")], [ALICE])


def test_an_order_paid_the_user_service_cannot_answer_for_is_retried_from_its_offset_and_counted_once(
        member_db: Engine) -> None:
    envelope = new_envelope(paid("O1", 12_000), producer="order", aggregate_id="O1")
    record = Delivered(OFFLINE_KAFKA.topic("order-paid"), 0, 7, encode(envelope))
    scripted = ScriptedConsumer([batch(record), batch(record)])
    phones = FakePhones(unavailable=True)
    consumer = EventConsumer("member", functools.partial(SqlMemberUnitOfWork, member_db, "member"), OFFLINE_KAFKA,
                             consumers.handlers(phones), consumer_factory=lambda *_: scripted)  # type: ignore[arg-type,return-value]

    with pytest.raises(HandlerFailed):
        consumer.poll_once()
    phones.unavailable = False
    assert consumer.poll_once() == 1

    assert (scripted.seeks, scripted.commits) == ([(0, 7)], [(0, 8)])
    summary = service.get_member(SqlMemberUnitOfWork(member_db, "member"), user_id=ALICE, now=NOW)
    assert (summary.member.channel, summary.member.total_spend_fen, summary.points) == ("purchase", 12_000, 120)


# A paid order cancelled after review (before shipping): the coupon and the points it used go back.

def shopper_with_an_order_using_a_coupon_and_points(uow: FakeMemberUnitOfWork, *, valid_to: datetime) -> int:
    """ALICE, silver (1,200 yuan of spend) with 1,200 points; order O1 (50 yuan of goods) holds a 5-yuan coupon and
    300 points: the coupon's id."""
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    deliver(uow, paid("O0", 120_000), "e-0")  # 1,200 points (at normal: it makes her silver)
    template = service.create_coupon_template(
        uow, FakeCategories(), name="5 yuan off", kind="fixed", amount_fen=500, percent_off=0, threshold_fen=1_000, cap_fen=0, total=5,
        per_user_limit=1, valid_from=NOW - timedelta(days=1), valid_to=valid_to, category_ids=[],
        needs_approval=False, now=NOW)
    coupon, _ = service.claim_coupon(uow, user_id=ALICE, template_id=template.id or 0, now=NOW)
    assert service.lock_coupon(uow, user_id=ALICE, order_no="O1", coupon_id=coupon.id or 0,
                               lines=[OrderLine(category_id=1, amount_fen=5_000)], now=NOW).discount_fen == 500
    service.lock_points(uow, user_id=ALICE, order_no="O1", points=300, payable_fen=4_500, now=NOW)
    return coupon.id or 0


def coupon_status(uow: FakeMemberUnitOfWork, coupon_id: int, now: datetime) -> tuple[str, str | None]:
    [view] = [view for view in service.list_coupons(uow, user_id=ALICE, offset=0, limit=20, now=now)[0]
                   if view.coupon.id == coupon_id]
    return view.status, view.coupon.order_no


def cancelled_after_review(order_no: str, at: datetime = NOW) -> OrderCancelled:
    return OrderCancelled(order_no=order_no, user_id=ALICE, was_paid=True, cancelled_by="staff",
                          cancelled_at=timestamp(at))


def refunded_in_full(order_no: str, amount_fen: int) -> OrderRefunded:
    return OrderRefunded(order_no=order_no, user_id=ALICE, refund_no=f"RF-{order_no}", amount_fen=amount_fen,
                         refunded_at=timestamp(NOW))


def spend(uow: FakeMemberUnitOfWork) -> int:
    return service.get_member(uow, user_id=ALICE, now=NOW).member.total_spend_fen


def test_a_paid_order_cancelled_after_review_gives_back_its_coupon_and_spent_points_once() -> None:
    uow = FakeMemberUnitOfWork()
    coupon_id = shopper_with_an_order_using_a_coupon_and_points(uow, valid_to=NOW + timedelta(days=7))
    deliver(uow, paid("O1", 4_200), "e-1")  # earns 42 yuan x 1.2 = 50 points
    assert (uow.ledger.balance(ALICE, Account.POINTS), coupon_status(uow, coupon_id, NOW)) == (
        1_200 - 300 + 50, ("used", "O1"))

    deliver(uow, cancelled_after_review("O1"), "e-2")
    deliver(uow, cancelled_after_review("O1"), "e-3")  # the same cancellation published again

    assert uow.ledger.balance(ALICE, Account.POINTS) == 1_200 + 50
    assert uow.ledger.balance(ALICE, Account.POINTS_LOCKED) == 0
    assert coupon_status(uow, coupon_id, NOW) == ("available", None)
    assert uow.points.holds["O1"].status == HoldStatus.RETURNED
    assert [(entry.kind, entry.amount) for entry in uow.ledger.entries_of[ALICE, Account.POINTS]
            if entry.reference == "O1"] == [("points_locked", -300), ("order_paid", 50), ("points_returned", 300)]
    assert spend(uow) == 120_000 + 4_200  # the spend is the refund's to take back


def test_the_refund_of_a_cancelled_order_then_takes_back_its_spend_and_earned_points_but_not_the_returned_ones(
        ) -> None:
    uow = FakeMemberUnitOfWork()
    coupon_id = shopper_with_an_order_using_a_coupon_and_points(uow, valid_to=NOW + timedelta(days=7))
    deliver(uow, paid("O1", 4_200), "e-1")

    deliver(uow, cancelled_after_review("O1"), "e-2")
    deliver(uow, refunded_in_full("O1", 4_200), "e-3")
    deliver(uow, refunded_in_full("O1", 4_200), "e-4")  # replayed

    assert (uow.ledger.balance(ALICE, Account.POINTS), spend(uow)) == (1_200, 120_000)
    assert coupon_status(uow, coupon_id, NOW) == ("available", None)


def test_a_coupon_given_back_after_its_validity_ended_shows_expired() -> None:
    uow = FakeMemberUnitOfWork()
    coupon_id = shopper_with_an_order_using_a_coupon_and_points(uow, valid_to=NOW + timedelta(hours=1))
    deliver(uow, paid("O1", 4_200), "e-1")
    later = NOW + timedelta(hours=2)

    deliver(uow, cancelled_after_review("O1", at=later), "e-2")

    assert coupon_status(uow, coupon_id, later) == ("expired", None)
    assert uow.ledger.balance(ALICE, Account.POINTS) == 1_200 + 50  # the points come back all the same


def test_a_paid_cancellation_that_overtakes_order_paid_releases_the_hold_and_order_paid_then_uses_nothing() -> None:
    uow = FakeMemberUnitOfWork()
    coupon_id = shopper_with_an_order_using_a_coupon_and_points(uow, valid_to=NOW + timedelta(days=7))

    deliver(uow, cancelled_after_review("O1"), "e-2")  # order-cancelled and order-paid travel on two topics
    deliver(uow, paid("O1", 4_200), "e-1")
    deliver(uow, refunded_in_full("O1", 4_200), "e-3")

    assert (uow.ledger.balance(ALICE, Account.POINTS), uow.ledger.balance(ALICE, Account.POINTS_LOCKED)) == (1_200, 0)
    assert (coupon_status(uow, coupon_id, NOW), spend(uow)) == (("available", None), 120_000)
    assert uow.points.holds["O1"].status == HoldStatus.RELEASED


def test_a_partial_after_sales_refund_keeps_the_coupon_used_and_the_spent_points_spent() -> None:
    uow = FakeMemberUnitOfWork()
    coupon_id = shopper_with_an_order_using_a_coupon_and_points(uow, valid_to=NOW + timedelta(days=7))
    deliver(uow, paid("O1", 4_200), "e-1")

    deliver(uow, OrderRefunded(order_no="O1", user_id=ALICE, refund_no="RF-AS1", amount_fen=2_100,
                               refunded_at=timestamp(NOW)), "e-2")

    assert coupon_status(uow, coupon_id, NOW) == ("used", "O1")
    assert uow.ledger.balance(ALICE, Account.POINTS) == 1_200 - 300 + 50 - 25  # half the earned 50 taken back
    assert spend(uow) == 120_000 + 2_100


def test_an_unpaid_cancellation_of_a_paid_order_gives_nothing_back() -> None:
    uow = FakeMemberUnitOfWork()
    coupon_id = shopper_with_an_order_using_a_coupon_and_points(uow, valid_to=NOW + timedelta(days=7))
    deliver(uow, paid("O1", 4_200), "e-1")

    deliver(uow, OrderCancelled(order_no="O1", user_id=ALICE, was_paid=False, cancelled_at=timestamp(NOW)), "e-2")

    assert uow.ledger.balance(ALICE, Account.POINTS) == 1_200 - 300 + 50
    assert coupon_status(uow, coupon_id, NOW) == ("used", "O1")


# order-paid and order-refunded travel on two topics: a refund may be read before its order's payment. Whatever
# the order (and however often each is delivered), the member ends as if the order was paid, then refunded.
# ALICE has 900 points and 900 yuan of spend (normal); O1 pays 200 yuan at normal (200 points), which makes her
# silver: its refunds take back the 200 it earned, not 240 at the level she has when they are applied.

def shopper_with_900_yuan_of_spend() -> FakeMemberUnitOfWork:
    uow = FakeMemberUnitOfWork()
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    deliver(uow, paid("O0", 90_000), "e-0")
    return uow


def refund(refund_no: str, amount_fen: int) -> OrderRefunded:
    return OrderRefunded(order_no="O1", user_id=ALICE, refund_no=refund_no, amount_fen=amount_fen,
                         refunded_at=timestamp(NOW + timedelta(days=1)))


def order_points(uow: FakeMemberUnitOfWork) -> dict[str, int]:
    """The points O1 earned and each of its refunds took back, by reference."""
    return {entry.reference: entry.amount for entry in uow.ledger.entries_of[ALICE, Account.POINTS]
            if entry.kind in ("order_paid", "order_refunded") and entry.reference != "O0"}


def level(uow: FakeMemberUnitOfWork) -> str:
    return service.get_member(uow, user_id=ALICE, now=NOW).member.level.code


FULL_REFUND_ORDERS = {
    "paid-then-refunded": ["paid", "RF1"],
    "refunded-then-paid": ["RF1", "paid"],
    "paid-twice-then-refunded-twice": ["paid", "paid", "RF1", "RF1"],
    "refunded-twice-then-paid-twice": ["RF1", "RF1", "paid", "paid"],
    "refunded-paid-refunded-paid": ["RF1", "paid", "RF1", "paid"],
    "paid-refunded-paid-refunded": ["paid", "RF1", "paid", "RF1"],
}


@pytest.mark.parametrize("deliveries", FULL_REFUND_ORDERS.values(), ids=FULL_REFUND_ORDERS.keys())
def test_a_full_refund_leaves_points_spend_and_level_as_before_the_order_in_any_order(deliveries: list[str]) -> None:
    uow = shopper_with_900_yuan_of_spend()
    events = {"paid": paid("O1", 20_000), "RF1": refund("RF1", 20_000)}

    for n, name in enumerate(deliveries, start=1):
        deliver(uow, events[name], f"e-{n}")  # each delivery under its own event id: published again

    assert (uow.ledger.balance(ALICE, Account.POINTS), spend(uow), level(uow)) == (900, 90_000, "normal")
    assert order_points(uow) == {"O1": 200, "RF1": -200}
    assert [e.payload.delta for e in uow.published if e.event_type == "points-changed"][-2:] == [200, -200]
    assert uow.ledger.check()[1] == []


PARTIAL_REFUND_ORDERS = {
    "both-after-paid": ["paid", "RF1", "RF2"],
    "one-before-and-one-after-paid": ["RF1", "paid", "RF2"],
    "the-later-one-before-paid": ["RF2", "paid", "RF1"],
    "both-before-paid": ["RF2", "RF1", "paid"],
    "each-twice-around-paid": ["RF1", "RF1", "paid", "RF2", "paid", "RF1", "RF2"],
}


@pytest.mark.parametrize("deliveries", PARTIAL_REFUND_ORDERS.values(), ids=PARTIAL_REFUND_ORDERS.keys())
def test_partial_refunds_take_back_their_sum_whichever_arrives_before_order_paid(deliveries: list[str]) -> None:
    uow = shopper_with_900_yuan_of_spend()
    events = {"paid": paid("O1", 20_000), "RF1": refund("RF1", 5_000), "RF2": refund("RF2", 7_000)}

    for n, name in enumerate(deliveries, start=1):
        deliver(uow, events[name], f"e-{n}")

    # 120 of 200 yuan refunded: 80 yuan of spend stay (980 yuan: normal again); 200 x 12,000 / 20,000 = 120 back
    assert (uow.ledger.balance(ALICE, Account.POINTS), spend(uow), level(uow)) == (900 + 200 - 120, 98_000, "normal")
    assert order_points(uow) == {"O1": 200, "RF1": -50, "RF2": -70}
    assert uow.ledger.check()[1] == []


def test_a_refund_of_an_order_not_seen_paid_yet_changes_nothing_yet() -> None:
    uow = shopper_with_900_yuan_of_spend()

    deliver(uow, refund("RF1", 5_000), "e-1")

    assert (uow.ledger.balance(ALICE, Account.POINTS), spend(uow), order_points(uow)) == (900, 90_000, {})


def test_an_order_that_lifts_a_member_a_level_earns_at_the_level_it_was_paid_at_and_its_refund_takes_that_back(
        ) -> None:
    uow = FakeMemberUnitOfWork()
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    deliver(uow, paid("O0", 1_950_000), "e-0")  # 19,500 points at normal; gold after it
    deliver(uow, paid("O1", 100_000), "e-1")  # priced at gold, and it makes her diamond
    deliver(uow, paid("O2", 100_000), "e-2")  # diamond

    deliver(uow, OrderRefunded(order_no="O1", user_id=ALICE, refund_no="RF1", amount_fen=100_000,
                               refunded_at=timestamp(NOW)), "e-3")  # 2,050,000 of spend stay: still diamond

    assert [(entry.reference, entry.amount) for entry in uow.ledger.entries_of[ALICE, Account.POINTS]
            if entry.kind in ("order_paid", "order_refunded")] == [
        ("O0", 19_500), ("O1", 1_500), ("O2", 2_000), ("RF1", -1_500)]
    assert (uow.ledger.balance(ALICE, Account.POINTS), spend(uow), level(uow)) == (
        19_500 + 2_000, 2_050_000, "diamond")


def test_a_paid_cancellation_and_its_refund_both_overtaking_order_paid_leave_the_shopper_as_before() -> None:
    uow = FakeMemberUnitOfWork()
    coupon_id = shopper_with_an_order_using_a_coupon_and_points(uow, valid_to=NOW + timedelta(days=7))

    deliver(uow, cancelled_after_review("O1"), "e-2")
    deliver(uow, refunded_in_full("O1", 4_200), "e-3")
    deliver(uow, paid("O1", 4_200), "e-1")

    assert (uow.ledger.balance(ALICE, Account.POINTS), uow.ledger.balance(ALICE, Account.POINTS_LOCKED)) == (1_200, 0)
    assert (coupon_status(uow, coupon_id, NOW), spend(uow)) == (("available", None), 120_000)


# Units of a partly shipped order the shop could not supply: the order service gives back the points spent on them
# with their refund (order-refunded's points_returned), credited once per refund.

def cancelled_units_refunded(order_no: str, amount_fen: int, points: int) -> OrderRefunded:
    return OrderRefunded(order_no=order_no, user_id=ALICE, refund_no="RF-part", amount_fen=amount_fen,
                         points_returned=points, refunded_at=timestamp(NOW))


def points_entries(uow: FakeMemberUnitOfWork, reference: str) -> list[tuple[str, int]]:
    return [(entry.kind, entry.amount) for entry in uow.ledger.entries_of[ALICE, Account.POINTS]
            if entry.reference == reference]


def test_the_points_spent_on_cancelled_units_come_back_once_however_often_their_refund_is_delivered() -> None:
    uow = FakeMemberUnitOfWork()
    coupon_id = shopper_with_an_order_using_a_coupon_and_points(uow, valid_to=NOW + timedelta(days=7))
    deliver(uow, paid("O1", 4_200), "e-1")  # 300 points used, 50 earned

    for event_id in ("e-2", "e-3"):  # the same refund published again
        deliver(uow, cancelled_units_refunded("O1", 1_400, 120), event_id)

    # 1,400 of 4,200 refunded takes back 16 of the 50 earned; 120 of the 300 spent come back.
    assert uow.ledger.balance(ALICE, Account.POINTS) == 1_200 - 300 + 50 - 16 + 120
    assert points_entries(uow, "RF-part") == [("points_returned", 120), ("order_refunded", -16)]
    assert [event.payload.delta for event in uow.published
            if event.event_type == "points-changed" and event.payload.reference == "RF-part"] == [120, -16]
    assert (uow.points.holds["O1"].status, coupon_status(uow, coupon_id, NOW)) == (HoldStatus.USED, ("used", "O1"))
    assert spend(uow) == 120_000 + 4_200 - 1_400


def test_points_given_back_by_a_refund_read_before_its_orders_payment_are_credited_at_once_and_once() -> None:
    uow = FakeMemberUnitOfWork()
    shopper_with_an_order_using_a_coupon_and_points(uow, valid_to=NOW + timedelta(days=7))

    deliver(uow, cancelled_units_refunded("O1", 1_400, 120), "e-1")
    assert uow.ledger.balance(ALICE, Account.POINTS) == 1_200 - 300 + 120
    deliver(uow, paid("O1", 4_200), "e-2")
    deliver(uow, cancelled_units_refunded("O1", 1_400, 120), "e-3")

    assert uow.ledger.balance(ALICE, Account.POINTS) == 1_200 - 300 + 50 - 16 + 120
    assert uow.ledger.balance(ALICE, Account.POINTS_LOCKED) == 0


def test_a_refund_of_an_order_whose_points_were_all_returned_gives_none_back_again() -> None:
    uow = FakeMemberUnitOfWork()
    shopper_with_an_order_using_a_coupon_and_points(uow, valid_to=NOW + timedelta(days=7))
    deliver(uow, paid("O1", 4_200), "e-1")
    deliver(uow, cancelled_after_review("O1"), "e-2")  # the whole 300 back

    deliver(uow, cancelled_units_refunded("O1", 4_200, 120), "e-3")

    assert points_entries(uow, "RF-part") == [("order_refunded", -50)]
    assert uow.ledger.balance(ALICE, Account.POINTS) == 1_200


def cancelled(order_no: str, was_paid: bool = False) -> OrderCancelled:
    return OrderCancelled(order_no=order_no, user_id=ALICE, was_paid=was_paid, cancelled_at=timestamp(NOW))


def refunded(order_no: str, refund_no: str, amount_fen: int) -> OrderRefunded:
    return OrderRefunded(order_no=order_no, user_id=ALICE, refund_no=refund_no, amount_fen=amount_fen,
                         refunded_at=timestamp(NOW))


def earned_then_held() -> FakeMemberUnitOfWork:
    """Alice earned 1,200 points on O0 (paid 1,200 yuan, at normal) and holds them all for unpaid O1."""
    uow = FakeMemberUnitOfWork()
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    deliver(uow, paid("O0", 120_000), "e-0")
    service.lock_points(uow, user_id=ALICE, order_no="O1", points=1_200, payable_fen=2_400, now=NOW)
    return uow


def points_of(uow: FakeMemberUnitOfWork) -> tuple[int, int]:
    return uow.ledger.balance(ALICE, Account.POINTS), uow.ledger.balance(ALICE, Account.POINTS_LOCKED)


def test_points_a_refund_could_not_take_back_from_a_hold_are_taken_when_the_hold_is_released() -> None:
    uow = earned_then_held()

    deliver(uow, refunded("O0", "RF0", 120_000), "e-1")  # all 1,200 earned points are held by O1
    after_refund = points_of(uow)
    deliver(uow, cancelled("O1"), "e-2")
    deliver(uow, cancelled("O1"), "e-3")  # published again

    assert after_refund == (0, 1_200)
    assert points_of(uow) == (0, 0)  # released, and the 1,200 owed taken at once
    assert uow.ledger.check()[1] == []


def test_points_a_refund_could_not_take_back_are_owed_and_taken_from_later_earnings() -> None:
    uow = earned_then_held()
    deliver(uow, refunded("O0", "RF0", 120_000), "e-1")
    deliver(uow, paid("O1", 2_400), "e-2")  # O1 paid: its held points are spent; 24 earned, taken for the debt

    deliver(uow, paid("O2", 50_000), "e-3")  # 500 earned: all taken, 1,200 - 24 - 500 = 676 still owed
    after_o2 = points_of(uow)
    deliver(uow, paid("O3", 100_000), "e-4")  # 1,000 earned (at normal: it makes her silver), 676 of them taken

    assert (after_o2, points_of(uow)) == ((0, 0), (1_000 - 676, 0))


def test_points_given_back_for_cancelled_units_go_first_to_what_the_shopper_owes() -> None:
    uow = earned_then_held()
    deliver(uow, refunded("O0", "RF0", 120_000), "e-1")  # the 1,200 earned on O0 are held by O1: owed
    deliver(uow, paid("O1", 2_400), "e-2")  # O1's hold spent; its 24 earned taken for the debt: 1,176 owed

    deliver(uow, cancelled_units_refunded("O1", 1_000, 300), "e-3")  # 300 spent points back; 10 of O1's 24 owed

    assert points_of(uow) == (0, 0)
    assert sum(uow.points.owed(ALICE).values()) == 1_176 - 300 + 10
    assert uow.ledger.check()[1] == []


def test_an_order_paid_again_with_another_amount_is_dead_lettered_and_changes_nothing() -> None:
    # A handler's InvalidInput or Conflict would only repeat on every delivery: retried, it would stop the partition.
    uow = FakeMemberUnitOfWork()
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    deliver(uow, paid("O1", 20_000), "e-1")

    with pytest.raises(InvalidEvent, match="IDEMPOTENCY_KEY_REUSED"):
        deliver(uow, paid("O1", 30_000), "e-2")

    assert (uow.ledger.balance(ALICE, Account.POINTS), spend(uow)) == (200, 20_000)


def test_a_refund_redelivered_with_other_points_returned_is_dead_lettered_and_changes_nothing() -> None:
    uow = FakeMemberUnitOfWork()
    shopper_with_an_order_using_a_coupon_and_points(uow, valid_to=NOW + timedelta(days=7))
    deliver(uow, paid("O1", 4_200), "e-1")
    deliver(uow, cancelled_units_refunded("O1", 1_400, 120), "e-2")

    with pytest.raises(InvalidEvent, match="IDEMPOTENCY_KEY_REUSED"):
        deliver(uow, cancelled_units_refunded("O1", 1_400, 150), "e-3")

    assert uow.ledger.balance(ALICE, Account.POINTS) == 1_200 - 300 + 50 - 16 + 120
    assert points_entries(uow, "RF-part") == [("points_returned", 120), ("order_refunded", -16)]


def test_a_refund_applied_before_its_points_returned_were_compared_is_still_a_plain_duplicate() -> None:
    # What an older version recorded for the refund (order number and amount only) is not a conflict: a replay of
    # the topic from the start must not dead-letter every refund it applied.
    uow = FakeMemberUnitOfWork()
    shopper_with_an_order_using_a_coupon_and_points(uow, valid_to=NOW + timedelta(days=7))
    deliver(uow, paid("O1", 4_200), "e-1")
    with uow:
        uow.run_once(scope="order-refunded", key="RF-part", request=b"O1:1400", execute=lambda: b"applied")
        uow.commit()

    deliver(uow, cancelled_units_refunded("O1", 1_400, 120), "e-2")

    assert (uow.ledger.balance(ALICE, Account.POINTS), points_entries(uow, "RF-part")) == (1_200 - 300 + 50, [])


@pytest.mark.parametrize("event", [
    OrderPaid(order_no="O" * 65, user_id=ALICE, paid_fen=20_000, paid_at=timestamp(NOW)),
    OrderPaid(order_no="O2", user_id=0, paid_fen=20_000, paid_at=timestamp(NOW)),
    OrderRefunded(order_no="O1", user_id=ALICE, refund_no="", amount_fen=5_000, refunded_at=timestamp(NOW)),
    OrderPaid(order_no="O2", user_id=ALICE, paid_fen=-20_000, paid_at=timestamp(NOW)),
    OrderRefunded(order_no="O1", user_id=ALICE, refund_no="RF1", amount_fen=-5_000, refunded_at=timestamp(NOW)),
    OrderRefunded(order_no="O1", user_id=ALICE, refund_no="RF1", amount_fen=0, points_returned=-50,
                  refunded_at=timestamp(NOW)),
], ids=["order-number-too-long", "no-user", "no-refund-number", "negative-payment", "negative-refund",
        "negative-points-returned"])
def test_an_order_event_that_can_never_be_applied_is_dead_lettered_and_changes_nothing(event: object) -> None:
    uow = FakeMemberUnitOfWork()
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    deliver(uow, paid("O1", 20_000), "e-1")

    with pytest.raises(InvalidEvent):
        deliver(uow, event, "e-2")

    assert (uow.ledger.balance(ALICE, Account.POINTS), spend(uow)) == (200, 20_000)


# A time no datetime holds (protobuf's ToDatetime raises a plain ValueError): the same on every delivery

BEYOND_9999 = Timestamp(seconds=10**12)


@pytest.mark.parametrize("event", [
    OrderPaid(order_no="O2", user_id=ALICE, paid_fen=20_000, paid_at=BEYOND_9999),
    OrderRefunded(order_no="O1", user_id=ALICE, refund_no="RF1", amount_fen=5_000, refunded_at=BEYOND_9999),
    OrderCancelled(order_no="O1", user_id=ALICE, was_paid=True, cancelled_at=BEYOND_9999),
    OrderPaid(order_no="O2", user_id=ALICE, paid_fen=20_000, paid_at=Timestamp(seconds=0, nanos=-1)),
], ids=["paid-at", "refunded-at", "cancelled-at", "negative-nanos"])
def test_an_order_event_dated_where_no_datetime_reaches_is_dead_lettered_and_changes_nothing(event: object) -> None:
    uow = FakeMemberUnitOfWork()
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    deliver(uow, paid("O1", 20_000), "e-1")

    with pytest.raises(InvalidEvent, match="carries a time no datetime holds"):
        deliver(uow, event, "e-2")

    assert (uow.ledger.balance(ALICE, Account.POINTS), spend(uow)) == (200, 20_000)


@pytest.fixture
def member_db(sqlite_service_engine: Callable[[str], Engine]) -> Engine:
    start_mappers()
    return sqlite_service_engine("member")


def order_paid_record(offset: int, order_no: str, paid_at: Timestamp) -> tuple[Delivered, str]:
    """The order-paid as the consumer receives it at `offset` of partition 0, and its event id."""
    envelope = new_envelope(OrderPaid(order_no=order_no, user_id=ALICE, paid_fen=20_000, paid_at=paid_at),
                            producer="order", aggregate_id=order_no)
    return Delivered(OFFLINE_KAFKA.topic("order-paid"), 0, offset, encode(envelope)), envelope.event_id


def test_an_order_paid_dated_beyond_year_9999_is_dead_lettered_once_and_the_partition_goes_on(
        member_db: Engine) -> None:
    (bad, bad_event_id), (good, _) = order_paid_record(10, "O1", BEYOND_9999), order_paid_record(11, "O2", timestamp(NOW))
    scripted = ScriptedConsumer([batch(bad, good), batch(bad, good)])  # delivered again: the offset commit was lost
    consumer = EventConsumer("member", functools.partial(SqlMemberUnitOfWork, member_db, "member"), OFFLINE_KAFKA,
                             HANDLERS, consumer_factory=lambda *_: scripted)  # type: ignore[arg-type,return-value]

    assert consumer.poll_once() == 2
    assert consumer.poll_once() == 2

    assert (scripted.seeks, scripted.commits) == ([], [(0, 12), (0, 12)])
    with member_db.connect() as conn:
        assert [tuple(row) for row in conn.execute(select(dead_letters.c.offset, dead_letters.c.event_id))] == [
            (10, bad_event_id)]
    summary = service.get_member(SqlMemberUnitOfWork(member_db, "member"), user_id=ALICE, now=NOW)
    assert summary.member.total_spend_fen == 20_000  # O2, once
