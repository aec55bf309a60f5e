"""Product use cases on the in-memory unit of work: catalogue visibility, audit log, view events, inventory."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.order_events_pb2 import OrderCancelled, OrderLine, OrderPaid, OrderReturned
from mall.events.v1.product_events_pb2 import ProductChanged, ProductViewed

from services.common.errors import Conflict, InvalidInput, NotFound
from services.common.events import InvalidEvent, timestamp
from services.product import consumers, service
from services.product.domain import (
    RESERVATION_TTL,
    UNAPPROVED_NAME,
    Brand,
    Category,
    OutOfStock,
    ProductDraft,
    SkuDraft,
    Status,
    StockLine,
)
from tests.fakes import FakeOrders
from tests.product_fakes import FakeProductUnitOfWork

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
EDITOR = 7


@pytest.fixture
def uow() -> FakeProductUnitOfWork:
    uow = FakeProductUnitOfWork()
    uow.categories.add(Category("数码"))
    uow.categories.add(Category("手机", parent_id=1))
    uow.brands.add(Brand("华为"))
    return uow


def draft(name: str = "华为 Mate 60 智能手机", stock: int = 50, price_fen: int = 549_900) -> ProductDraft:
    return ProductDraft(name=name, category_id=2, brand_id=1, specs=(("颜色", ("黑", "白")),),
                        skus=(SkuDraft(spec={"颜色": "黑"}, price_fen=price_fen, stock=stock),
                              SkuDraft(spec={"颜色": "白"}, price_fen=price_fen + 100, stock=stock)))


def on_sale(uow: FakeProductUnitOfWork, **kwargs: object) -> int:
    product_id = service.create_product(uow, actor_id=EDITOR, draft=draft(**kwargs), now=T0).product.id  # type: ignore[arg-type]
    assert product_id is not None
    service.submit_product(uow, actor_id=EDITOR, product_id=product_id, now=T0)
    service.audit_product(uow, actor_id=1, product_id=product_id, approve=True, now=T0)
    service.set_shelf(uow, actor_id=EDITOR, product_id=product_id, on_shelf=True, now=T0)
    return product_id


def sku_ids(uow: FakeProductUnitOfWork, product_id: int) -> list[int]:
    return [sku.id for sku in uow.products.items[product_id].skus]  # type: ignore[misc]


def stock_of(uow: FakeProductUnitOfWork, product_id: int) -> list[int]:
    return [sku.stock for sku in uow.products.items[product_id].skus]


def test_a_draft_is_invisible_to_shoppers(uow: FakeProductUnitOfWork) -> None:
    product_id = service.create_product(uow, actor_id=EDITOR, draft=draft(), now=T0).product.id
    assert product_id is not None

    with pytest.raises(NotFound):
        service.view_product(uow, product_id=product_id)
    assert service.search_products(uow).total == 0


def test_an_off_shelf_product_disappears_from_the_list(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow)
    listed = service.search_products(uow).total

    service.set_shelf(uow, actor_id=EDITOR, product_id=product_id, on_shelf=False, now=T0)

    assert (listed, service.search_products(uow).total) == (1, 0)


def test_skus_are_looked_up_by_id_with_their_product_and_whether_they_are_on_sale(
        uow: FakeProductUnitOfWork) -> None:
    live, hidden = on_sale(uow), on_sale(uow, name="下架的手机")
    service.set_shelf(uow, actor_id=EDITOR, product_id=hidden, on_shelf=False, now=T0)
    black, white = sku_ids(uow, live)

    found = service.get_skus(uow, sku_ids=[white, sku_ids(uow, hidden)[0], 999, white, black])

    assert [(offer.sku.id, offer.product_id, offer.on_sale) for offer in found] == [
        (white, live, True), (sku_ids(uow, hidden)[0], hidden, False), (black, live, True)]
    assert found[0].sku.price_fen == 550_000 and found[0].name == "华为 Mate 60 智能手机"


def edit(uow: FakeProductUnitOfWork, product_id: int, *, name: str, images: tuple[str, ...] = ()) -> None:
    """An operator's edit of the product's name and images (back to audit if it was approved)."""
    product = uow.products.items[product_id]
    service.update_product(uow, actor_id=EDITOR, product_id=product_id,
                           draft=replace(draft(), name=name, images=images), version=product.version, now=T0)


def test_a_cart_lookup_of_a_live_product_edited_since_shows_the_approved_name_and_image_off_sale(
        uow: FakeProductUnitOfWork) -> None:
    live = on_sale(uow)
    edit(uow, live, name="华为 Mate 60", images=("/media/approved.jpg",))  # back to audit: approved again
    service.audit_product(uow, actor_id=1, product_id=live, approve=True, now=T0)
    edit(uow, live, name="未审核的名字", images=("/media/unapproved.jpg",))

    [offer] = service.get_skus(uow, sku_ids=sku_ids(uow, live)[:1])

    assert (offer.name, offer.image, offer.on_sale) == ("华为 Mate 60", "/media/approved.jpg", False)


def test_a_cart_lookup_of_a_product_never_approved_shows_a_placeholder_not_its_draft(
        uow: FakeProductUnitOfWork) -> None:
    created = service.create_product(uow, actor_id=EDITOR, draft=replace(draft(), images=("/media/draft.jpg",)),
                                     now=T0).product.id
    assert created is not None

    [offer] = service.get_skus(uow, sku_ids=sku_ids(uow, created)[:1])

    assert (offer.name, offer.image, offer.on_sale) == (UNAPPROVED_NAME, "", False)


def test_checkout_lookups_answer_each_skus_category_path_as_the_tree_is_now(uow: FakeProductUnitOfWork) -> None:
    phone = on_sale(uow)  # filed under 1 数码 > 2 手机
    before = service.get_skus(uow, sku_ids=sku_ids(uow, phone)[:1])[0].category_path
    uow.categories.add(Category("电子产品"))
    service.save_category(uow, actor_id=EDITOR, category_id=1, name="数码", parent_id=3, now=T0)  # 数码 moved

    [offer] = service.get_skus(uow, sku_ids=sku_ids(uow, phone)[:1])
    held = service.reserve_stock(uow, order_no="O1", lines=[StockLine(sku_ids(uow, phone)[0], 1)], now=T0)

    assert (before, offer.category_path, held.offers[0].category_path) == ((1, 2), (3, 1, 2), (3, 1, 2))


def reprice(uow: FakeProductUnitOfWork, product_id: int, price_fen: int) -> None:
    """An operator's edit of the prices only (back to audit if it was approved)."""
    service.update_product(uow, actor_id=EDITOR, product_id=product_id, draft=draft(price_fen=price_fen),
                           version=uow.products.items[product_id].version, now=T0)


def test_a_cart_lookup_of_a_live_product_repriced_since_answers_no_price_not_the_one_awaiting_audit(
        uow: FakeProductUnitOfWork) -> None:
    live = on_sale(uow)  # 549_900 and 550_000, approved
    reprice(uow, live, 100)

    offers = service.get_skus(uow, sku_ids=sku_ids(uow, live))

    assert [(offer.on_sale, offer.sku.price_fen, offer.sku.market_price_fen) for offer in offers] == [
        (False, 0, 0), (False, 0, 0)]


def test_a_cart_lookup_of_a_product_whose_new_price_was_rejected_answers_no_price(
        uow: FakeProductUnitOfWork) -> None:
    live = on_sale(uow)
    reprice(uow, live, 100)
    service.audit_product(uow, actor_id=1, product_id=live, approve=False, reason="价格录错", now=T0)

    offers = service.get_skus(uow, sku_ids=sku_ids(uow, live))

    assert [(offer.on_sale, offer.sku.price_fen) for offer in offers] == [(False, 0), (False, 0)]


def test_staff_still_read_the_price_waiting_for_audit(uow: FakeProductUnitOfWork) -> None:
    live = on_sale(uow)
    reprice(uow, live, 100)

    read = service.get_admin_product(uow, product_id=live).product

    assert [sku.price_fen for sku in read.active_skus] == [100, 200]


def test_staff_still_read_the_edit_waiting_for_audit(uow: FakeProductUnitOfWork) -> None:
    live = on_sale(uow)
    edit(uow, live, name="未审核的名字", images=("/media/unapproved.jpg",))

    read = service.get_admin_product(uow, product_id=live).product

    assert (read.name, read.images, read.status) == ("未审核的名字", ["/media/unapproved.jpg"], Status.PENDING_AUDIT)


def test_the_category_filter_includes_sub_categories(uow: FakeProductUnitOfWork) -> None:
    on_sale(uow)

    assert [service.search_products(uow, category_id=c).total for c in (1, 2)] == [1, 1]


def test_every_change_is_in_the_audit_log_with_actor_and_before_after(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow)

    entries, total = service.audit_log(uow, product_id=product_id)

    assert [(e.actor_id, e.action, e.before and e.before["status"], e.after and e.after["status"]) for e in entries] == [
        (EDITOR, "shelf_on", "APPROVED", "APPROVED"), (1, "approve", "PENDING_AUDIT", "APPROVED"),
        (EDITOR, "submit", "DRAFT", "PENDING_AUDIT"), (EDITOR, "create", None, "DRAFT")]
    assert total == 4


def test_a_logged_in_view_emits_product_viewed(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow)
    uow.published.clear()

    service.view_product(uow, product_id=product_id, viewer_id=42, now=T0)

    assert [(e.event_type, e.aggregate_id, e.payload) for e in uow.published] == [
        ("product-viewed", "42", ProductViewed(product_id=product_id, user_id=42, viewed_at=timestamp(T0)))]


def test_an_anonymous_view_emits_nothing(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow)
    uow.published.clear()

    service.view_product(uow, product_id=product_id)

    assert uow.published == []


def test_the_delivery_estimate_falls_back_to_the_default_row(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow)
    uow.delivery.set_estimate("*", 4)
    uow.delivery.set_estimate("上海市", 1)

    days = [service.view_product(uow, product_id=product_id, province=p).delivery.estimate_days  # type: ignore[union-attr]
            for p in ("上海市", "西藏自治区", "")]

    assert days == [1, 4, 4]


def test_the_delivery_estimate_to_a_short_or_full_name_is_the_full_named_rows(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow)
    service.set_delivery_estimate(uow, province="*", days=4)
    service.set_delivery_estimate(uow, province="新疆", days=7)

    found = [service.view_product(uow, product_id=product_id, province=p).delivery  # type: ignore[union-attr]
             for p in ("新疆", "新疆维吾尔自治区", "")]

    assert [(d.province, d.estimate_days) for d in found] == [("新疆维吾尔自治区", 7), ("新疆维吾尔自治区", 7), ("", 4)]


@pytest.mark.parametrize("province", ["Shanghai", "上海 ", "*", "上海\x00"])
def test_a_delivery_estimate_to_no_province_is_refused(uow: FakeProductUnitOfWork, province: str) -> None:
    product_id = on_sale(uow)
    uow.published.clear()

    with pytest.raises(InvalidInput) as refused:
        service.view_product(uow, product_id=product_id, province=province, viewer_id=42)

    assert (refused.value.code, list(refused.value.details), uow.published) == ("PROVINCE_INVALID", ["province"], [])


def test_reserving_takes_stock_and_a_replay_takes_nothing_more(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow)
    black, white = sku_ids(uow, product_id)
    lines = [StockLine(black, 2), StockLine(white, 1)]

    first = service.reserve_stock(uow, order_no="O1", lines=lines, now=T0)
    again = service.reserve_stock(uow, order_no="O1", lines=lines, now=T0 + timedelta(seconds=5))

    assert (first, stock_of(uow, product_id)) == (again, [48, 49])
    assert (first.status, first.expires_at) == ("RESERVED", T0 + RESERVATION_TTL)


def test_the_same_order_number_with_other_lines_is_a_conflict(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow)
    black, _ = sku_ids(uow, product_id)
    service.reserve_stock(uow, order_no="O1", lines=[StockLine(black, 2)], now=T0)

    with pytest.raises(Conflict):
        service.reserve_stock(uow, order_no="O1", lines=[StockLine(black, 3)], now=T0)


def test_a_short_line_fails_the_reservation_without_committing(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow, stock=1)
    black, _ = sku_ids(uow, product_id)
    commits = uow.commits

    with pytest.raises(OutOfStock) as raised:
        service.reserve_stock(uow, order_no="O1", lines=[StockLine(black, 2)], now=T0)

    assert (raised.value.details, uow.commits, uow.reservations.items) == ({"sku_id": black}, commits, [])


def test_an_off_shelf_product_cannot_be_reserved(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow)
    service.set_shelf(uow, actor_id=EDITOR, product_id=product_id, on_shelf=False, now=T0)

    with pytest.raises(OutOfStock):
        service.reserve_stock(uow, order_no="O1", lines=[StockLine(sku_ids(uow, product_id)[0], 1)], now=T0)


def test_confirming_counts_sales_once(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow)
    black, _ = sku_ids(uow, product_id)
    service.reserve_stock(uow, order_no="O1", lines=[StockLine(black, 3)], now=T0)

    statuses = []
    for _ in range(2):  # order-paid, applied again: each time in the consumer's transaction
        with uow:
            statuses.append(service.confirm_held_stock(uow, order_no="O1"))
            uow.commit()

    product = uow.products.items[product_id]
    assert (statuses, product.sales, product.skus[0].sales, product.skus[0].stock) == (
        ["CONFIRMED", "CONFIRMED"], 3, 3, 47)


def test_releasing_puts_stock_back_once(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow)
    black, _ = sku_ids(uow, product_id)
    service.reserve_stock(uow, order_no="O1", lines=[StockLine(black, 3)], now=T0)

    statuses = [service.release_reservation(uow, order_no="O1") for _ in range(2)]

    assert (statuses, stock_of(uow, product_id)) == (["RELEASED", "RELEASED"], [50, 50])


def test_releasing_an_order_that_never_reserved_answers_none(uow: FakeProductUnitOfWork) -> None:
    assert service.release_reservation(uow, order_no="NEVER") == "NONE"


def test_the_sweep_releases_only_expired_reservations(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow)
    black, white = sku_ids(uow, product_id)
    service.reserve_stock(uow, order_no="OLD", lines=[StockLine(black, 5)], now=T0)
    service.reserve_stock(uow, order_no="NEW", lines=[StockLine(white, 5)], now=T0 + timedelta(hours=1))

    released = service.release_expired_reservations(lambda: uow, FakeOrders(),  # OLD: a submit that died
                                                    now=T0 + RESERVATION_TTL + timedelta(minutes=1))

    assert (released, stock_of(uow, product_id)) == (1, [50, 45])


def test_stock_cannot_be_adjusted_below_zero(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow, stock=3)
    black, _ = sku_ids(uow, product_id)

    with pytest.raises(OutOfStock):
        service.adjust_stock(uow, actor_id=EDITOR, product_id=product_id, sku_id=black, delta=-4, now=T0)
    sku = service.adjust_stock(uow, actor_id=EDITOR, product_id=product_id, sku_id=black, delta=-3, now=T0)

    assert (sku.stock, uow.audit_log.entries[-1].after) == (0, {"sku_id": black, "stock": 0, "reason": ""})


def test_a_retired_sku_may_be_written_off_but_not_restocked(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow, stock=3)
    _, white = sku_ids(uow, product_id)
    white_sku = uow.products.items[product_id].sku(white)
    white_sku.active = False  # retired before SKUs with units were refused: 3 units left on it

    with pytest.raises(Conflict) as refused:
        service.adjust_stock(uow, actor_id=EDITOR, product_id=product_id, sku_id=white, delta=5, now=T0)
    written_off = service.adjust_stock(uow, actor_id=EDITOR, product_id=product_id, sku_id=white, delta=-3, now=T0)

    assert (refused.value.code, refused.value.details, written_off.stock) == ("SKU_RETIRED", {"sku_id": white}, 0)



def test_a_stock_adjustment_retried_with_its_key_moves_the_units_once(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow, stock=3)
    black, _ = sku_ids(uow, product_id)

    first = service.adjust_stock(uow, actor_id=EDITOR, product_id=product_id, sku_id=black, delta=5,
                                 idempotency_key="stock-1", now=T0)
    retried = service.adjust_stock(uow, actor_id=EDITOR, product_id=product_id, sku_id=black, delta=5,
                                   idempotency_key="stock-1", now=T0)

    assert (first.stock, retried.stock, stock_of(uow, product_id)[0],
            [e.after for e in uow.audit_log.entries if e.action == "stock"]) == (
        8, 8, 8, [{"sku_id": black, "stock": 8, "reason": ""}])


def test_a_stock_adjustment_key_reused_for_another_delta_is_a_conflict_and_moves_nothing(
        uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow, stock=3)
    black, _ = sku_ids(uow, product_id)
    service.adjust_stock(uow, actor_id=EDITOR, product_id=product_id, sku_id=black, delta=5,
                         idempotency_key="stock-1", now=T0)

    with pytest.raises(Conflict) as raised:
        service.adjust_stock(uow, actor_id=EDITOR, product_id=product_id, sku_id=black, delta=-2,
                             idempotency_key="stock-1", now=T0)

    assert (raised.value.code, stock_of(uow, product_id)[0]) == ("IDEMPOTENCY_KEY_REUSED", 8)


def test_one_stock_key_of_two_staff_members_adjusts_twice_and_no_key_adjusts_each_time(
        uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow, stock=3)
    black, _ = sku_ids(uow, product_id)

    for actor_id, key in ((EDITOR, "stock-1"), (EDITOR + 1, "stock-1"), (EDITOR, ""), (EDITOR, "")):
        service.adjust_stock(uow, actor_id=actor_id, product_id=product_id, sku_id=black, delta=1,
                             idempotency_key=key, now=T0)

    assert stock_of(uow, product_id)[0] == 7


def test_keyword_search_ranks_name_matches_above_description_matches(uow: FakeProductUnitOfWork) -> None:
    on_sale(uow, name="手机壳")
    phone = on_sale(uow, name="旗舰 手机")

    found = service.search_products(uow, q="旗舰 手机")

    assert [v.product.id for v in found.items][0] == phone


def test_an_approved_product_edited_by_an_operator_leaves_the_shelf(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow)

    view = service.update_product(uow, actor_id=EDITOR, product_id=product_id, draft=draft(price_fen=1), version=1, now=T0)

    assert (view.product.status, view.product.on_shelf, service.search_products(uow).total) == (
        Status.PENDING_AUDIT, False, 0)


def test_a_new_product_is_refused_with_every_problem_at_once_its_unknown_category_and_brand_too(
        uow: FakeProductUnitOfWork) -> None:
    with pytest.raises(InvalidInput) as refused:
        service.create_product(uow, actor_id=EDITOR, draft=replace(draft(name=" "), category_id=99, brand_id=98),
                               now=T0)

    assert (refused.value.code, refused.value.details, uow.products.items) == (
        "PRODUCT_INVALID", {"name": "1-100 characters", "category_id": "no such category",
                            "brand_id": "no such brand"}, {})


def test_an_edit_from_a_stale_form_is_told_to_reload_before_its_fields_are_judged(
        uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow)
    service.update_product(uow, actor_id=EDITOR, product_id=product_id, draft=draft(price_fen=1), version=1, now=T0)

    with pytest.raises(Conflict) as refused:
        service.update_product(uow, actor_id=EDITOR, product_id=product_id, draft=draft(name=""), version=1, now=T0)

    assert (refused.value.code, refused.value.details, uow.products.items[product_id].name) == (
        "PRODUCT_CHANGED", {"version": 2}, "华为 Mate 60 智能手机")


def test_an_edit_naming_an_unknown_brand_is_refused_and_changes_nothing(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow)

    with pytest.raises(InvalidInput) as refused:
        service.update_product(uow, actor_id=EDITOR, product_id=product_id, draft=replace(draft(), brand_id=98),
                               version=1, now=T0)

    product = uow.products.items[product_id]
    assert (refused.value.code, refused.value.details, product.brand_id, product.version, product.status) == (
        "PRODUCT_INVALID", {"brand_id": "no such brand"}, 1, 1, Status.APPROVED)


# Order events, handled as the consumer handles them: inside an open unit of work

def consume(uow: FakeProductUnitOfWork, event: object) -> None:
    with uow:
        consumers.HANDLERS[type(event)](uow, event, EventEnvelope(event_id="e"))  # type: ignore[index]
        uow.commit()


def test_order_paid_turns_the_reserved_units_into_sales(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow)
    black, _ = sku_ids(uow, product_id)
    service.reserve_stock(uow, order_no="O1", lines=[StockLine(black, 3)], now=T0)

    consume(uow, OrderPaid(order_no="O1"))
    consume(uow, OrderPaid(order_no="O1"))  # the same payment published again

    product = uow.products.items[product_id]
    assert (product.sales, product.skus[0].stock) == (3, 47)


def test_a_payment_for_released_stock_is_dead_lettered_not_retried_for_ever(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow)
    service.reserve_stock(uow, order_no="O1", lines=[StockLine(sku_ids(uow, product_id)[0], 1)], now=T0)
    service.release_reservation(uow, order_no="O1")

    with pytest.raises(InvalidEvent, match="RESERVATION_RELEASED"):
        consume(uow, OrderPaid(order_no="O1"))


def test_cancelling_an_unpaid_order_puts_its_stock_back(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow)
    black, _ = sku_ids(uow, product_id)
    service.reserve_stock(uow, order_no="O1", lines=[StockLine(black, 3)], now=T0)

    consume(uow, OrderCancelled(order_no="O1", was_paid=False))

    assert stock_of(uow, product_id) == [50, 50]


def test_returned_goods_go_back_on_sale(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow)
    black, _ = sku_ids(uow, product_id)
    service.reserve_stock(uow, order_no="O1", lines=[StockLine(black, 3)], now=T0)
    consume(uow, OrderPaid(order_no="O1"))

    consume(uow, OrderReturned(order_no="O1", case_no="AS1", lines=[OrderLine(sku_id=black, quantity=2)]))

    assert (stock_of(uow, product_id), uow.products.items[product_id].sales) == ([49, 50], 1)


def test_a_paid_order_cancelled_after_review_puts_its_sold_units_back_once(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow)
    black, _ = sku_ids(uow, product_id)
    service.reserve_stock(uow, order_no="O1", lines=[StockLine(black, 3)], now=T0)
    consume(uow, OrderPaid(order_no="O1"))
    assert (stock_of(uow, product_id), uow.products.items[product_id].sales) == ([47, 50], 3)

    consume(uow, OrderCancelled(order_no="O1", was_paid=True))
    consume(uow, OrderCancelled(order_no="O1", was_paid=True))  # the same event published again

    assert (stock_of(uow, product_id), uow.products.items[product_id].sales) == ([50, 50], 0)


def changes(uow: FakeProductUnitOfWork) -> list[tuple[str, int, str]]:
    return [(e.aggregate_id, e.payload.product_id, e.payload.reason) for e in uow.published
            if isinstance(e.payload, ProductChanged)]


def test_every_audited_change_publishes_product_changed(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow)
    service.update_product(uow, actor_id=EDITOR, product_id=product_id, draft=draft(price_fen=499_900), version=1,
                           now=T0)
    service.adjust_stock(uow, actor_id=EDITOR, product_id=product_id, sku_id=sku_ids(uow, product_id)[0], delta=5,
                         now=T0)

    key = str(product_id)
    assert changes(uow) == [(key, product_id, reason) for reason in
                            ("create", "submit", "approve", "shelf_on", "update", "stock")]


def test_a_reservation_publishes_product_changed_only_when_a_stock_status_changes(uow: FakeProductUnitOfWork) -> None:
    product_id = on_sale(uow, stock=12)
    black = sku_ids(uow, product_id)[0]
    uow.published.clear()

    service.reserve_stock(uow, order_no="A", lines=[StockLine(black, 1)], now=T0)   # 12 -> 11: in_stock
    quiet = changes(uow)
    service.reserve_stock(uow, order_no="B", lines=[StockLine(black, 1)], now=T0)   # 11 -> 10: low
    service.reserve_stock(uow, order_no="C", lines=[StockLine(black, 10)], now=T0)  # 10 -> 0: sold out
    service.release_reservation(uow, order_no="C")                                 # 0 -> 10: low again
    service.release_reservation(uow, order_no="A")                                 # 10 -> 11: in stock

    assert (quiet, [reason for _, _, reason in changes(uow)]) == ([], ["stock_status"] * 4)


def test_an_approval_of_content_edited_since_the_auditor_read_it_is_refused(uow: FakeProductUnitOfWork) -> None:
    product_id = service.create_product(uow, actor_id=EDITOR, draft=draft(), now=T0).product.id
    assert product_id is not None
    service.submit_product(uow, actor_id=EDITOR, product_id=product_id, now=T0)
    read_by_auditor = service.get_admin_product(uow, product_id=product_id).product.version
    # meanwhile another admin rejects it, an operator raises the price tenfold and submits it again
    service.audit_product(uow, actor_id=2, product_id=product_id, approve=False, reason="图片不清晰", now=T0)
    service.update_product(uow, actor_id=EDITOR, product_id=product_id, draft=draft(price_fen=5_499_000),
                           version=read_by_auditor, now=T0)
    service.submit_product(uow, actor_id=EDITOR, product_id=product_id, now=T0)

    with pytest.raises(Conflict) as refused:
        service.audit_product(uow, actor_id=1, product_id=product_id, approve=True, version=read_by_auditor, now=T0)

    assert (refused.value.code, refused.value.details, uow.products.items[product_id].status) == (
        "PRODUCT_CHANGED", {"version": read_by_auditor + 1}, Status.PENDING_AUDIT)


def test_an_approval_of_the_version_the_auditor_read_goes_through(uow: FakeProductUnitOfWork) -> None:
    product_id = service.create_product(uow, actor_id=EDITOR, draft=draft(), now=T0).product.id
    assert product_id is not None
    service.submit_product(uow, actor_id=EDITOR, product_id=product_id, now=T0)

    view = service.audit_product(uow, actor_id=1, product_id=product_id, approve=True, version=1, now=T0)

    assert view.product.status == Status.APPROVED


def test_a_price_range_whose_minimum_is_above_its_maximum_is_refused(uow: FakeProductUnitOfWork) -> None:
    with pytest.raises(InvalidInput) as refused:
        service.search_products(uow, price_min_fen=10_000, price_max_fen=5_000)

    assert (refused.value.code, refused.value.details) == ("PRICE_RANGE_INVALID",
                                                          {"price_min_fen": "must not be above price_max_fen"})


def test_a_create_retried_with_its_key_answers_the_first_product_and_creates_no_second(
        uow: FakeProductUnitOfWork) -> None:
    first = service.create_product(uow, actor_id=EDITOR, draft=draft(), idempotency_key="form-1", now=T0)
    retried = service.create_product(uow, actor_id=EDITOR, draft=draft(), idempotency_key="form-1", now=T0)

    assert (first.product.id, retried.product.id, sorted(uow.products.items)) == (1, 1, [1])
    assert stock_of(uow, 1) == [50, 50]  # the initial stock recorded once


def test_a_create_key_reused_for_another_draft_is_a_conflict_and_creates_nothing(uow: FakeProductUnitOfWork) -> None:
    service.create_product(uow, actor_id=EDITOR, draft=draft(), idempotency_key="form-1", now=T0)

    with pytest.raises(Conflict) as raised:
        service.create_product(uow, actor_id=EDITOR, draft=draft(name="华为 Mate 70"), idempotency_key="form-1",
                               now=T0)

    assert (raised.value.code, sorted(uow.products.items)) == ("IDEMPOTENCY_KEY_REUSED", [1])


def test_one_key_of_two_staff_members_creates_a_product_each(uow: FakeProductUnitOfWork) -> None:
    mine = service.create_product(uow, actor_id=EDITOR, draft=draft(), idempotency_key="form-1", now=T0)
    theirs = service.create_product(uow, actor_id=EDITOR + 1, draft=draft(), idempotency_key="form-1", now=T0)

    assert (mine.product.id, theirs.product.id) == (1, 2)


def test_creates_without_a_key_each_create_a_product(uow: FakeProductUnitOfWork) -> None:
    ids = [service.create_product(uow, actor_id=EDITOR, draft=draft(), now=T0).product.id for _ in range(2)]

    assert (ids, sorted(uow.products.items)) == ([1, 2], [1, 2])
