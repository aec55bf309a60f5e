"""Cart, checkout, my orders, payment and the WeChat Pay notify; staff order search (C1-C3, O1, O2, U10)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self, get_args

import grpc
from flask import Blueprint, g, request
from google.protobuf.timestamp_pb2 import Timestamp
from mall.order.v1 import after_sale_pb2, order_pb2
from mall.order.v1.order_pb2_grpc import OrderServiceStub
from pydantic import Field, ValidationInfo, field_validator, model_validator

from gateway.api import MAX_ID, PUBLIC, Body, Id, Instant, Multiline, Page, PageQuery, Reply, operation, service
from gateway.ratelimit import Limit
from services.common import formats, order_steps
from services.common.auth import ORDER_STAFF, SHIPPERS
from services.common.formats import anchored
from services.common.grpc_server import from_grpc
from services.common.logs import mask_phone
from services.common.order_steps import StepKind

bp = Blueprint("orders", __name__, url_prefix="/api/v1")
log = logging.getLogger(__name__)

OrderStatus = Literal["PENDING_PAYMENT", "PAID", "SHIPPED", "COMPLETED", "CANCELLED", "CANCEL_REQUESTED",
                      "REFUNDING", "REFUNDED", "CLOSED"]
RefundStatus = Literal["PENDING", "SUCCESS", "CLOSED", "ABNORMAL"]
RefundChannel = Literal["wechat", "balance", "none"]
ShopperRefundStatus = Literal["processing", "refunded", "contact_support"]
SHOPPER_REFUND_STATUS: dict[str, ShopperRefundStatus] = {
    "PENDING": "processing", "SUCCESS": "refunded", "ABNORMAL": "contact_support", "CLOSED": "contact_support"}
NOTIFY_HEADERS = ("Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial",
                  "Wechatpay-Signature-Type")


def utc_time(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


# -- cart ----------------------------------------------------------------------------------------

class CartItemOut(Reply):
    """A cart line at the live price; `valid` false (off the shelf, sold out) lines are not checked out."""

    id: int
    sku_id: int
    product_id: int
    name: str
    spec: str
    price_fen: int
    quantity: int
    selected: bool
    valid: bool
    price_changed: bool
    stock_status: Literal["in_stock", "low", "sold_out", "unavailable"]
    image: str
    max_per_shopper: int = Field(description="限购 of the line's product, 0 = no limit: the most units one shopper may "
                                             "hold in orders and the cart (a stepper's maximum); adding, raising a "
                                             "line, checkout and preview refuse more, 422 PURCHASE_LIMIT_EXCEEDED")

    @classmethod
    def from_proto(cls, item: order_pb2.CartItem) -> CartItemOut:
        return cls(id=item.id, sku_id=item.sku_id, product_id=item.product_id, name=item.name, spec=item.spec,
                   price_fen=item.price_fen, quantity=item.quantity, selected=item.selected, valid=item.valid,
                   price_changed=item.price_changed, stock_status=item.stock_status or "unavailable",  # type: ignore[arg-type]
                   image=item.image, max_per_shopper=item.max_per_shopper)


class CartOut(Reply):
    """My cart; selected_total_fen adds the selected valid lines at live prices."""

    items: list[CartItemOut]
    selected_total_fen: int


class CartItemIn(Body):
    """A SKU (as on its product's page) and how many; adding a SKU again adds to its line."""

    sku_id: int = Id
    quantity: int = Field(ge=1, le=999)


class CartItemPatch(Body):
    """Send what changes: the quantity, whether the line is selected for checkout, or both (neither, or only nulls:
    400 CART_ITEM_CHANGE_EMPTY, as PATCH /me with no field is 400 PROFILE_EMPTY)."""

    quantity: int | None = Field(None, ge=1, le=999)
    selected: bool | None = None


class Removed(Reply):
    """Done."""

    removed: bool


CART_LIMIT = ("422 PURCHASE_LIMIT_EXCEEDED, the cart unchanged, when the cart's units of the product (all its SKUs) "
              "after the change and the shopper's units of it in their orders (`details.already`, as checkout counts "
              "them) would pass its `max_per_shopper` (限购); `details.requested` is the cart's units after the "
              "change.")


@bp.get("/cart")
@operation(summary="My cart, at live prices", tag="cart", responses={200: CartOut})
def get_cart() -> CartOut:
    cart = service(OrderServiceStub).ListCart(order_pb2.ListCartRequest())
    return CartOut(items=[CartItemOut.from_proto(item) for item in cart.items],
                   selected_total_fen=cart.selected_total_fen)


@bp.post("/cart/items")
@operation(summary="Put a SKU in my cart", tag="cart", body=CartItemIn, responses={201: CartItemOut},
           description="A SKU already in the cart is added to its line: 422 CART_LINE_FULL when the line would hold "
                       "more than 999 (`details.in_cart`, `details.can_add`); 422 CART_FULL for a new line in a full "
                       "cart. " + CART_LIMIT)
def add_cart_item(body: CartItemIn) -> tuple[CartItemOut, int]:
    item = service(OrderServiceStub).AddCartItem(order_pb2.AddCartItemRequest(
        sku_id=body.sku_id, quantity=body.quantity))
    return CartItemOut.from_proto(item), 201


@bp.patch("/cart/items/<id:item_id>")
@operation(summary="Change a cart line's quantity or selection", tag="cart", body=CartItemPatch,
           responses={200: CartItemOut},
           description="400 CART_ITEM_CHANGE_EMPTY with nothing to change; 404 CART_ITEM_NOT_FOUND. A higher quantity: "
                       + CART_LIMIT + " A lower one is always taken, over the limit or not.")
def change_cart_item(item_id: int, body: CartItemPatch) -> CartItemOut:
    change = order_pb2.ChangeCartItemRequest(item_id=item_id, quantity=body.quantity or 0)
    if body.selected is not None:
        change.selected = body.selected
    return CartItemOut.from_proto(service(OrderServiceStub).ChangeCartItem(change))


@bp.delete("/cart/items/<id:item_id>")
@operation(summary="Remove a cart line", tag="cart", responses={200: Removed})
def remove_cart_item(item_id: int) -> Removed:
    service(OrderServiceStub).RemoveCartItem(order_pb2.RemoveCartItemRequest(item_id=item_id))
    return Removed(removed=True)


# -- checkout ------------------------------------------------------------------------------------

class CheckoutIn(Body):
    """Cart lines (cart_item_ids) or one SKU bought now (sku_id, quantity); prices are never sent."""

    cart_item_ids: list[Annotated[int, Id]] = Field(default_factory=list, max_length=100)
    sku_id: int | None = Field(None, ge=1, le=MAX_ID)
    quantity: int | None = Field(None, ge=1, le=999)
    address_id: int = Id
    coupon_id: int | None = Field(None, ge=1, le=MAX_ID)
    points: int = Field(0, ge=0, le=10**12, description="use up to this many points (0: none): as many as I have, "
                                                      "at most half the goods after the level discount and coupon; "
                                                      "the preview's points_used is what the order uses")

    @model_validator(mode="after")
    def _one_source(self) -> CheckoutIn:
        buy_now = (self.sku_id, self.quantity)
        if self.cart_item_ids and any(value is not None for value in buy_now):
            raise ValueError("give cart_item_ids or sku_id and quantity, not both")
        if not self.cart_item_ids and any(value is None for value in buy_now):
            raise ValueError("give cart_item_ids, or sku_id and quantity")
        return self

    def to_proto(self) -> order_pb2.CheckoutRequest:
        return order_pb2.CheckoutRequest(cart_item_ids=self.cart_item_ids, sku_id=self.sku_id or 0,
                                         quantity=self.quantity or 0,
                                         address_id=self.address_id, coupon_id=self.coupon_id or 0,
                                         points=self.points)


class OrderIn(CheckoutIn):
    """The checkout, and a note to the shop."""

    note: Multiline = Field("", max_length=200)


class LineOut(Reply):
    """A line as bought (or as it would be bought): the SKU's name, spec and unit price then."""

    id: int = Field(description="the order line's id; in a checkout preview, where no order line exists yet, the "
                                "cart item's id for a cart line and the sku_id for a buy-now line: distinct within "
                                "a reply either way (a list key)")
    sku_id: int
    product_id: int
    name: str
    spec: str
    price_fen: int
    quantity: int
    image: str

    @classmethod
    def from_proto(cls, line: order_pb2.OrderLine) -> LineOut:
        return cls(id=line.id, sku_id=line.sku_id, product_id=line.product_id, name=line.name, spec=line.spec,
                   price_fen=line.price_fen, quantity=line.quantity, image=line.image)


class OrderLineOut(LineOut):
    """A line of the order: as bought, how many of its units were refunded and its after-sales case still open, if
    any: what a line's buttons need ("refunded ×1", "after-sales in progress", "apply for after-sales")."""

    refunded_quantity: int = Field(description="units of the line refunded or being refunded (refunds under way or "
                                               "done), 0 to quantity; a refund that does not go through gives its "
                                               "units back. Equal to quantity: the line was refunded in full")
    open_case_id: int | None = Field(description="the line's after-sales case still open (GET /after-sales/{id}); a "
                                                 "line has one at most, and a new case on it is 409 "
                                                 "AFTER_SALE_LINE_OPEN while it is open. null: none (never opened, or "
                                                 "REJECTED, REFUNDED or WITHDRAWN since)")

    @classmethod
    def from_proto(cls, line: order_pb2.OrderLine) -> OrderLineOut:
        return cls(**LineOut.from_proto(line).model_dump(), refunded_quantity=line.refunded_quantity,
                   open_case_id=line.open_case_id or None)


class AmountsOut(Reply):
    """Fen; payable = items - level - coupon - points + freight. Percentage discounts are floored to the fen."""

    items_total_fen: int
    level_discount_fen: int
    coupon_discount_fen: int
    points_discount_fen: int
    freight_fen: int
    payable_fen: int

    @classmethod
    def from_proto(cls, amounts: order_pb2.Amounts) -> AmountsOut:
        return cls(items_total_fen=amounts.items_total_fen, level_discount_fen=amounts.level_discount_fen,
                   coupon_discount_fen=amounts.coupon_discount_fen, points_discount_fen=amounts.points_discount_fen,
                   freight_fen=amounts.freight_fen, payable_fen=amounts.payable_fen)


class UsableCouponOut(Reply):
    """One of my coupons that can be used for this checkout (pass its id as coupon_id), and what it takes off."""

    id: int
    name: str
    discount_fen: int
    valid_to: datetime


class QuoteOut(AmountsOut):
    """What submitting this checkout would charge now, exactly; usable_coupons biggest discount first."""

    lines: list[LineOut]
    points_used: int
    usable_coupons: list[UsableCouponOut]


@bp.post("/checkout/preview")
@operation(summary="Price a checkout exactly, locking nothing", tag="checkout", body=CheckoutIn,
           responses={200: QuoteOut},
           description="Refuses what submit would: 422 PURCHASE_LIMIT_EXCEEDED past a product's max_per_shopper; "
                       "422 OUT_OF_STOCK (`details.sku_id`, as submit) when the catalogue says a line's SKU is sold "
                       "out or has fewer units free than the line asks. Advisory: nothing is held, so submit's "
                       "reservation may still refuse what a preview a moment earlier took.")
def preview(body: CheckoutIn) -> QuoteOut:
    quote = service(OrderServiceStub).QuoteCheckout(body.to_proto())
    return QuoteOut(lines=[LineOut.from_proto(line) for line in quote.lines], points_used=quote.points_used,
                    usable_coupons=[UsableCouponOut(id=coupon.id, name=coupon.name, discount_fen=coupon.discount_fen,
                                                    valid_to=utc_time(coupon.valid_to))
                                    for coupon in quote.usable_coupons],
                    **AmountsOut.from_proto(quote.amounts).model_dump())


# -- orders --------------------------------------------------------------------------------------

class AddressOut(Reply):
    """The shipping address as it was when the order was placed; the phone is masked."""

    name: str
    phone: str
    province: str
    city: str
    district: str
    detail: str


StepMessage = order_pb2.Transition | after_sale_pb2.AfterSaleStep


class ShopperStep(Reply):
    """One step of a history (an order's, an after-sales case's) as its shopper reads it. StepOut and CaseStepOut
    say which statuses, actors and reasons their history has."""

    status: str
    at: datetime
    actor: str
    reason: str

    @classmethod
    def shopper_view(cls, steps: Iterable[StepMessage]) -> list[Self]:
        """The steps shown to the shopper, each with its reason for them and any staff member as "staff" (also when
        staff call a shopper's route, whom the order service answers with every staff id)."""
        return [cls(**cls.shopper_fields(step)) for step in steps if step.shopper_visible]

    @classmethod
    def shopper_fields(cls, step: Any) -> dict[str, Any]:
        """What the shopper reads of `step`, by field (a history with more fields adds its own)."""
        return {"status": step.status, "at": utc_time(step.at), "actor": formats.shopper_actor(step.actor),
                "reason": step.shopper_reason}


class StaffStep(Reply):
    """One step of a history as recorded, and what its shopper sees of it. StaffStepOut and StaffCaseStepOut say
    which statuses, actors and reasons their history has."""

    status: str
    at: datetime
    actor: str
    reason: str
    shopper_visible: bool = Field(description="the shopper sees this step (every status change); false: staff only")
    shopper_reason: str = Field(description="the reason the shopper reads instead of `reason` (may be empty)")

    @classmethod
    def staff_view(cls, steps: Iterable[StepMessage]) -> list[Self]:
        return [cls(**cls.staff_fields(step)) for step in steps]

    @classmethod
    def staff_fields(cls, step: Any) -> dict[str, Any]:
        """The step as recorded, by field (a history with more fields adds its own)."""
        return {"status": step.status, "at": utc_time(step.at), "actor": step.actor, "reason": step.reason,
                "shopper_visible": step.shopper_visible, "shopper_reason": step.shopper_reason}


# An order history step's `kind`: the closed set of services.common.order_steps ("" only for a step recorded by the
# release before kinds, during that upgrade).
STEP_KIND = Field(description="which step this is, to show it in the client's own language (reason is free text: "
                              "English wording, a channel, the shopper's or staff's own words). One of: "
                              + order_steps.described() + ". Empty only for a step recorded while the release that "
                              "added kinds was rolling out.")


class StepOut(ShopperStep):
    """One step of my order's history: which step (`kind`), to which status, when, by whom ("staff" for any staff
    member), why.

    Every status change is listed; staff's notes and the words they typed are not (their admin view has them).
    """

    status: OrderStatus  # type: ignore[assignment]
    kind: StepKind | Literal[""] = STEP_KIND
    actor: str = Field(description="user:<id> (me) | staff | system:timeout | system:auto-confirm | wechatpay | "
                                   "reconciliation")
    reason: str = Field(description="what the shopper is told of the step; may be empty")

    @classmethod
    def shopper_fields(cls, step: Any) -> dict[str, Any]:
        return super().shopper_fields(step) | {"kind": step.kind}


class StaffStepOut(StaffStep):
    """One step of an order's history as recorded, and what its shopper sees of it.

    Steps that keep the status are notes (a refund stuck at WeChat Pay, a refund closed and why, a late payment
    credited back), shown to staff only; a parcel of a partly shipped order is shown to the shopper too.
    """

    status: OrderStatus  # type: ignore[assignment]
    kind: StepKind | Literal[""] = STEP_KIND
    actor: str = Field(description="user:<id> | staff:<id> | system:timeout | system:auto-confirm | wechatpay | "
                                   "reconciliation")
    reason: str = Field(description="as recorded: staff's own words, internal notes")

    @classmethod
    def staff_fields(cls, step: Any) -> dict[str, Any]:
        return super().staff_fields(step) | {"kind": step.kind}


class ShipmentLineOut(Reply):
    line_id: int
    quantity: int


class ShipmentOut(Reply):
    """A parcel: carrier, tracking number, when it left and which units it holds."""

    shipment_no: str
    carrier: str
    tracking_no: str
    shipped_at: datetime
    lines: list[ShipmentLineOut]

    @classmethod
    def from_proto(cls, shipment: order_pb2.Shipment) -> ShipmentOut:
        return cls(shipment_no=shipment.shipment_no, carrier=shipment.carrier, tracking_no=shipment.tracking_no,
                   shipped_at=utc_time(shipment.shipped_at),
                   lines=[ShipmentLineOut(line_id=item.line_id, quantity=item.quantity) for item in shipment.lines])


class OrderRefundOut(Reply):
    """A refund of my order: how much, the points it gives back, where the money goes and where it stands."""

    refund_no: str
    amount_fen: int
    points_returned: int = Field(description="points I spent on the refunded units, given back when it is refunded")
    status: ShopperRefundStatus = Field(description="processing: on its way; refunded: the money (and points) is "
                                                    "back (also one closed that WeChat Pay paid back after all); "
                                                    "contact_support: it did not go through (the channel could not "
                                                    "pay it back, or it was closed), ask customer service. A closed "
                                                    "one that a later refund started again is not listed: that one "
                                                    "says where the money stands; nor one closed after the refund "
                                                    "it retried was paid after all")
    channel: RefundChannel = Field(description="where the money goes: wechat (WeChat Pay), balance (my wallet), or "
                                               "none (nothing to pay back)")
    created_at: datetime
    updated_at: datetime = Field(description="its last change of status")

    @classmethod
    def shopper_view(cls, refunds: Iterable[order_pb2.OrderRefund]) -> list[Self]:
        """The order's refunds (oldest first, as the order service lists them) as its shopper sees them: a CLOSED one
        started again by a later refund of the same source is left out (`started_again`); one WeChat Pay paid after
        its close (`paid_after_close_at`) is refunded, as it is for staff: the money is back with the shopper."""
        listed = list(refunds)
        return [cls(refund_no=refund.refund_no, amount_fen=refund.amount_fen, points_returned=refund.points_returned,
                    status="refunded" if refund.HasField("paid_after_close_at") else SHOPPER_REFUND_STATUS[refund.status],
                    channel=refund.channel,  # type: ignore[arg-type]
                    created_at=utc_time(refund.created_at), updated_at=utc_time(refund.updated_at))
                for index, refund in enumerate(listed)
                if not started_again(refund, listed[index + 1:]) and not paid_otherwise(refund, listed)]


def started_again(refund: order_pb2.OrderRefund, later: list[order_pb2.OrderRefund]) -> bool:
    """Whether a refund is CLOSED and a later refund of the order has its source: nothing of it was paid, and its money
    went out again as that one (services/order/refunds.py: approving a cancellation again refunds what is left of the
    order, the closed one's amount with it; cancel-unshipped again the same units; an after-sales case's retry the
    case's lines). The later
    refund tells the shopper where that money stands; the closed attempt would only tell them to contact support
    about money that is refunded or on its way. One WeChat Pay paid after its close (`paid_after_close_at`) was paid:
    it stays listed, refunded. Staff's view (`StaffOrderRefundOut`) keeps every refund."""
    return (refund.status == "CLOSED" and not refund.HasField("paid_after_close_at")
            and any(other.source == refund.source for other in later))


def paid_otherwise(refund: order_pb2.OrderRefund, listed: list[order_pb2.OrderRefund]) -> bool:
    """Whether a refund is CLOSED and another refund of its source was paid after its close (`paid_after_close_at`): a
    retry that closed after WeChat Pay paid the closed one it retried. Its money is back with the shopper by that one
    (listed as refunded), so this one would only tell them to contact support about money they have."""
    return (refund.status == "CLOSED" and not refund.HasField("paid_after_close_at")
            and any(other.source == refund.source and other.HasField("paid_after_close_at") for other in listed))


PAID_AFTER_CLOSE = ("CLOSED here, then WeChat Pay reported it paid after all: when (UTC); null when never. Its money "
                    "did go back, and its units count as refunded (nothing further to refund for them)")


def paid_after_close_at(refund: order_pb2.OrderRefund | order_pb2.RefundSummary) -> datetime | None:
    return utc_time(refund.paid_after_close_at) if refund.HasField("paid_after_close_at") else None


class StaffOrderRefundOut(Reply):
    """A refund of the order as recorded: its status at the channel and what started it (its reason and actor are in
    GET /admin/refunds and the order's history)."""

    refund_no: str = Field(description="what retry and close take")
    amount_fen: int
    points_returned: int = Field(description="points spent on the refunded units, credited back when it succeeds")
    status: RefundStatus
    channel: RefundChannel
    source: str = Field(description="after_sale:<case id>, cancel (an approved cancellation), cancel_unshipped, or "
                                    "late_payment (LATE<out_trade_no>: money the order could not take)")
    created_at: datetime
    updated_at: datetime = Field(description="its last change of status: ABNORMAL or PENDING since then")
    paid_after_close_at: datetime | None = Field(description=PAID_AFTER_CLOSE)

    @classmethod
    def staff_view(cls, refunds: Iterable[order_pb2.OrderRefund]) -> list[Self]:
        return [cls(refund_no=refund.refund_no, amount_fen=refund.amount_fen, points_returned=refund.points_returned,
                    status=refund.status, channel=refund.channel, source=refund.source,  # type: ignore[arg-type]
                    created_at=utc_time(refund.created_at), updated_at=utc_time(refund.updated_at),
                    paid_after_close_at=paid_after_close_at(refund))
                for refund in refunds]


class OrderOut(Reply):
    """An order with its lines, address, amounts, shipments and history (as its shopper sees it).

    A PAID order with shipments is partly shipped; it becomes SHIPPED (shipped_at set) when its
    last units ship, and COMPLETED (completed_at set) when receipt is confirmed.
    """

    id: int
    order_no: str
    status: OrderStatus
    payable_fen: int
    pay_deadline: datetime
    created_at: datetime
    paid_at: datetime | None
    pay_channel: str
    note: str
    coupon_id: int | None
    points_used: int
    lines: list[OrderLineOut]
    address: AddressOut
    amounts: AmountsOut
    history: list[StepOut]
    shipments: list[ShipmentOut]
    shipped_at: datetime | None
    completed_at: datetime | None
    refunded_fen: int = Field(description="refunds under way or done, never above payable_fen")

    @classmethod
    def from_proto(cls, order: order_pb2.Order) -> Self:
        a = order.address
        return cls(id=order.id, order_no=order.order_no, status=order.status,  # type: ignore[arg-type]
                   payable_fen=order.amounts.payable_fen, pay_deadline=utc_time(order.pay_deadline),
                   created_at=utc_time(order.created_at),
                   **{name: utc_time(getattr(order, name)) if order.HasField(name) else None
                      for name in ("paid_at", "shipped_at", "completed_at")},
                   shipments=[ShipmentOut.from_proto(shipment) for shipment in order.shipments],
                   pay_channel=order.pay_channel,
                   note=order.note, coupon_id=order.coupon_id or None, points_used=order.points_used,
                   lines=[OrderLineOut.from_proto(line) for line in order.lines],
                   address=AddressOut(name=a.name, phone=mask_phone(a.phone), province=a.province, city=a.city,
                                      district=a.district, detail=a.detail),
                   amounts=AmountsOut.from_proto(order.amounts),
                   history=cls.history_of(order), refunded_fen=order.refunded_fen, **cls.detail_of(order))

    @classmethod
    def history_of(cls, order: order_pb2.Order) -> list[Any]:
        """The history this view shows: the shopper's (AdminOrderOut: staff's)."""
        return StepOut.shopper_view(order.history)

    @classmethod
    def detail_of(cls, order: order_pb2.Order) -> dict[str, Any]:
        """What only an order's detail shows (OrderDetailOut, AdminOrderDetailOut: its refunds); lists show none."""
        return {}


class OrderDetailOut(OrderOut):
    """One of my orders, with each of its refunds, oldest first. A payment the order could not take (say, one made
    after it was cancelled) is refunded and listed too, but is not part of refunded_fen."""

    refunds: list[OrderRefundOut]

    @classmethod
    def detail_of(cls, order: order_pb2.Order) -> dict[str, Any]:
        return {"refunds": OrderRefundOut.shopper_view(order.refunds)}


class AdminOrderOut(OrderOut):
    """An order as staff see it: its whole history, every step as recorded, with what the shopper sees of each."""

    history: list[StaffStepOut]  # type: ignore[assignment]

    @classmethod
    def history_of(cls, order: order_pb2.Order) -> list[Any]:
        return StaffStepOut.staff_view(order.history)


class AdminOrderDetailOut(AdminOrderOut):
    """An order as staff see it, with each of its refunds as recorded (oldest first), a late payment's too."""

    refunds: list[StaffOrderRefundOut]

    @classmethod
    def detail_of(cls, order: order_pb2.Order) -> dict[str, Any]:
        return {"refunds": StaffOrderRefundOut.staff_view(order.refunds)}


# Orders in any of these statuses (none: every status), e.g. the "cancelled" tab's CANCELLED and REFUNDED.
StatusFilter = Field(default_factory=list, max_length=len(get_args(OrderStatus)),
                     description="any of these statuses; none: every status")


class OrdersQuery(PageQuery):
    status: list[OrderStatus] = StatusFilter
    order_no: str | None = Field(None, pattern=anchored(formats.ORDER_NO),
                                 description="one of my orders by its number (as my reviews name it); another "
                                             "shopper's number finds nothing")


class StaffSearchQuery(PageQuery):
    """What every staff search of orders or of their cases filters on (see created_between)."""

    order_no: str | None = Field(None, pattern=anchored(formats.ORDER_NO))
    created_from: Instant | None = Field(None, description="ISO 8601 with offset; inclusive")
    created_to: Instant | None = Field(None, description="ISO 8601 with offset; exclusive; after created_from")

    @field_validator("created_to")
    @classmethod
    def _after_created_from(cls, created_to: datetime | None, info: ValidationInfo) -> datetime | None:
        created_from = info.data.get("created_from")
        if created_to is not None and created_from is not None and created_to <= created_from:
            raise ValueError("must be after created_from (an empty window finds nothing)")
        return created_to


class AdminOrdersQuery(StaffSearchQuery):
    status: list[OrderStatus] = StatusFilter
    user_id: int | None = Field(None, ge=1, le=MAX_ID)


class CancelIn(Body):
    """Why (optional): unpaid orders are cancelled, paid ones go to review (CANCEL_REQUESTED)."""

    reason: str = Field("", max_length=255)


# A shopper places a few orders a minute at most, however keen; more is a script re-ordering to hold stock (the order
# service also caps the orders awaiting payment one shopper has: ORDER_MAX_UNPAID_PER_USER).
SUBMIT_LIMITS = (Limit("user", 10, 60),)


@bp.post("/orders")
@operation(summary="Place an order (needs a verified identity)", tag="orders", body=OrderIn,
           responses={201: OrderOut}, idempotent=True, limits=SUBMIT_LIMITS,
           description="The same key and body give the first order again, the same key with another body is a 409. "
                       "409 TOO_MANY_UNPAID_ORDERS (details.unpaid_orders, details.limit) when the shopper already has "
                       "that many orders awaiting payment: nothing was held; pay or cancel one first. 422 "
                       "PURCHASE_LIMIT_EXCEEDED (details.product_id, max_per_shopper, already, requested) when the "
                       "lines and the shopper's orders would hold more of a product than its max_per_shopper (限购).")
def submit_order(body: OrderIn, idempotency_key: str) -> tuple[OrderOut, int]:
    order = service(OrderServiceStub).SubmitOrder(order_pb2.SubmitOrderRequest(
        checkout=body.to_proto(), note=body.note, idempotency_key=idempotency_key))
    return OrderOut.from_proto(order), 201


@bp.get("/orders")
@operation(summary="My orders, newest first", tag="orders", query=OrdersQuery, responses={200: Page[OrderOut]})
def list_orders(query: OrdersQuery) -> Page[OrderOut]:
    found = service(OrderServiceStub).ListOrders(order_pb2.ListOrdersRequest(
        statuses=query.status, order_no=query.order_no or "", offset=query.offset, limit=query.page_size))
    return Page[OrderOut].of([OrderOut.from_proto(order) for order in found.orders], query, found.total)


@bp.get("/orders/<id:order_id>")
@operation(summary="One of my orders, with its refunds", tag="orders", responses={200: OrderDetailOut})
def get_order(order_id: int) -> OrderDetailOut:
    return OrderDetailOut.from_proto(service(OrderServiceStub).GetOrder(order_pb2.GetOrderRequest(id=order_id)))


@bp.post("/orders/<id:order_id>/cancel")
@operation(summary="Cancel my order (a paid one goes to review)", tag="orders", body=CancelIn,
           responses={200: OrderOut},
           description="An unpaid order's WeChat Pay payment is closed first (503 PAYMENT_CHANNEL_UNAVAILABLE, nothing "
                       "changed, when WeChat Pay does not answer; one paid just before makes the order PAID and its "
                       "cancellation a request for review). 409 ORDER_STATE_CONFLICT (details.action cancel) when a "
                       "WeChat Pay payment of the order was started at the same moment: nothing changed, try again.")
def cancel_order(order_id: int, body: CancelIn) -> OrderOut:
    return OrderOut.from_proto(service(OrderServiceStub).CancelOrder(
        order_pb2.CancelOrderRequest(id=order_id, reason=body.reason)))


@bp.post("/orders/<id:order_id>/confirm-receipt")
@operation(summary="Confirm I received my shipped order (COMPLETED)", tag="orders", responses={200: OrderOut})
def confirm_receipt(order_id: int) -> OrderOut:
    return OrderOut.from_proto(service(OrderServiceStub).ConfirmReceipt(order_pb2.ConfirmReceiptRequest(id=order_id)))


class LineUnitsIn(Body):
    """Some units of an order line."""

    line_id: int = Id
    quantity: int = Field(ge=1, le=999)


class ShipIn(Body):
    """A parcel: carrier code and tracking number; `lines` (some units of some lines) for a partial shipment."""

    carrier: str = Field(min_length=1, max_length=formats.CARRIER_MAX)
    tracking_no: str = Field(min_length=1, max_length=64, pattern=anchored(formats.TRACKING_NO))
    lines: list[LineUnitsIn] = Field(default_factory=list, max_length=100,
                                    description="empty: every unit not shipped yet; each line once")

    @model_validator(mode="after")
    def _each_line_once(self) -> ShipIn:
        named = [line.line_id for line in self.lines]
        if len(set(named)) != len(named):  # as an after-sales case (CaseIn): the order service would add them up
            raise ValueError("name each line once")
        return self


@bp.post("/admin/orders/<id:order_id>/ship")
@operation(summary="Ship an order, or some of its units", tag="admin-orders", roles=SHIPPERS, body=ShipIn,
           responses={200: AdminOrderOut},
           description="The order stays PAID, its shipments listed, until its last units ship; then it is SHIPPED "
                       "and order-shipped is published. 409 ORDER_STATE_CONFLICT unless PAID.")
def ship_order(order_id: int, body: ShipIn) -> AdminOrderOut:
    return AdminOrderOut.from_proto(service(OrderServiceStub).ShipOrder(order_pb2.ShipOrderRequest(
        id=order_id, carrier=body.carrier, tracking_no=body.tracking_no,
        lines=[order_pb2.ShipmentLine(line_id=line.line_id, quantity=line.quantity) for line in body.lines])))


def created_between(search: order_pb2.SearchOrdersRequest | after_sale_pb2.SearchAfterSalesRequest
                    | order_pb2.ListRefundsRequest, query: StaffSearchQuery) -> None:
    """The query's created_from / created_to onto a staff search request."""
    for name in ("created_from", "created_to"):
        value = getattr(query, name)
        if value is not None:
            getattr(search, name).FromDatetime(value.astimezone(UTC))


@bp.get("/admin/orders")
@operation(summary="Search orders", tag="admin-orders", roles=ORDER_STAFF, query=AdminOrdersQuery,
           responses={200: Page[AdminOrderOut]})
def search_orders(query: AdminOrdersQuery) -> Page[AdminOrderOut]:
    search = order_pb2.SearchOrdersRequest(statuses=query.status, order_no=query.order_no or "",
                                           user_id=query.user_id or 0, offset=query.offset, limit=query.page_size)
    created_between(search, query)
    found = service(OrderServiceStub).SearchOrders(search)
    return Page[AdminOrderOut].of([AdminOrderOut.from_proto(order) for order in found.orders], query, found.total)


@bp.get("/admin/orders/<id:order_id>")
@operation(summary="Any order, with its refunds", tag="admin-orders", roles=ORDER_STAFF,
           responses={200: AdminOrderDetailOut})
def admin_get_order(order_id: int) -> AdminOrderDetailOut:
    return AdminOrderDetailOut.from_proto(service(OrderServiceStub).GetOrder(order_pb2.GetOrderRequest(id=order_id)))


class WaybillLineOut(Reply):
    line_id: int
    name: str
    spec: str
    quantity: int
    to_ship: int = Field(description="units of the line not in a parcel yet")


class WaybillOut(Reply):
    """What a parcel's label needs: the receiver unmasked (the carrier calls them) and the units still to ship."""

    order_no: str
    receiver_name: str
    receiver_phone: str = Field(description="unmasked: only on this route, and every read is logged")
    province: str
    city: str
    district: str
    detail: str
    lines: list[WaybillLineOut]


@bp.get("/admin/orders/<id:order_id>/waybill")
@operation(summary="The receiver and units of an order to ship, for its waybill", tag="admin-orders",
           roles=SHIPPERS, responses={200: WaybillOut},
           description="The only answer with the receiver's full phone number, for the staff who ship. PAID orders "
                       "only (409 ORDER_STATE_CONFLICT otherwise: nothing is left to ship); each read is logged "
                       "with the staff member's id.")
def waybill(order_id: int) -> WaybillOut:
    label = service(OrderServiceStub).GetWaybill(order_pb2.GetWaybillRequest(id=order_id))
    log.info("staff user %d read the receiver of order %s for its waybill", g.caller.user_id, label.order_no)
    a = label.receiver
    return WaybillOut(order_no=label.order_no, receiver_name=a.name, receiver_phone=a.phone, province=a.province,
                      city=a.city, district=a.district, detail=a.detail,
                      lines=[WaybillLineOut(line_id=line.line_id, name=line.name, spec=line.spec,
                                            quantity=line.quantity, to_ship=line.to_ship) for line in label.lines])


# -- payment -------------------------------------------------------------------------------------

class PayIn(Body):
    """How to pay; WeChat Pay charges the WeChat account bound to mine (422 WECHAT_NOT_BOUND without one) and takes
    at most 2147483647 fen in one payment (422 PAYMENT_AMOUNT_TOO_LARGE above: pay from the balance)."""

    channel: Literal["wechat", "balance"]


class PayOut(Reply):
    """wechat: the parameters for wx.requestPayment (the order is paid when WeChat Pay notifies). balance: PAID.
    none: the order had nothing to pay (discounts, coupon and points covered it, no freight): PAID, no channel asked."""

    channel: Literal["wechat", "balance", "none"]
    out_trade_no: str
    status: OrderStatus
    wx_request_payment: dict[str, str] | None


@bp.post("/orders/<id:order_id>/pay")
@operation(summary="Pay my order", tag="orders", body=PayIn, responses={200: PayOut})
def pay_order(order_id: int, body: PayIn) -> PayOut:
    started = service(OrderServiceStub).PayOrder(order_pb2.PayOrderRequest(
        id=order_id, channel=body.channel))
    return PayOut(channel=started.channel, out_trade_no=started.out_trade_no,  # type: ignore[arg-type]
                  status=started.status,  # type: ignore[arg-type]
                  wx_request_payment=dict(started.wx_request_payment) if started.channel == "wechat" else None)


class NotifyAnswer(Reply):
    """WeChat Pay's answer format: SUCCESS, or FAIL with the reason (WeChat Pay then retries)."""

    code: Literal["SUCCESS", "FAIL"]
    message: str


NOTIFY_RESPONSES: dict[int, type[Reply]] = {200: NotifyAnswer, 400: NotifyAnswer, 503: NotifyAnswer}


def forward_notify(handle: Callable[[order_pb2.WechatPayNotifyRequest], object]) -> tuple[NotifyAnswer, int]:
    """Pass a WeChat Pay notify to the order service as received and answer WeChat Pay in its format."""
    # The signature covers the exact bytes: they go to the order service untouched, never re-serialised.
    headers = {name: request.headers[name] for name in NOTIFY_HEADERS if name in request.headers}
    try:
        handle(order_pb2.WechatPayNotifyRequest(body=request.get_data(cache=True), headers=headers))
    except grpc.RpcError as exc:
        status, _, message, _ = from_grpc(exc)
        if status == grpc.StatusCode.INVALID_ARGUMENT:
            return NotifyAnswer(code="FAIL", message=message), 400
        return NotifyAnswer(code="FAIL", message="temporarily unavailable"), 503
    return NotifyAnswer(code="SUCCESS", message="成功"), 200


@bp.post("/payments/wechat/notify")
@operation(summary="WeChat Pay payment notify (signed by WeChat Pay; raw JSON body)", tag="payments", access=PUBLIC,
           responses=NOTIFY_RESPONSES)
def wechat_notify() -> tuple[NotifyAnswer, int]:
    return forward_notify(service(OrderServiceStub).HandleWechatPayNotify)
