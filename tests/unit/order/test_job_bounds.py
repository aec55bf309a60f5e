"""The order service's jobs as build_app wires them: each reconciliation and timeout scan is bounded by its round
budget (JOB_ROUND_BUDGET_SECONDS), the others by the blanket JOB_ROUND_SECONDS."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.config import ServiceSettings
from tests.fixtures.jobs import job_bounds
from tests.fixtures.keys import JwtKeys


def test_each_budgeted_jobs_bound_is_its_interval_its_budget_its_rows_past_it_and_the_margin(
        jwt_keys: JwtKeys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bounds = job_bounds("order", jwt_keys, tmp_path, monkeypatch)

    # interval + 100 s budget + per sweep 2 x 70 s and its row's calls (gRPC 5 s each, no WeChat Pay) + 30 s margin
    assert {name: bounds[name] for name in ("payment-timeout", "auto-confirm", "return-expiry",
                                            "refund-reconciliation", "wallet-reconciliation")} == {
        "payment-timeout": 10 + 100 + 140 + 2 * 5 + 30,
        "auto-confirm": 60 + 100 + 140 + 30,
        "return-expiry": 60 + 100 + 140 + 30,
        "refund-reconciliation": 60 + 100 + 3 * (140 + 3 * 5) + 30,
        "wallet-reconciliation": 60 + 600 + 30,  # one page of its oldest: not budgeted
    }


def test_the_round_budget_is_a_setting(jwt_keys: JwtKeys) -> None:
    environ = {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path)}

    assert (ServiceSettings.from_env("order", environ).job_round_budget_seconds,
            ServiceSettings.from_env("order", {**environ, "JOB_ROUND_BUDGET_SECONDS": "90"}).job_round_budget_seconds
            ) == (300, 90)
