"""Finance through the gateway: exports the money ledger it reconciles, but does not look shoppers up or ship."""

from __future__ import annotations

import csv
import io
import time
import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import jwt
import pytest
import requests

from tests.fixtures.platform import Platform
from tests.fixtures.shop import product_on_shelf, staff, verified_wechat_shopper
from tools.simulator.client import SimulatorClient

pytestmark = pytest.mark.e2e

JOB_SECONDS = 60


def test_finance_exports_the_money_ledger_and_is_refused_user_search_and_waybills(platform: Platform) -> None:
    api, finance = platform.api, staff(platform, ["finance"])
    started = datetime.now(UTC)
    _, sku_id = product_on_shelf(platform, stock=5, price_fen=1999)
    shopper, address_id = verified_wechat_shopper(platform)
    order = requests.post(f"{api}/orders", json={"sku_id": sku_id, "quantity": 2, "address_id": address_id},
                          headers={**shopper, "Idempotency-Key": uuid.uuid4().hex}, timeout=10).json()
    pay = requests.post(f"{api}/orders/{order['id']}/pay", json={"channel": "wechat"}, headers=shopper,
                        timeout=10).json()
    assert SimulatorClient(platform.simulator_url).wechatpay_pay(pay["out_trade_no"])["notify_status"] == 200
    platform.wait_until_consumed("order-paid", "analytics")
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
    header, *rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert header == [
        "date", "occurred_at", "movement", "channel", "amount_fen", "bonus_fen", "user_id", "member_no", "order_no",
        "out_trade_no", "refund_no", "recharge_no", "withdrawal_id", "wallet_balance_fen", "withdrawal_no",
        "requested_fen", "bonus_forfeited_fen", "reason", "plan_id", "plan_name", "plan_expires_at", "posting_key",
        "event_id"]
    ours = [dict(zip(header, row, strict=True)) for row in rows if row[header.index("order_no")] == order["order_no"]]
    assert [{**row, "occurred_at": "", "user_id": "", "event_id": ""} for row in ours] == [
        dict.fromkeys(header, "") | {"date": today, "movement": "payment", "channel": "wechat", "amount_fen": "3998",
                                     "order_no": order["order_no"], "out_trade_no": pay["out_trade_no"]}]
    shopper_id = jwt.decode(shopper["Authorization"].removeprefix("Bearer "), options={"verify_signature": False})["sub"]
    paid_at = datetime.fromisoformat(ours[0]["occurred_at"])
    assert (ours[0]["user_id"], started <= paid_at <= datetime.now(UTC), ours[0]["event_id"] != "") == (
        str(shopper_id), True, True)
    assert (users.status_code, users.json()["error"]["code"]) == (403, "FORBIDDEN")
    assert (waybill.status_code, waybill.json()["error"]["code"]) == (403, "FORBIDDEN")
