"""Two pods migrating one PostgreSQL database at once take turns on an advisory lock: both succeed, at head."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, pool, text

from services.common import migrations
from tests.fixtures.postgres import drop_databases, migrations_dir, recreate_database, session_database_name

pytestmark = pytest.mark.integration


@pytest.fixture
def empty_database() -> Iterator[str]:
    name = session_database_name("it", "migrating")
    url = recreate_database(name)
    yield url
    drop_databases([name])


def test_two_concurrent_upgrades_wait_for_each_other_and_both_succeed(empty_database: str) -> None:
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
        this_database = "database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        waiting = 0
        deadline = time.monotonic() + 30
        while waiting < 2 and time.monotonic() < deadline:
            waiting = holder.execute(text(
                f"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND {this_database}")
            ).scalar_one()
            holder.commit()
            time.sleep(0.05)
        assert waiting == 2 and inspect(holder).get_table_names() == []  # both wait; nothing migrated yet
        holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": migrations.MIGRATION_LOCK})
        holder.commit()
        for pod in pods:
            pod.join(timeout=120)

    with engine.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        locks_left = conn.execute(text(
            f"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND {this_database}")).scalar_one()
    engine.dispose()
    heads = ScriptDirectory.from_config(
        migrations.alembic_config(empty_database, migrations_dir("order"))).get_heads()
    assert (outcomes, versions, locks_left) == (["ok", "ok"], heads, 0)
