"""The /admin/ console's workflows in headless Chromium: finance decide shoppers' withdrawals (the list by status,
approve or reject with a note) and check every ledger account range by range, a product opened from the list goes
through its workflow (submitted for audit, audited, put on the shelf) and has its SKUs' stock adjusted, and moderators
hide a review and put it back, each step offered to the roles the API lets take it.

The gateway runs on a local port (tests/fixtures/browser.py); the member and product services are small stateful
fakes, so a step the console takes shows in what it reads next.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from mall.member.v1 import member_pb2
from mall.product.v1 import product_pb2

from services.common.grpc_server import CODE_KEY
from tests.fixtures.fake_services import FakeServices
from tests.unit.gateway.test_admin_console_security import log_in_at_the_same_page

AT = Timestamp(seconds=1_764_400_000)  # 2025-11-29T07:06:40Z
ROW = "r => [...r.cells].slice(0, 10).map(c => c.innerText)"


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
        withdrawal.note, withdrawal.shopper_reason = message.note, message.shopper_reason
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
                     "2025-11-29 07:06:40Z", "", "<b>提现</b>", ""]
    assert [call.message for call in clients.member.DecideWithdrawal.calls] == [
        member_pb2.DecideWithdrawalRequest(withdrawal_id=3, approve=True, note="核对无误")]
    assert [call.message.status for call in clients.member.ListWithdrawals.calls] == ["PENDING_REVIEW"] * 2
    assert page.inner_text("#withdrawal-notice") == (
        "Withdrawal W20251129000003 (¥1,229.56 to user 42): PAYING, awaiting the shopper's confirmation in WeChat.")
    assert page.query_selector("#withdrawals tr[data-withdrawal-id='3']") is None
    assert page.inner_text("#withdrawal-count") == "0 withdrawals"
    assert page.errors == []


def test_finance_reject_a_withdrawal_with_a_note_and_a_reason_for_the_shopper_and_find_it_among_the_rejected(
        page: Any, log_in_as, clients: FakeServices, withdrawals: FakeWithdrawals) -> None:
    open_withdrawals(page, log_in_as, "finance")
    page.fill("#withdrawal-3 [name=note]", "收款账户与实名不符")
    page.fill("#withdrawal-3 [name=shopper_reason]", "请先完成实名认证")

    page.click("#withdrawal-3 button.secondary")
    page.wait_for_selector("#withdrawal-count[data-loads='2']", state="attached")
    page.select_option("#withdrawal-status", "REJECTED")
    page.click("#withdrawal-search button[type=submit]")
    page.wait_for_selector("#withdrawals[data-query*='status=REJECTED']")

    assert [call.message for call in clients.member.DecideWithdrawal.calls] == [
        member_pb2.DecideWithdrawalRequest(withdrawal_id=3, approve=False, note="收款账户与实名不符",
                                           shopper_reason="请先完成实名认证")]
    assert page.inner_text("#withdrawal-notice").endswith(": REJECTED.")
    assert page.eval_on_selector("#withdrawals tr[data-withdrawal-id='3']", ROW)[2:] == [
        "REJECTED", "¥1,234.56", "¥5.00", "¥1,229.56", "2025-11-29 07:06:40Z", "2025-11-29 07:06:40Z",
        "收款账户与实名不符", "请先完成实名认证"]
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


class FakeReviews:
    """ListReviews, HideReview and UnhideReview of the product service over a dict, moving a review as the real one
    does: a hide records why, by whom and when; unhiding a visible one is 409 REVIEW_NOT_HIDDEN."""

    def __init__(self, rpc_error: Callable[..., Exception], *reviews: product_pb2.Review) -> None:
        self.rpc_error = rpc_error
        self.by_id = {r.id: r for r in reviews}

    def list(self, message: product_pb2.ListReviewsRequest) -> product_pb2.ListReviewsResponse:
        found = [r for r in self.by_id.values() if not message.HasField("hidden") or r.hidden == message.hidden]
        return product_pb2.ListReviewsResponse(items=found, total=len(found))

    def hide(self, message: product_pb2.HideReviewRequest) -> product_pb2.Review:
        review = self.by_id[message.id]
        review.hidden, review.hidden_reason, review.hidden_by = True, message.reason, 7
        review.hidden_at.CopyFrom(AT)
        return review

    def unhide(self, message: product_pb2.UnhideReviewRequest) -> product_pb2.Review:
        review = self.by_id[message.id]
        if not review.hidden:
            raise self.rpc_error(grpc.StatusCode.ABORTED, "this review is not hidden",
                                 ((CODE_KEY, "REVIEW_NOT_HIDDEN"),))
        review.hidden, review.hidden_reason, review.hidden_by = False, "", 0
        review.ClearField("hidden_at")
        return review


@pytest.fixture
def reviews(clients: FakeServices, rpc_error: Callable[..., Exception]) -> FakeReviews:
    fake = FakeReviews(rpc_error, product_pb2.Review(
        id=12, product_id=100, sku_id=500, spec={"规格": "250g"}, rating=1, content="<b>加微信领红包</b>",
        images=["/media/uploads/" + "a" * 32 + ".jpg", "/media/uploads/" + "b" * 32 + ".png"], buyer="张***",
        created_at=AT, order_no="N20251129000005", line_id=9))
    clients.product.ListReviews.answer = fake.list
    clients.product.HideReview.answer = fake.hide
    clients.product.UnhideReview.answer = fake.unhide
    return fake


def open_reviews(page: Any, log_in_as: Callable[[str], None], role: str) -> None:
    log_in_as(role)
    page.click("[data-section=reviews-view]")
    page.wait_for_selector("#review-count[data-loads='1']", state="attached")


REVIEW_ROW = "r => [...r.cells].slice(0, 10).map(c => c.innerText)"


def test_a_moderator_hides_a_review_with_a_reason_then_unhides_it_and_the_list_follows(
        page: Any, log_in_as, clients: FakeServices, reviews: FakeReviews) -> None:
    open_reviews(page, log_in_as, "customer_service")
    shown = page.eval_on_selector("#reviews tr[data-review-id='12']", REVIEW_ROW)
    page.fill("#hide-review-12 [name=reason]", "广告")

    page.click("#hide-review-12 button[type=submit]")
    page.wait_for_selector("#review-count[data-loads='2']", state="attached")
    hidden = page.eval_on_selector("#reviews tr[data-review-id='12']", "r => r.cells[9].innerText")
    page.fill("#unhide-review-12 [name=reason]", "误判")
    page.click("#unhide-review-12 button[type=submit]")
    page.wait_for_selector("#review-count[data-loads='3']", state="attached")

    assert shown == ["12", "100", "规格: 250g", "★", "<b>加微信领红包</b>", "2", "张***", "N20251129000005 line 9",
                     "2025-11-29 07:06:40Z", "visible"]
    assert hidden == "hidden: 广告 (by user 7 2025-11-29 07:06:40Z)"
    assert [call.message for call in clients.product.HideReview.calls] == [
        product_pb2.HideReviewRequest(product_id=100, id=12, reason="广告")]
    assert [call.message for call in clients.product.UnhideReview.calls] == [
        product_pb2.UnhideReviewRequest(id=12, reason="误判")]
    assert page.eval_on_selector("#reviews tr[data-review-id='12']", "r => r.cells[9].innerText") == "visible"
    assert page.is_visible("#hide-review-12") and page.query_selector("#unhide-review-12") is None
    assert page.inner_text("#review-notice") == (
        "Review 12 of product 100 shown again on its page and in its rating.")
    assert page.errors == []


def test_the_review_filters_are_sent_and_a_review_hidden_leaves_the_list_of_visible_ones(
        page: Any, log_in_as, clients: FakeServices, reviews: FakeReviews) -> None:
    open_reviews(page, log_in_as, "operator")
    page.fill("#review-product", "100")
    page.select_option("#review-rating", "1")
    page.select_option("#review-hidden", "false")
    page.click("#review-search button[type=submit]")
    page.wait_for_selector("#review-count[data-loads='2']", state="attached")

    page.fill("#hide-review-12 [name=reason]", "广告")
    page.click("#hide-review-12 button[type=submit]")
    page.wait_for_selector("#review-count[data-loads='3']", state="attached")

    assert [call.message for call in clients.product.ListReviews.calls] == [
        product_pb2.ListReviewsRequest(offset=0, limit=20),
        *[product_pb2.ListReviewsRequest(product_id=100, rating=1, hidden=False, offset=0, limit=20)] * 2]
    assert page.query_selector("#reviews tr[data-review-id='12']") is None
    assert page.inner_text("#review-count") == "0 reviews"
    assert page.inner_text("#review-notice") == "Review 12 of product 100 hidden: off its page and rating."
    assert page.errors == []


def test_an_unhide_someone_else_already_did_shows_the_409_in_the_reviews_row(
        page: Any, log_in_as, clients: FakeServices, reviews: FakeReviews) -> None:
    reviews.hide(product_pb2.HideReviewRequest(product_id=100, id=12, reason="广告"))
    open_reviews(page, log_in_as, "admin")
    reviews.unhide(product_pb2.UnhideReviewRequest(id=12, reason="误判"))  # another moderator, meanwhile
    page.fill("#unhide-review-12 [name=reason]", "误判")

    page.click("#unhide-review-12 button[type=submit]")
    page.wait_for_selector("#unhide-review-12 .outcome.error:not(:empty)")

    assert page.inner_text("#unhide-review-12 .outcome").startswith("REVIEW_NOT_HIDDEN: this review is not hidden")
    assert page.inner_text("#review-notice") == ""
    assert page.inner_text("#review-count") == "1 reviews"


# Five ledger accounts in three ranges, the after_account_id each range is asked from → its answer: account 3 (a
# shopper's wallet balance, in fen) does not add up.
LEDGER_RANGES = {
    0: member_pb2.CheckLedgersResponse(accounts_checked=2, next_after_account_id=2),
    2: member_pb2.CheckLedgersResponse(accounts_checked=2, next_after_account_id=4, mismatches=[
        member_pb2.LedgerMismatch(account_id=3, user_id=42, account="available", balance=12_345, entries_sum=12_000)]),
    4: member_pb2.CheckLedgersResponse(accounts_checked=1),
}


def check_ledgers(page: Any, state: str) -> None:
    page.click("[data-section=withdrawals-view]")
    page.click("#ledger-check")
    page.wait_for_selector(f"#ledger-progress[data-state='{state}']")


def test_finance_check_every_ledger_range_and_see_the_one_mismatch(page: Any, log_in_as,
                                                                    clients: FakeServices) -> None:
    clients.member.CheckLedgers.answer = lambda message: LEDGER_RANGES[message.after_account_id]
    log_in_as("finance")

    check_ledgers(page, "done")

    assert [call.message for call in clients.member.CheckLedgers.calls] == [
        member_pb2.CheckLedgersRequest(after_account_id=after, limit=10_000) for after in (0, 2, 4)]
    assert page.inner_text("#ledger-progress") == "Done: 5 accounts checked, mismatches found: 1."
    assert page.eval_on_selector_all("#ledger-mismatches tr[data-account-id]", f"rows => rows.map({ROW})") == [
        ["3", "user 42", "available", "¥123.45", "¥120.00"]]
    assert page.is_enabled("#ledger-check") and page.is_disabled("#ledger-stop")
    assert page.errors == []


def test_stop_ends_the_ledger_check_once_the_range_asked_for_is_in(page: Any, log_in_as,
                                                                   clients: FakeServices) -> None:
    asked, release = threading.Event(), threading.Event()

    def answer(message: member_pb2.CheckLedgersRequest) -> member_pb2.CheckLedgersResponse:
        if message.after_account_id == 2:
            asked.set()
            assert release.wait(timeout=10)
        return LEDGER_RANGES[message.after_account_id]
    clients.member.CheckLedgers.answer = answer
    log_in_as("admin")
    page.click("[data-section=withdrawals-view]")
    page.click("#ledger-check")
    assert asked.wait(timeout=10)

    page.click("#ledger-stop")
    release.set()
    page.wait_for_selector("#ledger-progress[data-state='stopped']")

    assert [call.message.after_account_id for call in clients.member.CheckLedgers.calls] == [0, 2]
    assert page.inner_text("#ledger-progress") == "Stopped after account 4: 4 accounts checked, mismatches found: 1."
    assert page.is_enabled("#ledger-check") and page.is_disabled("#ledger-stop")
    assert page.errors == []


def test_a_failed_range_ends_the_ledger_check_with_the_apis_error_and_what_was_checked_before_it(
        page: Any, log_in_as, clients: FakeServices, rpc_error) -> None:
    def answer(message: member_pb2.CheckLedgersRequest) -> member_pb2.CheckLedgersResponse:
        if message.after_account_id == 2:
            raise rpc_error(grpc.StatusCode.UNAVAILABLE, "the member database is down")
        return LEDGER_RANGES[message.after_account_id]
    clients.member.CheckLedgers.answer = answer
    log_in_as("finance")

    check_ledgers(page, "failed")

    assert page.inner_text("#ledger-error").startswith("SERVICE_UNAVAILABLE: ")
    assert page.inner_text("#ledger-progress") == "Failed: 2 accounts checked, mismatches found: 0."
    assert page.is_enabled("#ledger-check") and page.is_disabled("#ledger-stop")


def test_the_ledger_checks_findings_are_gone_for_the_next_staff_member(page: Any, log_in_as,
                                                                       clients: FakeServices) -> None:
    clients.member.CheckLedgers.answer = lambda message: LEDGER_RANGES[message.after_account_id]
    log_in_as("finance")
    check_ledgers(page, "done")

    page.click("#logout")
    log_in_at_the_same_page(page, "admin")
    page.click("[data-section=withdrawals-view]")

    assert page.query_selector_all("#ledger-mismatches tr") == []
    assert page.inner_text("#ledger-progress") == "" and page.get_attribute("#ledger-progress", "data-state") is None
    assert page.is_enabled("#ledger-check") and page.is_disabled("#ledger-stop")
    assert page.errors == []
