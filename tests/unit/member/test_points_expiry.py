"""Points expiry: earned in a month, gone at the end of the 12th month after it; the oldest are spent first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.errors import DomainError
from services.common.runtime import every
from services.common.uow import RoundBudget
from services.member import service
from services.member.domain import Account, points_expiry_cutoff
from tests.fakes import FakeOrders
from tests.fixtures.member_orders import award_points_for_order, reverse_points_for_refund
from tests.unit.common.test_liveness import FakeClock, Until
from tests.unit.member.fakes import FakeMemberUnitOfWork

ALICE, BOB = 1, 2


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("now", "cutoff"), [
    ("2027-04-01 00:00:00", "2026-04-01 00:00:00"),
    ("2027-03-31 23:59:59", "2026-03-01 00:00:00"),
    ("2027-01-15 08:00:00", "2026-01-01 00:00:00"),
    ("2026-12-31 23:00:00", "2025-12-01 00:00:00"),
])
def test_the_cutoff_is_the_start_of_the_same_month_a_year_earlier(now: str, cutoff: str) -> None:
    assert points_expiry_cutoff(at(now)) == at(cutoff)


def earn(uow: FakeMemberUnitOfWork, user_id: int, order_no: str, paid_fen: int, when: str) -> None:
    award_points_for_order(uow, order_no=order_no, user_id=user_id, paid_fen=paid_fen, now=at(when))


def points(uow: FakeMemberUnitOfWork, user_id: int) -> int:
    return uow.ledger.balance(user_id, Account.POINTS)


@pytest.fixture
def uow() -> FakeMemberUnitOfWork:
    uow = FakeMemberUnitOfWork()
    for user in (ALICE, BOB):
        service.sign_up(uow, user_id=user, channel="self", invite_code=None, now=at("2026-01-01 00:00:00"))
    return uow


def test_points_expire_after_their_twelfth_month_once_and_spending_takes_the_oldest_first(uow) -> None:  # type: ignore[no-untyped-def]
    earn(uow, ALICE, "O1", 30_000, "2026-03-15 10:00:00")   # 300 points, valid through March 2027
    earn(uow, ALICE, "O2", 20_000, "2026-05-02 10:00:00")   # 200 points, valid through May 2027
    service.lock_points(uow, user_id=ALICE, order_no="O3", points=250, payable_fen=100_000,
                        now=at("2026-06-01 00:00:00"))      # spends 250 of the March points
    earn(uow, BOB, "O4", 10_000, "2026-04-01 00:00:00")     # 100 points, valid through April 2027

    in_term = service.expire_points(lambda: uow, now=at("2027-03-31 23:59:59"))
    april = [service.expire_points(lambda: uow, now=at("2027-04-01 00:00:00")) for _ in range(2)]
    alice_april, bob_april = points(uow, ALICE), points(uow, BOB)
    june = service.expire_points(lambda: uow, now=at("2027-06-01 00:00:00"))

    assert in_term == 0
    assert april == [50, 0] and (alice_april, bob_april) == (200, 100)  # the 50 March points left; once
    assert (june, points(uow, ALICE), points(uow, BOB)) == (300, 0, 0)
    assert [(p.payload.delta, p.payload.reason, p.payload.reference) for p in uow.published
            if p.event_type == "points-changed" and p.payload.reason == "points_expired"] == [
        (-50, "points_expired", "earned-before-2026-04"), (-200, "points_expired", "earned-before-2026-06"),
        (-100, "points_expired", "earned-before-2026-06")]
    assert uow.ledger.balance(ALICE, Account.POINTS_LOCKED) == 250  # held by an order: not expired


def test_a_refund_takes_back_the_newest_points_and_the_rest_expires_in_turn(uow) -> None:  # type: ignore[no-untyped-def]
    earn(uow, ALICE, "O1", 30_000, "2026-03-15 10:00:00")   # 300, expires April 2027
    earn(uow, ALICE, "O2", 20_000, "2026-05-02 10:00:00")   # 200, expires June 2027
    reverse_points_for_refund(uow, order_no="O2", refund_no="F1", amount_fen=20_000,
                              now=at("2026-05-10 00:00:00"))

    assert (service.expire_points(lambda: uow, now=at("2027-04-01 00:00:00")), points(uow, ALICE)) == (300, 0)


def test_points_held_over_the_expiry_run_expire_when_the_hold_is_released(uow) -> None:  # type: ignore[no-untyped-def]
    earn(uow, ALICE, "O1", 30_000, "2026-03-15 10:00:00")   # 300 points, valid through March 2027
    earn(uow, ALICE, "O2", 20_000, "2026-05-02 10:00:00")   # 200 points, valid through May 2027
    service.lock_points(uow, user_id=ALICE, order_no="O3", points=400, payable_fen=100_000,
                        now=at("2027-03-31 23:00:00"))      # all 300 March points (the oldest) and 100 May ones

    april = [service.expire_points(lambda: uow, now=at("2027-04-01 00:00:00")) for _ in range(2)]
    held_over = (points(uow, ALICE), uow.ledger.balance(ALICE, Account.POINTS_LOCKED))
    service.release_points(uow, order_no="O3", now=at("2027-04-01 01:00:00"))  # the order is cancelled

    assert (april, held_over) == ([0, 0], (100, 400))  # the spendable 100 are May's: nothing to take from them
    assert (points(uow, ALICE), uow.ledger.balance(ALICE, Account.POINTS_LOCKED)) == (200, 0)  # March's are gone
    assert uow.ledger.check()[1] == []


def hold_over_the_april_run(uow: FakeMemberUnitOfWork, held: int = 400) -> None:
    """Order O3 holds `held` points, the 300 March ones first (then May's), when the April run marks the March ones
    expired."""
    earn(uow, ALICE, "O1", 30_000, "2026-03-15 10:00:00")   # 300 points, valid through March 2027
    earn(uow, ALICE, "O2", 20_000, "2026-05-02 10:00:00")   # 200 points, valid through May 2027
    service.lock_points(uow, user_id=ALICE, order_no="O3", points=held, payable_fen=100_000,
                        now=at("2027-03-31 23:00:00"))
    service.expire_points(lambda: uow, now=at("2027-04-01 00:00:00"))


def pay_o3(uow: FakeMemberUnitOfWork) -> None:
    award_points_for_order(uow, order_no="O3", user_id=ALICE, paid_fen=0, now=at("2027-04-01 04:00:00"))


def test_an_order_paid_on_time_uses_its_held_points_and_the_may_ones_stay(uow) -> None:  # type: ignore[no-untyped-def]
    hold_over_the_april_run(uow)

    pay_o3(uow)

    assert (points(uow, ALICE), uow.points.owed(ALICE)) == (100, {})


def test_an_order_paid_after_the_sweep_takes_only_its_held_points_that_had_not_expired(uow) -> None:  # type: ignore[no-untyped-def]
    hold_over_the_april_run(uow)
    service.expire_checkout_holds(lambda: uow, FakeOrders(), now=at("2027-04-01 02:00:00"))  # 400 back, the 300 March ones taken

    pay_o3(uow)  # late: takes the 100 May points the hold kept, not the 400 again

    assert (points(uow, ALICE), uow.points.owed(ALICE)) == (100, {})  # as if paid on time
    assert uow.ledger.check()[1] == []


@pytest.mark.parametrize("held", [400, 300], ids=["march-and-may", "all-march"])
@pytest.mark.parametrize("swept", [False, True], ids=["paid-on-time", "paid-after-the-sweep"])
def test_an_order_cancelled_after_review_gives_back_its_points_but_not_those_expired_while_held(  # type: ignore[no-untyped-def]
        uow, swept, held) -> None:
    hold_over_the_april_run(uow, held)
    if swept:
        service.expire_checkout_holds(lambda: uow, FakeOrders(), now=at("2027-04-01 02:00:00"))
    pay_o3(uow)

    with uow:
        service.apply_order_cancelled(uow, order_no="O3", was_paid=True, now=at("2027-04-02 00:00:00"))
        uow.commit()

    assert (points(uow, ALICE), uow.points.owed(ALICE)) == (200, {})  # as if O3 had used no points: May's 200
    assert uow.ledger.check()[1] == []


def units_refunded(uow: FakeMemberUnitOfWork, refund_no: str, points_returned: int, when: str) -> None:
    """Units of O3 the shop could not supply are refunded (cancel-unshipped), giving back the points spent on them."""
    with uow:
        service.apply_order_refunded(uow, order_no="O3", refund_no=refund_no, amount_fen=0, now=at(when),
                                     points_returned=points_returned)
        uow.commit()


@pytest.mark.parametrize(("held", "first"), [(400, 100), (300, 0)], ids=["march-and-may", "all-march"])
def test_refunds_of_units_give_back_their_points_but_not_those_expired_while_held(  # type: ignore[no-untyped-def]
        uow, held, first) -> None:
    """O3 spent the oldest points first: what its refunds give back is the newest, May's (100 of the 400 held; none
    of 300 March ones) and the March ones the April run marked on the hold are taken at once, never spendable until
    the next run (which would find nothing more to take)."""
    hold_over_the_april_run(uow, held)
    pay_o3(uow)

    units_refunded(uow, "RF1", 200, "2027-04-01 05:00:00")
    after_first = points(uow, ALICE)
    units_refunded(uow, "RF2", held - 200, "2027-04-01 05:10:00")  # the rest of the order's units
    after_both = points(uow, ALICE)
    next_run = service.expire_points(lambda: uow, now=at("2027-04-01 06:00:00"))

    # as a whole-order cancellation leaves it in the end: May's 200
    assert (after_first, after_both, next_run) == (500 - held + first, 200, 0)
    assert [(p.payload.delta, p.payload.reason) for p in uow.published if p.event_type == "points-changed"
            and p.payload.reference == "RF1"] == [(200, "points_returned"), (first - 200, "points_expired")]
    assert uow.ledger.check()[1] == []


def test_old_points_a_cancellation_gives_back_after_the_months_run_expire_at_the_next_run(uow) -> None:  # type: ignore[no-untyped-def]
    earn(uow, ALICE, "O1", 40_000, "2026-03-15 10:00:00")   # 400 points, valid through March 2027
    earn(uow, ALICE, "O2", 20_000, "2026-05-02 10:00:00")   # 200 points, valid through May 2027
    service.lock_points(uow, user_id=ALICE, order_no="O3", points=300, payable_fen=100_000,
                        now=at("2027-03-30 10:00:00"))      # 300 of the March points, the oldest
    award_points_for_order(uow, order_no="O3", user_id=ALICE, paid_fen=0, now=at("2027-03-30 10:05:00"))
    april = service.expire_points(lambda: uow, now=at("2027-04-01 00:00:00"))  # the 100 March points left
    with uow:  # O3 is cancelled after review: the 300 March points it spent come back, past their term
        service.apply_order_cancelled(uow, order_no="O3", was_paid=True, now=at("2027-04-02 00:00:00"))
        uow.commit()

    later = [service.expire_points(lambda: uow, now=at("2027-04-02 01:00:00")) for _ in range(2)]

    assert (april, later, points(uow, ALICE)) == (100, [300, 0], 200)  # May's 200 stay
    assert uow.ledger.check()[1] == []


def test_a_round_stops_at_its_budget_and_the_next_goes_on_after_the_last_holder_walked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    uow, clock, walked = FakeMemberUnitOfWork(), FakeClock(), []
    for user in range(1, 6):  # user n: n x 100 points of March 2026 (past their term in April 2027), 50 of May's
        service.sign_up(uow, user_id=user, channel="self", invite_code=None, now=at("2026-01-01 00:00:00"))
        earn(uow, user, f"M{user}", user * 10_000, "2026-03-15 10:00:00")
        earn(uow, user, f"N{user}", 5_000, "2026-05-02 10:00:00")
    expire_one = service._expire_points_of

    def expire_taking_10_seconds(tx: FakeMemberUnitOfWork, user_id: int, cutoff: datetime, now: datetime) -> int:
        walked.append(user_id)
        clock.advance(10)
        return expire_one(tx, user_id, cutoff, now)
    monkeypatch.setattr(service, "_expire_points_of", expire_taking_10_seconds)
    budget = RoundBudget(25, 0, clock=clock)
    rounds = []
    for _ in range(3):
        budget.start()
        before = len(walked)
        rounds.append((service.expire_points(lambda: uow, now=at("2027-04-01 00:00:00"), batch=2, budget=budget),
                       walked[before:]))

    # 10 s a holder within 25 s: the third starts at 20 s, the fourth would start past it; all keep their May points
    assert rounds == [(100 + 200 + 300, [1, 2, 3]), (400 + 500, [4, 5]), (0, [])]  # the walk done: no one moved
    assert [points(uow, user) for user in range(1, 6)] == [50] * 5
    assert [(p.aggregate_id, p.payload.delta) for p in uow.published
            if p.event_type == "points-changed" and p.payload.reason == "points_expired"] == [
        (str(user), -user * 100) for user in range(1, 6)]


def test_the_job_expires_every_holder_within_its_interval_when_a_round_runs_out_of_budget(
        monkeypatch: pytest.MonkeyPatch) -> None:
    uow, clock, walked = FakeMemberUnitOfWork(), FakeClock(), []
    for user in range(1, 6):  # user n: n x 100 points of March 2026, past their term in April 2027
        service.sign_up(uow, user_id=user, channel="self", invite_code=None, now=at("2026-01-01 00:00:00"))
        earn(uow, user, f"M{user}", user * 10_000, "2026-03-15 10:00:00")
    expire_one = service._expire_points_of

    def expire_taking_10_seconds(tx: FakeMemberUnitOfWork, user_id: int, cutoff: datetime, now: datetime) -> int:
        walked.append((user_id, clock.now))
        clock.advance(10)
        return expire_one(tx, user_id, cutoff, now)
    monkeypatch.setattr(service, "_expire_points_of", expire_taking_10_seconds)
    budget = RoundBudget(25, 0, clock=clock)  # as build_app's: the job's budget, started by its timer
    job = every(3600, "points expiry", lambda: service.expire_points(
        lambda: uow, now=at("2027-04-01 00:00:00"), batch=2, budget=budget), budget=budget)

    job(Until(clock, lambda: len(walked) == 5), lambda: None)  # type: ignore[arg-type]

    # the first round runs out after 3 holders; the second starts 5 s later, not an hour, and walks the last two
    assert walked == [(1, 4600.0), (2, 4610.0), (3, 4620.0), (4, 4635.0), (5, 4645.0)]
    assert [points(uow, user) for user in range(1, 6)] == [0] * 5


# ------------------------------------------------ what a round walks: the holders whose points moved since the last


@pytest.fixture
def five_holders() -> FakeMemberUnitOfWork:
    """Users 1-5: user n earned n x 100 points in March 2026 (past their term from April 2027) and 50 in May 2026
    (past their term from June 2027)."""
    uow = FakeMemberUnitOfWork()
    for user in range(1, 6):
        service.sign_up(uow, user_id=user, channel="self", invite_code=None, now=at("2026-01-01 00:00:00"))
        earn(uow, user, f"M{user}", user * 10_000, "2026-03-15 10:00:00")
        earn(uow, user, f"N{user}", 5_000, "2026-05-02 10:00:00")
    return uow


@pytest.fixture
def visited(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The holders each round visits (each visit locks the holder's points account and reads their ledger)."""
    walked: list[int] = []
    expire_one = service._expire_points_of

    def expire_recording(tx: FakeMemberUnitOfWork, user_id: int, cutoff: datetime, now: datetime) -> int | None:
        walked.append(user_id)
        return expire_one(tx, user_id, cutoff, now)
    monkeypatch.setattr(service, "_expire_points_of", expire_recording)
    return walked


def expiry_round(uow: FakeMemberUnitOfWork, visited: list[int], when: str) -> tuple[int, list[int]]:
    """One round of the job at `when`: the points it expired and the holders it visited."""
    before = len(visited)
    expired = service.expire_points(lambda: uow, now=at(when), batch=2)
    return expired, visited[before:]


def test_after_a_complete_walk_the_next_rounds_of_the_cutoff_visit_no_holder(five_holders, visited) -> None:  # type: ignore[no-untyped-def]
    rounds = [expiry_round(five_holders, visited, f"2027-04-{day:02} 00:00:00") for day in (1, 1, 2, 30)]

    assert rounds == [(1500, [1, 2, 3, 4, 5]), (0, []), (0, []), (0, [])]
    assert [points(five_holders, user) for user in range(1, 6)] == [50] * 5


def test_a_round_visits_only_the_holders_whose_points_moved_since_the_last_walk(five_holders, visited) -> None:  # type: ignore[no-untyped-def]
    expiry_round(five_holders, visited, "2027-04-01 00:00:00")
    earn(five_holders, 4, "A4", 20_000, "2027-04-01 10:00:00")  # 200 points, in term
    service.lock_points(five_holders, user_id=2, order_no="B2", points=30, payable_fen=10_000,
                        now=at("2027-04-01 11:00:00"))

    after_points_moved = [expiry_round(five_holders, visited, "2027-04-01 12:00:00") for _ in range(2)]

    assert after_points_moved == [(0, [4, 2]), (0, [])]  # in the order their points moved
    assert [points(five_holders, user) for user in range(1, 6)] == [50, 20, 50, 250, 50]


def test_old_points_returned_after_the_walk_expire_at_the_next_round_which_visits_only_their_holder(  # type: ignore[no-untyped-def]
        five_holders, visited) -> None:
    service.lock_points(five_holders, user_id=3, order_no="C3", points=300, payable_fen=100_000,
                        now=at("2027-03-30 10:00:00"))      # all 300 of user 3's March points, the oldest
    award_points_for_order(five_holders, order_no="C3", user_id=3, paid_fen=0, now=at("2027-03-30 10:05:00"))
    april = expiry_round(five_holders, visited, "2027-04-01 00:00:00")
    with five_holders:  # C3 cancelled after review: its 300 March points come back, past their term
        service.apply_order_cancelled(five_holders, order_no="C3", was_paid=True, now=at("2027-04-02 00:00:00"))
        five_holders.commit()

    later = [expiry_round(five_holders, visited, "2027-04-02 01:00:00") for _ in range(2)]

    assert april == (100 + 200 + 400 + 500, [1, 2, 3, 4, 5])  # user 3's March points all spent: nothing of theirs
    assert later == [(300, [3]), (0, [])]
    assert [points(five_holders, user) for user in range(1, 6)] == [50] * 5
    assert five_holders.ledger.check()[1] == []


def test_a_new_cutoff_walks_every_holder_again(five_holders, visited) -> None:  # type: ignore[no-untyped-def]
    expiry_round(five_holders, visited, "2027-04-01 00:00:00")
    expiry_round(five_holders, visited, "2027-05-15 00:00:00")  # May's cutoff: nothing more past its term

    june = [expiry_round(five_holders, visited, "2027-06-01 00:00:00") for _ in range(2)]

    assert june == [(250, [1, 2, 3, 4, 5]), (0, [])]
    assert [points(five_holders, user) for user in range(1, 6)] == [0] * 5


def test_a_holder_left_while_a_hold_of_theirs_was_settled_is_visited_by_the_next_round(  # type: ignore[no-untyped-def]
        five_holders, visited, monkeypatch: pytest.MonkeyPatch) -> None:
    service.lock_points(five_holders, user_id=2, order_no="B2", points=150, payable_fen=100_000,
                        now=at("2027-03-31 23:00:00"))      # 150 of user 2's 200 March points held
    settled = five_holders.points.locked_holds
    monkeypatch.setattr(five_holders.points, "locked_holds", lambda user_id: None if user_id == 2 else settled(user_id))
    april = expiry_round(five_holders, visited, "2027-04-01 00:00:00")  # user 2's hold is being settled meanwhile
    monkeypatch.setattr(five_holders.points, "locked_holds", settled)  # ... and was not: nothing moved

    later = [expiry_round(five_holders, visited, "2027-04-01 01:00:00") for _ in range(2)]
    held = five_holders.points.hold("B2")

    assert april == (100 + 300 + 400 + 500, [1, 2, 3, 4, 5])
    assert later == [(50, [2]), (0, [])]  # the spendable 50 March points, and the 150 held marked on the hold
    assert held is not None and held.expired_points == 150
    assert points(five_holders, 2) == 50



def shop_step(uow: FakeMemberUnitOfWork, op: str, user: int, n: int, step: int, now: datetime) -> object:
    """One thing a shopper or the job does (refused ones change nothing): what it returned."""
    holds = sorted(uow.points.holds)
    paid = sorted(order for order, hold in uow.points.holds.items() if hold.status == "used")
    try:
        if op == "earn":
            award_points_for_order(uow, order_no=f"E{step}", user_id=user, paid_fen=1_000 + n * 1_000, now=now)
        elif op == "earn-event-of-a-year-ago":  # a consumer's event dated back
            award_points_for_order(uow, order_no=f"L{step}", user_id=user, paid_fen=2_000 + n * 500,
                                   now=now - timedelta(days=400))
        elif op == "lock":
            service.lock_points(uow, user_id=user, order_no=f"H{step}", points=10 + n * 15, payable_fen=100_000,
                                now=now)
        elif op == "release" and holds:
            return service.release_points(uow, order_no=holds[n % len(holds)], now=now)
        elif op == "pay" and holds:
            order = holds[n % len(holds)]
            award_points_for_order(uow, order_no=order, user_id=uow.points.holds[order].user_id,
                                   paid_fen=0, now=now)
        elif op == "cancel-paid" and paid:
            with uow:
                service.apply_order_cancelled(uow, order_no=paid[n % len(paid)], was_paid=True, now=now)
                uow.commit()
        elif op == "refund":
            reverse_points_for_refund(uow, order_no=f"E{step - 1 - n}", refund_no=f"F{step}",
                                      amount_fen=500 + n * 300, now=now)
        elif op == "expire":
            return service.expire_points(lambda: uow, now=now, batch=2)
    except DomainError as exc:
        return exc.code
    return None


def shop_state(uow: FakeMemberUnitOfWork) -> object:
    return (sorted((key, balance) for key, balance in uow.ledger.balances.items() if balance),
            sorted((order, hold.status, hold.expired_points) for order, hold in uow.points.holds.items()),
            sorted(uow.points.owed_points.items()))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(
    st.sampled_from(["earn", "earn-event-of-a-year-ago", "lock", "release", "pay", "cancel-paid", "refund", "expire",
                     "expire", "expire"]),
    st.sampled_from([1, 2, 3]), st.integers(0, 6),
    st.sampled_from([timedelta(minutes=10), timedelta(hours=5), timedelta(days=3), timedelta(days=25)])),
    max_size=50))
def test_walking_only_the_holders_whose_points_moved_expires_what_walking_every_holder_would(
        steps: list[tuple[str, int, int, timedelta]]) -> None:
    """Two shops, the same steps: one's job walks every holder at every round (as if each were a new cutoff's)."""
    shops = [FakeMemberUnitOfWork(), FakeMemberUnitOfWork()]
    for shop in shops:
        for user in (1, 2, 3):
            service.sign_up(shop, user_id=user, channel="self", invite_code=None, now=at("2026-01-01 00:00:00"))
            earn(shop, user, f"M{user}", user * 10_000, "2026-03-15 10:00:00")  # past their term from April 2027
            earn(shop, user, f"N{user}", 5_000, "2026-05-02 10:00:00")          # from June 2027
    now = at("2027-03-25 00:00:00")
    for step, (op, user, n, later) in enumerate(steps):
        now += later
        shops[1].round_resume.pop(service.POINTS_EXPIRY_WALKS, None)  # every holder, every round

        results = [shop_step(shop, op, user, n, step, now) for shop in shops]

        assert results[0] == results[1], (step, op)
        assert shop_state(shops[0]) == shop_state(shops[1]), (step, op)
    assert shops[0].ledger.check()[1] == []
