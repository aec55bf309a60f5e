"""Product domain rules: SPU/SKU validation, the audit state machine, stock status, categories, stock lines."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.common.errors import Conflict, InvalidInput
from services.product.domain import (
    MAX_IMAGES,
    SKU_PRICE_MAX_FEN,
    URL_MAX,
    Category,
    Product,
    ProductDraft,
    SkuDraft,
    Status,
    StockLine,
    category_paths,
    descendants,
    merge_lines,
    stock_status,
)

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
COLOURS = (("颜色", ("黑", "白")),)


def draft(**overrides: object) -> ProductDraft:
    fields: dict[str, object] = {
        "name": "象印 保温杯", "category_id": 1, "brand_id": 1, "specs": COLOURS,
        "skus": (SkuDraft(spec={"颜色": "黑"}, price_fen=19_900, stock=5),
                 SkuDraft(spec={"颜色": "白"}, price_fen=18_900, stock=0))}
    fields.update(overrides)
    return ProductDraft(**fields)  # type: ignore[arg-type]


def details_of(make: object) -> dict[str, object]:
    with pytest.raises(InvalidInput) as raised:
        make()  # type: ignore[operator]
    return raised.value.details


def approved() -> Product:
    product = Product.create(draft(), T0)
    product.submit(T0)
    product.audit(approve=True, reason="", now=T0)
    return product


def test_a_new_product_is_a_draft_off_the_shelf_priced_at_its_cheapest_sku() -> None:
    product = Product.create(draft(), T0)

    assert (product.status, product.on_shelf, product.price_fen, len(product.skus)) == (Status.DRAFT, False, 18_900, 2)


def test_a_price_of_zero_is_refused_with_the_sku_named() -> None:
    bad = draft(skus=(SkuDraft(spec={"颜色": "黑"}, price_fen=0),))

    assert details_of(bad.validate) == {"skus.0.price_fen": "must be greater than 0"}


def test_negative_stock_is_refused() -> None:
    bad = draft(skus=(SkuDraft(spec={"颜色": "黑"}, price_fen=100, stock=-1),))

    assert details_of(bad.validate) == {"skus.0.stock": "must be 0 or more"}


def test_two_skus_with_the_same_spec_combination_are_refused() -> None:
    bad = draft(skus=(SkuDraft(spec={"颜色": "黑"}, price_fen=100), SkuDraft(spec={"颜色": "黑"}, price_fen=200)))

    assert details_of(bad.validate) == {"skus.1.spec": "duplicate spec combination"}


def test_a_sku_must_use_declared_spec_values() -> None:
    bad = draft(skus=(SkuDraft(spec={"颜色": "红"}, price_fen=100),))

    assert details_of(bad.validate) == {"skus.0.spec": "must give one declared value for every declared spec"}


def test_a_product_without_skus_is_refused() -> None:
    assert details_of(draft(skus=()).validate) == {"skus": "at least one SKU"}


def test_text_with_nul_characters_is_refused() -> None:
    assert details_of(draft(name="a\x00b").validate) == {"product": "text must not contain NUL characters"}


def test_only_an_approved_product_goes_on_the_shelf() -> None:
    product = Product.create(draft(), T0)

    with pytest.raises(Conflict) as raised:
        product.shelve(True, T0)

    assert (raised.value.code, product.on_shelf) == ("PRODUCT_NOT_APPROVED", False)


def test_submit_approve_and_shelve_makes_a_product_visible() -> None:
    product = approved()

    product.shelve(True, T0)

    assert (product.status, product.visible) == (Status.APPROVED, True)


def test_a_rejection_needs_a_reason() -> None:
    product = Product.create(draft(), T0)
    product.submit(T0)

    assert details_of(lambda: product.audit(approve=False, reason=" ", now=T0)) == {"reason": "required"}


def test_a_rejected_product_keeps_its_reason_and_can_be_resubmitted() -> None:
    product = Product.create(draft(), T0)
    product.submit(T0)
    product.audit(approve=False, reason="图片模糊", now=T0)
    rejected = (product.status, product.reject_reason)

    product.submit(T0)

    assert (rejected, product.status, product.reject_reason) == ((Status.REJECTED, "图片模糊"), Status.PENDING_AUDIT, "")


def test_a_draft_cannot_be_audited() -> None:
    with pytest.raises(Conflict):
        Product.create(draft(), T0).audit(approve=True, reason="", now=T0)


def test_changing_the_price_of_an_on_shelf_product_sends_it_back_to_audit_off_the_shelf() -> None:
    product = approved()
    product.shelve(True, T0)

    product.edit(draft(skus=(SkuDraft(spec={"颜色": "黑"}, price_fen=9_900),
                             SkuDraft(spec={"颜色": "白"}, price_fen=18_900))), T0, version=1, reserved={})

    assert (product.status, product.on_shelf, product.price_fen) == (Status.PENDING_AUDIT, False, 9_900)


def test_an_edit_of_an_approved_product_keeps_the_approved_name_and_image_for_shoppers() -> None:
    product = Product.create(draft(images=("/media/cup.jpg", "/media/cup-2.jpg")), T0)
    product.submit(T0)
    product.audit(approve=True, reason="", now=T0)

    product.edit(draft(name="未审核的名字", images=("/media/unapproved.jpg",)), T0, version=1, reserved={})
    product.audit(approve=False, reason="图片不符", now=T0)  # rejected: still never approved

    assert Product.shopper_face(product.status, name=product.name, images=product.images,
                                approved_name=product.approved_name, approved_image=product.approved_image) == (
        "象印 保温杯", "/media/cup.jpg")


def test_an_approval_makes_the_current_name_and_image_the_approved_ones() -> None:
    product = approved()
    product.edit(draft(name="象印 保温杯 新款", images=("/media/new.jpg",)), T0, version=1, reserved={})

    product.audit(approve=True, reason="", now=T0, version=2)

    assert (product.approved_name, product.approved_image) == ("象印 保温杯 新款", "/media/new.jpg")


def test_editing_a_rejected_product_makes_it_a_draft_again() -> None:
    product = Product.create(draft(), T0)
    product.submit(T0)
    product.audit(approve=False, reason="价格错误", now=T0)

    product.edit(draft(), T0, version=1, reserved={})

    assert product.status == Status.DRAFT


def test_a_product_in_audit_cannot_be_edited() -> None:
    product = Product.create(draft(), T0)
    product.submit(T0)

    with pytest.raises(Conflict):
        product.edit(draft(), T0, version=1, reserved={})


def test_an_edit_keeps_the_stock_of_existing_skus_and_retires_the_dropped_ones() -> None:
    product = Product.create(draft(), T0)
    black, white = product.skus

    product.edit(draft(skus=(SkuDraft(spec={"颜色": "黑"}, price_fen=10_000, stock=999),)), T0, version=1,
                 reserved={})

    assert ((black.price_fen, black.stock, black.active), white.active) == ((10_000, 5, True), False)


def test_each_edit_counts_in_the_version() -> None:
    product = Product.create(draft(), T0)

    product.edit(draft(), T0, version=1, reserved={})
    product.edit(draft(), T0, version=2, reserved={})

    assert product.version == 3


def test_an_edit_of_a_version_read_before_another_edit_is_refused_with_the_current_one() -> None:
    product = Product.create(draft(), T0)
    product.edit(draft(name="象印 保温杯 新款"), T0, version=1, reserved={})

    with pytest.raises(Conflict) as refused:
        product.edit(draft(), T0, version=1, reserved={})

    assert (refused.value.code, refused.value.details, product.name, product.version) == (
        "PRODUCT_CHANGED", {"version": 2}, "象印 保温杯 新款", 2)


def test_a_sku_with_units_reserved_is_not_retired_even_with_none_in_stock() -> None:
    product = Product.create(draft(), T0)
    black, white = product.skus
    black.id, white.id = 11, 12

    with pytest.raises(Conflict) as refused:
        product.edit(draft(skus=(SkuDraft(spec={"颜色": "黑"}, price_fen=10_000),)), T0, version=1,
                     reserved={12: 2})

    assert (refused.value.code, refused.value.details, white.active, product.version) == (
        "SKU_HAS_STOCK", {"skus": [{"id": 12, "spec": {"颜色": "白"}, "stock": 0, "reserved": 2}]}, True, 1)


@pytest.mark.parametrize(("stock", "status"), [(0, "sold_out"), (1, "low"), (10, "low"), (11, "in_stock")])
def test_shoppers_see_a_stock_status_not_a_count(stock: int, status: str) -> None:
    assert stock_status(stock) == status


def test_a_category_includes_its_descendants_at_any_depth() -> None:
    tree = [Category("数码", id=1), Category("手机", parent_id=1, id=2), Category("5G手机", parent_id=2, id=3),
            Category("家电", id=4)]

    assert descendants(tree, 1) == {1, 2, 3}


def test_a_categorys_path_runs_from_its_root_down_to_itself() -> None:
    tree = [Category("数码", id=1), Category("手机", parent_id=1, id=2), Category("5G手机", parent_id=2, id=3),
            Category("家电", id=4)]

    assert category_paths(tree, [3, 4, 2]) == {3: (1, 2, 3), 4: (4,), 2: (1, 2)}


def test_stock_lines_for_one_sku_are_merged_and_sorted_by_sku() -> None:
    lines = merge_lines("O1", [StockLine(9, 1), StockLine(3, 2), StockLine(9, 4)])

    assert lines == [StockLine(3, 2), StockLine(9, 5)]


def test_a_stock_line_with_no_quantity_is_refused() -> None:
    assert details_of(lambda: merge_lines("O1", [StockLine(3, 0)])) == {"lines": "invalid"}


def test_overlong_spec_values_are_refused_before_they_reach_the_database() -> None:
    long_value = "黑" * 51
    bad = draft(specs=(("颜色", (long_value,)),), skus=(SkuDraft(spec={"颜色": long_value}, price_fen=100),))

    assert details_of(bad.validate)["specs"] == "spec names up to 20 characters, values up to 50"


def test_a_market_price_below_the_selling_price_is_refused() -> None:
    # a crossed-out "original price" under the price paid is a fake discount (and misleads the shopper)
    bad = draft(skus=(SkuDraft(spec={"颜色": "黑"}, price_fen=19_900, market_price_fen=9_900),
                      SkuDraft(spec={"颜色": "白"}, price_fen=19_900, market_price_fen=19_900)))

    assert details_of(bad.validate) == {"skus.0.market_price_fen": "must be 0 (none) or at least the price"}


def test_a_price_above_the_shop_maximum_is_refused() -> None:
    bad = draft(skus=(SkuDraft(spec={"颜色": "黑"}, price_fen=SKU_PRICE_MAX_FEN + 1),
                      SkuDraft(spec={"颜色": "白"}, price_fen=SKU_PRICE_MAX_FEN,
                               market_price_fen=SKU_PRICE_MAX_FEN + 1)))

    assert details_of(bad.validate) == {"skus.0.price_fen": f"at most {SKU_PRICE_MAX_FEN}",
                                        "skus.1.market_price_fen": f"at most {SKU_PRICE_MAX_FEN}"}


@pytest.mark.parametrize("url", ["javascript:alert(1)", "http://tracker.example/a.png", "data:image/png;base64,AA",
                                 "/media/../../etc/passwd", "//evil.example/a.png", "/media/a b.png",
                                 "https://evil.example/a.png\" onerror=\"x", "/api/v1/admin/users"])
def test_an_image_that_is_not_our_media_or_an_https_url_is_refused(url: str) -> None:
    assert details_of(draft(images=(url,)).validate) == {
        "images": f"at most {MAX_IMAGES} URLs of 1-{URL_MAX} characters: /media/... paths or https:// URLs"}


@pytest.mark.parametrize("url", ["/media/catalog/0123abcd.png", "/media/uploads/" + "a" * 32 + ".jpg",
                                 "https://cdn.example.com/p/1.webp?x=1"])
def test_our_media_paths_and_https_urls_are_accepted_as_images(url: str) -> None:
    assert draft(images=(url,)).validate().images == (url,)


def test_the_audit_snapshot_tells_a_changed_description_apart() -> None:
    product = Product.create(draft(description="正品行货"), T0)
    before = product.snapshot()

    product.edit(draft(description="水货"), T0, version=1, reserved={})

    assert before["description_sha256"] != product.snapshot()["description_sha256"]


def test_spec_values_that_differ_only_by_surrounding_spaces_are_refused() -> None:
    # shoppers would see two identical choices "黑", each a SKU of its own price and stock
    bad = draft(specs=(("颜色", ("黑", "黑 ")),), skus=(SkuDraft(spec={"颜色": "黑"}, price_fen=100),
                                                      SkuDraft(spec={"颜色": "黑 "}, price_fen=200)))

    assert details_of(bad.validate) == {"specs.颜色": "values must be non-empty, unique and without surrounding spaces"}


def test_a_spec_name_with_surrounding_spaces_is_refused() -> None:
    bad = draft(specs=((" 颜色", ("黑",)),), skus=(SkuDraft(spec={" 颜色": "黑"}, price_fen=100),))

    assert details_of(bad.validate) == {"specs": "spec names must be non-empty, unique and without surrounding spaces"}


@pytest.mark.parametrize("name", ["华为\u202e06 etaM", "象印\u0085保温杯", "象印\u2066保温杯\u2069", "象印\u200b"])
def test_a_name_with_invisible_or_reordering_characters_is_refused(name: str) -> None:
    # a right-to-left override shows staff and shoppers another name than the one searched and audited
    assert details_of(draft(name=name).validate) == {
        "product": "single-line text must not contain control, bidirectional or zero-width characters"}


def test_a_spec_value_with_a_reordering_character_is_refused() -> None:
    bad = draft(specs=(("颜色", ("\u202e黑",)),), skus=(SkuDraft(spec={"颜色": "\u202e黑"}, price_fen=100),))

    assert details_of(bad.validate) == {
        "product": "single-line text must not contain control, bidirectional or zero-width characters"}
