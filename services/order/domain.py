"""Order domain: the cart, the order aggregate, its one table-driven state machine and the pricing rule."""

from __future__ import annotations

import enum
import math
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Self, TypeVar

from services.common.errors import Conflict, DomainError, InvalidInput, NotFound
from services.common.formats import FULL_PRICE_BP, shopper_actor
from services.common.order_steps import StepKind

MAX_CART_LINES = 100
MAX_LINE_QUANTITY = 999
DEFAULT_PAY_MINUTES = 30
# The product service releases an order's stock reservation 2 hours after it was made, whatever the order's
# deadline (services/product RESERVATION_TTL): an order must stop being payable well before, so that its
# order-paid reaches the product service while the units are still held (else they may be sold twice).
MIN_PAY_MINUTES, MAX_PAY_MINUTES = 5, 60
# A payment the order service learns of late (a wallet answer or WeChat Pay notify lost while a service was down, a
# WeChat Pay transaction that could not be closed) no longer makes the order PAID once this long has passed since it
# was placed: the order is cancelled and the payment refunded, since the stock may be on sale again. Half an hour
# short of the product service's 2-hour hold, for order-paid to reach it while the units are still held; half an
# hour past the longest payment window, so a payment on time that is learned of soon is never refused.
PAYABLE_WITHIN = timedelta(hours=2) - timedelta(minutes=30)
DEFAULT_AUTO_CONFIRM_DAYS = 10
# After-sales cases hold an order's auto-confirm this long in total at most (ORDER_AUTO_CONFIRM_MAX_PAUSE_DAYS): else
# a shopper opening and withdrawing cases again and again could keep the order from completing for ever. Fifteen days
# cover a return: approval, ORDER_RETURN_SHIP_DAYS to post it, the parcel back, staff receiving it.
DEFAULT_AUTO_CONFIRM_MAX_PAUSE_DAYS = 15
# WeChat Pay transactions one order may open (`Order.next_wechat_attempt`): "_99" keeps `<order_no>_<attempt>` within
# WeChat Pay's 32 characters of out_trade_no (order numbers are 28).
MAX_WECHAT_ATTEMPTS = 99


class OrderStatus(enum.StrEnum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    SHIPPED = "SHIPPED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    CANCEL_REQUESTED = "CANCEL_REQUESTED"
    REFUNDING = "REFUNDING"
    REFUNDED = "REFUNDED"
    CLOSED = "CLOSED"


S = OrderStatus

# The one state machine: (from, action) -> to. The fulfilment issue adds its rows here.
TRANSITIONS: dict[tuple[OrderStatus, str], OrderStatus] = {
    (S.PENDING_PAYMENT, "pay"): S.PAID,
    (S.PENDING_PAYMENT, "cancel"): S.CANCELLED,
    (S.PENDING_PAYMENT, "expire"): S.CANCELLED,
    (S.PENDING_PAYMENT, "expire_paid_late"): S.CANCELLED,  # a payment came too late (PAYABLE_WITHIN): refunded
    (S.PAID, "ship"): S.SHIPPED,
    (S.PAID, "cancel_unshipped"): S.SHIPPED,  # part shipped, the rest never will: everything left has shipped
    (S.PAID, "request_cancel"): S.CANCEL_REQUESTED,
    (S.CANCEL_REQUESTED, "approve_cancel"): S.REFUNDING,
    (S.CANCEL_REQUESTED, "reject_cancel"): S.PAID,
    (S.SHIPPED, "confirm_receipt"): S.COMPLETED,
    (S.SHIPPED, "auto_confirm"): S.COMPLETED,
    (S.REFUNDING, "refunded"): S.REFUNDED,
    # No use case applies "close" yet; CLOSED stays as part of the contract (README: "Order states a client sees").
    (S.REFUNDED, "close"): S.CLOSED,
    (S.CANCELLED, "close"): S.CLOSED,
    (S.COMPLETED, "close"): S.CLOSED,
}

K = StepKind
# The kind of the history step each action of the state machine records (services.common.order_steps: the closed set
# clients read). Every action of TRANSITIONS has one; the steps that keep the status name theirs (`record_step`).
ACTION_KINDS: dict[str, StepKind] = {
    "pay": K.PAID,
    "cancel": K.CANCELLED_BY_SHOPPER,
    "expire": K.CANCELLED_UNPAID_TIMEOUT,
    "expire_paid_late": K.CANCELLED_PAID_TOO_LATE,
    "ship": K.SHIPPED,
    "cancel_unshipped": K.UNSHIPPED_CANCELLED,
    "request_cancel": K.CANCEL_REQUESTED,
    "approve_cancel": K.CANCEL_APPROVED,
    "reject_cancel": K.CANCEL_REJECTED,
    "confirm_receipt": K.RECEIVED,
    "auto_confirm": K.AUTO_COMPLETED,
    "refunded": K.REFUNDED_IN_FULL,
    "close": K.CLOSED,
}

# The orders whose units count against a product's purchase limit (限购, checkout): those holding units or that took
# them. Not CANCELLED or CLOSED, nor a paid order whose cancellation was approved (REFUNDING, REFUNDED): its units went
# back on sale. CANCEL_REQUESTED still holds them until staff decide. Units refunded off a line (returned, or never
# shipped) no longer count either.
PURCHASE_LIMIT_STATUSES = frozenset({S.PENDING_PAYMENT, S.PAID, S.CANCEL_REQUESTED, S.SHIPPED, S.COMPLETED})


@dataclass
class Step:
    """One step of a history (an order's, an after-sales case's): who moved it to `status`, when and why.

    Staff see every step as recorded. The shopper sees only the steps `shopper_visible` (every status change, and
    the notes written for them), each with `shopper_reason` for its reason: what staff typed and internal notes
    (refunds stuck at a channel, wallet reconciliation) stay with staff. Whoever records a step says which it is.
    The defaults hide: a step recorded without them (by a pod of a release before they existed) is staff's.
    """

    status: str
    actor: str
    at: datetime
    reason: str = ""
    shopper_visible: bool = False
    shopper_reason: str = ""
    id: int | None = None

    def as_shopper_sees_it(self) -> Self:
        """This step as its shopper reads it: their reason for `reason`, any staff member as "staff" (which staff
        member acted is for staff)."""
        return replace(self, actor=shopper_actor(self.actor), reason=self.shopper_reason, shopper_visible=True,
                       id=None)


StepT = TypeVar("StepT", bound=Step)


def shopper_steps(history: Iterable[StepT]) -> list[StepT]:
    """A history as its shopper sees it: only the steps shown to them, each as they read it."""
    return [step.as_shopper_sees_it() for step in history if step.shopper_visible]


@dataclass
class Transition(Step):
    """A step of an order's history; `kind` says which (services.common.order_steps.StepKind)."""

    order_id: int | None = None
    kind: str = ""


@dataclass
class ShipmentLine:
    """How many units of one order line went into a parcel."""

    line_id: int
    quantity: int
    id: int | None = None
    shipment_id: int | None = None


@dataclass
class Shipment:
    """One parcel handed to a carrier: some or all of the order's unshipped units."""

    shipment_no: str
    carrier: str
    tracking_no: str
    shipped_at: datetime
    actor: str
    lines: list[ShipmentLine]
    id: int | None = None
    order_id: int | None = None


@dataclass
class OrderLine:
    """A line as bought: a snapshot of the SKU, never re-read from the catalogue."""

    sku_id: int
    product_id: int
    name: str
    spec: str
    price_fen: int
    quantity: int
    category_id: int = 0
    brand_id: int = 0
    image: str = ""
    coupon_applied: bool = True  # in the order's coupon's categories (or the coupon has none): the line carries it
    refunded_quantity: int = 0  # reserved by refunds under way or done (services.order.refunds)
    refunded_fen: int = 0
    id: int | None = None
    order_id: int | None = None

    @property
    def total_fen(self) -> int:
        return self.price_fen * self.quantity


@dataclass(frozen=True)
class Amounts:
    """An order's money in fen; payable = items - level - coupon - points + freight, never below 0."""

    items_total_fen: int
    level_discount_fen: int
    coupon_discount_fen: int
    points_discount_fen: int
    freight_fen: int
    payable_fen: int


@dataclass(frozen=True)
class FreightRule:
    """Flat freight, waived once the goods (after discounts) reach the threshold; 0 threshold = never waived."""

    flat_fen: int = 0
    free_from_fen: int = 0

    def freight(self, goods_fen: int) -> int:
        if self.free_from_fen and goods_fen >= self.free_from_fen:
            return 0
        return self.flat_fen


def level_discount(items_total_fen: int, discount_bp: int) -> int:
    """The member level discount for a rate of `discount_bp` (the share paid, in basis points: 9025 pays 90.25%),
    floored to the fen (the one rounding rule: discounts round down)."""
    if not 0 < discount_bp <= FULL_PRICE_BP:
        return 0
    return items_total_fen * (FULL_PRICE_BP - discount_bp) // FULL_PRICE_BP


def price(items_total_fen: int, *, discount_bp: int = FULL_PRICE_BP, coupon_fen: int = 0, points_fen: int = 0,
          freight: FreightRule = FreightRule()) -> Amounts:
    """The order's amounts, used by preview and submit alike; `discount_bp` is the member's rate (level x plan) in
    basis points, exact.

    Discounts apply in order level -> coupon -> points, each capped by what is left, so the goods
    never cost less than 0; freight is added last. Integer fen throughout; any fraction of a fen a
    percentage produces is dropped from the discount (floor), never charged twice.
    """
    if items_total_fen < 0 or coupon_fen < 0 or points_fen < 0:
        raise InvalidInput("AMOUNT_INVALID", "amounts cannot be negative")
    level = min(level_discount(items_total_fen, discount_bp), items_total_fen)
    coupon = min(coupon_fen, items_total_fen - level)
    points = min(points_fen, items_total_fen - level - coupon)
    goods = items_total_fen - level - coupon - points
    freight_fen = freight.freight(goods)
    return Amounts(items_total_fen, level, coupon, points, freight_fen, goods + freight_fen)


@dataclass
class Address:
    """The shipping address as it was when the order was placed."""

    name: str
    phone: str
    province: str
    city: str
    district: str
    detail: str


@dataclass
class Order:
    user_id: int
    order_no: str
    status: str
    lines: list[OrderLine]
    address: Address
    items_total_fen: int
    level_discount_fen: int
    coupon_discount_fen: int
    points_discount_fen: int
    freight_fen: int
    payable_fen: int
    pay_deadline: datetime
    created_at: datetime
    updated_at: datetime
    coupon_id: int = 0
    points_used: int = 0
    note: str = ""
    paid_at: datetime | None = None
    pay_channel: str = ""
    out_trade_no: str = ""
    prepaid_at: datetime | None = None  # when a WeChat Pay prepay was made: reconciliation asks about it later
    # When the wallet was last asked to pay it, until what the wallet did is known (paid, credited back or
    # never charged): reconciliation asks the member service about it, and the payment timeout waits for it.
    wallet_attempt_at: datetime | None = None
    # The WeChat Pay transaction a prepay opens (`wechat_out_trade_no`): the first is the order number; a wallet
    # attempt closes it before charging, and WeChat Pay then takes no payment under that number again, so a WeChat
    # payment after a wallet that charged nothing opens the next one.
    wechat_attempt: int = 1
    refunded_fen: int = 0  # reserved by refunds under way or done; never above payable_fen (CHECK)
    history: list[Transition] = field(default_factory=list)
    shipments: list[Shipment] = field(default_factory=list)
    shipped_at: datetime | None = None    # when the last unshipped units left: the auto-confirm clock starts
    completed_at: datetime | None = None  # receipt confirmed (by the shopper or automatically): delivery
    # Where the auto-confirm clock counts from once after-sales cases held it (`confirm_clock`): shipped_at moved on
    # by the time they were open, up to the most they may hold it. None: shipped_at (no case held it, or the job has
    # not looked since).
    confirm_clock_at: datetime | None = None
    id: int | None = None

    @property
    def amounts(self) -> Amounts:
        return Amounts(self.items_total_fen, self.level_discount_fen, self.coupon_discount_fen,
                       self.points_discount_fen, self.freight_fen, self.payable_fen)

    def can(self, action: str) -> bool:
        return (OrderStatus(self.status), action) in TRANSITIONS

    def apply(self, action: str, *, actor: str, now: datetime, reason: str = "", shopper_reason: str) -> None:
        """Move along the state machine, recording who, when and why; Conflict if not allowed from here.

        The shopper sees every status change, with `shopper_reason` ("" for none) where staff read `reason`,
        which may be staff's own words or internal wording: the caller says what the shopper is told.
        """
        target = TRANSITIONS.get((OrderStatus(self.status), action))
        if target is None or (action == "request_cancel" and self.shipments):  # part shipped: after-sales instead
            raise self.conflict(action)
        self.status = target.value
        self.updated_at = now
        self.history.append(Transition(status=target.value, actor=actor, at=now, reason=reason,
                                       kind=ACTION_KINDS[action], shopper_visible=True,
                                       shopper_reason=shopper_reason[:255]))

    @property
    def wechat_out_trade_no(self) -> str:
        """The out_trade_no of the order's current WeChat Pay transaction: the one to prepay, close and query."""
        return wechat_out_trade_no(self.order_no, self.wechat_attempt)

    @property
    def open_wechat_trade(self) -> str | None:
        """The WeChat Pay transaction the shopper may have been handed (prepaid, `prepaid_at`), to be closed before the
        order is paid otherwise or cancelled; None when no prepay of the current one was handed out."""
        return self.wechat_out_trade_no if self.prepaid_at is not None else None

    def has_wechat_trade(self, out_trade_no: str) -> bool:
        """Whether `out_trade_no` is one of the WeChat Pay transactions this order opened, the current or an earlier."""
        return any(out_trade_no == wechat_out_trade_no(self.order_no, attempt)
                   for attempt in range(1, self.wechat_attempt + 1))

    def next_wechat_attempt(self) -> None:
        """Open the next WeChat Pay transaction: the current one was closed unpaid (by a wallet attempt that then
        charged nothing). Conflict WECHATPAY_TRANSACTION_CLOSED once MAX_WECHAT_ATTEMPTS are used up."""
        if self.wechat_attempt >= MAX_WECHAT_ATTEMPTS:
            raise Conflict("WECHATPAY_TRANSACTION_CLOSED", "WeChat Pay takes no more payments for this order; pay "
                           "from the wallet, or place the order again", details={"status": self.status})
        self.wechat_attempt += 1
        self.prepaid_at = None  # nothing of the new one was handed out yet

    def stock_may_be_released(self, now: datetime) -> bool:
        """Too late to become PAID: the units it reserved may be back on sale (PAYABLE_WITHIN after it was placed)."""
        return now >= self.created_at + PAYABLE_WITHIN

    def record_step(self, *, kind: StepKind, actor: str, now: datetime, reason: str, shopper: bool) -> None:
        """Record a step of `kind` that leaves the status as it is (a parcel of a partly shipped order, a note).

        `shopper`: whether the order's shopper sees it, reason and all (a parcel), or only staff (a note).
        """
        self.updated_at = now
        self.history.append(Transition(status=self.status, actor=actor, at=now, reason=reason[:255], kind=kind,
                                       shopper_visible=shopper, shopper_reason=reason[:255] if shopper else ""))

    def shopper_history(self) -> list[Transition]:
        """The history as the order's shopper sees it (`shopper_steps`)."""
        return shopper_steps(self.history)

    def conflict(self, action: str) -> Conflict:
        return Conflict("ORDER_STATE_CONFLICT", f"an order in {self.status} cannot {action.replace('_', ' ')}",
                        details={"status": self.status, "action": action})

    def unshipped(self) -> dict[int, int]:
        """Units not shipped yet, by line id (lines fully shipped are left out)."""
        left = {line.id: line.quantity for line in self.lines if line.id is not None}
        for shipment in self.shipments:
            for item in shipment.lines:
                left[item.line_id] -= item.quantity
        return {line_id: quantity for line_id, quantity in left.items() if quantity > 0}

    def units_to_ship(self) -> list[tuple[OrderLine, int]]:
        """Every line with its units still to ship (0: shipped in full), for a parcel's waybill.

        Only a PAID order, partly shipped or not, has units to ship: any other is ORDER_STATE_CONFLICT (a SHIPPED one
        shipped them all; unpaid, cancelled or refunded ones never will), so no receiver is read for nothing.
        """
        if OrderStatus(self.status) != S.PAID:
            raise Conflict("ORDER_STATE_CONFLICT", f"a {self.status} order has nothing to ship",
                           details={"status": self.status})
        left = self.unshipped()
        return [(line, left.get(line.id or 0, 0)) for line in self.lines]

    def ship(self, *, carrier: str, tracking_no: str, lines: dict[int, int] | None, actor: str,
             now: datetime) -> Shipment:
        """Hand some units (`lines`: line id -> quantity; None: all unshipped) to a carrier.

        A PAID order stays PAID, its shipments listed, until its last units ship; that shipment makes
        it SHIPPED (and starts the auto-confirm clock). Each parcel is in the history either way.
        """
        if not self.can("ship"):
            raise self.conflict("ship")
        left = self.unshipped()
        wanted = dict(left) if lines is None else lines
        unknown = sorted(set(wanted) - {line.id for line in self.lines})
        if unknown:
            raise InvalidInput("LINE_NOT_IN_ORDER", "these lines are not in the order", details={"lines": unknown})
        too_many = {line_id: left.get(line_id, 0) for line_id, quantity in wanted.items()
                    if not 0 < quantity <= left.get(line_id, 0)}
        if too_many or not wanted:
            raise Conflict("SHIP_QUANTITY_INVALID", "ship between 1 and the unshipped units of each line",
                           details={"unshipped": {str(k): v for k, v in (too_many or left).items()}})
        if any(s.carrier == carrier and s.tracking_no == tracking_no for s in self.shipments):
            raise Conflict("SHIPMENT_DUPLICATE", "this tracking number is already on the order",
                           details={"tracking_no": tracking_no})
        shipment = Shipment(shipment_no=f"{self.order_no}-{len(self.shipments) + 1}", carrier=carrier,
                            tracking_no=tracking_no, shipped_at=now, actor=actor,
                            lines=[ShipmentLine(line_id, quantity) for line_id, quantity in sorted(wanted.items())])
        self.shipments.append(shipment)
        reason = f"{carrier} {tracking_no}"
        if wanted == left:
            self.apply("ship", actor=actor, now=now, reason=reason, shopper_reason=reason)
            self.shipped_at = now
        else:
            self.record_step(kind=K.PARTLY_SHIPPED, actor=actor, now=now, reason=f"partly shipped: {reason}",
                             shopper=True)
        return shipment

    def cancel_unshipped(self, *, actor: str, now: datetime, reason: str, shopper_reason: str) -> dict[int, int]:
        """Staff give up on the units of a partly shipped order that will never ship (out of stock, discontinued):
        returns them (line id -> units) for the caller to refund and restock. Everything left has shipped, so the
        order is SHIPPED and the auto-confirm clock starts now (the shopper gets the whole window from this step).

        Only a PAID order with parcels (ORDER_STATE_CONFLICT otherwise: one with none is cancelled whole, through
        the shopper's cancellation and its review; a SHIPPED one has nothing left to ship). Staff read which units
        and `reason` in the history; the shopper reads `shopper_reason`.
        """
        if OrderStatus(self.status) != S.PAID or not self.shipments:
            raise Conflict("ORDER_STATE_CONFLICT", "only a partly shipped order (PAID, with parcels) can have its "
                           "unshipped units cancelled" + ("; cancel the whole order instead" if self.status == S.PAID
                                                          else ""),
                           details={"status": self.status, "action": "cancel_unshipped",
                                    "shipments": len(self.shipments)})
        not_refunded = {line.id: line.quantity - line.refunded_quantity for line in self.lines}
        units = {line_id: min(quantity, not_refunded[line_id]) for line_id, quantity in self.unshipped().items()}
        units = {line_id: quantity for line_id, quantity in units.items() if quantity > 0}
        if not units:  # pragma: no cover - a PAID order with parcels has units left to ship
            raise Conflict("NOTHING_UNSHIPPED", "no units of this order are left to ship",
                           details={"status": self.status, "action": "cancel_unshipped"})
        listed = ", ".join(f"line {line_id} x{quantity}" for line_id, quantity in sorted(units.items()))
        self.apply("cancel_unshipped", actor=actor, now=now, reason=f"unshipped units cancelled ({listed}): {reason}"[:255],
                   shopper_reason=shopper_reason)
        self.shipped_at = now
        return units

    def confirm_receipt(self, *, actor: str, now: datetime, reason: str = "receipt confirmed",
                        automatic: bool = False) -> None:
        """Complete the SHIPPED order: its shopper confirmed receipt, or the auto-confirm job did (`automatic`)."""
        self.apply("auto_confirm" if automatic else "confirm_receipt", actor=actor, now=now, reason=reason,
                   shopper_reason=reason)
        self.completed_at = now

    def confirm_clock(self, cases: list[tuple[datetime, datetime | None]], *, now: datetime,
                      max_pause: timedelta) -> datetime | None:
        """Where the auto-confirm clock of this SHIPPED order counts from, given its after-sales cases as (opened,
        closed or None while open): shipped_at, moved on by the time any case was open since it shipped (cases
        open at once count once; an open one counts up to `now`), but by `max_pause` at most, however many cases
        the shopper opened and withdrew. None while a case is open and the pause is still under `max_pause`: the
        clock stands still, and resumes when the case closes. Once the pause reaches `max_pause` the clock runs
        again, a case open or not (shipped_at + max_pause): the case goes on after the order completes."""
        assert self.shipped_at is not None
        paused, counted_to, still_open = timedelta(0), self.shipped_at, False
        for opened, closed in sorted(cases, key=lambda case: case[0]):
            still_open = still_open or closed is None
            end = now if closed is None else closed
            start = max(opened, counted_to)
            if end > start:
                paused += end - start
                counted_to = end
        if still_open and paused < max_pause:
            return None
        return self.shipped_at + min(paused, max_pause)

    def kept(self) -> list[KeptLine]:
        """What the shopper keeps of each line once refunds (under way or done) are taken off: the units and the
        fen paid for them (the line's paid share, freight excluded, less what was refunded). Lines refunded in
        full are left out."""
        shares = paid_shares(self)
        return [KeptLine(line, line.quantity - line.refunded_quantity, shares[line.id or 0] - line.refunded_fen)
                for line in self.lines if line.quantity > line.refunded_quantity]


@dataclass(frozen=True)
class KeptLine:
    """One order line as the shopper keeps it: `quantity` units of `line.quantity`, `kept_fen` of what was paid."""

    line: OrderLine
    quantity: int
    kept_fen: int


def new_order(*, user_id: int, order_no: str, lines: list[OrderLine], address: Address, amounts: Amounts,
              now: datetime, pay_minutes: int, coupon_id: int = 0, points_used: int = 0, note: str = "") -> Order:
    order = Order(user_id=user_id, order_no=order_no, status=S.PENDING_PAYMENT.value, lines=lines, address=address,
                  items_total_fen=amounts.items_total_fen, level_discount_fen=amounts.level_discount_fen,
                  coupon_discount_fen=amounts.coupon_discount_fen, points_discount_fen=amounts.points_discount_fen,
                  freight_fen=amounts.freight_fen, payable_fen=amounts.payable_fen,
                  pay_deadline=now + timedelta(minutes=pay_minutes), created_at=now, updated_at=now,
                  coupon_id=coupon_id, points_used=points_used, note=note)
    order.history.append(Transition(status=S.PENDING_PAYMENT.value, actor=f"user:{user_id}", at=now, reason="placed",
                                    kind=K.PLACED, shopper_visible=True, shopper_reason="placed"))
    return order


def new_order_no(now: datetime) -> str:
    """Unique, sortable by time, unguessable: 20 digits of time then 8 random hex characters."""
    return now.strftime("%Y%m%d%H%M%S%f") + secrets.token_hex(4)


def wechat_out_trade_no(order_no: str, attempt: int) -> str:
    """The out_trade_no of an order's WeChat Pay transaction number `attempt`: the order number for the first (as every
    order had before there could be more), `<order_no>_<attempt>` after it (WeChat Pay: 6-32 of [0-9A-Za-z_-|*])."""
    return order_no if attempt == 1 else f"{order_no}_{attempt}"


def order_no_of_trade(out_trade_no: str) -> str:
    """The order number of a WeChat Pay transaction of ours (`wechat_out_trade_no`); whether the order opened it is
    `Order.has_wechat_trade`'s to say."""
    return out_trade_no.partition("_")[0]


def plain(text: str, limit: int) -> str:
    """Free text as stored: without NUL characters (PostgreSQL refuses them), trimmed, cut to `limit`."""
    return text.replace("\x00", "").strip()[:limit]


def order_not_found() -> NotFound:
    return NotFound("ORDER_NOT_FOUND", "no such order")


@dataclass
class CartItem:
    user_id: int
    sku_id: int
    product_id: int
    quantity: int
    added_price_fen: int
    created_at: datetime
    selected: bool = True
    id: int | None = None


def check_quantity(quantity: int) -> None:
    if not 1 <= quantity <= MAX_LINE_QUANTITY:
        raise InvalidInput("QUANTITY_INVALID", f"quantity must be 1 to {MAX_LINE_QUANTITY}",
                           details={"quantity": f"1..{MAX_LINE_QUANTITY}"})


def add_to_cart(items: list[CartItem], *, user_id: int, sku_id: int, product_id: int, quantity: int,
                price_fen: int, now: datetime) -> tuple[CartItem, bool]:
    """Merge into the SKU's line or start a new one; returns the line and whether it is new."""
    check_quantity(quantity)
    existing = next((item for item in items if item.sku_id == sku_id), None)
    if existing is not None:
        if existing.quantity + quantity > MAX_LINE_QUANTITY:  # the request is fine; the line cannot take it
            raise DomainError("CART_LINE_FULL", f"this cart line already holds {existing.quantity}; a line holds at "
                              f"most {MAX_LINE_QUANTITY}", details={"in_cart": existing.quantity,
                                                                    "can_add": MAX_LINE_QUANTITY - existing.quantity})
        existing.quantity += quantity
        existing.selected = True
        return existing, False
    if len(items) >= MAX_CART_LINES:
        raise DomainError("CART_FULL", f"a cart holds at most {MAX_CART_LINES} lines")
    item = CartItem(user_id=user_id, sku_id=sku_id, product_id=product_id, quantity=quantity,
                    added_price_fen=price_fen, created_at=now)
    return item, True


# -- refunds (services.order.refunds runs them) ---------------------------------------------------

class RefundStatus(enum.StrEnum):
    PENDING = "PENDING"    # amount reserved, the channel is working on it
    SUCCESS = "SUCCESS"    # the money is back with the shopper
    CLOSED = "CLOSED"      # the channel gave up, or staff closed an ABNORMAL one: the reserved amount is free again
    # WeChat Pay could not pay it back (e.g. the card is gone). Not an end: the merchant may still complete it at
    # WeChat Pay (same out_refund_no), so the amount stays reserved until it succeeds or staff close it.
    ABNORMAL = "ABNORMAL"


@dataclass(frozen=True)
class RefundItem:
    """What to refund of one order line: how many units (may be 0 for a price adjustment) and how much money."""

    line_id: int
    quantity: int
    amount_fen: int


@dataclass
class RefundLine:
    line_id: int
    quantity: int
    amount_fen: int
    id: int | None = None
    refund_id: int | None = None


@dataclass
class Refund:
    """Money going back to the shopper through the channel the order was paid with (and, for cancelled unshipped
    units, the points spent on them, credited back by the member service when it succeeds)."""

    refund_no: str
    order_id: int
    source: str  # "cancel" | "after_sale:<id>": who started it, and whom SETTLED_LISTENERS tell when it ends
    status: str
    amount_fen: int
    channel: str
    reason: str
    actor: str
    created_at: datetime
    updated_at: datetime
    lines: list[RefundLine] = field(default_factory=list)
    channel_refund_id: str = ""  # WeChat Pay's refund_id once known
    settled_at: datetime | None = None
    points_returned: int = 0  # points spent on the units, given back with it (cancel-unshipped's; 0 for the others)
    paid_after_close_at: datetime | None = None  # CLOSED here, then WeChat Pay reported it paid: its units are refunded
    # paid after close while open refunds of the order held its amounts: neither counted nor paid twice until they end
    paid_after_close_waiting_at: datetime | None = None
    id: int | None = None


def paid_shares(order: Order) -> dict[int, int]:
    """What each line (by id) was paid, in fen: the goods part of payable (freight excluded).

    The level discount is spread over every line in proportion to its total; the coupon only over the lines
    it applies to (`coupon_applied`: its categories), in proportion to their totals, up to what they cost after
    the level discount (anything it took beyond that came off the other lines); points over what every line
    still cost then. So the goods are split first between the coupon's lines (floored) and the others (the
    rest), then within each group by line totals, floored, the group's last line taking what the floors left
    over. The shares add up to the goods exactly; a coupon of every category splits exactly as before.

    No line is paid more than its total (`price_fen * quantity`, what CHECK ck_order_lines_refund_within_total lets
    it refund): what the floors left can be more than a cheap last line costs (a 1-fen gift after two 1999s at a
    95% level takes 2 fen), so `_within_totals` caps it and gives the rest to its group's other lines. Not its
    total after the level discount: shares within the totals may pass that (20 of [95, 95, 20] at 95%, whose 95%
    is 19) and may have been refunded, and a share must never drop below what its line refunded.
    """
    shares = _spread(order, order.payable_fen - order.freight_fen)
    capped: dict[int, int] = {}
    for group in _groups(order):
        capped |= _within_totals(shares, group)
    return {line.id or 0: capped[line.id or 0] for line in order.lines}


def points_shares(order: Order) -> dict[int, int]:
    """The points the order spent (`points_used`) by line, spread as `paid_shares` spreads the goods: points
    came off what each line still cost after the level discount and the coupon, the proportion the goods are split
    by. Floored, each group's last line taking what the floors left: they add up to `points_used` exactly.

    No line carries more points than its total leaves room for beside its paid share: its cash share plus its
    points' value at the order's rate (`points_discount_fen` for `points_used`) stays within `price_fen * quantity`,
    the bound the cash share keeps (`_within_totals`). Else a cancelled cheap line gives back more than it was worth
    (a 1-fen gift after two 1999s with 1998 points is paid 1 fen and the floors leave it 2 points: 3 fen for a 1-fen
    line). What the floors put above a line's room goes to the lines before and after it with room, in line order,
    across the coupon's lines and the others alike (points are not the coupon's: each group's points may pass its
    room by a point or so, the floors of the cash and of the points adding up). Not within what the line cost after
    the discounts: its cash share alone may pass that (`paid_shares`), and a line may not give back less cash.
    Where no line passes its room (nearly every order), the shares are those of the plain spread exactly.

    There is always room: the lines' rooms add up to the level discount, the coupon and the points' fen, so at least
    `points_used` points. Whole points fill them exactly while a fen is a whole number of points (always with the
    member service, 1 point a fen, at most half of the goods). Were a point worth an odd fraction of a fen, the rooms
    floored to whole points could fall a few points short: those go to lines with part of a point of room left, a
    point each, which pass their room by less than a point's value.

    Lowering a line's points cannot unsettle points already given back: a refund's points are worked out once, when
    it is reserved, and kept on it (`Refund.points_returned`); points go back by line only with cancel-unshipped,
    once per order (the order is SHIPPED after it; a CLOSED one started again gave nothing back, and is worked out
    anew); after-sales refunds give none back, only count their units first (`line_points_returned`), and a
    whole-order cancellation gives back the order's hold, not shares, and cannot follow a partial one. So a line
    lowered here that had refunds under the plain spread either gave its points back already, by a refund that
    keeps its number, with no refund of the order giving points after it, or gave none back, and its units still
    to come take this share. And the shares depend on nothing refunds change, so they stay as they are from then on.
    """
    shares = _spread(order, order.points_used)
    used, fen = order.points_used, order.points_discount_fen
    if not fen:  # the points took nothing off: worth nothing on any line
        return shares
    paid = paid_shares(order)
    rooms = {line.id or 0: Fraction((line.total_fen - paid[line.id or 0]) * used, fen) for line in order.lines}
    shares, left = _within_caps(shares, order.lines, {line_id: math.floor(room) for line_id, room in rooms.items()})
    if left:
        shares, left = _within_caps(shares, order.lines, {line_id: math.ceil(room) for line_id, room in rooms.items()},
                                    extra=left)
    assert not left, "the lines' rooms add up to at least the points used"
    return shares


def _spread(order: Order, amount: int) -> dict[int, int]:
    """`amount` over the lines (by id) in proportion to what each cost after the level discount and the coupon:
    between the coupon's lines (floored) and the others (the rest), then within each group by line totals."""
    scoped, others = _groups(order)
    scoped_part = _coupon_lines_part(order, amount, sum(line.total_fen for line in scoped))
    shares = _split(scoped_part, scoped) | _split(amount - scoped_part, others)
    return {line.id or 0: shares[line.id or 0] for line in order.lines}


def _groups(order: Order) -> tuple[list[OrderLine], list[OrderLine]]:
    """The coupon's lines and the others, each in the order's line order."""
    return ([line for line in order.lines if line.coupon_applied],
            [line for line in order.lines if not line.coupon_applied])


def _coupon_lines_part(order: Order, amount: int, scoped_total: int) -> int:
    """The coupon's lines' part of `amount` (the goods paid, or the points spent), floored: what they cost after
    the level discount and the coupon, of what every line did."""
    total, level, coupon = order.items_total_fen, order.level_discount_fen, order.coupon_discount_fen
    left = total - level - coupon
    if left <= 0:
        return 0
    kept = max(Fraction(scoped_total * (total - level), total) - coupon, Fraction(0))
    return math.floor(amount * kept / left)


def _split(amount: int, lines: list[OrderLine]) -> dict[int, int]:
    """`amount` over `lines` in proportion to their totals, floored, the last line taking the rest."""
    total = sum(line.total_fen for line in lines)
    shares = {line.id or 0: amount * line.total_fen // total if total else 0 for line in lines[:-1]}
    if lines:
        shares[lines[-1].id or 0] = amount - sum(shares.values())
    return shares


def _within_totals(shares: dict[int, int], lines: list[OrderLine]) -> dict[int, int]:
    """`shares` of one group's `lines`, none above its line's total: what a line's share passed its total goes to
    the lines before and after it with room, in line order, each up to its total. Where no line passes its
    total (nearly every order), the shares are `_split`'s exactly.

    Only `_split`'s last line can pass its total (the others are floored, so at most their exact part), and there
    is always room: a group's part of the goods is at most its lines' totals. The coupon's lines get at most what
    they cost after the level discount and the coupon, floored; the others the rest, under
    `others' totals x (1 - level / items total) + 1` fen (the floor), so at most its ceiling, itself at most their
    totals (when the coupon took more than its lines cost, the rest is the goods, at most what the other lines
    cost after the level discount).

    Shares are worked out again on every refund, so this must not lower what a line already refunded: only a line
    over its total is lowered, to its total, and the CHECK kept every refund of it within that total; every
    other line only gains (what it refunded stays within its share, and the last of its units get the rest).
    """
    capped, over = _within_caps(shares, lines, {line.id or 0: line.total_fen for line in lines})
    assert not over, "a group's part of the goods is never more than its lines' totals"
    return capped


def _within_caps(shares: dict[int, int], lines: list[OrderLine], caps: dict[int, int],
                 extra: int = 0) -> tuple[dict[int, int], int]:
    """`shares` of `lines`, none above its cap: a line over its cap is lowered to it, and what it was over (and
    `extra`) goes to the lines with room, in line order, each up to its cap. Lines within their caps only gain.
    The shares and what found no room (0 when the caps hold it all)."""
    over = extra + sum(max(0, shares[line.id or 0] - caps[line.id or 0]) for line in lines)
    capped = {}
    for line in lines:
        share = min(shares[line.id or 0], caps[line.id or 0])
        given = min(over, max(0, caps[line.id or 0] - share))
        capped[line.id or 0], over = share + given, over - given
    return capped, over


def line_refund_fen(order: Order, line_id: int, quantity: int, held: RefundItem | None = None) -> int:
    """The exact refund for `quantity` more units of a line: its paid share per unit, floored, and whatever
    is left of the share when these are the line's last units (so refunding every unit returns the share).

    `held`: what an open after-sales case will refund of the line and has not reserved yet (its amount was fixed
    by this function when it was opened; it is reserved only when its refund starts). Its units count as refunded
    before these, its amount as taken: else both would be floored and the line would come out a fen short.
    """
    line = _line(order, line_id)
    share = paid_shares(order)[line_id]
    held_units, held_fen = (held.quantity, held.amount_fen) if held is not None else (0, 0)
    if line.refunded_quantity + held_units + quantity >= line.quantity:
        return share - line.refunded_fen - held_fen
    return share * quantity // line.quantity


def line_points_returned(order: Order, line_id: int, quantity: int, held: RefundItem | None = None) -> int:
    """The points to credit back for `quantity` more units of a line (cancelled unshipped units: the shop failed
    to supply them), of the line's `points_shares`. The units refunded before these (`refunded_quantity`, and
    `held`'s units, as in `line_refund_fen`) come first, whether their points were credited back or not
    (after-sales refunds return none); these take the line's points for the units up to them, floored, less the
    same for the units before. The floors cancel out: the units of a line add up to its points exactly, the last
    units taking what the floors left, whichever refunds took the ones before.
    """
    line = _line(order, line_id)
    points = points_shares(order)[line_id]
    before = line.refunded_quantity + (held.quantity if held is not None else 0)
    after = min(before + quantity, line.quantity)
    return points * after // line.quantity - points * min(before, line.quantity) // line.quantity


def _line(order: Order, line_id: int) -> OrderLine:
    line = next((line for line in order.lines if line.id == line_id), None)
    if line is None:
        raise NotFound("ORDER_LINE_NOT_FOUND", "no such line on this order", details={"line_id": line_id})
    return line
