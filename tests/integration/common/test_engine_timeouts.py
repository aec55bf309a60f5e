"""Who gets PostgreSQL session timeouts: every engine a service role builds has its settings' (serve, relay, consume,
the reports' own engine), and tools that scan whole tables (tools/audit.py) and make_engine's default have none."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from datetime import datetime

import pytest
from sqlalchemy import Engine, text

from services.common.config import SERVICES, ServiceSettings
from services.common.db import make_engine
from services.common.runtime import lean_app
from tests.fixtures.keys import JwtKeys, service_token
from tools import audit

pytestmark = pytest.mark.integration

# Unlike the defaults (4 s, 3 s, 60 s, 600 s), so an engine that fell back to them, or to none, shows.
CONFIGURED = {"DB_STATEMENT_TIMEOUT_SECONDS": "2.5", "DB_LOCK_TIMEOUT_SECONDS": "1.5",
              "DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS": "45", "DB_REPORT_STATEMENT_TIMEOUT_SECONDS": "300"}


def session_timeouts(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [conn.execute(text(f"SHOW {name}")).scalar_one()
                for name in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")]


@pytest.fixture
def configured(migrated_database: Callable[[str], str], jwt_keys: JwtKeys,
               monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ServiceSettings]:
    """`configured("order")` → the order service's settings with CONFIGURED timeouts, on its test database."""

    def get(service: str) -> ServiceSettings:
        monkeypatch.setenv("SERVICE_TOKEN", service_token(jwt_keys, service))
        monkeypatch.setenv("SMS_PROVIDER", "console")  # the user service's own settings (read from the process's)
        monkeypatch.setenv("JWT_PRIVATE_KEY_FILE", str(jwt_keys.private_path))
        base = ServiceSettings.from_env(service, {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                  "MINIMALL_ENV": "test", **CONFIGURED})
        return dataclasses.replace(base, database_url=migrated_database(service))

    return get


@pytest.mark.parametrize("service", SERVICES)
def test_the_engine_build_app_makes_has_the_configured_timeouts(
        service: str, configured: Callable[[str], ServiceSettings]) -> None:
    app = importlib.import_module(f"services.{service}.__main__").build_app(configured(service))
    try:
        assert session_timeouts(app.engine) == ["2500ms", "1500ms", "45s"]
    finally:
        app.engine.dispose()


@pytest.mark.parametrize("service", SERVICES)
def test_the_engine_of_a_relay_has_the_configured_timeouts(
        service: str, configured: Callable[[str], ServiceSettings]) -> None:
    app = lean_app(configured(service))
    try:
        assert session_timeouts(app.engine) == ["2500ms", "1500ms", "45s"]
    finally:
        app.engine.dispose()


# The services whose consume role runs its consumers alone (the order service's builds the app: build_app's test).
@pytest.mark.parametrize("service", ["analytics", "member", "product", "user"])
def test_the_engine_of_a_consume_role_has_the_configured_timeouts(
        service: str, configured: Callable[[str], ServiceSettings]) -> None:
    app = lean_app(configured(service), importlib.import_module(f"services.{service}.__main__").event_consumers)
    try:
        assert session_timeouts(app.engine) == ["2500ms", "1500ms", "45s"]
    finally:
        app.engine.dispose()


def test_the_analytics_reports_engine_has_the_report_statement_timeout(
        configured: Callable[[str], ServiceSettings]) -> None:
    app = importlib.import_module("services.analytics.__main__").build_app(configured("analytics"))
    report_engine = app.jobs["reports"].loop.__self__.uow.args[0]  # type: ignore[attr-defined]
    try:
        assert session_timeouts(report_engine) == ["5min", "1500ms", "45s"]
    finally:
        report_engine.dispose()
        app.engine.dispose()


def test_an_engine_made_without_timeouts_has_none(migrated_database: Callable[[str], str]) -> None:
    engine = make_engine(migrated_database("order"))
    try:
        assert session_timeouts(engine) == ["0", "0", "0"]
    finally:
        engine.dispose()


def test_the_audit_runs_its_checks_without_a_statement_timeout(
        migrated_database: Callable[[str], str], monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, str] = {}

    def outboxes_seen(engines: dict[str, Engine], now: datetime) -> audit.Check:
        seen.update({service: session_timeouts(engine)[0] for service, engine in engines.items()})
        return audit.Check("outbox")

    monkeypatch.setattr(audit, "check_outboxes", outboxes_seen)

    audit.audit({service: migrated_database(service) for service in SERVICES})

    assert seen == {service: "0" for service in SERVICES}
