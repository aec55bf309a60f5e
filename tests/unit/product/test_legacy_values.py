"""Values saved before the catalogue's stricter rules (plain http images, a market price under the price, padded
specs, hidden characters) do not block an edit that sends them back unchanged; a changed value meets every rule."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from services.common.errors import InvalidInput
from services.product import service
from services.product.domain import URL_MAX, Brand, Category, ProductDraft, SkuDraft, spec_key
from tests.product_fakes import FakeProductUnitOfWork

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
EDITOR = 7
OLD_IMAGE = "http://old-cdn.example/p/1.jpg"
PADDED = "黑 "            # a spec value with a trailing space
HIDDEN = "参数\u200b"     # a parameter value with a zero-width space
IMAGES_RULE = "at most 20 URLs of 1-512 characters: /media/... paths or https:// URLs"
LOGO_RULE = f"at most {URL_MAX} characters: a /media/... path or an https:// URL"


@pytest.fixture
def uow() -> FakeProductUnitOfWork:
    uow = FakeProductUnitOfWork()
    uow.categories.add(Category("数码", icon="http://old-cdn.example/c.png"))  # as stored before icons were checked
    uow.brands.add(Brand("华为", logo="http://old-cdn.example/b.png"))
    return uow


def as_read(*, name: str = "旧手机", price_fen: int = 10_000, image: str = OLD_IMAGE,
            value: str = PADDED) -> ProductDraft:
    """What an admin's form sends back: the legacy product as GET returned it, with the edits asked for."""
    return ProductDraft(name=name, category_id=1, brand_id=1, images=(image,), params=(("产地", HIDDEN),),
                        specs=(("颜色", (value, "白")),),
                        skus=(SkuDraft(spec={"颜色": value}, price_fen=price_fen, market_price_fen=5_000),
                              SkuDraft(spec={"颜色": "白"}, price_fen=12_000, market_price_fen=0)))


def legacy_product(uow: FakeProductUnitOfWork) -> int:
    """A product stored by an older release: its image, parameter, spec value and market price break today's rules."""
    product_id = service.create_product(uow, actor_id=EDITOR, now=T0, draft=ProductDraft(
        name="旧手机", category_id=1, brand_id=1, images=("/media/p.jpg",), params=(("产地", "参数"),),
        specs=(("颜色", ("黑", "白")),), skus=(SkuDraft(spec={"颜色": "黑"}, price_fen=10_000),
                                               SkuDraft(spec={"颜色": "白"}, price_fen=12_000)))).product.id
    assert product_id is not None
    stored = uow.products.items[product_id]
    stored.images, stored.params = [OLD_IMAGE], [{"name": "产地", "value": HIDDEN}]
    stored.specs = [{"name": "颜色", "values": [PADDED, "白"]}]
    black = stored.skus[0]
    black.spec, black.spec_key, black.market_price_fen = {"颜色": PADDED}, spec_key({"颜色": PADDED}), 5_000
    return product_id


def test_a_legacy_product_sent_back_unchanged_can_be_renamed_and_repriced(uow: FakeProductUnitOfWork) -> None:
    product_id = legacy_product(uow)

    view = service.update_product(uow, actor_id=EDITOR, product_id=product_id, version=1, now=T0,
                                  draft=as_read(name="旧手机 改名", price_fen=9_000))

    product = view.product
    assert (product.name, product.images, product.params, product.specs, product.version) == (
        "旧手机 改名", [OLD_IMAGE], [{"name": "产地", "value": HIDDEN}], [{"name": "颜色", "values": [PADDED, "白"]}], 2)
    assert [(sku.spec, sku.price_fen, sku.market_price_fen) for sku in product.skus] == [
        ({"颜色": PADDED}, 9_000, 5_000), ({"颜色": "白"}, 12_000, 0)]


@pytest.mark.parametrize(("changed", "details"), [
    (as_read(image="http://other-cdn.example/p/2.jpg"), {"images": IMAGES_RULE}),
    # another value is another SKU: its market price under the price is new too
    (as_read(value="黑  "), {"specs.颜色": "values must be non-empty, unique and without surrounding spaces",
                            "skus.0.market_price_fen": "must be 0 (none) or at least the price"}),
    (replace(as_read(), params=(("产地", "新\u200b"),)),
     {"product": "single-line text must not contain control, bidirectional or zero-width characters"}),
    (replace(as_read(), skus=(
        SkuDraft(spec={"颜色": PADDED}, price_fen=10_000, market_price_fen=6_000),
        SkuDraft(spec={"颜色": "白"}, price_fen=12_000, market_price_fen=11_000))),
     {"skus.0.market_price_fen": "must be 0 (none) or at least the price",
      "skus.1.market_price_fen": "must be 0 (none) or at least the price"}),
], ids=["another-http-image", "another-padded-value", "another-hidden-text", "new-market-prices-under-price"])
def test_a_changed_value_meets_todays_rules_and_nothing_changes(uow: FakeProductUnitOfWork, changed: ProductDraft,
                                                                details: dict[str, object]) -> None:
    product_id = legacy_product(uow)
    before = uow.products.items[product_id].snapshot()

    with pytest.raises(InvalidInput) as refused:
        service.update_product(uow, actor_id=EDITOR, product_id=product_id, version=1, now=T0, draft=changed)

    assert (refused.value.details, uow.products.items[product_id].snapshot()) == (details, before)


def test_a_new_product_with_the_legacy_values_is_refused(uow: FakeProductUnitOfWork) -> None:
    with pytest.raises(InvalidInput) as refused:
        service.create_product(uow, actor_id=EDITOR, now=T0, draft=as_read())

    assert set(refused.value.details) == {"images", "specs.颜色", "skus.0.market_price_fen", "product"}


def test_a_brand_or_category_keeping_its_http_logo_can_be_renamed_but_not_given_another(
        uow: FakeProductUnitOfWork) -> None:
    brand = service.save_brand(uow, actor_id=EDITOR, brand_id=1, name="华为终端", logo="http://old-cdn.example/b.png",
                               now=T0)
    category = service.save_category(uow, actor_id=EDITOR, category_id=1, name="数码产品",
                                     icon="http://old-cdn.example/c.png", now=T0)
    with pytest.raises(InvalidInput) as logo:
        service.save_brand(uow, actor_id=EDITOR, brand_id=1, name="华为终端", logo="http://x.example/b.png", now=T0)
    with pytest.raises(InvalidInput) as icon:
        service.save_category(uow, actor_id=EDITOR, category_id=1, name="数码产品", icon="http://x.example/c.png",
                              now=T0)

    assert ((brand.name, brand.logo), (category.name, category.icon), logo.value.details, icon.value.details) == (
        ("华为终端", "http://old-cdn.example/b.png"), ("数码产品", "http://old-cdn.example/c.png"),
        {"logo": LOGO_RULE}, {"icon": LOGO_RULE})
