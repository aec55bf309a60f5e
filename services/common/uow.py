"""The unit of work every use case runs in: one transaction, outbox included."""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, Self, TypeVar

from google.protobuf.message import Message
from sqlalchemy import Engine, Table
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from services.common import idempotency
from services.common.db import keep_round_places, round_places, start_round, try_serialize_on
from services.common.errors import DomainError
from services.common.outbox import add_to_outbox

log = logging.getLogger(__name__)


class UnitOfWork(abc.ABC):
    """One transaction; events added with `publish` commit (or vanish) with it.

    Use cases run `with uow: ...; uow.commit()`. Leaving the block without `commit()` rolls
    everything back, published events included. Services extend it with their repositories;
    tests use the in-memory fakes of tests/fakes.py.
    """

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.rollback()

    def on_commit(self, action: Callable[[], None]) -> None:
        """Run `action` once this transaction has committed; it is dropped if the transaction rolls back.

        For counting a fact once it is durable (business metrics): registered inside the work that
        records the fact, it runs neither for a replayed idempotent request nor for a failed one.
        """
        self.__dict__.setdefault("_on_commit", []).append(action)

    def _committed(self) -> None:
        """Subclasses call this after a successful commit."""
        for action in self.__dict__.pop("_on_commit", []):
            action()

    def _rolled_back(self) -> None:
        """Subclasses call this when the transaction ends without a commit."""
        self.__dict__.pop("_on_commit", None)

    @abc.abstractmethod
    def commit(self) -> None: ...

    @abc.abstractmethod
    def rollback(self) -> None: ...

    @abc.abstractmethod
    def publish(self, payload: Message, *, aggregate_id: str) -> str:
        """Publish the event `payload` (its message type names the event) once this transaction commits.

        `aggregate_id` is the Kafka key: one aggregate's events stay in order. Returns the event id.
        """

    @abc.abstractmethod
    def run_once(self, *, scope: str, key: str, request: Message | bytes, execute: Callable[[], bytes]) -> bytes:
        """`execute()`'s response, run at most once per idempotency key in `scope` (idempotency.run_once)."""

    @abc.abstractmethod
    def replay(self, *, scope: str, key: str, request: Message | bytes) -> bytes | None:
        """The stored response of a committed request under the key, None if there is none (idempotency.replay)."""

    def try_lock(self, name: str) -> bool:
        """Hold `name` until this transaction ends, unless another transaction holds it (False then): see
        `one_round_at_a_time`. Nothing else holds it in one process's fakes."""
        return True

    def start_round(self, job: str, now: datetime, interval: timedelta) -> bool:
        """Record `now` as the start of a round of `job` and True, unless its last round started less than `interval`
        before `now` (False, nothing recorded): see `one_round_at_a_time`. An `interval` of 0 needs no record."""
        if interval <= timedelta(0):
            return True
        raise NotImplementedError(f"{type(self).__name__} keeps no job rounds")

    def round_places(self, job: str) -> dict[str, Any] | None:
        """Where the sweeps of `job`'s last round stopped (RoundBudget.places), whichever replica ran it, or None when
        this unit of work keeps no job rounds (a budget then goes on from its own process's places)."""
        return None

    def keep_round_places(self, job: str, places: dict[str, Any]) -> None:
        """Record where the sweeps of `job`'s round stopped, for its next round (`round_places`); nothing when this
        unit of work keeps no job rounds."""
        return None


class SqlUnitOfWork(UnitOfWork):
    """A SQLAlchemy session's transaction; `publish` writes to the outbox, which the relay sends after commit."""

    def __init__(self, engine: Engine, producer: str) -> None:
        # A plain Session per block: a sessionmaker per unit of work (one per request) built a new
        # Session subclass and its event dispatch every time, ~0.1 ms of CPU for nothing.
        self.engine = engine
        self.producer = producer
        self.session: Session

    # The service's job_rounds table (db.job_rounds_table), when its jobs take turns (`one_round_at_a_time`).
    job_rounds: Table | None = None

    def __enter__(self) -> Self:
        self.session = Session(bind=self.engine, expire_on_commit=False)
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.rollback()
        self.session.close()
        self._rolled_back()

    def commit(self) -> None:
        self.session.commit()
        self._committed()

    def rollback(self) -> None:
        self.session.rollback()
        self._rolled_back()

    def publish(self, payload: Message, *, aggregate_id: str) -> str:
        return add_to_outbox(self.session, payload, producer=self.producer, aggregate_id=aggregate_id)

    def run_once(self, *, scope: str, key: str, request: Message | bytes, execute: Callable[[], bytes]) -> bytes:
        return idempotency.run_once(self.session, scope=scope, key=key, request=request, execute=execute)

    def replay(self, *, scope: str, key: str, request: Message | bytes) -> bytes | None:
        return idempotency.replay(self.session, scope=scope, key=key, request=request)

    def try_lock(self, name: str) -> bool:
        return try_serialize_on(self.session, name)

    def start_round(self, job: str, now: datetime, interval: timedelta) -> bool:
        if self.job_rounds is None:
            return super().start_round(job, now, interval)
        return start_round(self.session, self.job_rounds, job, now, interval)

    def round_places(self, job: str) -> dict[str, Any] | None:
        if self.job_rounds is None:
            return super().round_places(job)
        return round_places(self.session, self.job_rounds, job)

    def keep_round_places(self, job: str, places: dict[str, Any]) -> None:
        if self.job_rounds is not None:
            keep_round_places(self.session, self.job_rounds, job, places)


U = TypeVar("U", bound=UnitOfWork)
K = TypeVar("K")
A = TypeVar("A")


class RoundBudget:
    """How long one round of a job may go on handling rows, and where its sweeps stopped when it ran out.

    A round starts it (`start`: runtime.every, a timeout scan); each sweep of the round (`each_page`, named by its
    `what`) handles its first row whatever the budget (so every sweep moves on, round after round) and a further one
    only while `clock()` is within `seconds` of the start; a sweep that stops keeps its last handled key, and the next
    round's sweep goes on after it (rows that stay due, a payment WeChat Pay reports unpaid, would otherwise be asked
    about again from the first page, and a backlog larger than a round never be finished). A sweep that reaches its
    last page forgets the key: the next round starts from the first page. The keys live in the process, and when the
    job's rounds take turns across replicas (`one_round_at_a_time`) in its job_rounds row too: the next round goes on
    after them whichever replica runs it, not after the (older) keys of its own process. `overrun_seconds` is the
    longest a round goes on past its budget (each sweep's page read and row in hand, with their channel calls): the
    job's liveness bound counts `worst_seconds`, not the blanket runtime.JOB_ROUND_SECONDS. `ran_out` says whether a
    sweep of the round stopped because its budget ran out (a backlog left: runtime.every starts the next round after a
    short pause), and `resuming` whether a sweep is to go on where its last round stopped (`one_round_at_a_time` lets
    that round run within its interval)."""

    def __init__(self, seconds: float, overrun_seconds: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.overrun_seconds = overrun_seconds
        self.clock = clock
        self._until = float("inf")
        self._resume: dict[str, Any] = {}
        self._ran_out = False

    @property
    def worst_seconds(self) -> float:
        return self.seconds + self.overrun_seconds

    def start(self) -> None:
        """A round begins: it may go on for `seconds` from now."""
        self._until = self.clock() + self.seconds
        self._ran_out = False

    def spent(self) -> bool:
        return self.clock() >= self._until

    @property
    def ran_out(self) -> bool:
        """Whether a sweep of this round stopped with rows left because the budget was spent."""
        return self._ran_out

    @property
    def resuming(self) -> bool:
        """Whether a sweep goes on after a key where its last round stopped (rows of the walk not handled yet)."""
        return bool(self._resume)

    @property
    def places(self) -> dict[str, Any]:
        """Where the sweeps stopped, by sweep: the keys they go on after (none for a sweep that reached its end)."""
        return dict(self._resume)

    def go_on_from(self, places: dict[str, Any]) -> None:
        """Go on after `places` (`places` of the job's last round, whichever replica ran it), not this process's."""
        self._resume = dict(places)

    def resume_after(self, sweep: str, first: K) -> K:
        """The key `sweep` goes on after: where its last round stopped, else `first`."""
        return self._resume.get(sweep, first)  # type: ignore[no-any-return]

    def cut_short(self) -> None:
        """A scan of the round stopped with rows left because the budget was spent, keeping no key (a timeout scan:
        the rows it handled are no longer due, those it left still are): the round `ran_out`."""
        self._ran_out = True

    def stopped(self, sweep: str, after: object | None) -> None:
        """`sweep` stopped after the key `after` (None: it reached its end; the next round starts over)."""
        if after is None:
            self._resume.pop(sweep, None)
        else:
            self._resume[sweep] = after
            # A sweep stopped for another reason (the product sweep's order service not answering) is no backlog
            # to hurry through.
            self._ran_out = self._ran_out or self.spent()


def each_page(uow: Callable[[], U], page: Callable[[U, K], list[K]], first: K, batch: int,
              handle: Callable[[K], int], *, what: str = "row", budget: RoundBudget | None = None,
              before_page: Callable[[list[K]], bool] | None = None) -> int:
    """`handle` each key `page` lists (keys after the one given, ascending, `batch` at most), page after page,
    each page read in a transaction of its own; the sum of what `handle` returned. A job's rounds go through every
    row due, so rows that stay due (a payment or refund the channel reports under way for days) never hide newer
    ones behind a fixed batch.

    Likewise a key whose handling fails (its transaction rolled back) is logged, as `what` and the key, and left to
    the next round while the others are handled all the same: one row a job cannot handle now (a channel or a
    neighbour answering it with an error) must not keep the rows after it from being handled, round after round.
    The round then fails with the first error, once every key has had its turn. But the database gone (`is_outage`)
    is no row's problem: every key after it would fail alike, so the round stops there and fails with it at once.
    A job that sweeps several tables runs its sweeps with `each_sweep`.

    With a `budget` (RoundBudget) the sweep, named by `what`, goes on after the key where its last round stopped,
    and stops between two rows once the budget is spent (its first row aside), keeping the last key handled.

    `before_page(keys)`, when given, runs once per page, outside any transaction, before the page's first key is
    handled (and after the budget allows it): one call to a neighbour about the whole page, whose answer `handle`
    reads (the product's reservation sweep asks the order service what became of a page's orders). When it returns
    False (the neighbour did not answer; it says why) the round stops there as a spent budget stops it: the page is
    left to the next round, which goes on after the last key handled. What it raises ends the round with it."""
    done, failure, handled = 0, None, False
    after = first if budget is None else budget.resume_after(what, first)

    def stop() -> int:
        if budget is not None:
            budget.stopped(what, after)
        if failure is not None:
            raise failure
        return done

    def spent() -> bool:
        if budget is not None and handled and budget.spent():
            log.info("%s: the round's budget is spent after %d handled; the next round goes on after %s",
                     what, done, after)
            return True
        return False

    while True:
        with uow() as tx:
            keys = page(tx, after)
            tx.commit()
        if keys and before_page is not None and (spent() or not before_page(keys)):
            return stop()
        for key in keys:
            if spent():
                return stop()
            handled, after = True, key
            try:
                done += handle(key)
            except Exception as exc:
                if is_outage(exc):
                    raise
                log.error("%s %s could not be handled (%r); left to the next round", what, key, exc)
                failure = failure or exc
        if len(keys) < batch:
            if budget is not None:
                budget.stopped(what, None)
            if failure is not None:
                raise failure
            return done


class PageAnswers(Generic[A]):
    """What another service said of the keys of a sweep's current page, asked once a page (`each_page`'s before_page:
    `ask`; `answers` then holds them). Once it does not answer it is not asked again this round (every page would
    wait for it in vain): `ask` is False, and `unanswered(keys, error)` is told, the error the first time, None after.
    """

    def __init__(self, question: Callable[[list[str]], dict[str, A]],
                 unanswered: Callable[[Sequence[str], DomainError | None], None]) -> None:
        self.question, self.unanswered = question, unanswered
        self.answers: dict[str, A] = {}
        self.failed = False

    def ask(self, keys: Sequence[str]) -> bool:
        error = None
        if not self.failed:
            try:
                known = list(dict.fromkeys(key for key in keys if key))
                self.answers = self.question(known) if known else {}
                return True
            except DomainError as exc:
                self.failed, error = True, exc
        self.unanswered(keys, error)
        return False


def one_round_at_a_time(uow: Callable[[], U], job: str, run: Callable[[], int], *, now: datetime,
                        interval: timedelta, budget: RoundBudget | None = None) -> int:
    """`run()` (a job's round started at `now`), unless another replica's round of `job` is under way or one started
    less than `interval` before `now` (0 then, nothing done): a job that asks a channel about every row due (WeChat
    Pay's queries) asks once per interval, however many replicas run its timer, and its rounds never overlap. The
    round holds a lock named after the job in a transaction of its own, open until the round ends (a PostgreSQL
    transaction-scoped advisory lock: a replica that dies mid-round lets go with its connection); under it, the start
    of the job's last round is read and, when `interval` has passed, `now` recorded in a transaction committed before
    the round runs (a round that fails still counts). The round's rows are still handled each in a transaction of
    their own, under their row locks. SQLite takes no lock (one process per database file); the interval still
    applies. An `interval` of 0 runs every round that finds the lock free.

    A round that goes on with a walk its `budget` cut short (RoundBudget.resuming: runtime.every starts it after a
    short pause) is not held to the interval: it asks about rows this walk has not asked about yet. It still takes
    the lock and records its start, so the next walk, whichever replica's, starts an interval after it. Where a
    budgeted round's sweeps stopped is recorded with its start, when the service keeps job rounds
    (UnitOfWork.round_places): the next round goes on after it whichever replica runs it, and a replica whose last
    round was long ago does not walk again the rows another replica's rounds have walked since."""
    with uow() as lead:
        if not lead.try_lock(f"minimall-round:{job}"):
            log.debug("a round of %s is under way on another replica: skipped", job)
            return 0
        with uow() as tx:
            places = tx.round_places(job) if budget is not None else None
            if budget is not None and places is not None:
                budget.go_on_from(places)
            if not tx.start_round(job, now, timedelta(0) if budget is not None and budget.resuming else interval):
                log.debug("a round of %s started less than %s ago: skipped", job, interval)
                return 0
            tx.commit()
        if budget is None or places is None:
            return run()
        try:
            return run()
        finally:
            _keep_places(uow, job, budget)


def _keep_places(uow: Callable[[], U], job: str, budget: RoundBudget) -> None:
    """Record where the round's sweeps stopped, still under the round's lock. Not recorded (the database gone), the
    next round goes on from where the round before stopped: rows walked again, none skipped."""
    try:
        with uow() as tx:
            tx.keep_round_places(job, budget.places)
            tx.commit()
    except Exception as exc:
        log.warning("where the round of %s stopped could not be recorded (%r): the next round goes on from where the "
                    "one before it stopped", job, exc)


def each_sweep(*sweeps: Callable[[], int]) -> int:
    """Run a job's sweeps (`each_page` rounds over different tables) one after the other; the sum of what they
    returned. A sweep that fails does not keep the next from running (a row of one table failing every round must
    not leave the other table's rows due forever): the first failure is raised once every sweep has run, unless it
    is an outage (`is_outage`), which the sweeps after it would only meet again: raised at once."""
    done, failure = 0, None
    for sweep in sweeps:
        try:
            done += sweep()
        except Exception as exc:
            if is_outage(exc):
                raise
            failure = failure or exc
    if failure is not None:
        raise failure
    return done


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` says the database is out of reach, not that one row could not be handled: its connection was
    lost (SQLAlchemy invalidated it), is unusable (InterfaceError), or could not be made (psycopg's OperationalError
    without a SQLSTATE; every error a server answers has one, a lock timeout or a serialization failure included)."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, InterfaceError):
        return True
    return isinstance(exc, OperationalError) and hasattr(exc.orig, "sqlstate") and exc.orig.sqlstate is None
