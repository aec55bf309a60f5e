"""What the product use cases need from storage: repository protocols and the product unit of work."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from services.common.uow import UnitOfWork
from services.product.domain import (
    AuditEntry,
    Brand,
    Category,
    Product,
    ProductFilter,
    RatingSummary,
    Reservation,
    Review,
    ReviewableLine,
    SettingsAuditEntry,
    SkuOffer,
    StockBalance,
    StockMove,
    StockMovement,
)


class CategoryRepository(Protocol):
    def lock_tree(self) -> None:
        """Serialise the transactions that change the category tree, until this one ends."""

    def add(self, category: Category) -> None: ...

    def all(self) -> list[Category]: ...

    def get(self, category_id: int) -> Category | None: ...


class BrandRepository(Protocol):
    def add(self, brand: Brand) -> None: ...

    def all(self) -> list[Brand]: ...

    def get(self, brand_id: int) -> Brand | None: ...

    def by_ids(self, brand_ids: Collection[int]) -> list[Brand]:
        """The brands among `brand_ids`, in one read (unknown ids are left out)."""

    def by_name(self, name: str) -> Brand | None: ...

    def save(self, brand: Brand) -> None:
        """Write a changed brand now: BrandExists when its new name was taken meanwhile (the unique index decides)."""


class ProductRepository(Protocol):
    def add(self, product: Product) -> None:
        """Store a new product (and its SKUs), giving them ids."""

    def get(self, product_id: int, *, lock: bool = False) -> Product | None:
        """`lock` holds the product row until the transaction ends (staff edits serialise)."""

    def by_name(self, name: str) -> Product | None: ...

    def offers(self, sku_ids: set[int]) -> list[SkuOffer]:
        """These SKUs (those that exist) with what checkout needs of their products, in one read."""

    def of_brand(self, brand_id: int, *, lock: bool = False) -> list[Product]:
        """Every product of the brand, whatever its status, by id; `lock` holds their rows until the transaction
        ends (taken in id order, before their search terms: the lock order of services/product/service.py)."""

    def search(self, query: ProductFilter) -> tuple[list[Product], int]:
        """One page of products matching the filter (ranked by term weight when it has terms), and the total."""

    def index_terms(self, product_id: int, weights: dict[str, int]) -> None:
        """Replace the product's search terms."""


class AuditLogRepository(Protocol):
    def add(self, entry: AuditEntry) -> None: ...

    def of_product(self, product_id: int, offset: int, limit: int) -> tuple[list[AuditEntry], int]:
        """Oldest first."""


class StockRepository(Protocol):
    """Stock moves as conditional updates, each appended to the stock ledger: never a read-then-write of a count."""

    def move(self, movement: StockMovement, *, on_sale_only: bool = False) -> StockMove | None:
        """Apply the movement to its SKU in one conditional update and append it to the ledger.

        Its `available` delta goes to the SKU's stock, its `sold` delta to the SKU's and the product's
        sales. Refused (None: nothing changed, nothing recorded) when the stock would go below 0 or,
        with `on_sale_only`, when the SKU is retired or its product not approved and on the shelf. That check
        sees the product as the statement began: an UPDATE that waited for the SKU row re-checks that row only,
        so a caller answering prices reads them again afterwards (reserve_stock).
        """

    def lock_products(self, sku_ids: Collection[int]) -> None:
        """Lock the products of these SKUs, in product id order, until the transaction ends: what a path that moves
        sales (which `move` adds to the product too) does before it touches any SKU row, so that it takes the locks in
        the order an edit does, product before SKU (services/product/service.py, "Lock order"). `move` refuses a
        sales change of a product not locked so (RuntimeError: a bug)."""

    def record(self, movement: StockMovement) -> None:
        """Append a movement whose change is already made (a new SKU's initial stock, inserted with it)."""

    def movements(self, sku_id: int, offset: int, limit: int) -> tuple[list[StockMovement], int]:
        """The SKU's ledger, newest first, and the total."""

    def last_kinds(self, reference: str, sku_ids: Collection[int]) -> dict[int, str]:
        """By SKU among `sku_ids`: the kind of its latest movement made for `reference` (an order number); a SKU
        with none is left out."""

    def check(self) -> tuple[int, list[StockBalance]]:
        """How many SKUs were checked, and those whose counts differ from their ledger's sums."""


class ReservationRepository(Protocol):
    def lock_order(self, order_no: str) -> None:
        """Serialise the transactions that work on one order's reservations."""

    def mark_released(self, order_no: str, now: datetime) -> None:
        """Record that the order was released before it reserved anything (once; again changes nothing)."""

    def released(self, order_no: str) -> bool:
        """Whether the order was released before it reserved anything (`mark_released`)."""

    def reserved_units(self, sku_ids: Collection[int]) -> dict[int, int]:
        """Units of RESERVED reservations per SKU among `sku_ids` (SKUs holding none are left out)."""

    def add(self, reservation: Reservation) -> None: ...

    def of_order(self, order_no: str) -> list[Reservation]: ...

    def move(self, reservation_id: int, from_status: str, to_status: str) -> bool:
        """Change the status only if it still is `from_status`; whether this call changed it."""

    def add_returned(self, reservation_id: int, units: int) -> None:
        """Count `units` more restocked by returns of the reservation's order (under the order's lock)."""

    def expired_orders(self, now: datetime, limit: int,
                       after: tuple[datetime, str] | None = None) -> list[tuple[datetime, str]]:
        """(earliest expiry, order number) of orders with reservations still RESERVED past their expiry, in that
        order; `after` (a pair an earlier page returned) pages past orders a sweep run left held."""


class DeliveryRepository(Protocol):
    def estimate_days(self, province: str) -> int | None: ...

    def all(self) -> list[tuple[str, int]]:
        """(province, days) rows by province."""

    def set_estimate(self, province: str, days: int) -> int | None:
        """Set a province's days, answering those it had (None: the row is new; unchanged days write nothing).
        Concurrent first settings of one province do not fail: the later one changes the row the first created."""


class ReviewRepository(Protocol):
    def record_reviewable(self, line: ReviewableLine) -> bool:
        """Remember a completed line unless it is known already (by order_no and line_id); whether it was new."""

    def reviewable(self, order_no: str, line_id: int) -> ReviewableLine | None: ...

    def add(self, review: Review) -> None:
        """Store a review and count its stars in the product's summary, or raise Conflict REVIEW_EXISTS
        when the line has one already (a unique constraint decides, so concurrent posts cannot both win)."""

    def get(self, review_id: int, *, lock: bool = False) -> Review | None: ...

    def hide(self, review: Review) -> None:
        """Store `review` hidden and take its stars out of its product's summary."""

    def unhide(self, review: Review) -> None:
        """Store `review` visible and count its stars in its product's summary again."""

    def for_staff(self, *, product_id: int, rating: int, hidden: bool | None, offset: int,
                  limit: int) -> tuple[list[Review], int]:
        """Every review matching the filters (0 / None: any), newest first, and the total."""

    def of_product(self, product_id: int, offset: int, limit: int) -> tuple[list[Review], int]:
        """Newest first, and the total."""

    def of_user(self, user_id: int, offset: int, limit: int, order_no: str = "") -> tuple[list[Review], int]:
        """Newest first, and the total; only those of order `order_no` when given."""

    def summary(self, product_id: int) -> RatingSummary: ...


class SettingsLogRepository(Protocol):
    def add(self, entry: SettingsAuditEntry) -> None: ...

    def page(self, entity: str, offset: int, limit: int) -> tuple[list[SettingsAuditEntry], int]:
        """Newest first, of one entity ("" = all), and the total."""


class ProductUnitOfWork(UnitOfWork):
    """The product service's unit of work; its repositories are set on entering it."""

    categories: CategoryRepository
    brands: BrandRepository
    products: ProductRepository
    audit_log: AuditLogRepository
    stock: StockRepository
    reservations: ReservationRepository
    delivery: DeliveryRepository
    reviews: ReviewRepository
    settings_log: SettingsLogRepository
