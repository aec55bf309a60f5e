"""Catalogue settings on PostgreSQL and SQLite: category moves, brand renames re-indexed, the settings audit log,
one catalogue-wide product-changed per change."""

from __future__ import annotations

import pytest
from mall.events.v1.product_events_pb2 import ProductChanged
from sqlalchemy import delete, select

from services.common import events
from services.common.errors import Conflict, InvalidInput
from services.common.events import unpack
from services.common.outbox import outbox
from services.product import service
from tests.integration.product.conftest import Shelf, UowFactory

pytestmark = pytest.mark.integration


def test_a_renamed_brand_finds_its_products_and_the_log_keeps_before_and_after(uow: UowFactory) -> None:
    shelf = Shelf(uow)
    shelf.product("真空 保温杯", brand_id=2)

    service.save_brand(uow(), actor_id=7, brand_id=2, name="膳魔师")
    found = [v.product.name for v in service.search_products(uow(), q="膳魔师").items]
    entries, total = service.settings_audit_log(uow(), entity="brand")

    assert (found, total, entries[0].before, entries[0].after) == (
        ["真空 保温杯"], 1, {"name": "象印", "logo": ""}, {"name": "膳魔师", "logo": ""})


def test_a_duplicate_brand_name_is_a_conflict_and_changes_nothing(uow: UowFactory) -> None:
    Shelf(uow)

    with pytest.raises(Conflict):
        service.save_brand(uow(), actor_id=7, name="华为")

    assert ([b.name for b in service.list_brands(uow())], service.settings_audit_log(uow())[1]) == (["华为", "象印"], 0)


def test_a_moved_category_takes_its_products_into_the_new_branch(uow: UowFactory) -> None:
    shelf = Shelf(uow)  # 数码(1) > 手机(3); 家居(2)
    shelf.product("华为 手机")

    service.save_category(uow(), actor_id=7, category_id=3, name="手机", parent_id=2)

    assert [service.search_products(uow(), category_id=c).total for c in (1, 2)] == [0, 1]


def test_delivery_rows_are_listed_by_province(uow: UowFactory) -> None:
    for province, days in (("西藏", 7), ("*", 3), ("上海", 1)):
        service.set_delivery_estimate(uow(), actor_id=7, province=province, days=days)

    assert sorted((d.province, d.estimate_days) for d in service.delivery_estimates(uow())) == [
        ("*", 3), ("上海市", 1), ("西藏自治区", 7)]


def catalogue_events(uow: UowFactory) -> list[tuple[str, str, int, str, bool]]:
    """The product-changed events in the outbox: (aggregate_id, reason, product_id, producer, catalog_wide)."""
    with uow() as u:
        rows = u.session.execute(select(outbox.c.aggregate_id, outbox.c.envelope)
                                 .where(outbox.c.event_type == "product-changed").order_by(outbox.c.id)).all()
    found = []
    for row in rows:
        envelope = events.decode(row.envelope)
        change = unpack(envelope, ProductChanged)
        found.append((row.aggregate_id, change.reason, change.product_id, envelope.producer, change.catalog_wide))
    return found


def forget_events(uow: UowFactory) -> None:
    with uow() as u:
        u.session.execute(delete(outbox))
        u.commit()


def test_a_brand_rename_publishes_one_catalogue_wide_product_changed_however_many_products_it_has(
        uow: UowFactory) -> None:
    shelf = Shelf(uow)
    for n in range(3):
        shelf.product(f"真空 保温杯 {n}", brand_id=2)
    forget_events(uow)

    service.save_brand(uow(), actor_id=7, brand_id=2, name="膳魔师")

    assert catalogue_events(uow) == [("catalog", "brand", 0, "product", True)]


def test_a_category_move_and_a_rename_each_publish_a_catalogue_wide_product_changed(uow: UowFactory) -> None:
    shelf = Shelf(uow)  # 数码(1) > 手机(3); 家居(2)
    shelf.product("华为 手机")
    forget_events(uow)

    service.save_category(uow(), actor_id=7, category_id=3, name="手机", parent_id=2)
    service.save_category(uow(), actor_id=7, category_id=3, name="智能手机", parent_id=2)

    assert catalogue_events(uow) == [("catalog", "category", 0, "product", True)] * 2


def test_a_refused_setting_publishes_nothing_and_an_unchanged_delivery_row_neither(uow: UowFactory) -> None:
    Shelf(uow)
    service.set_delivery_estimate(uow(), actor_id=7, province="上海", days=1)
    forget_events(uow)

    with pytest.raises(Conflict):
        service.save_brand(uow(), actor_id=7, brand_id=2, name="华为")
    with pytest.raises(InvalidInput):
        service.save_category(uow(), actor_id=7, category_id=1, name="数码", parent_id=3)  # below itself
    service.set_delivery_estimate(uow(), actor_id=7, province="上海", days=1)
    service.set_delivery_estimate(uow(), actor_id=7, province="西藏", days=7)

    assert catalogue_events(uow) == [("catalog", "delivery", 0, "product", True)]
