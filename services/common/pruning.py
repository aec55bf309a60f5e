"""Pruning: every service deletes the bookkeeping rows that can no longer matter, a bounded batch at a time.

- `outbox`: rows published more than OUTBOX_RETENTION_DAYS ago (never an unpublished one);
- `processed_events`: records more than PROCESSED_EVENTS_RETENTION_DAYS old, which must outlast every redelivery
  of their event (the rule in config.PruneSettings, checked when the process starts);
- `idempotency_keys`: client keys (idempotency.REQUEST_KEY_SCOPES) older than their replay window,
  IDEMPOTENCY_KEY_RETENTION_DAYS; a service's own once-for-ever guards are kept;
- a service's own rows, each table by its own rule (ServiceApp.own_rows, a `PastUse`): rows kept per client key
  (`kept_with_keys`, the order service's submit_attempts) go with the keys; the user service's refresh tokens of ended
  sessions, old SMS codes and attempt counts once no check reads them.

Each batch is one DELETE of at most PRUNE_BATCH rows in a transaction of its own, so no lock is held long. The
serve role runs a round every PRUNE_INTERVAL_SECONDS on each replica; a round holds the job's advisory lock
(`uow.one_round_at_a_time`), so one replica prunes at a time, and on PostgreSQL each batch takes its rows FOR UPDATE
SKIP LOCKED, so even two deleters never wait on each other's rows, nor count a row twice.

A round is bounded, so that its job beats within its liveness bound however large the backlog (the first prune of
a database that never pruned): each table gets its first batch, and a further one only while the round is within
PRUNE_ROUND_SECONDS; what is left waits for the next round. The job's bound is PRUNE_INTERVAL_SECONDS +
`round_worst_seconds` (that budget, plus one batch per table on a dead connection) + LIVENESS_MARGIN_SECONDS.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from alembic import op
from sqlalchemy import ColumnElement, Connection, Engine, Table, delete, or_, select, text, tuple_

from services.common.config import DB_TIMEOUT_MAX_SECONDS, PruneSettings
from services.common.db import utcnow
from services.common.idempotency import REQUEST_KEY_SCOPES, idempotency_keys
from services.common.liveness import DATABASE_CALL_SECONDS, Clock
from services.common.metrics import ROWS_PRUNED
from services.common.migrations import build_index_concurrently
from services.common.outbox import LATER_INDEXES, outbox, processed_events
from services.common.uow import SqlUnitOfWork, one_round_at_a_time

log = logging.getLogger(__name__)

PRUNE_BATCH = 1000  # rows per DELETE

# Which of a table's rows no longer matter at `now` (the service's retention settings at hand): a service's own rows
# pruned beside the bookkeeping (ServiceApp.own_rows).
PastUse = Callable[[datetime, PruneSettings], ColumnElement[bool]]

# How long the mark of an order released before it held anything is kept (product: released_orders; member: a 0-point
# RELEASED hold, an expired lock of coupon 0): it matters only while a ReserveStock, LockPoints or LockCoupon sent
# before the release may still run, seconds.
RELEASE_MARK_DAYS = 1


def kept_with_keys(table: Table) -> PastUse:
    """The rule of a table of rows kept per client idempotency key (a `created_at` column): pruned with the keys."""
    return lambda now, settings: table.c.created_at < now - timedelta(days=settings.idempotency_key_days)


def prune_batches(engine: Engine, table: Table, where: ColumnElement[bool], *, batch: int = PRUNE_BATCH,
                  until: float = float("inf"), clock: Clock = time.monotonic) -> int:
    """Delete `table`'s rows matching `where`, `batch` at most per statement and transaction, until none is left or
    `clock()` has reached `until` (the first batch runs whatever the clock); how many were deleted. The clock is read
    once before each batch, whose statement may run what is left of the budget (`allow_statement_seconds`)."""
    key = tuple_(*table.primary_key.columns)
    deleted = 0
    while True:
        left = until - clock()
        if deleted and left <= 0:
            log.info("pruning %s: the round's budget is spent after %d rows; the next round goes on", table.name,
                     deleted)
            return deleted
        doomed = select(*table.primary_key.columns).where(where).limit(batch)
        if engine.dialect.name == "postgresql":
            doomed = doomed.with_for_update(skip_locked=True)
        with engine.begin() as conn:
            allow_statement_seconds(conn, left)
            count = conn.execute(delete(table).where(key.in_(doomed))).rowcount
        deleted += count
        if count < batch:
            return deleted


def allow_statement_seconds(conn: Connection, left: float) -> None:
    """Let the batch's statement run `left`, what is left of the round's budget, but at least DB_TIMEOUT_MAX_SECONDS,
    instead of the service's statement timeout (PostgreSQL; this transaction only; no budget: the session's timeout).

    A batch with nothing left to delete still scans every key older than the retention of a scope that is never
    pruned (a service's own guards, such as "order-paid", kept for ever): seconds on a large table, and once past the
    service's timeout every round's batch would be cut short and pruning stop for good. A batch started at the
    budget's end may run DB_TIMEOUT_MAX_SECONDS, within the DATABASE_CALL_SECONDS per table of round_worst_seconds."""
    if conn.dialect.name == "postgresql" and left != float("inf"):
        milliseconds = round(max(left, DB_TIMEOUT_MAX_SECONDS) * 1000)
        conn.execute(text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": str(milliseconds)})


def prune(engine: Engine, service: str, settings: PruneSettings, *, own: Mapping[Table, PastUse] | None = None,
          now: datetime | None = None, batch: int = PRUNE_BATCH, clock: Clock = time.monotonic) -> dict[str, int]:
    """Delete what is past its retention from the three tables and what of the service's `own` tables no longer
    matters by each one's rule, within the round's budget (settings.round_seconds: each table's first batch, then more
    while the budget lasts); rows deleted per table."""
    until = clock() + settings.round_seconds
    now = now or utcnow()
    def older_than(days: int) -> datetime:
        return now - timedelta(days=days)

    past_retention = {
        outbox: outbox.c.published_at.is_not(None) & (outbox.c.published_at < older_than(settings.outbox_days)),
        processed_events: processed_events.c.processed_at < older_than(settings.processed_events_days),
        idempotency_keys: (idempotency_keys.c.created_at < older_than(settings.idempotency_key_days))
        & or_(*(idempotency_keys.c.scope.startswith(scope, autoescape=True) for scope in REQUEST_KEY_SCOPES)),
        **{table: past_use(now, settings) for table, past_use in (own or {}).items()},
    }
    pruned = {}
    for table, where in past_retention.items():
        pruned[table.name] = prune_batches(engine, table, where, batch=batch, until=until, clock=clock)
        ROWS_PRUNED.labels(service, table.name).inc(pruned[table.name])
    if any(pruned.values()):
        log.info("pruned bookkeeping rows of %s: %s", service, pruned)
    return pruned


def prune_once_across_replicas(engine: Engine, service: str, settings: PruneSettings, *,
                               own: Mapping[Table, PastUse] | None = None, now: datetime | None = None,
                               batch: int = PRUNE_BATCH, clock: Clock = time.monotonic) -> int:
    """`prune`, unless another replica's round is under way (0 then); rows deleted in all."""
    return one_round_at_a_time(lambda: SqlUnitOfWork(engine, service), "prune-bookkeeping",
                               lambda: sum(prune(engine, service, settings, own=own, now=now, batch=batch,
                                                 clock=clock).values()),
                               now=now or utcnow(), interval=timedelta(0))


def round_worst_seconds(settings: PruneSettings, own_tables: int = 0) -> float:
    """The longest a pruning round takes: its budget, plus a batch of each table started at the budget's end (each
    table's first batch runs whatever the budget), each at most one database call on a dead connection; the
    advisory lock's calls before it come within the same allowance (a dead connection ends the round at its first
    call)."""
    return settings.round_seconds + (3 + own_tables) * DATABASE_CALL_SECONDS


def pruning_job(engine: Engine, service: str, settings: PruneSettings,
                own: Mapping[Table, PastUse] | None = None) -> Callable[[], int]:
    """One round of the serve role's pruning job (runtime.run_roles runs it each PRUNE_INTERVAL_SECONDS, its bound
    from round_worst_seconds)."""
    return lambda: prune_once_across_replicas(engine, service, settings, own=own)


# The indexes the age predicates above read through, as their tables declare them (outbox's only over published
# rows, which are all the pruning reads); each service's revision calls add_pruning_indexes.
PRUNING_INDEXES = [index for table in (outbox, processed_events, idempotency_keys) for index in table.indexes
                   if index.name in LATER_INDEXES]


def add_pruning_indexes() -> None:
    """In a migration: the indexes of PRUNING_INDEXES, built without blocking writes."""
    for index in PRUNING_INDEXES:
        build_index_concurrently(str(index.name), index.table.name, [column.name for column in index.columns],
                                 where=index.dialect_options["postgresql"]["where"])


def drop_pruning_indexes() -> None:
    for index in PRUNING_INDEXES:
        op.drop_index(str(index.name), table_name=index.table.name, if_exists=True)
