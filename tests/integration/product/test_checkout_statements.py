"""What checkout's catalogue lookup costs the product service on PostgreSQL: one SELECT, whatever it asks for."""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from services.product import service
from services.product.db import SqlProductUnitOfWork, start_mappers
from tests.fixtures.statements import statements
from tests.integration.product.conftest import Shelf, UowFactory

pytestmark = pytest.mark.integration


def test_get_skus_reads_products_and_their_skus_in_one_select(service_engine: Callable[[str], Engine]) -> None:
    start_mappers()
    engine = service_engine("product")
    uow: UowFactory = functools.partial(SqlProductUnitOfWork, engine, "product")
    shelf = Shelf(uow)
    phone, kettle = shelf.product("手机", colours=("黑", "白")), shelf.product("电水壶")
    wanted = shelf.sku_ids(phone) + shelf.sku_ids(kettle)

    with statements(engine) as sent:
        offers = service.get_skus(uow(), sku_ids=wanted)

    assert sent == ["SELECT products"]
    assert [(offer.sku.id, offer.product.id) for offer in offers] == [(wanted[0], phone), (wanted[1], phone),
                                                                     (wanted[2], kettle)]
