"""Catalogue settings on the in-memory unit of work: categories, brands, the delivery table, their audit log."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.common import formats
from services.common.errors import Conflict, InvalidInput, NotFound
from services.product import seed, service
from services.product.domain import URL_MAX, Brand, Category, ProductDraft, SkuDraft
from tests.product_fakes import FakeProductUnitOfWork

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
OPERATOR = 7


@pytest.fixture
def uow() -> FakeProductUnitOfWork:
    uow = FakeProductUnitOfWork()
    uow.categories.add(Category("数码"))
    uow.categories.add(Category("手机", parent_id=1))
    uow.brands.add(Brand("华为"))
    uow.brands.add(Brand("象印"))
    return uow


def logged(uow: FakeProductUnitOfWork) -> list[tuple[str, str, int, str, object, object]]:
    return [(e.entity, e.entity_key, e.actor_id, e.action, e.before, e.after) for e in uow.settings_log.entries]


def test_a_category_is_created_then_moved_and_both_are_audited(uow: FakeProductUnitOfWork) -> None:
    created = service.save_category(uow, actor_id=OPERATOR, name="平板", parent_id=1, now=T0)
    service.save_category(uow, actor_id=OPERATOR, category_id=created.id or 0, name="平板电脑", sort=2, now=T0)

    assert (uow.categories.get(3).name, uow.categories.get(3).parent_id, logged(uow)) == ("平板电脑", None, [  # type: ignore[union-attr]
        ("category", "3", OPERATOR, "create", None, {"name": "平板", "parent_id": 1, "icon": "", "sort": 0}),
        ("category", "3", OPERATOR, "update", {"name": "平板", "parent_id": 1, "icon": "", "sort": 0},
         {"name": "平板电脑", "parent_id": None, "icon": "", "sort": 2})])


def test_a_category_cannot_move_below_itself(uow: FakeProductUnitOfWork) -> None:
    with pytest.raises(InvalidInput) as refused:
        service.save_category(uow, actor_id=OPERATOR, category_id=1, name="数码", parent_id=2)

    assert (refused.value.details, uow.categories.get(1).parent_id, logged(uow)) == (  # type: ignore[union-attr]
        {"parent_id": "a category cannot sit below itself"}, None, [])


def test_an_unknown_parent_or_category_is_refused(uow: FakeProductUnitOfWork) -> None:
    with pytest.raises(InvalidInput) as unknown_parent:
        service.save_category(uow, actor_id=OPERATOR, name="平板", parent_id=99)
    with pytest.raises(NotFound):
        service.save_category(uow, actor_id=OPERATOR, category_id=99, name="平板")

    assert unknown_parent.value.details == {"parent_id": "no such category"}


@pytest.mark.parametrize("name", ["数码\u202e品精", "数\u200b码", "数\n码", "数\x00码"],
                         ids=["bidi-override", "zero-width", "newline", "nul"])
def test_category_and_brand_names_with_hidden_characters_are_refused_as_product_names_are(
        uow: FakeProductUnitOfWork, name: str) -> None:
    with pytest.raises(InvalidInput) as category:
        service.save_category(uow, actor_id=OPERATOR, name=name, now=T0)
    with pytest.raises(InvalidInput) as brand:
        service.save_brand(uow, actor_id=OPERATOR, name=name, now=T0)

    assert (category.value.code, category.value.details, brand.value.code) == (
        "CATEGORY_INVALID", {"name": "must not contain control, bidirectional or zero-width characters"},
        "BRAND_INVALID")
    assert ([c.name for c in uow.categories.all()], len(uow.brands.all())) == (["数码", "手机"], 2)


def test_a_brand_name_is_unique(uow: FakeProductUnitOfWork) -> None:
    with pytest.raises(Conflict) as taken:
        service.save_brand(uow, actor_id=OPERATOR, brand_id=2, name="华为")

    assert (taken.value.code, uow.brands.get(2).name) == ("BRAND_EXISTS", "象印")  # type: ignore[union-attr]


def test_a_renamed_brand_is_found_by_its_new_name(uow: FakeProductUnitOfWork) -> None:
    product = service.create_product(uow, actor_id=OPERATOR, now=T0, draft=ProductDraft(
        name="保温杯", category_id=2, brand_id=2, skus=(SkuDraft(spec={}, price_fen=9_900),))).product

    service.save_brand(uow, actor_id=OPERATOR, brand_id=2, name="膳魔师", logo="/media/t.png", now=T0)

    assert ("膳魔师" in uow.products.terms[product.id or 0], "象印" in uow.products.terms[product.id or 0],
            logged(uow)[-1][3:]) == (True, False, ("update", {"name": "象印", "logo": ""},
                                                   {"name": "膳魔师", "logo": "/media/t.png"}))


def test_a_delivery_change_is_audited_and_an_unchanged_one_is_not(uow: FakeProductUnitOfWork) -> None:
    service.set_delivery_estimate(uow, actor_id=OPERATOR, province="西藏", days=7, now=T0)
    service.set_delivery_estimate(uow, actor_id=OPERATOR, province="西藏", days=7, now=T0)
    service.set_delivery_estimate(uow, actor_id=OPERATOR, province="西藏", days=9, now=T0)

    assert ([(d.province, d.estimate_days) for d in service.delivery_estimates(uow)], logged(uow)) == (
        [("西藏自治区", 9)], [("delivery", "西藏自治区", OPERATOR, "create", None, {"estimate_days": 7}),
                          ("delivery", "西藏自治区", OPERATOR, "update", {"estimate_days": 7}, {"estimate_days": 9})])


def test_a_delivery_row_named_short_or_full_is_one_row_by_the_full_name(uow: FakeProductUnitOfWork) -> None:
    saved = service.set_delivery_estimate(uow, actor_id=OPERATOR, province="广西", days=3, now=T0)
    service.set_delivery_estimate(uow, actor_id=OPERATOR, province="广西壮族自治区", days=4, now=T0)
    service.set_delivery_estimate(uow, actor_id=OPERATOR, province="*", days=5, now=T0)

    assert (saved.province, [(d.province, d.estimate_days) for d in service.delivery_estimates(uow)]) == (
        "广西壮族自治区", [("*", 5), ("广西壮族自治区", 4)])


@pytest.mark.parametrize("province", [" ", "", "上海 ", "Shanghai", "火星", "广西壮族"])
def test_bad_delivery_rows_name_their_fields(uow: FakeProductUnitOfWork, province: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        service.set_delivery_estimate(uow, actor_id=OPERATOR, province=province, days=61)

    assert (refused.value.code, sorted(refused.value.details), service.delivery_estimates(uow)) == (
        "DELIVERY_INVALID", ["estimate_days", "province"], [])


def test_a_delivery_row_naming_no_province_is_refused(uow: FakeProductUnitOfWork) -> None:
    with pytest.raises(InvalidInput) as refused:
        service.set_delivery_estimate(uow, actor_id=OPERATOR, province="Shanghai", days=1)

    assert (refused.value.details, service.delivery_estimates(uow), logged(uow)) == (
        {"province": "must be a provincial-level division, by its full name (上海市, 广东省, 广西壮族自治区) or its "
                     "short one (上海, 广东, 广西), or \"*\""}, [], [])


def test_the_settings_log_pages_newest_first_by_entity(uow: FakeProductUnitOfWork) -> None:
    service.save_brand(uow, actor_id=OPERATOR, name="小米", now=T0)
    for days in (1, 2, 3):
        service.set_delivery_estimate(uow, actor_id=OPERATOR, province="上海", days=days, now=T0)

    entries, total = service.settings_audit_log(uow, entity="delivery", offset=0, limit=2)

    assert ([e.after for e in entries], total) == ([{"estimate_days": 3}, {"estimate_days": 2}], 3)


@pytest.mark.parametrize("url", ["javascript:alert(1)", "http://tracker.example/i.png", "/media/../secret"])
def test_a_category_icon_or_brand_logo_that_is_not_our_media_or_https_is_refused(uow: FakeProductUnitOfWork,
                                                                                url: str) -> None:
    with pytest.raises(InvalidInput) as icon:
        service.save_category(uow, actor_id=OPERATOR, name="平板", icon=url, now=T0)
    with pytest.raises(InvalidInput) as logo:
        service.save_brand(uow, actor_id=OPERATOR, name="膳魔师", logo=url, now=T0)

    assert (icon.value.details, logo.value.details) == (
        {"icon": f"at most {URL_MAX} characters: a /media/... path or an https:// URL"},
        {"logo": f"at most {URL_MAX} characters: a /media/... path or an https:// URL"})


def test_the_demo_delivery_table_names_every_mainland_province_as_addresses_do(uow: FakeProductUnitOfWork) -> None:
    for province, days in seed.PROVINCE_DAYS.items():  # as seed_catalog sets them
        service.set_delivery_estimate(uow, province=province, days=days)

    assert {d.province for d in service.delivery_estimates(uow)} == {"*", *formats.PROVINCES} - {
        "台湾省", "香港特别行政区", "澳门特别行政区"}


def test_a_category_create_retried_with_its_key_answers_the_first_category_as_it_is_now(
        uow: FakeProductUnitOfWork) -> None:
    first = service.save_category(uow, actor_id=OPERATOR, name="平板", parent_id=1, idempotency_key="form-1", now=T0)
    service.save_category(uow, actor_id=OPERATOR, category_id=first.id or 0, name="平板电脑", parent_id=1, now=T0)

    retried = service.save_category(uow, actor_id=OPERATOR, name="平板", parent_id=1, idempotency_key="form-1",
                                    now=T0)

    assert ((retried.id, retried.name), len(uow.categories.all()), [e[3] for e in logged(uow)]) == (
        (3, "平板电脑"), 3, ["create", "update"])


def test_a_category_key_reused_for_other_fields_is_a_conflict_and_creates_nothing(uow: FakeProductUnitOfWork) -> None:
    service.save_category(uow, actor_id=OPERATOR, name="平板", parent_id=1, idempotency_key="form-1", now=T0)

    with pytest.raises(Conflict) as reused:
        service.save_category(uow, actor_id=OPERATOR, name="平板", parent_id=1, sort=1, idempotency_key="form-1",
                              now=T0)

    assert (reused.value.code, len(uow.categories.all()), len(logged(uow))) == ("IDEMPOTENCY_KEY_REUSED", 3, 1)


def test_a_brand_create_retried_with_its_key_answers_the_first_brand_not_brand_exists(
        uow: FakeProductUnitOfWork) -> None:
    first = service.save_brand(uow, actor_id=OPERATOR, name="小米", logo="/media/m.png", idempotency_key="form-1",
                               now=T0)
    retried = service.save_brand(uow, actor_id=OPERATOR, name="小米", logo="/media/m.png", idempotency_key="form-1",
                                 now=T0)

    assert ((first.id, retried.id), len(uow.brands.all()), len(logged(uow))) == ((3, 3), 3, 1)


def test_a_brand_key_reused_for_other_fields_is_a_conflict_and_creates_nothing(uow: FakeProductUnitOfWork) -> None:
    service.save_brand(uow, actor_id=OPERATOR, name="小米", idempotency_key="form-1", now=T0)

    with pytest.raises(Conflict) as reused:
        service.save_brand(uow, actor_id=OPERATOR, name="红米", idempotency_key="form-1", now=T0)

    assert (reused.value.code, [b.name for b in uow.brands.all()]) == ("IDEMPOTENCY_KEY_REUSED", ["华为", "象印", "小米"])


def test_one_key_of_two_staff_members_creates_a_category_each(uow: FakeProductUnitOfWork) -> None:
    mine = service.save_category(uow, actor_id=OPERATOR, name="平板", idempotency_key="form-1", now=T0)
    theirs = service.save_category(uow, actor_id=OPERATOR + 1, name="平板", idempotency_key="form-1", now=T0)

    assert (mine.id, theirs.id) == (3, 4)


def test_an_edit_takes_no_idempotency_key(uow: FakeProductUnitOfWork) -> None:
    with pytest.raises(ValueError):
        service.save_category(uow, actor_id=OPERATOR, category_id=2, name="手机", idempotency_key="form-1")
    with pytest.raises(ValueError):
        service.save_brand(uow, actor_id=OPERATOR, brand_id=2, name="象印", idempotency_key="form-1")

    assert logged(uow) == []
