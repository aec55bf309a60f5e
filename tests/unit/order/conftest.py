"""Order unit fixtures: the in-memory unit of work and in-memory neighbours (catalogue, stock, member, user)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from services.order.service import OrderSettings
from tests.fakes import HOME, FakeCatalog, FakeMembers, FakeOrderUnitOfWork, FakeStock, FakeUsers

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
__all__ = ["HOME", "NOW", "Shop"]


@dataclass
class Shop:
    uow: FakeOrderUnitOfWork
    catalog: FakeCatalog
    stock: FakeStock
    members: FakeMembers
    users: FakeUsers
    settings: OrderSettings


@pytest.fixture
def shop() -> Shop:
    catalog = FakeCatalog()
    catalog.put(101, price_fen=1999)
    catalog.put(102, price_fen=500)
    return Shop(FakeOrderUnitOfWork(), catalog, FakeStock({101: 10, 102: 100}), FakeMembers(), FakeUsers(),
                OrderSettings(pay_minutes=30, notify_url="https://mall.example/api/v1/payments/wechat/notify"))
