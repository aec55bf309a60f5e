"""The product service's reservation sweep as build_app wires it: bounded by its round budget
(JOB_ROUND_BUDGET_SECONDS), not the blanket JOB_ROUND_SECONDS."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.jobs import job_bounds
from tests.fixtures.keys import JwtKeys


def test_the_reservation_sweeps_bound_is_its_interval_its_budget_a_page_past_it_and_the_margin(
        jwt_keys: JwtKeys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bounds = job_bounds("product", jwt_keys, tmp_path, monkeypatch)

    # every 60 s + 100 s budget + a page's read and an order's settling (2 x 70 s) and the order service's 5 s
    # answer + 30 s margin
    assert bounds == {"reservation-expiry": 60 + 100 + 140 + 5 + 30}
