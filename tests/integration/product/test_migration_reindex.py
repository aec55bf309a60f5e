"""Product migration 0011 rebuilds every product's search terms with the NFKC-normalising tokenizer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, insert, select

from services.common import migrations
from services.common.db import make_engine
from services.product.db import brands, categories, products, search_terms
from services.product.search import query_terms
from tests.fixtures.postgres import drop_databases, migrations_dir, recreate_database, session_database_name

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(params=["postgresql", "sqlite"])
def database_at_0010(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A product database of its own at revision 0010 (search terms as indexed before NFKC normalisation)."""
    if request.param == "sqlite":
        url, name = f"sqlite:///{tmp_path / 'product.db'}", None
    else:
        name = session_database_name("it", "reindex")
        url = recreate_database(name)
    migrations.upgrade(url, migrations_dir("product"), "0010")
    yield url
    if name:
        drop_databases([name])


def add_product(engine: Engine, *, name: str, description: str, old_terms: dict[str, int]) -> int:
    """A product with the terms the tokenizer without NFKC stored for it (full-width runs kept as they were)."""
    with engine.begin() as connection:
        product_id = connection.execute(insert(products).values(
            name=name, description=description, category_id=1, brand_id=1, images=[], params=[], specs=[],
            status="APPROVED", on_shelf=True, price_fen=100, created_at=T0, updated_at=T0)).inserted_primary_key[0]
        connection.execute(insert(search_terms), [{"term": term, "product_id": product_id, "weight": weight}
                                                  for term, weight in old_terms.items()])
    return product_id


def found(engine: Engine, q: str) -> dict[int, int]:
    """product id -> score of a keyword search for `q` (the terms and sum the product search ranks by)."""
    with engine.connect() as connection:
        return dict(connection.execute(
            select(search_terms.c.product_id, func.sum(search_terms.c.weight))
            .where(search_terms.c.term.in_(query_terms(q))).group_by(search_terms.c.product_id)).all())


def terms_of(engine: Engine, product_id: int) -> dict[str, int]:
    with engine.connect() as connection:
        return dict(connection.execute(select(search_terms.c.term, search_terms.c.weight)
                                       .where(search_terms.c.product_id == product_id)).all())


def test_migration_0011_reindexes_full_width_names_so_normalised_queries_find_them(database_at_0010: str) -> None:
    engine = make_engine(database_at_0010)
    try:
        with engine.begin() as connection:
            connection.execute(insert(categories).values(name="数码"))
            connection.execute(insert(brands).values(name="华为"))
        phone = add_product(engine, name="华为 Ｍａｔｅ６０", description="",
                            old_terms={"华为": 12, "ｍａｔｅ６０": 8})
        case = add_product(engine, name="手机壳", description="适配ｉＰｈｏｎｅ１５",
                           old_terms={"手机": 8, "壳": 8, "华为": 4, "适配": 1, "ｉｐｈｏｎｅ１５": 1})
        before = [found(engine, q) for q in ("Ｍａｔｅ６０", "mate60", "iphone")]

        migrations.upgrade(database_at_0010, migrations_dir("product"))

        after = [found(engine, q) for q in ("Ｍａｔｅ６０", "mate60", "iphone")]
        assert (before, after) == ([{}, {}, {}], [{phone: 24}, {phone: 24}, {case: 1}])
        assert terms_of(engine, phone) == {"华为": 12, "mate60": 8, "mate": 8, "60": 8}
        assert terms_of(engine, case) == {"手机": 8, "壳": 8, "华为": 4, "适配": 1, "iphone15": 1, "iphone": 1,
                                          "15": 1}
    finally:
        engine.dispose()
