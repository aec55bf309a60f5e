"""Cart to paid order through the gateway: product reservation, WeChat Pay by the simulator, the notify, stock."""

from __future__ import annotations

import concurrent.futures
import uuid
from datetime import datetime, timedelta

import pytest
import requests

from services.common.db import make_engine
from services.order import service
from services.order.db import SqlOrderUnitOfWork, start_mappers
from tests.fixtures.platform import Platform
from tests.fixtures.shop import admin_headers, member_with_balance, product_on_shelf, verified_wechat_shopper
from tools.simulator.client import SimulatorClient

pytestmark = pytest.mark.e2e

def test_cart_preview_submit_and_wechat_pay_end_paid_with_the_reservation_confirmed(platform: Platform) -> None:
    api = platform.api
    product_id, sku_id = product_on_shelf(platform, stock=5, price_fen=1999)
    shopper, address_id = verified_wechat_shopper(platform)

    added = requests.post(f"{api}/cart/items", json={"sku_id": sku_id, "quantity": 2},
                          headers=shopper, timeout=10)
    cart = requests.get(f"{api}/cart", headers=shopper, timeout=10).json()
    checkout = {"cart_item_ids": [added.json()["id"]], "address_id": address_id}
    preview = requests.post(f"{api}/checkout/preview", json=checkout, headers=shopper, timeout=10)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    submitted = requests.post(f"{api}/orders", json=checkout, headers={**shopper, **key}, timeout=10)
    again = requests.post(f"{api}/orders", json=checkout, headers={**shopper, **key}, timeout=10)

    assert added.status_code == 201, added.text
    assert (cart["selected_total_fen"], cart["items"][0]["valid"]) == (3998, True)
    assert preview.status_code == 200, preview.text
    assert submitted.status_code == 201, submitted.text
    order = submitted.json()
    assert (order["status"], order["payable_fen"], preview.json()["payable_fen"]) == ("PENDING_PAYMENT", 3998, 3998)
    assert again.json()["id"] == order["id"]
    assert requests.get(f"{api}/cart", headers=shopper, timeout=10).json()["items"] == []

    other, _ = verified_wechat_shopper(platform)
    assert requests.get(f"{api}/orders/{order['id']}", headers=other, timeout=10).status_code == 404
    assert requests.post(f"{api}/orders/{order['id']}/pay", json={"channel": "wechat"}, headers=other,
                         timeout=10).status_code == 404

    pay = requests.post(f"{api}/orders/{order['id']}/pay", json={"channel": "wechat"}, headers=shopper, timeout=10)
    assert pay.status_code == 200, pay.text
    assert pay.json()["wx_request_payment"]["package"].startswith("prepay_id=")
    paid = SimulatorClient(platform.simulator_url).wechatpay_pay(pay.json()["out_trade_no"])
    assert paid["notify_status"] == 200, paid

    read = requests.get(f"{api}/orders/{order['id']}", headers=shopper, timeout=10).json()
    assert (read["status"], [step["status"] for step in read["history"]]) == ("PAID",
                                                                             ["PENDING_PAYMENT", "PAID"])
    platform.wait_until_consumed("order-paid", "product")
    # as the shopper: a logged-in view always reaches the product service (an anonymous one may be served
    # the page cached by product_on_shelf, as a sale publishes no product-changed: sales lag by up to the TTL)
    detail = requests.get(f"{api}/products/{product_id}", headers=shopper, timeout=10).json()
    assert detail["sales"] == 2
    cancel = requests.post(f"{api}/orders/{order['id']}/cancel", json={}, headers=shopper, timeout=10)
    assert (cancel.status_code, cancel.json()["status"]) == (200, "CANCEL_REQUESTED")


def test_a_flash_sale_of_100_units_to_1000_concurrent_orders_sells_exactly_100_and_never_fails_with_a_5xx(
        platform: Platform) -> None:
    product_id, sku_id = product_on_shelf(platform, stock=100, price_fen=990)
    shoppers = [verified_wechat_shopper(platform) for _ in range(4)]

    def order(number: int) -> requests.Response:
        shopper, address_id = shoppers[number % len(shoppers)]
        return requests.post(f"{platform.api}/orders", timeout=120,
                             json={"sku_id": sku_id, "quantity": 1, "address_id": address_id},
                             headers={**shopper, "Idempotency-Key": f"flash-{product_id}-{number}"})

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(order, range(1000)))
    statuses = sorted({answer.status_code for answer in answers})
    created = [answer for answer in answers if answer.status_code == 201]
    refused = {answer.json()["error"]["code"] for answer in answers if answer.status_code != 201}
    assert len(created) == 100 and len({answer.json()["order_no"] for answer in created}) == 100
    assert statuses == [201, 422] and refused == {"OUT_OF_STOCK"}, (statuses, refused)
    staff = requests.get(f"{platform.api}/admin/products/{product_id}", headers=admin_headers(platform),
                         timeout=10).json()
    assert [(sku["stock"], sku["stock_status"]) for sku in staff["skus"]] == [(0, "sold_out")]
    assert requests.get(f"{platform.api}/products/{product_id}", timeout=10).json()["skus"][0]["stock_status"] == (
        "sold_out")
    bought = [requests.get(f"{platform.api}/orders", params={"page_size": 100}, headers=shopper,
                           timeout=10).json()["total"] for shopper, _ in shoppers]
    assert sum(bought) == 100


def test_a_member_coupon_is_quoted_locked_by_the_order_and_released_when_it_is_cancelled(platform: Platform) -> None:
    api = platform.api
    product_id, sku_id = product_on_shelf(platform, stock=5, price_fen=1999)
    shopper, address_id = verified_wechat_shopper(platform, with_phone=True)
    template = requests.post(f"{api}/admin/coupons", headers=admin_headers(platform), timeout=10, json={
        "name": "满10减5", "kind": "fixed", "amount_fen": 500, "threshold_fen": 1000, "total": 10,
        "valid_from": "2020-01-01T00:00:00Z", "valid_to": "2199-01-01T00:00:00Z"})
    assert template.status_code == 201, template.text
    assert requests.post(f"{api}/member/signup", json={"channel": "self"}, headers=shopper,
                         timeout=10).status_code in (200, 201)
    coupon = requests.post(f"{api}/member/coupons/claim", json={"template_id": template.json()["id"]},
                           headers=shopper, timeout=10)
    assert coupon.status_code == 201, coupon.text
    checkout = {"sku_id": sku_id, "quantity": 2, "address_id": address_id,
                "coupon_id": coupon.json()["id"]}

    preview = requests.post(f"{api}/checkout/preview", json=checkout, headers=shopper, timeout=10)
    submitted = requests.post(f"{api}/orders", json=checkout, timeout=10,
                              headers={**shopper, "Idempotency-Key": uuid.uuid4().hex})

    assert preview.status_code == 200, preview.text
    assert submitted.status_code == 201, submitted.text
    amounts = submitted.json()["amounts"]
    assert amounts["coupon_discount_fen"] == preview.json()["coupon_discount_fen"] == 500
    assert [(c["id"], c["discount_fen"]) for c in preview.json()["usable_coupons"]] == [(coupon.json()["id"], 500)]
    # a new member is normal (100%): 2 x 1999 less the coupon's 500, no freight
    assert (amounts["level_discount_fen"], amounts["payable_fen"], preview.json()["payable_fen"]) == (0, 3498, 3498)

    def coupon_status() -> str:
        return requests.get(f"{api}/member/coupons", headers=shopper, timeout=10).json()["items"][0]["status"]

    assert coupon_status() == "locked"
    cancelled = requests.post(f"{api}/orders/{submitted.json()['id']}/cancel", json={"reason": "e2e"},
                              headers=shopper, timeout=10)
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "CANCELLED")
    platform.wait_until_consumed("order-cancelled", "member")
    platform.wait_until_consumed("order-cancelled", "product")
    assert coupon_status() == "available"


def test_a_coupon_for_a_parent_category_is_quoted_and_locked_for_the_lines_filed_under_its_children(
        platform: Platform) -> None:
    api, admin = platform.api, admin_headers(platform)

    def category(name: str, parent_id: int | None = None) -> int:
        created = requests.post(f"{api}/admin/categories", json={"name": f"{name}{uuid.uuid4().hex[:4]}",
                                                                 "parent_id": parent_id}, headers=admin, timeout=10)
        assert created.status_code == 201, created.text
        return int(created.json()["id"])

    digital = category("数码")
    _, phone = product_on_shelf(platform, stock=5, price_fen=1999, category_id=category("手机", digital))
    _, sofa = product_on_shelf(platform, stock=5, price_fen=2500, category_id=category("家居"))
    shopper, address_id = verified_wechat_shopper(platform, with_phone=True)
    assert requests.post(f"{api}/member/signup", json={"channel": "self"}, headers=shopper,
                         timeout=10).status_code in (200, 201)
    coupons = {}
    for name, amount_fen, threshold_fen in (("数码满30减5", 500, 3000), ("数码满40减8", 800, 4000)):
        template = requests.post(f"{api}/admin/coupons", headers=admin, timeout=10, json={
            "name": name, "kind": "fixed", "amount_fen": amount_fen, "threshold_fen": threshold_fen, "total": 10,
            "category_ids": [digital], "valid_from": "2020-01-01T00:00:00Z", "valid_to": "2199-01-01T00:00:00Z"})
        assert template.status_code == 201, template.text
        claimed = requests.post(f"{api}/member/coupons/claim", json={"template_id": template.json()["id"]},
                                headers=shopper, timeout=10)
        assert claimed.status_code == 201, claimed.text
        coupons[name] = claimed.json()["id"]
    items = [requests.post(f"{api}/cart/items", json={"sku_id": sku_id, "quantity": quantity}, headers=shopper,
                           timeout=10).json()["id"] for sku_id, quantity in ((phone, 2), (sofa, 1))]
    checkout = {"cart_item_ids": items, "address_id": address_id, "coupon_id": coupons["数码满30减5"]}

    listed = requests.post(f"{api}/checkout/preview", json={**checkout, "coupon_id": None}, headers=shopper,
                           timeout=10)
    unmet = requests.post(f"{api}/checkout/preview", json={**checkout, "coupon_id": coupons["数码满40减8"]},
                          headers=shopper, timeout=10)
    preview = requests.post(f"{api}/checkout/preview", json=checkout, headers=shopper, timeout=10)
    submitted = requests.post(f"{api}/orders", json=checkout, timeout=10,
                              headers={**shopper, "Idempotency-Key": uuid.uuid4().hex})

    # the phones (2 x 1999 = 3998, under 数码 > 手机) reach 30 yuan but not 40; the sofa (2500, 家居) never counts
    assert [(c["id"], c["discount_fen"]) for c in listed.json()["usable_coupons"]] == [(coupons["数码满30减5"], 500)]
    assert (unmet.status_code, unmet.json()["error"]["code"]) == (422, "COUPON_THRESHOLD_NOT_MET")
    assert (preview.status_code, submitted.status_code) == (200, 201), (preview.text, submitted.text)
    amounts = submitted.json()["amounts"]
    assert (amounts["items_total_fen"], amounts["coupon_discount_fen"]) == (6498, 500)
    assert {key: preview.json()[key] for key in amounts} == amounts
    cancelled = requests.post(f"{api}/orders/{submitted.json()['id']}/cancel", json={"reason": "e2e"},
                              headers=shopper, timeout=10)  # no unpaid order left for the payment-timeout test's count
    assert cancelled.status_code == 200, cancelled.text


def admin_stock(platform: Platform, product_id: int) -> int:
    product = requests.get(f"{platform.api}/admin/products/{product_id}", headers=admin_headers(platform), timeout=10)
    return product.json()["skus"][0]["stock"]


def place(platform: Platform, shopper: dict[str, str], checkout: dict[str, object]) -> dict[str, object]:
    submitted = requests.post(f"{platform.api}/orders", json=checkout, timeout=10,
                              headers={**shopper, "Idempotency-Key": uuid.uuid4().hex})
    assert submitted.status_code == 201, submitted.text
    return submitted.json()


def run_the_payment_timeout_at(platform: Platform, now: datetime) -> int:
    """One scan of the order service's payment-timeout job, as its scheduler runs it, at a later `now`.

    Waiting out the real 30-minute deadline is no test; the job is driven by the orders table alone,
    so scanning it at a time past the deadline is what the platform's own scheduler will do then.
    """
    start_mappers()
    engine = make_engine(platform.database_urls["order"])
    try:
        return service.expire_orders(SqlOrderUnitOfWork(engine, "order"), now=now)
    finally:
        engine.dispose()


def test_an_unpaid_order_past_its_deadline_is_cancelled_and_its_stock_and_coupon_released(platform: Platform) -> None:
    api = platform.api
    product_id, sku_id = product_on_shelf(platform, stock=5, price_fen=1999)
    shopper, address_id = verified_wechat_shopper(platform, with_phone=True)
    template = requests.post(f"{api}/admin/coupons", headers=admin_headers(platform), timeout=10, json={
        "name": "满10减3", "kind": "fixed", "amount_fen": 300, "threshold_fen": 1000, "total": 10,
        "valid_from": "2020-01-01T00:00:00Z", "valid_to": "2199-01-01T00:00:00Z"})
    requests.post(f"{api}/member/signup", json={"channel": "self"}, headers=shopper, timeout=10)
    coupon = requests.post(f"{api}/member/coupons/claim", json={"template_id": template.json()["id"]},
                           headers=shopper, timeout=10).json()
    order = place(platform, shopper, {"sku_id": sku_id, "quantity": 2, "address_id": address_id,
                                      "coupon_id": coupon["id"]})
    held = admin_stock(platform, product_id)

    deadline = datetime.fromisoformat(str(order["pay_deadline"]))
    unpaid = requests.get(f"{api}/admin/orders", params={"status": "PENDING_PAYMENT"}, headers=admin_headers(platform),
                          timeout=10).json()["total"]  # ours, and those earlier tests left unpaid (older deadlines)
    assert run_the_payment_timeout_at(platform, deadline - timedelta(microseconds=1)) == unpaid - 1
    assert run_the_payment_timeout_at(platform, deadline) == 1
    platform.wait_until_consumed("order-cancelled", "product")
    platform.wait_until_consumed("order-cancelled", "member")

    read = requests.get(f"{api}/orders/{order['id']}", headers=shopper, timeout=10).json()
    assert (read["status"], read["history"][-1]["actor"], read["history"][-1]["reason"]) == (
        "CANCELLED", "system:timeout", "payment deadline passed")
    assert (held, admin_stock(platform, product_id)) == (3, 5)
    mine = requests.get(f"{api}/member/coupons", headers=shopper, timeout=10).json()["items"]
    assert [(c["id"], c["status"]) for c in mine] == [(coupon["id"], "available")]
    late = requests.post(f"{api}/orders/{order['id']}/pay", json={"channel": "balance"}, headers=shopper, timeout=10)
    assert (late.status_code, late.json()["error"]["code"]) == (409, "ORDER_STATE_CONFLICT")


def test_paying_with_the_balance_takes_exactly_the_payable_amount_from_the_wallet_once(platform: Platform) -> None:
    api = platform.api
    product_id, sku_id = product_on_shelf(platform, stock=5, price_fen=1999)
    shopper, address_id = verified_wechat_shopper(platform, with_phone=True)
    member_with_balance(platform, shopper, 10_000)
    order = place(platform, shopper, {"sku_id": sku_id, "quantity": 2, "address_id": address_id})
    amounts = order["amounts"]

    paid = requests.post(f"{api}/orders/{order['id']}/pay", json={"channel": "balance"}, headers=shopper, timeout=10)
    again = requests.post(f"{api}/orders/{order['id']}/pay", json={"channel": "balance"}, headers=shopper, timeout=10)
    platform.wait_until_consumed("order-paid", "product")

    assert (paid.status_code, paid.json()["channel"], paid.json()["status"]) == (200, "balance", "PAID"), paid.text
    assert (again.status_code, again.json()["error"]["code"]) == (409, "ORDER_STATE_CONFLICT")
    # a new member is normal (100%): 2 x 1999, no freight
    assert (amounts["level_discount_fen"], amounts["payable_fen"]) == (0, 3998)  # type: ignore[index]
    member = requests.get(f"{api}/member", headers=shopper, timeout=10).json()
    assert member["balance_fen"] == 6_002  # 10,000 less the 3,998 paid
    read = requests.get(f"{api}/orders/{order['id']}", headers=shopper, timeout=10).json()
    assert (read["status"], read["pay_channel"], [step["status"] for step in read["history"]]) == (
        "PAID", "balance", ["PENDING_PAYMENT", "PAID"])
    # as the shopper: an anonymous read may be the page product_on_shelf cached before the sale (sales lag by the TTL)
    assert (requests.get(f"{api}/products/{product_id}", headers=shopper, timeout=10).json()["sales"],
            admin_stock(platform, product_id)) == (2, 3)
