"""The session timeouts of a service's PostgreSQL connections (DB_STATEMENT_TIMEOUT_SECONDS and its kin): every service
session has them, a statement past them is cut short and counted, a job's round keeps its lock while it runs, and a
migration has none of them, whatever the database defaults to."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from mall.events.v1.tracking_events_pb2 import PageViewed
from sqlalchemy import Engine, create_engine, make_url, pool, select, text
from sqlalchemy.exc import OperationalError

from services.common import migrations
from services.common.config import DatabaseTimeouts, KafkaSettings
from services.common.db import cancelled_by_timeout, make_engine, utcnow
from services.common.metrics import DB_STATEMENTS_CANCELLED
from services.common.outbox import OutboxRelay, outbox
from services.common.uow import SqlUnitOfWork, one_round_at_a_time
from tests.fixtures.outbox import unpublished
from tests.fixtures.postgres import (
    drop_databases,
    migrations_dir,
    recreate_database,
    session_database_name,
    start_thread,
)

pytestmark = pytest.mark.integration

TIMEOUTS = DatabaseTimeouts(statement_seconds=0.3, lock_seconds=0.2, idle_in_transaction_seconds=0.2)


@pytest.fixture
def impatient(migrated_database: Callable[[str], str]) -> Iterator[Engine]:
    """A service engine on the analytics test database whose sessions have TIMEOUTS."""
    engine = make_engine(migrated_database("analytics"), TIMEOUTS)
    yield engine
    engine.dispose()


@pytest.fixture
def empty_database() -> Iterator[str]:
    name = session_database_name("it", "timeouts")
    url = recreate_database(name)
    yield url
    drop_databases([name])


def test_every_session_of_a_service_engine_has_the_timeouts(impatient: Engine) -> None:
    with impatient.connect() as conn:
        shown = [conn.execute(text(f"SHOW {name}")).scalar_one()
                 for name in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")]

    assert shown == ["300ms", "200ms", "200ms"]


def test_a_statement_past_the_statement_timeout_is_cut_short_counted_and_the_connection_serves_on(
        impatient: Engine) -> None:
    counted = DB_STATEMENTS_CANCELLED.labels("statement_timeout")._value.get()

    with impatient.connect() as conn:
        with pytest.raises(OperationalError) as raised:
            conn.execute(text("SELECT pg_sleep(5)"))
        conn.rollback()
        after = conn.execute(text("SELECT 1")).scalar_one()

    assert (cancelled_by_timeout(raised.value), after) == ("statement_timeout", 1)
    assert DB_STATEMENTS_CANCELLED.labels("statement_timeout")._value.get() - counted == 1


def test_a_job_round_keeps_its_lock_while_its_lead_transaction_sits_idle_past_the_idle_timeout(
        impatient: Engine) -> None:
    watcher = create_engine(impatient.url, poolclass=pool.NullPool)

    def round_() -> int:
        """Wait until the lead's transaction, holding the round's advisory lock, has sat idle for three times the
        idle-in-transaction timeout (1), or has been ended by the server (0)."""
        deadline = time.monotonic() + 30
        with watcher.connect() as conn:
            while time.monotonic() < deadline:
                held, idle_long = conn.execute(text(
                    "SELECT count(*), count(*) FILTER (WHERE a.state = 'idle in transaction' AND "
                    "clock_timestamp() - a.state_change > interval '600 milliseconds') FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                    "AND a.datname = current_database()")).one()
                conn.commit()  # a transaction sees one snapshot of pg_stat_activity
                if idle_long or not held:
                    return 1 if idle_long else 0
                time.sleep(0.02)  # polling for the server's view of the lead session, not for a race to pass
        raise AssertionError("the lead transaction neither sat idle nor ended")

    try:
        ran = one_round_at_a_time(lambda: SqlUnitOfWork(impatient, "analytics"), "timeouts-test", round_,
                                  now=utcnow(), interval=timedelta(0))
    finally:
        watcher.dispose()

    assert ran == 1


class RecordingRelay(OutboxRelay):
    """A relay whose broker acknowledges every row at once: what it sent, in order."""

    def __init__(self, engine: Engine) -> None:
        super().__init__("analytics", engine, KafkaSettings(bootstrap_servers="unused:9092", max_poll_interval_ms=1000,
                                                            topic_prefix="", request_timeout_ms=1000))
        self.sent: list[str] = []

    def _send(self, rows: list) -> dict[int, str]:  # type: ignore[type-arg]
        self.sent.extend(row.event_id for row in rows)
        return {}


def test_a_relay_pass_waiting_on_an_outbox_row_another_transaction_holds_gives_up_and_the_next_pass_marks_it(
        impatient: Engine) -> None:
    with SqlUnitOfWork(impatient, "analytics") as uow:
        event_id = uow.publish(PageViewed(device_id="d-1", page="/"), aggregate_id="d-1")
        uow.commit()
    relay = RecordingRelay(impatient)
    stuck = create_engine(impatient.url, poolclass=pool.NullPool)  # another process's session, with no timeouts
    results: dict[str, object] = {}
    try:
        with stuck.connect() as holder:  # a stuck transaction holding the row
            assert holder.execute(select(outbox.c.id).with_for_update()).all()
            try:
                passing = start_thread(results, "pass", relay.publish_pending)
                passing.join(timeout=30)
                assert not passing.is_alive(), "the relay still waits for the row"
            finally:
                holder.rollback()
                passing.join()
        first_pass_left = unpublished(impatient)
        published = relay.publish_pending()
    finally:
        relay.close()
        stuck.dispose()

    assert (results["pass"], first_pass_left) == ("LockNotAvailable", 1)  # run() logs it and passes again
    assert (published, relay.sent, unpublished(impatient)) == (1, [event_id, event_id], 0)  # at least once


REVISION = '''"""Records the session timeouts a migration runs under, after a statement longer than the database's default.

Revision ID: 9999
Revises: {head}
"""

from alembic import op

revision = "9999"
down_revision = "{head}"


def upgrade() -> None:
    op.execute("SELECT pg_sleep(0.3)")
    op.execute("CREATE TABLE seen AS SELECT current_setting('statement_timeout') AS statement_timeout, "
               "current_setting('idle_in_transaction_session_timeout') AS idle_in_transaction")


def downgrade() -> None:
    op.drop_table("seen")
'''


def test_a_migration_runs_without_a_statement_timeout_even_where_the_database_sets_one(
        empty_database: str, tmp_path: Path) -> None:
    admin = create_engine(empty_database, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    name = make_url(empty_database).database
    with admin.connect() as conn:  # as an operator might, for every session of the services' role
        conn.execute(text(f'ALTER DATABASE "{name}" SET statement_timeout = 200'))
        conn.execute(text(f'ALTER DATABASE "{name}" SET idle_in_transaction_session_timeout = 200'))
    history = tmp_path / "migrations"
    shutil.copytree(migrations_dir("analytics"), history, ignore=shutil.ignore_patterns("__pycache__"))
    head = ScriptDirectory.from_config(migrations.alembic_config(empty_database, history)).get_current_head()
    (history / "versions" / "9999_seen.py").write_text(REVISION.format(head=head))

    migrations.upgrade(empty_database, history)

    with admin.connect() as conn:
        seen = conn.execute(text("SELECT statement_timeout, idle_in_transaction FROM seen")).all()
    admin.dispose()
    assert seen == [("0", "0")]
