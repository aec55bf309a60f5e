"""The catalogue on PostgreSQL and SQLite: Chinese search and ranking, filters, sorts, visibility, edits."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select

from services.common.errors import Conflict, InvalidInput, NotFound
from services.common.outbox import outbox
from services.product import service
from services.product.db import skus
from services.product.domain import MAX_SPECS, SPEC_NAME_MAX, SPEC_VALUE_MAX, ProductDraft, SkuDraft, StockLine
from tests.integration.product.conftest import Shelf, UowFactory, confirm_paid

pytestmark = pytest.mark.integration


@pytest.fixture
def shelf(uow: UowFactory) -> Shelf:
    return Shelf(uow)


def names(uow: UowFactory, **query: object) -> list[str]:
    return [v.product.name for v in service.search_products(uow(), **query).items]  # type: ignore[arg-type]


def test_a_chinese_word_finds_it_inside_a_compound(shelf: Shelf, uow: UowFactory) -> None:
    shelf.product("华为 Mate 60 智能手机")
    shelf.product("象印 保温杯", brand_id=2)

    assert names(uow, q="手机") == ["华为 Mate 60 智能手机"]


def test_latin_keywords_match_whatever_their_case(shelf: Shelf, uow: UowFactory) -> None:
    shelf.product("Apple iPhone15 Pro 手机")
    shelf.product("华为 Mate 60 智能手机")

    assert names(uow, q="iphone") == ["Apple iPhone15 Pro 手机"]


def test_the_316_cup_ranks_first_for_cup_and_316(shelf: Shelf, uow: UowFactory) -> None:
    shelf.product("膳魔师 保温杯 大容量", brand_id=2, category_id=2)
    shelf.product("象印 316不锈钢 保温杯 480ml", brand_id=2, category_id=2)
    shelf.product("象印 保温杯 儿童款", brand_id=2, category_id=2, description="304不锈钢")

    assert names(uow, q="保温杯 316") == ["象印 316不锈钢 保温杯 480ml", "象印 保温杯 儿童款", "膳魔师 保温杯 大容量"]


def test_a_name_match_outranks_a_description_match(shelf: Shelf, uow: UowFactory) -> None:
    shelf.product("手机支架", description="适用于各种平板", category_id=2)
    shelf.product("蓝牙耳机", description="连接手机即用", category_id=2)

    assert names(uow, q="手机") == ["手机支架", "蓝牙耳机"]


def test_a_search_that_matches_nothing_is_empty(shelf: Shelf, uow: UowFactory) -> None:
    shelf.product("华为 Mate 60 智能手机")

    assert (service.search_products(uow(), q="冰箱").total, names(uow, q="！！")) == (0, [])


def test_drafts_rejected_and_off_shelf_products_are_invisible(shelf: Shelf, uow: UowFactory) -> None:
    hidden = [shelf.product(f"手机 {status}", status=status) for status in ("draft", "rejected", "off_shelf")]
    shelf.product("手机 在售")

    assert names(uow) == ["手机 在售"]
    for product_id in hidden:
        with pytest.raises(NotFound):
            service.view_product(uow(), product_id=product_id)


def test_staff_search_sees_every_status_and_filters_by_status(shelf: Shelf, uow: UowFactory) -> None:
    for status in ("draft", "rejected", "on_sale"):
        shelf.product(f"手机 {status}", status=status)

    everything = service.search_products(uow(), staff=True).total
    rejected = [v.product.name for v in service.search_products(uow(), staff=True, status="REJECTED").items]

    assert (everything, rejected) == (3, ["手机 rejected"])


def test_the_category_filter_includes_sub_categories(shelf: Shelf, uow: UowFactory) -> None:
    shelf.product("手机 A", category_id=3)
    shelf.product("杯子 B", category_id=2)

    assert (names(uow, category_id=1), names(uow, category_id=2)) == (["手机 A"], ["杯子 B"])


def test_brand_and_price_range_filters(shelf: Shelf, uow: UowFactory) -> None:
    shelf.product("便宜", price_fen=1_000)
    shelf.product("中等", price_fen=5_000)
    shelf.product("昂贵", price_fen=9_000, brand_id=2)

    assert (names(uow, price_min_fen=2_000, price_max_fen=9_000), names(uow, brand_id=2)) == (
        ["昂贵", "中等"], ["昂贵"])


def test_an_ids_filter_answers_those_of_the_products_still_on_sale(shelf: Shelf, uow: UowFactory) -> None:
    viewed = [shelf.product("看过的 A"), shelf.product("看过的 B", status="off_shelf"), shelf.product("看过的 C")]
    shelf.product("没看过")

    found = service.search_products(uow(), ids=viewed)

    assert (sorted(names(uow, ids=viewed)), found.total) == (["看过的 A", "看过的 C"], 2)


def test_more_ids_than_a_page_are_refused(uow: UowFactory) -> None:
    with pytest.raises(InvalidInput) as raised:
        service.search_products(uow(), ids=range(1, 102))

    assert raised.value.code == "IDS_TOO_MANY"


def test_sorts_by_price_and_newest(shelf: Shelf, uow: UowFactory) -> None:
    for name, price in (("B", 3_000), ("A", 1_000), ("C", 2_000)):
        shelf.product(name, price_fen=price)

    assert (names(uow, sort="price_asc"), names(uow, sort="price_desc"), names(uow, sort="newest")) == (
        ["A", "C", "B"], ["B", "C", "A"], ["C", "A", "B"])


def test_pages_carry_the_total(shelf: Shelf, uow: UowFactory) -> None:
    for n in range(5):
        shelf.product(f"商品 {n}")

    page = service.search_products(uow(), offset=4, limit=2)

    assert ([v.product.name for v in page.items], page.total) == (["商品 0"], 5)


def test_an_edit_keeps_sku_ids_and_stock_adds_new_skus_and_retires_dropped_ones(shelf: Shelf, uow: UowFactory) -> None:
    product_id = shelf.product("手机", status="draft", colours=("黑", "白"), stock=7)
    black, white = shelf.sku_ids(product_id)
    draft = shelf.draft("手机", colours=("黑",))
    edited = draft.__class__(**{**draft.__dict__, "specs": (("颜色", ("黑", "蓝")),), "skus": (
        SkuDraft(spec={"颜色": "黑"}, price_fen=8_000, stock=999), SkuDraft(spec={"颜色": "蓝"}, price_fen=9_000, stock=3))})

    service.adjust_stock(uow(), actor_id=7, product_id=product_id, sku_id=white, delta=-7)  # 白 may go once empty

    service.update_product(uow(), actor_id=7, product_id=product_id, draft=edited, version=1)

    skus = service.get_admin_product(uow(), product_id=product_id).product.skus
    assert sorted((s.id == black, s.id == white, s.spec["颜色"], s.stock, s.active) for s in skus) == [
        (False, False, "蓝", 3, True), (False, True, "白", 0, False), (True, False, "黑", 7, True)]


def colours(prices_and_stock: dict[str, tuple[int, int]]) -> ProductDraft:
    return ProductDraft(name="手机", category_id=3, brand_id=1, specs=(("颜色", tuple(prices_and_stock)),),
                        skus=tuple(SkuDraft(spec={"颜色": colour}, price_fen=price, stock=stock)
                                   for colour, (price, stock) in prices_and_stock.items()))


def active_skus(uow: UowFactory, product_id: int) -> list[tuple[str, int, int]]:
    return [(s.spec["颜色"], s.price_fen, s.stock)
            for s in service.get_admin_product(uow(), product_id=product_id).product.active_skus]


def test_an_edit_from_a_form_read_before_another_edit_is_refused_and_changes_nothing(shelf: Shelf,
                                                                                     uow: UowFactory) -> None:
    product_id = shelf.product("手机", status="draft", colours=("黑",), stock=10)  # both admins read version 1
    service.update_product(uow(), actor_id=8, product_id=product_id,
                           draft=colours({"黑": (12_000, 10), "白": (12_000, 30)}), version=1)

    with pytest.raises(Conflict) as refused:
        service.update_product(uow(), actor_id=7, product_id=product_id, draft=colours({"黑": (10_000, 10)}),
                               version=1)

    assert (refused.value.code, refused.value.details, active_skus(uow, product_id),
            service.get_admin_product(uow(), product_id=product_id).product.version) == (
        "PRODUCT_CHANGED", {"version": 2}, [("黑", 12_000, 10), ("白", 12_000, 30)], 2)


def test_an_edit_that_would_retire_skus_still_holding_units_is_refused_naming_them(shelf: Shelf,
                                                                                   uow: UowFactory) -> None:
    product_id = shelf.product("手机", colours=("黑", "白", "蓝"), stock=5)  # on sale
    black, white, blue = shelf.sku_ids(product_id)
    service.adjust_stock(uow(), actor_id=7, product_id=product_id, sku_id=white, delta=-5)
    service.adjust_stock(uow(), actor_id=7, product_id=product_id, sku_id=blue, delta=-3)
    service.reserve_stock(uow(), order_no="R1", lines=[StockLine(blue, 2)])   # 蓝: 0 in stock, 2 reserved
    renamed = colours({"黑色": (10_000, 0)})                                 # 黑 renamed, 白 and 蓝 dropped

    with pytest.raises(Conflict) as refused:
        service.update_product(uow(), actor_id=7, product_id=product_id, draft=renamed, version=1)

    assert (refused.value.code, refused.value.details, active_skus(uow, product_id)) == (
        "SKU_HAS_STOCK", {"skus": [{"id": black, "spec": {"颜色": "黑"}, "stock": 5, "reserved": 0},
                                   {"id": blue, "spec": {"颜色": "蓝"}, "stock": 0, "reserved": 2}]},
        [("黑", 10_000, 5), ("白", 10_001, 0), ("蓝", 10_002, 0)])


def test_the_audit_log_keeps_before_and_after(shelf: Shelf, uow: UowFactory) -> None:
    product_id = shelf.product("手机")

    entries, total = service.audit_log(uow(), product_id=product_id)

    assert ([(e.action, e.before and e.before["status"], e.after and e.after["on_shelf"]) for e in entries], total) == (
        [("shelf_on", "APPROVED", True), ("approve", "PENDING_AUDIT", False), ("submit", "DRAFT", False),
         ("create", None, False)], 4)


def test_the_audit_log_pages_newest_first_with_the_total(shelf: Shelf, uow: UowFactory) -> None:
    product_id = shelf.product("手机")
    shelf.product("保温杯")  # its entries are not counted

    entries, total = service.audit_log(uow(), product_id=product_id, offset=1, limit=2)

    assert ([e.action for e in entries], {e.product_id for e in entries}, total) == (
        ["approve", "submit"], {product_id}, 4)


def test_a_logged_in_view_writes_product_viewed_to_the_outbox(shelf: Shelf, uow: UowFactory) -> None:
    product_id = shelf.product("手机")

    service.view_product(uow(), product_id=product_id, viewer_id=42)
    service.view_product(uow(), product_id=product_id)

    with uow() as u:
        rows = u.session.execute(select(outbox.c.event_type, outbox.c.aggregate_id)
                                 .where(outbox.c.event_type == "product-viewed")).all()
    assert [tuple(row) for row in rows] == [("product-viewed", "42")]


def test_sorting_by_sales_puts_the_best_seller_first(shelf: Shelf, uow: UowFactory) -> None:
    shelf.product("冷门")
    hit = shelf.product("爆款")
    shelf.product("新品")
    service.reserve_stock(uow(), order_no="O1", lines=[StockLine(shelf.sku_ids(hit)[0], 3)])
    confirm_paid(uow(), "O1")

    assert names(uow, sort="sales") == ["爆款", "新品", "冷门"]  # ties (0 sold): newest first


def test_a_reservation_that_sells_out_a_sku_writes_product_changed_to_the_outbox(shelf: Shelf, uow: UowFactory) -> None:
    product_id = shelf.product("手机")
    with uow() as u:
        u.session.execute(delete(outbox))
        u.commit()
        sku_id, stock = u.session.execute(select(skus.c.id, skus.c.stock).where(skus.c.product_id == product_id)
                                          .order_by(skus.c.id).limit(1)).one()

    service.reserve_stock(uow(), order_no="SELLOUT-1", lines=[StockLine(sku_id, stock)])

    with uow() as u:
        rows = u.session.execute(select(outbox.c.event_type, outbox.c.aggregate_id)).all()
    assert [tuple(row) for row in rows] == [("product-changed", str(product_id))]


def test_a_sku_with_the_longest_specs_allowed_is_stored(shelf: Shelf, uow: UowFactory) -> None:
    # Found fuzzing the gateway: five specs of 20-character names and 50-character values of `"` and `\` are valid,
    # but their key (JSON, each `"` and `\` escaped) is 731 characters; PostgreSQL refused it (400 VALUE_NOT_STORABLE).
    names = ['"' * i + "\\" * (SPEC_NAME_MAX - i) for i in range(MAX_SPECS)]
    draft = ProductDraft(name="引号", category_id=3, brand_id=1, specs=tuple((n, ('"' * SPEC_VALUE_MAX,)) for n in names),
                         skus=(SkuDraft(spec={n: '"' * SPEC_VALUE_MAX for n in names}, price_fen=100),))

    created = service.create_product(uow(), actor_id=7, draft=draft)

    assert [len(sku.spec_key) for sku in created.product.skus] == [731]
