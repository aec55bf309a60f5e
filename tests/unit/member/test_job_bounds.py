"""The member service's jobs as build_app wires them: each sweep is bounded by its round budget
(JOB_ROUND_BUDGET_SECONDS), points expiry included, not the blanket JOB_ROUND_SECONDS."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.jobs import job_bounds
from tests.fixtures.keys import JwtKeys


def test_each_jobs_bound_is_its_interval_its_budget_its_rows_past_it_and_the_margin(
        jwt_keys: JwtKeys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bounds = job_bounds("member", jwt_keys, tmp_path, monkeypatch)

    # interval + 100 s budget + per sweep 2 x 70 s and its row's calls (gRPC 5 s each, no channel) + 30 s margin
    assert bounds == {
        "recharge-reconciliation": 60 + 100 + 140 + 2 * 5 + 30,
        "recharge-expiry": 60 + 100 + 140 + 2 * 5 + 30,
        "payout-settlement": 60 + 100 + 140 + 2 * 5 + 30,
        "checkout-hold-expiry": 60 + 100 + 2 * (140 + 5) + 30,  # each sweep's page asks the order service
        "points-expiry": 3600 + 100 + 140 + 30,  # a holder's expiry calls nothing
    }
