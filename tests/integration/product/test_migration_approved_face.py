"""Product migration 0010 gives every product once approved the name and first image of its last approval."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select

from services.common import migrations
from services.common.db import make_engine
from services.product.db import audit_log, brands, categories, products
from tests.fixtures.postgres import drop_databases, migrations_dir, recreate_database, session_database_name

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(params=["postgresql", "sqlite"])
def database_at_0009(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A product database of its own at revision 0009 (before products kept their approved name and image)."""
    if request.param == "sqlite":
        url, name = f"sqlite:///{tmp_path / 'product.db'}", None
    else:
        name = session_database_name("it", "approvedface")
        url = recreate_database(name)
    migrations.upgrade(url, migrations_dir("product"), "0009")
    yield url
    if name:
        drop_databases([name])


def add_product(engine: Engine, name: str, status: str, images: list[str],
                approvals: Sequence[tuple[str, list[str]]] = ()) -> int:
    """A product as stored before 0010, with an audit log "approve" entry per approval (name and images then)."""
    with engine.begin() as connection:
        product_id = connection.execute(insert(products).values(
            name=name, category_id=1, brand_id=1, images=images, params=[], specs=[], status=status,
            on_shelf=status == "APPROVED", price_fen=100, created_at=T0, updated_at=T0)).inserted_primary_key[0]
        for approved_name, approved_images in approvals:
            connection.execute(insert(audit_log).values(
                product_id=product_id, actor_id=1, action="approve", at=T0,
                after={"name": approved_name, "images": approved_images, "status": "APPROVED"}))
        connection.execute(insert(audit_log).values(product_id=product_id, actor_id=7, action="update", at=T0,
                                                    after={"name": name, "images": images, "status": status}))
    return product_id


def test_migration_0010_keeps_the_last_approved_name_and_image_of_products_edited_since(
        database_at_0009: str) -> None:
    engine = make_engine(database_at_0009)
    try:
        with engine.begin() as connection:
            connection.execute(insert(categories).values(name="数码"))
            connection.execute(insert(brands).values(name="华为"))
        live = add_product(engine, "华为 Mate 60", "APPROVED", ["/media/live.jpg"], [("旧名", ["/media/old.jpg"])])
        edited = add_product(engine, "未审核的名字", "PENDING_AUDIT", ["/media/edit.jpg"],
                             [("第一版", ["/media/v1.jpg"]), ("第二版", [])])
        never = add_product(engine, "草稿", "DRAFT", ["/media/draft.jpg"])

        migrations.upgrade(database_at_0009, migrations_dir("product"))

        with engine.connect() as connection:
            faces = {row.id: (row.approved_name, row.approved_image) for row in connection.execute(
                select(products.c.id, products.c.approved_name, products.c.approved_image))}
        # an approved product is as approved now; one edited since as at its latest approval; a draft has none
        assert faces == {
            live: ("华为 Mate 60", "/media/live.jpg"), edited: ("第二版", ""), never: ("", "")}
    finally:
        engine.dispose()
