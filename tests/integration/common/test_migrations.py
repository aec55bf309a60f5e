"""Migrating a service database: pods take turns on an advisory lock, each revision commits on its own, and every
service upgrades from nothing to head on PostgreSQL and SQLite."""

from __future__ import annotations

import importlib
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Column,
    Connection,
    DefaultClause,
    Engine,
    ForeignKeyConstraint,
    Index,
    TextClause,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    pool,
    text,
)
from sqlalchemy.exc import DBAPIError

from services.common import migrations
from services.common.config import SERVICES
from tests.fixtures.postgres import (
    drop_databases,
    migrations_dir,
    recreate_database,
    session_database_name,
    wait_until_blocked,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def empty_database() -> Iterator[str]:
    name = session_database_name("it", "migrating")
    url = recreate_database(name)
    yield url
    drop_databases([name])


def test_two_concurrent_upgrades_wait_for_each_other_and_both_succeed(
        empty_database: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=migrations.__name__)
    engine = create_engine(empty_database, poolclass=pool.NullPool)
    outcomes: list[str] = []

    def migrate() -> None:
        try:
            migrations.upgrade(empty_database, migrations_dir("order"))
            outcomes.append("ok")
        except Exception as exc:  # the test reports it: without the lock the loser fails on the winner's tables
            outcomes.append(repr(exc))

    with engine.connect() as holder:
        # The test holds the lock first, so both upgrades are certainly running when it lets go.
        holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": migrations.MIGRATION_LOCK})
        holder.commit()
        pods = [threading.Thread(target=migrate) for _ in range(2)]
        for pod in pods:
            pod.start()
        wait_until(lambda: len(told_to_wait(caplog)) == 2)
        assert inspect(holder).get_table_names() == []  # both wait; nothing migrated yet
        holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": migrations.MIGRATION_LOCK})
        holder.commit()
        for pod in pods:
            pod.join(timeout=120)

    with engine.connect() as conn:
        locks_left = conn.execute(text(f"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND {THIS_DATABASE}")
                                  ).scalar_one()
    engine.dispose()
    assert (outcomes, applied(empty_database)[0], locks_left) == (["ok", "ok"], heads("order"), 0)


def test_an_index_built_concurrently_by_the_migrating_pod_finishes_while_another_pod_waits_for_the_lock(
        empty_database: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=migrations.__name__)
    engine = create_engine(empty_database, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    outcomes: list[str] = []

    def migrate() -> None:
        try:
            migrations.upgrade(empty_database, migrations_dir("analytics"))
            outcomes.append("ok")
        except Exception as exc:  # the test reports it: a deadlock fails one side
            outcomes.append(repr(exc))

    with engine.connect() as migrating_pod:  # holds the lock and builds an index, as a revision's migration would
        migrating_pod.execute(text("CREATE TABLE events_probe (n integer)"))
        migrating_pod.execute(text("SELECT pg_advisory_lock(:key)"), {"key": migrations.MIGRATION_LOCK})
        waiting_pod = threading.Thread(target=migrate)
        waiting_pod.start()
        wait_until(lambda: bool(told_to_wait(caplog)) and asked_for_the_lock(migrating_pod))

        migrating_pod.execute(text("CREATE INDEX CONCURRENTLY ix_events_probe ON events_probe (n)"))
        migrating_pod.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": migrations.MIGRATION_LOCK})
        waiting_pod.join(timeout=120)
        valid = migrating_pod.execute(text("SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_events_probe'::regclass")
                                      ).scalar_one()
    engine.dispose()

    assert (valid, outcomes, applied(empty_database)[0]) == (True, ["ok"], heads("analytics"))


def test_a_failing_revision_leaves_the_revisions_before_it_applied(empty_database: str, tmp_path: Path) -> None:
    history = tmp_path / "migrations"
    shutil.copytree(migrations_dir("analytics"), history, ignore=shutil.ignore_patterns("__pycache__"))
    (history / "versions" / "9999_fails.py").write_text(FAILING_REVISION.format(head=heads("analytics")[0]))

    with pytest.raises(DBAPIError, match="division by zero"):
        migrations.upgrade(empty_database, history)

    versions, tables = applied(empty_database)
    assert (versions, "raw_events" in tables, "half_done" in tables) == (heads("analytics"), True, False)


FAILING_REVISION = '''"""A revision that creates a table, then fails.

Revision ID: 9999
Revises: {head}
"""

import sqlalchemy as sa
from alembic import op

revision = "9999"
down_revision = "{head}"


def upgrade() -> None:
    op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
    op.execute("SELECT 1 / 0")


def downgrade() -> None:
    op.drop_table("half_done")
'''


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
@pytest.mark.parametrize("service", SERVICES)
def test_every_service_upgrades_from_nothing_to_head(service: str, backend: str, tmp_path: Path,
                                                      request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("empty_database") if backend == "postgresql" else f"sqlite:///{tmp_path}/{service}.db"

    migrations.upgrade(url, migrations_dir(service))

    versions, tables = applied(url)
    metadata = importlib.import_module(f"services.{service}.db").metadata
    assert (versions, set(metadata.tables) - tables, unfinished_indexes(url)) == (heads(service), set(), [])


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_migrated_to_head_has_the_columns_indexes_and_keys_its_code_declares(
        service: str, empty_database: str) -> None:
    """Production's schema is what the migrations built; the code relies on what its tables declare (a NOT NULL, a
    server default, an index a query reads through). Alembic's autogenerate compares the two as `alembic revision
    --autogenerate` would: tables, columns, types, nullability, server defaults, indexes, unique constraints and
    foreign keys (not CHECK constraints)."""
    migrations.upgrade(empty_database, migrations_dir(service))
    metadata = migrations.target_metadata(importlib.import_module(f"services.{service}.db").metadata)

    engine = create_engine(empty_database, poolclass=pool.NullPool)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "compare_type": True, "compare_server_default": True,
            "include_name": lambda name, kind, _parents: not (kind == "table" and name == "alembic_version")})
        differences = compare_metadata(context, metadata)
    engine.dispose()

    assert not differences, f"{service}: migrations at head and the code's tables differ:\n" + "\n".join(
        map(described, differences))


@pytest.fixture
def declared_database() -> Iterator[str]:
    """A second empty database, for a service's tables as its code declares them (create_all)."""
    name = session_database_name("it", "declared")
    url = recreate_database(name)
    yield url
    drop_databases([name])


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_migrated_to_head_defines_its_indexes_and_constraints_as_its_code_does(
        service: str, empty_database: str, declared_database: str) -> None:
    """What compare_metadata does not look at: a partial index's predicate, an expression index, an operator class,
    a CHECK constraint's condition, a foreign key's ON DELETE. PostgreSQL spells each definition the same way whoever
    created it, so the database the migrations built and one created from the code's tables must spell them alike."""
    migrations.upgrade(empty_database, migrations_dir(service))
    engine = create_engine(declared_database, poolclass=pool.NullPool)
    with engine.begin() as conn:
        for metadata in migrations.target_metadata(importlib.import_module(f"services.{service}.db").metadata):
            metadata.create_all(conn)
    engine.dispose()

    migrated, declared = definitions(empty_database), definitions(declared_database)

    differences = [f"{name}: the migrations make {migrated.get(name)!r}, the code declares {declared.get(name)!r}"
                   for name in sorted(migrated.keys() | declared.keys()) if migrated.get(name) != declared.get(name)]
    assert not differences, f"{service}: migrations at head and the code's tables differ:\n" + "\n".join(differences)


def definitions(url: str) -> dict[str, str]:
    """Each index and constraint of the database's tables (but alembic_version), as PostgreSQL spells it."""
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        found = conn.execute(text(
            "SELECT 'index ' || indexname || ' on ' || tablename, indexdef FROM pg_indexes "
            "WHERE schemaname = 'public' AND tablename <> 'alembic_version' "
            "UNION ALL SELECT 'constraint ' || conname || ' on ' || conrelid::regclass, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conrelid <> 0 "
            "AND conrelid::regclass::text <> 'alembic_version'")).all()
    engine.dispose()
    return dict(found)  # type: ignore[arg-type]


def described(difference: tuple | list) -> str:  # type: ignore[type-arg]
    """One of compare_metadata's differences as a line: what differs, and on which side it is."""
    if isinstance(difference, list):  # a column's modify_* steps
        return "\n".join(map(described, difference))
    kind = difference[0]
    if kind.startswith("modify_"):
        _, _schema, table, column, _existing, migrated, declared = difference
        return (f"{table}.{column} {kind.removeprefix('modify_')}: the migrations make it {shown(migrated)}, "
                f"the code declares {shown(declared)}")
    side = "only the code declares it" if kind.startswith("add_") else "only the migrations make it"
    return f"{kind} {shown(difference[-1])}: {side}"


def shown(thing: object) -> str:
    if isinstance(thing, DefaultClause):
        thing = thing.arg
    if isinstance(thing, TextClause):
        return repr(thing.text)
    if isinstance(thing, Index | UniqueConstraint | ForeignKeyConstraint) and thing.table is not None:
        return f"{type(thing).__name__} {thing.name} on {thing.table.name}({', '.join(c.name for c in thing.columns)})"
    if isinstance(thing, Column):
        return f"column {thing.table.name}.{thing.name} {thing.type}{'' if thing.nullable else ' NOT NULL'}"
    return "none" if thing is None else repr(thing)


def test_the_ledger_index_is_rebuilt_from_the_previous_head_while_events_are_written(empty_database: str) -> None:
    migrations.upgrade(empty_database, migrations_dir("analytics"), "0007")
    engine = create_engine(empty_database, poolclass=pool.NullPool)
    with engine.connect() as writing, engine.connect() as writing_later:
        insert_event(writing, "e-1")  # open: the index build waits for this transaction to end
        rollout = threading.Thread(target=migrations.upgrade, args=(empty_database, migrations_dir("analytics")))
        rollout.start()
        wait_until_blocked(engine, rollout)

        writing_later.execute(text("SET lock_timeout = '2s'"))  # a plain CREATE INDEX would queue this insert
        insert_event(writing_later, "e-2")
        writing_later.commit()
        writing.commit()
        rollout.join(timeout=120)
        predicate = writing.execute(text(
            "SELECT pg_get_expr(indpred, indrelid) FROM pg_index WHERE indexrelid = 'ix_raw_events_ledger'::regclass"
        )).scalar_one()
        events = writing.execute(text("SELECT count(*) FROM raw_events")).scalar_one()
    engine.dispose()

    assert (applied(empty_database)[0], events, unfinished_indexes(empty_database)) == (heads("analytics"), 2, [])
    assert "late-payment-refunded" in predicate


def test_a_revision_queued_behind_a_long_transaction_gives_up_its_place_and_applies_once_it_ends(
        empty_database: str, caplog: pytest.LogCaptureFixture) -> None:
    migrations.upgrade(empty_database, migrations_dir("order"), "0014")  # 0015 adds a column to refunds
    caplog.set_level(logging.INFO, logger=migrations.__name__)
    engine = create_engine(empty_database, poolclass=pool.NullPool)
    outcomes: list[str] = []

    def migrate() -> None:
        try:
            migrations.upgrade(empty_database, migrations_dir("order"), lock_timeout_seconds=0.2, lock_attempts=1000,
                               lock_pause_seconds=0.05)
            outcomes.append("ok")
        except Exception as exc:  # the test reports it
            outcomes.append(repr(exc))

    with engine.connect() as report, engine.connect() as writer, engine.connect() as looking:
        report.execute(text("SELECT count(*) FROM refunds"))  # a long read: ACCESS SHARE until it ends
        rollout = threading.Thread(target=migrate)
        rollout.start()
        wait_until(lambda: waits_for_access_exclusive(looking, "refunds"))

        # Queued behind the ADD COLUMN, a writer would wait as long as the report does; it waits at most the
        # migration's lock timeout (0.2 s), far less than its own.
        writer.execute(text("SET lock_timeout = '5s'"))
        writer.execute(text("UPDATE refunds SET updated_at = now() WHERE status = 'PENDING'"))
        writer.commit()
        version_while_blocked = looking.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        report.commit()  # the report ends
        rollout.join(timeout=120)
    engine.dispose()

    retried = [r for r in caplog.records if r.name == migrations.__name__ and "trying again" in r.getMessage()]
    assert (version_while_blocked, outcomes, applied(empty_database)[0]) == ("0014", ["ok"], heads("order"))
    assert retried


def test_a_revision_that_never_gets_its_lock_fails_after_its_attempts_and_leaves_nothing_held(
        empty_database: str, caplog: pytest.LogCaptureFixture) -> None:
    migrations.upgrade(empty_database, migrations_dir("order"), "0014")
    caplog.set_level(logging.INFO, logger=migrations.__name__)
    engine = create_engine(empty_database, poolclass=pool.NullPool)
    with engine.connect() as report:
        report.execute(text("SELECT count(*) FROM refunds"))
        with pytest.raises(DBAPIError, match="lock timeout"):
            migrations.upgrade(empty_database, migrations_dir("order"), lock_timeout_seconds=0.1, lock_attempts=3,
                               lock_pause_seconds=0)
        others = report.execute(text(f"SELECT count(*) FROM pg_locks WHERE pid <> pg_backend_pid() AND {THIS_DATABASE}")
                                ).scalar_one()
        columns = {c["name"] for c in inspect(report).get_columns("refunds")}
        report.commit()
    engine.dispose()

    retried = [r for r in caplog.records if r.name == migrations.__name__ and "trying again" in r.getMessage()]
    assert (applied(empty_database)[0], "points_returned" in columns, others, len(retried)) == (["0014"], False, 0, 2)


def test_an_index_build_waits_for_older_transactions_longer_than_the_lock_timeout(empty_database: str) -> None:
    migrations.upgrade(empty_database, migrations_dir("analytics"), "0007")  # 0008 rebuilds an index concurrently
    engine = create_engine(empty_database, poolclass=pool.NullPool)
    outcomes: list[str] = []

    def migrate() -> None:
        try:  # one attempt: a lock timeout would fail the upgrade
            migrations.upgrade(empty_database, migrations_dir("analytics"), lock_timeout_seconds=0.05, lock_attempts=1)
            outcomes.append("ok")
        except Exception as exc:  # the test reports it
            outcomes.append(repr(exc))

    with engine.connect() as writing, engine.connect() as looking:
        insert_event(writing, "e-1")  # open: the index build waits for this transaction to end
        rollout = threading.Thread(target=migrate)
        rollout.start()
        # The build has waited twenty times the lock timeout for the writing transaction (or failed).
        wait_until(lambda: not rollout.is_alive() or building_index_waited_a_second(looking))
        writing.commit()
        rollout.join(timeout=120)
    engine.dispose()

    assert (outcomes, applied(empty_database)[0], unfinished_indexes(empty_database)) == (
        ["ok"], heads("analytics"), [])


# Checks added to tables written all day, with the revision before the one adding each.
CHECKS_ADDED_TO_BUSY_TABLES = [("member", "0009", "points_holds", "ck_points_holds_expired_within_points"),
                               ("order", "0014", "refunds", "ck_refunds_points_not_negative")]


@pytest.mark.parametrize(("service", "previous", "table", "check"), CHECKS_ADDED_TO_BUSY_TABLES)
def test_a_check_added_to_a_busy_table_is_validated_once_the_add_column_lock_is_gone(
        empty_database: str, service: str, previous: str, table: str, check: str) -> None:
    migrations.upgrade(empty_database, migrations_dir(service), previous)
    observer = create_engine(empty_database, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    locks_when_validating: dict[str, list[str]] = {}
    with observer.connect() as looking:
        def note_locks(_conn: Connection, _cursor: object, statement: str, *_: object) -> None:
            if "VALIDATE CONSTRAINT" in statement:  # the migrating session's locks on the table as it starts the scan
                locks_when_validating[check] = looking.execute(text(
                    "SELECT mode FROM pg_locks WHERE relation = to_regclass(:table) AND pid <> pg_backend_pid()"),
                    {"table": table}).scalars().all()

        with listening("before_cursor_execute", note_locks):
            migrations.upgrade(empty_database, migrations_dir(service))
        validated = looking.execute(text("SELECT convalidated FROM pg_constraint WHERE conname = :check"),
                                    {"check": check}).scalar_one()
    observer.dispose()

    assert (locks_when_validating, validated) == ({check: []}, True)


@pytest.mark.parametrize(("service", "previous", "table", "check"), CHECKS_ADDED_TO_BUSY_TABLES)
def test_a_revision_cut_short_while_validating_its_check_runs_again(
        empty_database: str, service: str, previous: str, table: str, check: str) -> None:
    migrations.upgrade(empty_database, migrations_dir(service), previous)

    def pod_killed(_conn: Connection, _cursor: object, statement: str, *_: object) -> None:
        if "VALIDATE CONSTRAINT" in statement:
            raise PodKilled
    with listening("before_cursor_execute", pod_killed), pytest.raises(PodKilled):
        migrations.upgrade(empty_database, migrations_dir(service))
    migrations.upgrade(empty_database, migrations_dir(service))

    engine = create_engine(empty_database, poolclass=pool.NullPool)
    with engine.connect() as conn:
        validated = conn.execute(text("SELECT convalidated FROM pg_constraint WHERE conname = :check"),
                                 {"check": check}).scalars().all()
    engine.dispose()
    assert (applied(empty_database)[0], validated) == (heads(service), [True])


class PodKilled(Exception):
    """The migrating process ending mid-revision."""


@contextmanager
def listening(identifier: str, listener: Callable[..., None]) -> Iterator[None]:
    """`listener` on every engine's `identifier` event (the runner makes its own engine) while the block runs."""
    event.listen(Engine, identifier, listener)
    try:
        yield
    finally:
        event.remove(Engine, identifier, listener)


def insert_event(conn: Connection, event_id: str) -> None:
    conn.execute(text("INSERT INTO raw_events (event_id, event_type, aggregate_id, occurred_at, day, payload) "
                      "VALUES (:id, 'order-paid', 'O1', '2026-12-06 10:00:00+00', '2026-12-06', '')"), {"id": event_id})


THIS_DATABASE = "database = (SELECT oid FROM pg_database WHERE datname = current_database())"


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_an_older_image_finds_a_database_a_newer_one_migrated_ready_and_changes_nothing(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture) -> None:
    """`kubectl rollout undo` after an expand migration: the previous image's server pods run `migrate` in their init
    container against a database at a revision that image does not know. That is migrated (its schema is a superset
    of the older code's, as wait-migrated also holds); failing there left every rolled-back pod in Init."""
    caplog.set_level(logging.INFO, logger=migrations.__name__)
    url = request.getfixturevalue("empty_database") if backend == "postgresql" else f"sqlite:///{tmp_path}/order.db"
    migrations.upgrade(url, migrations_dir("order"))
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_of_a_newer_image'"))
    engine.dispose()

    migrations.upgrade(url, migrations_dir("order"))

    assert applied(url)[0] == ["9999_of_a_newer_image"]
    assert any("newer than this code's head" in record.getMessage() for record in caplog.records)


def heads(service: str) -> list[str]:
    return list(ScriptDirectory.from_config(migrations.alembic_config("sqlite://", migrations_dir(service))).get_heads())


def applied(url: str) -> tuple[list[str], set[str]]:
    """The revisions recorded in the database and its tables."""
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() if (
            "alembic_version" in tables) else []
    engine.dispose()
    return list(versions), tables - {"alembic_version"}


def unfinished_indexes(url: str) -> list[str]:
    """PostgreSQL indexes a concurrent build left invalid or under its temporary name (none on SQLite)."""
    if not url.startswith("postgresql"):
        return []
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        names = conn.execute(text("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                  "WHERE NOT i.indisvalid OR c.relname LIKE '%\\_building'")).scalars().all()
    engine.dispose()
    return list(names)


def told_to_wait(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == migrations.__name__ and "waiting" in r.getMessage()]


def asked_for_the_lock(conn: Connection) -> bool:
    """Whether the other session on the database (the pod told to wait) waits for a lock or sits between tries."""
    return bool(conn.execute(text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND (wait_event_type = 'Lock' OR state = 'idle')")).scalar_one())


def building_index_waited_a_second(conn: Connection) -> bool:
    """Whether another session's CREATE INDEX CONCURRENTLY has waited over a second for a lock (an older transaction)."""
    found = conn.execute(text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
        "AND query LIKE 'CREATE INDEX CONCURRENTLY%' AND clock_timestamp() - query_start > interval '1 second'")
    ).scalar_one()
    conn.commit()  # a transaction sees one snapshot of pg_stat_activity
    return bool(found)


def waits_for_access_exclusive(conn: Connection, table: str) -> bool:
    """Whether another session waits for an ACCESS EXCLUSIVE lock on `table` (a migration's ALTER TABLE)."""
    found = conn.execute(text(
        "SELECT count(*) FROM pg_locks WHERE relation = to_regclass(:table) AND mode = 'AccessExclusiveLock' "
        "AND NOT granted"), {"table": table}).scalar_one()
    conn.commit()
    return bool(found)


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)  # polling for the other threads to get there, not for a race to pass


PAID_NOTE = "refund {} was closed here but WeChat Pay paid it: 2000 fen may have been refunded twice; finance must check"


def order_with_refunds(url: str, refunds: tuple[tuple[str, str], ...], notes: dict[str, str]) -> None:
    """Order O1 (paid through WeChat Pay) with `refunds` (number, status) of 2000 fen each, and the paid-after-close
    step of each refund in `notes` (number: when), as the release before 0017 records it."""
    engine = create_engine(url, poolclass=pool.NullPool)
    at = "2026-12-01 08:00:00+00:00"
    columns = {"order_no": "O1", "user_id": 1, "status": "SHIPPED", "items_total_fen": 3000, "level_discount_fen": 0,
               "coupon_discount_fen": 0, "points_discount_fen": 0, "freight_fen": 0, "payable_fen": 3000,
               "coupon_id": 0, "points_used": 0, "note": "", "ship_name": "", "ship_phone": "", "ship_province": "",
               "ship_city": "", "ship_district": "", "ship_detail": "", "pay_deadline": at, "pay_channel": "wechat",
               "out_trade_no": "O1", "created_at": at, "updated_at": at}
    with engine.begin() as conn:
        if not conn.execute(text("SELECT count(*) FROM orders")).scalar_one():
            conn.execute(text(f"INSERT INTO orders ({', '.join(columns)}) "
                              f"VALUES ({', '.join(':' + c for c in columns)})"), columns)
        for refund_no, status in refunds:
            conn.execute(text("INSERT INTO refunds (refund_no, order_id, source, status, amount_fen, channel, "
                              "channel_refund_id, reason, actor, created_at, updated_at) VALUES (:no, 1, "
                              "'after_sale:1', :status, 2000, 'wechat', '', '', 'staff:8', :at, :at)"),
                         {"no": refund_no, "status": status, "at": at})
        for refund_no, noted_at in notes.items():
            conn.execute(text("INSERT INTO order_transitions (order_id, status, actor, reason, at) VALUES (1, "
                              "'SHIPPED', 'wechatpay', :reason, :at)"),
                         {"reason": PAID_NOTE.format(refund_no), "at": noted_at})
    engine.dispose()


def paid_after_close_marks(url: str) -> list[tuple[str, str | None]]:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        marked = conn.execute(text("SELECT refund_no, paid_after_close_at FROM refunds ORDER BY id")).all()
    engine.dispose()
    return [(no, utc_text(value)) for no, value in marked]


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_order_0017_marks_the_closed_refunds_wechat_pay_paid_after_all_from_their_orders_history(
        empty_database: str, tmp_path: Path, backend: str) -> None:
    url = empty_database if backend == "postgresql" else f"sqlite:///{tmp_path}/order.db"
    migrations.upgrade(url, migrations_dir("order"), "0016")
    order_with_refunds(url, (("RFPAID", "CLOSED"), ("RFCLOSED", "CLOSED"), ("RFDONE", "SUCCESS")),
                       {"RFPAID": "2026-12-02 09:30:00+00:00"})

    migrations.upgrade(url, migrations_dir("order"), "0017")

    assert paid_after_close_marks(url) == [("RFPAID", "2026-12-02 09:30:00"), ("RFCLOSED", None), ("RFDONE", None)]


def utc_text(value: object) -> str | None:
    """A timestamp read back as "YYYY-MM-DD HH:MM:SS" in UTC (PostgreSQL answers a datetime, SQLite its text)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return None if value is None else str(value)[:19]


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_member_0022_tells_the_shopper_of_earlier_refused_and_failed_transfers_a_fixed_sentence_never_the_notes(
        empty_database: str, tmp_path: Path, backend: str) -> None:
    url = empty_database if backend == "postgresql" else f"sqlite:///{tmp_path}/member.db"
    migrations.upgrade(url, migrations_dir("member"), "0021")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.begin() as conn:
        for no, status, note in (("W1", "FAILED", "ok [payout failed: ACCOUNT_FROZEN]"),
                                 ("W2", "PENDING_REVIEW", "[payout refused: NAME_MISMATCH]"),
                                 ("W3", "REJECTED", "internal: flagged by risk team"),
                                 ("W4", "PENDING_REVIEW", ""), ("W5", "PAID", "ok")):
            conn.execute(text("INSERT INTO withdrawals (withdrawal_no, user_id, amount_fen, status, note, "
                              "payout_txn_id, created_at) VALUES (:no, 1, 6000, :status, :note, '', :at)"),
                         {"no": no, "status": status, "note": note, "at": "2026-12-01 08:00:00+00:00"})

    migrations.upgrade(url, migrations_dir("member"), "0022")

    with engine.connect() as conn:
        told = conn.execute(text("SELECT withdrawal_no, note, shopper_reason FROM withdrawals ORDER BY id")).all()
    engine.dispose()
    assert [tuple(row) for row in told] == [
        ("W1", "ok [payout failed: ACCOUNT_FROZEN]", "the transfer failed; the amount is back in your balance"),
        ("W2", "[payout refused: NAME_MISMATCH]", "the transfer could not be made; finance will review it"),
        ("W3", "internal: flagged by risk team", ""), ("W4", "", ""), ("W5", "ok", "")]
