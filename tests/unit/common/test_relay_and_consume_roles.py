"""`python -m services.<name> relay` and `consume` build none of their service: a relay runs on the common settings
alone and a consumer on them and its handlers' needs (event_consumers), so their pods need no secret beyond the
database URL, the Kafka credentials and, for a consumer calling services, its token (deploy/k8s/generate.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import Engine

from services.common import runtime
from services.common.config import ServiceSettings
from services.common.consumer import EventConsumer
from services.common.runtime import ServiceApp, main
from tests.fixtures.keys import JwtKeys


def no_app(settings: object) -> ServiceApp:
    raise AssertionError("a relay builds no service: its settings would ask for the service's secrets")


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch, jwt_keys: JwtKeys, tmp_path: Path) -> list[tuple[ServiceApp, Sequence[str]]]:
    """What main handed run_roles (which is not run): the app and the roles. The environment is a relay's or
    consumer's pod's: a payment channel switched on but none of its keys, no service token."""
    calls: list[tuple[ServiceApp, Sequence[str]]] = []
    monkeypatch.setattr(runtime, "run_roles", lambda app, roles, stop: calls.append((app, roles)))
    monkeypatch.setattr(runtime, "serve_metrics", lambda port, routes=None: None)
    monkeypatch.setattr(runtime.signal, "signal", lambda signum, handler: None)
    monkeypatch.setattr(runtime.gc, "freeze", lambda: None)
    monkeypatch.setenv("JWT_PUBLIC_KEY_FILE", str(jwt_keys.public_path))
    monkeypatch.setenv("ORDER_DATABASE_URL", f"sqlite:///{tmp_path}/order.db")
    monkeypatch.setenv("WECHATPAY_MCHID", "1900000000")
    monkeypatch.delenv("SERVICE_TOKEN", raising=False)
    return calls


def test_a_relay_runs_the_outbox_relay_of_the_service_without_building_the_service(
        ran: list[tuple[ServiceApp, Sequence[str]]], tmp_path: Path) -> None:
    assert main("order", no_app, Path("services/order/migrations"), argv=["relay"]) == 0

    [(app, roles)] = ran
    assert (roles, app.settings.service, str(app.engine.url), app.registrations, app.consumers, app.jobs) == (
        ("relay",), "order", f"sqlite:///{tmp_path}/order.db", [], [], {})
    app.engine.dispose()


def test_a_consumer_runs_the_event_consumers_of_the_service_without_building_the_service(
        ran: list[tuple[ServiceApp, Sequence[str]]], tmp_path: Path) -> None:
    built: list[tuple[str, str]] = []

    def consumers(settings: ServiceSettings, engine: Engine) -> list[EventConsumer]:
        built.append((settings.service, str(engine.url)))
        return [consumer]
    consumer = EventConsumer("order", lambda: None, ServiceSettings.from_env("order").kafka, {})

    assert main("order", no_app, Path("services/order/migrations"), argv=["consume"], consumers=consumers) == 0

    [(app, roles)] = ran
    assert (roles, built, app.consumers, app.registrations, app.jobs) == (
        ("consume",), [("order", f"sqlite:///{tmp_path}/order.db")], [consumer], [], {})
    app.engine.dispose()
