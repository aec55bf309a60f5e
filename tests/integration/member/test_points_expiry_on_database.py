"""Points expiry on PostgreSQL: points held by an unpaid order over the run are marked on the hold, also when
another transaction holds that hold's row at the moment of the run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text

from services.member import service
from services.member.db import SqlMemberUnitOfWork
from services.member.domain import Account

pytestmark = pytest.mark.integration

ALICE = 404
APRIL_RUN = datetime(2027, 4, 1, 0, 0, tzinfo=UTC)


@pytest.fixture
def shopper(uow: Callable[[], SqlMemberUnitOfWork]) -> Callable[[], SqlMemberUnitOfWork]:
    """ALICE earned 300 points in March 2026 and 200 in May 2026, and holds 400 (the 300 March ones first) for O3."""
    service.sign_up(uow(), user_id=ALICE, channel="self", invite_code=None, now=datetime(2026, 1, 1, tzinfo=UTC))
    service.award_points_for_order(uow(), order_no="O1", user_id=ALICE, paid_fen=30_000,
                                   now=datetime(2026, 3, 15, tzinfo=UTC))
    service.award_points_for_order(uow(), order_no="O2", user_id=ALICE, paid_fen=20_000,
                                   now=datetime(2026, 5, 2, tzinfo=UTC))
    service.lock_points(uow(), user_id=ALICE, order_no="O3", points=400, payable_fen=100_000,
                        now=datetime(2027, 3, 31, 23, 0, tzinfo=UTC))
    return uow


def marked(uow: Callable[[], SqlMemberUnitOfWork]) -> int:
    with uow() as tx:
        hold = tx.points.hold("O3")
        assert hold is not None
        return hold.expired_points


def test_a_hold_locked_elsewhere_during_the_run_has_its_expired_points_marked_by_the_next_run_once(
        shopper: Callable[[], SqlMemberUnitOfWork], engine: Engine) -> None:
    with engine.connect() as other:
        other.execute(text("SELECT 1 FROM points_holds WHERE order_no = 'O3' FOR UPDATE"))
        during = (service.expire_points(shopper, now=APRIL_RUN), marked(shopper))
        other.rollback()
    after = [service.expire_points(shopper, now=APRIL_RUN) for _ in range(2)]

    assert during == (0, 0)  # left whole to the next run
    assert (after, marked(shopper)) == ([0, 0], 300)  # the March points, marked once
    assert service.check_ledgers(shopper())[1] == []


def test_the_held_points_marked_expired_are_taken_when_the_hold_is_released(
        shopper: Callable[[], SqlMemberUnitOfWork]) -> None:
    service.expire_points(shopper, now=APRIL_RUN)

    service.release_points(shopper(), order_no="O3", now=APRIL_RUN)

    with shopper() as tx:
        assert (marked(shopper), tx.ledger.balance(ALICE, Account.POINTS)) == (300, 200)
