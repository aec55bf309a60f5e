"""The shopper's points history (GET /member/points, member.ListPointsEntries): their spendable points alone, each
movement once, balance_after always of those points; owed points taken shown as points_owed_taken (README, Member
service rules), whatever owed kind their posting keeps for the expiry's sake."""

from __future__ import annotations

import pytest

from services.member import service
from tests.fixtures.member_orders import award_points_for_order, reverse_points_for_refund
from tests.unit.member.fakes import FakeMemberUnitOfWork
from tests.unit.member.test_use_cases import ALICE, NOW

Row = tuple[str, str, int, int, str]  # account, kind, amount, balance_after, reference


@pytest.fixture
def uow() -> FakeMemberUnitOfWork:
    """ALICE, a normal member (1 point per yuan), whose order O1 (100 yuan) earned 100 points."""
    uow = FakeMemberUnitOfWork()
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    award_points_for_order(uow, order_no="O1", user_id=ALICE, paid_fen=10_000, now=NOW)
    return uow


def history(uow: FakeMemberUnitOfWork) -> list[Row]:
    entries, total = service.points_entries(uow, user_id=ALICE, offset=0, limit=50)
    assert total == len(entries)
    return [(e.account, e.kind, e.amount, e.balance_after, e.reference) for e in entries]


def test_points_earned_on_a_paid_order_show_as_order_paid(uow: FakeMemberUnitOfWork) -> None:
    assert history(uow) == [("points", "order_paid", 100, 100, "O1")]


def test_a_hold_at_checkout_shows_once_as_points_locked(uow: FakeMemberUnitOfWork) -> None:
    service.lock_points(uow, user_id=ALICE, order_no="O2", points=60, payable_fen=12_000, now=NOW)

    assert history(uow) == [("points", "points_locked", -60, 40, "O2"), ("points", "order_paid", 100, 100, "O1")]


def test_points_held_then_spent_when_the_order_is_paid_move_nothing_more(uow: FakeMemberUnitOfWork) -> None:
    service.lock_points(uow, user_id=ALICE, order_no="O2", points=60, payable_fen=12_000, now=NOW)

    award_points_for_order(uow, order_no="O2", user_id=ALICE, paid_fen=12_000, now=NOW)  # spends the 60, earns 120

    assert history(uow) == [("points", "order_paid", 120, 160, "O2"), ("points", "points_locked", -60, 40, "O2"),
                            ("points", "order_paid", 100, 100, "O1")]


def test_a_hold_given_back_shows_as_points_released(uow: FakeMemberUnitOfWork) -> None:
    service.lock_points(uow, user_id=ALICE, order_no="O2", points=60, payable_fen=12_000, now=NOW)

    service.release_points(uow, order_no="O2", user_id=ALICE, now=NOW)

    assert history(uow)[:2] == [("points", "points_released", 60, 100, "O2"),
                                ("points", "points_locked", -60, 40, "O2")]


def test_a_refund_takes_back_the_points_its_order_earned_as_order_refunded(uow: FakeMemberUnitOfWork) -> None:
    reverse_points_for_refund(uow, order_no="O1", refund_no="RF1", amount_fen=4_000, now=NOW)

    assert history(uow) == [("points", "order_refunded", -40, 60, "RF1"), ("points", "order_paid", 100, 100, "O1")]


def test_owed_points_taken_from_a_later_order_show_as_points_owed_taken(uow: FakeMemberUnitOfWork) -> None:
    service.lock_points(uow, user_id=ALICE, order_no="O2", points=100, payable_fen=20_000, now=NOW)
    reverse_points_for_refund(uow, order_no="O1", refund_no="RF1", amount_fen=10_000, now=NOW)  # all 100 held: owed

    award_points_for_order(uow, order_no="O3", user_id=ALICE, paid_fen=30_000, now=NOW)  # earns 300, 100 taken

    assert history(uow) == [("points", "points_owed_taken", -100, 200, "O3"), ("points", "order_paid", 300, 300, "O3"),
                            ("points", "points_locked", -100, 0, "O2"), ("points", "order_paid", 100, 100, "O1")]
    assert sum(uow.points.owed(ALICE).values()) == 0
