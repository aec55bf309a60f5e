"""Points expiry on PostgreSQL: points held by an unpaid order over the run are marked on the hold, also when
another transaction holds that hold's row at the moment of the run; old points given back after the month's run
expire at the next one, once however many replicas run it at the same moment, also when they were being given back
as the round started; after a complete walk a round locks only the points accounts whose points moved."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, event, text

from services.common.db import advisory_key
from services.common.uow import RoundBudget
from services.member import service
from services.member.db import SqlMemberUnitOfWork
from services.member.domain import PLATFORM, Account, transfer
from tests.fixtures.member_orders import award_points_for_order
from tests.fixtures.postgres import start_thread, wait_until_blocked
from tests.integration.common.test_pruning import Stepping
from tests.integration.member.pausing import PausingLedger

pytestmark = pytest.mark.integration

ALICE = 404
APRIL_RUN = datetime(2027, 4, 1, 0, 0, tzinfo=UTC)


@pytest.fixture
def shopper(uow: Callable[[], SqlMemberUnitOfWork]) -> Callable[[], SqlMemberUnitOfWork]:
    """ALICE earned 300 points in March 2026 and 200 in May 2026, and holds 400 (the 300 March ones first) for O3."""
    service.sign_up(uow(), user_id=ALICE, channel="self", invite_code=None, now=datetime(2026, 1, 1, tzinfo=UTC))
    award_points_for_order(uow(), order_no="O1", user_id=ALICE, paid_fen=30_000,
                           now=datetime(2026, 3, 15, tzinfo=UTC))
    award_points_for_order(uow(), order_no="O2", user_id=ALICE, paid_fen=20_000,
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


def test_old_points_given_back_after_the_months_run_expire_once_when_two_replicas_run_at_once(
        uow: Callable[[], SqlMemberUnitOfWork], engine: Engine) -> None:
    service.sign_up(uow(), user_id=ALICE, channel="self", invite_code=None, now=datetime(2026, 1, 1, tzinfo=UTC))
    award_points_for_order(uow(), order_no="O1", user_id=ALICE, paid_fen=40_000,
                           now=datetime(2026, 3, 15, tzinfo=UTC))  # 400, valid through March 2027
    award_points_for_order(uow(), order_no="O2", user_id=ALICE, paid_fen=20_000,
                           now=datetime(2026, 5, 2, tzinfo=UTC))   # 200, valid through May 2027
    service.lock_points(uow(), user_id=ALICE, order_no="O3", points=300, payable_fen=100_000,
                        now=datetime(2027, 3, 30, tzinfo=UTC))             # 300 March points
    award_points_for_order(uow(), order_no="O3", user_id=ALICE, paid_fen=0,
                           now=datetime(2027, 3, 30, 0, 5, tzinfo=UTC))
    april = service.expire_points(uow, now=APRIL_RUN)                      # the 100 March points left
    with uow() as tx:  # O3 cancelled after review: its 300 March points come back, past their term
        service.apply_order_cancelled(tx, order_no="O3", was_paid=True, now=datetime(2027, 4, 2, tzinfo=UTC))
        tx.commit()
    results: dict[str, object] = {}
    later = datetime(2027, 4, 2, 1, 0, tzinfo=UTC)

    with engine.connect() as other:  # both replicas wait for the points account, then run one after the other
        other.execute(text(f"SELECT 1 FROM ledger_accounts WHERE user_id = {ALICE} AND account = 'points' FOR UPDATE"))
        replicas = [start_thread(results, name, lambda: service.expire_points(uow, now=later)) for name in ("a", "b")]
        for replica in replicas:
            wait_until_blocked(engine, replica)
        other.rollback()
    for replica in replicas:
        replica.join(timeout=60)

    with uow() as tx:
        assert (april, sorted([results["a"], results["b"]]), tx.ledger.balance(ALICE, Account.POINTS)) == (
            100, [0, 300], 200)  # May's 200 stay
    assert service.check_ledgers(uow())[1] == []


def test_a_replicas_round_does_nothing_while_another_replicas_round_holds_the_round_lock(
        shopper: Callable[[], SqlMemberUnitOfWork], engine: Engine) -> None:
    with engine.connect() as other:  # another replica's round of points expiry under way
        other.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key("minimall-round:points-expiry")})
        during = (service.expire_points(shopper, now=APRIL_RUN), marked(shopper))
        other.rollback()
    after = (service.expire_points(shopper, now=APRIL_RUN), marked(shopper))

    assert during == (0, 0)  # skipped whole: nothing walked, nothing marked
    assert after == (0, 300)  # the next round marks the 300 held March points (none spendable are past their term)


def test_a_replicas_round_goes_on_after_the_last_holder_the_other_replicas_round_walked(
        uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    holders = [ALICE + number for number in range(6)]
    for user_id in holders:
        service.sign_up(uow(), user_id=user_id, channel="self", invite_code=None, now=datetime(2026, 1, 1, tzinfo=UTC))
        award_points_for_order(uow(), order_no=f"O{user_id}", user_id=user_id, paid_fen=10_000,
                               now=datetime(2026, 3, 15, tzinfo=UTC))  # 100 points, past their term in April
        award_points_for_order(uow(), order_no=f"P{user_id}", user_id=user_id, paid_fen=5_000,
                               now=datetime(2026, 5, 2, tzinfo=UTC))  # 50 in term: still a holder after it
    clock = Stepping()
    replicas = [RoundBudget(2.5, 0, clock=clock), RoundBudget(2.5, 0, clock=clock)]  # each replica's job's budget

    rounds = []
    for budget in replicas * 2:  # the replicas' timers take turns
        budget.start()
        rounds.append(service.expire_points(uow, now=APRIL_RUN, batch=2, budget=budget))

    # three holders a round; each round goes on after the last holder the round before it walked, whichever
    # replica's: none walks again the holders the other has just expired (a replica going on from its own place
    # alone: 300, 0, 300, 0), and the six are done in two rounds
    assert rounds == [300, 300, 0, 0]
    with uow() as tx:
        assert [tx.ledger.balance(user_id, Account.POINTS) for user_id in holders] == [50] * 6


def points_accounts_locked(engine: Engine, run: Callable[[], int]) -> tuple[int, int]:
    """What `run` returned and how many statements it made lock a points account (FOR UPDATE)."""
    locks = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if "FROM ledger_accounts" in statement and "FOR UPDATE" in statement:
            locks.append(statement)
    event.listen(engine, "before_cursor_execute", count)
    try:
        return run(), len(locks)
    finally:
        event.remove(engine, "before_cursor_execute", count)


def four_holders(uow: Callable[[], SqlMemberUnitOfWork]) -> list[int]:
    """Four users with 100 points of March 2026 (past their term in April 2027) and 50 of May 2026 each."""
    holders = [ALICE + number for number in range(4)]
    for user_id in holders:
        service.sign_up(uow(), user_id=user_id, channel="self", invite_code=None, now=datetime(2026, 1, 1, tzinfo=UTC))
        award_points_for_order(uow(), order_no=f"O{user_id}", user_id=user_id, paid_fen=10_000,
                               now=datetime(2026, 3, 15, tzinfo=UTC))
        award_points_for_order(uow(), order_no=f"P{user_id}", user_id=user_id, paid_fen=5_000,
                               now=datetime(2026, 5, 2, tzinfo=UTC))
    return holders


def test_after_a_complete_walk_a_round_locks_only_the_points_accounts_whose_points_moved(
        uow: Callable[[], SqlMemberUnitOfWork], engine: Engine) -> None:
    holders = four_holders(uow)
    april = points_accounts_locked(engine, lambda: service.expire_points(uow, now=APRIL_RUN))
    idle = points_accounts_locked(engine, lambda: service.expire_points(uow, now=APRIL_RUN + timedelta(hours=1)))
    award_points_for_order(uow(), order_no="Q", user_id=holders[2], paid_fen=10_000,
                           now=APRIL_RUN + timedelta(hours=1, minutes=30))

    moved = points_accounts_locked(engine, lambda: service.expire_points(uow, now=APRIL_RUN + timedelta(hours=2)))

    assert (april, idle, moved) == ((400, 4), (0, 0), (0, 1))
    with uow() as tx:
        assert [tx.ledger.balance(user_id, Account.POINTS) for user_id in holders] == [50, 50, 150, 50]


def test_old_points_being_given_back_as_a_round_starts_are_not_missed(
        uow: Callable[[], SqlMemberUnitOfWork], engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cancellation's entries have lower ids than the posting committed after them, before the round: a walk
    that saw the ledger up to the highest id committed would never visit ALICE for them."""
    alice, bob = four_holders(uow)[:2]
    service.lock_points(uow(), user_id=alice, order_no="O3", points=100, payable_fen=100_000,
                        now=datetime(2027, 3, 30, tzinfo=UTC))             # her 100 March points
    award_points_for_order(uow(), order_no="O3", user_id=alice, paid_fen=0,
                           now=datetime(2027, 3, 30, 0, 5, tzinfo=UTC))
    april = service.expire_points(uow, now=APRIL_RUN)
    monkeypatch.setattr(service, "WALK_SETTLE_SECONDS", 0.5)
    reached, go, results = threading.Event(), threading.Event(), {}

    def cancel_o3() -> None:  # after review: its 100 March points come back, past their term
        with PausingLedger(engine, "post", reached, go) as tx:
            service.apply_order_cancelled(tx, order_no="O3", was_paid=True, now=APRIL_RUN + timedelta(days=1))
            tx.commit()
    cancelling = start_thread(results, "cancel", cancel_o3)
    assert reached.wait(60)  # O3's 100 March points given back, not committed yet
    with uow() as tx:  # BOB's wallet topped up meanwhile (no points moved: every points posting waits for O3's)
        tx.ledger.post(transfer("top-up", "recharge", "R1", amount=10_000, source=(PLATFORM, Account.CLEARING),
                                target=(bob, Account.AVAILABLE)), APRIL_RUN + timedelta(days=1))
        tx.commit()
    later = APRIL_RUN + timedelta(days=1, hours=1)

    during = service.expire_points(uow, now=later)
    go.set()
    cancelling.join(60)
    after = [service.expire_points(uow, now=later) for _ in range(2)]

    assert (april, during, after) == (300, 0, [100, 0])  # the walk waited for the cancellation, then went on
    with uow() as tx:
        assert [tx.ledger.balance(user_id, Account.POINTS) for user_id in (alice, bob)] == [50, 50]
    assert service.check_ledgers(uow())[1] == []


def test_a_walk_of_the_holders_whose_points_moved_goes_on_across_rounds_visiting_each_once(
        uow: Callable[[], SqlMemberUnitOfWork], engine: Engine) -> None:
    holders = four_holders(uow)
    service.expire_points(uow, now=APRIL_RUN)
    for user_id in holders:  # 100 points each, in term
        award_points_for_order(uow(), order_no=f"Q{user_id}", user_id=user_id, paid_fen=10_000,
                               now=APRIL_RUN + timedelta(minutes=30))
    budget, later = RoundBudget(2.5, 0, clock=Stepping()), APRIL_RUN + timedelta(hours=1)

    rounds = []
    for _ in range(3):
        budget.start()
        rounds.append(points_accounts_locked(engine, lambda: service.expire_points(uow, now=later, batch=2,
                                                                                   budget=budget)))

    assert rounds == [(0, 3), (0, 1), (0, 0)]  # the place kept in job_rounds between them
    with uow() as tx:
        assert [tx.ledger.balance(user_id, Account.POINTS) for user_id in holders] == [150] * 4
