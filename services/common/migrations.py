"""Alembic, one migration history per service, run programmatically (`python -m services.X migrate`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, engine_from_config, pool

from services.common import idempotency  # noqa: F401  (registers its table in infra_metadata)
from services.common.outbox import infra_metadata


def alembic_config(database_url: str, migrations_dir: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, migrations_dir: Path, revision: str = "head") -> None:
    """Bring a service database to `revision`, creating SQLite's folder if needed."""
    if database_url.startswith("sqlite:///") and not database_url.startswith("sqlite:///:memory:"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url, migrations_dir), revision)


def run_migrations(service_metadata: MetaData) -> None:
    """Body of every service's migrations/env.py (online mode only: we always have the database)."""
    config = context.config
    engine = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
                                poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=[service_metadata, infra_metadata],
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
