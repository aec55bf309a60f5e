"""Wallet recharges through each channel, end to end: the simulator pays and notifies the gateway, which
credits the wallet once per recharge; spoilt notifies are refused and change nothing; replays credit nothing."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from services.common.outbox import outbox
from tests.fixtures.platform import Platform, _scalars
from tests.fixtures.shop import sms_login, wechat_login
from tools.simulator import alipay, bankcard
from tools.simulator.client import SimulatorClient

pytestmark = pytest.mark.e2e


def recharge(platform: Platform, shopper: dict[str, str], channel: str, amount_fen: int,
             key: str | None = None) -> dict[str, Any]:
    started = requests.post(f"{platform.api}/member/recharges", json={"amount_fen": amount_fen, "channel": channel},
                            headers={**shopper, "Idempotency-Key": key or uuid.uuid4().hex}, timeout=10)
    assert started.status_code == 201, started.text
    return started.json()


def polled(platform: Platform, shopper: dict[str, str], recharge_no: str) -> tuple[str, int]:
    """What the mini-program sees polling the recharge: (status, bonus_fen)."""
    answer = requests.get(f"{platform.api}/member/recharges/{recharge_no}", headers=shopper, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["status"], answer.json()["bonus_fen"]


def wallet(platform: Platform, shopper: dict[str, str]) -> tuple[int, list[tuple[str, int]]]:
    """(available balance, [(kind, amount)] of the wallet ledger), from the ledger (members or not)."""
    ledger = requests.get(f"{platform.api}/member/ledger", headers=shopper, timeout=10).json()
    available = [entry for entry in ledger["items"] if entry["account"] == "available"]
    return (available[0]["balance_after_fen"] if available else 0), [(e["kind"], e["amount_fen"]) for e in ledger["items"]]


def recharged_events(platform: Platform, shopper: dict[str, str]) -> int:
    user_id = requests.get(f"{platform.api}/me", headers=shopper, timeout=10).json()["id"]
    return _scalars(platform.database_urls["member"], select(func.count()).select_from(outbox).where(
        outbox.c.event_type == "member-recharged", outbox.c.aggregate_id == str(user_id)))[0]


def replay(notify: dict[str, Any], times: int) -> list[tuple[int, str]]:
    """The captured notify POSTed again `times` times, concurrently: (status, answer) of each."""
    def send(_: int) -> tuple[int, str]:
        answer = requests.post(notify["url"], data=notify["body"].encode(), timeout=10,
                               headers=notify.get("headers") or {
                                   "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        return answer.status_code, answer.text
    with ThreadPoolExecutor(max_workers=times) as pool:
        return list(pool.map(send, range(times)))


def joined(platform: Platform, phone: str) -> dict[str, str]:
    shopper = sms_login(platform, phone)
    assert requests.post(f"{platform.api}/member/signup", json={"channel": "self"}, headers=shopper,
                         timeout=10).status_code == 200
    return shopper


def test_a_wechat_pay_recharge_is_credited_once_by_its_verified_notify(platform: Platform) -> None:
    sim = SimulatorClient(platform.simulator_url)
    shopper = wechat_login(platform, f"o-e2e-recharge-{uuid.uuid4().hex[:10]}")
    started = recharge(platform, shopper, "wechat", 10_000, key="double-tap")
    tapped_again = recharge(platform, shopper, "wechat", 10_000, key="double-tap")

    forged = sim.wechatpay_pay(started["recharge_no"], tamper="wrong_amount")
    before = wallet(platform, shopper), polled(platform, shopper, started["recharge_no"])
    paid = sim.wechatpay_pay(started["recharge_no"])
    replays = replay(paid["notify"], 10)
    mine = requests.get(f"{platform.api}/member/recharges", headers=shopper, timeout=10).json()

    assert started["payment"]["package"].startswith("prepay_id=") and started["payment"]["signType"] == "RSA"
    assert sim.wechatpay_order(started["recharge_no"])["notify_url"].endswith("/payments/wechat/recharge-notify")
    assert tapped_again == started  # one recharge, one prepay: the first answer again
    assert (forged["notify_status"], before) == (400, ((0, []), ("PENDING", 0)))
    assert (paid["notify_status"], {status for status, _ in replays}) == (200, {200})
    assert wallet(platform, shopper) == (10_000, [("recharge", 10_000)])
    assert recharged_events(platform, shopper) == 1
    assert polled(platform, shopper, started["recharge_no"]) == ("PAID", 0)
    assert ([r["recharge_no"] for r in mine["items"]], mine["total"]) == ([started["recharge_no"]], 1)


def test_an_alipay_recharge_is_credited_once_and_spoilt_notifies_answer_failure(platform: Platform) -> None:
    sim, shopper = SimulatorClient(platform.simulator_url), joined(platform, "13700001201")
    started = recharge(platform, shopper, "alipay", 50_005)
    order_string = started["payment"]["order_string"]

    spoilt = {tamper: sim.alipay_pay(order_string, tamper=tamper) for tamper in alipay.TAMPERS}
    before = wallet(platform, shopper)
    paid = sim.alipay_pay(order_string)
    replays = replay(paid["notify"], 10)

    assert {tamper: (r["notify_status"], r["notify_answer"]) for tamper, r in spoilt.items()} == {
        tamper: (400, "failure") for tamper in alipay.TAMPERS}
    assert before == (0, [])
    assert (paid["notify_status"], paid["notify_answer"]) == (200, "success")
    assert set(replays) == {(200, "success")}
    assert wallet(platform, shopper) == (50_005, [("recharge_bonus", 5_000), ("recharge", 50_005)])  # 500 get 50
    assert recharged_events(platform, shopper) == 1
    assert polled(platform, shopper, started["recharge_no"]) == ("PAID", 5_000)
    stranger = requests.get(f"{platform.api}/member/recharges/{started['recharge_no']}",
                            headers=sms_login(platform, "13700001203"), timeout=10)
    assert (stranger.status_code, stranger.json()["error"]["code"]) == (404, "RECHARGE_NOT_FOUND")


def test_a_bank_card_recharge_is_credited_once_and_spoilt_callbacks_are_refused(platform: Platform) -> None:
    sim, shopper = SimulatorClient(platform.simulator_url), joined(platform, "13700001202")
    started = recharge(platform, shopper, "bank_card", 20_000)

    spoilt = {tamper: sim.bankcard_pay(started["payment"], tamper=tamper)["notify_status"]
              for tamper in bankcard.TAMPERS}
    failed = sim.bankcard_pay(started["payment"], status="FAILED")
    before = wallet(platform, shopper)
    paid = sim.bankcard_pay(started["payment"])
    replays = replay(paid["notify"], 10)

    assert spoilt == {tamper: 400 for tamper in bankcard.TAMPERS}
    assert (failed["notify_status"], before) == (200, (0, []))  # acknowledged, nothing credited
    assert (paid["notify_status"], {status for status, _ in replays}) == (200, {200})
    assert wallet(platform, shopper) == (20_000, [("recharge", 20_000)])
    assert recharged_events(platform, shopper) == 1
