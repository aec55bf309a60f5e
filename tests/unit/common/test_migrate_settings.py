"""`python -m services.<name> migrate`: MIGRATION_LOCK_TIMEOUT_SECONDS and MIGRATION_LOCK_ATTEMPTS reach the upgrade,
and a bad one stops the process at start-up with a ConfigError naming it, before any database is touched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.common import migrations
from services.common.config import ConfigError
from services.common.runtime import ServiceApp, main
from tests.fixtures.keys import JwtKeys

DATABASE_URL = "postgresql://minimall@db.example/order"
MIGRATIONS = Path("services/order/migrations")


@pytest.fixture
def upgrades(monkeypatch: pytest.MonkeyPatch, jwt_keys: JwtKeys) -> list[dict[str, Any]]:
    """What `migrate` asked of migrations.upgrade (which is not run): each call's arguments."""
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(migrations, "upgrade", lambda url, directory, **options: calls.append(
        {"url": url, "directory": directory, **options}))
    monkeypatch.setenv("JWT_PUBLIC_KEY_FILE", str(jwt_keys.public_path))
    monkeypatch.setenv("ORDER_DATABASE_URL", DATABASE_URL)
    for name in ("MIGRATION_LOCK_TIMEOUT_SECONDS", "MIGRATION_LOCK_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    return calls


def no_app(settings: object) -> ServiceApp:
    raise AssertionError("migrate builds no service")


def migrate() -> int:
    return main("order", no_app, MIGRATIONS, argv=["migrate"])


def test_migrate_hands_the_lock_timeout_and_attempts_it_is_given_to_the_upgrade(
        monkeypatch: pytest.MonkeyPatch, upgrades: list[dict[str, Any]]) -> None:
    monkeypatch.setenv("MIGRATION_LOCK_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("MIGRATION_LOCK_ATTEMPTS", "4")

    assert migrate() == 0

    assert upgrades == [{"url": DATABASE_URL, "directory": MIGRATIONS, "lock_timeout_seconds": 2.5,
                         "lock_attempts": 4}]


def test_migrate_without_them_waits_5_seconds_for_a_lock_10_times_in_all(upgrades: list[dict[str, Any]]) -> None:
    assert migrate() == 0

    assert [(call["lock_timeout_seconds"], call["lock_attempts"]) for call in upgrades] == [(5.0, 10)]


@pytest.mark.parametrize(("name", "value"), [
    ("MIGRATION_LOCK_TIMEOUT_SECONDS", "0"),  # no wait at all: every revision that meets a lock would fail
    ("MIGRATION_LOCK_TIMEOUT_SECONDS", "-1"),
    ("MIGRATION_LOCK_TIMEOUT_SECONDS", "5s"),
    ("MIGRATION_LOCK_TIMEOUT_SECONDS", "3601"),
    ("MIGRATION_LOCK_ATTEMPTS", "0"),
    ("MIGRATION_LOCK_ATTEMPTS", "1001"),
    ("MIGRATION_LOCK_ATTEMPTS", "2.5"),
])
def test_a_bad_value_stops_migrate_at_start_up_with_a_config_error_naming_it(
        name: str, value: str, monkeypatch: pytest.MonkeyPatch, upgrades: list[dict[str, Any]]) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ConfigError, match=f"^{name} must be .*, got '{value}'$"):
        migrate()
    assert upgrades == []

