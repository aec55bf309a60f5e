"""Round budgets of the reconciliations and timeout scans: a round stops between rows once its budget is spent, the
next goes on after where it stopped, and a job's liveness bound follows from its budget, not the blanket 600 s.
Time is a fake clock each row moves."""

from __future__ import annotations

from collections.abc import Callable

from services.common.runtime import every, round_budget
from services.common.uow import RoundBudget, each_page, each_sweep
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
