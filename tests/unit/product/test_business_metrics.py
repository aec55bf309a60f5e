"""Stock reservation failures are counted by reason; a reservation that succeeds (or is replayed) counts nothing."""

from __future__ import annotations

import pytest

from services.common.errors import Conflict
from services.product import service
from services.product.domain import OutOfStock, StockLine
from tests.fixtures.metrics import CounterDeltas
from tests.product_fakes import FakeProductUnitOfWork
from tests.unit.product.test_use_cases import T0, on_sale, sku_ids, uow  # noqa: F401  (uow is a fixture)


def test_each_refused_reservation_counts_once_by_reason(uow: FakeProductUnitOfWork) -> None:  # noqa: F811
    black, white = sku_ids(uow, on_sale(uow, stock=3))
    deltas = CounterDeltas()
    for _ in range(2):
        service.reserve_stock(uow, order_no="O1", lines=[StockLine(black, 2)], now=T0)  # the second is a replay
    for _ in range(2):
        with pytest.raises(OutOfStock):
            service.reserve_stock(uow, order_no="O2", lines=[StockLine(white, 1), StockLine(black, 2)], now=T0)
    with pytest.raises(Conflict):
        service.reserve_stock(uow, order_no="O1", lines=[StockLine(black, 1)], now=T0)

    assert deltas() == {'mall_stock_reservation_failures_total{reason="out_of_stock"}': 2,
                        'mall_stock_reservation_failures_total{reason="mismatch"}': 1}
