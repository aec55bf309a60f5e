"""SQLAlchemy engines and the column types every service database shares."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    cast,
    create_engine,
    event,
    func,
    make_url,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DataError, DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, registry
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import TypeDecorator

from services.common.config import DatabaseTimeouts
from services.common.metrics import DB_STATEMENTS_CANCELLED

SelectT = TypeVar("SelectT", bound=Select[Any])
T = TypeVar("T")

# Auto-increment primary keys: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BigId = BigInteger().with_variant(Integer, "sqlite")


# The databases MiniMall runs on (make_engine), each with its own INSERT .. ON CONFLICT DO NOTHING / DO UPDATE.
CONFLICT_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def conflict_insert(session: Session, table: Table) -> Insert:
    """An INSERT into `table` that can take ON CONFLICT, in the dialect of the session's database."""
    return CONFLICT_INSERTS[session.get_bind().dialect.name](table)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores timezone-aware UTC datetimes and always gives them back aware, SQLite included."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; MiniMall stores UTC-aware datetimes only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def integer_sum(expression: ColumnElement[Any]) -> ColumnElement[int]:
    """SUM of an integer expression (fen, units, counts) as a BIGINT, 0 over no rows.

    PostgreSQL sums a BIGINT column as NUMERIC, which psycopg gives back as decimal.Decimal: in an error's details,
    JSON or a protobuf int field that is a 500 (SQLite returns int and hides it). Cast here, in the query, so every
    caller gets an int on both databases.
    """
    return cast(func.coalesce(func.sum(expression), 0), BigInteger)


def utcnow() -> datetime:
    return datetime.now(UTC)


def seconds_since(since: datetime | None, now: datetime) -> float:
    """How long ago `since` was, for an "oldest waiting" gauge: 0 when nothing waits (None) or it is not past yet."""
    return max(0.0, (now - since).total_seconds()) if since else 0.0


def make_engine(url: str, timeouts: DatabaseTimeouts | None = None) -> Engine:
    """An engine for a service database. Statement parameters never reach logs (they hold phones).

    On PostgreSQL every connection's session has `timeouts` (statement, lock, idle in transaction: session_options);
    a statement they cut short is counted in mall_db_statements_cancelled_total. They are opt-in: every service role
    (serve, relay, consume, its jobs) passes its settings' `database_timeouts`; None (tools scanning whole tables:
    tools/audit.py, bench/) leaves the sessions at the database's own settings.

    SQLite (dev only) runs every transaction as BEGIN IMMEDIATE: transactions are serialised, so
    code that relies on PostgreSQL row and advisory locks stays correct there (SQLite has neither).
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, hide_parameters=True, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_setup(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # pysqlite's own BEGIN would be DEFERRED and late
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Connection) -> None:
            if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":  # each statement commits
                connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    engine = create_engine(url, hide_parameters=True, pool_size=10, max_overflow=10,
                           connect_args=postgres_connect_args(url, timeouts))
    ping_idle_connections(engine)
    count_cancelled_statements(engine)
    return engine


@contextlib.contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection in one read-only transaction that sees the database as it was at its first statement, whatever
    commits meanwhile (a backup copying table after table while consumers run): REPEATABLE READ READ ONLY on
    PostgreSQL, where READ COMMITTED would take a new snapshot for each statement. On SQLite one transaction is one
    snapshot already (make_engine begins it IMMEDIATE, which also keeps writers out until it ends: dev only)."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            yield conn


# A pooled connection is checked (pinged) before use only when it sat unused for longer than this.
# SQLAlchemy's pool_pre_ping pinged at every checkout: a round trip and a transaction of its own
# (SELECT 1, rollback) in front of every unit of work, twice the transactions of every request. A
# connection the database dropped while it was busy fails its statement instead, and that disconnect
# makes SQLAlchemy drop every older connection of the pool: the next unit of work gets a new one.
PING_IDLE_SECONDS = 1.0


def ping_idle_connections(engine: Engine) -> None:
    """Ping a PostgreSQL connection on checkout when it was idle > PING_IDLE_SECONDS; a dead one is replaced."""

    @event.listens_for(engine, "connect")
    def _connected(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if time.monotonic() - record.info.get("idle_since", 0.0) <= PING_IDLE_SECONDS:
            return
        try:
            ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("the pooled connection is dead") from exc  # the pool opens another


def ping(dbapi_connection: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SELECT 1")
    finally:
        cursor.close()
    dbapi_connection.rollback()


# Client-side connection timeouts unless the URL sets its own: a database host that vanished
# fails the connect within 10 s, and a query whose packets go unacknowledged for 60 s errors
# (tcp_user_timeout; keepalives alone never fire on a connection that is busy retransmitting).
POSTGRES_TIMEOUTS = {"connect_timeout": 10, "tcp_user_timeout": 60_000,
                     "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}


def postgres_connect_args(url: str, timeouts: DatabaseTimeouts | None = None) -> dict[str, Any]:
    """The client-side timeouts the URL does not set, and the session's `timeouts` as libpq's `options` (sent with
    the connection's startup packet: no round trip, and RESET ALL comes back to them). Options the URL gives itself
    come after ours, so a setting it names wins."""
    given = make_url(url).query
    args: dict[str, Any] = {name: value for name, value in POSTGRES_TIMEOUTS.items() if name not in given}
    if timeouts is not None:
        args["options"] = " ".join([session_options(timeouts), str(given.get("options", ""))]).strip()
    return args


def session_options(timeouts: DatabaseTimeouts) -> str:
    """`timeouts` as PostgreSQL command-line options, in whole milliseconds (at least 1: 0 would mean none)."""
    settings = {"statement_timeout": timeouts.statement_seconds, "lock_timeout": timeouts.lock_seconds,
                "idle_in_transaction_session_timeout": timeouts.idle_in_transaction_seconds}
    return " ".join(f"-c {name}={max(1, round(seconds * 1000))}" for name, seconds in settings.items())


# SQLSTATEs of a statement PostgreSQL cut short because a session timeout ran out (57014 is also what a cancel request,
# pg_cancel_backend, ends a statement with), and the reason label mall_db_statements_cancelled_total counts them by.
CANCELLED_STATEMENTS = {"55P03": "lock_timeout", "57014": "statement_timeout",
                        "25P03": "idle_in_transaction_timeout"}


def cancelled_by_timeout(exc: BaseException) -> str | None:
    """Which session timeout (CANCELLED_STATEMENTS) ended the statement that raised `exc`; None for any other error.
    The transaction was rolled back (or the session ended): nothing of it was committed, and trying again may pass."""
    original = exc.orig if isinstance(exc, DBAPIError) else exc
    return CANCELLED_STATEMENTS.get(str(getattr(original, "sqlstate", None)))


def count_cancelled_statements(engine: Engine) -> None:
    """Count each statement of `engine` a session timeout cut short, whoever catches the error."""

    @event.listens_for(engine, "handle_error")
    def _failed(context: ExceptionContext) -> None:
        reason = cancelled_by_timeout(context.original_exception)
        if reason is not None:
            DB_STATEMENTS_CANCELLED.labels(reason).inc()


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for a PostgreSQL advisory lock named `name`."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def serialize_on(session: Session, name: str) -> None:
    """Serialise transactions that touch `name` (e.g. one phone's SMS codes) until this one ends.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: nothing to do, see make_engine.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key(name)})


def try_serialize_on(session: Session, name: str) -> bool:
    """`serialize_on` without waiting: True when this transaction now holds `name` until it ends, False when another
    one holds it. SQLite: True (one process per database file)."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    if not session.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": advisory_key(name)}).scalar_one():
        return False
    # The transaction is kept open to hold `name` (a job's whole round: `one_round_at_a_time`), idle while the work it
    # guards runs in transactions of their own: DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS must not end it, and the lock
    # with it. It holds no row lock, so it keeps no one else waiting.
    session.execute(text("SELECT set_config('idle_in_transaction_session_timeout', '0', true)"))
    return True


def create_tables(bind: Connection, tables: Sequence[Table], *, leaving_out: Collection[str] = ()) -> None:
    """In a migration: create `tables` as create_all would, without the indexes named in `leaving_out` (those a later
    revision adds: the tables as the creating revision made them, so a fresh database migrates step by step)."""
    for table in tables:
        bind.execute(CreateTable(table))
        for index in sorted(table.indexes, key=lambda index: str(index.name)):
            if index.name not in leaving_out:
                bind.execute(CreateIndex(index))


def job_rounds_table(metadata: MetaData) -> Table:
    """The table of when each job's last round started (`start_round`) and where its sweeps stopped
    (`keep_round_places`), in the database of a service whose jobs take turns across replicas
    (`uow.one_round_at_a_time`)."""
    return Table("job_rounds", metadata,
                 Column("job", String(64), primary_key=True),
                 Column("started_at", UTCDateTime, nullable=False),
                 Column("resume_after", JSON(none_as_null=True), nullable=True))


def round_due(last: datetime | None, now: datetime, interval: timedelta) -> bool:
    """Whether a job's round may start at `now`: none has yet, or the last started at least `interval` before. A last
    start after `now` (a replica whose clock runs ahead) does not hold the others back."""
    return last is None or not timedelta(0) <= now - last < interval


def start_round(session: Session, job_rounds: Table, job: str, now: datetime, interval: timedelta) -> bool:
    """Record `now` as the start of `job`'s round and True when it is due (`round_due`), else False, nothing changed.
    Read then written: call it holding the job's lock (`try_serialize_on`)."""
    last = session.execute(select(job_rounds.c.started_at).where(job_rounds.c.job == job)).scalar_one_or_none()
    if not round_due(last, now, interval):
        return False
    session.execute(conflict_insert(session, job_rounds).values(job=job, started_at=now)
                    .on_conflict_do_update(index_elements=[job_rounds.c.job], set_={"started_at": now}))
    return True


def round_places(session: Session, job_rounds: Table, job: str) -> dict[str, Any]:
    """Where the sweeps of `job`'s last round stopped, by sweep (RoundBudget.places): none when it reached their ends.
    The keys come back as the sweeps gave them, JSON arrays as tuples (a sweep's key: an int, a string or a tuple of
    them)."""
    kept = session.execute(select(job_rounds.c.resume_after).where(job_rounds.c.job == job)).scalar_one_or_none()
    return {sweep: _as_key(after) for sweep, after in (kept or {}).items()}


def _as_key(value: Any) -> Any:
    return tuple(_as_key(item) for item in value) if isinstance(value, list) else value


def keep_round_places(session: Session, job_rounds: Table, job: str, places: dict[str, Any]) -> None:
    """Record where the sweeps of `job`'s round stopped (its row, `start_round`'s): the next round goes on after them,
    whichever replica runs it."""
    session.execute(update(job_rounds).where(job_rounds.c.job == job).values(resume_after=places or None))


def settled_high_water(session: Session, column: Column[Any], *, wait_seconds: float,
                       clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> int | None:
    """The highest `column` (an id a sequence hands out as rows are inserted) at or below which no row of its table
    can still appear: the rows up to it are committed or gone for good, and a row committed later has a higher id.
    Where a walk of the rows changed since the last walk starts from next time: ids are handed out in the order rows
    are inserted but committed in any, so a row inserted before the highest id committed may commit after the walk
    read past it, and be missed. PostgreSQL: the highest id committed, once every transaction then inserting into the
    table has ended (its RowExclusiveLock, waited for up to `wait_seconds`; None when one still holds it), without
    keeping anyone waiting. SQLite: the highest id (one writer at a time, one process per database file)."""
    highest: int = session.execute(select(func.coalesce(func.max(column), 0))).scalar_one()
    if session.get_bind().dialect.name != "postgresql":
        return highest
    # Read after the highest id: a transaction that had inserted a row not committed then still holds the lock now.
    writers = select(text("virtualtransaction")).select_from(text("pg_locks")).where(
        text("database = (SELECT oid FROM pg_database WHERE datname = current_database()) "  # pg_locks spans them all
             "AND relation = to_regclass(:table) AND mode = 'RowExclusiveLock' AND granted AND pid <> pg_backend_pid()"))
    inserting = list(session.execute(writers, {"table": column.table.name}).scalars())
    deadline = clock() + wait_seconds
    while inserting:
        if clock() >= deadline:
            return None
        sleep(0.05)
        inserting = list(session.execute(writers.where(text("virtualtransaction = ANY(:inserting)")),
                                         {"table": column.table.name, "inserting": inserting}).scalars())
    return highest


def counted_page(session: Session, entity: type[T], table: Table, where: Sequence[ColumnElement[bool]],
                 order_by: Sequence[ColumnElement[Any]], offset: int, limit: int) -> tuple[list[T], int]:
    """One page of the `entity` rows of `table` that match `where`, in `order_by` order, and how many match in all:
    what a paged list answers."""
    total = session.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
    found = session.execute(select(entity).where(*where).order_by(*order_by).offset(offset).limit(limit)).scalars()
    return list(found), total


def skip_locked(session: Session, query: SelectT) -> SelectT:
    """The query's rows that no other transaction holds, locked till this one ends (FOR UPDATE SKIP LOCKED): how
    jobs and replicas share out work. PostgreSQL only; SQLite serialises writers and has no row locks."""
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


class Mapping:
    """A service's imperative mapping of domain classes onto its tables, made once and only when asked.

    Nothing is mapped at import: build_app and the database tests call `start()`, and calling it
    again (from any thread) changes nothing.
    """

    def __init__(self, map_classes: Callable[[registry], None]) -> None:
        self._map_classes = map_classes
        self._registry = registry()
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if not self._registry.mappers:
                self._map_classes(self._registry)


def refused_data(exc: DataError) -> str:
    """Why the database refused a value (NUL in text, a number out of range): the driver's first line, not
    SQLAlchemy's text, which repeats the statement and every parameter (logs and dead letters keep it short)."""
    return (str(exc.orig).splitlines() or [""])[0]
