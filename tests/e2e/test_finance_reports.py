"""Finance through the gateway: exports the money ledger it reconciles, but does not look shoppers up or ship."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import requests

from services.analytics.ledgers import MONEY_COLUMNS
from tests.fixtures.platform import Platform
from tests.fixtures.shop import staff

pytestmark = pytest.mark.e2e

JOB_SECONDS = 60


def test_finance_exports_the_money_ledger_and_is_refused_user_search_and_waybills(platform: Platform) -> None:
    api, finance = platform.api, staff(platform, ["finance"])
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()

    queued = requests.post(f"{api}/admin/reports", json={"kind": "money", "format": "csv", "from": today, "to": today},
                           headers=finance, timeout=10)
    assert queued.status_code == 202, queued.text
    deadline, job = time.monotonic() + JOB_SECONDS, queued.json()
    while job["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)  # the analytics service's job runner picks it up; poll its state, bounded
        job = requests.get(f"{api}/admin/reports/{job['id']}", headers=finance, timeout=10).json()
    exported = requests.get(f"{api}/admin/reports/{job['id']}/file", headers=finance, timeout=10)
    users = requests.get(f"{api}/admin/users", params={"phone": "13700001101"}, headers=finance, timeout=10)
    waybill = requests.get(f"{api}/admin/orders/1/waybill", headers=finance, timeout=10)

    assert (job["status"], exported.status_code) == ("done", 200)
    assert exported.content.decode("utf-8-sig").splitlines()[0] == ",".join(MONEY_COLUMNS)
    assert (users.status_code, users.json()["error"]["code"]) == (403, "FORBIDDEN")
    assert (waybill.status_code, waybill.json()["error"]["code"]) == (403, "FORBIDDEN")
