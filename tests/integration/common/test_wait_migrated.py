"""`wait-migrated`, the init container of relay and consumer pods: it returns once the database is at the code's
alembic head (or a newer image's), fails after its timeout while it is behind, and never migrates anything itself."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, pool, text

from services.common import migrations
from tests.fixtures.keys import JwtKeys
from tests.fixtures.postgres import drop_databases, migrations_dir, recreate_database, session_database_name

ROOT = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.integration

ORDER = migrations_dir("order")
# Read from the scripts, so that the order service's next revision does not break these tests.
HEAD = ScriptDirectory.from_config(migrations.alembic_config("sqlite://", ORDER)).get_current_head()
PREVIOUS = ScriptDirectory.from_config(migrations.alembic_config("sqlite://", ORDER)).get_revision(HEAD).down_revision
NEWER = "9999"  # a revision this code does not know: a newer image's


@pytest.fixture(params=["postgresql", "sqlite"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty order database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/order.db"
        return
    name = session_database_name("it", "waitmigrated")
    url = recreate_database(name)
    yield url
    drop_databases([name])


def recorded_revisions(url: str) -> list[str]:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return []
            return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()


def test_a_database_at_the_code_head_is_migrated(database: str) -> None:
    migrations.upgrade(database, ORDER)

    migrations.wait_until_migrated(database, ORDER, timeout_seconds=0, poll_seconds=0.01)

    assert recorded_revisions(database) == [HEAD]


def test_a_database_one_revision_behind_fails_after_the_timeout_and_is_left_as_it_was(database: str) -> None:
    migrations.upgrade(database, ORDER, revision=PREVIOUS)

    with pytest.raises(migrations.NotMigrated, match=rf"at \['{PREVIOUS}'\], not at this code's head \['{HEAD}'\]"):
        migrations.wait_until_migrated(database, ORDER, timeout_seconds=0.2, poll_seconds=0.05)

    assert recorded_revisions(database) == [PREVIOUS]


def test_an_empty_database_is_not_migrated_and_stays_empty(database: str) -> None:
    with pytest.raises(migrations.NotMigrated, match=rf"at \[\], not at this code's head \['{HEAD}'\]"):
        migrations.wait_until_migrated(database, ORDER, timeout_seconds=0.1, poll_seconds=0.05)

    assert recorded_revisions(database) == []


def test_the_wait_ends_when_another_process_finishes_the_migration(database: str) -> None:
    migrations.upgrade(database, ORDER, revision=PREVIOUS)
    outcome: list[str] = []

    def relay_pod_init() -> None:
        try:
            migrations.wait_until_migrated(database, ORDER, timeout_seconds=60, poll_seconds=0.05)
            outcome.append("migrated")
        except migrations.NotMigrated as exc:
            outcome.append(repr(exc))

    waiting = threading.Thread(target=relay_pod_init)
    waiting.start()
    migrations.upgrade(database, ORDER)  # the server pod's migrate init container
    waiting.join(timeout=60)

    assert outcome == ["migrated"]


def test_a_revision_from_a_newer_image_counts_as_migrated(database: str) -> None:
    """A rollback: the new image migrated further; expand/contract keeps that schema fit for this code."""
    migrations.upgrade(database, ORDER)
    engine = create_engine(database, poolclass=pool.NullPool)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :newer"), {"newer": NEWER})
    engine.dispose()

    migrations.wait_until_migrated(database, ORDER, timeout_seconds=0, poll_seconds=0.01)

    assert recorded_revisions(database) == [NEWER]


def test_an_unreachable_database_is_waited_for_then_reported() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/minimall_nowhere?connect_timeout=1"

    with pytest.raises(migrations.NotMigrated, match=rf"is unreachable, not at this code's head \['{HEAD}'\]"):
        migrations.wait_until_migrated(url, ORDER, timeout_seconds=0.1, poll_seconds=0.05)


def wait_migrated_command(url: str, jwt_keys: JwtKeys) -> subprocess.CompletedProcess[str]:
    """`python -m services.order wait-migrated`, as the relay and consumer pods' init container runs it."""
    env = {**os.environ, "ORDER_DATABASE_URL": url, "JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
           "MINIMALL_ENV": "test", "MIGRATION_WAIT_SECONDS": "0.5"}
    return subprocess.run([sys.executable, "-m", "services.order", "wait-migrated"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_the_wait_migrated_role_exits_0_at_head_and_1_behind_without_migrating(tmp_path: Path,
                                                                               jwt_keys: JwtKeys) -> None:
    behind, at_head = f"sqlite:///{tmp_path}/behind.db", f"sqlite:///{tmp_path}/head.db"
    migrations.upgrade(behind, ORDER, revision=PREVIOUS)
    migrations.upgrade(at_head, ORDER)

    waited_behind, waited_at_head = wait_migrated_command(behind, jwt_keys), wait_migrated_command(at_head, jwt_keys)

    assert (waited_at_head.returncode, waited_behind.returncode) == (0, 1), waited_behind.stderr
    assert f"not at this code's head ['{HEAD}'], after 0.5 s" in waited_behind.stderr
    assert recorded_revisions(behind) == [PREVIOUS]
