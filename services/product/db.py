"""Product service tables, their mapping onto the domain classes, repositories and unit of work."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Self

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Row,
    Select,
    String,
    Table,
    Text,
    UniqueConstraint,
    Update,
    and_,
    bindparam,
    case,
    delete,
    false,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, registry, relationship
from sqlalchemy.orm.attributes import set_committed_value

from services.common import formats
from services.common.db import BigId, Mapping, UTCDateTime, conflict_insert, counted_page, integer_sum, serialize_on
from services.common.errors import Conflict
from services.common.pruning import RELEASE_MARK_DAYS, PastUse
from services.common.uow import SqlUnitOfWork
from services.product.domain import (
    RATINGS,
    SUPPLY_KINDS,
    AuditEntry,
    Brand,
    BrandExists,
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
    Status,
    StockBalance,
    StockMove,
    StockMovement,
)
from services.product.uow import ProductUnitOfWork

metadata = MetaData()

categories = Table(
    "categories", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("parent_id", BigId, ForeignKey("categories.id"), nullable=True, index=True),
    Column("name", String(64), nullable=False),
    Column("icon", String(512), nullable=False, default=""),
    Column("sort", Integer, nullable=False, default=0),
)

brands = Table(
    "brands", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("logo", String(512), nullable=False, default=""),
)

products = Table(
    "products", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("subtitle", String(200), nullable=False, default=""),
    Column("category_id", BigId, ForeignKey("categories.id"), nullable=False, index=True),
    Column("brand_id", BigId, ForeignKey("brands.id"), nullable=False, index=True),
    Column("description", Text, nullable=False, default=""),
    Column("images", JSON, nullable=False),
    Column("params", JSON, nullable=False),
    Column("specs", JSON, nullable=False),
    Column("after_sales_policy", Text, nullable=False, default=""),
    Column("status", String(16), nullable=False),
    Column("on_shelf", Boolean, nullable=False, default=False),
    Column("reject_reason", String(500), nullable=False, default=""),
    Column("price_fen", BigId, nullable=False),
    Column("market_price_fen", BigId, nullable=False, default=0),
    Column("sales", BigId, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("version", Integer, nullable=False, server_default="1"),  # edits so far (migration 0007)
    # the name and first image at the last approval, shown off sale instead of an edit's (migration 0010)
    Column("approved_name", String(100), nullable=False, server_default=""),
    Column("approved_image", String(512), nullable=False, server_default=""),
    # 限购: units one shopper may hold in orders, 0 = no limit (migration 0018)
    Column("max_per_shopper", Integer, nullable=False, server_default="0"),
    Index("ix_products_visible_created", "status", "on_shelf", "created_at"),
)

skus = Table(
    "skus", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("product_id", BigId, ForeignKey("products.id"), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("spec_key", String(formats.SPEC_KEY_MAX), nullable=False),
    Column("price_fen", BigId, nullable=False),
    Column("market_price_fen", BigId, nullable=False, default=0),
    Column("stock", BigId, nullable=False, default=0),
    Column("weight_g", Integer, nullable=False, default=0),
    Column("sales", BigId, nullable=False, default=0),
    Column("active", Boolean, nullable=False, default=True),
    UniqueConstraint("product_id", "spec_key", name="uq_skus_product_spec"),
    CheckConstraint("stock >= 0", name="ck_skus_stock_not_negative"),
    CheckConstraint("price_fen > 0", name="ck_skus_price_positive"),
)

search_terms = Table(
    "search_terms", metadata,
    Column("term", String(32), primary_key=True),
    Column("product_id", BigId, ForeignKey("products.id"), primary_key=True, index=True),
    Column("weight", Integer, nullable=False),
)

audit_log = Table(
    "product_audit_log", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("product_id", BigId, ForeignKey("products.id"), nullable=False, index=True),
    Column("actor_id", BigId, nullable=False),
    Column("action", String(16), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
)

reservations = Table(
    "stock_reservations", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("order_no", String(64), nullable=False),
    Column("sku_id", BigId, ForeignKey("skus.id"), nullable=False),
    Column("quantity", BigId, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("returned", BigId, nullable=False, server_default="0"),  # units restocked by returns (migration 0009)
    UniqueConstraint("order_no", "sku_id", name="uq_stock_reservations_order_sku"),
    Index("ix_stock_reservations_status_expires", "status", "expires_at"),
)

# Orders released before they reserved anything (migration 0015): the order service gave up on the order's ReserveStock
# (its deadline passed while the call waited for a thread, a connection or a lock) and compensated first. The
# reservation may still run after that; finding its order here, under the order's lock, it holds nothing.
released_orders = Table(
    "released_orders", metadata,
    Column("order_no", String(64), primary_key=True),
    Column("released_at", UTCDateTime, nullable=False),
    Index("ix_released_orders_released_at", "released_at"),  # pruning (OWN_ROWS)
)

OWN_ROWS: dict[Table, PastUse] = {  # release marks, pruned RELEASE_MARK_DAYS after
    released_orders: lambda now, settings: released_orders.c.released_at < now - timedelta(days=RELEASE_MARK_DAYS),
}

stock_movements = Table(  # the stock ledger: append-only, one row per change of a SKU's stock (migration 0006)
    "stock_movements", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("sku_id", BigId, ForeignKey("skus.id"), nullable=False),
    Column("product_id", BigId, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("available", BigId, nullable=False),
    Column("reserved", BigId, nullable=False),
    Column("sold", BigId, nullable=False),
    Column("reference", String(64), nullable=False, default="", server_default=""),
    Column("actor_id", BigId, nullable=False, default=0, server_default="0"),
    Column("reason", String(200), nullable=False, default="", server_default=""),
    Column("at", UTCDateTime, nullable=False),
    Index("ix_stock_movements_sku_id", "sku_id", "id"),
)

settings_audit_log = Table(
    "settings_audit_log", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("entity", String(16), nullable=False),
    Column("entity_key", String(64), nullable=False),
    Column("actor_id", BigId, nullable=False),
    Column("action", String(16), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Index("ix_settings_audit_log_entity_id", "entity", "id"),
)

delivery_estimates = Table(
    "delivery_estimates", metadata,
    Column("province", String(32), primary_key=True),
    Column("estimate_days", Integer, nullable=False),
)


reviewable_lines = Table(
    "reviewable_lines", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("order_no", String(64), nullable=False),
    Column("line_id", BigId, nullable=False),
    Column("user_id", BigId, nullable=False),
    Column("product_id", BigId, nullable=False),
    Column("sku_id", BigId, nullable=False),
    Column("completed_at", UTCDateTime, nullable=False),
    UniqueConstraint("order_no", "line_id", name="uq_reviewable_lines_order_line"),
)

reviews = Table(
    "reviews", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("product_id", BigId, ForeignKey("products.id"), nullable=False),
    Column("sku_id", BigId, nullable=False),
    Column("user_id", BigId, nullable=False),
    Column("order_no", String(64), nullable=False),
    Column("line_id", BigId, nullable=False),
    Column("rating", Integer, nullable=False),
    Column("content", String(500), nullable=False),
    Column("images", JSON, nullable=False),
    Column("spec", JSON, nullable=False),
    Column("buyer", String(40), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("hidden", Boolean, nullable=False, server_default=false()),  # by staff (migration 0008)
    Column("hidden_reason", String(200), nullable=False, server_default=""),
    Column("hidden_by", BigId, nullable=True),  # while hidden (migration 0016)
    Column("hidden_at", UTCDateTime, nullable=True),
    UniqueConstraint("order_no", "line_id", name="uq_reviews_order_line"),  # one review per order line
    CheckConstraint("rating BETWEEN 1 AND 5", name="ck_reviews_rating"),
    Index("ix_reviews_product_created", "product_id", "created_at", "id"),
    Index("ix_reviews_user_created", "user_id", "created_at"),
    # Staff's moderation list, newest first, by no filter, stars, a product's stars, or hidden ones (0017).
    Index("ix_reviews_created", "created_at", "id"),
    Index("ix_reviews_rating_created", "rating", "created_at", "id"),
    Index("ix_reviews_product_rating_created", "product_id", "rating", "created_at", "id"),
    Index("ix_reviews_hidden_created", "created_at", "id", postgresql_where=text("hidden"),
          sqlite_where=text("hidden")),
)

product_ratings = Table(  # one row per reviewed product: the detail page reads it instead of counting reviews
    "product_ratings", metadata,
    Column("product_id", BigId, ForeignKey("products.id"), primary_key=True),
    *(Column(f"stars_{n}", BigId, nullable=False, default=0) for n in RATINGS),
)


def _map_classes(mappers: registry) -> None:
    mappers.map_imperatively(Category, categories)
    mappers.map_imperatively(Brand, brands)
    mappers.map_imperatively(Sku, skus)
    mappers.map_imperatively(Product, products, properties={
        "skus": relationship(Sku, order_by=skus.c.id, lazy="selectin", cascade="all, delete-orphan")})
    mappers.map_imperatively(AuditEntry, audit_log)
    mappers.map_imperatively(Reservation, reservations)
    mappers.map_imperatively(StockMovement, stock_movements)
    mappers.map_imperatively(ReviewableLine, reviewable_lines)
    mappers.map_imperatively(Review, reviews)
    mappers.map_imperatively(SettingsAuditEntry, settings_audit_log)


# Maps the domain classes onto the tables (idempotent): build_app and database tests call it, never an import.
start_mappers = Mapping(_map_classes).start


class SqlCategoryRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_tree(self) -> None:
        serialize_on(self.session, "category-tree")

    def add(self, category: Category) -> None:
        self.session.add(category)
        self.session.flush()

    def all(self) -> list[Category]:
        return list(self.session.execute(
            select(Category).order_by(categories.c.sort, categories.c.id)).scalars())

    def get(self, category_id: int) -> Category | None:
        return self.session.get(Category, category_id)


class SqlBrandRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, brand: Brand) -> None:
        self.session.add(brand)
        self.save(brand)

    def save(self, brand: Brand) -> None:
        try:
            self.session.flush()  # the unique index on name decides between racing writers, now
        except IntegrityError:  # the name was taken a moment ago by a transaction that committed first
            raise BrandExists() from None

    def all(self) -> list[Brand]:
        return list(self.session.execute(select(Brand).order_by(brands.c.id)).scalars())

    def get(self, brand_id: int) -> Brand | None:
        return self.session.get(Brand, brand_id)

    def by_ids(self, brand_ids: Collection[int]) -> list[Brand]:
        if not brand_ids:
            return []
        return list(self.session.execute(select(Brand).where(brands.c.id.in_(sorted(brand_ids)))).scalars())

    def by_name(self, name: str) -> Brand | None:
        return self.session.execute(select(Brand).where(brands.c.name == name)).scalar_one_or_none()


class SqlProductRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, product: Product) -> None:
        self.session.add(product)
        self.session.flush()

    def get(self, product_id: int, *, lock: bool = False) -> Product | None:
        product = self.session.get(Product, product_id, with_for_update=lock)
        if product is not None and lock:
            # Its SKU rows too, counts read again: stock moves (reservations, adjustments) lock only the SKU row,
            # and an edit deciding whether a SKU still holds units must see them, and hold them, until it commits.
            self.session.execute(select(Sku).where(skus.c.product_id == product_id).order_by(skus.c.id)
                                 .with_for_update().execution_options(populate_existing=True)).scalars().all()
        return product

    def by_name(self, name: str) -> Product | None:
        return self.session.execute(
            select(Product).where(products.c.name == name).order_by(products.c.id).limit(1)).scalar_one_or_none()

    def offers(self, sku_ids: set[int]) -> list[SkuOffer]:
        if not sku_ids:
            return []
        # Checkout asks for every order: one SELECT of the SKU rows and the few product columns they need,
        # not the products as entities (loading those, their JSON and all their SKUs was a fifth of a reservation).
        rows = self.session.execute(_offers_statement(), {"sku_ids": sorted(sku_ids)})
        return [_offer(row) for row in rows]

    def of_brand(self, brand_id: int, *, lock: bool = False) -> list[Product]:
        query = select(Product).where(products.c.brand_id == brand_id).order_by(products.c.id)
        if lock:  # FOR NO KEY UPDATE: an edit (FOR UPDATE) waits for it, a review's foreign key does not
            query = query.with_for_update(key_share=True)
        return list(self.session.execute(query).scalars())

    def search(self, query: ProductFilter) -> tuple[list[Product], int]:
        conditions: list[Any] = []
        if query.visible_only:
            conditions += [products.c.status == Status.APPROVED, products.c.on_shelf.is_(True)]
        elif query.status:
            conditions.append(products.c.status == query.status)
        if query.category_ids is not None:
            conditions.append(products.c.category_id.in_(sorted(query.category_ids)))
        if query.ids is not None:
            conditions.append(products.c.id.in_(sorted(query.ids)))
        if query.brand_id:
            conditions.append(products.c.brand_id == query.brand_id)
        if query.price_min_fen:
            conditions.append(products.c.price_fen >= query.price_min_fen)
        if query.price_max_fen:
            conditions.append(products.c.price_fen <= query.price_max_fen)
        rows = select(Product).where(*conditions)
        count = select(func.count()).select_from(products).where(*conditions)
        order: list[Any]
        if query.terms:
            score = (select(search_terms.c.product_id, func.sum(search_terms.c.weight).label("score"))
                     .where(search_terms.c.term.in_(query.terms)).group_by(search_terms.c.product_id).subquery())
            rows = rows.join(score, score.c.product_id == products.c.id)
            count = count.join_from(products, score, score.c.product_id == products.c.id)
            order = [score.c.score.desc()]
        else:
            order = []
        order += {
            Sort.RELEVANCE: [products.c.sales.desc()],
            Sort.NEWEST: [products.c.created_at.desc()],
            Sort.PRICE_ASC: [products.c.price_fen.asc()],
            Sort.PRICE_DESC: [products.c.price_fen.desc()],
            Sort.SALES: [products.c.sales.desc()],
        }[query.sort]
        if query.terms and query.sort != Sort.RELEVANCE:
            order = order[1:] + order[:1]  # an explicit sort wins; relevance breaks its ties
        order.append(products.c.id.desc())
        found = list(self.session.execute(rows.order_by(*order).offset(query.offset).limit(query.limit)).scalars())
        return found, self.session.execute(count).scalar_one()

    def index_terms(self, product_id: int, weights: dict[str, int]) -> None:
        self.session.execute(delete(search_terms).where(search_terms.c.product_id == product_id))
        if weights:
            self.session.execute(insert(search_terms), [{"term": term, "product_id": product_id, "weight": weight}
                                                        for term, weight in weights.items()])


class SqlAuditLogRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, entry: AuditEntry) -> None:
        self.session.add(entry)

    def of_product(self, product_id: int, offset: int, limit: int) -> tuple[list[AuditEntry], int]:
        return counted_page(self.session, AuditEntry, audit_log, [audit_log.c.product_id == product_id],
                            [audit_log.c.id.desc()], offset, limit)


def _offer(row: Row[Any]) -> SkuOffer:
    """A row of _offers_statement as the offer shoppers may see (SkuOffer.shown: never an edit's name, image or
    prices)."""
    return SkuOffer.shown(Sku(spec=row.spec, spec_key=row.spec_key, price_fen=row.price_fen,
                              market_price_fen=row.market_price_fen, stock=row.stock, weight_g=row.weight_g,
                              sales=row.sales, active=row.active, product_id=row.product_id, id=row.id),
                          product_id=row.product_id, status=row.status, on_shelf=row.on_shelf, name=row.name,
                          images=row.images, approved_name=row.approved_name, approved_image=row.approved_image,
                          category_id=row.category_id, brand_id=row.brand_id, max_per_shopper=row.max_per_shopper)


SELLABLE = select(products.c.id).where(products.c.status == Status.APPROVED, products.c.on_shelf.is_(True))

# The statements of a stock reservation (every order), built once: building one per call, and SQLAlchemy walking
# it for its cache key, cost 30-90 us of CPU each (a prebuilt statement's cache key is memoised). Built on first use:
# those selecting mapped classes need the mapping (start_mappers), which is never made at import.


@cache
def _offers_statement() -> Select[Any]:
    s, p = skus.c, products.c
    return (select(s.id, s.product_id, s.spec, s.spec_key, s.price_fen, s.market_price_fen, s.stock, s.weight_g,
                   s.sales, s.active, p.name, p.category_id, p.brand_id, p.images, p.status, p.on_shelf,
                   p.approved_name, p.approved_image, p.max_per_shopper)
            .join(products, p.id == s.product_id).where(s.id.in_(bindparam("sku_ids", expanding=True))))


@cache
def _move_statement(short_checked: bool, on_sale_only: bool, available: bool, sold: bool) -> Update:
    """The conditional UPDATE of a SKU's counts; parameters sku_id_, need (units it must have), available, sold."""
    conditions: list[Any] = [skus.c.id == bindparam("sku_id_")]
    if short_checked:
        conditions.append(skus.c.stock >= bindparam("need"))
    if on_sale_only:
        conditions += [skus.c.active.is_(True), skus.c.product_id.in_(SELLABLE)]
    values: dict[str, Any] = {}
    if available:
        values["stock"] = skus.c.stock + bindparam("available")
    if sold:
        values["sales"] = skus.c.sales + bindparam("sold")
    return (update(skus).where(*conditions).values(values or {"stock": skus.c.stock})
            .returning(skus.c.product_id, skus.c.stock, skus.c.sales))


@cache
def _reservations_of_order() -> Select[Any]:
    return select(Reservation).where(reservations.c.order_no == bindparam("order_no")).order_by(reservations.c.sku_id)


class SqlStockRepository:
    """Every change is one conditional UPDATE plus its row in the stock ledger, in the caller's transaction.

    The UPDATE's row lock orders concurrent reservations; the ledger row is an INSERT, so it adds no contention.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.locked_products: set[int] = set()

    def lock_products(self, sku_ids: Collection[int]) -> None:
        if not sku_ids:
            return
        owners = select(skus.c.product_id).where(skus.c.id.in_(sorted(sku_ids)))
        # FOR NO KEY UPDATE: what the sales UPDATE takes anyway (an edit's FOR UPDATE waits for it, a review's or an
        # audit entry's foreign key does not); ORDER BY: PostgreSQL locks the rows in the order it returns them.
        self.locked_products.update(self.session.execute(
            select(products.c.id).where(products.c.id.in_(owners)).order_by(products.c.id)
            .with_for_update(key_share=True)).scalars())

    def move(self, movement: StockMovement, *, on_sale_only: bool = False) -> StockMove | None:
        self.session.flush()  # a product loaded and changed in this transaction is written before the UPDATE
        statement = _move_statement(movement.available < 0, on_sale_only, bool(movement.available), bool(movement.sold))
        row = self.session.execute(statement, {"sku_id_": movement.sku_id, "need": -movement.available,
                                               "available": movement.available, "sold": movement.sold}).one_or_none()
        if row is None:
            return None
        if movement.sold:
            if row.product_id not in self.locked_products:  # the SKU is locked already: the lock order is broken
                raise RuntimeError(f"product {row.product_id}'s sales moved without lock_products first (lock order)")
            self.session.execute(update(products).where(products.c.id == row.product_id)
                                 .values(sales=products.c.sales + movement.sold))
        movement.product_id = row.product_id
        self.record(movement)
        loaded = self.session.identity_map.get((Sku, (movement.sku_id,), None))  # type: ignore[call-overload]
        if loaded is not None:  # the caller may answer with the SKU it loaded: show it the new counts
            set_committed_value(loaded, "stock", row.stock)
            set_committed_value(loaded, "sales", row.sales)
        return StockMove(row.product_id, row.stock - movement.available, row.stock)

    def record(self, movement: StockMovement) -> None:
        self.session.add(movement)

    def movements(self, sku_id: int, offset: int, limit: int) -> tuple[list[StockMovement], int]:
        return counted_page(self.session, StockMovement, stock_movements, [stock_movements.c.sku_id == sku_id],
                            [stock_movements.c.id.desc()], offset, limit)

    def last_kinds(self, reference: str, sku_ids: Collection[int]) -> dict[int, str]:
        m = stock_movements.c
        latest = (select(func.max(m.id)).where(m.sku_id.in_(list(sku_ids)), m.reference == reference)
                  .group_by(m.sku_id).scalar_subquery())
        return {sku_id: kind for sku_id, kind in self.session.execute(
            select(m.sku_id, m.kind).where(m.id.in_(latest)))}

    def check(self) -> tuple[int, list[StockBalance]]:
        m = stock_movements.c
        ledger = (select(m.sku_id, integer_sum(m.available).label("available"),
                         integer_sum(m.reserved).label("reserved"), integer_sum(m.sold).label("sold"),
                         integer_sum(case((m.kind.in_([str(k) for k in SUPPLY_KINDS]), m.available + m.reserved + m.sold),
                                          else_=0)).label("supplied"))
                  .group_by(m.sku_id).subquery())
        held = (select(reservations.c.sku_id, integer_sum(reservations.c.quantity).label("units"))
                .where(reservations.c.status == ReservationStatus.RESERVED).group_by(reservations.c.sku_id).subquery())
        rows = self.session.execute(
            select(skus.c.id, skus.c.stock, skus.c.sales, func.coalesce(held.c.units, 0).label("reserved"),
                   *(func.coalesce(ledger.c[name], 0).label(f"ledger_{name}")
                     for name in ("available", "reserved", "sold", "supplied")))
            .outerjoin(held, held.c.sku_id == skus.c.id).outerjoin(ledger, ledger.c.sku_id == skus.c.id)
            .order_by(skus.c.id)).all()
        found = [StockBalance(row.id, row.stock, row.reserved, row.sales, row.ledger_available, row.ledger_reserved,
                               row.ledger_sold, row.ledger_supplied)
                 for row in rows]
        return len(found), [f for f in found if not f.balanced]


class SqlReservationRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_order(self, order_no: str) -> None:
        serialize_on(self.session, f"stock-reservation:{order_no}")

    def mark_released(self, order_no: str, now: datetime) -> None:
        self.session.execute(conflict_insert(self.session, released_orders)
                             .values(order_no=order_no, released_at=now).on_conflict_do_nothing())

    def released(self, order_no: str) -> bool:
        return self.session.execute(select(released_orders.c.order_no)
                                    .where(released_orders.c.order_no == order_no)).first() is not None

    def reserved_units(self, sku_ids: Collection[int]) -> dict[int, int]:
        if not sku_ids:
            return {}
        r = reservations.c
        return {sku_id: units for sku_id, units in self.session.execute(
            select(r.sku_id, integer_sum(r.quantity)).where(r.sku_id.in_(sorted(sku_ids)),
                                                            r.status == ReservationStatus.RESERVED)
            .group_by(r.sku_id))}

    def add(self, reservation: Reservation) -> None:
        self.session.add(reservation)
        self.session.flush()

    def of_order(self, order_no: str) -> list[Reservation]:
        return list(self.session.execute(_reservations_of_order(), {"order_no": order_no}).scalars())

    def move(self, reservation_id: int, from_status: str, to_status: str) -> bool:
        result = self.session.execute(
            update(reservations).where(reservations.c.id == reservation_id, reservations.c.status == from_status)
            .values(status=to_status))
        changed = result.rowcount == 1  # type: ignore[attr-defined]
        loaded = self.session.identity_map.get((Reservation, (reservation_id,), None))  # type: ignore[call-overload]
        if changed and loaded is not None:
            set_committed_value(loaded, "status", to_status)
        return changed

    def add_returned(self, reservation_id: int, units: int) -> None:
        self.session.execute(update(reservations).where(reservations.c.id == reservation_id)
                             .values(returned=reservations.c.returned + units))
        loaded = self.session.identity_map.get((Reservation, (reservation_id,), None))  # type: ignore[call-overload]
        if loaded is not None:
            set_committed_value(loaded, "returned", loaded.returned + units)

    def expired_orders(self, now: datetime, limit: int,
                       after: tuple[datetime, str] | None = None) -> list[tuple[datetime, str]]:
        earliest = func.min(reservations.c.expires_at)
        query = (select(earliest, reservations.c.order_no)
                 .where(reservations.c.status == ReservationStatus.RESERVED, reservations.c.expires_at < now)
                 .group_by(reservations.c.order_no).order_by(earliest, reservations.c.order_no).limit(limit))
        if after is not None:
            expires_at, order_no = after
            query = query.having(or_(earliest > expires_at,
                                     and_(earliest == expires_at, reservations.c.order_no > order_no)))
        return [(row[0], row[1]) for row in self.session.execute(query)]


class SqlDeliveryRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def estimate_days(self, province: str) -> int | None:
        return self.session.execute(select(delivery_estimates.c.estimate_days)
                                    .where(delivery_estimates.c.province == province)).scalar_one_or_none()

    def all(self) -> list[tuple[str, int]]:
        return [(row.province, row.estimate_days) for row in self.session.execute(
            select(delivery_estimates.c.province, delivery_estimates.c.estimate_days)
            .order_by(delivery_estimates.c.province))]

    def set_estimate(self, province: str, days: int) -> int | None:
        row = delivery_estimates.c
        # RETURNING, not rowcount: psycopg reports -1 rows for INSERT .. ON CONFLICT DO NOTHING. A concurrent
        # first setting of the province makes this INSERT wait for it, then do nothing: the row is updated below.
        created = self.session.execute(conflict_insert(self.session, delivery_estimates)
                                       .values(province=province, estimate_days=days)
                                       .on_conflict_do_nothing(index_elements=["province"])
                                       .returning(row.province)).first()
        if created is not None:
            return None
        before: int = self.session.execute(select(row.estimate_days).where(row.province == province)
                                           .with_for_update()).scalar_one()
        if before != days:
            self.session.execute(update(delivery_estimates).where(row.province == province).values(estimate_days=days))
        return before


NEWEST_REVIEWS_FIRST = (reviews.c.created_at.desc(), reviews.c.id.desc())


class SqlReviewRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def record_reviewable(self, line: ReviewableLine) -> bool:
        values = {c.name: getattr(line, c.name) for c in reviewable_lines.columns if c.name != "id"}
        # RETURNING, not rowcount: psycopg reports -1 rows for INSERT .. ON CONFLICT DO NOTHING.
        statement = conflict_insert(self.session, reviewable_lines).values(values).on_conflict_do_nothing(
            index_elements=["order_no", "line_id"]).returning(reviewable_lines.c.id)
        return self.session.execute(statement).first() is not None

    def reviewable(self, order_no: str, line_id: int) -> ReviewableLine | None:
        return self.session.execute(select(ReviewableLine).where(
            reviewable_lines.c.order_no == order_no, reviewable_lines.c.line_id == line_id)).scalar_one_or_none()

    def add(self, review: Review) -> None:
        try:
            with self.session.begin_nested():
                self.session.add(review)
                self.session.flush()
        except IntegrityError:  # the line's review exists, or was committed a moment ago by a concurrent post
            raise Conflict("REVIEW_EXISTS", "this order line has been reviewed already") from None
        self._count_stars(review)

    def _count_stars(self, review: Review) -> None:
        column = product_ratings.c[f"stars_{review.rating}"]
        statement = conflict_insert(self.session, product_ratings).values(
            product_id=review.product_id, **{f"stars_{n}": int(n == review.rating) for n in RATINGS})
        self.session.execute(statement.on_conflict_do_update(index_elements=["product_id"],
                                                             set_={column.name: column + 1}))

    def get(self, review_id: int, *, lock: bool = False) -> Review | None:
        return self.session.get(Review, review_id, with_for_update=lock)

    def hide(self, review: Review) -> None:
        """Write the review hidden and take its stars out of its product's summary (the row is locked: once)."""
        self.session.flush()
        column = product_ratings.c[f"stars_{review.rating}"]
        self.session.execute(update(product_ratings).where(product_ratings.c.product_id == review.product_id,
                                                           column > 0).values({column.name: column - 1}))

    def unhide(self, review: Review) -> None:
        """Write the review visible and count its stars in its product's summary again (the row is locked: once)."""
        self.session.flush()
        self._count_stars(review)

    def for_staff(self, *, product_id: int, rating: int, hidden: bool | None, offset: int,
                  limit: int) -> tuple[list[Review], int]:
        """A page of every review (0 / None: any), newest first, and the total; each filter has its index (0017)."""
        where = [reviews.c.hidden == hidden] if hidden is not None else []
        if product_id:
            where.append(reviews.c.product_id == product_id)
        if rating:
            where.append(reviews.c.rating == rating)
        return counted_page(self.session, Review, reviews, where, NEWEST_REVIEWS_FIRST, offset, limit)

    def of_product(self, product_id: int, offset: int, limit: int) -> tuple[list[Review], int]:
        """A page of the product's visible reviews, newest first; the total is its rating summary's count (kept with
        every review and hide), not a COUNT over a best-seller's hundreds of thousands of reviews on each view."""
        found = self.session.execute(
            select(Review).where(reviews.c.product_id == product_id, reviews.c.hidden.is_(False))
            .order_by(*NEWEST_REVIEWS_FIRST).offset(offset).limit(limit)).scalars()
        return list(found), self.summary(product_id).count

    def of_user(self, user_id: int, offset: int, limit: int, order_no: str = "") -> tuple[list[Review], int]:
        # An order's: along uq_reviews_order_line (a handful of rows); all: along ix_reviews_user_created.
        where = [reviews.c.user_id == user_id, *([reviews.c.order_no == order_no] if order_no else [])]
        return counted_page(self.session, Review, reviews, where, NEWEST_REVIEWS_FIRST, offset, limit)

    def summary(self, product_id: int) -> RatingSummary:
        row = self.session.execute(select(*(product_ratings.c[f"stars_{n}"] for n in RATINGS))
                                   .where(product_ratings.c.product_id == product_id)).first()
        return RatingSummary(tuple(row)) if row is not None else RatingSummary()  # type: ignore[arg-type]


class SqlSettingsLogRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, entry: SettingsAuditEntry) -> None:
        self.session.add(entry)

    def page(self, entity: str, offset: int, limit: int) -> tuple[list[SettingsAuditEntry], int]:
        where = [settings_audit_log.c.entity == entity] if entity else []
        return counted_page(self.session, SettingsAuditEntry, settings_audit_log, where,
                            [settings_audit_log.c.id.desc()], offset, limit)


class SqlProductUnitOfWork(SqlUnitOfWork, ProductUnitOfWork):
    """The product unit of work on the service database (call start_mappers() first)."""

    def __enter__(self) -> Self:
        super().__enter__()
        self.categories = SqlCategoryRepository(self.session)
        self.brands = SqlBrandRepository(self.session)
        self.products = SqlProductRepository(self.session)
        self.audit_log = SqlAuditLogRepository(self.session)
        self.stock = SqlStockRepository(self.session)
        self.reservations = SqlReservationRepository(self.session)
        self.delivery = SqlDeliveryRepository(self.session)
        self.reviews = SqlReviewRepository(self.session)
        self.settings_log = SqlSettingsLogRepository(self.session)
        return self

    def __exit__(self, *exc: object) -> None:
        # Read use cases end without a commit; detach what they loaded first, or the rollback
        # would expire it and the caller could not read the products it was given.
        self.session.expunge_all()
        super().__exit__(*exc)
