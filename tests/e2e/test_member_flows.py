"""Member flows through the gateway: sign up, recharge credited, withdraw with a key, finance pays out, coupons."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from tests.e2e.test_cancel_refund import paid_order
from tests.fixtures.platform import Platform
from tests.fixtures.shop import (
    bind_new_phone,
    product_on_shelf,
    sms_login,
    staff,
    verified_wechat_shopper,
    wechat_login,
)
from tools.simulator.client import SimulatorClient

pytestmark = pytest.mark.e2e


def test_a_member_recharges_withdraws_once_per_key_and_finance_pays_it_out(platform: Platform) -> None:
    openid = f"o-e2e-member-{uuid.uuid4().hex[:10]}"
    shopper, stranger = wechat_login(platform, openid), sms_login(platform, "13700001101")
    bind_new_phone(platform, shopper, openid)  # membership is by phone number
    api = platform.api

    joined = requests.post(f"{api}/member/signup", json={"channel": "self"}, headers=shopper, timeout=10)
    recharge = requests.post(f"{api}/member/recharges", json={"amount_fen": 10_000, "channel": "bank_card"},
                             headers={**shopper, "Idempotency-Key": "recharge-1"}, timeout=10)
    card = SimulatorClient(platform.simulator_url).bankcard_pay(recharge.json()["payment"])
    key = {**shopper, "Idempotency-Key": "withdraw-1"}
    withdrawals = [requests.post(f"{api}/member/withdrawals", json={"amount_fen": 6_000}, headers=key, timeout=10)
                   for _ in range(3)]
    held = requests.get(f"{api}/member", headers=shopper, timeout=10).json()
    withdrawal_id = withdrawals[0].json()["id"]
    by_admin = requests.post(f"{api}/admin/withdrawals/{withdrawal_id}/decision", json={"approve": True},
                             headers=staff(platform, ["admin"]), timeout=10)
    approved = requests.post(f"{api}/admin/withdrawals/{withdrawal_id}/decision",
                             json={"approve": True, "note": "ok"}, headers=staff(platform, ["finance"]), timeout=10)
    awaiting = requests.get(f"{api}/member/withdrawals/{withdrawal_id}", headers=shopper, timeout=10)
    not_theirs = requests.get(f"{api}/member/withdrawals/{withdrawal_id}", headers=stranger, timeout=10)
    # the mini-program's wx.requestMerchantTransfer with it: the shopper confirms receipt in WeChat
    SimulatorClient(platform.simulator_url).wechatpay_transfer_confirm(
        approved.json()["withdrawal_no"], awaiting.json()["wx_transfer_confirm"]["package"])
    paid = withdrawal_once(platform, shopper, withdrawal_id, "PAID")  # the payout job finds the transfer done
    after = requests.get(f"{api}/member", headers=shopper, timeout=10).json()
    mine = requests.get(f"{api}/member/withdrawals", headers=shopper, timeout=10).json()
    theirs = requests.get(f"{api}/member/withdrawals", headers=stranger, timeout=10).json()
    transfers = SimulatorClient(platform.simulator_url).wechatpay_transfers(openid)
    ledger = requests.get(f"{api}/member/ledger", headers=shopper, timeout=10).json()
    audit = requests.get(f"{api}/admin/ledger-audit", headers=staff(platform, ["finance"]), timeout=10).json()

    assert (joined.status_code, joined.json()["level"], recharge.status_code) == (200, "normal", 201)
    assert card["notify_status"] == 200
    assert [(w.status_code, w.json()["id"]) for w in withdrawals] == [(201, withdrawal_id)] * 3
    assert (held["balance_fen"], held["pending_fen"]) == (4_000, 6_000)
    assert (by_admin.status_code, approved.status_code, approved.json()["status"]) == (403, 200, "PAYING")
    assert (awaiting.json()["awaits_shopper"], sorted(awaiting.json()["wx_transfer_confirm"])) == (
        True, ["app_id", "mch_id", "package"])
    assert (not_theirs.status_code, not_theirs.json()["error"]["code"]) == (404, "WITHDRAWAL_NOT_FOUND")
    assert (paid["status"], paid["wx_transfer_confirm"]) == ("PAID", None)
    assert (after["balance_fen"], after["pending_fen"]) == (4_000, 0)
    assert ([(w["id"], w["status"]) for w in mine["items"]], mine["total"], theirs["total"]) == (
        [(withdrawal_id, "PAID")], 1, 0)
    assert [(t["out_bill_no"], t["transfer_amount"], t["state"]) for t in transfers] == [
        (paid["withdrawal_no"], 6_000, "SUCCESS")]  # paid to the shopper's WeChat balance, once
    assert sorted((e["kind"], e["account"], e["amount_fen"]) for e in ledger["items"]) == [
        ("recharge", "available", 10_000), ("withdrawal_paid", "pending", -6_000),
        ("withdrawal_requested", "available", -6_000), ("withdrawal_requested", "pending", 6_000)]
    assert audit["mismatches"] == []


def test_a_wechat_only_buyer_joins_by_purchase_only_with_their_first_order_paid_after_binding_a_phone(
        platform: Platform) -> None:
    """M1 for the purchase channel: the member consumer asks the user service (HasPhone, as the member service)."""
    api = platform.api
    _, sku_id = product_on_shelf(platform, stock=5, price_fen=12_000)
    openid = f"o-e2e-member-{uuid.uuid4().hex[:10]}"
    shopper, address_id = verified_wechat_shopper(platform, openid=openid)

    paid_order(platform, shopper, address_id, sku_id, 1, "wechat")  # 120 yuan: past the 100 that joins
    platform.wait_until_consumed("order-paid", "member")
    before = requests.get(f"{api}/member", headers=shopper, timeout=10)
    bind_new_phone(platform, shopper, openid)
    paid_order(platform, shopper, address_id, sku_id, 1, "wechat")
    platform.wait_until_consumed("order-paid", "member")
    after = requests.get(f"{api}/member", headers=shopper, timeout=10).json()

    assert (before.status_code, before.json()["error"]["code"]) == (404, "MEMBER_NOT_FOUND")
    assert (after["channel"], after["total_spend_fen"], after["points"]) == ("purchase", 24_000, 120)


def withdrawal_once(platform: Platform, shopper: dict[str, str], withdrawal_id: int, status: str,
                    seconds: float = 60) -> dict[str, Any]:
    """The withdrawal once it is `status` (or as it is after `seconds`): the member service's payout job asks WeChat
    Pay about a withdrawal PAYING for MEMBER_RECONCILE_SETTLE_SECONDS, every MEMBER_RECONCILE_SECONDS (1 and 2 s on
    the e2e platform)."""
    deadline = time.monotonic() + seconds
    while True:
        withdrawal = requests.get(f"{platform.api}/member/withdrawals/{withdrawal_id}", headers=shopper,
                                  timeout=10).json()
        if withdrawal["status"] == status or time.monotonic() > deadline:
            return withdrawal
        time.sleep(1)


def test_coupons_are_claimed_listed_and_private_to_their_owner(platform: Platform) -> None:
    alice, bob = sms_login(platform, "13700001102"), sms_login(platform, "13700001103")
    now = datetime.now(UTC)
    template = requests.post(f"{platform.api}/admin/coupons", headers=staff(platform, ["admin"]), timeout=10, json={
        "name": "5 off 50", "kind": "fixed", "amount_fen": 500, "threshold_fen": 5_000, "total": 1,
        "per_user_limit": 1, "valid_from": (now - timedelta(hours=1)).isoformat(),
        "valid_to": (now + timedelta(days=1)).isoformat()})

    claims = [requests.post(f"{platform.api}/member/coupons/claim", json={"template_id": template.json()["id"]},
                            headers=who, timeout=10) for who in (alice, bob)]
    alices = requests.get(f"{platform.api}/member/coupons?status=available", headers=alice, timeout=10).json()
    bobs = requests.get(f"{platform.api}/member/coupons", headers=bob, timeout=10).json()

    assert (template.status_code, [c.status_code for c in claims]) == (201, [201, 422])
    assert claims[1].json()["error"]["code"] == "COUPON_SOLD_OUT"
    assert ([c["template"]["amount_fen"] for c in alices["items"]], bobs["total"]) == ([500], 0)


def test_an_operators_template_is_offered_once_approved_and_never_to_its_creator(platform: Platform) -> None:
    api, alice = platform.api, sms_login(platform, "13700001106")
    operator, finance = staff(platform, ["operator"], user_id=990079), staff(platform, ["finance"], user_id=990080)
    now = datetime.now(UTC)
    body = {"name": f"staff {uuid.uuid4().hex[:6]}", "kind": "fixed", "amount_fen": 100_000_000, "total": 1_000,
            "valid_from": (now - timedelta(hours=1)).isoformat(), "valid_to": (now + timedelta(days=1)).isoformat()}
    too_valuable = requests.post(f"{api}/admin/coupons", headers=operator, timeout=10, json=body)
    template = requests.post(f"{api}/admin/coupons", headers=operator, timeout=10,
                             json={**body, "amount_fen": 500}).json()
    claim = {"template_id": template["id"]}

    waiting = requests.post(f"{api}/member/coupons/claim", json=claim, headers=alice, timeout=10)
    own_approval = requests.post(f"{api}/admin/coupon-templates/{template['id']}/approve", headers=operator,
                                 timeout=10)
    approved = requests.post(f"{api}/admin/coupon-templates/{template['id']}/approve", headers=finance, timeout=10)
    own_claims = [requests.post(f"{api}/member/coupons/claim", json=claim, headers=who, timeout=10)
                  for who in (operator, finance)]
    claimed = requests.post(f"{api}/member/coupons/claim", json=claim, headers=alice, timeout=10)

    assert (too_valuable.status_code, too_valuable.json()["error"]["code"]) == (422, "COUPON_TEMPLATE_TOO_VALUABLE")
    assert (template["status"], waiting.status_code, waiting.json()["error"]["code"]) == (
        "pending_approval", 422, "COUPON_TEMPLATE_NOT_APPROVED")
    assert (own_approval.status_code, approved.status_code, approved.json()["approved_by"]) == (403, 200, 990080)
    assert [(r.status_code, r.json()["error"]["code"]) for r in own_claims] == [(403, "OWN_REQUEST")] * 2
    assert claimed.status_code == 201


def test_a_disabled_template_leaves_the_claim_centre_and_its_claimed_coupons_usable(platform: Platform) -> None:
    api, alice, bob = platform.api, sms_login(platform, "13700001104"), sms_login(platform, "13700001105")
    operator, now = staff(platform, ["operator"], user_id=990077), datetime.now(UTC)
    template = requests.post(f"{api}/admin/coupons", headers=operator, timeout=10, json={
        "name": f"typo {uuid.uuid4().hex[:6]}", "kind": "fixed", "amount_fen": 50_000, "total": 100,
        "per_user_limit": 1, "valid_from": (now - timedelta(hours=1)).isoformat(),
        "valid_to": (now + timedelta(days=1)).isoformat()}).json()

    def offered(who: dict[str, str]) -> list[int]:
        page = requests.get(f"{api}/member/coupon-templates?page_size=100", headers=who, timeout=10).json()
        return [t["id"] for t in page["items"] if t["id"] == template["id"]]

    pending = offered(bob)
    requests.post(f"{api}/admin/coupon-templates/{template['id']}/approve",
                  headers=staff(platform, ["finance"], user_id=990078), timeout=10).raise_for_status()
    before = offered(bob)
    claimed = requests.post(f"{api}/member/coupons/claim", json={"template_id": template["id"]}, headers=alice,
                            timeout=10)
    disabled = requests.post(f"{api}/admin/coupon-templates/{template['id']}/disable", headers=operator, timeout=10,
                             json={"reason": "500 yuan typed for 5"})
    refused = requests.post(f"{api}/member/coupons/claim", json={"template_id": template["id"]}, headers=bob,
                            timeout=10)
    listed = requests.get(f"{api}/admin/coupon-templates?status=disabled&page_size=100", headers=operator,
                          timeout=10).json()
    alices = requests.get(f"{api}/member/coupons?status=available", headers=alice, timeout=10).json()

    assert (pending, before, claimed.status_code, disabled.status_code, offered(bob)) == (
        [], [template["id"]], 201, 200, [])
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "COUPON_TEMPLATE_DISABLED")
    assert [(t["created_by"], t["disabled_by"], t["disable_reason"]) for t in listed["items"]
            if t["id"] == template["id"]] == [(990077, 990077, "500 yuan typed for 5")]
    assert [c["template"]["id"] for c in alices["items"]] == [template["id"]]
