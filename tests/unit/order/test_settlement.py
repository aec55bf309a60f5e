"""Stock settlement on the order's own events: paid confirms, cancelled releases, refusals dead-letter."""

from __future__ import annotations

import pytest
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.order_events_pb2 import OrderCancelled, OrderPaid

from services.common.errors import DomainError, ErrorKind
from services.common.events import InvalidEvent
from services.order.ports import StockLine
from services.order.settlement import handlers
from tests.fakes import FakeStock


def test_a_paid_order_confirms_and_a_cancelled_one_releases_its_reservation() -> None:
    stock = FakeStock({101: 5})
    stock.reserve("N1", [StockLine(101, 2)])
    stock.reserve("N2", [StockLine(101, 1)])
    settle = handlers(stock)
    settle[OrderPaid](None, OrderPaid(order_no="N1"), EventEnvelope())
    settle[OrderCancelled](None, OrderCancelled(order_no="N2"), EventEnvelope())
    assert (stock.confirmed, stock.released, stock.available[101]) == (["N1"], ["N2"], 3)


def test_a_refused_confirmation_is_dead_lettered_and_an_unavailable_product_service_retried() -> None:
    stock = FakeStock()
    with pytest.raises(InvalidEvent):
        handlers(stock)[OrderPaid](None, OrderPaid(order_no="gone"), EventEnvelope())

    class Down(FakeStock):
        def release(self, order_no: str) -> None:
            raise DomainError("PRODUCT_UNAVAILABLE", "down", kind=ErrorKind.UNAVAILABLE)

    with pytest.raises(DomainError):
        handlers(Down())[OrderCancelled](None, OrderCancelled(order_no="N"), EventEnvelope())
