"""The /admin/ console's work sections in headless Chromium: orders, after-sales, stuck money, coupon templates and
users (with their member record), shown by role.

The gateway runs on a local port with the fake services (the browser, the page and its screenshots:
tests/fixtures/browser.py); each test tells the fakes what the order service answers and checks what the console
asked of it and what it showed.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from flask.testing import FlaskClient
from google.protobuf.timestamp_pb2 import Timestamp
from mall.member.v1 import member_pb2
from mall.order.v1 import after_sale_pb2, order_pb2
from mall.user.v1 import user_pb2

from services.common.auth import STAFF_ROLES, WALLET_REPORT_READERS, WALLET_REPORTS
from services.common.grpc_server import CODE_KEY, DETAILS_KEY
from tests.fixtures.fake_services import FakeServices

AT = Timestamp(seconds=1_764_400_000)  # 2025-11-29T07:06:40Z


def changed(message: Any, **fields: Any) -> Any:
    """A copy of a protobuf message with some fields set otherwise."""
    copy = type(message)()
    copy.CopyFrom(message)
    for name, value in fields.items():
        setattr(copy, name, value)
    return copy


# A partly shipped order: line 9 shipped, line 10 waiting for stock. A line's name carries markup, shown as text.
ORDER = order_pb2.Order(
    id=5, order_no="2026112912000000000000abcd1234", user_id=42, status="PAID", pay_channel="wechat",
    lines=[order_pb2.OrderLine(id=9, sku_id=101, product_id=10, name="<b>茶</b>", spec="规格:大", price_fen=1999,
                               quantity=2),
           order_pb2.OrderLine(id=10, sku_id=102, product_id=11, name="杯", spec="白", price_fen=3500, quantity=1)],
    address=order_pb2.Address(name="张*", phone="138****8000", province="浙江省", city="杭州市", district="西湖区",
                              detail="文三路1号"),
    amounts=order_pb2.Amounts(items_total_fen=7498, level_discount_fen=199, freight_fen=1000, payable_fen=8299),
    pay_deadline=AT, created_at=AT, paid_at=AT,
    shipments=[order_pb2.Shipment(shipment_no="S1", carrier="SF", tracking_no="SF100", shipped_at=AT,
                                  lines=[order_pb2.ShipmentLine(line_id=9, quantity=2)])],
    history=[order_pb2.Transition(status="PAID", at=AT, actor="wechatpay", reason="paid", shopper_visible=True,
                                  shopper_reason="paid"),
             order_pb2.Transition(status="PAID", at=AT, actor="staff:7", reason="白色缺货，等补货",
                                  shopper_visible=False)])

CASE = after_sale_pb2.AfterSale(
    id=31, case_no="AS20261129000031", order_id=5, order_no=ORDER.order_no, user_id=42, type="refund_only",
    status="REQUESTED", reason="茶叶受潮", lines=[after_sale_pb2.AfterSaleLine(line_id=9, quantity=1, amount_fen=1899,
                                                                          sku_id=101, name="茶", spec="规格:大")],
    refund_fen=1899, created_at=AT, updated_at=AT,
    history=[after_sale_pb2.AfterSaleStep(status="REQUESTED", at=AT, actor="user:42", reason="茶叶受潮",
                                          shopper_visible=True, shopper_reason="茶叶受潮")])

# What each of the console's ROLES lists stands for: the route whose x-roles it must equal.
ROUTES = {
    "reports": ("get", "/api/v1/admin/analytics/overview"),
    "orders": ("get", "/api/v1/admin/orders"),
    "ship": ("post", "/api/v1/admin/orders/{order_id}/ship"),
    "cancelUnshipped": ("post", "/api/v1/admin/orders/{order_id}/cancel-unshipped"),
    "cancelReview": ("post", "/api/v1/admin/orders/{order_id}/cancel-review"),
    "afterSales": ("get", "/api/v1/admin/after-sales"),
    "decide": ("post", "/api/v1/admin/after-sales/{case_id}/decision"),
    "receive": ("post", "/api/v1/admin/after-sales/{case_id}/receive"),
    "retryRefund": ("post", "/api/v1/admin/after-sales/{case_id}/retry-refund"),
    "closeRefund": ("post", "/api/v1/admin/refunds/{refund_no}/close"),
    "refunds": ("get", "/api/v1/admin/refunds"),
    "retryRefundByNo": ("post", "/api/v1/admin/refunds/{refund_no}/retry"),
    "walletReviews": ("get", "/api/v1/admin/wallet-reviews"),
    "resolveWallet": ("post", "/api/v1/admin/wallet-reviews/{review_id}/resolve"),
    "withdrawals": ("get", "/api/v1/admin/withdrawals"),
    "decideWithdrawal": ("post", "/api/v1/admin/withdrawals/{withdrawal_id}/decision"),
    "ledgerAudit": ("get", "/api/v1/admin/ledger-audit"),
    "products": ("get", "/api/v1/admin/products"),
    "createProduct": ("post", "/api/v1/admin/products"),
    "submitProduct": ("post", "/api/v1/admin/products/{product_id}/submit"),
    "auditProduct": ("post", "/api/v1/admin/products/{product_id}/audit"),
    "shelfProduct": ("post", "/api/v1/admin/products/{product_id}/shelf"),
    "adjustStock": ("post", "/api/v1/admin/products/{product_id}/skus/{sku_id}/stock"),
    "reviews": ("get", "/api/v1/admin/reviews"),
    "hideReview": ("post", "/api/v1/admin/products/{product_id}/reviews/{review_id}/hide"),
    "unhideReview": ("post", "/api/v1/admin/reviews/{review_id}/unhide"),
    "couponTemplates": ("get", "/api/v1/admin/coupon-templates"),
    "createTemplate": ("post", "/api/v1/admin/coupons"),
    "approveTemplate": ("post", "/api/v1/admin/coupon-templates/{template_id}/approve"),
    "users": ("post", "/api/v1/admin/users/search"),
    "setRoles": ("put", "/api/v1/admin/users/{user_id}/roles"),
    "staffPassword": ("post", "/api/v1/admin/users/{user_id}/password"),
    "memberRecord": ("get", "/api/v1/admin/members/{user_id}"),
}


@pytest.fixture
def staff(clients: FakeServices) -> FakeServices:
    """The fake order service knows ORDER and CASE (staff log in with log_in_as: tests/unit/gateway/conftest.py)."""
    clients.order.SearchOrders.reply = order_pb2.ListOrdersResponse(orders=[ORDER], total=1)
    clients.order.GetOrder.reply = ORDER
    clients.order.SearchAfterSales.reply = after_sale_pb2.ListAfterSalesResponse(cases=[CASE], total=1)
    clients.order.GetAfterSale.reply = CASE
    return clients


def visible_sections(page: Any) -> list[str]:
    return page.eval_on_selector_all("[data-section]:not([hidden])", "els => els.map(e => e.textContent)")


def test_the_console_offers_each_action_to_exactly_the_roles_the_api_lets_do_it(client: FlaskClient) -> None:
    script = client.get("/admin/admin.js").get_data(as_text=True)
    spec = client.get("/openapi.json").get_json()

    block = re.search(r"const ROLES = \{(.*?)\n\};", script, re.S)
    assert block is not None
    listed = {name: set(re.findall(r'"(\w+)"', roles)) for name, roles in re.findall(r"(\w+): \[([^\]]*)\]",
                                                                                      block.group(1))}
    # walletReports: the kinds of POST /admin/reports only some of its x-roles may export (its description says so)
    assert listed.pop("walletReports") == set(WALLET_REPORT_READERS)
    assert set(re.findall(r'"(\w+)"', re.search(r"const WALLET_REPORTS = \[([^\]]*)\];", script).group(1))) == set(
        WALLET_REPORTS)
    assert listed == {name: set(spec["paths"][path][method]["x-roles"]) for name, (method, path) in ROUTES.items()}
    staff_roles = re.search(r"const STAFF_ROLES = \[([^\]]*)\];", script)
    assert staff_roles is not None and set(re.findall(r'"(\w+)"', staff_roles.group(1))) == set(STAFF_ROLES)


def test_customer_service_see_orders_after_sales_stuck_money_and_reviews_but_not_the_reports(
        page: Any, log_in_as, staff: FakeServices) -> None:
    log_in_as("customer_service")

    page.wait_for_selector("#orders tr[data-order-id]")
    assert visible_sections(page) == ["Orders", "After-sales", "Stuck money", "Reviews", "Users"]
    assert page.is_hidden("#dashboard-view") and page.is_visible("#orders-view")
    assert staff.analytics.GetOverview.calls == []
    assert page.errors == []


def test_finance_see_the_reports_stuck_money_withdrawals_and_coupons_only(page: Any, log_in_as,
                                                                         staff: FakeServices) -> None:
    log_in_as("finance")

    assert visible_sections(page) == ["Reports", "Stuck money", "Withdrawals", "Coupons"]
    page.click("[data-section=money-view]")
    page.wait_for_selector("#wallet-count:not(:empty)")
    assert page.is_hidden("#stuck-refunds") and staff.order.SearchAfterSales.calls == []


def test_searching_orders_sends_the_filters_and_renders_the_fakes_rows_as_text(
        page: Any, log_in_as, staff: FakeServices) -> None:
    log_in_as("customer_service")
    page.wait_for_selector("#orders tr[data-order-id]")
    page.select_option("#order-status", "PAID")
    page.fill("#order-no", ORDER.order_no)
    page.fill("#order-user", "42")
    page.fill("#order-from", "2026-11-29")
    page.fill("#order-to", "2026-11-30")

    page.click("#order-search button[type=submit]")
    page.wait_for_selector("#orders[data-query*='status=PAID']")

    search = staff.order.SearchOrders.calls[-1].message
    assert (search.statuses, search.order_no, search.user_id, search.offset, search.limit) == (
        ["PAID"], ORDER.order_no, 42, 0, 20)
    assert (search.created_from.ToJsonString(), search.created_to.ToJsonString()) == (
        "2026-11-28T16:00:00Z", "2026-11-30T16:00:00Z")
    rows = page.eval_on_selector_all("#orders tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText))")
    assert rows[1][:6] == [ORDER.order_no, "PAID", "2025-11-29 07:06:40Z", "¥82.99", "¥0.00", "2"]
    assert page.inner_text("#order-count") == "1 orders"
    assert page.errors == []


def test_an_opened_order_shows_its_lines_amounts_parcels_and_who_sees_each_step(
        page: Any, log_in_as, staff: FakeServices) -> None:
    log_in_as("customer_service")
    page.click("#orders tr[data-order-id='5'] button")
    page.wait_for_selector("#order-detail h2")

    cells = "rows => rows.slice(1).map(r => [...r.cells].map(c => c.innerText))"
    assert page.eval_on_selector_all("#order-lines tr", cells) == [
        ["9", "<b>茶</b>", "规格:大", "¥19.99", "2", "¥39.98"], ["10", "杯", "白", "¥35.00", "1", "¥35.00"]]
    assert page.eval_on_selector_all("#order-lines b", "els => els.length") == 0
    assert page.eval_on_selector_all("#order-amounts tr", cells) == [
        ["¥74.98", "¥1.99", "¥0.00", "¥0.00", "¥10.00", "¥82.99", "¥0.00"]]
    assert page.eval_on_selector_all("#order-shipments tr", cells) == [
        ["S1", "SF", "SF100", "2025-11-29 07:06:40Z", "9 × 2"]]
    assert [row[3:] for row in page.eval_on_selector_all("#order-detail table.history tr", cells)] == [
        ["paid", "paid"], ["白色缺货，等补货", "staff only"]]
    assert "138****8000" in page.inner_text("#order-detail")
    assert page.is_visible("#cancel-unshipped-form") and page.query_selector("#ship-form") is None
    assert page.errors == []


def test_an_opened_order_lists_its_refunds_with_their_source_and_status(
        page: Any, log_in_as, staff: FakeServices) -> None:
    refunded = changed(ORDER, refunded_fen=3500)
    refunded.refunds.extend([
        order_pb2.OrderRefund(refund_no="RF2026112912000000000000000001", amount_fen=3500, points_returned=120,
                              status="SUCCESS", channel="wechat", source="cancel_unshipped", created_at=AT,
                              updated_at=AT),
        order_pb2.OrderRefund(refund_no="LATE2026112912000000000000abcd1234", amount_fen=8299, status="ABNORMAL",
                              channel="wechat", source="late_payment", created_at=AT, updated_at=AT)])
    staff.order.GetOrder.reply = refunded
    log_in_as("customer_service")
    page.click("#orders tr[data-order-id='5'] button")
    page.wait_for_selector("#order-refunds")

    cells = "rows => rows.slice(1).map(r => [...r.cells].map(c => c.innerText))"
    at = "2025-11-29 07:06:40Z"
    assert page.eval_on_selector_all("#order-refunds tr", cells) == [
        ["RF2026112912000000000000000001", "cancel_unshipped", "SUCCESS", "¥35.00", "120", "wechat", at, at],
        ["LATE2026112912000000000000abcd1234", "late_payment", "ABNORMAL", "¥82.99", "0", "wechat", at, at]]
    assert page.errors == []


def test_cancelling_the_unshipped_units_retries_under_the_same_idempotency_key(
        page: Any, log_in_as, staff: FakeServices, rpc_error) -> None:
    shipped = changed(ORDER, status="SHIPPED", refunded_fen=3325)
    answers: list[Any] = [rpc_error(grpc.StatusCode.UNAVAILABLE, "WeChat Pay did not answer"), shipped]

    def cancel(message: order_pb2.CancelUnshippedRequest) -> order_pb2.Order:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer
    staff.order.CancelUnshipped.answer = cancel
    log_in_as("customer_service")
    page.click("#orders tr[data-order-id='5'] button")
    page.fill("#cancel-unshipped-form [name=reason]", "白色停产")
    page.fill("#cancel-unshipped-form [name=shopper_reason]", "白色已停产")

    page.click("#cancel-unshipped-form button[type=submit]")
    page.wait_for_selector("#cancel-unshipped-form .outcome.error:not(:empty)")
    page.click("#cancel-unshipped-form button[type=submit]")
    page.wait_for_selector("#order-detail h2:has-text('SHIPPED')")

    first, retry = (call.message for call in staff.order.CancelUnshipped.calls)
    assert uuid.UUID(first.idempotency_key).version == 4
    assert retry == first == order_pb2.CancelUnshippedRequest(
        id=5, reason="白色停产", shopper_reason="白色已停产", idempotency_key=first.idempotency_key)
    assert "¥33.25" in page.inner_text("#order-amounts")


def unshipped_refund(status: str, number: int = 1, **fields: Any) -> order_pb2.OrderRefund:
    return order_pb2.OrderRefund(refund_no=f"RF202611291200000000000000000{number}", amount_fen=3325, status=status,
                                 channel="wechat", source="cancel_unshipped", created_at=AT, updated_at=AT, **fields)


@pytest.mark.parametrize(("refunds", "offered"), [
    ([unshipped_refund("CLOSED")], True),  # refused by WeChat Pay, or an ABNORMAL one closed: the money is owed
    ([unshipped_refund("CLOSED", paid_after_close_at=AT)], False),  # WeChat Pay paid it after all
    ([unshipped_refund("CLOSED", paid_after_close_at=AT), unshipped_refund("CLOSED", 2)], False),  # and then one
    ([unshipped_refund("CLOSED"), unshipped_refund("CLOSED", 2)], True),  # started again closed too
    ([unshipped_refund("SUCCESS")], False),
    ([unshipped_refund("PENDING")], False),
], ids=["closed", "paid-after-close", "paid-after-close-then-closed", "closed-twice", "success", "pending"])
def test_a_shipped_order_whose_cancelled_units_refund_was_closed_offers_to_refund_them_again(
        page: Any, log_in_as, staff: FakeServices, refunds: list[order_pb2.OrderRefund], offered: bool) -> None:
    shipped = changed(ORDER, status="SHIPPED")
    shipped.refunds.extend(refunds)
    staff.order.GetOrder.reply = shipped
    staff.order.CancelUnshipped.reply = shipped
    log_in_as("customer_service")
    page.click("#orders tr[data-order-id='5'] button")
    page.wait_for_selector("#order-refunds")

    assert page.is_visible("#cancel-unshipped-form") is offered
    if offered:
        page.fill("#cancel-unshipped-form [name=reason]", "重新退款")
        page.click("#cancel-unshipped-form button[type=submit]")
        page.wait_for_function("() => !document.querySelector('#cancel-unshipped-form')")
        [call] = staff.order.CancelUnshipped.calls
        assert (call.message.id, call.message.reason) == (5, "重新退款")
    assert page.errors == []


def cancel_refund(status: str, source: str = "cancel") -> order_pb2.OrderRefund:
    return order_pb2.OrderRefund(refund_no="RF2026112912000000000000000002", amount_fen=8299, status=status,
                                 channel="wechat", source=source, created_at=AT, updated_at=AT)


@pytest.mark.parametrize(("refunds", "refunded_fen", "offered"), [
    ([cancel_refund("CLOSED")], 0, True),  # refused by WeChat Pay, or an ABNORMAL one closed: the money is owed
    ([], 0, True),  # approved, its refund never started (the process died in between)
    ([cancel_refund("CLOSED"), cancel_refund("PENDING")], 8299, False),  # under way: the fallback job asks
    ([cancel_refund("ABNORMAL")], 8299, False),  # retried or closed from the refunds list
    ([cancel_refund("CLOSED"), cancel_refund("ABNORMAL", "late_payment")], 0, True),  # not the order's money
], ids=["closed", "never-started", "pending", "abnormal", "late-payment-open"])
def test_an_approved_cancellation_whose_refund_was_closed_offers_to_approve_it_again(
        page: Any, log_in_as, staff: FakeServices, refunds: list[order_pb2.OrderRefund], refunded_fen: int,
        offered: bool) -> None:
    refunding = changed(ORDER, status="REFUNDING", refunded_fen=refunded_fen)
    refunding.refunds.extend(refunds)
    staff.order.GetOrder.reply = refunding
    staff.order.ReviewCancellation.reply = changed(ORDER, status="REFUNDED", refunded_fen=8299)
    log_in_as("customer_service")
    page.click("#orders tr[data-order-id='5'] button")
    page.wait_for_selector("#order-detail h2")

    assert page.is_visible("#cancel-review-form") is offered
    if offered:
        assert page.query_selector("#cancel-review-form button:text-is('Reject: keep the order')") is None
        page.fill("#cancel-review-form [name=reason]", "重新退款")
        page.click("#cancel-review-form button:text-is('Refund the order again')")
        page.wait_for_selector("#order-detail h2:has-text('REFUNDED')")
        assert [call.message for call in staff.order.ReviewCancellation.calls] == [
            order_pb2.ReviewCancellationRequest(id=5, approve=True, reason="重新退款")]
    assert page.errors == []


def test_approving_a_case_sends_the_shoppers_reason_and_the_staff_note(
        page: Any, log_in_as, staff: FakeServices) -> None:
    staff.order.DecideAfterSale.reply = changed(CASE, status="REFUNDING", refund_no="RF31")
    log_in_as("customer_service")
    page.click("[data-section=aftersales-view]")
    page.click("#cases tr[data-case-id='31'] button")
    page.fill("#decision-form [name=shopper_reason]", "已为您退款")
    page.fill("#decision-form [name=note]", "照片确认受潮")

    page.click("#decision-form button[type=submit]")
    page.wait_for_selector("#case-detail h2:has-text('REFUNDING')")

    assert [call.message for call in staff.order.DecideAfterSale.calls] == [
        after_sale_pb2.DecideAfterSaleRequest(id=31, approve=True, reason="照片确认受潮", shopper_reason="已为您退款")]
    assert page.errors == []


def test_a_refused_decision_shows_the_apis_error_code_and_message(
        page: Any, log_in_as, staff: FakeServices, rpc_error) -> None:
    staff.order.DecideAfterSale.error = rpc_error(
        grpc.StatusCode.ABORTED, "the case is not REQUESTED",
        ((CODE_KEY, "AFTER_SALE_STATE_CONFLICT"), (DETAILS_KEY, '{"status": "WITHDRAWN"}')))
    log_in_as("customer_service")
    page.click("[data-section=aftersales-view]")
    page.click("#cases tr[data-case-id='31'] button")

    page.click("#decision-form button.secondary")
    page.wait_for_selector("#decision-form .outcome.error:not(:empty)")

    shown = page.inner_text("#decision-form .outcome")
    assert shown.startswith('AFTER_SALE_STATE_CONFLICT: the case is not REQUESTED {"status":"WITHDRAWN"}')
    assert staff.order.DecideAfterSale.calls[0].message.approve is False


def test_finance_credit_a_wallet_charge_back_and_see_the_list_again(page: Any, log_in_as, staff: FakeServices) -> None:
    review = order_pb2.WalletReview(id=4, order_id=5, order_no=ORDER.order_no, user_id=43, amount_fen=8299,
                                    order_user_id=42, payable_fen=8299, problem="OTHER_USERS_WALLET", status="OPEN",
                                    flagged_at=AT)
    staff.order.ListWalletReviews.reply = order_pb2.ListWalletReviewsResponse(reviews=[review], total=1)
    staff.order.ResolveWalletReview.reply = changed(review, status="CREDITED")
    log_in_as("finance")
    page.click("[data-section=money-view]")
    page.wait_for_selector("#wallet-reviews tr[data-review-id='4'] form")
    row = page.eval_on_selector("#wallet-reviews tr[data-review-id='4']",
                                "r => [...r.cells].slice(0, 7).map(c => c.innerText)")
    assert row == [ORDER.order_no, "OTHER_USERS_WALLET", "user 43", "¥82.99", "user 42", "¥82.99", "OPEN"]
    page.select_option("#resolve-4 [name=resolution]", "credit_back")
    page.fill("#resolve-4 [name=reason]", "误用了家人的钱包")

    page.click("#resolve-4 button[type=submit]")
    page.wait_for_selector("#wallet-count[data-loads='2']", state="attached")

    assert [call.message for call in staff.order.ResolveWalletReview.calls] == [
        order_pb2.ResolveWalletReviewRequest(id=4, resolution="credit_back", reason="误用了家人的钱包")]
    assert [call.message.status for call in staff.order.ListWalletReviews.calls] == ["OPEN", "OPEN"]
    assert page.errors == []


def test_an_admin_retries_a_stuck_case_refund_and_closes_a_refund_by_its_number(
        page: Any, log_in_as, staff: FakeServices) -> None:
    abnormal = changed(CASE, status="REFUND_ABNORMAL", refund_no="RF31")
    staff.order.SearchAfterSales.answer = lambda m: after_sale_pb2.ListAfterSalesResponse(
        cases=[abnormal] if m.status == "REFUND_ABNORMAL" else [], total=int(m.status == "REFUND_ABNORMAL"))
    staff.order.RetryAfterSaleRefund.reply = abnormal
    staff.order.CloseRefund.reply = ORDER
    log_in_as("admin")
    page.click("[data-section=money-view]")
    page.wait_for_selector("#stuck tr[data-case-id='31']")

    page.click("#stuck tr[data-case-id='31'] button:has-text('Retry')")
    page.wait_for_selector("#stuck[data-loads='2']")  # the list is read again once the retry answered
    page.fill("#close-refund-no", "RF31")
    page.fill("#close-refund-reason", "银行卡已注销")
    page.click("#close-refund button[type=submit]")
    page.wait_for_selector("#stuck-error:has-text('Closed')")

    assert [call.message.id for call in staff.order.RetryAfterSaleRefund.calls] == [31]
    assert [call.message for call in staff.order.CloseRefund.calls] == [
        order_pb2.CloseRefundRequest(refund_no="RF31", reason="银行卡已注销")]
    assert sorted(call.message.status for call in staff.order.SearchAfterSales.calls[:2]) == [
        "REFUND_ABNORMAL", "REFUND_FAILED"]
    assert page.errors == []


# The order service's list of refunds, as it orders it: ABNORMAL, then PENDING, then the ended ones.
WAITING_SINCE = Timestamp(seconds=1_764_410_000)  # 2025-11-29T09:53:20Z
REFUNDS = order_pb2.ListRefundsResponse(total=3, refunds=[
    order_pb2.RefundSummary(refund_no="RF20251129070640000000abcdef01", order_id=5, order_no=ORDER.order_no,
                            source="cancel_unshipped", status="ABNORMAL", amount_fen=3325, channel="wechat",
                            reason="<i>白色停产</i>", actor="staff:7", created_at=AT, updated_at=WAITING_SINCE,
                            points_returned=1500),
    order_pb2.RefundSummary(refund_no="LATE2026112912000000000000abcd1234", order_id=5, order_no=ORDER.order_no,
                            source="late_payment", status="PENDING", amount_fen=8299, channel="wechat",
                            reason="paid after cancellation", actor="wechatpay", created_at=AT, updated_at=AT),
    order_pb2.RefundSummary(refund_no="RF20251129070640000000abcdef02", order_id=5, order_no=ORDER.order_no,
                            source="after_sale:31", status="SUCCESS", amount_fen=1899, channel="wechat",
                            reason="茶叶受潮", actor="staff:7", created_at=AT, updated_at=WAITING_SINCE)])
REFUND_ROWS = "rows => rows.slice(1).map(r => [...r.cells].slice(0, 11).map(c => c.innerText))"


def refund_buttons(page: Any) -> dict[str, list[str]]:
    return page.eval_on_selector_all("#refunds tr[data-refund-no]", """rows => Object.fromEntries(rows.map(r =>
        [r.dataset.refundNo, [...r.lastChild.querySelectorAll('button')].map(b => b.textContent)]))""")


def test_customer_service_see_the_refunds_needing_staff_first_and_retry_one_by_its_number(
        page: Any, log_in_as, staff: FakeServices) -> None:
    staff.order.ListRefunds.reply = REFUNDS
    staff.order.RetryRefund.reply = ORDER
    log_in_as("customer_service")
    page.click("[data-section=money-view]")
    page.wait_for_selector("#refunds tr[data-refund-no]")

    assert page.eval_on_selector_all("#refunds tr", REFUND_ROWS) == [
        ["RF20251129070640000000abcdef01", ORDER.order_no, "cancel_unshipped", "ABNORMAL", "¥33.25", "1,500", "wechat",
         "2025-11-29 07:06:40Z", "2025-11-29 09:53:20Z", "staff:7", "<i>白色停产</i>"],
        ["LATE2026112912000000000000abcd1234", ORDER.order_no, "late_payment", "PENDING", "¥82.99", "0", "wechat",
         "2025-11-29 07:06:40Z", "2025-11-29 07:06:40Z", "wechatpay", "paid after cancellation"],
        ["RF20251129070640000000abcdef02", ORDER.order_no, "after_sale:31", "SUCCESS", "¥18.99", "0", "wechat",
         "2025-11-29 07:06:40Z", "", "staff:7", "茶叶受潮"]]
    assert page.eval_on_selector_all("#refunds i", "els => els.length") == 0
    assert refund_buttons(page) == {"RF20251129070640000000abcdef01": ["Retry"],
                                    "LATE2026112912000000000000abcd1234": ["Retry"],
                                    "RF20251129070640000000abcdef02": []}
    assert page.inner_text("#refund-count") == "3 refunds"

    page.click("#refunds tr[data-refund-no^='LATE'] button:has-text('Retry')")
    page.wait_for_selector("#refund-count[data-loads='2']")  # the list is read again once the retry answered

    assert [call.message for call in staff.order.RetryRefund.calls] == [
        order_pb2.RetryRefundRequest(refund_no="LATE2026112912000000000000abcd1234")]
    assert [call.message for call in staff.order.ListRefunds.calls] == [order_pb2.ListRefundsRequest(limit=20)] * 2
    assert page.errors == []


def test_a_refused_retry_shows_the_apis_error_in_its_row(page: Any, log_in_as, staff: FakeServices,
                                                         rpc_error) -> None:
    staff.order.ListRefunds.reply = REFUNDS
    staff.order.RetryRefund.error = rpc_error(
        grpc.StatusCode.UNAVAILABLE, "WeChat Pay gave no usable answer",
        ((CODE_KEY, "PAYMENT_CHANNEL_UNAVAILABLE"), (DETAILS_KEY, '{"refund_no": "RF20251129070640000000abcdef01"}')))
    log_in_as("customer_service")
    page.click("[data-section=money-view]")

    page.click("#refunds tr[data-status=ABNORMAL] button:has-text('Retry')")
    page.wait_for_selector("#refunds tr[data-status=ABNORMAL] .outcome.error:not(:empty)")

    assert page.inner_text("#refunds tr[data-status=ABNORMAL] .outcome").startswith(
        'PAYMENT_CHANNEL_UNAVAILABLE: WeChat Pay gave no usable answer {"refund_no":"RF20251129070640000000abcdef01"}')


def test_a_closed_refund_wechat_pay_paid_after_all_says_so_and_when_in_the_list_and_the_order(
        page: Any, log_in_as, staff: FakeServices) -> None:
    paid_after_close = order_pb2.RefundSummary(
        refund_no="RF20251129070640000000abcdef03", order_id=5, order_no=ORDER.order_no, source="after_sale:32",
        status="CLOSED", amount_fen=1899, channel="wechat", reason="<b>卡已注销</b>", actor="staff:7", created_at=AT,
        updated_at=AT, paid_after_close_at=WAITING_SINCE)
    staff.order.ListRefunds.reply = order_pb2.ListRefundsResponse(total=2, refunds=[paid_after_close,
                                                                                   REFUNDS.refunds[2]])
    log_in_as("customer_service")
    page.click("[data-section=money-view]")
    page.wait_for_selector("#refunds tr[data-refund-no]")

    assert page.eval_on_selector_all("#refunds tr", REFUND_ROWS) == [
        ["RF20251129070640000000abcdef03", ORDER.order_no, "after_sale:32",
         "closed, paid by WeChat Pay after all at 2025-11-29 09:53:20Z", "¥18.99", "0", "wechat",
         "2025-11-29 07:06:40Z", "", "staff:7", "<b>卡已注销</b>"],
        ["RF20251129070640000000abcdef02", ORDER.order_no, "after_sale:31", "SUCCESS", "¥18.99", "0", "wechat",
         "2025-11-29 07:06:40Z", "", "staff:7", "茶叶受潮"]]
    assert page.eval_on_selector_all("#refunds b", "els => els.length") == 0
    assert refund_buttons(page) == {"RF20251129070640000000abcdef03": [], "RF20251129070640000000abcdef02": []}

    refunded = changed(ORDER, refunded_fen=1899)
    refunded.refunds.extend([order_pb2.OrderRefund(
        refund_no="RF20251129070640000000abcdef03", amount_fen=1899, status="CLOSED", channel="wechat",
        source="after_sale:32", created_at=AT, updated_at=AT, paid_after_close_at=WAITING_SINCE)])
    staff.order.GetOrder.reply = refunded
    page.click("[data-section=orders-view]")
    page.click("#orders tr[data-order-id='5'] button")
    page.wait_for_selector("#order-refunds")

    assert page.eval_on_selector_all("#order-refunds tr", "rows => rows.slice(1).map(r => r.cells[2].innerText)") == [
        "closed, paid by WeChat Pay after all at 2025-11-29 09:53:20Z"]
    assert page.errors == []


def test_finance_read_the_refunds_with_no_retry_or_close(page: Any, log_in_as, staff: FakeServices) -> None:
    staff.order.ListRefunds.reply = REFUNDS
    log_in_as("finance")
    page.click("[data-section=money-view]")
    page.wait_for_selector("#refunds tr[data-refund-no]")

    assert refund_buttons(page) == dict.fromkeys((refund.refund_no for refund in REFUNDS.refunds), [])
    assert page.query_selector("#refunds form") is None


def test_an_admin_filters_the_refunds_and_closes_an_abnormal_one_from_the_list(
        page: Any, log_in_as, staff: FakeServices) -> None:
    staff.order.ListRefunds.reply = REFUNDS
    staff.order.CloseRefund.reply = ORDER
    log_in_as("admin")
    page.click("[data-section=money-view]")
    page.wait_for_selector("#refunds tr[data-refund-no]")
    page.select_option("#refund-status", "ABNORMAL")
    page.select_option("#refund-source", "cancel_unshipped")
    page.fill("#refund-order-no", ORDER.order_no)
    page.click("#refund-search button[type=submit]")
    page.wait_for_selector("#refund-count[data-loads='2']")
    assert page.eval_on_selector_all("#refunds form", "forms => forms.map(f => f.id)") == [
        "close-RF20251129070640000000abcdef01"]

    page.fill("#refunds tr[data-status=ABNORMAL] form [name=reason]", "银行卡已注销")
    page.click("#refunds tr[data-status=ABNORMAL] form button[type=submit]")
    page.wait_for_selector("#refund-count[data-loads='3']")

    assert [call.message for call in staff.order.CloseRefund.calls] == [
        order_pb2.CloseRefundRequest(refund_no="RF20251129070640000000abcdef01", reason="银行卡已注销")]
    assert staff.order.ListRefunds.calls[1].message == staff.order.ListRefunds.calls[2].message == (
        order_pb2.ListRefundsRequest(status="ABNORMAL", source="cancel_unshipped", order_no=ORDER.order_no,
                                     limit=20))
    assert page.errors == []



def test_the_ship_forms_tracking_number_pattern_is_checked_by_the_browser(
        page: Any, log_in_as, staff: FakeServices) -> None:
    log_in_as("operator")
    page.click("[data-section=orders-view]")
    page.click("#orders tr[data-order-id='5'] button")

    page.fill("#ship-form [name=tracking_no]", "SF 200")

    assert page.eval_on_selector("#ship-form [name=tracking_no]", "input => input.validity.patternMismatch")
    assert page.errors == []  # the pattern is a valid regular expression (the v flag refuses an unescaped "-")


# The four paged lists, each named by its table: the section it is in, the fake RPC behind it, and that RPC's answer
# when 25 match (two pages of 20).
PAGED = {
    "orders": ("orders-view", "SearchOrders", order_pb2.ListOrdersResponse(orders=[ORDER], total=25)),
    "cases": ("aftersales-view", "SearchAfterSales", after_sale_pb2.ListAfterSalesResponse(cases=[CASE], total=25)),
    "refunds": ("money-view", "ListRefunds", order_pb2.ListRefundsResponse(refunds=REFUNDS.refunds, total=25)),
    "wallet-reviews": ("money-view", "ListWalletReviews", order_pb2.ListWalletReviewsResponse(total=25)),
}


def pager_state(page: Any, name: str) -> tuple[str, list[bool]]:
    """What the list's pager says and which of Previous, Next can be pressed."""
    pager = f".pager[data-for='{name}']"
    return (page.inner_text(f"{pager} span"),
            page.eval_on_selector_all(f"{pager} button", "buttons => buttons.map(b => !b.disabled)"))


@pytest.mark.parametrize("name", PAGED)
def test_a_lists_pager_turns_to_the_next_page_and_back_and_stops_at_either_end(
        page: Any, log_in_as, staff: FakeServices, name: str) -> None:
    section, rpc, answer = PAGED[name]
    getattr(staff.order, rpc).reply = answer
    log_in_as("customer_service")
    page.click(f"[data-section={section}]")
    page.wait_for_selector(f".pager[data-for='{name}'] span:text-is('page 1 of 2')")
    assert pager_state(page, name) == ("page 1 of 2", [False, True])

    page.click(f".pager[data-for='{name}'] button:text-is('Next')")
    page.wait_for_selector(f".pager[data-for='{name}'] span:text-is('page 2 of 2')")
    assert pager_state(page, name) == ("page 2 of 2", [True, False])
    page.click(f".pager[data-for='{name}'] button:text-is('Previous')")
    page.wait_for_selector(f".pager[data-for='{name}'] span:text-is('page 1 of 2')")

    first, second, back = (call.message for call in getattr(staff.order, rpc).calls)
    assert (first.offset, second.offset, back.offset) == (0, 20, 0)
    assert changed(second, offset=0) == first == back  # every page asks with the same filters
    assert page.errors == []


@dataclass(frozen=True)
class StaffAction:
    """A staff action on an opened order or case: who does it, on what, through which form, fields and button; what
    the order service is then asked and answers, and the status the console shows after."""

    role: str
    opened: Any
    form: str
    fields: dict[str, str]
    button: str
    rpc: str
    request: Any
    answer: Any
    shown: str


CANCEL_REQUESTED = changed(ORDER, status="CANCEL_REQUESTED")
ACTIONS = {  # what staff type is sent trimmed
    "ship": StaffAction("operator", ORDER, "ship-form", {"carrier": " SF ", "tracking_no": "SF200"}, "Ship",
                        "ShipOrder", order_pb2.ShipOrderRequest(id=5, carrier="SF", tracking_no="SF200"),
                        changed(ORDER, status="SHIPPED"), "SHIPPED"),
    "approve a cancellation": StaffAction(
        "customer_service", CANCEL_REQUESTED, "cancel-review-form", {"reason": " 顾客已同意 "},
        "Approve: refund the order", "ReviewCancellation",
        order_pb2.ReviewCancellationRequest(id=5, approve=True, reason="顾客已同意"),
        changed(ORDER, status="REFUNDING"), "REFUNDING"),
    "reject a cancellation": StaffAction(
        "customer_service", CANCEL_REQUESTED, "cancel-review-form", {"reason": "已发货"}, "Reject: keep the order",
        "ReviewCancellation", order_pb2.ReviewCancellationRequest(id=5, approve=False, reason="已发货"), ORDER, "PAID"),
    "receive a return": StaffAction(
        "customer_service", changed(CASE, type="return_refund", status="RETURN_SHIPPED"), "receive-form",
        {"note": "包装完好"}, "Received: restock and refund", "ReceiveReturn",
        after_sale_pb2.ReceiveReturnRequest(id=31, note="包装完好"), changed(CASE, status="REFUNDING"), "REFUNDING"),
    "retry a case's refund": StaffAction(
        "customer_service", changed(CASE, status="REFUND_FAILED"), "retry-form", {}, "Retry the refund",
        "RetryAfterSaleRefund", after_sale_pb2.GetAfterSaleRequest(id=31), changed(CASE, status="REFUNDING"),
        "REFUNDING"),
    # Closing answers the order; the case is read again to show where it went.
    "close a case's refund": StaffAction(
        "admin", changed(CASE, status="REFUND_ABNORMAL", refund_no="RF31"), "close-form", {"reason": "银行卡已注销"},
        "Close the refund", "CloseRefund", order_pb2.CloseRefundRequest(refund_no="RF31", reason="银行卡已注销"),
        ORDER, "REFUND_FAILED"),
}


@pytest.mark.parametrize("action", ACTIONS.values(), ids=ACTIONS)
def test_an_action_form_sends_its_fields_and_shows_the_order_or_case_as_answered(
        page: Any, log_in_as, staff: FakeServices, action: StaffAction) -> None:
    order = isinstance(action.opened, order_pb2.Order)
    section, rows, detail = ("orders-view", "#orders", "#order-detail") if order else (
        "aftersales-view", "#cases", "#case-detail")
    reads = [action.opened, changed(action.opened, status=action.shown)]
    (staff.order.GetOrder if order else staff.order.GetAfterSale).answer = lambda message: reads.pop(0)
    getattr(staff.order, action.rpc).reply = action.answer
    log_in_as(action.role)
    page.click(f"[data-section={section}]")
    page.click(f"{rows} tr[data-{'order' if order else 'case'}-id] button")
    for name, value in action.fields.items():
        page.fill(f"#{action.form} [name={name}]", value)

    page.click(f"#{action.form} button:text-is('{action.button}')")
    page.wait_for_selector(f"{detail} h2:has-text('{action.shown}')")

    assert [call.message for call in getattr(staff.order, action.rpc).calls] == [action.request]
    assert page.errors == []


def test_a_stuck_cases_open_button_shows_it_in_the_after_sales_section(
        page: Any, log_in_as, staff: FakeServices) -> None:
    failed = changed(CASE, status="REFUND_FAILED")
    staff.order.SearchAfterSales.answer = lambda m: after_sale_pb2.ListAfterSalesResponse(
        cases=[failed] if m.status == "REFUND_FAILED" else [], total=int(m.status == "REFUND_FAILED"))
    staff.order.GetAfterSale.reply = failed
    log_in_as("customer_service")
    page.click("[data-section=money-view]")

    page.click("#stuck tr[data-case-id='31'] button:text-is('Open')")
    page.wait_for_selector("#case-detail h2:has-text('REFUND_FAILED')")

    assert page.is_visible("#aftersales-view") and page.is_hidden("#money-view")
    assert [call.message.id for call in staff.order.GetAfterSale.calls] == [31]
    assert page.errors == []


def found_user(*roles: str) -> user_pb2.User:
    """The account the user search finds (its phone masked by the user service), a shopper unless given roles."""
    return user_pb2.User(id=9, phone_masked="139****5678", nickname="<b>小明</b>", roles=roles, created_at=AT)


SHOPPER = found_user()
USER_ROWS = "rows => rows.slice(1).map(r => [...r.cells].slice(0, 5).map(c => c.innerText))"


def test_customer_service_find_a_user_by_phone_never_in_a_url_and_may_not_set_roles_or_passwords(
        page: Any, log_in_as, clients: FakeServices) -> None:
    clients.user.SearchUsers.reply = user_pb2.SearchUsersResponse(users=[SHOPPER], total=1)
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    log_in_as("customer_service")
    page.click("[data-section=users-view]")
    assert clients.user.SearchUsers.calls == []  # nothing is looked up (and audited) before staff search
    page.fill("#user-phone", "13912345678")

    page.click("#user-search button[type=submit]")
    page.wait_for_selector("#users tr[data-user-id='9']")
    page.click("#users tr[data-user-id='9'] button")
    page.wait_for_selector("#user-detail h2")

    assert page.eval_on_selector_all("#users tr", USER_ROWS) == [
        ["9", "<b>小明</b>", "139****5678", "shopper", "2025-11-29 07:06:40Z"]]
    assert page.inner_text("#user-count") == "1 users"
    assert [call.message for call in clients.user.SearchUsers.calls] == [
        user_pb2.SearchUsersRequest(phone="13912345678", limit=20), user_pb2.SearchUsersRequest(user_id=9, limit=20)]
    assert [url for url in urls if "13912345678" in url] == []
    assert page.inner_text("#user-detail h2") == "User 9 · <b>小明</b>"
    assert page.query_selector("#roles-form") is None and page.query_selector("#staff-password-form") is None
    assert page.errors == []


def test_an_admin_makes_a_shopper_staff_is_told_the_password_was_cleared_and_sets_one(
        page: Any, log_in_as, clients: FakeServices) -> None:
    clients.user.SearchUsers.reply = user_pb2.SearchUsersResponse(users=[SHOPPER], total=1)
    clients.user.SetUserRoles.reply = user_pb2.SetUserRolesResponse(
        user=found_user("operator"), password_cleared=True, sessions_ended=2)
    clients.user.SetStaffPassword.reply = user_pb2.LogoutResponse(sessions_ended=0)
    log_in_as("admin")
    page.click("[data-section=users-view]")
    page.fill("#user-id", "9")
    page.click("#user-search button[type=submit]")
    page.click("#users tr[data-user-id='9'] button")
    page.wait_for_selector("#roles-form")
    assert page.query_selector("#staff-password-form") is None  # a shopper's password is theirs (reset by SMS)

    page.check("#roles-form [name=role-operator]")
    page.click("#roles-form button[type=submit]")
    page.wait_for_selector("#user-notice:not(:empty)")
    page.fill("#staff-password-form [name=new_password]", "staffpass1")
    page.click("#staff-password-form button[type=submit]")
    page.wait_for_selector("#staff-password-form .outcome:not(:empty)")

    assert [call.message for call in clients.user.SetUserRoles.calls] == [
        user_pb2.SetUserRolesRequest(user_id=9, roles=["operator"])]
    assert page.inner_text("#user-notice") == (
        "Roles set. Their password was cleared and 2 sessions ended: set a password for them below.")
    assert page.inner_text("#user-detail h2 + p") == "139****5678 · operator · registered 2025-11-29 07:06:40Z"
    assert page.is_checked("#roles-form [name=role-operator]") and not page.is_checked("#roles-form [name=role-admin]")
    assert [call.message for call in clients.user.SetStaffPassword.calls] == [
        user_pb2.SetStaffPasswordRequest(user_id=9, new_password="staffpass1")]
    assert page.inner_text("#staff-password-form .outcome") == "Password set: 0 sessions ended."
    assert len(clients.member.LookUpMember.calls) == 1  # the member panel is kept on redraw: not read (audited) again
    assert page.input_value("#staff-password-form [name=new_password]") == ""
    assert page.errors == []


def test_a_refused_staff_password_shows_the_apis_error(page: Any, log_in_as, clients: FakeServices,
                                                       rpc_error) -> None:
    staff_member = found_user("finance")
    clients.user.SearchUsers.reply = user_pb2.SearchUsersResponse(users=[staff_member], total=1)
    clients.user.SetStaffPassword.error = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT, "the password is too weak",
        ((CODE_KEY, "PASSWORD_TOO_WEAK"), (DETAILS_KEY, '{"new_password": "too weak"}')))
    log_in_as("admin")
    page.click("[data-section=users-view]")
    page.fill("#user-nickname", "小明")
    page.click("#user-search button[type=submit]")
    page.click("#users tr[data-user-id='9'] button")
    page.fill("#staff-password-form [name=new_password]", "password")

    page.click("#staff-password-form button[type=submit]")
    page.wait_for_selector("#staff-password-form .outcome.error:not(:empty)")

    assert page.inner_text("#staff-password-form .outcome").startswith(
        'PASSWORD_TOO_WEAK: the password is too weak {"new_password":"too weak"}')
    assert clients.user.SearchUsers.calls[0].message == user_pb2.SearchUsersRequest(nickname_prefix="小明", limit=20)


def test_finance_approve_a_waiting_coupon_template_and_see_the_list_again(page: Any, log_in_as,
                                                                          clients: FakeServices) -> None:
    waiting = member_pb2.CouponTemplate(
        id=12, name="<i>满50减5</i>", kind="fixed", amount_fen=500, threshold_fen=5_000, total=100, issued=0,
        per_user_limit=1, valid_from=AT, valid_to=AT, status="pending_approval", created_at=AT, created_by=900)
    clients.member.ListCouponTemplates.reply = member_pb2.ListCouponTemplatesResponse(templates=[waiting], total=1)
    clients.member.ApproveCouponTemplate.reply = changed(waiting, status="active", approved_by=7)
    log_in_as("finance")
    page.click("[data-section=coupons-view]")
    page.wait_for_selector("#coupons tr[data-template-id='12'] button")
    shown = page.eval_on_selector("#coupons tr[data-template-id='12']",
                                  "r => [...r.cells].slice(0, 12).map(c => c.innerText)")

    page.click("#coupons tr[data-template-id='12'] button")
    page.wait_for_selector("#coupon-count[data-loads='2']", state="attached")

    assert shown == ["12", "<i>满50减5</i>", "¥5.00 off over ¥50.00", "0 of 100", "0", "0", "0", "0",
                     "2025-11-29 07:06:40Z – 2025-11-29 07:06:40Z", "pending_approval", "user 900 2025-11-29 07:06:40Z",
                     ""]
    assert [call.message for call in clients.member.ApproveCouponTemplate.calls] == [
        member_pb2.ApproveCouponTemplateRequest(template_id=12)]
    assert [call.message.status for call in clients.member.ListCouponTemplates.calls] == ["pending_approval"] * 2
    assert page.errors == []


def test_operators_see_the_coupon_templates_with_no_approve_button(page: Any, log_in_as,
                                                                   clients: FakeServices) -> None:
    clients.member.ListCouponTemplates.reply = member_pb2.ListCouponTemplatesResponse(total=1, templates=[
        member_pb2.CouponTemplate(id=12, name="x", kind="percent", percent_off=10, cap_fen=2_000, total=5,
                                  valid_from=AT, valid_to=AT, status="pending_approval", created_at=AT,
                                  created_by=7)])
    log_in_as("operator")
    page.click("[data-section=coupons-view]")
    page.wait_for_selector("#coupons tr[data-template-id='12']")

    assert page.eval_on_selector("#coupons tr[data-template-id='12']", "r => r.cells[2].innerText") == (
        "10% off, at most ¥20.00")
    assert page.query_selector("#coupons tr[data-template-id='12'] button") is None
    assert page.errors == []


def test_the_coupon_templates_show_their_claimed_coupons_counted_by_how_they_stand(page: Any, log_in_as,
                                                                                   clients: FakeServices) -> None:
    clients.member.ListCouponTemplates.reply = member_pb2.ListCouponTemplatesResponse(total=1, templates=[
        member_pb2.CouponTemplate(id=12, name="满50减5", kind="fixed", amount_fen=500, total=2_000, issued=1_510,
                                  valid_from=AT, valid_to=AT, status="active", created_at=AT, created_by=7,
                                  usage=member_pb2.CouponUsage(available=1_200, locked=3, used=300, expired=7))])
    log_in_as("finance")
    page.click("[data-section=coupons-view]")
    page.wait_for_selector("#coupons tr[data-template-id='12']")

    headers = page.eval_on_selector_all("#coupons th", "hs => hs.slice(3, 8).map(h => h.innerText)")
    shown = page.eval_on_selector("#coupons tr[data-template-id='12']",
                                  "r => [...r.cells].slice(3, 8).map(c => c.innerText)")

    assert headers == ["Claimed", "Available", "In orders", "Used", "Expired"]
    assert shown == ["1,510 of 2,000", "1,200", "3", "300", "7"]
    assert page.errors == []


MEMBER = member_pb2.LookUpMemberResponse(
    member=member_pb2.Member(member_no="M0009", level="silver", discount_percent=98, points_multiplier_percent=120,
                             points=390, balance_fen=1_234_567, pending_fen=2_000, bonus_fen=500, points_owed=100,
                             coupons_available=2, total_spend_fen=250_000, channel="self", joined_at=AT),
    points_entries=[member_pb2.LedgerEntry(id=12, account="points", amount=-30, balance_after=390,
                                           kind="order_refunded", reference="<i>R1</i>", created_at=AT),
                    member_pb2.LedgerEntry(id=11, account="points", amount=420, balance_after=420,
                                           kind="order_paid", reference="O1", created_at=AT)],
    points_entries_total=12)
MEMBER_ROWS = "rows => rows.slice(1).map(r => [...r.cells].map(c => c.innerText))"


def test_customer_service_open_a_user_and_read_their_member_record_points_owed_and_points_a_page_at_a_time(
        page: Any, log_in_as, clients: FakeServices) -> None:
    clients.user.SearchUsers.reply = user_pb2.SearchUsersResponse(users=[SHOPPER], total=1)
    clients.member.LookUpMember.reply = MEMBER
    log_in_as("customer_service")
    page.click("[data-section=users-view]")
    page.fill("#user-id", "9")
    page.click("#user-search button[type=submit]")

    page.click("#users tr[data-user-id='9'] button")
    page.wait_for_selector("#member-summary")
    first = page.eval_on_selector_all("#member-points tr", MEMBER_ROWS)
    page.click("#member-panel .pager [data-step='1']")
    # A selector wait, not a string expression: polling a string is an eval the console's CSP refuses.
    page.wait_for_selector("#member-panel .pager span:text-is('page 2 of 2')")

    assert page.eval_on_selector_all("#member-summary tr", MEMBER_ROWS) == [[
        "M0009", "silver", "390", "100", "¥12,345.67", "¥20.00", "¥5.00", "2", "¥2,500.00", "–",
        "2025-11-29 07:06:40Z"]]
    assert first == [["2025-11-29 07:06:40Z", "points", "-30", "390", "order_refunded", "<i>R1</i>"],
                     ["2025-11-29 07:06:40Z", "points", "420", "420", "order_paid", "O1"]]
    assert [call.message for call in clients.member.LookUpMember.calls] == [
        member_pb2.LookUpMemberRequest(user_id=9, limit=10), member_pb2.LookUpMemberRequest(user_id=9, offset=10,
                                                                                            limit=10)]
    assert page.is_disabled("#member-panel .pager [data-step='1']")
    assert page.errors == []


def test_operators_open_a_user_without_a_member_panel_and_no_member_record_is_read(
        page: Any, log_in_as, clients: FakeServices) -> None:
    clients.user.SearchUsers.reply = user_pb2.SearchUsersResponse(users=[SHOPPER], total=1)
    log_in_as("operator")
    page.click("[data-section=users-view]")
    page.fill("#user-id", "9")
    page.click("#user-search button[type=submit]")

    page.click("#users tr[data-user-id='9'] button")
    page.wait_for_selector("#user-detail h2")

    assert (page.query_selector("#member-panel"), clients.member.LookUpMember.calls) == (None, [])


def test_a_user_who_is_not_a_member_is_said_so_in_the_member_panel(page: Any, log_in_as, clients: FakeServices,
                                                                   rpc_error) -> None:
    clients.user.SearchUsers.reply = user_pb2.SearchUsersResponse(users=[SHOPPER], total=1)
    clients.member.LookUpMember.error = rpc_error(grpc.StatusCode.NOT_FOUND, "user 9 is not a member",
                                                  ((CODE_KEY, "MEMBER_NOT_FOUND"),))
    log_in_as("admin")
    page.click("[data-section=users-view]")
    page.fill("#user-id", "9")
    page.click("#user-search button[type=submit]")

    page.click("#users tr[data-user-id='9'] button")
    page.wait_for_selector("#member-panel p:not(:has-text('Loading'))")

    assert page.inner_text("#member-panel p") == "Not a member."
    assert page.errors == ["Failed to load resource: the server responded with a status of 404 (NOT FOUND)"]
