"""What the order use cases need from other services: the catalogue, stock, the member's money, the user."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.order.domain import Address


@dataclass(frozen=True)
class CatalogSku:
    """A SKU as the catalogue shows it now: live price and availability."""

    sku_id: int
    product_id: int
    name: str
    spec: str
    price_fen: int
    stock_status: str  # in_stock | low | sold_out
    on_sale: bool      # the product is approved and on the shelf
    category_id: int = 0
    brand_id: int = 0
    image: str = ""
    category_path: tuple[int, ...] = ()  # category_id's ancestors, root first, then itself (coupons match on it)
    max_per_shopper: int = 0  # 限购: the product's units one shopper may hold in orders; 0 = no limit
    available: int | None = None  # units free to reserve now; None: not told (a product service of the previous release)

    def covers(self, quantity: int) -> bool:
        """Whether the catalogue's word now is that `quantity` units can be reserved: not sold out, and no more
        than `available` when told. Advisory: only the reservation holds units, and it may still refuse."""
        if self.stock_status == "sold_out":
            return False
        return self.available is None or quantity <= self.available


@dataclass(frozen=True)
class StockLine:
    sku_id: int
    quantity: int


@dataclass(frozen=True)
class CouponLine:
    """A line as the member service quotes coupons for it: its total, and its category with the ancestors."""

    category_id: int
    amount_fen: int
    category_path: tuple[int, ...] = ()  # root first, ending with category_id (CatalogSku.category_path)


@dataclass(frozen=True)
class LockedCoupon:
    """A coupon held for an order: what it takes off, and the categories its template limits it to."""

    discount_fen: int
    category_ids: frozenset[int] = frozenset()  # empty: every category

    def applies_to(self, line: CouponLine) -> bool:
        """The member service's rule (CouponTemplate.quote): any line, or one filed under one of its categories at
        any depth (its category or an ancestor on its path is one of them)."""
        return (not self.category_ids or line.category_id in self.category_ids
                or not self.category_ids.isdisjoint(line.category_path))


@dataclass(frozen=True)
class CouponOffer:
    """One of the shopper's coupons that can be used for the lines quoted, and what it would take off."""

    coupon_id: int
    name: str
    discount_fen: int
    valid_to: datetime


@dataclass(frozen=True)
class WalletCharge:
    """What a wallet paid for an order: whose wallet, and how much (bonus credit included)."""

    user_id: int
    amount_fen: int


class Catalog(Protocol):
    def skus(self, sku_ids: set[int]) -> dict[int, CatalogSku]:
        """These SKUs by id, on sale or not (`on_sale`); unknown ids are left out."""


class Stock(Protocol):
    def reserve(self, order_no: str, lines: list[StockLine]) -> dict[int, CatalogSku]:
        """Reserve all lines or none (DomainError SKU_UNAVAILABLE or OUT_OF_STOCK); idempotent per order_no.

        Answers the reserved SKUs as the catalogue had them when their units were held: the order's snapshot."""

    def release(self, order_no: str) -> None:
        """Give the order's reserved stock back; idempotent, no reservation is fine."""


class Members(Protocol):
    """The caller's membership: level discount, coupons, points, balance (all per order_no, idempotent)."""

    def discount_bp(self) -> int:
        """The caller's rate, the share of the price paid (level x plan), in basis points: 9025; 10000 for
        non-members. From a member service older than the field, its floored percent x 100."""

    def quote_coupon(self, coupon_id: int, lines: list[CouponLine]) -> int: ...

    def usable_coupons(self, lines: list[CouponLine]) -> list[CouponOffer]:
        """The caller's coupons usable for these lines now, each with the member service's discount on the lines
        (before the order's level discount caps it: service._offers_as_charged), in no particular order."""

    def lock_coupon(self, order_no: str, coupon_id: int, lines: list[CouponLine]) -> LockedCoupon:
        """Hold the coupon for the order: its discount on these lines, and the categories it applies to."""

    def release_coupon(self, order_no: str) -> None: ...

    def quote_points(self, points: int, payable_fen: int) -> tuple[int, int]:
        """(points usable, their discount in fen) for a wish of `points` on `payable_fen`."""

    def lock_points(self, order_no: str, points: int, payable_fen: int) -> tuple[int, int]: ...

    def release_points(self, order_no: str) -> None: ...

    def pay_with_balance(self, order_no: str, amount_fen: int) -> None: ...

    def void_balance_payment(self, order_no: str) -> WalletCharge | None:
        """What a wallet paid for the order; None when none was charged, and then none ever will be: a charge still
        under way is refused (BALANCE_PAYMENT_VOID). The order service asks as itself."""

    def refund_to_balance(self, refund_no: str, order_no: str, user_id: int, amount_fen: int) -> None:
        """Credit the user's wallet once per refund_no (the order service asks as itself, with or without a caller)."""


class Users(Protocol):
    def buyer_address(self, user_id: int, address_id: int) -> Address | None:
        """The user's address, or None when the user has not verified their identity (the address is then
        not looked at); NotFound ADDRESS_NOT_FOUND for another user's or none. One call for both."""

    def payer_openid(self, user_id: int) -> str:
        """The openid WeChat Pay charges (the user's bound WeChat); "" when not bound."""
