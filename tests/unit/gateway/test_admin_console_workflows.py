"""The /admin/ console's workflows in headless Chromium: finance decide shoppers' withdrawals (the list by status,
approve or reject with a note), and a product opened from the list goes through its workflow (submitted for audit,
audited, put on the shelf) and has its SKUs' stock adjusted, each step offered to the roles the API lets take it.

The gateway runs on a local port (tests/fixtures/browser.py); the member and product services are small stateful
fakes, so a step the console takes shows in what it reads next.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from mall.member.v1 import member_pb2
from mall.product.v1 import product_pb2

from services.common.grpc_server import CODE_KEY
from tests.fixtures.fake_services import FakeServices

AT = Timestamp(seconds=1_764_400_000)  # 2025-11-29T07:06:40Z
ROW = "r => [...r.cells].slice(0, 9).map(c => c.innerText)"


class FakeWithdrawals:
    """ListWithdrawals and DecideWithdrawal of the member service over a dict: a decision moves a PENDING_REVIEW
    withdrawal to PAYING (a WeChat Pay transfer awaiting the shopper) or REJECTED."""

    def __init__(self, *withdrawals: member_pb2.Withdrawal) -> None:
        self.by_id = {w.id: w for w in withdrawals}

    def list(self, message: member_pb2.ListWithdrawalsRequest) -> member_pb2.ListWithdrawalsResponse:
        found = [w for w in self.by_id.values() if message.status in ("", w.status)]
        return member_pb2.ListWithdrawalsResponse(withdrawals=found, total=len(found))

    def decide(self, message: member_pb2.DecideWithdrawalRequest) -> member_pb2.Withdrawal:
        withdrawal = self.by_id[message.withdrawal_id]
        withdrawal.status = "PAYING" if message.approve else "REJECTED"
        withdrawal.awaits_shopper = message.approve
        withdrawal.note = message.note
        withdrawal.decided_at.CopyFrom(AT)
        return withdrawal


@pytest.fixture
def withdrawals(clients: FakeServices) -> FakeWithdrawals:
    fake = FakeWithdrawals(
        member_pb2.Withdrawal(id=3, withdrawal_no="W20251129000003", user_id=42, amount_fen=123_456,
                              bonus_forfeited_fen=500, payout_fen=122_956, status="PENDING_REVIEW",
                              note="<b>提现</b>", created_at=AT),
        member_pb2.Withdrawal(id=4, withdrawal_no="W20251129000004", user_id=43, amount_fen=250_000,
                              payout_fen=250_000, status="PAYING", awaits_shopper=True, created_at=AT,
                              decided_at=AT))
    clients.member.ListWithdrawals.answer = fake.list
    clients.member.DecideWithdrawal.answer = fake.decide
    return fake


def open_withdrawals(page: Any, log_in_as: Callable[[str], None], role: str) -> None:
    log_in_as(role)
    page.click("[data-section=withdrawals-view]")
    page.wait_for_selector("#withdrawal-count[data-loads='1']", state="attached")


def test_finance_see_a_pending_withdrawal_approve_it_and_it_leaves_the_list_paying(
        page: Any, log_in_as, clients: FakeServices, withdrawals: FakeWithdrawals) -> None:
    open_withdrawals(page, log_in_as, "finance")
    shown = page.eval_on_selector("#withdrawals tr[data-withdrawal-id='3']", ROW)
    page.fill("#withdrawal-3 [name=note]", "核对无误")

    page.click("#withdrawal-3 button[type=submit]")
    page.wait_for_selector("#withdrawal-count[data-loads='2']", state="attached")

    assert shown == ["W20251129000003", "user 42", "PENDING_REVIEW", "¥1,234.56", "¥5.00", "¥1,229.56",
                     "2025-11-29 07:06:40Z", "", "<b>提现</b>"]
    assert [call.message for call in clients.member.DecideWithdrawal.calls] == [
        member_pb2.DecideWithdrawalRequest(withdrawal_id=3, approve=True, note="核对无误")]
    assert [call.message.status for call in clients.member.ListWithdrawals.calls] == ["PENDING_REVIEW"] * 2
    assert page.inner_text("#withdrawal-notice") == (
        "Withdrawal W20251129000003 (¥1,229.56 to user 42): PAYING, awaiting the shopper's confirmation in WeChat.")
    assert page.query_selector("#withdrawals tr[data-withdrawal-id='3']") is None
    assert page.inner_text("#withdrawal-count") == "0 withdrawals"
    assert page.errors == []


def test_finance_reject_a_withdrawal_with_a_note_and_find_it_among_the_rejected(
        page: Any, log_in_as, clients: FakeServices, withdrawals: FakeWithdrawals) -> None:
    open_withdrawals(page, log_in_as, "finance")
    page.fill("#withdrawal-3 [name=note]", "收款账户与实名不符")

    page.click("#withdrawal-3 button.secondary")
    page.wait_for_selector("#withdrawal-count[data-loads='2']", state="attached")
    page.select_option("#withdrawal-status", "REJECTED")
    page.click("#withdrawal-search button[type=submit]")
    page.wait_for_selector("#withdrawals[data-query*='status=REJECTED']")

    assert [call.message for call in clients.member.DecideWithdrawal.calls] == [
        member_pb2.DecideWithdrawalRequest(withdrawal_id=3, approve=False, note="收款账户与实名不符")]
    assert page.inner_text("#withdrawal-notice").endswith(": REJECTED.")
    assert page.eval_on_selector("#withdrawals tr[data-withdrawal-id='3']", ROW)[2:] == [
        "REJECTED", "¥1,234.56", "¥5.00", "¥1,229.56", "2025-11-29 07:06:40Z", "2025-11-29 07:06:40Z",
        "收款账户与实名不符"]
    assert page.query_selector("#withdrawals tr[data-withdrawal-id='3'] form") is None
    assert page.errors == []


def test_a_refused_decision_shows_the_apis_error_in_the_withdrawals_row(
        page: Any, log_in_as, clients: FakeServices, withdrawals: FakeWithdrawals, rpc_error) -> None:
    clients.member.DecideWithdrawal.answer = None
    clients.member.DecideWithdrawal.error = rpc_error(
        grpc.StatusCode.PERMISSION_DENIED, "another finance staff member decides it", ((CODE_KEY, "OWN_REQUEST"),))
    open_withdrawals(page, log_in_as, "finance")

    page.click("#withdrawal-3 button[type=submit]")
    page.wait_for_selector("#withdrawal-3 .outcome.error:not(:empty)")

    assert page.inner_text("#withdrawal-3 .outcome").startswith(
        "OWN_REQUEST: another finance staff member decides it")
    assert page.inner_text("#withdrawal-notice") == ""


def test_admins_read_the_withdrawals_paying_ones_awaiting_the_shopper_with_no_decision_to_take(
        page: Any, log_in_as, clients: FakeServices, withdrawals: FakeWithdrawals) -> None:
    open_withdrawals(page, log_in_as, "admin")
    page.select_option("#withdrawal-status", "")
    page.click("#withdrawal-search button[type=submit]")
    page.wait_for_selector("#withdrawal-count[data-loads='2']", state="attached")

    assert page.eval_on_selector("#withdrawals tr[data-withdrawal-id='4']", "r => r.cells[2].innerText") == (
        "PAYING, awaiting the shopper's confirmation in WeChat")
    assert page.query_selector("#withdrawals form") is None
    assert page.errors == []


class FakeProduct:
    """One product of the product service and its workflow: GetAdminProduct, SearchAdminProducts, SubmitProduct,
    AuditProduct (its version checked), SetProductShelf and AdjustStock, each moving it as the real service does."""

    def __init__(self, clients: FakeServices, rpc_error: Callable[..., Exception]) -> None:
        self.rpc_error = rpc_error
        self.product = product_pb2.Product(
            id=100, name="<i>明前龙井</i>", category_id=3, brand=product_pb2.Brand(id=7, name="西湖"),
            status="DRAFT", price_fen=1999, created_at=AT, updated_at=AT, version=1,
            skus=[product_pb2.Sku(id=500, spec={"规格": "250g"}, price_fen=1999, stock=10, stock_status="in_stock")])
        product = clients.product
        product.GetAdminProduct.answer = lambda message: self.product
        product.SearchAdminProducts.answer = lambda message: product_pb2.SearchProductsResponse(
            items=[self.product], total=1)
        product.SubmitProduct.answer = lambda message: self.moved(status="PENDING_AUDIT")
        product.AuditProduct.answer = self.audit
        product.SetProductShelf.answer = lambda message: self.moved(on_shelf=message.on_shelf)
        product.AdjustStock.answer = self.adjust

    def moved(self, **fields: Any) -> product_pb2.Product:
        for name, value in fields.items():
            setattr(self.product, name, value)
        self.product.version += 1
        return self.product

    def audit(self, message: product_pb2.AuditProductRequest) -> product_pb2.Product:
        if message.version != self.product.version:
            raise self.rpc_error(grpc.StatusCode.ABORTED, "the product was edited since",
                                 ((CODE_KEY, "PRODUCT_CHANGED"),))
        if message.approve:
            return self.moved(status="APPROVED")
        return self.moved(status="REJECTED", reject_reason=message.reason)

    def adjust(self, message: product_pb2.AdjustStockRequest) -> product_pb2.Sku:
        sku = self.product.skus[0]
        sku.stock += message.delta
        return sku


@pytest.fixture
def product(clients: FakeServices, rpc_error: Callable[..., Exception]) -> FakeProduct:
    return FakeProduct(clients, rpc_error)


def open_product(page: Any, log_in_as: Callable[[str], None], role: str) -> None:
    log_in_as(role)
    page.click("[data-section=products-view]")
    page.click("#products tr[data-product-id='100'] button")
    page.wait_for_selector("#product-detail h2")


def take_step(page: Any, button: str, status: str) -> None:
    page.click(button)
    page.wait_for_selector(f"#product-detail h2:has-text('{status}')")


def test_an_admin_takes_a_draft_through_audit_onto_the_shelf_from_the_console(
        page: Any, log_in_as, clients: FakeServices, product: FakeProduct) -> None:
    open_product(page, log_in_as, "admin")
    assert page.inner_text("#product-detail h2") == "Product 100 · <i>明前龙井</i> · DRAFT"

    take_step(page, "#submit-product-form button[type=submit]", "PENDING_AUDIT")
    take_step(page, "#audit-form button[type=submit]", "APPROVED")
    take_step(page, "#shelf-form button[type=submit]", "on the shelf")

    assert [call.message.id for call in clients.product.SubmitProduct.calls] == [100]
    assert [call.message for call in clients.product.AuditProduct.calls] == [
        product_pb2.AuditProductRequest(id=100, approve=True, reason="", version=2)]
    assert [call.message for call in clients.product.SetProductShelf.calls] == [
        product_pb2.SetProductShelfRequest(id=100, on_shelf=True)]
    assert page.inner_text("#shelf-form button[type=submit]") == "Take off the shelf"
    page.wait_for_selector("#products tr[data-product-id='100'][data-status='APPROVED']")
    assert page.eval_on_selector("#products tr[data-product-id='100']", "r => r.cells[3].innerText") == "yes"
    assert page.errors == []


def test_an_admin_rejects_a_product_with_a_reason_and_its_editor_may_submit_it_again(
        page: Any, log_in_as, clients: FakeServices, product: FakeProduct) -> None:
    product.product.status = "PENDING_AUDIT"
    open_product(page, log_in_as, "admin")
    page.fill("#audit-form [name=reason]", "图片不清晰")

    take_step(page, "#audit-form button.secondary", "REJECTED")

    assert clients.product.AuditProduct.calls[0].message == product_pb2.AuditProductRequest(
        id=100, approve=False, reason="图片不清晰", version=1)
    assert page.inner_text("#product-detail .reason") == "Rejected: 图片不清晰"
    assert page.is_visible("#submit-product-form")
    assert page.errors == []


def test_operators_submit_a_product_but_are_offered_no_audit(page: Any, log_in_as, clients: FakeServices,
                                                             product: FakeProduct) -> None:
    open_product(page, log_in_as, "operator")

    take_step(page, "#submit-product-form button[type=submit]", "PENDING_AUDIT")

    assert page.query_selector("#audit-form") is None and page.query_selector("#shelf-form") is None
    assert page.errors == []


def test_a_skus_stock_is_adjusted_under_one_idempotency_key_per_adjustment(
        page: Any, log_in_as, clients: FakeServices, product: FakeProduct) -> None:
    open_product(page, log_in_as, "operator")
    assert page.eval_on_selector("#product-skus tr[data-sku-id='500']", ROW)[:6] == [
        "500", "规格: 250g", "¥19.99", "–", "10", "0"]
    page.fill("#stock-500 [name=delta]", "-3")
    page.fill("#stock-500 [name=reason]", "破损")

    page.click("#stock-500 button[type=submit]")
    page.wait_for_selector("#product-detail-notice:has-text('stock now 7')")
    page.fill("#stock-500 [name=delta]", "5")
    page.click("#stock-500 button[type=submit]")
    page.wait_for_selector("#product-detail-notice:has-text('stock now 12')")

    asked = [call.message for call in clients.product.AdjustStock.calls]
    assert [(m.product_id, m.sku_id, m.delta, m.reason) for m in asked] == [(100, 500, -3, "破损"), (100, 500, 5, "")]
    assert asked[0].idempotency_key and asked[0].idempotency_key != asked[1].idempotency_key
    assert page.eval_on_selector("#product-skus tr[data-sku-id='500']", "r => r.cells[4].innerText") == "12"
    assert page.errors == []
