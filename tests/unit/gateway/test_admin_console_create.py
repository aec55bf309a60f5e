"""The /admin/ console's create forms in headless Chromium: a product (POST /admin/products) and a coupon template
(POST /admin/coupons), each sent with one Idempotency-Key per opening of its form, money typed in yuan and sent as
integer fen, the API's field errors shown beside their fields, server text shown as text.

The gateway runs on a local port (tests/fixtures/browser.py); the product service is a small stateful fake that keeps
what is created and answers a repeated Idempotency-Key as the real one does (services/product/service.py
create_product), so the admin API finds exactly what the form made.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from flask.testing import FlaskClient
from google.protobuf.timestamp_pb2 import Timestamp
from mall.member.v1 import member_pb2
from mall.product.v1 import product_pb2

from services.common.grpc_server import CODE_KEY, DETAILS_KEY
from tests.fixtures.fake_services import FakeServices

AT = Timestamp(seconds=1_764_400_000)  # 2025-11-29T07:06:40Z
CATEGORIES = product_pb2.ListCategoriesResponse(items=[
    product_pb2.Category(id=1, name="食品", children=[product_pb2.Category(id=3, name="茶", parent_id=1),
                                                      product_pb2.Category(id=5, name="<b>咖啡</b>", parent_id=1)]),
    product_pb2.Category(id=2, name="家居")])
BRANDS = product_pb2.ListBrandsResponse(items=[product_pb2.Brand(id=7, name="西湖"), product_pb2.Brand(id=8, name="龙井")])
XSS_NAME = '<img src=x onerror="window.__xss = 1">'


class FakeCatalogue:
    """CreateProduct, SearchAdminProducts and GetAdminProduct of the product service over a list: one product per
    Idempotency-Key (the same request answers the first product; another request under it is ABORTED
    IDEMPOTENCY_KEY_REUSED), as services/product/service.py create_product does."""

    def __init__(self, rpc_error: Callable[..., Exception]) -> None:
        self.rpc_error = rpc_error
        self.products: list[product_pb2.Product] = []
        self.by_key: dict[str, tuple[product_pb2.ProductInput, product_pb2.Product]] = {}

    def create(self, message: product_pb2.CreateProductRequest) -> product_pb2.Product:
        if message.idempotency_key in self.by_key:
            asked, product = self.by_key[message.idempotency_key]
            if asked != message.product:
                raise self.rpc_error(grpc.StatusCode.ABORTED, "this idempotency key was used for a different request",
                                     ((CODE_KEY, "IDEMPOTENCY_KEY_REUSED"),))
            return product
        given = message.product
        skus = [product_pb2.Sku(id=500 + i, spec=s.spec, price_fen=s.price_fen, market_price_fen=s.market_price_fen,
                                stock=s.stock, weight_g=s.weight_g, stock_status="in_stock")
                for i, s in enumerate(given.skus)]
        brand = next(b for b in BRANDS.items if b.id == given.brand_id)
        product = product_pb2.Product(
            id=100 + len(self.products), name=given.name, subtitle=given.subtitle, category_id=given.category_id,
            brand=brand, description=given.description, skus=skus, status="DRAFT",
            price_fen=min(s.price_fen for s in skus), market_price_fen=skus[0].market_price_fen, created_at=AT,
            updated_at=AT, version=1, max_per_shopper=given.max_per_shopper)
        self.products.append(product)
        if message.idempotency_key:
            self.by_key[message.idempotency_key] = (given, product)
        return product

    def search(self, message: product_pb2.SearchProductsRequest) -> product_pb2.SearchProductsResponse:
        found = [p for p in self.products if message.q in p.name]
        return product_pb2.SearchProductsResponse(items=found, total=len(found))

    def get(self, message: product_pb2.ProductRef) -> product_pb2.Product:
        return next(p for p in self.products if p.id == message.id)


@pytest.fixture
def catalogue(clients: FakeServices, rpc_error: Callable[..., Exception]) -> FakeCatalogue:
    fake = FakeCatalogue(rpc_error)
    clients.product.ListCategories.reply = CATEGORIES
    clients.product.ListBrands.reply = BRANDS
    clients.product.CreateProduct.answer = fake.create
    clients.product.SearchAdminProducts.answer = fake.search
    clients.product.GetAdminProduct.answer = fake.get
    return fake


def open_product_form(page: Any, log_in_as: Callable[[str], None], role: str = "operator") -> None:
    log_in_as(role)
    page.click("[data-section=products-view]")
    page.wait_for_selector("#product-count:not(:empty)")
    page.click("#new-product")
    page.wait_for_selector("#product-form")


def fill_product(page: Any, name: str = "明前龙井", price: str = "19.99") -> None:
    page.fill("#product-form-name", name)
    page.select_option("#product-form-category_id", "3")
    page.select_option("#product-form-brand_id", "8")
    page.fill("#product-form-price", price)
    page.fill("#product-form-market_price", "25")
    page.fill("#product-form-stock", "40")


def created_notice(page: Any) -> str:
    page.wait_for_selector("#product-notice:has-text('Created')")
    return page.inner_text("#product-notice")


def test_an_operator_creates_a_product_and_the_admin_api_finds_it_at_the_exact_price_in_fen(
        page: Any, log_in_as, catalogue: FakeCatalogue, client: FlaskClient, bearer) -> None:
    open_product_form(page, log_in_as)
    key = page.get_attribute("#product-form", "data-idempotency-key")
    fill_product(page, price="19.99")

    page.click("#product-form button[type=submit]")

    assert created_notice(page) == "Created product 100 “明前龙井” at ¥19.99: a DRAFT, submit it for audit when it is ready."
    assert page.query_selector("#product-form") is None
    page.wait_for_selector("#products tr[data-product-id='100']")
    found = client.get("/api/v1/admin/products?q=明前龙井", headers=bearer("operator")).get_json()
    assert [(p["id"], p["price_fen"], p["status"]) for p in found["items"]] == [(100, 1999, "DRAFT")]
    product = client.get("/api/v1/admin/products/100", headers=bearer("operator")).get_json()
    assert [(s["price_fen"], s["market_price_fen"], s["stock"], s["spec"]) for s in product["skus"]] == [
        (1999, 2500, 40, {})]
    assert (product["category_id"], product["brand"]["id"]) == (3, 8)
    assert uuid.UUID(key).version == 4 and catalogue.by_key.keys() == {key}
    assert page.errors == []


@pytest.mark.parametrize("lost", ["503", "network error"])
def test_a_create_whose_answer_was_lost_is_retried_under_the_same_key_and_makes_one_product(
        page: Any, log_in_as, catalogue: FakeCatalogue, clients: FakeServices, client: FlaskClient, bearer,
        lost: str) -> None:
    # The first POST reaches the gateway and the product is created; its answer never reaches the console.
    def lose_first_answer(route: Any) -> None:
        if route.request.method != "POST" or clients.product.CreateProduct.calls:
            route.continue_()
            return
        route.fetch()
        if lost == "503":
            route.fulfill(status=503, content_type="application/json", body=json.dumps({"error": {
                "code": "SERVICE_UNAVAILABLE", "message": "a backing service is unavailable; try again",
                "request_id": "r1"}}))
        else:
            route.abort("connectionreset")
    page.route("**/api/v1/admin/products", lose_first_answer)
    open_product_form(page, log_in_as)
    fill_product(page)

    page.click("#product-form button[type=submit]")
    page.wait_for_selector("#product-form .outcome.error:not(:empty)")
    failed = page.inner_text("#product-form .outcome")
    page.click("#product-form button[type=submit]")

    assert created_notice(page).startswith("Created product 100 “明前龙井” at ¥19.99")
    assert failed.startswith("SERVICE_UNAVAILABLE: a backing service" if lost == "503" else "Failed to fetch")
    first, retry = (call.message for call in clients.product.CreateProduct.calls)
    assert retry == first and uuid.UUID(first.idempotency_key).version == 4
    found = client.get("/api/v1/admin/products?q=龙井", headers=bearer("operator")).get_json()
    assert (found["total"], [p["price_fen"] for p in found["items"]]) == (1, [1999])


def test_each_opening_of_the_form_has_its_own_key_and_closing_it_drops_it(
        page: Any, log_in_as, catalogue: FakeCatalogue, clients: FakeServices) -> None:
    open_product_form(page, log_in_as)
    opened = page.get_attribute("#product-form", "data-idempotency-key")
    page.click("#product-form button:text-is('Close')")
    page.click("#new-product")
    reopened = page.get_attribute("#product-form", "data-idempotency-key")
    fill_product(page, name="第一")
    page.click("#product-form button[type=submit]")
    created_notice(page)
    page.click("#new-product")
    after_create = page.get_attribute("#product-form", "data-idempotency-key")
    fill_product(page, name="第二")
    page.click("#product-form button[type=submit]")
    page.wait_for_selector("#product-notice:has-text('第二')")

    assert len({opened, reopened, after_create}) == 3
    assert [call.message.idempotency_key for call in clients.product.CreateProduct.calls] == [reopened, after_create]
    assert [p.name for p in catalogue.products] == ["第一", "第二"]


@pytest.mark.parametrize(("typed", "shown"), [("19.999", "at most 2 decimals (fen)"), ("-5", "must not be negative"),
                                             ("", "required"), ("19,99", "an amount in yuan, like 19.99"),
                                             ("0", "¥0.01 to ¥1,000,000.00")],
                         ids=["three decimals", "negative", "blank", "comma", "zero"])
def test_a_bad_price_is_shown_beside_its_field_and_nothing_is_sent(
        page: Any, log_in_as, catalogue: FakeCatalogue, clients: FakeServices, typed: str, shown: str) -> None:
    open_product_form(page, log_in_as)
    fill_product(page, price=typed)

    page.click("#product-form button[type=submit]")
    page.wait_for_selector("#product-form .outcome.error:not(:empty)")

    assert page.inner_text("#product-form [data-field=price] .field-error") == shown
    assert page.get_attribute("#product-form-price", "aria-invalid") == ""
    assert page.inner_text("#product-form [data-field=name] .field-error") == ""
    assert clients.product.CreateProduct.calls == []


def test_a_product_created_with_a_limit_per_shopper_sends_it_and_shows_it_in_its_panel(
        page: Any, log_in_as, catalogue: FakeCatalogue, clients: FakeServices, client: FlaskClient, bearer) -> None:
    open_product_form(page, log_in_as)
    fill_product(page)
    page.fill("#product-form-max_per_shopper", "3")

    page.click("#product-form button[type=submit]")
    created_notice(page)

    assert clients.product.CreateProduct.calls[0].message.product.max_per_shopper == 3
    assert page.inner_text("#product-limit") == "Limit per shopper: 3"
    product = client.get("/api/v1/admin/products/100", headers=bearer("operator")).get_json()
    assert product["max_per_shopper"] == 3
    assert page.errors == []


def test_a_product_left_at_the_default_limit_is_sent_without_one_and_shows_no_limit(
        page: Any, log_in_as, catalogue: FakeCatalogue, clients: FakeServices) -> None:
    open_product_form(page, log_in_as)
    fill_product(page)

    page.click("#product-form button[type=submit]")
    created_notice(page)

    assert clients.product.CreateProduct.calls[0].message.product.max_per_shopper == 0
    assert page.inner_text("#product-limit") == "Limit per shopper: no limit"


@pytest.mark.parametrize(("typed", "shown"), [("1000", "0 to 999"), ("2.5", "a whole number"), ("-1", "a whole number")],
                         ids=["over 999", "fraction", "negative"])
def test_a_limit_per_shopper_the_api_would_refuse_is_shown_beside_its_field_and_nothing_is_sent(
        page: Any, log_in_as, catalogue: FakeCatalogue, clients: FakeServices, typed: str, shown: str) -> None:
    open_product_form(page, log_in_as)
    fill_product(page)
    page.fill("#product-form-max_per_shopper", typed)

    page.click("#product-form button[type=submit]")
    page.wait_for_selector("#product-form .outcome.error:not(:empty)")

    assert page.inner_text("#product-form [data-field=max_per_shopper] .field-error") == shown
    assert clients.product.CreateProduct.calls == []


def test_the_apis_refusal_of_a_limit_per_shopper_shows_beside_its_field(
        page: Any, log_in_as, catalogue: FakeCatalogue, clients: FakeServices, rpc_error) -> None:
    clients.product.CreateProduct.error = rpc_error(
        grpc.StatusCode.INVALID_ARGUMENT, "the product is invalid",
        ((CODE_KEY, "PRODUCT_INVALID"), (DETAILS_KEY, json.dumps({"max_per_shopper": "0-999"}))))
    open_product_form(page, log_in_as)
    fill_product(page)
    page.fill("#product-form-max_per_shopper", "5")

    page.click("#product-form button[type=submit]")
    page.wait_for_selector("#product-form .outcome.error:not(:empty)")

    assert page.inner_text("#product-form [data-field=max_per_shopper] .field-error") == "0-999"
    assert page.inner_text("#product-form .outcome").startswith("PRODUCT_INVALID: the product is invalid")
    assert page.get_attribute("#product-form-max_per_shopper", "aria-invalid") == ""


def test_the_apis_field_errors_show_beside_their_fields_and_the_fixed_form_is_sent_under_the_same_key(
        page: Any, log_in_as, catalogue: FakeCatalogue, clients: FakeServices, rpc_error) -> None:
    refusal = rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "the product is invalid", (
        (CODE_KEY, "PRODUCT_INVALID"),
        (DETAILS_KEY, json.dumps({"category_id": "no such category",
                                  "skus.0.market_price_fen": "must be 0 (none) or at least the price",
                                  "product": "single-line text must not contain control characters"}))))
    answers = [refusal]

    def create(message: product_pb2.CreateProductRequest) -> product_pb2.Product:
        if answers:
            raise answers.pop()
        return catalogue.create(message)
    clients.product.CreateProduct.answer = create
    open_product_form(page, log_in_as)
    fill_product(page)

    page.click("#product-form button[type=submit]")
    page.wait_for_selector("#product-form .outcome.error:not(:empty)")
    errors = page.eval_on_selector_all("#product-form .field-error", "els => els.map(e => [e.parentNode.dataset.field,"
                                                                     " e.textContent]).filter(([, t]) => t)")
    outcome = page.inner_text("#product-form .outcome")
    page.click("#product-form button[type=submit]")
    created_notice(page)

    assert errors == [["category_id", "no such category"],
                      ["market_price", "must be 0 (none) or at least the price"]]
    assert outcome.startswith('PRODUCT_INVALID: the product is invalid '
                              '{"product":"single-line text must not contain control characters"} (request ')
    first, second = (call.message for call in clients.product.CreateProduct.calls)
    assert first.idempotency_key == second.idempotency_key


def test_a_product_name_with_markup_is_shown_as_text(page: Any, log_in_as, catalogue: FakeCatalogue) -> None:
    open_product_form(page, log_in_as, role="admin")
    categories = page.eval_on_selector_all("#product-form-category_id option", "os => os.map(o => o.textContent)")
    fill_product(page, name=XSS_NAME)

    page.click("#product-form button[type=submit]")
    page.wait_for_selector("#products tr[data-product-id='100']")

    assert created_notice(page).startswith(f"Created product 100 “{XSS_NAME}”")
    assert page.eval_on_selector("#products tr[data-product-id='100']", "r => r.cells[1].textContent") == XSS_NAME
    assert categories == ["Choose…", "食品", "食品 › 茶", "食品 › <b>咖啡</b>", "家居"]
    assert page.eval_on_selector_all("main img, main b", "els => els.length") == 0
    assert page.evaluate("window.__xss") is None
    assert page.errors == []


def test_the_forms_are_offered_to_exactly_the_roles_the_api_lets_create(
        page: Any, log_in_as, clients: FakeServices) -> None:
    log_in_as("finance")
    page.click("[data-section=coupons-view]")
    page.wait_for_selector("#coupon-count:not(:empty)")

    assert page.is_hidden("[data-section=products-view]") and page.is_hidden("#new-coupon")
    assert clients.product.SearchAdminProducts.calls == []


def test_an_operator_creates_a_coupon_template_for_two_categories_with_its_money_in_fen(
        page: Any, log_in_as, catalogue: FakeCatalogue, clients: FakeServices) -> None:
    clients.member.CreateCouponTemplate.reply = member_pb2.CouponTemplate(
        id=12, name="满50减5", kind="fixed", amount_fen=500, threshold_fen=5_000, total=100, per_user_limit=1,
        valid_from=AT, valid_to=AT, status="pending_approval", created_at=AT, created_by=7)
    log_in_as("operator")
    page.click("[data-section=coupons-view]")
    page.wait_for_selector("#coupon-count:not(:empty)")
    page.click("#new-coupon")
    page.wait_for_selector("#coupon-form")
    key = page.get_attribute("#coupon-form", "data-idempotency-key")
    page.fill("#coupon-form-name", "满50减5")
    page.fill("#coupon-form-amount", "5")
    page.fill("#coupon-form-threshold", "50.00")
    page.fill("#coupon-form-total", "100")
    page.fill("#coupon-form-valid_from", "2026-12-08T00:00")
    page.fill("#coupon-form-valid_to", "2026-12-31T23:59")
    page.select_option("#coupon-form-category_ids", ["3", "5"])

    page.click("#coupon-form button[type=submit]")
    page.wait_for_selector("#coupon-notice:has-text('Created')")

    sent = clients.member.CreateCouponTemplate.calls[0].message
    assert (sent.name, sent.kind, sent.amount_fen, sent.percent_off, sent.cap_fen, sent.threshold_fen, sent.total,
            sent.per_user_limit, list(sent.category_ids), sent.idempotency_key) == (
        "满50减5", "fixed", 500, 0, 0, 5_000, 100, 1, [3, 5], key)
    assert (sent.valid_from.ToJsonString(), sent.valid_to.ToJsonString()) == (
        "2026-12-07T16:00:00Z", "2026-12-31T15:59:00Z")
    assert page.inner_text("#coupon-notice") == (
        "Created coupon template 12 “满50减5”: pending_approval (an admin or finance staff member other than you "
        "approves it).")
    assert page.query_selector("#coupon-form") is None
    assert page.errors == []


def test_a_percent_coupon_sends_its_cap_in_fen_and_shows_the_apis_refusal_beside_the_field(
        page: Any, log_in_as, catalogue: FakeCatalogue, clients: FakeServices, rpc_error) -> None:
    clients.member.CreateCouponTemplate.error = rpc_error(
        grpc.StatusCode.FAILED_PRECONDITION, "one coupon may take at most 100000 fen off; a percent coupon needs a cap",
        ((CODE_KEY, "COUPON_TEMPLATE_TOO_VALUABLE"), (DETAILS_KEY, '{"cap_fen": "1-100000"}')))
    log_in_as("admin")
    page.click("[data-section=coupons-view]")
    page.click("#new-coupon")
    page.wait_for_selector("#coupon-form")
    page.fill("#coupon-form-name", "九折")
    page.select_option("#coupon-form-kind", "percent")
    page.fill("#coupon-form-percent_off", "10")
    page.fill("#coupon-form-cap", "1000.5")
    page.fill("#coupon-form-total", "5")
    page.fill("#coupon-form-valid_from", "2026-12-08T00:00")
    page.fill("#coupon-form-valid_to", "2026-12-09T00:00")

    page.click("#coupon-form button[type=submit]")
    page.wait_for_selector("#coupon-form .outcome.error:not(:empty)")

    sent = clients.member.CreateCouponTemplate.calls[0].message
    assert (sent.kind, sent.percent_off, sent.cap_fen, sent.amount_fen, list(sent.category_ids)) == (
        "percent", 10, 100_050, 0, [])
    assert page.inner_text("#coupon-form [data-field=cap] .field-error") == "1-100000 (fen)"
    assert page.is_hidden("#coupon-form-amount")


ACCEPTED = {"19.99": 1999, "0.1": 10, "0.01": 1, "20": 2000, " 7.5 ": 750, "1000000.00": 100_000_000,
            "9999999999.99": 999_999_999_999, "0.29": 29, "1.15": 115, "4.35": 435}
REFUSED = {"": "required", "   ": "required", "-1": "must not be negative", "-0.01": "must not be negative",
           "1.999": "at most 2 decimals (fen)", "0.001": "at most 2 decimals (fen)", "1e3": "an amount in yuan, like 19.99",
           "¥5": "an amount in yuan, like 19.99", "1,000": "an amount in yuan, like 19.99",
           "+5": "an amount in yuan, like 19.99", "5.": "an amount in yuan, like 19.99",
           "NaN": "an amount in yuan, like 19.99", "１２": "an amount in yuan, like 19.99"}


def test_yuan_typed_become_exact_integer_fen(page: Any, gateway_url: str) -> None:
    page.goto(f"{gateway_url}/admin/")

    read = page.evaluate("typed => Object.fromEntries(typed.map(t => [t, yuanToFen(t)]))", list(ACCEPTED))

    assert read == {typed: {"fen": fen} for typed, fen in ACCEPTED.items()}


def test_yuan_that_are_not_an_amount_are_refused_with_the_reason(page: Any, gateway_url: str) -> None:
    page.goto(f"{gateway_url}/admin/")

    read = page.evaluate("typed => Object.fromEntries(typed.map(t => [t, yuanToFen(t)]))", list(REFUSED))

    assert read == {typed: {"error": reason} for typed, reason in REFUSED.items()}
