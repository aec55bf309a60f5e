"""`each_page` and `each_sweep`, the paging of the fallback jobs: a row that fails is left to the next round while the
others are handled, a sweep that fails does not keep the next from running, and the database out of reach stops the
round at once (one error, not one per row due)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.exc import InterfaceError, OperationalError

from services.common.uow import each_page, each_sweep, is_outage, one_round_at_a_time
from tests.fakes import FakeUnitOfWork

KEYS = [1, 2, 3, 4, 5]


def sweep(handle: Callable[[int], int], what: str = "row") -> int:
    """`handle` each of KEYS, in pages of 2."""
    return each_page(FakeUnitOfWork, lambda tx, after: [key for key in KEYS if key > after][:2], 0, 2, handle,
                     what=what)


def refused_connection() -> OperationalError:
    """What SQLAlchemy raises when the database does not accept connections (nothing listens on port 1)."""
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/minimall_nowhere?connect_timeout=1",
                           poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        return exc
    raise AssertionError("a connection to port 1 was made")


def lost_connection() -> OperationalError:
    """A connection the server closed mid-statement: SQLAlchemy invalidates it."""
    return OperationalError("SELECT 1", {}, psycopg.OperationalError("server closed the connection unexpectedly"),
                            connection_invalidated=True)


def closed_connection() -> InterfaceError:
    return InterfaceError("SELECT 1", {}, psycopg.InterfaceError("the connection is closed"))


def lock_timeout() -> OperationalError:
    """A server's answer about one row (it has a SQLSTATE): not an outage."""
    return OperationalError("SELECT ... FOR UPDATE", {}, psycopg.errors.LockNotAvailable("lock timeout"))


@pytest.mark.parametrize("outage", [refused_connection, lost_connection, closed_connection])
def test_the_database_out_of_reach_stops_the_round_at_once_with_one_error(
        outage: Callable[[], Exception], caplog: pytest.LogCaptureFixture) -> None:
    error = outage()
    handled: list[int] = []

    def handle(key: int) -> int:
        handled.append(key)
        if key >= 2:
            raise error
        return 1

    with caplog.at_level(logging.ERROR), pytest.raises(type(error)) as raised:
        sweep(handle)

    assert (is_outage(error), raised.value, handled) == (True, error, [1, 2])
    assert [record for record in caplog.records if "could not be handled" in record.getMessage()] == []


@pytest.mark.parametrize("failure", [lock_timeout, lambda: RuntimeError("the channel answered 500")])
def test_a_row_that_fails_is_left_to_the_next_round_and_the_round_fails_after_every_row(
        failure: Callable[[], Exception], caplog: pytest.LogCaptureFixture) -> None:
    errors = {2: failure(), 4: failure()}
    handled: list[int] = []

    def handle(key: int) -> int:
        handled.append(key)
        if key in errors:
            raise errors[key]
        return 10

    with caplog.at_level(logging.ERROR), pytest.raises(type(errors[2])) as raised:
        sweep(handle, what="refund")

    assert (is_outage(errors[2]), raised.value, handled) == (False, errors[2], KEYS)
    assert [record.getMessage().split(" (")[0] for record in caplog.records] == [
        "refund 2 could not be handled", "refund 4 could not be handled"]


def test_a_sweep_that_fails_does_not_keep_the_next_from_running() -> None:
    ran: list[str] = []

    def failing() -> int:
        ran.append("points")
        return sweep(lambda key: 1 if key != 3 else int("not a number"))

    def coupons() -> int:
        ran.append("coupons")
        return sweep(lambda key: 1)

    with pytest.raises(ValueError):
        each_sweep(failing, coupons)
    assert ran == ["points", "coupons"]
    assert each_sweep(coupons, coupons) == 10


def test_an_outage_in_one_sweep_is_raised_before_the_next_sweep_runs() -> None:
    ran: list[str] = []
    error = lost_connection()

    def down() -> int:
        ran.append("points")
        raise error

    with pytest.raises(OperationalError) as raised:
        each_sweep(down, lambda: ran.append("coupons") or 0)
    assert (raised.value, ran) == (error, ["points"])


def test_a_job_runs_one_round_per_interval_and_a_replica_whose_clock_runs_ahead_holds_no_one_back() -> None:
    uow, noon = FakeUnitOfWork(), datetime(2026, 12, 1, 12, tzinfo=UTC)
    ran: list[int] = []

    def round_at(seconds: int) -> int:
        def run() -> int:
            ran.append(seconds)
            return 1
        return one_round_at_a_time(lambda: uow, "job", run, now=noon + timedelta(seconds=seconds),
                                   interval=timedelta(seconds=60))

    outcomes = [round_at(seconds) for seconds in (0, 59, 60, 3600, 120, 121, 180)]

    assert (outcomes, ran) == ([1, 0, 1, 1, 1, 0, 1], [0, 60, 3600, 120, 180])
