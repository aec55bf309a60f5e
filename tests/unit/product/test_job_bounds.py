"""The product service's reservation sweep as build_app wires it: bounded by its round budget
(JOB_ROUND_BUDGET_SECONDS), not the blanket JOB_ROUND_SECONDS."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.config import ServiceSettings
from services.product import __main__ as product_process
from tests.fixtures.keys import JwtKeys, service_token


def test_the_reservation_sweeps_bound_is_its_interval_its_budget_a_page_past_it_and_the_margin(
        jwt_keys: JwtKeys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_TOKEN", service_token(jwt_keys, "product"))
    base = ServiceSettings.from_env("product", {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path),
                                                "PRODUCT_DATABASE_URL": f"sqlite:///{tmp_path}/product.db",
                                                "JOB_ROUND_BUDGET_SECONDS": "100"})

    bounds = {name: job.bound_seconds for name, job in product_process.build_app(base).jobs.items()}

    # every 60 s + 100 s budget + a page's read and an order's settling (2 x 70 s) and the order service's 5 s
    # answer + 30 s margin
    assert bounds == {"reservation-expiry": 60 + 100 + 140 + 5 + 30}
