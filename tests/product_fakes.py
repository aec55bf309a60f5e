"""In-memory product unit of work (the product section of tests/fakes.py, kept apart to merge cleanly)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Self

from services.common.errors import Conflict
from services.product.domain import (
    SUPPLY_KINDS,
    AuditEntry,
    Brand,
    Category,
    Product,
    ProductFilter,
    RatingSummary,
    Reservation,
    ReservationStatus,
    Review,
    ReviewableLine,
    SettingsAuditEntry,
    Sku,
    SkuOffer,
    Sort,
    StockBalance,
    StockMove,
    StockMovement,
)
from services.product.uow import ProductUnitOfWork
from tests.fakes import FakeUnitOfWork


class FakeCategoryRepository:
    def __init__(self) -> None:
        self.items: list[Category] = []

    def lock_tree(self) -> None:
        pass  # one thread: nothing to serialise

    def add(self, category: Category) -> None:
        category.id = len(self.items) + 1
        self.items.append(category)

    def all(self) -> list[Category]:
        return sorted(self.items, key=lambda c: (c.sort, c.id or 0))

    def get(self, category_id: int) -> Category | None:
        return next((c for c in self.items if c.id == category_id), None)


class FakeBrandRepository:
    def __init__(self) -> None:
        self.items: list[Brand] = []

    def add(self, brand: Brand) -> None:
        brand.id = len(self.items) + 1
        self.items.append(brand)

    def save(self, brand: Brand) -> None:
        pass  # one thread: the use case's own check saw every name

    def all(self) -> list[Brand]:
        return list(self.items)

    def get(self, brand_id: int) -> Brand | None:
        return next((b for b in self.items if b.id == brand_id), None)

    def by_ids(self, brand_ids: Collection[int]) -> list[Brand]:
        return [b for b in self.items if b.id in brand_ids]

    def by_name(self, name: str) -> Brand | None:
        return next((b for b in self.items if b.name == name), None)


class FakeProductRepository:
    def __init__(self) -> None:
        self.items: dict[int, Product] = {}
        self.terms: dict[int, dict[str, int]] = {}
        self._sku_ids = 0

    def add(self, product: Product) -> None:
        if product.id is None:
            product.id = len(self.items) + 1
            self.items[product.id] = product
        for sku in product.skus:
            if sku.id is None:
                self._sku_ids += 1
                sku.id, sku.product_id = self._sku_ids, product.id

    def get(self, product_id: int, *, lock: bool = False) -> Product | None:
        return self.items.get(product_id)

    def by_name(self, name: str) -> Product | None:
        return next((p for p in self.items.values() if p.name == name), None)

    def offers(self, sku_ids: set[int]) -> list[SkuOffer]:
        return [SkuOffer.of(p, sku) for p in self.items.values() for sku in p.skus if sku.id in sku_ids]

    def of_brand(self, brand_id: int, *, lock: bool = False) -> list[Product]:
        return [p for _, p in sorted(self.items.items()) if p.brand_id == brand_id]

    def search(self, query: ProductFilter) -> tuple[list[Product], int]:
        def wanted(p: Product) -> bool:
            return ((not query.visible_only or p.visible) and (not query.status or p.status == query.status)
                    and (query.category_ids is None or p.category_id in query.category_ids)
                    and (query.ids is None or p.id in query.ids)
                    and (not query.brand_id or p.brand_id == query.brand_id)
                    and (not query.price_min_fen or p.price_fen >= query.price_min_fen)
                    and (not query.price_max_fen or p.price_fen <= query.price_max_fen)
                    and (not query.terms or self._score(p, query.terms) > 0))

        found = [p for p in self.items.values() if wanted(p)]
        key = {Sort.RELEVANCE: lambda p: (-self._score(p, query.terms), -p.sales, -(p.id or 0)),
               Sort.NEWEST: lambda p: (-p.created_at.timestamp(), -(p.id or 0)),
               Sort.PRICE_ASC: lambda p: (p.price_fen, -(p.id or 0)),
               Sort.PRICE_DESC: lambda p: (-p.price_fen, -(p.id or 0)),
               Sort.SALES: lambda p: (-p.sales, -(p.id or 0))}[query.sort]
        found.sort(key=key)
        return found[query.offset:query.offset + query.limit], len(found)

    def _score(self, product: Product, terms: tuple[str, ...]) -> int:
        weights = self.terms.get(product.id or 0, {})
        return sum(weights.get(term, 0) for term in terms)

    def index_terms(self, product_id: int, weights: dict[str, int]) -> None:
        self.terms[product_id] = dict(weights)

    def sku(self, sku_id: int) -> tuple[Product, Sku] | None:
        for product in self.items.values():
            for sku in product.skus:
                if sku.id == sku_id:
                    return product, sku
        return None


class FakeAuditLogRepository:
    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def add(self, entry: AuditEntry) -> None:
        entry.id = len(self.entries) + 1
        self.entries.append(entry)

    def of_product(self, product_id: int, offset: int, limit: int) -> tuple[list[AuditEntry], int]:
        found = [e for e in reversed(self.entries) if e.product_id == product_id]
        return found[offset:offset + limit], len(found)


class FakeStockRepository:
    """Stock counts on the fake products' SKUs, and the stock ledger as a list (`movements`)."""

    def __init__(self, products: FakeProductRepository, reservations: FakeReservationRepository) -> None:
        self.products = products
        self.reservations = reservations
        self.ledger: list[StockMovement] = []
        self.locked_products: set[int] = set()  # this transaction's (cleared when the unit of work is entered)

    def lock_products(self, sku_ids: Collection[int]) -> None:
        self.locked_products.update(found[0].id or 0 for found in map(self.products.sku, sku_ids) if found)

    def move(self, movement: StockMovement, *, on_sale_only: bool = False) -> StockMove | None:
        found = self.products.sku(movement.sku_id)
        if found is None or found[1].stock + movement.available < 0:
            return None
        product, sku = found
        if movement.sold and product.id not in self.locked_products:
            raise RuntimeError(f"product {product.id}'s sales moved without lock_products first (lock order)")
        if on_sale_only and not (product.visible and sku.active):
            return None
        sku.stock += movement.available
        sku.sales += movement.sold
        product.sales += movement.sold
        movement.product_id = product.id or 0
        self.record(movement)
        return StockMove(product.id or 0, sku.stock - movement.available, sku.stock)

    def record(self, movement: StockMovement) -> None:
        movement.id = len(self.ledger) + 1
        self.ledger.append(movement)

    def movements(self, sku_id: int, offset: int, limit: int) -> tuple[list[StockMovement], int]:
        found = [m for m in reversed(self.ledger) if m.sku_id == sku_id]
        return found[offset:offset + limit], len(found)

    def last_kinds(self, reference: str, sku_ids: Collection[int]) -> dict[int, str]:
        return {m.sku_id: m.kind for m in self.ledger if m.reference == reference and m.sku_id in sku_ids}

    def check(self) -> tuple[int, list[StockBalance]]:
        balances = []
        for product in self.products.items.values():
            for sku in product.skus:
                rows = [m for m in self.ledger if m.sku_id == sku.id]
                held = sum(r.quantity for r in self.reservations.items
                           if r.sku_id == sku.id and r.status == ReservationStatus.RESERVED)
                balances.append(StockBalance(
                    sku.id or 0, sku.stock, held, sku.sales, sum(m.available for m in rows),
                    sum(m.reserved for m in rows), sum(m.sold for m in rows),
                    sum(m.available + m.reserved + m.sold for m in rows if m.kind in SUPPLY_KINDS)))
        return len(balances), [b for b in balances if not b.balanced]


class FakeReservationRepository:
    def __init__(self) -> None:
        self.items: list[Reservation] = []
        self.released_orders: dict[str, datetime] = {}

    def lock_order(self, order_no: str) -> None:
        pass  # one thread: nothing to serialise

    def mark_released(self, order_no: str, now: datetime) -> None:
        self.released_orders.setdefault(order_no, now)

    def released(self, order_no: str) -> bool:
        return order_no in self.released_orders

    def reserved_units(self, sku_ids: Collection[int]) -> dict[int, int]:
        units: dict[int, int] = {}
        for r in self.items:
            if r.sku_id in sku_ids and r.status == ReservationStatus.RESERVED:
                units[r.sku_id] = units.get(r.sku_id, 0) + r.quantity
        return units

    def add(self, reservation: Reservation) -> None:
        reservation.id = len(self.items) + 1
        self.items.append(reservation)

    def of_order(self, order_no: str) -> list[Reservation]:
        return sorted((r for r in self.items if r.order_no == order_no), key=lambda r: r.sku_id)

    def move(self, reservation_id: int, from_status: str, to_status: str) -> bool:
        reservation = next(r for r in self.items if r.id == reservation_id)
        if reservation.status != from_status:
            return False
        reservation.status = to_status
        return True

    def add_returned(self, reservation_id: int, units: int) -> None:
        next(r for r in self.items if r.id == reservation_id).returned += units

    def expired_orders(self, now: datetime, limit: int,
                       after: tuple[datetime, str] | None = None) -> list[tuple[datetime, str]]:
        earliest: dict[str, datetime] = {}
        for r in self.items:
            if r.status == ReservationStatus.RESERVED and r.expires_at < now:
                earliest[r.order_no] = min(r.expires_at, earliest.get(r.order_no, r.expires_at))
        pairs = sorted((expires_at, order_no) for order_no, expires_at in earliest.items())
        return [pair for pair in pairs if after is None or pair > after][:limit]


class FakeDeliveryRepository:
    def __init__(self) -> None:
        self.days: dict[str, int] = {}

    def estimate_days(self, province: str) -> int | None:
        return self.days.get(province)

    def all(self) -> list[tuple[str, int]]:
        return sorted(self.days.items())

    def set_estimate(self, province: str, days: int) -> int | None:
        before = self.days.get(province)
        self.days[province] = days
        return before


class FakeReviewRepository:
    """Reviews in memory; (order_no, line_id) unique as in the database."""

    def __init__(self) -> None:
        self.lines: list[ReviewableLine] = []
        self.items: list[Review] = []
        self.stars: dict[int, list[int]] = {}

    def record_reviewable(self, line: ReviewableLine) -> bool:
        if self.reviewable(line.order_no, line.line_id) is not None:
            return False
        line.id = len(self.lines) + 1
        self.lines.append(line)
        return True

    def reviewable(self, order_no: str, line_id: int) -> ReviewableLine | None:
        return next((x for x in self.lines if (x.order_no, x.line_id) == (order_no, line_id)), None)

    def add(self, review: Review) -> None:
        if any((r.order_no, r.line_id) == (review.order_no, review.line_id) for r in self.items):
            raise Conflict("REVIEW_EXISTS", "this order line has been reviewed already")
        review.id = len(self.items) + 1
        self.items.append(review)
        self.stars.setdefault(review.product_id, [0] * 5)[review.rating - 1] += 1

    def get(self, review_id: int, *, lock: bool = False) -> Review | None:
        return next((r for r in self.items if r.id == review_id), None)

    def hide(self, review: Review) -> None:
        stars = self.stars[review.product_id]
        stars[review.rating - 1] = max(stars[review.rating - 1] - 1, 0)

    def unhide(self, review: Review) -> None:
        self.stars.setdefault(review.product_id, [0] * 5)[review.rating - 1] += 1

    def for_staff(self, *, product_id: int, rating: int, hidden: bool | None, offset: int,
                  limit: int) -> tuple[list[Review], int]:
        return self._page([r for r in self.items if (not product_id or r.product_id == product_id)
                           and (not rating or r.rating == rating) and (hidden is None or r.hidden == hidden)],
                          offset, limit)

    def of_product(self, product_id: int, offset: int, limit: int) -> tuple[list[Review], int]:
        return self._page([r for r in self.items if r.product_id == product_id and not r.hidden], offset, limit)

    def of_user(self, user_id: int, offset: int, limit: int, order_no: str = "") -> tuple[list[Review], int]:
        return self._page([r for r in self.items if r.user_id == user_id and (not order_no or r.order_no == order_no)],
                          offset, limit)

    def _page(self, found: list[Review], offset: int, limit: int) -> tuple[list[Review], int]:
        found.sort(key=lambda r: (r.created_at, r.id or 0), reverse=True)
        return found[offset:offset + limit], len(found)

    def summary(self, product_id: int) -> RatingSummary:
        return RatingSummary(tuple(self.stars.get(product_id, [0] * 5)))  # type: ignore[arg-type]

class FakeSettingsLogRepository:
    def __init__(self) -> None:
        self.entries: list[SettingsAuditEntry] = []

    def add(self, entry: SettingsAuditEntry) -> None:
        entry.id = len(self.entries) + 1
        self.entries.append(entry)

    def page(self, entity: str, offset: int, limit: int) -> tuple[list[SettingsAuditEntry], int]:
        found = [e for e in reversed(self.entries) if not entity or e.entity == entity]
        return found[offset:offset + limit], len(found)


class FakeProductUnitOfWork(FakeUnitOfWork, ProductUnitOfWork):
    """The product unit of work in memory; pass the same one to every use case of a test."""

    categories: FakeCategoryRepository
    brands: FakeBrandRepository
    products: FakeProductRepository
    audit_log: FakeAuditLogRepository
    stock: FakeStockRepository
    reservations: FakeReservationRepository
    delivery: FakeDeliveryRepository
    reviews: FakeReviewRepository
    settings_log: FakeSettingsLogRepository

    def __init__(self) -> None:
        super().__init__()
        self.categories = FakeCategoryRepository()
        self.brands = FakeBrandRepository()
        self.products = FakeProductRepository()
        self.audit_log = FakeAuditLogRepository()
        self.reservations = FakeReservationRepository()
        self.stock = FakeStockRepository(self.products, self.reservations)
        self.delivery = FakeDeliveryRepository()
        self.reviews = FakeReviewRepository()
        self.settings_log = FakeSettingsLogRepository()

    def __enter__(self) -> Self:
        self.stock.locked_products.clear()  # a new transaction holds no locks
        return super().__enter__()
