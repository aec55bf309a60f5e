"""Alembic, one migration history per service, run programmatically (`python -m services.X migrate`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command, context, op
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, create_engine, engine_from_config, make_url, pool, text
from sqlalchemy.exc import DBAPIError

from services.common import deadletters, idempotency  # noqa: F401  (register their tables in infra_metadata)
from services.common.config import ConfigError, Env
from services.common.db import advisory_key
from services.common.outbox import infra_metadata

log = logging.getLogger(__name__)

# Every new server pod runs `migrate` as an init container: on PostgreSQL they take turns on this
# session advisory lock (one per database), so the second finds the schema at head instead of
# failing on the first one's tables.
MIGRATION_LOCK = advisory_key("minimall-migrate")
# A pod waiting for that lock asks for it again this often (pg_try_advisory_lock) rather than blocking in
# pg_advisory_lock: a statement blocked on the lock holds a snapshot, and CREATE INDEX CONCURRENTLY, run by the pod
# holding the lock, waits for every older snapshot to end; PostgreSQL ends that deadlock by failing one side, maybe
# the index build (which leaves an invalid index behind).
LOCK_RETRY_SECONDS = 0.5

# A revision's DDL (ADD COLUMN, ADD CONSTRAINT, DROP ...) needs an ACCESS EXCLUSIVE lock on its table. Queued behind a
# long transaction on that table (a slow report, a stuck consumer), it would block every reader and writer that comes
# after it until that transaction ends: the site stalls. So on PostgreSQL a revision waits at most this long for any
# lock (lock_timeout); then its transaction is rolled back, which lets the queue behind it through, and after a pause
# the upgrade is tried again from that revision, up to MIGRATION_LOCK_ATTEMPTS times in all before `migrate` fails (the
# kubelet then restarts the init container, with back-off). Statements run outside a transaction
# (build_index_concurrently, add_check_constraint's validation) take no lock that blocks writers and wait, by design,
# for the transactions older than them: they have no lock timeout (a concurrent build cut short leaves an invalid index).
DDL_LOCK_TIMEOUT_SECONDS = 5.0  # MIGRATION_LOCK_TIMEOUT_SECONDS
DDL_LOCK_TIMEOUT_MAX_SECONDS = 3600.0  # waiting longer, a DDL would no longer keep the site from stalling
DDL_LOCK_ATTEMPTS = 10  # MIGRATION_LOCK_ATTEMPTS
DDL_LOCK_ATTEMPTS_MAX = 1000
# Between attempts. A constant like the module's other paces (LOCK_RETRY_SECONDS, WAIT_POLL_SECONDS) and every retry
# pause of the services: the environment sets how long in all (the timeout, the attempts), not how often to look.
DDL_LOCK_PAUSE_SECONDS = 10.0
# The session timeouts a migration's connection runs without (a role's or a database's defaults included).
NO_LIMITS = ("statement_timeout", "idle_in_transaction_session_timeout")
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for a lock_timeout that ran out


@dataclass(frozen=True)
class MigrationSettings:
    """How long `migrate` lets a revision wait for a table's lock, and how often it tries (DDL_LOCK_TIMEOUT_SECONDS);
    read when the process starts, a bad value a ConfigError then, before any database is touched."""

    lock_timeout_seconds: float = DDL_LOCK_TIMEOUT_SECONDS
    lock_attempts: int = DDL_LOCK_ATTEMPTS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MigrationSettings:
        env = Env(environ)
        lock_timeout_seconds = env.float("MIGRATION_LOCK_TIMEOUT_SECONDS", DDL_LOCK_TIMEOUT_SECONDS)
        if not 0 < lock_timeout_seconds <= DDL_LOCK_TIMEOUT_MAX_SECONDS:
            raise ConfigError(f"MIGRATION_LOCK_TIMEOUT_SECONDS must be more than 0 and at most "
                              f"{DDL_LOCK_TIMEOUT_MAX_SECONDS:g}, got {env.environ['MIGRATION_LOCK_TIMEOUT_SECONDS']!r}")
        return cls(lock_timeout_seconds=lock_timeout_seconds,
                   lock_attempts=env.int_within("MIGRATION_LOCK_ATTEMPTS", DDL_LOCK_ATTEMPTS, 1, DDL_LOCK_ATTEMPTS_MAX))


def alembic_config(database_url: str, migrations_dir: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, migrations_dir: Path, revision: str = "head", *,
            lock_timeout_seconds: float = DDL_LOCK_TIMEOUT_SECONDS, lock_attempts: int = DDL_LOCK_ATTEMPTS,
            lock_pause_seconds: float = DDL_LOCK_PAUSE_SECONDS) -> None:
    """Bring a service database to `revision`, creating SQLite's folder if needed.

    On PostgreSQL a revision that waits longer than `lock_timeout_seconds` for a lock is rolled back and, after
    `lock_pause_seconds`, tried again, `lock_attempts` times in all (see DDL_LOCK_TIMEOUT_SECONDS).

    A database at a revision this code does not know was migrated by a newer image (a rollback in progress, as in
    `wait_until_migrated`): it is left as it is, and that is no error.
    """
    if database_url.startswith("sqlite:///") and not database_url.startswith("sqlite:///:memory:"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    config = alembic_config(database_url, migrations_dir)
    if make_url(database_url).get_backend_name() != "postgresql":
        engine = create_engine(database_url, poolclass=pool.NullPool)
        try:
            with engine.connect() as connection:
                newer = _migrated_by_newer_code(connection, config)
        finally:
            engine.dispose()
        if not newer:
            command.upgrade(config, revision)
        return
    if lock_timeout_seconds <= 0 or lock_attempts < 1:
        raise ValueError("a migration's lock timeout must be positive and it must be tried at least once")
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:  # closing it releases the lock, whatever happens
            # No limit on how long a revision's statement runs (a backfill, CREATE INDEX CONCURRENTLY waiting for older
            # transactions) or the revision sits between statements, whatever the role or database defaults to: the
            # services' DB_* timeouts (config.DatabaseTimeouts) are for their own sessions only.
            for setting in NO_LIMITS:
                connection.execute(text("SELECT set_config(:setting, '0', false)"), {"setting": setting})
            connection.commit()
            _take_migration_lock(connection)
            if _migrated_by_newer_code(connection, config):
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
                connection.commit()
                return
            # A session setting: every revision's transaction has it (_without_lock_timeout lifts it).
            connection.execute(text("SELECT set_config('lock_timeout', :timeout, false)"),
                               {"timeout": f"{max(1, round(lock_timeout_seconds * 1000))}ms"})
            connection.commit()
            # No transaction around the upgrade: alembic commits each revision on its own (_migrate), and an
            # autocommit_block needs the transaction it commits to be alembic's.
            config.attributes["connection"] = connection
            for attempt in range(1, lock_attempts + 1):
                try:
                    command.upgrade(config, revision)
                    break
                except DBAPIError as exc:
                    if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE or attempt == lock_attempts:
                        raise
                    connection.rollback()  # nothing of the revision is left holding a lock or a snapshot
                    log.warning("a revision waited more than %g s for a lock on a table another transaction is "
                                "using; rolled back so the queries queued behind it go on, trying again in %g s "
                                "(attempt %d of %d)", lock_timeout_seconds, lock_pause_seconds, attempt + 1,
                                lock_attempts)
                    time.sleep(lock_pause_seconds)  # letting the long transaction end, not waiting out a race
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
            connection.commit()
    finally:
        engine.dispose()


# `wait-migrated` (the init container of relay and consumer pods): how often it looks at the database's revision,
# and how long it waits before failing (the kubelet then restarts it, with back-off, and the pod shows Init:Error).
WAIT_POLL_SECONDS = 2.0
WAIT_TIMEOUT_SECONDS = 600.0  # MIGRATION_WAIT_SECONDS


class NotMigrated(Exception):
    """The database did not reach the code's migration head in time."""


def wait_until_migrated(database_url: str, migrations_dir: Path, *, timeout_seconds: float = WAIT_TIMEOUT_SECONDS,
                        poll_seconds: float = WAIT_POLL_SECONDS) -> None:
    """Return once the database is at this code's alembic head; never migrates it (the server pods' `migrate` does).

    A revision this code does not know was written by a newer image (a rollback in progress): its schema is a
    superset of this code's (expand, deploy, then contract), so that counts as migrated too. A database that cannot
    be reached yet counts as behind. NotMigrated once `timeout_seconds` pass without it.
    """
    script = ScriptDirectory.from_config(alembic_config(database_url, migrations_dir))
    heads = set(script.get_heads())
    known = {revision.revision for revision in script.walk_revisions()}
    deadline = time.monotonic() + timeout_seconds
    engine = create_engine(database_url, poolclass=pool.NullPool)
    told: list[set[str] | None] = []  # the last state logged
    try:
        while True:
            current = _recorded_revisions(engine)
            if current == heads:
                return
            if current and not current <= known:
                log.info("the database is at %s, newer than this code's head %s: a newer image migrated it",
                         sorted(current), sorted(heads))
                return
            where = "unreachable" if current is None else f"at {sorted(current)}"
            if told != [current]:
                log.info("the database is %s; waiting for this code's head %s", where, sorted(heads))
                told = [current]
            if time.monotonic() >= deadline:
                raise NotMigrated(f"the database is {where}, not at this code's head {sorted(heads)}, "
                                  f"after {timeout_seconds:g} s")
            time.sleep(poll_seconds)  # polling what another pod's migration does, not waiting out a race
    finally:
        engine.dispose()


def _recorded_revisions(engine: sa.Engine) -> set[str] | None:
    """The revisions the database's alembic_version records; None while it cannot be reached."""
    try:
        with engine.connect() as connection:
            return _revisions_in(connection)
    except DBAPIError:
        return None


def _revisions_in(connection: Connection) -> set[str]:
    """The revisions alembic_version records (none before the first migration). Read directly: alembic's
    MigrationContext logs two INFO lines each time it is made, every poll."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return set()
    return set(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())


def _migrated_by_newer_code(connection: Connection, config: Config) -> bool:
    """Whether the database records a revision this code does not know: a newer image's (said in the log). Ends the
    transaction the look opened, so no snapshot stays held."""
    script = ScriptDirectory.from_config(config)
    current = _revisions_in(connection)
    connection.commit()
    unknown = current - {revision.revision for revision in script.walk_revisions()}
    if unknown:
        log.info("the database is at %s, newer than this code's head %s: a newer image migrated it; nothing to do",
                 sorted(current), sorted(script.get_heads()))
    return bool(unknown)


def _take_migration_lock(connection: Connection) -> None:
    """Wait for the migration lock without holding a snapshot in between tries (see LOCK_RETRY_SECONDS)."""
    told = False
    while not connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": MIGRATION_LOCK}).scalar_one():
        connection.commit()
        if not told:
            log.info("another process is migrating this database; waiting for it to finish")
            told = True
        time.sleep(LOCK_RETRY_SECONDS)  # polling a lock another process holds, not waiting out a race
    connection.commit()


def run_migrations(service_metadata: MetaData) -> None:
    """Body of every service's migrations/env.py (online mode only: we always have the database)."""
    config = context.config
    shared = config.attributes.get("connection")  # upgrade()'s, holding the migration lock
    if shared is not None:
        _migrate(shared, service_metadata)
        return
    engine = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
                                poolclass=pool.NullPool)
    with engine.connect() as connection:
        _migrate(connection, service_metadata)


def target_metadata(service_metadata: MetaData) -> list[MetaData]:
    """What a service's code expects its database to hold: its own tables and the infrastructure tables every service
    has (outbox, processed_events, dead letters, idempotency keys); its migrations must build exactly that."""
    return [service_metadata, infra_metadata]


def _migrate(connection: Connection, service_metadata: MetaData) -> None:
    # One transaction per revision: a revision's locks (ADD COLUMN's ACCESS EXCLUSIVE) end with it instead of lasting
    # through every later revision, and a failing revision leaves the ones before it applied and recorded.
    context.configure(connection=connection, target_metadata=target_metadata(service_metadata),
                      render_as_batch=connection.dialect.name == "sqlite", transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def build_index_concurrently(name: str, table: str, columns: Sequence[str], *,
                             where: sa.TextClause | None = None) -> None:
    """In a migration: build index `name` on `table` (replacing one of that name) without blocking writes to it.

    On PostgreSQL the build runs as CREATE INDEX CONCURRENTLY outside any transaction, so the revision's statements
    before it are committed first: call it in a revision of its own (or after statements that may run again). The
    index is built under a temporary name and renamed once the old one is dropped, so readers keep an index
    throughout, and a run cut short (pod killed mid-build) can simply run again: it drops what it left behind.
    Elsewhere (SQLite) a plain CREATE INDEX in the revision's transaction.
    """
    if op.get_bind().dialect.name != "postgresql":
        op.drop_index(name, table_name=table, if_exists=True)
        op.create_index(name, table, list(columns), sqlite_where=where)
        return
    building = f"{name}_building"
    if len(building) > 63:
        raise ValueError(f"{building!r} is longer than a PostgreSQL name may be")
    with _outside_transaction():
        op.drop_index(building, table_name=table, if_exists=True, postgresql_concurrently=True)
        op.create_index(building, table, list(columns), postgresql_where=where, postgresql_concurrently=True)
        op.drop_index(name, table_name=table, if_exists=True, postgresql_concurrently=True)
        op.execute(f'ALTER INDEX "{building}" RENAME TO "{name}"')


def add_check_constraint(table: str, name: str, condition: str) -> None:
    """In a migration: add CHECK constraint `name` to `table` without scanning it under an ACCESS EXCLUSIVE lock.

    On PostgreSQL it is added NOT VALID (new rows are checked at once, nothing is scanned) and the revision's
    transaction committed, which ends the ACCESS EXCLUSIVE lock that statement and an ADD COLUMN before it took;
    then the existing rows are validated by a statement of its own (SHARE UPDATE EXCLUSIVE: writes go on). A run cut
    short while validating runs the whole revision again, so the statements before this one must be re-runnable
    (`if_not_exists=True`); this one is. Elsewhere (SQLite) the constraint of a table recreated in batch mode.
    """
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table(table) as batch:
            batch.create_check_constraint(name, condition)
        return
    op.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT IF EXISTS "{name}"')
    op.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" CHECK ({condition}) NOT VALID')
    with _outside_transaction():
        op.execute(f'ALTER TABLE "{table}" VALIDATE CONSTRAINT "{name}"')


@contextmanager
def _outside_transaction() -> Iterator[None]:
    """In a PostgreSQL migration: run the block's statements outside any transaction (committing the revision's so far)
    and without upgrade()'s lock timeout. They take SHARE UPDATE EXCLUSIVE at most, which writers do not queue behind,
    and CREATE INDEX CONCURRENTLY waits for every transaction older than it as a lock wait: under a lock timeout a
    long one would cut the build short and leave an invalid index behind."""
    with op.get_context().autocommit_block():
        bind = op.get_bind()
        timeout = bind.execute(text("SELECT current_setting('lock_timeout')")).scalar_one()
        bind.execute(text("SET lock_timeout = 0"))
        try:
            yield
        finally:
            bind.execute(text("SELECT set_config('lock_timeout', :timeout, false)"), {"timeout": timeout})
