"""Product migration 0013 keys the delivery table by provinces' full names, the names product pages look up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from services.common import migrations
from services.common.db import make_engine
from services.product.db import delivery_estimates, settings_audit_log
from tests.fixtures.postgres import drop_databases, migrations_dir, recreate_database, session_database_name

pytestmark = pytest.mark.integration


@pytest.fixture(params=["postgresql", "sqlite"])
def database_at_0012(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A product database of its own at revision 0012 (delivery rows as the seed and staff named them)."""
    if request.param == "sqlite":
        url, name = f"sqlite:///{tmp_path / 'product.db'}", None
    else:
        name = session_database_name("it", "delivery")
        url = recreate_database(name)
    migrations.upgrade(url, migrations_dir("product"), "0012")
    yield url
    if name:
        drop_databases([name])


def test_short_named_rows_take_the_full_name_and_a_full_named_row_wins_over_its_short_one(
        database_at_0012: str) -> None:
    engine = make_engine(database_at_0012)
    with engine.begin() as connection:
        connection.execute(insert(delivery_estimates), [
            {"province": "*", "estimate_days": 4}, {"province": "上海", "estimate_days": 1},
            {"province": "广西", "estimate_days": 3}, {"province": "新疆", "estimate_days": 7},
            {"province": "新疆维吾尔自治区", "estimate_days": 6}, {"province": "浙江省", "estimate_days": 2},
            {"province": "Shanghai", "estimate_days": 5}])

    migrations.upgrade(database_at_0012, migrations_dir("product"), "0013")

    with engine.connect() as connection:
        rows = dict(connection.execute(select(delivery_estimates.c.province, delivery_estimates.c.estimate_days)).all())
        audited = connection.execute(select(settings_audit_log.c.entity, settings_audit_log.c.entity_key,
                                            settings_audit_log.c.actor_id, settings_audit_log.c.action,
                                            settings_audit_log.c.before, settings_audit_log.c.after)
                                     .order_by(settings_audit_log.c.entity_key)).all()
    engine.dispose()
    assert rows == {"*": 4, "上海市": 1, "广西壮族自治区": 3, "新疆维吾尔自治区": 6, "浙江省": 2}
    # A row naming no province could never be looked up, changed or removed again: it goes, recorded.
    assert [tuple(row) for row in audited] == [
        ("delivery", "Shanghai", 0, "delete", {"estimate_days": 5}, None),
        ("delivery", "新疆", 0, "delete", {"estimate_days": 7}, None)]
