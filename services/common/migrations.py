"""Alembic, one migration history per service, run programmatically (`python -m services.X migrate`)."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, MetaData, create_engine, engine_from_config, make_url, pool, text

from services.common import idempotency  # noqa: F401  (registers its table in infra_metadata)
from services.common.db import advisory_key
from services.common.outbox import infra_metadata

log = logging.getLogger(__name__)

# Every new server pod runs `migrate` as an init container: on PostgreSQL they take turns on this
# session advisory lock (one per database), so the second finds the schema at head instead of
# failing on the first one's tables.
MIGRATION_LOCK = advisory_key("minimall-migrate")


def alembic_config(database_url: str, migrations_dir: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, migrations_dir: Path, revision: str = "head") -> None:
    """Bring a service database to `revision`, creating SQLite's folder if needed."""
    if database_url.startswith("sqlite:///") and not database_url.startswith("sqlite:///:memory:"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    config = alembic_config(database_url, migrations_dir)
    if make_url(database_url).get_backend_name() != "postgresql":
        command.upgrade(config, revision)
        return
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:  # closing it releases the lock, whatever happens
            if not connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": MIGRATION_LOCK}).scalar_one():
                log.info("another process is migrating this database; waiting for it to finish")
                connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            connection.commit()
            with connection.begin():
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
            connection.commit()
    finally:
        engine.dispose()


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


def _migrate(connection: Connection, service_metadata: MetaData) -> None:
    context.configure(connection=connection, target_metadata=[service_metadata, infra_metadata],
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
