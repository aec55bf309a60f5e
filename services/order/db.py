"""Order service tables, their mapping onto the domain classes, repositories and unit of work."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from functools import cache
from typing import Any, Self, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ColumnElement,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    and_,
    bindparam,
    case,
    delete,
    false,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.orm import Session, composite, registry, relationship, selectinload

from services.common import formats
from services.common.db import (
    CONFLICT_INSERTS,
    BigId,
    Mapping,
    UTCDateTime,
    counted_page,
    job_rounds_table,
    serialize_on,
    skip_locked,
)
from services.common.idempotency import KEY_MAX_LENGTH
from services.common.uow import SqlUnitOfWork
from services.order.aftersales import CLOSED, AfterSale, CaseLine, CaseStep
from services.order.domain import (
    PURCHASE_LIMIT_STATUSES,
    Address,
    CartItem,
    Order,
    OrderLine,
    OrderStatus,
    Refund,
    RefundLine,
    RefundStatus,
    Shipment,
    ShipmentLine,
    Transition,
    wechat_out_trade_no,
)
from services.order.uow import (
    CaseSearch,
    LineReservation,
    ListedRefund,
    OrderSearch,
    OrderUnitOfWork,
    RefundSearch,
)
from services.order.wallet_reviews import ReviewStatus, WalletReview

metadata = MetaData()
Entity = TypeVar("Entity")
CLOSED_CASES = sorted(status.value for status in CLOSED)

cart_items = Table(
    "cart_items", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", BigInteger, nullable=False),
    Column("sku_id", BigInteger, nullable=False),
    Column("product_id", BigInteger, nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("added_price_fen", BigInteger, nullable=False),  # to tell the shopper the price changed since
    Column("selected", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("user_id", "sku_id", name="uq_cart_items_user_sku"),
)

orders = Table(
    "orders", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("order_no", String(32), nullable=False, unique=True),
    Column("user_id", BigInteger, nullable=False),
    Column("status", String(20), nullable=False),
    Column("items_total_fen", BigInteger, nullable=False),
    Column("level_discount_fen", BigInteger, nullable=False),
    Column("coupon_discount_fen", BigInteger, nullable=False),
    Column("points_discount_fen", BigInteger, nullable=False),
    Column("freight_fen", BigInteger, nullable=False),
    Column("payable_fen", BigInteger, nullable=False),
    Column("coupon_id", BigInteger, nullable=False),
    Column("points_used", BigInteger, nullable=False),
    Column("note", String(200), nullable=False),
    Column("ship_name", String(64), nullable=False),
    Column("ship_phone", String(20), nullable=False),
    Column("ship_province", String(32), nullable=False),
    Column("ship_city", String(32), nullable=False),
    Column("ship_district", String(32), nullable=False),
    Column("ship_detail", String(255), nullable=False),
    Column("pay_deadline", UTCDateTime, nullable=False),
    Column("paid_at", UTCDateTime, nullable=True),
    Column("pay_channel", String(16), nullable=False),
    Column("out_trade_no", String(64), nullable=False),
    Column("prepaid_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("shipped_at", UTCDateTime, nullable=True),
    Column("completed_at", UTCDateTime, nullable=True),
    Column("refunded_fen", BigInteger, nullable=False, server_default="0"),
    Column("wallet_attempt_at", UTCDateTime, nullable=True),
    Column("confirm_clock_at", UTCDateTime, nullable=True),  # domain.Order.confirm_clock_at (migration 0011)
    Column("wechat_attempt", Integer, nullable=False, server_default="1"),  # domain.Order.wechat_attempt (0016)
    Index("ix_orders_user_created", "user_id", "created_at"),
    Index("ix_orders_status_deadline", "status", "pay_deadline"),
    Index("ix_orders_status_shipped", "status", "shipped_at"),
    Index("ix_orders_created", "created_at", "id"),  # staff's search, newest first (0025)
    Index("ix_orders_status_created", "status", "created_at", "id"),
    # A shopper's orders awaiting payment, counted at each submit (service._check_unpaid_orders; migration 0024).
    Index("ix_orders_user_unpaid", "user_id", postgresql_where=text("status = 'PENDING_PAYMENT'"),
          sqlite_where=text("status = 'PENDING_PAYMENT'")),
    Index("ix_orders_wallet_attempt", "wallet_attempt_at", postgresql_where=text("wallet_attempt_at IS NOT NULL"),
          sqlite_where=text("wallet_attempt_at IS NOT NULL")),
    CheckConstraint("payable_fen >= 0", name="ck_orders_payable_not_negative"),
    CheckConstraint("refunded_fen >= 0 AND refunded_fen <= payable_fen", name="ck_orders_refund_within_paid"),
)

order_lines = Table(
    "order_lines", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("order_id", BigId, ForeignKey("orders.id"), nullable=False, index=True),
    Column("sku_id", BigInteger, nullable=False),
    Column("product_id", BigInteger, nullable=False),
    Column("category_id", BigInteger, nullable=False),
    Column("brand_id", BigInteger, nullable=False),
    Column("name", String(128), nullable=False),
    Column("spec", String(formats.SPEC_TEXT_MAX), nullable=False),
    Column("image", String(512), nullable=False),
    Column("price_fen", BigInteger, nullable=False),
    Column("quantity", Integer, nullable=False),
    # The order's coupon applies to this line (its categories); lines before migration 0007 spread it over every line.
    Column("coupon_applied", Boolean, nullable=False, server_default=true()),
    Column("refunded_quantity", Integer, nullable=False, server_default="0"),
    Column("refunded_fen", BigInteger, nullable=False, server_default="0"),
    CheckConstraint("refunded_quantity >= 0 AND refunded_quantity <= quantity",
                    name="ck_order_lines_refund_within_quantity"),
    CheckConstraint("refunded_fen >= 0 AND refunded_fen <= price_fen * quantity",
                    name="ck_order_lines_refund_within_total"),
)

order_transitions = Table(
    "order_transitions", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("order_id", BigId, ForeignKey("orders.id"), nullable=False, index=True),
    Column("status", String(20), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("reason", String(255), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    # What the order's shopper sees of the step (domain.Transition); the code always writes both. The defaults
    # hide: a step written without them (by a pod of the release before migration 0009) is for staff only.
    Column("shopper_visible", Boolean, nullable=False, server_default=false()),
    Column("shopper_reason", String(255), nullable=False, server_default=""),
    # Which step it is (services.common.order_steps.StepKind); the code always writes it. The default is for a pod of
    # the release before migration 0026, during its rollout.
    Column("kind", String(32), nullable=False, server_default=""),
)

shipments = Table(
    "shipments", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("order_id", BigId, ForeignKey("orders.id"), nullable=False, index=True),
    Column("shipment_no", String(40), nullable=False, unique=True),
    Column("carrier", String(32), nullable=False),
    Column("tracking_no", String(64), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("shipped_at", UTCDateTime, nullable=False),
    UniqueConstraint("order_id", "carrier", "tracking_no", name="uq_shipments_order_tracking"),
)

shipment_lines = Table(
    "shipment_lines", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("shipment_id", BigId, ForeignKey("shipments.id"), nullable=False, index=True),
    Column("line_id", BigId, ForeignKey("order_lines.id"), nullable=False),
    Column("quantity", Integer, nullable=False),
    CheckConstraint("quantity > 0", name="ck_shipment_lines_quantity_positive"),
)

after_sales = Table(
    "after_sales", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("case_no", String(32), nullable=False, unique=True),
    Column("order_id", BigId, ForeignKey("orders.id"), nullable=False, index=True),
    Column("order_no", String(32), nullable=False, index=True),
    Column("user_id", BigInteger, nullable=False),
    Column("type", String(16), nullable=False),
    Column("status", String(20), nullable=False),
    Column("reason", String(255), nullable=False),
    Column("images", JSON, nullable=False),
    Column("refund_fen", BigInteger, nullable=False),
    Column("return_carrier", String(32), nullable=False),
    Column("return_tracking_no", String(64), nullable=False),
    Column("refund_no", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_after_sales_user_created", "user_id", "created_at"),
    Index("ix_after_sales_status_created", "status", "created_at"),
    CheckConstraint("type IN ('refund_only', 'return_refund')", name="ck_after_sales_type"),
    CheckConstraint("refund_fen >= 0", name="ck_after_sales_refund_not_negative"),
)

after_sale_lines = Table(
    "after_sale_lines", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("case_id", BigId, ForeignKey("after_sales.id"), nullable=False, index=True),
    Column("line_id", BigId, ForeignKey("order_lines.id"), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("open", Boolean, nullable=False),
    CheckConstraint("quantity > 0", name="ck_after_sale_lines_quantity_positive"),
    CheckConstraint("amount_fen >= 0", name="ck_after_sale_lines_amount_not_negative"),
    # One open case per order line, whatever the code does.
    Index("uq_after_sale_lines_one_open", "line_id", unique=True, postgresql_where=text("open"),
          sqlite_where=text("open")),
)

after_sale_steps = Table(
    "after_sale_steps", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("case_id", BigId, ForeignKey("after_sales.id"), nullable=False, index=True),
    Column("status", String(20), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("reason", String(255), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    # What the case's shopper sees of the step (aftersales.CaseStep); the code always writes both. The defaults
    # hide: a step written without them (by a pod of the release before migration 0012) is for staff only.
    Column("shopper_visible", Boolean, nullable=False, server_default=false()),
    Column("shopper_reason", String(255), nullable=False, server_default=""),
)

refunds = Table(
    "refunds", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("refund_no", String(64), nullable=False, unique=True),
    Column("order_id", BigId, ForeignKey("orders.id"), nullable=False, index=True),
    Column("source", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("channel_refund_id", String(64), nullable=False),
    Column("reason", String(255), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("settled_at", UTCDateTime, nullable=True),
    # Points spent on the refunded units, credited back with it (cancel-unshipped's; migration 0015).
    Column("points_returned", BigInteger, nullable=False, server_default="0"),
    # When WeChat Pay reported this CLOSED refund paid after all (migration 0017): its units count as refunded again.
    Column("paid_after_close_at", UTCDateTime, nullable=True),
    # Paid after close while open refunds of its order held its amounts: undecided until they end (migration 0019).
    Column("paid_after_close_waiting_at", UTCDateTime, nullable=True),
    Index("ix_refunds_status_created", "status", "created_at"),
    Index("ix_refunds_created", "created_at", "id"),  # staff's list: the ended ones newest first (migration 0013)
    CheckConstraint("amount_fen >= 0", name="ck_refunds_amount_not_negative"),  # 0: units paid 0 fen
    CheckConstraint("status IN ('PENDING', 'SUCCESS', 'CLOSED', 'ABNORMAL')", name="ck_refunds_status"),
    CheckConstraint("points_returned >= 0", name="ck_refunds_points_not_negative"),
)

refund_lines = Table(
    "refund_lines", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("refund_id", BigId, ForeignKey("refunds.id"), nullable=False, index=True),
    Column("line_id", BigId, ForeignKey("order_lines.id"), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    CheckConstraint("quantity >= 0 AND amount_fen >= 0", name="ck_refund_lines_not_negative"),
)

# Wallet charges reconciliation could not settle, for staff (services/order/wallet_reviews.py); kept once resolved.
wallet_reviews = Table(
    "wallet_reviews", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("order_id", BigId, ForeignKey("orders.id"), nullable=False, unique=True),
    Column("order_no", String(32), nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("order_user_id", BigInteger, nullable=False),
    Column("payable_fen", BigInteger, nullable=False),
    Column("problem", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("flagged_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("resolved_by", String(64), nullable=False),
    Column("note", String(255), nullable=False),
    Column("refund_no", String(64), nullable=False),
    Index("ix_wallet_reviews_status_flagged", "status", "flagged_at"),
    CheckConstraint("status IN ('OPEN', 'CREDITED', 'HANDLED')", name="ck_wallet_reviews_status"),
)

# When the payment and refund reconciliation jobs last started a round, whichever replica ran it (one_round_at_a_time).
job_rounds = job_rounds_table(metadata)

# The order number each keyed submit last tried, per (user, Idempotency-Key): recorded before anything is held under
# it, so that a retry can release what a lost attempt still holds (service._release_lost_attempt). Pruned with the
# idempotency keys, by age (created_at: when that number was recorded).
submit_attempts = Table(
    "submit_attempts", metadata,
    Column("user_id", BigInteger, primary_key=True),
    Column("idempotency_key", String(KEY_MAX_LENGTH), primary_key=True),
    Column("order_no", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, index=True),
)


def _map_classes(mappers: registry) -> None:
    mappers.map_imperatively(CartItem, cart_items)
    mappers.map_imperatively(OrderLine, order_lines)
    mappers.map_imperatively(Transition, order_transitions)
    mappers.map_imperatively(ShipmentLine, shipment_lines)
    mappers.map_imperatively(Shipment, shipments, properties={
        "lines": relationship(ShipmentLine, order_by=shipment_lines.c.id, lazy="selectin"),
    })
    mappers.map_imperatively(RefundLine, refund_lines)
    mappers.map_imperatively(Refund, refunds, properties={
        "lines": relationship(RefundLine, order_by=refund_lines.c.id, lazy="selectin"),
    })
    mappers.map_imperatively(Order, orders, properties={
        "address": composite(Address, orders.c.ship_name, orders.c.ship_phone, orders.c.ship_province,
                             orders.c.ship_city, orders.c.ship_district, orders.c.ship_detail),
        "lines": relationship(OrderLine, order_by=order_lines.c.id, lazy="selectin"),
        "history": relationship(Transition, order_by=order_transitions.c.id, lazy="selectin"),
        "shipments": relationship(Shipment, order_by=shipments.c.id, lazy="selectin"),
    })
    mappers.map_imperatively(WalletReview, wallet_reviews)
    mappers.map_imperatively(CaseLine, after_sale_lines)
    mappers.map_imperatively(CaseStep, after_sale_steps)
    mappers.map_imperatively(AfterSale, after_sales, properties={
        "lines": relationship(CaseLine, order_by=after_sale_lines.c.id, lazy="selectin"),
        "history": relationship(CaseStep, order_by=after_sale_steps.c.id, lazy="selectin"),
    })


# Maps the domain classes onto the tables (idempotent): build_app and database tests call it, never an import.
start_mappers = Mapping(_map_classes).start


def _lock_due(session: Session, rows: type[Entity], due: ColumnElement[bool], clock: ColumnElement[datetime],
              limit: int) -> list[Entity]:
    """Up to `limit` rows that are `due`, oldest `clock` first, locked for the jobs that work through them; rows
    other transactions hold are skipped (FOR UPDATE SKIP LOCKED), so replicas share a batch instead of queueing
    for it (PostgreSQL; SQLite, dev only, has no FOR UPDATE)."""
    query = select(rows).where(due).order_by(clock).limit(limit)
    return list(session.execute(skip_locked(session, query)).scalars())


class SqlCartRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_user(self, user_id: int) -> None:
        serialize_on(self.session, f"cart:{user_id}")

    def for_user(self, user_id: int) -> list[CartItem]:
        return list(self.session.execute(select(CartItem).where(cart_items.c.user_id == user_id)
                                         .order_by(cart_items.c.id)).scalars())

    def add(self, item: CartItem) -> None:
        self.session.add(item)
        self.session.flush()

    def remove(self, *items: CartItem) -> int:
        if not items:
            return 0
        # One DELETE statement for them all, which on PostgreSQL waits for a transaction deleting them too (another
        # checkout of the same lines) and counts only the rows still there once it has committed.
        removed = self.session.execute(delete(cart_items).where(cart_items.c.id.in_([item.id for item in items])))
        for item in items:
            if item in self.session:
                self.session.expunge(item)
        return removed.rowcount


@cache
def _columns_of(cls: type) -> tuple[tuple[str, str], ...]:
    """(attribute, column) of every column `cls` is mapped to, its primary key `id` left out."""
    return tuple((prop.key, prop.columns[0].key) for prop in inspect(cls).column_attrs if prop.key != "id")


def _row(entity: Any) -> dict[str, Any]:
    return {column: getattr(entity, attribute) for attribute, column in _columns_of(type(entity))}


INSERT_ORDER = insert(orders).returning(orders.c.id)
INSERT_LINES = insert(order_lines).returning(order_lines.c.id, sort_by_parameter_order=True)
INSERT_TRANSITIONS = insert(order_transitions).returning(order_transitions.c.id, sort_by_parameter_order=True)


class SqlOrderRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, order: Order) -> None:
        """Insert a new order, its lines and its history, and give each its id.

        Three INSERTs with RETURNING, the same the ORM's flush sent, without its unit-of-work bookkeeping (about
        half the CPU of placing an order's rows, measured). The order is not kept in the session: nothing in the
        transaction that places it reads or changes it again. One with shipments (never a new one) is flushed.
        """
        if order.shipments or order.id is not None:
            self.session.add(order)
            self.session.flush()
            return
        order.id = self.session.execute(INSERT_ORDER, _row(order)).scalar_one()
        for children, statement in ((order.lines, INSERT_LINES), (order.history, INSERT_TRANSITIONS)):
            for child in children:
                child.order_id = order.id
            if children:
                ids = self.session.execute(statement, [_row(child) for child in children]).scalars().all()
                for child, child_id in zip(children, ids, strict=True):
                    child.id = child_id

    def get(self, order_id: int, *, lock: bool = False) -> Order | None:
        query = select(Order).where(orders.c.id == order_id)
        if lock:  # read again as locked: the session's copy from an unlocked read earlier may be stale by now
            query = query.with_for_update().execution_options(populate_existing=True)
        return self.session.execute(query).scalar_one_or_none()

    def lines_of(self, order_ids: Collection[int]) -> dict[int, list[OrderLine]]:
        found: dict[int, list[OrderLine]] = {}
        for line, order_id in self.session.execute(select(OrderLine, order_lines.c.order_id)
                                                   .where(order_lines.c.order_id.in_(set(order_ids)))):
            found.setdefault(order_id, []).append(line)
        return found

    def by_order_no(self, order_no: str, *, lock: bool = False) -> Order | None:
        query = select(Order).where(orders.c.order_no == order_no)
        if lock:  # read again as locked: the session's copy from an unlocked read earlier may be stale by now
            query = query.with_for_update().execution_options(populate_existing=True)
        return self.session.execute(query).scalar_one_or_none()

    def states(self, order_nos: list[str]) -> list[tuple[str, str, bool]]:
        rows = self.session.execute(select(orders.c.order_no, orders.c.status, orders.c.paid_at.is_not(None))
                                    .where(orders.c.order_no.in_(order_nos)))
        return [(order_no, status, bool(paid)) for order_no, status, paid in rows]

    def search(self, search: OrderSearch) -> tuple[list[Order], int]:
        conditions = []
        if search.user_id:
            conditions.append(orders.c.user_id == search.user_id)
        if search.statuses:
            conditions.append(orders.c.status.in_(sorted(set(search.statuses))))
        if search.order_no:
            conditions.append(orders.c.order_no == search.order_no)
        if search.created_from is not None:
            conditions.append(orders.c.created_at >= search.created_from)
        if search.created_to is not None:
            conditions.append(orders.c.created_at < search.created_to)
        total = self.session.execute(select(func.count()).select_from(orders).where(*conditions)).scalar_one()
        found = self.session.execute(
            select(Order).where(*conditions).order_by(orders.c.created_at.desc(), orders.c.id.desc())
            .offset(search.offset).limit(search.limit).options(selectinload(Order.lines))  # type: ignore[arg-type]
        ).scalars()
        return list(found), total

    def count_unpaid(self, user_id: int) -> int:
        return self.session.execute(select(func.count()).select_from(orders).where(
            orders.c.user_id == user_id, orders.c.status == OrderStatus.PENDING_PAYMENT.value)).scalar_one()

    def units_held(self, user_id: int, product_ids: Collection[int]) -> dict[int, int]:
        # The shopper's orders by ix_orders_user_created, their lines by order_id: a shopper's own orders, never a
        # product's lines across every shopper (a flash sale's product has many).
        rows = self.session.execute(
            select(order_lines.c.product_id, func.sum(order_lines.c.quantity - order_lines.c.refunded_quantity))
            .join(orders, orders.c.id == order_lines.c.order_id)
            .where(orders.c.user_id == user_id, orders.c.status.in_(sorted(s.value for s in PURCHASE_LIMIT_STATUSES)),
                   order_lines.c.product_id.in_(sorted(product_ids)))
            .group_by(order_lines.c.product_id))
        return {product_id: int(units) for product_id, units in rows if units}

    def lock_expired(self, now: datetime, limit: int) -> list[Order]:
        deadline = orders.c.pay_deadline
        return _lock_due(self.session, Order, and_(orders.c.status == OrderStatus.PENDING_PAYMENT.value,
                                                   orders.c.wallet_attempt_at.is_(None), deadline <= now),
                         deadline, limit)

    def lock_confirmable_before(self, before: datetime, held_before: datetime, limit: int,
                                skip: Collection[int] = ()) -> list[Order]:
        open_case = (select(after_sales.c.id).where(after_sales.c.order_id == orders.c.id,
                                                    after_sales.c.status.not_in(CLOSED_CASES))
                     .exists())
        clock = func.coalesce(orders.c.confirm_clock_at, orders.c.shipped_at)
        # The second arm needs no clock: however the clock was moved (under a longer limit, say), after-sales have
        # held these orders all they may now.
        due = or_(and_(~open_case, clock <= before), orders.c.shipped_at <= held_before)
        if skip:
            due = and_(due, orders.c.id.not_in(skip))
        return _lock_due(self.session, Order, and_(orders.c.status == OrderStatus.SHIPPED.value, due), clock, limit)

    def wallet_attempts_before(self, before: datetime, limit: int) -> list[Order]:
        return list(self.session.execute(
            select(Order).where(orders.c.wallet_attempt_at.is_not(None), orders.c.wallet_attempt_at <= before)
            .order_by(orders.c.wallet_attempt_at).limit(limit)).scalars())

    def unpaid_prepaid(self, prepaid_before: datetime, after_id: int, limit: int) -> list[tuple[int, str]]:
        rows = self.session.execute(
            select(orders.c.id, orders.c.order_no, orders.c.wechat_attempt).where(
                orders.c.status == OrderStatus.PENDING_PAYMENT.value, orders.c.prepaid_at.is_not(None),
                orders.c.prepaid_at <= prepaid_before, orders.c.id > after_id)
            .order_by(orders.c.id).limit(limit))
        return [(row.id, wechat_out_trade_no(row.order_no, row.wechat_attempt)) for row in rows]

    def count_unpaid_due(self, due: datetime) -> dict[str, int]:
        waiting = case((orders.c.wallet_attempt_at.is_not(None), "wallet"), (orders.c.prepaid_at.is_not(None), "wechat"),
                       else_="none")
        rows = self.session.execute(
            select(waiting, func.count()).where(orders.c.status == OrderStatus.PENDING_PAYMENT.value,
                                                orders.c.pay_deadline <= due).group_by(waiting))
        return {kind: count for kind, count in rows}


class SqlWalletReviewRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, review: WalletReview) -> None:
        self.session.add(review)
        self.session.flush()

    def get(self, review_id: int) -> WalletReview | None:
        return self.session.get(WalletReview, review_id)

    def for_order(self, order_id: int) -> WalletReview | None:
        return self.session.execute(select(WalletReview).where(wallet_reviews.c.order_id == order_id)).scalar_one_or_none()

    def search(self, *, status: str, offset: int, limit: int) -> tuple[list[WalletReview], int]:
        conditions = [wallet_reviews.c.status == status] if status else []
        return counted_page(self.session, WalletReview, wallet_reviews, conditions,
                            [wallet_reviews.c.flagged_at, wallet_reviews.c.id], offset, limit)

    def count_open(self) -> int:
        return self.session.execute(select(func.count()).select_from(wallet_reviews)
                                    .where(wallet_reviews.c.status == ReviewStatus.OPEN.value)).scalar_one()


class SqlAfterSaleRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, case: AfterSale) -> None:
        self.session.add(case)
        self.session.flush()

    def get(self, case_id: int, *, lock: bool = False) -> AfterSale | None:
        query = select(AfterSale).where(after_sales.c.id == case_id)
        if lock:  # read again as locked: the session's copy from an unlocked read earlier may be stale by now
            query = query.with_for_update().execution_options(populate_existing=True)
        return self.session.execute(query).scalar_one_or_none()

    def lock_awaiting_return_before(self, before: datetime, limit: int) -> list[AfterSale]:
        # updated_at is when the case was approved: nothing else changes an AWAITING_RETURN case.
        return _lock_due(self.session, AfterSale, and_(after_sales.c.status == "AWAITING_RETURN",
                                                       after_sales.c.updated_at <= before),
                         after_sales.c.updated_at, limit)

    def refunding_unstarted_before(self, before: datetime, after_id: int, limit: int) -> list[tuple[int, str]]:
        # updated_at is when the case went REFUNDING (starting its refund records only the number). REFUNDING cases are
        # those whose refund is under way, a handful (ix_after_sales_status_created's status); refunds' unique
        # refund_no index answers each NOT EXISTS. No number (a case of a release before numbers were recorded first)
        # is left to staff: starting it would take a new number, not idempotent.
        started = select(refunds.c.id).where(refunds.c.refund_no == after_sales.c.refund_no)
        rows = self.session.execute(
            select(after_sales.c.id, after_sales.c.case_no).where(
                after_sales.c.status == "REFUNDING", after_sales.c.refund_no != "", after_sales.c.updated_at <= before,
                after_sales.c.id > after_id, ~started.exists())
            .order_by(after_sales.c.id).limit(limit))
        return [(row.id, row.case_no) for row in rows]

    def for_order(self, order_id: int) -> list[AfterSale]:
        return list(self.session.execute(select(AfterSale).where(after_sales.c.order_id == order_id)
                                         .order_by(after_sales.c.id)).scalars())

    def case_times(self, order_ids: list[int]) -> dict[int, list[tuple[datetime, datetime | None]]]:
        if not order_ids:
            return {}
        rows = self.session.execute(
            select(after_sales.c.order_id, after_sales.c.created_at, after_sales.c.status, after_sales.c.updated_at)
            .where(after_sales.c.order_id.in_(order_ids)).order_by(after_sales.c.id))
        times: dict[int, list[tuple[datetime, datetime | None]]] = {}
        for order_id, opened, status, updated_at in rows:  # a closed case's last change closed it (AfterSale.closed_at)
            times.setdefault(order_id, []).append((opened, updated_at if status in CLOSED_CASES else None))
        return times

    def open_cases(self, line_ids: Collection[int]) -> dict[int, int]:
        if not line_ids:
            return {}
        # uq_after_sale_lines_one_open (line_id WHERE open) answers it: a page's lines, one row each at most.
        rows = self.session.execute(select(after_sale_lines.c.line_id, after_sale_lines.c.case_id)
                                    .where(after_sale_lines.c.open, after_sale_lines.c.line_id.in_(sorted(line_ids))))
        return {line_id: case_id for line_id, case_id in rows}

    def search(self, search: CaseSearch) -> tuple[list[AfterSale], int]:
        conditions = [column == value for column, value in (
            (after_sales.c.user_id, search.user_id), (after_sales.c.order_id, search.order_id),
            (after_sales.c.status, search.status),
            (after_sales.c.type, search.type), (after_sales.c.order_no, search.order_no)) if value]
        if search.created_from is not None:
            conditions.append(after_sales.c.created_at >= search.created_from)
        if search.created_to is not None:
            conditions.append(after_sales.c.created_at < search.created_to)
        return counted_page(self.session, AfterSale, after_sales, conditions,
                            [after_sales.c.created_at.desc(), after_sales.c.id.desc()], search.offset, search.limit)


class SqlRefundRepository:
    """Refunds, and the refunded amounts they reserve on orders and lines by conditional updates (CHECKs behind)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, refund: Refund) -> None:
        self.session.add(refund)
        self.session.flush()

    def get(self, refund_no: str, *, lock: bool = False) -> Refund | None:
        query = select(Refund).where(refunds.c.refund_no == refund_no)
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        return self.session.execute(query).scalar_one_or_none()

    def for_order(self, order_id: int) -> list[Refund]:
        return list(self.session.execute(select(Refund).where(refunds.c.order_id == order_id)
                                         .order_by(refunds.c.id)).scalars())

    def pending_before(self, created_before: datetime, after_id: int, limit: int) -> list[tuple[int, str]]:
        rows = self.session.execute(
            select(refunds.c.id, refunds.c.refund_no).where(
                refunds.c.status == RefundStatus.PENDING.value, refunds.c.created_at <= created_before,
                refunds.c.id > after_id)
            .order_by(refunds.c.id).limit(limit))
        return [(row.id, row.refund_no) for row in rows]

    def closed_noted_unmarked(self, step_words: str, created_since: datetime, after_id: int,
                              limit: int) -> list[tuple[int, str]]:
        # The rule of order 0017's backfill: CLOSED refunds of the recent past (ix_refunds_status_created's range,
        # not every CLOSED refund ever) checked against their order's steps (by order_id). '_' in a LATE number
        # matches itself too; the caller checks the step exactly.
        noted = select(order_transitions.c.id).where(
            order_transitions.c.order_id == refunds.c.order_id,
            order_transitions.c.reason.like("refund " + refunds.c.refund_no + step_words + "%"))
        rows = self.session.execute(
            select(refunds.c.id, refunds.c.refund_no).where(
                refunds.c.status == RefundStatus.CLOSED.value, refunds.c.created_at >= created_since,
                refunds.c.paid_after_close_at.is_(None), refunds.c.id > after_id, noted.exists())
            .order_by(refunds.c.id).limit(limit))
        return [(row.id, row.refund_no) for row in rows]

    def waiting_since(self, status: RefundStatus, *, before: datetime | None = None) -> tuple[int, datetime | None]:
        # One aggregate over ix_refunds_status_created's ABNORMAL or PENDING rows (a handful, the refunds in flight or
        # held): cheap enough for every minute.
        conditions = [refunds.c.status == status.value]
        if before is not None:
            conditions.append(refunds.c.updated_at <= before)
        count, oldest = self.session.execute(
            select(func.count(), func.min(refunds.c.updated_at)).where(*conditions)).one()
        return count, oldest

    def search(self, search: RefundSearch) -> tuple[list[ListedRefund], int]:
        conditions: list[ColumnElement[bool]] = []
        if search.status:
            conditions.append(refunds.c.status == search.status)
        if search.source:  # "after_sale" is every after_sale:<case id> too
            conditions.append(or_(refunds.c.source == search.source,
                                  refunds.c.source.startswith(f"{search.source}:", autoescape=True)))
        if search.order_no:
            conditions.append(orders.c.order_no == search.order_no)
        if search.created_from is not None:
            conditions.append(refunds.c.created_at >= search.created_from)
        if search.created_to is not None:
            conditions.append(refunds.c.created_at < search.created_to)
        total = self._count(search, conditions)
        if search.status:
            return self._page(conditions, _refund_order(search.status), search.offset, search.limit), total
        # Every status: two reads each an index serves, not one sort of every refund. Those needing staff (a
        # handful, by ix_refunds_status_created), then as many ended ones as the page has room for, newest first
        # (backwards along ix_refunds_created).
        waiting = refunds.c.status.in_(OPEN_REFUNDS)
        found = self._page([*conditions, waiting], [case((refunds.c.status == RefundStatus.ABNORMAL.value, 0),
                                                         else_=1), refunds.c.updated_at, refunds.c.id],
                           search.offset, search.limit)
        if len(found) < search.limit:
            skip = max(0, search.offset - self._count(search, [*conditions, waiting]))
            found += self._page([*conditions, ~waiting], _refund_order(RefundStatus.SUCCESS.value), skip,
                                search.limit - len(found))
        return found, total

    def _count(self, search: RefundSearch, conditions: list[ColumnElement[bool]]) -> int:
        rows = refunds.join(orders, orders.c.id == refunds.c.order_id) if search.order_no else refunds
        return self.session.execute(select(func.count()).select_from(rows).where(*conditions)).scalar_one()

    def _page(self, conditions: list[ColumnElement[bool]], order: list[ColumnElement[Any]], offset: int,
              limit: int) -> list[ListedRefund]:
        rows = self.session.execute(select(Refund, orders.c.order_no)
                                    .select_from(refunds.join(orders, orders.c.id == refunds.c.order_id))
                                    .where(*conditions).order_by(*order).offset(offset).limit(limit)).all()
        return [ListedRefund(refund, order_no) for refund, order_no in rows]

    def reserve(self, order: Order, amount_fen: int, lines: list[LineReservation]) -> bool:
        self.session.flush()
        savepoint = self.session.begin_nested()  # all or nothing: a refund paid after its close fits or moves nothing
        changed = self.session.execute(
            update(orders).where(orders.c.id == order.id, orders.c.refunded_fen + amount_fen <= orders.c.payable_fen)
            .values(refunded_fen=orders.c.refunded_fen + amount_fen)).rowcount == 1  # type: ignore[attr-defined]
        for line in lines:
            changed = changed and self.session.execute(
                update(order_lines).where(order_lines.c.id == line.line_id, order_lines.c.order_id == order.id,
                                          order_lines.c.refunded_quantity + line.quantity <= order_lines.c.quantity,
                                          order_lines.c.refunded_fen + line.amount_fen <= line.cap_fen)
                .values(refunded_quantity=order_lines.c.refunded_quantity + line.quantity,
                        refunded_fen=order_lines.c.refunded_fen + line.amount_fen)
            ).rowcount == 1  # type: ignore[attr-defined]
        if changed:
            savepoint.commit()
        else:
            savepoint.rollback()
        self._reload(order)
        return changed

    def give_back(self, order: Order, refund: Refund) -> None:
        self.session.flush()
        self.session.execute(update(orders).where(orders.c.id == order.id)
                             .values(refunded_fen=orders.c.refunded_fen - refund.amount_fen))
        for line in refund.lines:
            self.session.execute(update(order_lines).where(order_lines.c.id == line.line_id)
                                 .values(refunded_quantity=order_lines.c.refunded_quantity - line.quantity,
                                         refunded_fen=order_lines.c.refunded_fen - line.amount_fen))
        self._reload(order)

    def _reload(self, order: Order) -> None:
        self.session.refresh(order, ["refunded_fen"])
        for line in order.lines:
            self.session.refresh(line, ["refunded_quantity", "refunded_fen"])


OPEN_REFUNDS = (RefundStatus.ABNORMAL.value, RefundStatus.PENDING.value)  # those needing staff, in that order


def _refund_order(status: str) -> list[ColumnElement[Any]]:
    """One status's order in staff's list: ABNORMAL and PENDING longest waiting first (updated_at: when it became so,
    what the alerts measure), the ended ones newest first."""
    if status in OPEN_REFUNDS:
        return [refunds.c.updated_at, refunds.c.id]
    return [refunds.c.created_at.desc(), refunds.c.id.desc()]


# The statements of SqlSubmitAttempts, built once per dialect as idempotency's CLAIMS are: one runs on every keyed submit.
_ATTEMPT = {"user_id": bindparam("user_id"), "idempotency_key": bindparam("key"), "order_no": bindparam("order_no"),
            "created_at": bindparam("created_at")}
_ATTEMPT_KEY = [submit_attempts.c.user_id, submit_attempts.c.idempotency_key]
RECORD_ATTEMPT = {name: insert_of(submit_attempts).values(_ATTEMPT).on_conflict_do_nothing(index_elements=_ATTEMPT_KEY)
                  .returning(submit_attempts.c.order_no)
                  for name, insert_of in CONFLICT_INSERTS.items()}


def _move_attempt(insert_of: Any) -> Any:
    statement = insert_of(submit_attempts).values(_ATTEMPT)
    return statement.on_conflict_do_update(index_elements=_ATTEMPT_KEY, set_={
        "order_no": statement.excluded.order_no, "created_at": statement.excluded.created_at})


MOVE_ATTEMPT = {name: _move_attempt(insert_of) for name, insert_of in CONFLICT_INSERTS.items()}
LAST_ATTEMPT = select(submit_attempts.c.order_no).where(submit_attempts.c.user_id == bindparam("user_id"),
                                                        submit_attempts.c.idempotency_key == bindparam("key"))


class SqlSubmitAttempts:
    """`record` and `move` commit at once, apart from the unit of work's transaction: one statement each on a pooled
    connection in autocommit (no Session, no BEGIN and COMMIT round trips: `record` runs on every keyed submit)."""

    def __init__(self, work: SqlOrderUnitOfWork) -> None:
        self.work = work

    def _apart(self) -> Connection:
        return self.work.engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def record(self, user_id: int, key: str, order_no: str, now: datetime) -> bool:
        with self._apart() as apart:
            return apart.execute(RECORD_ATTEMPT[apart.dialect.name], {
                "user_id": user_id, "key": key, "order_no": order_no, "created_at": now}).first() is not None

    def last(self, user_id: int, key: str) -> str | None:
        return self.work.session.execute(LAST_ATTEMPT, {"user_id": user_id, "key": key}).scalar_one_or_none()

    def move(self, user_id: int, key: str, order_no: str, now: datetime) -> None:
        values = {"user_id": user_id, "key": key, "order_no": order_no, "created_at": now}
        if self.work.engine.dialect.name == "sqlite":
            # SQLite (dev only) runs one write transaction at a time (BEGIN IMMEDIATE): a connection of its own would
            # wait for this one, which holds the key's claim. There the move commits with the order.
            self.work.session.execute(MOVE_ATTEMPT["sqlite"], values)
            return
        with self._apart() as apart:
            apart.execute(MOVE_ATTEMPT[apart.dialect.name], values)


class SqlOrderUnitOfWork(SqlUnitOfWork, OrderUnitOfWork):
    """The order unit of work on the service database (call start_mappers() first)."""

    job_rounds = job_rounds

    def __init__(self, engine: Engine, producer: str) -> None:
        super().__init__(engine, producer)
        self.submit_attempts = SqlSubmitAttempts(self)  # `record` needs no block: it commits on its own

    def __enter__(self) -> Self:
        super().__enter__()
        self.carts = SqlCartRepository(self.session)
        self.orders = SqlOrderRepository(self.session)
        self.after_sales = SqlAfterSaleRepository(self.session)
        self.refunds = SqlRefundRepository(self.session)
        self.wallet_reviews = SqlWalletReviewRepository(self.session)
        return self
