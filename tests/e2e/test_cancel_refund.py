"""A paid order cancelled through review and refunded through its channel: WeChat Pay (simulator) and the wallet;
the coupon and the points it used go back to the shopper."""

from __future__ import annotations

import uuid

import pytest
import requests
from sqlalchemy import create_engine, func, select
from sqlalchemy.pool import NullPool

from services.common.outbox import outbox
from services.order.db import refunds
from tests.fixtures.platform import Platform
from tests.fixtures.shop import admin_headers, member_with_balance, product_on_shelf, staff, verified_wechat_shopper
from tools.simulator.client import SimulatorClient

pytestmark = pytest.mark.e2e


def order_db(platform: Platform, query: object) -> object:
    with create_engine(platform.database_urls["order"], poolclass=NullPool).connect() as connection:
        return connection.execute(query).scalar_one()  # type: ignore[call-overload]


def events(platform: Platform, order_no: str, event_type: str) -> int:
    return order_db(platform, select(func.count()).select_from(outbox).where(  # type: ignore[return-value]
        outbox.c.aggregate_id == order_no, outbox.c.event_type == event_type))


def stock_and_sales(platform: Platform, product_id: int) -> tuple[int, int]:
    product = requests.get(f"{platform.api}/admin/products/{product_id}", headers=admin_headers(platform),
                           timeout=10).json()
    return product["skus"][0]["stock"], product["sales"]


def paid_order(platform: Platform, shopper: dict[str, str], address_id: int, sku_id: int, quantity: int,
               channel: str, **discounts: int) -> dict[str, object]:
    """An order paid through `channel`; `discounts` are checkout fields (coupon_id, points)."""
    body = {"sku_id": sku_id, "quantity": quantity, "address_id": address_id, **discounts}
    placed = requests.post(f"{platform.api}/orders", json=body, timeout=10,
                           headers={**shopper, "Idempotency-Key": uuid.uuid4().hex})
    assert placed.status_code == 201, placed.text
    order = placed.json()
    pay = requests.post(f"{platform.api}/orders/{order['id']}/pay", json={"channel": channel}, headers=shopper,
                        timeout=10)
    assert pay.status_code == 200, pay.text
    if channel == "wechat":
        assert SimulatorClient(platform.simulator_url).wechatpay_pay(pay.json()["out_trade_no"])["notify_status"] == 200
    platform.wait_until_consumed("order-paid", "product")
    return order


def test_a_wechat_paid_order_cancelled_and_approved_is_refunded_by_wechat_pay_and_restocked(
        platform: Platform) -> None:
    api, simulator = platform.api, SimulatorClient(platform.simulator_url)
    product_id, sku_id = product_on_shelf(platform, stock=5, price_fen=1999)
    shopper, address_id = verified_wechat_shopper(platform)
    stranger, _ = verified_wechat_shopper(platform)
    service_desk = staff(platform, ["customer_service"])
    order = paid_order(platform, shopper, address_id, sku_id, 2, "wechat")
    assert stock_and_sales(platform, product_id) == (3, 2)

    assert requests.post(f"{api}/orders/{order['id']}/cancel", json={}, headers=stranger, timeout=10).status_code == 404
    requested = requests.post(f"{api}/orders/{order['id']}/cancel", json={"reason": "拍错了"}, headers=shopper,
                              timeout=10)
    review = f"{api}/admin/orders/{order['id']}/cancel-review"
    by_shopper = requests.post(review, json={"approve": True}, headers=shopper, timeout=10)
    approved = requests.post(review, json={"approve": True, "reason": "同意取消"}, headers=service_desk, timeout=10)
    twice = requests.post(review, json={"approve": True}, headers=service_desk, timeout=10)

    assert (requested.status_code, requested.json()["status"]) == (200, "CANCEL_REQUESTED")
    assert by_shopper.status_code == 403
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["refunded_fen"]) == ("REFUNDING", 3998)
    assert (twice.status_code, twice.json()["error"]["details"]["status"]) == (409, "REFUNDING")

    refund_no = order_db(platform, select(refunds.c.refund_no).where(refunds.c.order_id == order["id"]))
    completed = simulator.wechatpay_refund_complete(str(refund_no))
    replayed = requests.post(f"{api}/payments/wechat/refund-notify", data=completed["notify"]["body"].encode(),
                             headers={**completed["notify"]["headers"], "Content-Type": "application/json"},
                             timeout=10)

    assert completed["notify_status"] == 200, completed
    assert (replayed.status_code, replayed.json()["code"]) == (200, "SUCCESS")
    read = requests.get(f"{api}/orders/{order['id']}", headers=shopper, timeout=10).json()
    assert (read["status"], read["refunded_fen"], read["payable_fen"]) == ("REFUNDED", 3998, 3998)
    assert [(step["status"], step["actor"], step["reason"]) for step in read["history"][2:]] == [
        ("CANCEL_REQUESTED", read["history"][0]["actor"], "拍错了"), ("REFUNDING", "staff", "cancellation approved"),
        ("REFUNDED", "wechatpay", "refunded in full")]  # staff's words and which staff member: theirs
    audit = requests.get(f"{api}/admin/orders/{order['id']}", headers=service_desk, timeout=10).json()
    assert [(step["status"], step["actor"], step["reason"], step["shopper_visible"])
            for step in audit["history"][3:]] == [("REFUNDING", "staff:990001", "同意取消", True),
                                                  ("REFUNDED", "wechatpay", f"refund {refund_no}: 3998 fen", True)]
    assert simulator.wechatpay_order(str(order["order_no"]))["refunded_fen"] == 3998
    platform.wait_until_consumed("order-cancelled", "product")
    platform.wait_until_consumed("order-refunded", "member")
    assert stock_and_sales(platform, product_id) == (5, 0)
    assert [events(platform, str(order["order_no"]), kind) for kind in ("order-paid", "order-cancelled",
                                                                        "order-refunded")] == [1, 1, 1]


def test_a_balance_paid_order_cancelled_and_approved_goes_back_to_the_wallet_at_once(platform: Platform) -> None:
    api = platform.api
    product_id, sku_id = product_on_shelf(platform, stock=4, price_fen=1250)
    shopper, address_id = verified_wechat_shopper(platform, with_phone=True)
    member_with_balance(platform, shopper, 10_000)
    order = paid_order(platform, shopper, address_id, sku_id, 3, "balance")
    payable = 3_750  # 3 x 1250, a new member at normal (100%), no freight
    assert order["payable_fen"] == payable
    assert requests.get(f"{api}/member", headers=shopper, timeout=10).json()["balance_fen"] == 6_250

    requests.post(f"{api}/orders/{order['id']}/cancel", json={"reason": "不要了"}, headers=shopper, timeout=10)
    approved = requests.post(f"{api}/admin/orders/{order['id']}/cancel-review", json={"approve": True},
                             headers=staff(platform, ["customer_service"]), timeout=10)

    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["refunded_fen"]) == ("REFUNDED", payable)
    assert requests.get(f"{api}/member", headers=shopper, timeout=10).json()["balance_fen"] == 10_000
    platform.wait_until_consumed("order-cancelled", "product")
    assert stock_and_sales(platform, product_id) == (4, 0)
    assert [events(platform, str(order["order_no"]), kind) for kind in ("order-cancelled", "order-refunded")] == [1, 1]


def test_a_paid_order_with_a_coupon_and_points_cancelled_and_approved_gives_both_back_exactly(
        platform: Platform) -> None:
    api, simulator = platform.api, SimulatorClient(platform.simulator_url)
    product_id, sku_id = product_on_shelf(platform, stock=5, price_fen=30_000)
    shopper, address_id = verified_wechat_shopper(platform, with_phone=True)
    assert requests.post(f"{api}/member/signup", json={"channel": "self"}, headers=shopper,
                         timeout=10).status_code in (200, 201)
    template = requests.post(f"{api}/admin/coupons", headers=admin_headers(platform), timeout=10, json={
        "name": "满10减5", "kind": "fixed", "amount_fen": 500, "threshold_fen": 1000, "total": 10,
        "per_user_limit": 1, "valid_from": "2020-01-01T00:00:00Z", "valid_to": "2199-01-01T00:00:00Z"})
    assert template.status_code == 201, template.text
    coupon = requests.post(f"{api}/member/coupons/claim", json={"template_id": template.json()["id"]},
                           headers=shopper, timeout=10).json()
    paid_order(platform, shopper, address_id, sku_id, 1, "wechat")  # 300 yuan: 300 points (normal level)
    platform.wait_until_consumed("order-paid", "member")

    order = paid_order(platform, shopper, address_id, sku_id, 1, "wechat", coupon_id=coupon["id"], points=200)
    platform.wait_until_consumed("order-paid", "member")
    assert (order["amounts"]["coupon_discount_fen"], order["amounts"]["points_discount_fen"], order["payable_fen"]) == (
        500, 200, 30_000 - 500 - 200)

    def member() -> tuple[int, int, int]:
        read = requests.get(f"{api}/member", headers=shopper, timeout=10).json()
        return read["points"], read["total_spend_fen"], read["coupons_available"]

    def coupons() -> list[tuple[int, str, str | None]]:
        mine = requests.get(f"{api}/member/coupons", headers=shopper, timeout=10).json()["items"]
        return [(item["id"], item["status"], item["order_no"]) for item in mine]

    assert member() == (300 - 200 + 293, 30_000 + 29_300, 0)  # 293 yuan paid: 293 points earned
    assert coupons() == [(coupon["id"], "used", order["order_no"])]

    requests.post(f"{api}/orders/{order['id']}/cancel", json={"reason": "买重了"}, headers=shopper, timeout=10)
    approved = requests.post(f"{api}/admin/orders/{order['id']}/cancel-review", json={"approve": True},
                             headers=staff(platform, ["customer_service"]), timeout=10)
    assert (approved.status_code, approved.json()["status"]) == (200, "REFUNDING"), approved.text
    refund_no = order_db(platform, select(refunds.c.refund_no).where(refunds.c.order_id == order["id"]))
    assert simulator.wechatpay_refund_complete(str(refund_no))["notify_status"] == 200
    platform.wait_until_consumed("order-cancelled", "member")
    platform.wait_until_consumed("order-refunded", "member")

    read = requests.get(f"{api}/orders/{order['id']}", headers=shopper, timeout=10).json()
    assert (read["status"], read["refunded_fen"]) == ("REFUNDED", 29_300)
    # the 200 points spent come back, the 293 earned are taken back: the first order's 300 remain
    assert member() == (300, 30_000, 1)
    assert coupons() == [(coupon["id"], "available", None)]
    entries = requests.get(f"{api}/member/points", params={"page_size": 100}, headers=shopper, timeout=10).json()
    assert sorted((entry["kind"], entry["amount"]) for entry in entries["items"]
                  if entry["reference"] in (order["order_no"], refund_no)) == [
        ("order_paid", 293), ("order_refunded", -293), ("points_locked", -200), ("points_returned", 200)]
    again = requests.post(f"{api}/checkout/preview", headers=shopper, timeout=10, json={
        "sku_id": sku_id, "quantity": 1, "address_id": address_id, "coupon_id": coupon["id"]})
    assert (again.status_code, again.json()["coupon_discount_fen"]) == (200, 500), again.text
    platform.wait_until_consumed("order-cancelled", "product")
    assert stock_and_sales(platform, product_id) == (4, 1)
    assert [events(platform, str(order["order_no"]), kind) for kind in ("order-paid", "order-cancelled",
                                                                        "order-refunded")] == [1, 1, 1]
