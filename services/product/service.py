"""Product use cases: each opens the unit of work, works on the domain, commits.

Lock order. Every path that locks product, SKU or reservation rows takes them in this order, so no two can wait
for each other in a cycle (a deadlock PostgreSQL would end by failing one: the admin's edit answered 503, or the
order-paid consumer retrying):

1. the order's advisory lock (`reservations.lock_order`), first in every path that works on an order's
   reservations; its reservation rows are written only under it, so they are never waited for in a cycle;
2. product rows, in id order: an edit, a status change or a stock adjustment locks its product
   (`products.get(lock=True)`); a path that moves sales (confirm, late sale, paid cancellation, return: `move` adds
   them to the product's `sales` too) locks the products of all its SKUs at once (`stock.lock_products`) before it
   touches any SKU row;
3. SKU rows, in id order: an edit and an adjustment lock their product's SKUs (with the product, above); the
   conditional UPDATEs of a reservation, release, confirmation or return go through the SKUs in id order.

Rows written after these (search terms, audit entries, ledger and outbox rows) come last; a brand rename locks its
products (by id) before it rewrites their search terms, whose foreign key needs each product row. A reservation
(checkout) and a release lock SKU rows only, never a product row, so a busy product's checkouts never queue on it. `move` refuses a sales change of a product not locked first (a bug: RuntimeError). Proven on PostgreSQL
by tests/integration/product/test_lock_order.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import NoReturn

from mall.events.v1.product_events_pb2 import ProductChanged, ProductViewed

from services.common import formats
from services.common.db import utcnow
from services.common.errors import Conflict, DomainError, ErrorKind, InvalidInput, NotFound
from services.common.events import timestamp
from services.common.idempotency import canonical
from services.common.orders import AWAITING_PAYMENT, GOING_AHEAD, Orders, OrderState
from services.common.uow import PageAnswers, RoundBudget, each_page
from services.product import search
from services.product.domain import (
    DEFAULT_DELIVERY_DAYS,
    DEFAULT_PROVINCE,
    MAX_DELIVERY_DAYS,
    RESERVATION_TTL,
    AuditEntry,
    Brand,
    BrandExists,
    Category,
    MovementKind,
    OutOfStock,
    Product,
    ProductDraft,
    ProductFilter,
    RatingSummary,
    Reservation,
    ReservationStatus,
    SettingsAuditEntry,
    Sku,
    SkuOffer,
    Sort,
    Status,
    StockBalance,
    StockLine,
    StockMove,
    StockMovement,
    category_paths,
    check_brand,
    check_category,
    delivery_province,
    descendants,
    merge_lines,
)
from services.product.metrics import (
    STOCK_OVERSOLD_UNITS,
    STOCK_RESERVATION_FAILURES,
    STOCK_RESERVATIONS_CONFIRMED_BY_SWEEP,
    STOCK_RESERVATIONS_DEFERRED,
    STOCK_RESERVATIONS_EXPIRED,
)
from services.product.uow import ProductUnitOfWork

log = logging.getLogger(__name__)


@dataclass
class CategoryNode:
    category: Category
    children: list[CategoryNode] = field(default_factory=list)


@dataclass(frozen=True)
class Delivery:
    province: str
    estimate_days: int


@dataclass(frozen=True)
class ProductView:
    """A product with what its replies show beside it."""

    product: Product
    brand: Brand
    rating: RatingSummary = RatingSummary()   # filled in the detail view only (services/product/reviews.py)
    delivery: Delivery | None = None


@dataclass(frozen=True)
class ProductPage:
    items: list[ProductView]
    total: int


@dataclass(frozen=True)
class ReservationResult:
    order_no: str
    lines: list[StockLine]
    expires_at: datetime | None
    status: str
    offers: list[SkuOffer] = field(default_factory=list)  # the reserved SKUs as read in the reserving transaction


# Catalogue (shoppers)

def list_categories(uow: ProductUnitOfWork) -> list[CategoryNode]:
    """The category tree: roots in display order, each with its children at any depth."""
    with uow:
        everything = uow.categories.all()
    nodes = {category.id: CategoryNode(category) for category in everything}
    roots: list[CategoryNode] = []
    for category in everything:
        parent = nodes.get(category.parent_id) if category.parent_id is not None else None
        (parent.children if parent is not None else roots).append(nodes[category.id])
    return roots


def list_brands(uow: ProductUnitOfWork) -> list[Brand]:
    with uow:
        return uow.brands.all()


MAX_SEARCH_IDS = 100  # a page of a list: ?page_size is at most 100


def search_products(uow: ProductUnitOfWork, *, category_id: int = 0, brand_id: int = 0, price_min_fen: int = 0,
                    price_max_fen: int = 0, q: str = "", sort: str = "", offset: int = 0, limit: int = 20,
                    staff: bool = False, status: str = "", ids: Collection[int] = ()) -> ProductPage:
    """One page of the catalogue: for shoppers only approved, on-shelf products; staff see every status. `ids`
    keeps only those products (a browsing history's page: the ones still on sale)."""
    if len(ids) > MAX_SEARCH_IDS:
        raise InvalidInput("IDS_TOO_MANY", f"at most {MAX_SEARCH_IDS} product ids", details={"ids": "too many"})
    q = q.replace("\x00", "")
    chosen = _sort(sort, has_query=bool(q.strip()))
    if status and status not in set(Status):
        raise InvalidInput("STATUS_INVALID", "unknown product status", details={"status": "invalid"})
    if price_min_fen < 0 or price_max_fen < 0:
        raise InvalidInput("PRICE_RANGE_INVALID", "prices are 0 or more", details={"price_min_fen": "invalid"})
    if price_min_fen and price_max_fen and price_min_fen > price_max_fen:  # an empty page would look like no stock
        raise InvalidInput("PRICE_RANGE_INVALID", "the minimum price is above the maximum",
                           details={"price_min_fen": "must not be above price_max_fen"})
    terms = search.query_terms(q) if q.strip() else ()
    if q.strip() and not terms:
        return ProductPage([], 0)
    with uow:
        category_ids = None
        if category_id:
            category_ids = frozenset(descendants(uow.categories.all(), category_id))
        found, total = uow.products.search(ProductFilter(
            category_ids=category_ids, brand_id=brand_id or None, price_min_fen=price_min_fen or None,
            price_max_fen=price_max_fen or None, terms=terms, sort=chosen, status=status or None,
            visible_only=not staff, ids=frozenset(ids) if ids else None, offset=max(offset, 0),
            limit=min(max(limit, 1), 100)))
        return ProductPage(_views(uow, found), total)


def view_product(uow: ProductUnitOfWork, *, product_id: int, province: str = "", viewer_id: int | None = None,
                 now: datetime | None = None) -> ProductView:
    """A visible product's detail with the delivery estimate to `province` (full or short name, answered by its full
    name; empty: the default row); a logged-in viewer's view emits product-viewed in the same transaction."""
    now = now or utcnow()
    with uow:
        product = uow.products.get(product_id)
        if product is None or not product.visible:
            raise NotFound("PRODUCT_NOT_FOUND", "no such product")
        destination = formats.province_full_name(province) if province else ""
        if destination is None:
            raise InvalidInput("PROVINCE_INVALID", "the destination is not a province",
                               details={"province": f"must be {formats.PROVINCE_RULE}, or empty"})
        days = uow.delivery.estimate_days(destination or DEFAULT_PROVINCE)
        if days is None and destination:
            days = uow.delivery.estimate_days(DEFAULT_PROVINCE)
        delivery = Delivery(province=destination, estimate_days=days or DEFAULT_DELIVERY_DAYS)
        view = ProductView(product=product, brand=_brand(uow, product.brand_id),
                           rating=uow.reviews.summary(product_id), delivery=delivery)
        if viewer_id:
            # Keyed by the viewer: one shopper's views reach the browsing history in order.
            uow.publish(ProductViewed(product_id=product_id, user_id=viewer_id, viewed_at=timestamp(now)),
                        aggregate_id=str(viewer_id))
            uow.commit()
        return view


MAX_SKUS_PER_LOOKUP = 200


def get_skus(uow: ProductUnitOfWork, *, sku_ids: Iterable[int]) -> list[SkuOffer]:
    """The known SKUs among `sku_ids`, in the order asked (duplicates once); unknown ids are left out."""
    wanted = list(dict.fromkeys(sku_ids))
    if len(wanted) > MAX_SKUS_PER_LOOKUP:
        raise InvalidInput("TOO_MANY_SKUS", f"ask for at most {MAX_SKUS_PER_LOOKUP} SKUs at once",
                           details={"sku_ids": f"max {MAX_SKUS_PER_LOOKUP}"})
    with uow:
        offers = _offers(uow, wanted)
        uow.commit()  # a read: committing keeps the loaded objects usable after the transaction
    return offers


# Staff: products, audit, shelf, stock

def create_product(uow: ProductUnitOfWork, *, actor_id: int, draft: ProductDraft, idempotency_key: str = "",
                   now: datetime | None = None) -> ProductView:
    """A new DRAFT product with its SKUs, indexed for search and audited; PRODUCT_INVALID, every problem at once
    (its category and brand too), from the domain (Product.create).

    With an idempotency key, once per key and staff member: a retry with the same key and draft (a 503 whose commit
    went through, say) answers the product the first created, as it is now, not a second product; another draft
    under the key is a Conflict IDEMPOTENCY_KEY_REUSED. Without one each call creates anew."""
    now = now or utcnow()
    with uow:
        def create() -> bytes:
            category, brand = _references(uow, draft)
            product = Product.create(draft, now, category_exists=category is not None, brand_exists=brand is not None)
            assert brand is not None  # the domain refused the draft otherwise
            uow.products.add(product)
            assert product.id is not None
            _record_initial_stock(uow, product.skus, actor_id, now)
            _index(uow, product, brand)
            _audit(uow, product, actor_id, "create", None, now)
            return str(product.id).encode()

        product_id = int(uow.run_once(scope=f"product-create:staff:{actor_id}", key=idempotency_key,
                                      request=canonical(asdict(draft)), execute=create)
                         if idempotency_key else create())
        product = _product(uow, product_id)
        view = ProductView(product, _brand(uow, product.brand_id))
        uow.commit()
        return view


def update_product(uow: ProductUnitOfWork, *, actor_id: int, product_id: int, draft: ProductDraft, version: int,
                   now: datetime | None = None) -> ProductView:
    """Replace the content of a product read at `version`; an approved one goes back to audit and off the shelf.

    Refused, nothing changed, when another edit came first (PRODUCT_CHANGED), the product is being audited
    (PRODUCT_IN_AUDIT), the draft is invalid or names no existing category or brand (PRODUCT_INVALID) or would
    retire a SKU still holding units (SKU_HAS_STOCK), in that order: the domain decides (Product.edit).
    """
    now = now or utcnow()
    if version <= 0:
        raise InvalidInput("VERSION_REQUIRED", "send the version the product was read at",
                           details={"version": "required"})
    with uow:
        product = _product(uow, product_id, lock=True)  # and its SKUs: their units cannot move until the commit
        category, brand = _references(uow, draft)
        before = product.snapshot()
        known = {sku.id for sku in product.skus}
        retired = [sku.id for sku in product.retired_by(draft) if sku.id is not None]
        product.edit(draft, now, version=version, reserved=uow.reservations.reserved_units(retired),
                     category_exists=category is not None, brand_exists=brand is not None)
        assert brand is not None  # the domain refused the draft otherwise
        uow.products.add(product)  # gives new SKUs their ids
        _record_initial_stock(uow, [sku for sku in product.skus if sku.id not in known], actor_id, now)
        _index(uow, product, brand)
        _audit(uow, product, actor_id, "update", before, now)
        uow.commit()
        return ProductView(product, brand)


def submit_product(uow: ProductUnitOfWork, *, actor_id: int, product_id: int,
                   now: datetime | None = None) -> ProductView:
    return _transition(uow, actor_id, product_id, "submit", lambda p, now: p.submit(now), now)


def audit_product(uow: ProductUnitOfWork, *, actor_id: int, product_id: int, approve: bool, reason: str = "",
                  version: int = 0, now: datetime | None = None) -> ProductView:
    """Approve, or reject with a reason, a product waiting for audit, as read at `version` (0: unchecked).

    PRODUCT_CHANGED when it was edited since the auditor read it (rejected by another admin, edited and submitted
    again meanwhile): an approval covers only the prices and content the auditor saw.
    """
    return _transition(uow, actor_id, product_id, "approve" if approve else "reject",
                       lambda p, now: p.audit(approve=approve, reason=reason, now=now, version=version), now)


def set_shelf(uow: ProductUnitOfWork, *, actor_id: int, product_id: int, on_shelf: bool,
              now: datetime | None = None) -> ProductView:
    """Put an approved product on the shelf, or take any product off it."""
    return _transition(uow, actor_id, product_id, "shelf_on" if on_shelf else "shelf_off",
                       lambda p, now: p.shelve(on_shelf, now), now)


def get_admin_product(uow: ProductUnitOfWork, *, product_id: int) -> ProductView:
    with uow:
        product = _product(uow, product_id)
        return ProductView(product, _brand(uow, product.brand_id))


def audit_log(uow: ProductUnitOfWork, *, product_id: int, offset: int = 0,
              limit: int = 20) -> tuple[list[AuditEntry], int]:
    """One page of a product's audit log for staff, newest first, and how many entries it has (PRODUCT_NOT_FOUND)."""
    with uow:
        _product(uow, product_id)
        return uow.audit_log.of_product(product_id, max(offset, 0), min(max(limit, 1), 100))


def adjust_stock(uow: ProductUnitOfWork, *, actor_id: int, product_id: int, sku_id: int, delta: int,
                 reason: str = "", idempotency_key: str = "", now: datetime | None = None) -> Sku:
    """Add (restock) or remove (write-off) units in one conditional update; never below zero.

    A retired SKU is on no admin page: it may be written off, never restocked (SKU_RETIRED), or its units
    would vanish from sight. The product and its SKUs are locked first, as an edit locks them: an edit retiring
    the SKU meanwhile is seen, and the two never wait for each other's rows in opposite orders (a deadlock).

    With an idempotency key, once per key and staff member, as a create's (create_product): a retry with the same
    key and fields (a 503 whose commit went through, say) answers the SKU as it is now and moves no units again;
    other fields under the key are a Conflict IDEMPOTENCY_KEY_REUSED. Without one each call adjusts anew.
    """
    now = now or utcnow()
    if delta == 0:
        raise InvalidInput("STOCK_DELTA_INVALID", "delta must not be 0", details={"delta": "zero"})
    reason = reason.replace("\x00", "")[:200]
    with uow:
        def adjust() -> bytes:
            product = _product(uow, product_id, lock=True)
            sku = product.sku(sku_id)
            if delta > 0 and not sku.active:
                raise Conflict("SKU_RETIRED", "a retired SKU cannot be restocked; add its spec back to the product "
                               "first", details={"sku_id": sku_id})
            move = uow.stock.move(StockMovement.of(MovementKind.ADJUST, sku_id, delta, now,
                                                   reference=f"admin:{actor_id}", actor_id=actor_id, reason=reason))
            if move is None:
                raise OutOfStock("STOCK_WOULD_BE_NEGATIVE", "the stock cannot go below 0",
                                 details={"delta": "too small", "sku_id": sku_id})
            uow.audit_log.add(AuditEntry(product_id=product_id, actor_id=actor_id, action="stock", at=now,
                                         before={"sku_id": sku_id, "stock": move.before},
                                         after={"sku_id": sku_id, "stock": move.after, "reason": reason}))
            publish_changed(uow, product_id, "stock", now)
            return b""

        if idempotency_key:
            uow.run_once(scope=f"stock-adjust:staff:{actor_id}", key=idempotency_key,
                         request=canonical({"product_id": product_id, "sku_id": sku_id, "delta": delta,
                                            "reason": reason}), execute=adjust)
        else:
            adjust()
        sku = _product(uow, product_id).sku(sku_id)  # the one adjust locked, or on a replay as it is now
        uow.commit()
        return sku


# Inventory (the order service)

def reserve_stock(uow: ProductUnitOfWork, *, order_no: str, lines: Iterable[StockLine],
                  now: datetime | None = None) -> ReservationResult:
    """Hold every line's units for the order, or none of them, and answer the SKUs as they were then.

    A SKU unknown or off sale is SKU_UNAVAILABLE, one short of units OUT_OF_STOCK, each naming the SKU; both are
    seen in a first read before any row is locked, so a sold-out SKU's losers never queue on its row.
    The answer's offers (price, names, category) are read again once every line's units are held, in a new
    statement of the same transaction, so the order's snapshot is the price the stock was sold at, with no call in
    between. The holding UPDATE alone cannot promise that: one that waited for a SKU row an edit or a shelf change
    had locked re-checks, once that commits, the SKU row only, not its product, and the first read is older still.
    The second read sees every change committed before it (an edit takes an approved product off sale: the
    reservation is refused SKU_UNAVAILABLE, nothing held); any later one locks the SKU rows, so waits for this
    transaction and comes after it. Idempotent by order number: a replay answers what the first call reserved
    (and its current state) without touching stock; the same order number with other lines is a conflict.
    An order released before it reserved (`release_reservation`: the order service gave up on this call) is Conflict
    RESERVATION_RELEASED, nothing held: its order will never exist, and the units would stay held for nobody.
    """
    now = now or utcnow()
    wanted = merge_lines(order_no, lines)
    with uow:
        uow.reservations.lock_order(order_no)
        existing = uow.reservations.of_order(order_no)
        if not existing and uow.reservations.released(order_no):
            STOCK_RESERVATION_FAILURES.labels("released").inc()
            raise Conflict("RESERVATION_RELEASED", "this order was released before it reserved; it reserves nothing")
        offers = _offers(uow, [line.sku_id for line in wanted])
        if existing:
            if sorted((r.sku_id, r.quantity) for r in existing) != [(w.sku_id, w.quantity) for w in wanted]:
                STOCK_RESERVATION_FAILURES.labels("mismatch").inc()
                raise Conflict("RESERVATION_MISMATCH", "this order number already reserved other lines")
            return _reservation_result(order_no, existing, offers)
        offered = {offer.sku.id: offer.sku for offer in offers if offer.on_sale}
        expires_at = now + RESERVATION_TTL
        held = []
        for line in wanted:  # in SKU order: concurrent orders lock rows in the same order, no deadlock
            sku = offered.get(line.sku_id)
            if sku is None or sku.stock < line.quantity:
                _refuse_reservation(line.sku_id, on_sale=sku is not None)
            move = uow.stock.move(StockMovement.of(MovementKind.RESERVE, line.sku_id, line.quantity, now,
                                                   reference=order_no), on_sale_only=True)
            if move is None:  # sold or taken off sale since the read: tell which
                now_offered = _offers(uow, [line.sku_id])
                _refuse_reservation(line.sku_id, on_sale=bool(now_offered) and now_offered[0].on_sale)
            _stock_moved(uow, move, now)
            held.append(Reservation(order_no=order_no, sku_id=line.sku_id, quantity=line.quantity,
                                    created_at=now, expires_at=expires_at))
        # read again, the SKU rows now held: the prices and sale the order is answered (and charged) with, and
        # the stock status the reservation left; the tree is read again only for a category the first read lacks
        offers = _offers(uow, [line.sku_id for line in wanted],
                         known_paths={offer.category_id: offer.category_path for offer in offers})
        still_offered = {offer.sku.id for offer in offers if offer.on_sale}
        for line in wanted:
            if line.sku_id not in still_offered:  # an edit or shelf change committed while the units were taken
                _refuse_reservation(line.sku_id, on_sale=False)
        for reservation in held:
            uow.reservations.add(reservation)
        uow.commit()
        return _reservation_result(order_no, held, offers)


def _offers(uow: ProductUnitOfWork, sku_ids: list[int], *,
            known_paths: dict[int, tuple[int, ...]] | None = None) -> list[SkuOffer]:
    """The known SKUs among `sku_ids` with their products and their categories' paths (what coupons limited to
    a category are matched on), in the order given; unknown ids are left out. The tree is not read when
    `known_paths` (a moment ago, in the same transaction) has every category needed."""
    found = {offer.sku.id: offer for offer in uow.products.offers(set(sku_ids))}
    if not found:
        return []
    paths = known_paths or {}
    if not {offer.category_id for offer in found.values()} <= paths.keys():
        paths = category_paths(uow.categories.all(), {offer.category_id for offer in found.values()})
    return [replace(found[sku_id], category_path=paths[found[sku_id].category_id])
            for sku_id in sku_ids if sku_id in found]


def _refuse_reservation(sku_id: int, *, on_sale: bool) -> NoReturn:
    """A SKU's units cannot be held: it is not for sale (unknown, retired, off the shelf) or short."""
    if not on_sale:
        STOCK_RESERVATION_FAILURES.labels("unavailable").inc()
        raise OutOfStock("SKU_UNAVAILABLE", "a product is no longer on sale", details={"sku_id": sku_id})
    STOCK_RESERVATION_FAILURES.labels("out_of_stock").inc()
    raise OutOfStock("OUT_OF_STOCK", "not enough stock for one of the lines", details={"sku_id": sku_id})


OVERSOLD = "OVERSOLD"  # confirm_held_stock: the order was paid for units sold again after its reservation expired


def confirm_held_stock(uow: ProductUnitOfWork, *, order_no: str, now: datetime | None = None,
                       orders: Orders | None = None) -> str:
    """The order was paid: its reservation becomes a sale (sales counts grow); replays change nothing. Inside an open
    unit of work (the order-paid consumer's, or the sweep's for an order the order service says was paid):
    CONFIRMED, or OVERSOLD.

    A reservation the sweep put back on sale before the payment was applied (`_swept`) takes its units again, in
    the conditional UPDATE a reservation uses (never below 0). When they were sold meanwhile the order is oversold:
    counted and logged for staff (find stock or refund), the reservation left as it was, and the payment applied
    all the same (retrying cannot bring the units back). One a cancellation released is Conflict
    RESERVATION_RELEASED: the order service never pays a cancelled order (a payment for it is refunded, with no
    order-paid), so this order-paid is one of a paid order cancelled since, whose units must not be taken again.
    A row RELEASED before the stock ledger existed (product migration 0006) has no movement to tell which it was:
    with `orders` (the consumer's), the order service says (`_released_before_ledger_sold`).
    Units an order-returned applied before this took back (`Reservation.returned`) go back on sale with the sale.
    """
    now = now or utcnow()
    uow.reservations.lock_order(order_no)
    held = uow.reservations.of_order(order_no)
    if not held:
        raise NotFound("RESERVATION_NOT_FOUND", "no stock was reserved for this order")
    swept = _swept(uow, order_no, held, orders)
    if any(r.status == ReservationStatus.RELEASED and r.id not in swept for r in held):
        raise Conflict("RESERVATION_RELEASED", "the reservation was released (the order was cancelled)")
    uow.stock.lock_products([r.sku_id for r in held])  # before any SKU row: the lock order (module docstring)
    status = ReservationStatus.CONFIRMED
    for reservation in sorted(held, key=lambda r: r.sku_id):  # SKU order, as reserve_stock locks rows
        assert reservation.id is not None
        if uow.reservations.move(reservation.id, ReservationStatus.RESERVED, ReservationStatus.CONFIRMED):
            _move(uow, StockMovement.of(MovementKind.CONFIRM, reservation.sku_id, reservation.quantity, now,
                                        reference=order_no))
            _restock_returned_before_sale(uow, reservation, now)
        elif reservation.id in swept and not _sell_again(uow, reservation, now):
            status = OVERSOLD
    return status


def _swept(uow: ProductUnitOfWork, order_no: str, held: list[Reservation], orders: Orders | None = None) -> set[int]:
    """The ids of the order's reservations whose units the sweep put back on sale and no late sale took again:
    EXPIRED, or RELEASED whose last movement for the order is the sweep's `expire` (before EXPIRED existed the sweep
    left its rows RELEASED, as a cancellation does; the stock ledger tells them apart, and a late sale cancelled
    since ends on `cancel_paid`). The ledger is read only when a row is RELEASED, which order-paid rarely meets.

    A RELEASED row with no movement at all for the order was released before the ledger existed (every reservation
    since has its `reserve`): by the sweep of then, which never asked whether the order was paid, or by a
    cancellation. With `orders`, the order service tells them apart (`_released_before_ledger_sold`); without, it
    counts as a cancellation's, as it always did."""
    released = {r.sku_id for r in held if r.status == ReservationStatus.RELEASED}
    last = uow.stock.last_kinds(order_no, released) if released else {}
    before_ledger = released - set(last)
    sold = bool(before_ledger) and orders is not None and _released_before_ledger_sold(orders, order_no)
    return {r.id for r in held if r.id is not None and (
        r.status == ReservationStatus.EXPIRED
        or (r.status == ReservationStatus.RELEASED
            and (last.get(r.sku_id) == MovementKind.EXPIRE or (sold and r.sku_id in before_ledger))))}


def _released_before_ledger_sold(orders: Orders, order_no: str) -> bool:
    """Whether the order whose reservation was RELEASED before the stock ledger, and whose order-paid comes now, is a
    paid order going ahead (GOING_AHEAD): then the release was the old sweep's (it put a paid order's units back on
    sale), and the units are taken again like an EXPIRED row's. A cancelled one (CANCELLED, REFUNDING, REFUNDED: a
    paid order cancelled since) was released by its cancellation: nothing is taken. When the order service does not
    answer, UNAVAILABLE: the consumer tries the event again rather than guess."""
    try:
        state = orders.states([order_no]).get(order_no)
    except DomainError as exc:
        raise DomainError("ORDER_STATE_UNAVAILABLE", f"order {order_no}'s reservation was released before the stock "
                          f"ledger, and the order service cannot say whether it was cancelled ({exc.code})",
                          kind=ErrorKind.UNAVAILABLE) from None
    going_ahead = state is not None and state.paid and state.status in GOING_AHEAD
    log.warning("order %s: order-paid for a reservation released before the stock ledger; the order is %s: %s",
                order_no, state.status if state else "unknown",
                "its units are taken again" if going_ahead else "released by its cancellation, nothing taken")
    return going_ahead


def _sell_again(uow: ProductUnitOfWork, reservation: Reservation, now: datetime) -> bool:
    """A swept reservation's units sold after all (its order was paid late), if the stock still has them."""
    assert reservation.id is not None
    move = uow.stock.move(StockMovement.of(MovementKind.LATE_SALE, reservation.sku_id, reservation.quantity, now,
                                           reference=reservation.order_no))
    if move is None:
        STOCK_OVERSOLD_UNITS.inc(reservation.quantity)
        log.error("order %s was paid after its reservation expired, and the %d units of SKU %s were sold since: "
                  "OVERSOLD, find stock or refund the buyer", reservation.order_no, reservation.quantity,
                  reservation.sku_id)
        return False
    uow.reservations.move(reservation.id, reservation.status, ReservationStatus.CONFIRMED)
    _stock_moved(uow, move, now)
    _restock_returned_before_sale(uow, reservation, now)
    log.warning("order %s was paid after its reservation expired: %d units of SKU %s taken again from the stock",
                reservation.order_no, reservation.quantity, reservation.sku_id)
    return True


def release_reservation(uow: ProductUnitOfWork, *, order_no: str, now: datetime | None = None) -> str:
    """The order was cancelled: units go back on sale. Replays change nothing.

    An order that never reserved answers NONE, so a compensation after a failed reservation is safe, and is marked
    released (`released_orders`): the order service compensates when its ReserveStock failed or outlived its deadline,
    and such a call may still be running (waiting for a connection or the order's lock); when it gets there it is
    refused (RESERVATION_RELEASED) rather than hold units for an order that will never exist. Order numbers are
    never reused (a submit's retry takes a new one), so no real order meets the mark.
    A confirmed (paid) reservation is not released here: returning paid goods is an after-sales matter.
    """
    now = now or utcnow()
    with uow:
        status = release_held_stock(uow, order_no=order_no, now=now)
        if status == "NONE":
            uow.reservations.mark_released(order_no, now)
        uow.commit()
    return status


def release_held_stock(uow: ProductUnitOfWork, *, order_no: str, now: datetime | None = None) -> str:
    """release_reservation inside an open unit of work (the order-cancelled consumer's transaction)."""
    return "NONE" if _release_held(uow, order_no, MovementKind.RELEASE, now or utcnow()) is None \
        else ReservationStatus.RELEASED


RELEASED_BY = {MovementKind.RELEASE: ReservationStatus.RELEASED, MovementKind.EXPIRE: ReservationStatus.EXPIRED}


def _release_held(uow: ProductUnitOfWork, order_no: str, kind: MovementKind, now: datetime) -> int | None:
    """Move the order's RESERVED units back on sale (a `kind` movement each, the rows RELEASED or EXPIRED): how
    many rows this call moved, None when the order reserved nothing; Conflict RESERVATION_CONFIRMED once paid."""
    uow.reservations.lock_order(order_no)
    held = uow.reservations.of_order(order_no)
    if not held:
        return None
    if any(r.status == ReservationStatus.CONFIRMED for r in held):
        raise Conflict("RESERVATION_CONFIRMED", "the order was paid; its stock is sold")
    moved = 0
    for reservation in held:
        assert reservation.id is not None
        if uow.reservations.move(reservation.id, ReservationStatus.RESERVED, RELEASED_BY[kind]):
            _stock_moved(uow, _move(uow, StockMovement.of(kind, reservation.sku_id, reservation.quantity, now,
                                                          reference=order_no)), now)
            moved += 1
    return moved


def release_paid_stock(uow: ProductUnitOfWork, *, order_no: str, now: datetime | None = None) -> str:
    """A paid order cancelled before it shipped (order-cancelled with was_paid, after staff review): its sold
    units go back on sale and leave the sales counts (a reservation still held is released as usual).
    Units a return restocked already (`Reservation.returned`) are not given back twice.
    One the sweep put back on sale (`_swept`) has nothing to give back, but is marked cancelled all the same
    (RELEASED, a `cancel_paid` movement of no units): this cancellation may overtake the order's late
    order-paid (another topic), which must then find the units released, not swept, and take nothing.
    Inside an open unit of work; replays change nothing (each row moves to RELEASED once)."""
    now = now or utcnow()
    uow.reservations.lock_order(order_no)
    held = uow.reservations.of_order(order_no)
    swept = _swept(uow, order_no, held)
    uow.stock.lock_products([r.sku_id for r in held])  # before any SKU row: the lock order (module docstring)
    for reservation in sorted(held, key=lambda r: r.sku_id):
        assert reservation.id is not None
        units = reservation.quantity
        if uow.reservations.move(reservation.id, ReservationStatus.CONFIRMED, ReservationStatus.RELEASED):
            kind, units = MovementKind.CANCEL_PAID, units - reservation.returned  # a return gave those back already
        elif uow.reservations.move(reservation.id, ReservationStatus.RESERVED, ReservationStatus.RELEASED):
            kind = MovementKind.RELEASE
        elif reservation.id in swept:
            uow.reservations.move(reservation.id, reservation.status, ReservationStatus.RELEASED)
            kind, units = MovementKind.CANCEL_PAID, 0
        else:
            continue
        _stock_moved(uow, _move(uow, StockMovement.of(kind, reservation.sku_id, units, now,
                                                      reference=order_no)), now)
    return ReservationStatus.RELEASED if held else "NONE"


def restock_return(uow: ProductUnitOfWork, *, case_no: str, lines: Iterable[StockLine], order_no: str = "",
                   now: datetime | None = None) -> None:
    """Goods of an after-sales return came back (order-returned): on sale again, out of the sales counts.

    At most the units the order's reservation bought and earlier returns of the order did not take back already
    (`Reservation.returned`): more would put units on sale that were never in the stock and drive the sales counts
    below zero. A reservation not sold yet (RESERVED, or put back on sale by the sweep: its order-paid, on another
    topic, not applied yet) counts the units as returned, and its sale (confirm_held_stock) restocks them: applied
    before the order-paid, a return ends where it would after it, and never restocks units the sweep put back
    already (a late order-paid that finds them sold since leaves them uncounted, as it sells nothing). A line the
    order never bought, or whose units a cancellation released, left no sale to take back, and is skipped (logged);
    so is a SKU this case counted already (the same case published again under a new event id). An order with no
    reservation at all (placed before reservations were kept) is restocked as it says.
    Inside an open unit of work (the consumer's, which applies each event once). An unknown SKU is NotFound.
    """
    now = now or utcnow()
    lines = list(lines)
    if any(line.quantity < 0 for line in lines):
        raise InvalidInput("STOCK_LINE_INVALID", "a returned line cannot have negative units",
                           details={"lines": "invalid"})
    units: dict[int, int] = {}
    for line in lines:
        if line.quantity:  # a line of no units: nothing came back, no movement
            units[line.sku_id] = units.get(line.sku_id, 0) + line.quantity
    sellable = _sellable_reservations(uow, order_no)
    done = uow.stock.last_kinds(case_no, list(units)) if sellable is not None and units else {}
    restocked = []
    for sku_id, quantity in units.items():
        if sellable is not None:
            reservation = sellable.get(sku_id)
            if reservation is None:
                log.warning("after-sales case %s: order %s's SKU %s was never sold from the stock (not ordered, or "
                            "released by a cancellation); its %d returned units are not restocked", case_no, order_no,
                            sku_id, quantity)
                continue
            if done.get(sku_id) == MovementKind.RETURN:
                log.warning("after-sales case %s restocked SKU %s already: its return again changes nothing",
                            case_no, sku_id)
                continue
            left = reservation.quantity - reservation.returned
            if quantity > left:
                log.error("after-sales case %s returns %d units of SKU %s, but order %s has %d sold and not returned "
                          "yet: only those are restocked", case_no, quantity, sku_id, order_no, left)
                quantity = left
            if not quantity:
                continue
            assert reservation.id is not None
            uow.reservations.add_returned(reservation.id, quantity)
            if reservation.status != ReservationStatus.CONFIRMED:
                log.info("after-sales case %s: order %s's %d units of SKU %s are not sold yet (its order-paid is not "
                         "applied): its sale restocks them", case_no, order_no, quantity, sku_id)
                quantity = 0  # the case's `return` row of no units: its record, and what a republished case meets
        restocked.append(StockLine(sku_id, quantity))
    uow.stock.lock_products([line.sku_id for line in restocked])  # before any SKU row: the lock order
    for line in sorted(restocked, key=lambda line: line.sku_id):  # and SKU rows in id order
        move = uow.stock.move(StockMovement.of(MovementKind.RETURN, line.sku_id, line.quantity, now,
                                               reference=case_no))
        if move is None:
            raise NotFound("SKU_NOT_FOUND", f"no SKU {line.sku_id}")
        _stock_moved(uow, move, now)


def _sellable_reservations(uow: ProductUnitOfWork, order_no: str) -> dict[int, Reservation] | None:
    """The order's reservations that sold from the stock (CONFIRMED) or may still (RESERVED, or swept: a late
    order-paid sells them), by SKU, under the order's lock (their `returned` is read and written under it); None
    when the order reserved nothing (or is unnamed)."""
    if not order_no:
        return None
    uow.reservations.lock_order(order_no)
    held = uow.reservations.of_order(order_no)
    if not held:
        return None
    swept = _swept(uow, order_no, held)
    return {r.sku_id: r for r in held
            if r.status in (ReservationStatus.CONFIRMED, ReservationStatus.RESERVED) or r.id in swept}


def _restock_returned_before_sale(uow: ProductUnitOfWork, reservation: Reservation, now: datetime) -> None:
    """The units returns counted on the reservation before it sold (restock_return: their order-returned came
    before the order-paid), on sale again in the transaction that sells them: a `return` referencing the order."""
    if reservation.returned:
        _stock_moved(uow, _move(uow, StockMovement.of(MovementKind.RETURN, reservation.sku_id, reservation.returned,
                                                      now, reference=reservation.order_no)), now)


def check_stock_ledger(uow: ProductUnitOfWork) -> tuple[int, list[StockBalance]]:
    """Every SKU against its stock ledger (`make audit`): how many were checked, and the unbalanced ones.

    Balanced: stock, held reservations and sales each equal their ledger sums, and
    available + reserved + sold == initial stock + adjustments. Read-only.
    """
    with uow:
        return uow.stock.check()


def stock_movements(uow: ProductUnitOfWork, *, product_id: int, sku_id: int, offset: int = 0,
                    limit: int = 20) -> tuple[list[StockMovement], int]:
    """A product's SKU's stock ledger for staff, newest first (PRODUCT_NOT_FOUND, SKU_NOT_FOUND)."""
    with uow:
        _product(uow, product_id).sku(sku_id)
        return uow.stock.movements(sku_id, max(offset, 0), min(max(limit, 1), 100))


def release_expired_reservations(uow_factory: Callable[[], ProductUnitOfWork], orders: Orders, *,
                                 now: datetime | None = None, batch: int = 100,
                                 budget: RoundBudget | None = None) -> int:
    """Settle reservations past their expiry (the safety net behind order-paid and order-cancelled); how many
    orders' units went back on sale.

    The order service says first what became of the batch's orders, so that a late order-paid (its consumer or
    Kafka behind) never finds its units sold to someone else: a paid order's reservation is confirmed as
    order-paid confirms it (confirm_held_stock: the late event then changes nothing); an order still awaiting
    payment keeps its units (its payment timeout cancels it); a cancelled or closed unpaid order's, or one the
    order service does not know (a submit that died after reserving), go back on sale (EXPIRED). When the order
    service cannot answer, the run stops and what is left stays held for the next one
    (mall_stock_reservations_deferred_total). Pages of `batch` orders, oldest expiry first, keyed past the last one, so orders left held (awaiting payment,
    or failing) do not hide the ones behind them.

    The serve role runs it every PRODUCT_RESERVATION_SWEEP_SECONDS, with a `budget` (the job's, started by its
    timer): the round stops between two pages or two orders once it is spent (its first order aside), and the next
    goes on after the last order it handled (`each_page`, the order service asked once a page by its `before_page`):
    settled orders leave the expired ones, but those left held (awaiting payment, failing) stay, and a backlog of
    them larger than a round would otherwise keep the orders behind them held round after round. Each order in its
    own transaction, so one failure (logged, tried again next round) does not hold back the rest. Safe to run from several
    replicas at once: settling is idempotent, and an order released twice is counted once.
    """
    now = now or utcnow()

    def unanswered(order_nos: Sequence[str], error: DomainError | None) -> None:  # the round ends at this page
        STOCK_RESERVATIONS_DEFERRED.labels("unanswered").inc(len(order_nos))
        log.warning("the order service did not say whether %d orders with expired stock reservations were paid "
                    "(%s): their units stay held until the next run", len(order_nos), error and error.code)

    answers = PageAnswers(orders.states, unanswered)
    return each_page(uow_factory, lambda uow, after: uow.reservations.expired_orders(now, batch, after), None, batch,
                     lambda key: _settle_expired_order(uow_factory, key[1], answers.answers.get(key[1]), now=now),
                     what="expired reservation of order (expiry, number)", budget=budget,
                     before_page=lambda page: answers.ask([order_no for _, order_no in page]))


def _settle_expired_order(uow_factory: Callable[[], ProductUnitOfWork], order_no: str, state: OrderState | None, *,
                          now: datetime) -> int:
    """One order of the sweep, as the order service said it is (`state`, None: it does not know the order): 1 when
    its units went back on sale; an order awaiting payment keeps them."""
    paid = state is not None and state.paid
    if not paid and state is not None and state.status == AWAITING_PAYMENT:
        STOCK_RESERVATIONS_DEFERRED.labels("awaiting_payment").inc()
        return 0
    try:
        return _settle_expired(uow_factory, order_no, paid=paid, now=now)
    except Exception:
        log.exception("settling the expired reservation of order %s failed", order_no)
        return 0


def _settle_expired(uow_factory: Callable[[], ProductUnitOfWork], order_no: str, *, paid: bool,
                    now: datetime) -> int:
    """One order's expired reservation in its own transaction: sold when the order was paid, else back on sale
    (EXPIRED); 1 when this call put units back on sale."""
    with uow_factory() as uow:
        if paid:
            confirm_held_stock(uow, order_no=order_no, now=now)
            moved = 0
        else:
            moved = _release_held(uow, order_no, MovementKind.EXPIRE, now) or 0
        uow.commit()
    if paid:
        STOCK_RESERVATIONS_CONFIRMED_BY_SWEEP.inc()
        log.warning("order %s was paid but its order-paid had not been applied when its reservation expired: "
                    "the sweep confirmed it (is the product consumer behind?)", order_no)
    elif moved:
        STOCK_RESERVATIONS_EXPIRED.inc()
        log.warning("order %s: its stock reservation expired unsettled and went back on sale", order_no)
    return 1 if moved else 0


# Seeding and configuration

def set_delivery_estimate(uow: ProductUnitOfWork, *, province: str, days: int, actor_id: int = 0,
                          now: datetime | None = None) -> Delivery:
    """Set the planned delivery days to a province, named in full or short and kept by its full name, the name
    addresses and product pages look it up by ("*": everywhere not listed); a change is audited."""
    row = delivery_province(province)
    problems: dict[str, object] = {}
    if row is None:
        problems["province"] = f'must be {formats.PROVINCE_RULE}, or "*"'
    else:
        province = row
    if not 0 < days <= MAX_DELIVERY_DAYS:
        problems["estimate_days"] = f"1-{MAX_DELIVERY_DAYS}"
    if problems:
        raise InvalidInput("DELIVERY_INVALID", "the delivery estimate is invalid", details=problems)
    now = now or utcnow()
    with uow:
        before = uow.delivery.set_estimate(province, days)
        if before != days:
            _settings_audit(uow, "delivery", province, actor_id, "create" if before is None else "update",
                            None if before is None else {"estimate_days": before}, {"estimate_days": days}, now)
            _catalog_changed(uow, "delivery", now)
        uow.commit()
    return Delivery(province, days)


def delivery_estimates(uow: ProductUnitOfWork) -> list[Delivery]:
    with uow:
        return [Delivery(province, days) for province, days in uow.delivery.all()]


def save_category(uow: ProductUnitOfWork, *, actor_id: int, category_id: int = 0, name: str, parent_id: int = 0,
                  icon: str = "", sort: int = 0, idempotency_key: str = "", now: datetime | None = None) -> Category:
    """Create (category_id 0) or change a category; the tree stays a tree (no parent below the category).

    Publishes one catalogue-wide product-changed: a rename or a move changes what every product of the
    category's branch is listed under, however many there are. Tree changes are serialised before the tree is
    read: two moves checked at once (A under B, B under A) would each pass and together make a cycle.

    A create with an idempotency key runs once per key and staff member: a retry with the same key and fields (a
    503 whose commit went through, say) answers the category the first created, as it is now, not a second one;
    other fields under the key are a Conflict IDEMPOTENCY_KEY_REUSED. Without one each create creates anew. An
    edit takes no key (ValueError).
    """
    if idempotency_key and category_id:
        raise ValueError("only a category's create takes an idempotency key")
    now = now or utcnow()
    with uow:
        def save() -> Category:
            uow.categories.lock_tree()
            wanted = Category(name=name.strip(), parent_id=parent_id or None, icon=icon, sort=sort,
                              id=category_id or None)
            category, before = wanted, None
            if category_id:
                category = uow.categories.get(category_id) or _missing("CATEGORY_NOT_FOUND", "no such category")
                before = _category_snapshot(category)
            check_category(wanted, uow.categories.all(), stored=category if category_id else None)
            if category_id:
                category.name, category.parent_id, category.icon, category.sort = (
                    wanted.name, wanted.parent_id, wanted.icon, wanted.sort)
            else:
                uow.categories.add(category)
            _settings_audit(uow, "category", str(category.id), actor_id, "update" if before else "create", before,
                            _category_snapshot(category), now)
            _catalog_changed(uow, "category", now)
            return category

        if idempotency_key:
            first = uow.run_once(scope=f"category-create:staff:{actor_id}", key=idempotency_key,
                                 request=canonical({"name": name, "parent_id": parent_id, "icon": icon, "sort": sort}),
                                 execute=lambda: str(save().id).encode())
            category = uow.categories.get(int(first)) or _missing("CATEGORY_NOT_FOUND", "no such category")
        else:
            category = save()
        uow.commit()
        return category


def save_brand(uow: ProductUnitOfWork, *, actor_id: int, brand_id: int = 0, name: str, logo: str = "",
               idempotency_key: str = "", now: datetime | None = None) -> Brand:
    """Create (brand_id 0) or change a brand; a rename re-indexes its products' search terms.

    Publishes one catalogue-wide product-changed: every product page shows its brand's name and logo.

    A create with an idempotency key runs once per key and staff member, as a category's (save_category): a retry
    with the same key and fields answers the brand the first created, as it is now (not 409 BRAND_EXISTS); other
    fields under the key are a Conflict IDEMPOTENCY_KEY_REUSED. An edit takes no key (ValueError).
    """
    if idempotency_key and brand_id:
        raise ValueError("only a brand's create takes an idempotency key")
    now = now or utcnow()
    with uow:
        def save() -> Brand:
            wanted = Brand(name=name.strip(), logo=logo)
            brand, before = wanted, None
            if brand_id:
                brand = uow.brands.get(brand_id) or _missing("BRAND_NOT_FOUND", "no such brand")
                before = {"name": brand.name, "logo": brand.logo}
            check_brand(wanted, stored=brand if brand_id else None)
            same_name = uow.brands.by_name(wanted.name)
            if same_name is not None and same_name is not brand:
                raise BrandExists()
            if brand_id:  # the unique index decides against a brand created or renamed meanwhile (BrandExists)
                brand.name, brand.logo = wanted.name, wanted.logo
                uow.brands.save(brand)
            else:
                uow.brands.add(brand)
            if before and before["name"] != brand.name:  # the brand's name is a search term of its products
                # locked before their terms are rewritten, as an edit locks its product before it re-indexes it
                for product in uow.products.of_brand(brand_id, lock=True):
                    _index(uow, product, brand)
            _settings_audit(uow, "brand", str(brand.id), actor_id, "update" if before else "create", before,
                            {"name": brand.name, "logo": brand.logo}, now)
            _catalog_changed(uow, "brand", now)
            return brand

        if idempotency_key:
            first = uow.run_once(scope=f"brand-create:staff:{actor_id}", key=idempotency_key,
                                 request=canonical({"name": name, "logo": logo}),
                                 execute=lambda: str(save().id).encode())
            brand = uow.brands.get(int(first)) or _missing("BRAND_NOT_FOUND", "no such brand")
        else:
            brand = save()
        uow.commit()
        return brand


def settings_audit_log(uow: ProductUnitOfWork, *, entity: str = "", offset: int = 0,
                       limit: int = 20) -> tuple[list[SettingsAuditEntry], int]:
    if entity not in ("", *SETTINGS_ENTITIES):
        raise InvalidInput("ENTITY_INVALID", "entity is category, brand or delivery", details={"entity": "invalid"})
    with uow:
        return uow.settings_log.page(entity, max(offset, 0), min(max(limit, 1), 100))


SETTINGS_ENTITIES = ("category", "brand", "delivery")


def _category_snapshot(category: Category) -> dict[str, object]:
    return {"name": category.name, "parent_id": category.parent_id, "icon": category.icon, "sort": category.sort}


def _settings_audit(uow: ProductUnitOfWork, entity: str, key: str, actor_id: int, action: str,
                    before: dict[str, object] | None, after: dict[str, object], now: datetime | None) -> None:
    uow.settings_log.add(SettingsAuditEntry(entity=entity, entity_key=key, actor_id=actor_id, action=action,
                                            at=now or utcnow(), before=before, after=after))


def _missing(code: str, message: str) -> NoReturn:
    raise NotFound(code, message)


# Helpers

def _sort(sort: str, *, has_query: bool) -> Sort:
    if not sort:
        return Sort.RELEVANCE if has_query else Sort.NEWEST
    try:
        return Sort(sort)
    except ValueError:
        raise InvalidInput("SORT_INVALID", "sort must be newest, price_asc, price_desc, sales or relevance",
                           details={"sort": "invalid"}) from None


def _product(uow: ProductUnitOfWork, product_id: int, *, lock: bool = False) -> Product:
    product = uow.products.get(product_id, lock=lock)
    if product is None:
        raise NotFound("PRODUCT_NOT_FOUND", "no such product")
    return product


def _brand(uow: ProductUnitOfWork, brand_id: int) -> Brand:
    return uow.brands.get(brand_id) or Brand(name="", id=brand_id)


def _views(uow: ProductUnitOfWork, found: list[Product]) -> list[ProductView]:
    """The page's products with their brands, of which only theirs are read: a page has at most 100 products, the
    shop any number of brands."""
    brands = {brand.id: brand for brand in uow.brands.by_ids({product.brand_id for product in found})}
    return [ProductView(p, brands.get(p.brand_id) or Brand(name="", id=p.brand_id)) for p in found]


def _references(uow: ProductUnitOfWork, draft: ProductDraft) -> tuple[Category | None, Brand | None]:
    """The category and brand a draft names, None for one that does not exist (the domain refuses the draft)."""
    return uow.categories.get(draft.category_id), uow.brands.get(draft.brand_id)


def _index(uow: ProductUnitOfWork, product: Product, brand: Brand) -> None:
    assert product.id is not None
    uow.products.index_terms(product.id, search.term_weights(
        name=product.name, subtitle=product.subtitle, description=product.description, brand=brand.name))


def _audit(uow: ProductUnitOfWork, product: Product, actor_id: int, action: str,
           before: dict[str, object] | None, now: datetime) -> None:
    assert product.id is not None
    uow.audit_log.add(AuditEntry(product_id=product.id, actor_id=actor_id, action=action, at=now,
                                 before=before, after=product.snapshot()))
    publish_changed(uow, product.id, action, now)


def publish_changed(uow: ProductUnitOfWork, product_id: int, reason: str, now: datetime) -> None:
    """product-changed in the same transaction: every audited change may alter what shoppers see (caches drop it)."""
    uow.publish(ProductChanged(product_id=product_id, reason=reason, changed_at=timestamp(now)),
                aggregate_id=str(product_id))


def _record_initial_stock(uow: ProductUnitOfWork, new_skus: Iterable[Sku], actor_id: int, now: datetime) -> None:
    """The ledger's first row of each new SKU: the stock it was created with (inserted with the SKU)."""
    for sku in new_skus:
        assert sku.id is not None and sku.product_id is not None
        movement = StockMovement.of(MovementKind.INITIAL, sku.id, sku.stock, now, reference=f"admin:{actor_id}",
                                    actor_id=actor_id)
        movement.product_id = sku.product_id
        uow.stock.record(movement)


def _move(uow: ProductUnitOfWork, movement: StockMovement) -> StockMove:
    """A movement that cannot be refused (it takes nothing from the stock) on a SKU that exists."""
    move = uow.stock.move(movement)
    assert move is not None, f"sku {movement.sku_id} vanished"
    return move


CATALOG_AGGREGATE = "catalog"  # the Kafka key of catalogue-wide product-changed events: they stay in order


def _catalog_changed(uow: ProductUnitOfWork, reason: str, now: datetime) -> None:
    """One catalogue-wide product-changed (product_id 0) in the same transaction, instead of one per product
    of a brand or category, which could be thousands: caches drop every product and list."""
    uow.publish(ProductChanged(product_id=0, reason=reason, catalog_wide=True, changed_at=timestamp(now)),
                aggregate_id=CATALOG_AGGREGATE)


def _stock_moved(uow: ProductUnitOfWork, move: StockMove, now: datetime) -> None:
    """Only a move across in_stock / low / sold_out is visible to shoppers: one event then, none otherwise."""
    if move.status_changed:
        publish_changed(uow, move.product_id, "stock_status", now)


def _transition(uow: ProductUnitOfWork, actor_id: int, product_id: int, action: str,
                change: Callable[[Product, datetime], None], now: datetime | None) -> ProductView:
    now = now or utcnow()
    with uow:
        product = _product(uow, product_id, lock=True)
        before = product.snapshot()
        change(product, now)
        _audit(uow, product, actor_id, action, before, now)
        uow.commit()
        return ProductView(product, _brand(uow, product.brand_id))


def _reservation_result(order_no: str, held: list[Reservation], offers: list[SkuOffer]) -> ReservationResult:
    statuses = {r.status for r in held}
    status = next(iter(statuses)) if len(statuses) == 1 else ReservationStatus.RESERVED
    return ReservationResult(order_no=order_no, lines=[StockLine(r.sku_id, r.quantity) for r in held],
                             expires_at=min(r.expires_at for r in held), status=str(status), offers=offers)
