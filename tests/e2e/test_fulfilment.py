"""Fulfilment and after-sales through the gateway: pay, ship, confirm receipt, a review, a refund-only case, its
approval, WeChat Pay's refund notify (simulator), REFUNDED; exact amounts, stock, points and events; who may do
what; a shopper withdrawing a case."""

from __future__ import annotations

import time
import uuid

import pytest
import requests
from sqlalchemy import create_engine, func, select
from sqlalchemy.pool import NullPool

from services.common.outbox import outbox
from tests.fixtures.platform import Platform
from tests.fixtures.shop import TIMEOUT, admin_headers, product_on_shelf, staff, verified_wechat_shopper
from tools.simulator.client import SimulatorClient

pytestmark = pytest.mark.e2e


def paid_order(platform: Platform, shopper: dict[str, str], address_id: int, sku_id: int, quantity: int) -> dict:
    """An order of `quantity` units, paid with WeChat Pay (the simulator's notify)."""
    api = platform.api
    placed = requests.post(f"{api}/orders", json={"sku_id": sku_id, "quantity": quantity, "address_id": address_id},
                           headers={**shopper, "Idempotency-Key": uuid.uuid4().hex}, timeout=TIMEOUT)
    assert placed.status_code == 201, placed.text
    pay = requests.post(f"{api}/orders/{placed.json()['id']}/pay", json={"channel": "wechat"}, headers=shopper,
                        timeout=TIMEOUT)
    assert pay.status_code == 200, pay.text
    assert SimulatorClient(platform.simulator_url).wechatpay_pay(pay.json()["out_trade_no"])["notify_status"] == 200
    return requests.get(f"{api}/orders/{placed.json()['id']}", headers=shopper, timeout=TIMEOUT).json()


def events_of(platform: Platform, order_no: str) -> dict[str, int]:
    """How many events of each type the order service wrote about the order."""
    with create_engine(platform.database_urls["order"], poolclass=NullPool).connect() as conn:
        rows = conn.execute(select(outbox.c.event_type, func.count()).where(outbox.c.aggregate_id == order_no)
                            .group_by(outbox.c.event_type)).all()
    return {event_type: count for event_type, count in rows}


def stock_of(platform: Platform, product_id: int) -> int:
    product = requests.get(f"{platform.api}/admin/products/{product_id}", headers=admin_headers(platform),
                           timeout=TIMEOUT).json()
    return product["skus"][0]["stock"]


def case_when(platform: Platform, shopper: dict[str, str], case_id: int, status: str, seconds: float = 30) -> dict:
    """The case once it reaches `status` (the refund settles when WeChat Pay's notify arrives)."""
    deadline = time.monotonic() + seconds
    while True:
        case = requests.get(f"{platform.api}/after-sales/{case_id}", headers=shopper, timeout=TIMEOUT).json()
        if case["status"] == status or time.monotonic() > deadline:
            return case
        time.sleep(0.2)


def test_pay_ship_confirm_review_then_a_refund_only_case_is_approved_and_refunded_through_wechat_pay(
        platform: Platform) -> None:
    api, admin = platform.api, admin_headers(platform)
    product_id, sku_id = product_on_shelf(platform, stock=5, price_fen=1999)
    shopper, address_id = verified_wechat_shopper(platform, with_phone=True)
    joined = requests.post(f"{api}/member/signup", json={"channel": "self"}, headers=shopper, timeout=TIMEOUT)
    assert joined.status_code in (200, 201), joined.text
    order = paid_order(platform, shopper, address_id, sku_id, quantity=2)
    assert (order["status"], order["payable_fen"]) == ("PAID", 3998)
    platform.wait_until_consumed("order-paid", "member")
    before = requests.get(f"{api}/member", headers=shopper, timeout=TIMEOUT).json()

    shipped = requests.post(f"{api}/admin/orders/{order['id']}/ship", json={"carrier": "SF", "tracking_no": "SF1001"},
                            headers=admin, timeout=TIMEOUT)
    assert shipped.status_code == 200, shipped.text
    assert shipped.json()["status"] == "SHIPPED"
    mine = requests.get(f"{api}/orders/{order['id']}", headers=shopper, timeout=TIMEOUT).json()
    [parcel] = mine["shipments"]
    assert (parcel["carrier"], parcel["tracking_no"], parcel["lines"]) == (
        "SF", "SF1001", [{"line_id": order["lines"][0]["id"], "quantity": 2}])
    assert mine["shipped_at"] == parcel["shipped_at"]
    done = requests.post(f"{api}/orders/{order['id']}/confirm-receipt", headers=shopper, timeout=TIMEOUT)
    assert (done.status_code, done.json()["status"]) == (200, "COMPLETED"), done.text
    assert done.json()["completed_at"] is not None

    # the delivered line is reviewed once; everyone reads the review with the buyer masked
    line_id = order["lines"][0]["id"]
    platform.wait_until_consumed("order-completed", "product")  # the product service learns the line is reviewable
    review_url = f"{api}/orders/{order['id']}/lines/{line_id}/review"
    reviewed = requests.post(review_url, json={"rating": 5, "content": "屏幕清晰，发货很快"}, headers=shopper,
                             timeout=TIMEOUT)
    assert reviewed.status_code == 201, reviewed.text
    review = reviewed.json()
    nickname = requests.get(f"{api}/me", headers=shopper, timeout=TIMEOUT).json()["nickname"]
    assert (review["product_id"], review["sku_id"], review["rating"], review["content"], review["images"],
            review["buyer"], review["order_no"], review["line_id"]) == (
        product_id, sku_id, 5, "屏幕清晰，发货很快", [], nickname[0] + "***", order["order_no"], line_id)
    again = requests.post(review_url, json={"rating": 1, "content": "再评一次"}, headers=shopper, timeout=TIMEOUT)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "REVIEW_EXISTS")
    listed = requests.get(f"{api}/products/{product_id}/reviews", timeout=TIMEOUT).json()
    assert (listed["total"], listed["rating"]) == (1, {"average": 5.0, "average_tenths": 50, "count": 1,
                                                       "distribution": {"1": 0, "2": 0, "3": 0, "4": 0, "5": 1}})
    assert listed["items"] == [{key: value for key, value in review.items()
                                if key not in ("order_no", "line_id", "hidden")}]  # the author's own fields

    opened = requests.post(f"{api}/orders/{order['id']}/after-sales", headers=shopper, timeout=TIMEOUT, json={
        "type": "refund_only", "lines": [{"line_id": line_id, "quantity": 1}], "reason": "屏幕有划痕"})
    assert opened.status_code == 201, opened.text
    case = opened.json()
    assert (case["status"], case["refund_fen"], case["lines"][0]["amount_fen"]) == ("REQUESTED", 1999, 1999)
    again = requests.post(f"{api}/orders/{order['id']}/after-sales", headers=shopper, timeout=TIMEOUT, json={
        "type": "refund_only", "line_ids": [line_id], "reason": "again"})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "AFTER_SALE_LINE_OPEN")
    queue = requests.get(f"{api}/admin/after-sales", params={"status": "REQUESTED", "order_no": order["order_no"]},
                         headers=admin, timeout=TIMEOUT).json()
    assert [item["id"] for item in queue["items"]] == [case["id"]]

    approved = requests.post(f"{api}/admin/after-sales/{case['id']}/decision", json={"approve": True, "note": "同意"},
                             headers=admin, timeout=TIMEOUT)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "REFUNDING" and approved.json()["refund_no"]
    notified = SimulatorClient(platform.simulator_url).wechatpay_refund_complete(approved.json()["refund_no"])
    assert notified["notify_status"] == 200, notified
    refunded = case_when(platform, shopper, case["id"], "REFUNDED")
    assert [(step["status"], step["actor"].split(":")[0], step["reason"]) for step in refunded["history"]] == [
        ("REQUESTED", "user", "屏幕有划痕"), ("REFUNDING", "staff", "refund approved"), ("REFUNDED", "refund", "refunded")]
    assert refunded["history"][1]["actor"] == "staff"  # which staff member decided, and their note, are for staff
    for_staff = requests.get(f"{api}/admin/after-sales/{case['id']}", headers=admin, timeout=TIMEOUT).json()
    assert [(step["reason"], step["shopper_reason"]) for step in for_staff["history"]] == [
        ("屏幕有划痕", "屏幕有划痕"), ("同意", "refund approved"), ("refunded", "refunded")]

    platform.wait_until_consumed("order-refunded", "member")
    after = requests.get(f"{api}/member", headers=shopper, timeout=TIMEOUT).json()
    assert (before["points"], before["total_spend_fen"]) == (39, 3998)
    assert (after["points"], after["total_spend_fen"]) == (39 - 39 * 1999 // 3998, 1999)
    assert stock_of(platform, product_id) == 3  # refund only: nothing came back to restock
    final = requests.get(f"{api}/orders/{order['id']}", headers=shopper, timeout=TIMEOUT).json()
    assert final["status"] == "COMPLETED"  # a partial refund keeps the order's state
    assert events_of(platform, order["order_no"]) == {"order-created": 1, "order-paid": 1, "order-shipped": 1,
                                                      "order-completed": 1, "order-refunded": 1}
    assert requests.get(f"{api}/products/{product_id}/reviews", timeout=TIMEOUT).json()["total"] == 1


def test_strangers_get_404_shoppers_get_403_on_staff_routes_and_wrong_states_409_with_the_status(
        platform: Platform) -> None:
    api, admin = platform.api, admin_headers(platform)
    _, sku_id = product_on_shelf(platform, stock=5, price_fen=500)
    shopper, address_id = verified_wechat_shopper(platform)
    stranger, _ = verified_wechat_shopper(platform)
    order = paid_order(platform, shopper, address_id, sku_id, quantity=1)
    line_id = order["lines"][0]["id"]
    body = {"type": "return_refund", "line_ids": [line_id], "reason": "不合适"}

    early = requests.post(f"{api}/orders/{order['id']}/after-sales", json=body, headers=shopper, timeout=TIMEOUT)
    assert (early.status_code, early.json()["error"]["details"]["status"]) == (409, "PAID")
    unshipped = requests.post(f"{api}/orders/{order['id']}/confirm-receipt", headers=shopper, timeout=TIMEOUT)
    assert (unshipped.status_code, unshipped.json()["error"]["details"]["status"]) == (409, "PAID")
    cs = staff(platform, ["customer_service"])
    assert requests.post(f"{api}/admin/orders/{order['id']}/ship", json={"carrier": "SF", "tracking_no": "X1"},
                         headers=cs, timeout=TIMEOUT).status_code == 403
    assert requests.post(f"{api}/admin/orders/{order['id']}/ship", json={"carrier": "SF", "tracking_no": "X1"},
                         headers=staff(platform, ["operator"]), timeout=TIMEOUT).status_code == 200
    twice = requests.post(f"{api}/admin/orders/{order['id']}/ship", json={"carrier": "SF", "tracking_no": "X2"},
                          headers=admin, timeout=TIMEOUT)
    assert (twice.status_code, twice.json()["error"]["details"]["status"]) == (409, "SHIPPED")

    # a case the shopper withdraws (only they may) closes, and its line takes a new case
    first = requests.post(f"{api}/orders/{order['id']}/after-sales", headers=shopper, timeout=TIMEOUT,
                          json={"type": "refund_only", "line_ids": [line_id], "reason": "不想要了"})
    assert first.status_code == 201, first.text
    withdraw_url = f"{api}/after-sales/{first.json()['id']}/withdraw"
    assert requests.post(withdraw_url, json={}, headers=stranger, timeout=TIMEOUT).status_code == 404
    withdrawn = requests.post(withdraw_url, json={"reason": "又想要了"}, headers=shopper, timeout=TIMEOUT)
    assert (withdrawn.status_code, withdrawn.json()["status"]) == (200, "WITHDRAWN"), withdrawn.text
    assert [(step["status"], step["actor"].split(":")[0], step["reason"]) for step in withdrawn.json()["history"]] == [
        ("REQUESTED", "user", "不想要了"), ("WITHDRAWN", "user", "又想要了")]
    withdrawn_twice = requests.post(withdraw_url, json={}, headers=shopper, timeout=TIMEOUT)
    assert (withdrawn_twice.status_code, withdrawn_twice.json()["error"]["details"]["status"]) == (409, "WITHDRAWN")
    closed = requests.get(f"{api}/admin/after-sales", params={"status": "WITHDRAWN", "order_no": order["order_no"]},
                          headers=admin, timeout=TIMEOUT).json()
    assert [item["id"] for item in closed["items"]] == [first.json()["id"]]
    case = requests.post(f"{api}/orders/{order['id']}/after-sales", json=body, headers=shopper, timeout=TIMEOUT)
    assert case.status_code == 201, case.text
    case_id = case.json()["id"]

    for method, path, payload in [
            ("get", f"/orders/{order['id']}", None), ("post", f"/orders/{order['id']}/confirm-receipt", None),
            ("post", f"/orders/{order['id']}/after-sales", body), ("get", f"/after-sales/{case_id}", None),
            ("post", f"/after-sales/{case_id}/return-shipment", {"carrier": "SF", "tracking_no": "R1"}),
            ("post", f"/after-sales/{case_id}/withdraw", {})]:
        answer = requests.request(method, f"{api}{path}", json=payload, headers=stranger, timeout=TIMEOUT)
        assert answer.status_code == 404, (path, answer.text)
    assert requests.get(f"{api}/after-sales", headers=stranger, timeout=TIMEOUT).json()["total"] == 0
    for method, path, payload in [
            ("post", f"/admin/orders/{order['id']}/ship", {"carrier": "SF", "tracking_no": "X3"}),
            ("get", "/admin/after-sales", None), ("get", f"/admin/after-sales/{case_id}", None),
            ("post", f"/admin/after-sales/{case_id}/decision", {"approve": True}),
            ("post", f"/admin/after-sales/{case_id}/receive", {}),
            ("post", f"/admin/after-sales/{case_id}/retry-refund", None)]:
        answer = requests.request(method, f"{api}{path}", json=payload, headers=shopper, timeout=TIMEOUT)
        assert answer.status_code == 403, (path, answer.text)

    early_receive = requests.post(f"{api}/admin/after-sales/{case_id}/receive", json={}, headers=admin, timeout=TIMEOUT)
    assert (early_receive.status_code, early_receive.json()["error"]["details"]["status"]) == (409, "REQUESTED")
    approved = requests.post(f"{api}/admin/after-sales/{case_id}/decision", json={"approve": True, "note": "寄回"},
                             headers=cs, timeout=TIMEOUT)
    assert (approved.status_code, approved.json()["status"]) == (200, "AWAITING_RETURN"), approved.text
    again = requests.post(f"{api}/admin/after-sales/{case_id}/decision", json={"approve": False}, headers=cs,
                          timeout=TIMEOUT)
    assert (again.status_code, again.json()["error"]["details"]["status"]) == (409, "AWAITING_RETURN")
    sent = requests.post(f"{api}/after-sales/{case_id}/return-shipment", json={"carrier": "ZTO", "tracking_no": "R1"},
                         headers=shopper, timeout=TIMEOUT)
    assert (sent.status_code, sent.json()["return_shipment"]) == (200, {"carrier": "ZTO", "tracking_no": "R1"})
    mine = requests.get(f"{api}/after-sales", headers=shopper, timeout=TIMEOUT).json()
    assert [(item["id"], item["status"]) for item in mine["items"]] == [(case_id, "RETURN_SHIPPED"),
                                                                        (first.json()["id"], "WITHDRAWN")]
    on_its_way = requests.post(f"{api}/after-sales/{case_id}/withdraw", json={}, headers=shopper, timeout=TIMEOUT)
    assert (on_its_way.status_code, on_its_way.json()["error"]["details"]["status"]) == (409, "RETURN_SHIPPED")


def test_the_waybill_gives_the_shipper_the_receiver_in_full_and_the_units_left_until_the_last_parcel(
        platform: Platform) -> None:
    api, operator = platform.api, staff(platform, ["operator"])
    _, sku_id = product_on_shelf(platform, stock=5, price_fen=500)
    shopper, address_id = verified_wechat_shopper(platform)
    order = paid_order(platform, shopper, address_id, sku_id, quantity=3)
    [line] = order["lines"]
    waybill_url = f"{api}/admin/orders/{order['id']}/waybill"
    part = requests.post(f"{api}/admin/orders/{order['id']}/ship", headers=operator, timeout=TIMEOUT,
                         json={"carrier": "SF", "tracking_no": "W1", "lines": [{"line_id": line["id"], "quantity": 1}]})
    assert part.status_code == 200, part.text

    label = requests.get(waybill_url, headers=operator, timeout=TIMEOUT)

    assert label.status_code == 200, label.text
    assert label.json() == {
        "order_no": order["order_no"], "receiver_name": "王五", "receiver_phone": "13900001111", "province": "浙江省",
        "city": "杭州市", "district": "西湖区", "detail": "文三路 1 号",
        "lines": [{"line_id": line["id"], "name": line["name"], "spec": line["spec"], "quantity": 3, "to_ship": 2}]}
    rest = requests.post(f"{api}/admin/orders/{order['id']}/ship", json={"carrier": "SF", "tracking_no": "W2"},
                         headers=operator, timeout=TIMEOUT)
    assert rest.status_code == 200, rest.text
    nothing = requests.get(waybill_url, headers=operator, timeout=TIMEOUT)
    assert (nothing.status_code, nothing.json()["error"]) == (409, {
        "code": "ORDER_STATE_CONFLICT", "message": "a SHIPPED order has nothing to ship", "details": {"status": "SHIPPED"},
        "request_id": nothing.json()["error"]["request_id"]})
