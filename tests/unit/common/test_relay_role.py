"""`python -m services.<name> relay` builds none of its service: it runs on the common settings alone, so its pods
need no secret beyond the database URL and the Kafka credentials (deploy/k8s/generate.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from services.common import runtime
from services.common.runtime import ServiceApp, main
from tests.fixtures.keys import JwtKeys


def no_app(settings: object) -> ServiceApp:
    raise AssertionError("a relay builds no service: its settings would ask for the service's secrets")


def test_a_relay_runs_the_outbox_relay_of_the_service_without_building_the_service(
        monkeypatch: pytest.MonkeyPatch, jwt_keys: JwtKeys, tmp_path: Path) -> None:
    ran: list[tuple[ServiceApp, Sequence[str]]] = []
    monkeypatch.setattr(runtime, "run_roles", lambda app, roles, stop: ran.append((app, roles)))
    monkeypatch.setattr(runtime, "serve_metrics", lambda port: None)
    monkeypatch.setattr(runtime.signal, "signal", lambda signum, handler: None)
    monkeypatch.setattr(runtime.gc, "freeze", lambda: None)
    monkeypatch.setenv("JWT_PUBLIC_KEY_FILE", str(jwt_keys.public_path))
    monkeypatch.setenv("ORDER_DATABASE_URL", f"sqlite:///{tmp_path}/order.db")
    # What a relay's pod does not hold: a payment channel switched on without its keys, no service token.
    monkeypatch.setenv("WECHATPAY_MCHID", "1900000000")
    monkeypatch.delenv("SERVICE_TOKEN", raising=False)

    assert main("order", no_app, Path("services/order/migrations"), argv=["relay"]) == 0

    [(app, roles)] = ran
    assert (roles, app.settings.service, str(app.engine.url), app.registrations, app.consumers, app.jobs) == (
        ("relay",), "order", f"sqlite:///{tmp_path}/order.db", [], [], {})
    app.engine.dispose()
