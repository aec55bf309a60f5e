"""Round budgets of the reconciliations and timeout scans: a round stops between rows once its budget is spent, the
next goes on after where it stopped, and a job's liveness bound follows from its budget, not the blanket 600 s.
Time is a fake clock each row moves."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from services.common.runtime import BACKLOG_PAUSE_SECONDS, every, round_budget
from services.common.uow import RoundBudget, each_page, each_sweep, one_round_at_a_time
from services.order import __main__ as order_process
from tests.fakes import FakeUnitOfWork
from tests.unit.common.test_liveness import FakeClock, Until

DUE = list(range(1, 11))  # rows that stay due (a payment still unpaid): handling one does not take it off the list


def asking(clock: FakeClock, asked: list[int], seconds: float = 10) -> Callable[[int], int]:
    def ask(key: int) -> int:
        asked.append(key)
        clock.advance(seconds)
        return 1
    return ask


def sweep(budget: RoundBudget, handle: Callable[[int], int], what: str = "payment", keys: list[int] = DUE) -> int:
    """`handle` each of `keys` after the one given, in pages of 3."""
    return each_page(FakeUnitOfWork, lambda tx, after: [key for key in keys if key > after][:3], 0, 3, handle,
                     what=what, budget=budget)


def test_a_round_past_its_budget_stops_and_the_next_goes_on_after_the_last_row_handled() -> None:
    clock, asked = FakeClock(), []
    budget = RoundBudget(35, 0, clock=clock)
    rounds = []
    for _ in range(4):
        budget.start()
        before = len(asked)
        done = sweep(budget, asking(clock, asked))
        rounds.append((done, asked[before:]))

    # 10 s a row: the fourth starts at 30 s, within 35; the fifth would start past it
    assert rounds == [(4, [1, 2, 3, 4]), (4, [5, 6, 7, 8]), (2, [9, 10]), (4, [1, 2, 3, 4])]


def test_a_round_handles_its_first_row_however_long_the_last_round_took() -> None:
    clock, asked = FakeClock(), []
    budget = RoundBudget(5, 0, clock=clock)
    for _ in range(3):
        budget.start()
        sweep(budget, asking(clock, asked, seconds=60))

    assert asked == [1, 2, 3]


def test_each_sweep_of_a_round_keeps_its_own_place() -> None:
    clock, asked = FakeClock(), []
    budget = RoundBudget(15, 0, clock=clock)
    for _ in range(2):
        budget.start()
        each_sweep(lambda: sweep(budget, asking(clock, asked), what="refund"),
                   lambda: sweep(budget, lambda key: asked.append(100 + key) or 1, what="closed refund"))

    # the refunds' sweep spends the budget on 2 rows; the second sweep still gets its first row each round
    assert asked == [1, 2, 101, 3, 4, 102]


def test_a_failed_row_is_still_left_behind_by_the_round_that_stopped() -> None:
    clock, asked = FakeClock(), []
    budget = RoundBudget(15, 0, clock=clock)

    def ask(key: int) -> int:
        asking(clock, asked)(key)
        if key == 2:
            raise RuntimeError("the channel answered 500")
        return 1
    budget.start()
    try:
        sweep(budget, ask)
    except RuntimeError:
        pass
    budget.start()
    sweep(budget, ask, keys=[1, 3, 4])  # row 2 has been settled meanwhile

    assert asked == [1, 2, 3, 4]


def answering(pages: list[list[int]], unless: int | None = None) -> Callable[[list[int]], bool]:
    """A neighbour asked once a page (`before_page`) about its keys, into `pages`; it does not answer about a page
    holding `unless`."""
    def ask(keys: list[int]) -> bool:
        pages.append(keys)
        return unless not in keys
    return ask


def paged_sweep(budget: RoundBudget, handle: Callable[[int], int], before_page: Callable[[list[int]], bool]) -> int:
    """`sweep`, asking `before_page` about each page of 3 first."""
    return each_page(FakeUnitOfWork, lambda tx, after: [key for key in DUE if key > after][:3], 0, 3, handle,
                     what="reservation", budget=budget, before_page=before_page)


def test_a_page_its_neighbour_does_not_answer_about_stops_the_round_and_the_next_goes_on_after_the_last_row_handled(
        ) -> None:
    clock, asked, pages = FakeClock(), [], []
    budget = RoundBudget(3600, 0, clock=clock)
    rounds = []
    for unless in (5, None):  # the first round gets no answer about the second page
        budget.start()
        before, pages_before = len(asked), len(pages)
        done = paged_sweep(budget, asking(clock, asked), answering(pages, unless))
        rounds.append((done, asked[before:], pages[pages_before:], budget.ran_out))

    # no row of the unanswered page is handled, nor any page after it read; the next round asks about it again
    assert rounds == [(3, [1, 2, 3], [[1, 2, 3], [4, 5, 6]], False),
                      (7, [4, 5, 6, 7, 8, 9, 10], [[4, 5, 6], [7, 8, 9], [10]], False)]


def test_a_page_is_not_asked_about_once_the_rounds_budget_is_spent() -> None:
    clock, asked, pages = FakeClock(), [], []
    budget = RoundBudget(25, 0, clock=clock)
    budget.start()

    done = paged_sweep(budget, asking(clock, asked), answering(pages))

    # 10 s a row within 25 s: the third row is handled at 20 s, the second page would be asked about at 30 s
    assert (done, asked, pages, budget.ran_out, budget.resume_after("reservation", 0)) == (
        3, [1, 2, 3], [[1, 2, 3]], True, 3)


def test_a_timeout_scan_stops_between_batches_once_its_budget_is_spent_and_the_next_scan_goes_on() -> None:
    clock = FakeClock()
    backlog = list(range(1, 1 + 7 * order_process.BATCH))  # 7 full batches due; a handled order no longer is
    scans: list[list[int]] = [[]]

    def step(budget: RoundBudget) -> int:
        batch = backlog[:order_process.BATCH]
        del backlog[:order_process.BATCH]
        scans[-1] += [batch[0]]
        clock.advance(100)  # a batch of closes at WeChat Pay
        return len(batch)
    job = order_process.batches("payment timeout", step, 60, RoundBudget(250, 0, clock=clock))

    job(Until(clock, lambda: not backlog, on_wait=lambda: scans.append([])),  # type: ignore[arg-type]
        lambda: scans.append([]))

    # 100 s a batch within 250 s: the third starts at 200 s, the fourth would start past it
    first = [1 + n * order_process.BATCH for n in range(7)]
    assert [scan for scan in scans if scan] == [first[0:3], first[3:6], first[6:7]]


def test_a_timeout_scan_its_budget_cut_short_is_followed_after_the_backlog_pause_not_the_interval() -> None:
    clock = FakeClock()
    backlog = list(range(6 * order_process.BATCH + 50))  # six full batches due, and half of one
    left: list[int] = []

    def step(budget: RoundBudget) -> int:
        batch = backlog[:order_process.BATCH]
        del backlog[:order_process.BATCH]
        clock.advance(100)
        return len(batch)
    job = order_process.batches("payment timeout", step, 60, RoundBudget(250, 0, clock=clock))
    stop = Until(clock, lambda: not backlog)

    job(stop, lambda: left.append(len(backlog)))  # type: ignore[arg-type]

    # 100 s a batch within 250 s: two scans of three batches are cut short, the third handles the last half batch
    assert (left, stop.waited) == ([350, 50, 0], [0, BACKLOG_PAUSE_SECONDS, BACKLOG_PAUSE_SECONDS, 60])


def test_a_timeout_scan_whose_short_batch_spent_its_budget_is_followed_after_the_backlog_pause() -> None:
    clock, scans = FakeClock(), []

    def step(budget: RoundBudget) -> int:
        scans.append(clock.now)
        clock.advance(300)  # closing prepaid orders at WeChat Pay until the budget is spent: some left in the batch
        return order_process.BATCH - 40
    job = order_process.batches("payment timeout", step, 60, RoundBudget(250, 0, clock=clock))
    stop = Until(clock, lambda: len(scans) == 2)

    job(stop, lambda: None)  # type: ignore[arg-type]

    assert stop.waited == [0, BACKLOG_PAUSE_SECONDS, BACKLOG_PAUSE_SECONDS]


def test_a_jobs_bound_is_its_interval_its_budget_its_rows_past_it_and_the_margin() -> None:
    budget = round_budget(300, row_calls_seconds=3 * 5, sweeps=2)  # a refund: 3 calls of 5 s; two sweeps

    assert budget.worst_seconds == 300 + 2 * (2 * 70 + 15)
    assert every(60, "refund reconciliation", lambda: 0, budget=budget).bound_seconds == 60 + 610 + 30
    assert order_process.batches("auto-confirm", lambda _: 0, 60, round_budget(120, row_calls_seconds=0)) \
        .bound_seconds == 60 + 120 + 140 + 30


def test_every_starts_its_budget_before_each_round() -> None:
    clock, asked = FakeClock(), []
    budget = RoundBudget(25, 0, clock=clock)
    rounds = []
    job = every(60, "payment reconciliation", lambda: rounds.append(sweep(budget, asking(clock, asked))),
                budget=budget)

    job(Until(clock, lambda: len(rounds) == 3), lambda: None)  # type: ignore[arg-type]

    assert (rounds, asked) == ([3, 3, 3], DUE[:9])


def test_a_round_that_ran_out_of_budget_is_followed_after_the_backlog_pause_and_one_that_finished_after_the_interval(
        ) -> None:
    clock, asked = FakeClock(), []
    budget = RoundBudget(25, 0, clock=clock)
    rounds: list[int] = []
    job = every(3600, "points expiry", lambda: rounds.append(sweep(budget, asking(clock, asked))), budget=budget)
    stop = Until(clock, lambda: len(rounds) == 4)

    job(stop, lambda: None)  # type: ignore[arg-type]

    # 10 s a row within 25 s: three rounds of 3 run out with rows left, the fourth walks the last row and finishes
    assert (rounds, asked) == ([3, 3, 3, 1], DUE)
    assert stop.waited == [3600, BACKLOG_PAUSE_SECONDS, BACKLOG_PAUSE_SECONDS, BACKLOG_PAUSE_SECONDS, 3600]
    assert BACKLOG_PAUSE_SECONDS == 5


def test_the_backlog_pause_is_never_longer_than_the_interval() -> None:
    clock, rounds = FakeClock(), []
    budget = RoundBudget(5, 0, clock=clock)
    job = every(2, "reservation expiry", lambda: rounds.append(sweep(budget, asking(clock, []))), budget=budget)
    stop = Until(clock, lambda: len(rounds) == 2)

    job(stop, lambda: None)  # type: ignore[arg-type]

    assert (rounds, stop.waited) == ([1, 1], [2, 2, 2])


class LosingReplica(FakeUnitOfWork):
    """A replica whose round lock another replica holds."""

    def try_lock(self, name: str) -> bool:
        return False


def test_a_replica_that_does_not_win_the_round_lock_does_nothing_and_waits_the_interval() -> None:
    clock, asked, rounds = FakeClock(), [], []
    budget = RoundBudget(25, 0, clock=clock)
    noon = datetime(2026, 12, 1, 12, tzinfo=UTC)
    tx = [FakeUnitOfWork(), LosingReplica()]  # it wins the first round's lock (which runs out), not the second's

    def round_() -> None:
        uow = tx[len(rounds)]
        rounds.append(one_round_at_a_time(lambda: uow, "points-expiry", lambda: sweep(budget, asking(clock, asked)),
                                          now=noon, interval=timedelta(0), budget=budget))
    stop = Until(clock, lambda: len(rounds) == 2 or len(stop.waited) == 3)

    every(60, "points expiry", round_, budget=budget)(stop, lambda: None)  # type: ignore[arg-type]

    assert (rounds, asked, stop.waited) == ([3, 0], [1, 2, 3], [60, BACKLOG_PAUSE_SECONDS, 60])


def test_a_replicas_round_goes_on_after_where_the_last_round_stopped_whichever_replica_ran_it() -> None:
    clock, asked, database = FakeClock(), [], FakeUnitOfWork()  # the job_rounds row both replicas read and write
    replicas = [RoundBudget(25, 0, clock=clock), RoundBudget(25, 0, clock=clock)]  # each one's job's budget
    noon = datetime(2026, 12, 1, 12, tzinfo=UTC)

    def round_of(budget: RoundBudget) -> list[int]:
        budget.start()
        before = len(asked)
        one_round_at_a_time(lambda: database, "payment-reconciliation", lambda: sweep(budget, asking(clock, asked)),
                            now=noon, interval=timedelta(0), budget=budget)
        return asked[before:]

    rounds = [round_of(budget) for budget in replicas * 2]

    # the second replica goes on with 4, and the first, next, with 7: neither walks again what the other just did
    assert rounds == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]]


def test_a_round_going_on_with_a_walk_its_budget_cut_short_is_not_held_to_the_interval() -> None:
    clock, asked, uow = FakeClock(), [], FakeUnitOfWork()
    budget = RoundBudget(25, 0, clock=clock)
    noon = datetime(2026, 12, 1, 12, tzinfo=UTC)

    def round_at(seconds: int) -> list[int]:
        budget.start()
        before = len(asked)
        one_round_at_a_time(lambda: uow, "payment-reconciliation", lambda: sweep(budget, asking(clock, asked)),
                            now=noon + timedelta(seconds=seconds), interval=timedelta(seconds=60), budget=budget)
        return asked[before:]

    rounds = [round_at(seconds) for seconds in (0, 35, 70, 105, 140, 175, 200)]

    # three rounds of 3 run out, each going on within the interval; the fourth finishes the walk at 105 s; the next
    # walk starts an interval after it (175 s), not at 140 s
    assert rounds == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10], [], [1, 2, 3], [4, 5, 6]]


def test_a_sweep_stopped_with_budget_left_is_no_backlog_to_hurry_through() -> None:
    clock = FakeClock()
    budget = RoundBudget(25, 0, clock=clock)
    budget.start()

    budget.stopped("expired reservation", 7)  # the product sweep's order service did not answer: asked again later
    deferred = (budget.ran_out, budget.resuming)
    clock.advance(25)
    budget.stopped("expired reservation", 8)
    spent = (budget.ran_out, budget.resuming)
    budget.start()

    assert (deferred, spent, budget.ran_out) == ((False, True), (True, True), False)
