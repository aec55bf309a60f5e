"""Order unit fixtures: the in-memory unit of work and in-memory neighbours (catalogue, stock, member, user)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from services.common.errors import DomainError, NotFound
from services.order.domain import Address
from services.order.ports import CatalogSku, CouponLine, StockLine
from services.order.service import OrderSettings
from tests.fakes import FakeOrderUnitOfWork

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
HOME = Address(name="张三", phone="13800138000", province="浙江省", city="杭州市", district="西湖区", detail="文三路1号")


@dataclass
class FakeCatalog:
    skus_by_id: dict[int, CatalogSku] = field(default_factory=dict)

    def put(self, sku_id: int, *, product_id: int = 10, price_fen: int = 1000, on_sale: bool = True,
            stock_status: str = "in_stock") -> CatalogSku:
        sku = CatalogSku(sku_id=sku_id, product_id=product_id, name=f"商品{sku_id}", spec="颜色:黑",
                         price_fen=price_fen, stock_status=stock_status, on_sale=on_sale, category_id=3)
        self.skus_by_id[sku_id] = sku
        return sku

    def skus(self, product_ids: set[int]) -> dict[int, CatalogSku]:
        return {sku_id: sku for sku_id, sku in self.skus_by_id.items() if sku.product_id in product_ids}


@dataclass
class FakeStock:
    available: dict[int, int] = field(default_factory=dict)
    reserved: dict[str, list[StockLine]] = field(default_factory=dict)
    released: list[str] = field(default_factory=list)

    def reserve(self, order_no: str, lines: list[StockLine]) -> None:
        if any(self.available.get(line.sku_id, 0) < line.quantity for line in lines):
            raise DomainError("OUT_OF_STOCK", "not enough stock")
        for line in lines:
            self.available[line.sku_id] -= line.quantity
        self.reserved[order_no] = lines

    def release(self, order_no: str) -> None:
        for line in self.reserved.pop(order_no, []):
            self.available[line.sku_id] += line.quantity
        self.released.append(order_no)


@dataclass
class FakeMembers:
    percent: int = 100
    coupon_fen: int = 0
    points: int = 0
    fen_per_point: float = 0.01  # 100 points = 1 yuan
    balance_fen: int = 0
    locked_coupons: dict[str, int] = field(default_factory=dict)
    locked_points: dict[str, int] = field(default_factory=dict)
    balance_payments: list[tuple[str, int]] = field(default_factory=list)
    fail_points: bool = False

    def discount_percent(self) -> int:
        return self.percent

    def quote_coupon(self, coupon_id: int, lines: list[CouponLine]) -> int:
        return self.coupon_fen

    def lock_coupon(self, order_no: str, coupon_id: int, lines: list[CouponLine]) -> int:
        self.locked_coupons[order_no] = coupon_id
        return self.coupon_fen

    def release_coupon(self, order_no: str) -> None:
        self.locked_coupons.pop(order_no, None)

    def quote_points(self, points: int, payable_fen: int) -> tuple[int, int]:
        usable = min(points, self.points, payable_fen * 100)
        return usable, usable // 100

    def lock_points(self, order_no: str, points: int, payable_fen: int) -> tuple[int, int]:
        if self.fail_points:
            raise DomainError("POINTS_INSUFFICIENT", "not enough points")
        usable, fen = self.quote_points(points, payable_fen)
        self.locked_points[order_no] = usable
        return usable, fen

    def release_points(self, order_no: str) -> None:
        self.locked_points.pop(order_no, None)

    def pay_with_balance(self, order_no: str, amount_fen: int) -> None:
        if self.balance_fen < amount_fen:
            raise DomainError("BALANCE_INSUFFICIENT", "not enough balance")
        self.balance_fen -= amount_fen
        self.balance_payments.append((order_no, amount_fen))


@dataclass
class FakeUsers:
    verified_ids: set[int] = field(default_factory=lambda: {1, 2})
    addresses: dict[tuple[int, int], Address] = field(default_factory=lambda: {(1, 7): HOME, (2, 8): HOME})

    def verified(self, user_id: int) -> bool:
        return user_id in self.verified_ids

    def address(self, user_id: int, address_id: int) -> Address:
        if (user_id, address_id) not in self.addresses:
            raise NotFound("ADDRESS_NOT_FOUND", "no such address")
        return self.addresses[(user_id, address_id)]


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
