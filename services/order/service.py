"""Order use cases: cart, checkout, orders, payment and the payment timeout."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial

from mall.events.v1.order_events_pb2 import (
    CartItemAdded,
    CompletedLine,
    LatePaymentReceived,
    LatePaymentRefunded,
    OrderAmounts,
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderPaid,
    OrderReturned,
    OrderShipped,
)
from mall.events.v1.order_events_pb2 import OrderLine as EventLine
from mall.events.v1.order_events_pb2 import Shipment as EventShipment

from services.common import formats, idempotency
from services.common.db import utcnow
from services.common.errors import Conflict, DomainError, ErrorKind, InvalidInput, NotFound
from services.common.events import timestamp
from services.common.order_steps import StepKind
from services.common.uow import RoundBudget, each_page, one_round_at_a_time
from services.common.wechatpay import (
    AMOUNT_MAX_FEN as WECHATPAY_AMOUNT_MAX_FEN,
)
from services.common.wechatpay import (
    NotifyRejected,
    PaymentNotice,
    WechatPayApiError,
    WechatPayError,
    wechat_not_bound,
)
from services.common.wechatpay import Refund as ChannelRefund
from services.order import metrics
from services.order.domain import (
    DEFAULT_AUTO_CONFIRM_DAYS,
    DEFAULT_AUTO_CONFIRM_MAX_PAUSE_DAYS,
    Amounts,
    CartItem,
    FreightRule,
    Order,
    OrderLine,
    OrderStatus,
    Refund,
    Shipment,
    add_to_cart,
    check_quantity,
    level_discount,
    new_order,
    new_order_no,
    order_no_of_trade,
    order_not_found,
    plain,
    price,
)
from services.order.ports import (
    Catalog,
    CatalogSku,
    CouponLine,
    CouponOffer,
    Members,
    Stock,
    StockLine,
    Users,
    WalletCharge,
)
from services.order.uow import OrderSearch, OrderUnitOfWork
from services.order.wallet_reviews import (
    OTHER_USERS_WALLET,
    credit_back_no,
    leave_for_staff,
    wallet_payment_under_review,
)

log = logging.getLogger(__name__)

PAY_CHANNELS = ("wechat", "balance")
NO_CHANNEL = "none"  # the pay channel of an order with nothing to pay (payable_fen 0): no channel is asked
metrics.declare_channels((*PAY_CHANNELS, NO_CHANNEL))
# A wallet payment left unknown is asked about once it is this old: well past the deadline of the PayWithBalance
# call (ORDER_GRPC_TIMEOUT_MS), so no charge of the attempt can still be on its way.
WALLET_SETTLE_SECONDS = 30
# What the wallet answers when it refused to charge (not enough balance, a bad amount): nothing was charged.
WALLET_DECLINED = (ErrorKind.BUSINESS_RULE, ErrorKind.INVALID)
DEFAULT_MAX_UNPAID_ORDERS = 5  # ORDER_MAX_UNPAID_PER_USER


@dataclass(frozen=True)
class OrderSettings:
    pay_minutes: int = 30
    freight: FreightRule = FreightRule()
    notify_url: str = ""
    auto_confirm_days: int = DEFAULT_AUTO_CONFIRM_DAYS
    auto_confirm_max_pause_days: int = DEFAULT_AUTO_CONFIRM_MAX_PAUSE_DAYS  # after-sales hold auto-confirm this long
    refund_notify_url: str = ""
    # A shopper with this many orders awaiting payment places no more until one is paid, cancelled or times out: each
    # holds its units until its deadline, so one account re-ordering as they lapse could keep a product sold out.
    max_unpaid_orders: int = DEFAULT_MAX_UNPAID_ORDERS


# -- cart ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CartLine:
    item: CartItem
    sku: CatalogSku | None  # None: the product is gone or off the shelf

    @property
    def valid(self) -> bool:
        return self.sku is not None and self.sku.on_sale and self.sku.stock_status != "sold_out"

    @property
    def price_fen(self) -> int:
        """The live price while on sale; off sale, the price when added (an unapproved price is never shown)."""
        return self.sku.price_fen if self.sku is not None and self.sku.on_sale else self.item.added_price_fen

    @property
    def price_changed(self) -> bool:
        return self.price_fen != self.item.added_price_fen


@dataclass(frozen=True)
class CartView:
    lines: list[CartLine]

    @property
    def selected_total_fen(self) -> int:
        return sum(line.price_fen * line.item.quantity for line in self.lines if line.item.selected and line.valid)


def _live(catalog: Catalog, items: list[CartItem]) -> list[CartLine]:
    skus = catalog.skus({item.sku_id for item in items}) if items else {}
    return [CartLine(item, skus.get(item.sku_id)) for item in items]


def _cart_of(uow: OrderUnitOfWork, user_id: int) -> list[CartItem]:
    with uow:
        items = uow.carts.for_user(user_id)
        uow.commit()  # a read: committing keeps the loaded objects usable after the transaction
    return items


def list_cart(uow: OrderUnitOfWork, catalog: Catalog, *, user_id: int) -> CartView:
    return CartView(_live(catalog, _cart_of(uow, user_id)))


def add_cart_item(uow: OrderUnitOfWork, catalog: Catalog, *, user_id: int, sku_id: int, quantity: int,
                  now: datetime | None = None) -> CartLine:
    """Put a SKU on sale in the cart, merging with its line; cart-item-added is published. Past its product's
    purchase limit: 422 PURCHASE_LIMIT_EXCEEDED (`_check_cart_limit`), the cart as it was."""
    now = now or utcnow()
    check_quantity(quantity)
    sku = catalog.skus({sku_id}).get(sku_id)
    if sku is None or not sku.on_sale:
        raise NotFound("SKU_NOT_FOUND", "no such product on sale", details={"sku_id": "not found"})
    with uow:
        uow.carts.lock_user(user_id)
        cart = uow.carts.for_user(user_id)
        _check_cart_limit(uow, user_id, cart, sku, more=quantity)
        item, is_new = add_to_cart(cart, user_id=user_id, sku_id=sku_id,
                                   product_id=sku.product_id, quantity=quantity, price_fen=sku.price_fen, now=now)
        if is_new:
            uow.carts.add(item)
        uow.publish(CartItemAdded(user_id=user_id, sku_id=sku_id, product_id=sku.product_id, quantity=quantity,
                                  price_fen=sku.price_fen, added_at=timestamp(now)), aggregate_id=f"user:{user_id}")
        uow.commit()
    return CartLine(item, sku)


def _own_item(cart: list[CartItem], item_id: int) -> CartItem:
    item = next((item for item in cart if item.id == item_id), None)
    if item is None:
        raise NotFound("CART_ITEM_NOT_FOUND", "no such cart item")
    return item


def change_cart_item(uow: OrderUnitOfWork, catalog: Catalog, *, user_id: int, item_id: int, quantity: int = 0,
                     selected: bool | None = None) -> CartLine:
    """Change a line's quantity (0: as it is), its selection (None: as it is), or both; neither is refused, as a
    profile change with no field is (PROFILE_EMPTY). More units past the product's purchase limit: 422
    PURCHASE_LIMIT_EXCEEDED (`_check_cart_limit`), the line as it was; fewer are always taken."""
    if not quantity and selected is None:
        raise InvalidInput("CART_ITEM_CHANGE_EMPTY", "send at least one of quantity, selected",
                           details={"quantity": "or selected"})
    if quantity:
        check_quantity(quantity)
    with uow:
        uow.carts.lock_user(user_id)
        cart = uow.carts.for_user(user_id)
        item = _own_item(cart, item_id)
        # The one catalogue read the answer always took (it shows the live line), asked before the change now: it
        # carries the limit. Under the shopper's lock, as submit's ReserveStock is.
        sku = catalog.skus({item.sku_id}).get(item.sku_id)
        if quantity:
            if sku is not None:
                _check_cart_limit(uow, user_id, cart, sku, more=quantity - item.quantity)
            item.quantity = quantity
        if selected is not None:
            item.selected = selected
        uow.commit()
    return CartLine(item, sku)


def _check_cart_limit(uow: OrderUnitOfWork, user_id: int, cart: list[CartItem], sku: CatalogSku, *,
                      more: int) -> None:
    """Before a cart change that puts `more` units of the SKU's product in the cart: 422 PURCHASE_LIMIT_EXCEEDED
    when the cart's units of the product then (every SKU of it, selected or not) and the shopper's units of it in
    their orders would be more than its purchase limit, as checkout counts them (`_check_purchase_limits`: `already`
    the orders', `requested` the cart's after the change). Checkout would refuse them: the shopper hears it at the
    stepper, not at the till. A change that adds no units is never refused: a line over a limit set after it was
    added can always be lowered. Inside the open unit of work, under the shopper's lock."""
    if more <= 0 or not sku.max_per_shopper:
        return
    in_cart = sum(item.quantity for item in cart if item.product_id == sku.product_id)
    _check_purchase_limits(uow, user_id, {sku.product_id: in_cart + more}, {sku.product_id: sku.max_per_shopper})


def remove_cart_item(uow: OrderUnitOfWork, *, user_id: int, item_id: int) -> None:
    with uow:
        uow.carts.lock_user(user_id)
        uow.carts.remove(_own_item(uow.carts.for_user(user_id), item_id))
        uow.commit()


# -- checkout ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CheckoutInput:
    """Cart lines, or one buy-now SKU; the address; an optional coupon and points. Never a price."""

    cart_item_ids: tuple[int, ...] = ()
    sku_id: int = 0
    quantity: int = 0
    address_id: int = 0
    coupon_id: int = 0
    points: int = 0


@dataclass(frozen=True)
class Quote:
    lines: list[OrderLine]
    amounts: Amounts
    points_used: int = 0
    usable_coupons: list[CouponOffer] = field(default_factory=list)


def _wanted(cart: list[CartItem], request: CheckoutInput) -> list[StockLine]:
    """The SKUs and units asked for: the chosen cart lines, or the buy-now SKU."""
    if request.cart_item_ids and request.sku_id:
        raise InvalidInput("CHECKOUT_INVALID", "give cart_item_ids or sku_id, not both",
                           details={"cart_item_ids": "either this or sku_id"})
    if request.cart_item_ids:
        mine = {item.id: item for item in cart}
        missing = [item_id for item_id in request.cart_item_ids if item_id not in mine]
        if missing:
            raise NotFound("CART_ITEM_NOT_FOUND", "no such cart item", details={"cart_item_ids": missing})
        return [StockLine(mine[item_id].sku_id, mine[item_id].quantity)
                for item_id in dict.fromkeys(request.cart_item_ids)]
    if request.sku_id:
        check_quantity(request.quantity)
        return [StockLine(request.sku_id, request.quantity)]
    raise InvalidInput("CHECKOUT_EMPTY", "nothing to check out", details={"cart_item_ids": "required"})


def _lines(skus: Mapping[int, CatalogSku], wanted: list[StockLine], *, held: bool = False) -> list[OrderLine]:
    """The order lines at the SKUs' prices; each SKU on sale and, unless its units are `held`, one the catalogue
    says can cover the line (`CatalogSku.covers`): OUT_OF_STOCK naming the SKU, as the reservation refuses it."""
    lines = []
    for want in wanted:
        sku = skus.get(want.sku_id)
        if sku is None or not sku.on_sale:
            raise DomainError("SKU_UNAVAILABLE", "a product is no longer on sale", details={"sku_id": want.sku_id})
        if not held and not sku.covers(want.quantity):
            raise DomainError("OUT_OF_STOCK", "not enough stock for one of the lines", details={"sku_id": want.sku_id})
        lines.append(OrderLine(sku_id=sku.sku_id, product_id=sku.product_id, name=sku.name, spec=sku.spec,
                               price_fen=sku.price_fen, quantity=want.quantity, category_id=sku.category_id,
                               brand_id=sku.brand_id, image=sku.image))
    return lines


def _coupon_lines(lines: list[OrderLine], skus: Mapping[int, CatalogSku], discount_bp: int) -> list[CouponLine]:
    """The lines as the member service quotes and locks coupons for them (preview and submit alike): each at what
    it costs after the member's level discount (`discount_bp`; floored per line as `level_discount` floors), since
    the coupon comes after it (`price`): a threshold is met, and a percent taken, on what the shopper pays for the
    goods, not on list prices the member never pays. Each with its category's path, so a coupon limited to a
    category applies to the products filed below it too."""
    return [CouponLine(line.category_id, line.total_fen - level_discount(line.total_fen, discount_bp),
                       skus[line.sku_id].category_path) for line in lines]


def _lock_coupon(members: Members, order_no: str, coupon_id: int, lines: list[OrderLine],
                 skus: Mapping[int, CatalogSku], discount_bp: int) -> int:
    """Hold the coupon for the order and mark the lines it applies to (its categories), which carry it alone
    when a refund asks what a line was paid (domain.paid_shares); its discount in fen."""
    coupon_lines = _coupon_lines(lines, skus, discount_bp)
    locked = members.lock_coupon(order_no, coupon_id, coupon_lines)
    for line, coupon_line in zip(lines, coupon_lines, strict=True):
        line.coupon_applied = locked.applies_to(coupon_line)
    return locked.discount_fen


def quote_checkout(uow: OrderUnitOfWork, catalog: Catalog, members: Members, users: Users, settings: OrderSettings,
                   *, user_id: int, request: CheckoutInput) -> Quote:
    """The exact breakdown submit would charge now (same lines, same `price`), locking nothing,
    and the shopper's coupons usable for these lines.

    Stock is checked as the catalogue has it now (`_lines`: sold out, or more than the units free to reserve, is
    OUT_OF_STOCK); advisory only, as nothing is held: submit's reservation decides. Each line's id is what the
    client keys it on (no order line exists yet): its cart item's id, or for a buy-now line its sku_id.

    The address is found as submit finds it: another user's or none is ADDRESS_NOT_FOUND. It changes no amount
    (freight is flat, FreightRule); a shopper not verified yet is quoted all the same (the user service then does
    not look at the address, and submit refuses IDENTITY_NOT_VERIFIED). No address_id: no call."""
    if request.address_id:
        users.buyer_address(user_id, request.address_id)
    wanted = _wanted(_cart_of(uow, user_id) if request.cart_item_ids else [], request)
    skus = catalog.skus({want.sku_id for want in wanted})
    lines = _lines(skus, wanted)
    for line, line_id in zip(lines, list(dict.fromkeys(request.cart_item_ids)) or [request.sku_id], strict=True):
        line.id = line_id
    limits = _limits(lines, skus)
    if limits:
        with uow:
            _check_purchase_limits(uow, user_id, _units(lines), limits)
            uow.commit()
    items_total = sum(line.total_fen for line in lines)
    discount_bp = members.discount_bp()
    coupon_lines = _coupon_lines(lines, skus, discount_bp)
    coupon_fen = members.quote_coupon(request.coupon_id, coupon_lines) if request.coupon_id else 0
    amounts, points_used = _price_with_points(items_total, discount_bp, coupon_fen, settings.freight, request.points,
                                              members.quote_points)
    return Quote(lines, amounts, points_used, _offers_as_charged(members.usable_coupons(coupon_lines), items_total,
                                                                 discount_bp))


def _offers_as_charged(offers: list[CouponOffer], items_total: int, discount_bp: int) -> list[CouponOffer]:
    """The coupons usable for the lines, each at what it would take off this order (`price`'s coupon discount: the
    member service's quote for the lines, capped by what is left after the level discount, as submit charges it),
    biggest first; of equal ones, the one ending first, then the older coupon."""
    charged = [replace(offer, discount_fen=price(items_total, discount_bp=discount_bp,
                                                 coupon_fen=offer.discount_fen).coupon_discount_fen)
               for offer in offers]
    return sorted(charged, key=lambda offer: (-offer.discount_fen, offer.valid_to, offer.coupon_id))


def _price_with_points(items_total: int, discount_bp: int, coupon_fen: int, freight: FreightRule, points: int,
                       take_points: Callable[[int, int], tuple[int, int]]) -> tuple[Amounts, int]:
    """The amounts charged, and the points used: up to `points` are taken (`take_points(points, payable before
    points)` -> (points used, their fen): quoted, or locked for the order) from what is left after the level
    discount and the coupon, and freight comes last. Quote and submit both price here, so the quote is what
    submit charges."""
    points_used, points_fen = 0, 0
    if points:
        before_points = price(items_total, discount_bp=discount_bp, coupon_fen=coupon_fen)
        points_used, points_fen = take_points(points, before_points.payable_fen)
    return price(items_total, discount_bp=discount_bp, coupon_fen=coupon_fen, points_fen=points_fen,
                 freight=freight), points_used


def _lock_points(members: Members, order_no: str, points: int, payable_fen: int) -> tuple[int, int]:
    """Hold for the order the points its preview uses for a wish of `points`: as many as the member service quotes
    (the shopper's points, half of `payable_fen` at most), not the wish itself, which LockPoints would refuse
    whole (INSUFFICIENT_POINTS, POINTS_OVER_LIMIT) where the preview had taken what it could. None quoted: none
    held, (0, 0)."""
    usable, _ = members.quote_points(points, payable_fen)
    if usable <= 0:
        return 0, 0
    return members.lock_points(order_no, usable, payable_fen)


def submit_order(uow: OrderUnitOfWork, members: Members, stock: Stock, users: Users, settings: OrderSettings, *, user_id: int, request: CheckoutInput, note: str, idempotency_key: str,
                 request_fingerprint: bytes, now: datetime | None = None) -> Order:
    """Place the order once per idempotency key: reserve stock, lock coupon and points, snapshot, order-created.

    Every call made to another service after the reservation is undone (released) if the order is
    not committed, so a failed submit strands no stock, coupon or points. A commit that raises is
    looked up first (`_committed_anyway`): an order committed all the same is answered and keeps
    what it holds; one the database cannot tell about keeps it until it lapses. Each attempt records its order
    number first (`submit_attempts`), so the key's next attempt releases what a lost one still holds
    (`_release_lost_attempt`): the shopper's retry can use their coupon at once.
    """
    now = now or utcnow()
    if len(note) > 200:
        raise InvalidInput("NOTE_TOO_LONG", "the note is at most 200 characters", details={"note": "max 200"})
    scope = f"submit-order:user:{user_id}"
    idempotency.validate(scope, idempotency_key)
    order_no = new_order_no(now)
    # Recorded and committed (one statement of its own) before anything is held under order_no, so that if this
    # attempt is lost (its commit fails and its compensation never arrives, its process dies) the key's next attempt
    # finds what to release. An attempt recorded already (a lost one, or one still running: its claim decides) is
    # looked at under the claim.
    first_attempt = uow.submit_attempts.record(user_id, idempotency_key, order_no, now)
    reserved = False
    placed: list[Order] = []  # the order this call placed (none when the key's first response is replayed)

    def place() -> bytes:
        nonlocal reserved
        if not first_attempt:
            _release_lost_attempt(uow, stock, members, user_id=user_id, key=idempotency_key, order_no=order_no,
                                  now=now)
        _check_unpaid_orders(uow, user_id, settings.max_unpaid_orders)
        address = users.buyer_address(user_id, request.address_id)
        if address is None:
            raise DomainError("IDENTITY_NOT_VERIFIED", "verify your real name before ordering")
        cart = uow.carts.for_user(user_id) if request.cart_item_ids else []  # buy-now needs no cart
        wanted = _wanted(cart, request)
        reserved = True  # from here a failure may leave units held: released on the way out
        try:
            skus = stock.reserve(order_no, wanted)
        except DomainError as refused:
            if refused.kind in (ErrorKind.BUSINESS_RULE, ErrorKind.INVALID):  # refused all or nothing: none held
                reserved = False
            raise
        lines = _lines(skus, wanted, held=True)  # prices as the units were held
        # After the reservation, whose snapshot names the products and their limits: a refusal releases the units
        # held a moment ago (`_compensate`). Under the shopper's lock (`_check_unpaid_orders`): a second submit of
        # theirs waits for this one to commit, then counts its units.
        _check_purchase_limits(uow, user_id, _units(lines), _limits(lines, skus))
        items_total = sum(line.total_fen for line in lines)
        discount_bp = members.discount_bp()
        coupon_fen = _lock_coupon(members, order_no, request.coupon_id, lines, skus, discount_bp) if request.coupon_id else 0
        amounts, points_used = _price_with_points(items_total, discount_bp, coupon_fen, settings.freight,
                                                  request.points, partial(_lock_points, members, order_no))
        order = new_order(user_id=user_id, order_no=order_no, lines=lines, address=address, amounts=amounts, now=now,
                          pay_minutes=settings.pay_minutes, coupon_id=request.coupon_id, points_used=points_used,
                          note=note)
        uow.orders.add(order)
        ordered = [item for item in cart if item.id in set(request.cart_item_ids)]
        if uow.carts.remove(*ordered) != len(ordered):
            # Another submit of these lines (a second tap under a new key) removed them first and placed their order,
            # or the shopper removed one meanwhile: this one is undone, its stock, coupon and points released, rather
            # than the lines ordered twice.
            raise NotFound("CART_ITEM_NOT_FOUND", "no such cart item: it was checked out or removed meanwhile",
                           details={"cart_item_ids": list(request.cart_item_ids)})
        uow.publish(OrderCreated(order_no=order_no, user_id=user_id, lines=_event_lines(order),
                                 amounts=_event_amounts(order), province=address.province,
                                 created_at=timestamp(now), pay_deadline=timestamp(order.pay_deadline)),
                    aggregate_id=order_no)
        uow.on_commit(metrics.ORDERS_CREATED.inc)
        placed.append(order)
        assert order.id is not None
        return str(order.id).encode()

    committing = False
    try:
        with uow:
            order_id = int(uow.run_once(scope=scope, key=idempotency_key, request=request_fingerprint, execute=place))
            committing = True
            uow.commit()
    except BaseException:
        outcome = _committed_anyway(uow, order_no) if committing and placed else False
        if isinstance(outcome, Order):
            return outcome
        if reserved and outcome is False:
            _compensate(stock, members, order_no, coupon=bool(request.coupon_id), points=bool(request.points))
        raise
    if placed:  # committed just now, with its lines and history: no need to read it back
        return placed[0]
    with uow:
        order = uow.orders.get(order_id)
        uow.commit()
    if order is None:  # pragma: no cover - the key's response names a committed order
        raise order_not_found()
    return order


def _check_unpaid_orders(uow: OrderUnitOfWork, user_id: int, limit: int) -> None:
    """Under the key's claim, before anything is held: 409 TOO_MANY_UNPAID_ORDERS when the shopper already has `limit`
    orders awaiting payment. The shopper's lock (the one their cart changes take) is held from here to the commit, so
    two submits at once cannot both see one slot left; it is taken after the claim, as every submit takes them, and a
    replay of a placed order is answered by the claim without reaching it."""
    uow.carts.lock_user(user_id)
    unpaid = uow.orders.count_unpaid(user_id)
    if unpaid >= limit:
        raise Conflict("TOO_MANY_UNPAID_ORDERS", f"you have {unpaid} orders awaiting payment: pay or cancel one first",
                       details={"unpaid_orders": unpaid, "limit": limit})


def _limits(lines: list[OrderLine], skus: Mapping[int, CatalogSku]) -> dict[int, int]:
    """The purchase limit (限购) of each product of the lines that has one, by product id."""
    return {line.product_id: skus[line.sku_id].max_per_shopper for line in lines
            if skus[line.sku_id].max_per_shopper > 0}


def _units(lines: list[OrderLine]) -> dict[int, int]:
    """The lines' units by product id."""
    units: dict[int, int] = {}
    for line in lines:
        units[line.product_id] = units.get(line.product_id, 0) + line.quantity
    return units


def _check_purchase_limits(uow: OrderUnitOfWork, user_id: int, requested: Mapping[int, int],
                           limits: Mapping[int, int]) -> None:
    """422 PURCHASE_LIMIT_EXCEEDED when the units `requested` of a product with a purchase limit (`limits`, by
    product id), and the shopper's units of it in their orders that hold or took stock
    (domain.PURCHASE_LIMIT_STATUSES), come to more than its limit: one shopper never paying cannot hold a flash
    sale's whole stock across orders. Checkout and the cart (`_check_cart_limit`) ask it. Inside an open unit of
    work."""
    if not limits:
        return
    already = uow.orders.units_held(user_id, limits.keys())
    for product_id, limit in sorted(limits.items()):
        held = already.get(product_id, 0)
        if held + requested[product_id] > limit:
            raise DomainError("PURCHASE_LIMIT_EXCEEDED", f"at most {limit} of this product per shopper; your orders "
                              f"hold {held} already", details={"product_id": product_id, "max_per_shopper": limit,
                                                               "already": held, "requested": requested[product_id]})


def _committed_anyway(uow: OrderUnitOfWork, order_no: str) -> Order | bool | None:
    """After a commit that raised: the order if it was committed all the same (the answer was lost on the
    way back), False if it was not, None if the database cannot tell now.

    Only False may undo the reservation and the locks: releasing them for an order that exists would
    sell its stock twice and hand its coupon and points back. Unknown keeps them; the stock reservation
    then lapses after its TTL and the member service sweeps the coupon and points locks of an order never
    settled, both well after any order's payment window."""
    try:
        with uow:
            order = uow.orders.by_order_no(order_no)
            uow.commit()
    except Exception:
        log.exception("order %s: its commit failed and the database cannot say whether it was committed; "
                      "its stock, coupon and points stay held until they lapse", order_no)
        return None
    if order is not None:
        log.warning("order %s was committed although its commit raised; answering it", order_no)
        return order
    return False


def _release_lost_attempt(uow: OrderUnitOfWork, stock: Stock, members: Members, *, user_id: int, key: str,
                          order_no: str, now: datetime) -> None:
    """Under the key's claim, before `order_no` holds anything: when the key's last attempt recorded another order
    number and no order of that number was stored, that attempt was lost (the claim it held was never committed) and
    may still hold stock, coupon and points, which this one is about to ask for again. They are released (each release
    idempotent; the member service's as the same shopper), then `order_no` is recorded in its place, committed at once:
    should this attempt be lost too, the next one releases what it holds. A release that fails: 503
    ORDER_ATTEMPT_UNRELEASED with nothing changed here, and the client retries.

    The claim serialises the key's attempts: one still running holds it, and this one waits for it to commit (its
    order is then replayed) or roll back (its own compensation, and this release, undo its holds)."""
    earlier = uow.submit_attempts.last(user_id, key)
    if earlier is not None and earlier != order_no and not uow.orders.states([earlier]):
        released = _release_holds(stock, members, earlier, coupon=True, points=True)
        # Counted as it happens, not on commit: the holds are let go (or not) whatever this attempt then does.
        metrics.LOST_ATTEMPTS.labels("released" if released else "failed").inc()
        if not released:
            raise DomainError("ORDER_ATTEMPT_UNRELEASED", "an earlier attempt of this order still holds stock, a coupon "
                              "or points that cannot be released now; nothing was changed, try again",
                              kind=ErrorKind.UNAVAILABLE)
        log.info("order %s: released what the lost earlier attempt %s of its idempotency key held", order_no, earlier)
    uow.submit_attempts.move(user_id, key, order_no, now)


def _compensate(stock: Stock, members: Members, order_no: str, *, coupon: bool, points: bool) -> None:
    """Undo what a failed submit may have done elsewhere; each undo is idempotent and tried regardless. One that
    fails leaves the order_no's reservation/lock to expire on the owner's side (or to the key's next attempt)."""
    _release_holds(stock, members, order_no, coupon=coupon, points=points)


def _release_holds(stock: Stock, members: Members, order_no: str, *, coupon: bool, points: bool) -> bool:
    """Release the stock (and the coupon, the points) `order_no` holds, each tried regardless; whether all were."""
    undo: list[Callable[[], None]] = [lambda: stock.release(order_no)]
    if coupon:
        undo.append(lambda: members.release_coupon(order_no))
    if points:
        undo.append(lambda: members.release_points(order_no))
    released = True
    for step in undo:
        try:
            step()
        except Exception:
            log.exception("releasing what order %s holds failed", order_no)
            released = False
    return released


def event_line(line: OrderLine, quantity: int | None = None) -> EventLine:
    return EventLine(sku_id=line.sku_id, product_id=line.product_id, category_id=line.category_id,
                     brand_id=line.brand_id, quantity=line.quantity if quantity is None else quantity,
                     price_fen=line.price_fen)


def _event_lines(order: Order, quantities: Mapping[int, int] | None = None) -> list[EventLine]:
    """The order's lines, or those named in `quantities` (line id -> units) with those units."""
    if quantities is None:
        return [event_line(line) for line in order.lines]
    return [event_line(line, quantities[line.id]) for line in order.lines if line.id in quantities]


def publish_returned(uow: OrderUnitOfWork, order: Order, *, case_no: str, units: Mapping[int, int],
                     now: datetime) -> None:
    """order-returned: these units of the order (line id -> units) are back with the shop, for the product service to
    put on sale again: a return staff received (`case_no`: its case) or units that never shipped (the refund's
    number)."""
    uow.publish(OrderReturned(order_no=order.order_no, user_id=order.user_id, case_no=case_no,
                              lines=_event_lines(order, units), received_at=timestamp(now)),
                aggregate_id=order.order_no)


def _event_amounts(order: Order) -> OrderAmounts:
    a = order.amounts
    return OrderAmounts(items_total_fen=a.items_total_fen, level_discount_fen=a.level_discount_fen,
                        coupon_discount_fen=a.coupon_discount_fen, points_discount_fen=a.points_discount_fen,
                        freight_fen=a.freight_fen, payable_fen=a.payable_fen)


# -- orders --------------------------------------------------------------------------------------

def get_order(uow: OrderUnitOfWork, *, user_id: int | None, order_id: int) -> Order:
    """The order; for a shopper (user_id given) only their own, another's is ORDER_NOT_FOUND."""
    with uow:
        order = _readable_order(uow, user_id=user_id, order_id=order_id)
        uow.commit()
    return order


@dataclass(frozen=True)
class OrderDetail:
    """An order as its detail page shows it: with every refund of it, oldest first, a late payment's too (money the
    order never took, refunded under LATE<order_no>), and the open after-sales case of each line that has one."""

    order: Order
    refunds: list[Refund]
    open_cases: dict[int, int]  # line id -> its open case's id


def get_order_detail(uow: OrderUnitOfWork, *, user_id: int | None, order_id: int) -> OrderDetail:
    """`get_order`, the order's refunds and its lines' open cases, read in the same transaction. Only the detail
    carries refunds: lists of orders would need a refund query per order."""
    with uow:
        order = _readable_order(uow, user_id=user_id, order_id=order_id)
        found = uow.refunds.for_order(order_id)
        cases = _open_cases(uow, [order])
        uow.commit()
    return OrderDetail(order, found, cases)


def _readable_order(uow: OrderUnitOfWork, *, user_id: int | None, order_id: int) -> Order:
    """The order, if the caller may read it: staff (user_id None) any, a shopper their own (else ORDER_NOT_FOUND,
    before anything of another's order is read)."""
    order = uow.orders.get(order_id)
    if order is None or (user_id is not None and order.user_id != user_id):
        raise order_not_found()
    return order


@dataclass(frozen=True)
class OrderPage:
    """A page of orders, newest first, the total matching, and the open after-sales case of each of their lines that
    has one (line id -> case id)."""

    orders: list[Order]
    total: int
    open_cases: dict[int, int]


def search_orders(uow: OrderUnitOfWork, search: OrderSearch) -> OrderPage:
    """A page of orders and their lines' open cases, in one transaction: one read of the case lines for the page,
    whatever its size."""
    if any(status not in OrderStatus.__members__ for status in search.statuses):
        raise InvalidInput("STATUS_INVALID", "unknown order status", details={"status": "invalid"})
    with uow:
        found, total = uow.orders.search(search)
        cases = _open_cases(uow, found)
        uow.commit()
    return OrderPage(found, total, cases)


def open_cases(uow: OrderUnitOfWork, orders: list[Order]) -> dict[int, int]:
    """The open after-sales case of each line of `orders` that has one (line id -> case id), read now: for an answer
    about orders a use case just changed."""
    with uow:
        cases = _open_cases(uow, orders)
        uow.commit()
    return cases


def _open_cases(uow: OrderUnitOfWork, orders: list[Order]) -> dict[int, int]:
    return uow.after_sales.open_cases([line.id for order in orders for line in order.lines if line.id is not None])


def cancel_order(uow: OrderUnitOfWork, *, user_id: int, order_id: int, reason: str, wechat: Prepay | None = None,
                 now: datetime | None = None) -> Order:
    """Unpaid: CANCELLED and order-cancelled (stock, coupon, points released by their owners). Paid: CANCEL_REQUESTED.

    An unpaid order with a WeChat Pay prepay is closed at WeChat Pay first, as the timeout does
    (`expire_prepaid`): no payment can arrive once it is cancelled, and one made just before the close
    pays the order, whose cancellation then becomes a request for customer service (or, paid too late,
    is refunded and the order answered CANCELLED). If WeChat Pay does not answer, nothing changes and the
    shopper is asked to try again (503).

    The close happens outside the row lock (a slow WeChat Pay call holds no row), so a WeChat payment started at the
    same moment may hand out a transaction the close did not see (the first prepay, or the next attempt after the
    closed one): checked again under the lock, as the wallet path does (`_record_wallet_attempt`), and then 409
    ORDER_STATE_CONFLICT with nothing changed; the shopper's next tap closes that one.
    """
    now = now or utcnow()
    with uow:
        order = uow.orders.get(order_id)
        if order is None or order.user_id != user_id:
            raise order_not_found()
        trade = order.open_wechat_trade if wechat is not None and order.status == OrderStatus.PENDING_PAYMENT else None
        closing = trade is not None
        uow.commit()
    if wechat is not None and trade is not None:
        _close_prepay(uow, wechat, trade, now)
    with uow:
        order = uow.orders.get(order_id, lock=True)
        if order is None:  # pragma: no cover - orders are never deleted
            raise order_not_found()
        if (wechat is not None and order.status == OrderStatus.PENDING_PAYMENT
                and order.open_wechat_trade not in (None, trade)):
            # Handed out since it was read (`pay_order` sets `prepaid_at` under this lock): still payable, and an
            # order is never cancelled beside a payable transaction.
            raise _payment_under_way(order, "cancel")
        if order.status == OrderStatus.PAID:
            order.apply("request_cancel", actor=f"user:{user_id}", now=now, reason=reason, shopper_reason=reason)
        elif not (closing and order.status == OrderStatus.CANCELLED):  # else the close found it paid too late
            order.apply("cancel", actor=f"user:{user_id}", now=now, reason=reason, shopper_reason=reason)
            publish_cancelled(uow, order, now=now, by="shopper", reason=reason)
        uow.commit()
    return order


def publish_cancelled(uow: OrderUnitOfWork, order: Order, *, now: datetime, by: str, reason: str,
                      was_paid: bool = False) -> None:
    uow.publish(OrderCancelled(order_no=order.order_no, user_id=order.user_id, lines=_event_lines(order), reason=reason,
                               cancelled_by=by, was_paid=was_paid, cancelled_at=timestamp(now),
                               coupon_id=order.coupon_id), aggregate_id=order.order_no)


EXPIRED = "payment deadline passed"


def expire_orders(uow: OrderUnitOfWork, *, wechat: Prepay | None = None, now: datetime | None = None,
                  batch: int = 100, budget: RoundBudget | None = None) -> int:
    """Cancel up to `batch` unpaid orders past their deadline; how many were settled (cancelled, or paid after all).

    Orders never prepaid are cancelled in one transaction; replicas skip each other's rows. An
    order with a WeChat Pay prepay is first closed at WeChat Pay (outside the row lock), so no
    payment can arrive after it is cancelled: see `expire_prepaid`. An order whose wallet payment is
    unknown (`wallet_attempt_at`) is not picked: `reconcile_wallet_payments` first pays it, or forgets
    the attempt and leaves it to the next scan. With the scan's `budget` spent, the prepaid orders after the first
    are left unpaid and due, for the next scan.
    """
    now = now or utcnow()
    with uow:
        orders = uow.orders.lock_expired(now, batch)
        prepaid = [trade for order in orders if (trade := order.open_wechat_trade) is not None and wechat is not None]
        for order in orders:
            if order.open_wechat_trade not in prepaid:
                _expire(uow, order, now)
        uow.commit()
    settled = len(orders) - len(prepaid)
    for i, trade in enumerate(prepaid):
        if i > 0 and budget is not None and budget.spent():
            log.info("payment timeout: the scan's budget is spent; %d prepaid orders wait for the next", len(prepaid) - i)
            break
        settled += expire_prepaid(uow, wechat, out_trade_no=trade, now=now)  # type: ignore[arg-type]
    return settled


PAID_TOO_LATE = "paid too late: its stock may be on sale again"
PAID_TOO_LATE_SHOPPER = "paid too late: the order is cancelled and the payment refunded"


def _expire(uow: OrderUnitOfWork, order: Order, now: datetime, reason: str = EXPIRED,
            shopper_reason: str = EXPIRED) -> None:
    action = "expire_paid_late" if reason == PAID_TOO_LATE else "expire"
    order.apply(action, actor="system:timeout", now=now, reason=reason, shopper_reason=shopper_reason)
    publish_cancelled(uow, order, now=now, by="timeout", reason=reason)


def expire_prepaid(uow: OrderUnitOfWork, wechat: Prepay, *, out_trade_no: str, now: datetime) -> bool:
    """Close the order's WeChat Pay transaction `out_trade_no` (`Order.open_wechat_trade`), then ask how it ended:
    paid first -> PAID, else CANCELLED.

    Race-safe: once closed, WeChat Pay takes no payment, so its answer is final; a notify that
    paid the order meanwhile finds it paid (mark_paid is once per payment). False (tried again at
    the next scan) when WeChat Pay does not answer, a wallet payment of the order is unknown, or the order has
    handed out another transaction since (the next scan closes that one).
    """
    order_no = order_no_of_trade(out_trade_no)
    try:
        notice = _closed(wechat, out_trade_no)
    except WechatPayError as exc:
        log.warning("closing the WeChat Pay transaction %s of expired order %s failed: %s", out_trade_no, order_no,
                    exc.reason)
        return False
    if notice is not None and notice.trade_state == "SUCCESS":
        try:
            take_wechat_payment(uow, wechat, notice, actor="system:timeout", now=now, log_refund_failure=True)
        except DomainError as exc:
            log.error("order %s was paid at WeChat Pay but cannot become PAID: %s", order_no, exc.code)
            return False
        return True
    with uow:
        order = uow.orders.by_order_no(order_no, lock=True)
        waiting = False
        if order is not None and order.status == OrderStatus.PENDING_PAYMENT:
            # A wallet payment begun before the deadline may have started since the scan picked the order: like
            # the scan, the timeout waits for it (`reconcile_wallet_payments`).
            waiting = order.wallet_attempt_at is not None or order.open_wechat_trade not in (None, out_trade_no)
            if not waiting:
                _expire(uow, order, now)
        uow.commit()
    return not waiting


def _closed(wechat: Prepay, out_trade_no: str) -> PaymentNotice | None:
    """Close the transaction, then how it ended; None when WeChat Pay has never heard of it."""
    try:
        wechat.close(out_trade_no)
    except WechatPayApiError as exc:
        if exc.means("ORDER_NOT_EXIST"):
            return None
        if not exc.means("ORDERPAID"):  # paid first: the query says so
            raise
    return wechat.query_by_out_trade_no(out_trade_no)


# -- payment -------------------------------------------------------------------------------------

class Prepay:
    """The part of the WeChat Pay adapter a payment starts with (services.common.wechatpay.WechatPay), built with the
    refund notify URL (`refund_notify_url`): a late payment's refund, asked for here, notifies the refund route."""

    def jsapi_prepay(self, *, out_trade_no: str, description: str, amount_fen: int, payer_openid: str,
                     notify_url: str, time_expire: datetime) -> str: ...  # pragma: no cover

    def request_payment_params(self, prepay_id: str) -> dict[str, str]: ...  # pragma: no cover

    def verify_notify(self, headers: Mapping[str, str], body: bytes | str) -> PaymentNotice: ...  # pragma: no cover

    def query_by_out_trade_no(self, out_trade_no: str) -> PaymentNotice: ...  # pragma: no cover

    def close(self, out_trade_no: str) -> None: ...  # pragma: no cover

    def refund(self, *, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int,
               reason: str | None = None) -> ChannelRefund: ...  # pragma: no cover


@dataclass(frozen=True)
class PaymentStart:
    channel: str
    out_trade_no: str
    status: str
    wx_request_payment: dict[str, str] = field(default_factory=dict)


def _payable(order: Order, now: datetime) -> None:
    if order.status != OrderStatus.PENDING_PAYMENT:
        raise Conflict("ORDER_STATE_CONFLICT", f"an order in {order.status} cannot be paid",
                       details={"status": order.status, "action": "pay"})
    if now >= order.pay_deadline:
        raise Conflict("ORDER_PAYMENT_EXPIRED", "the payment deadline of this order has passed",
                       details={"status": order.status, "action": "pay"})


def pay_order(uow: OrderUnitOfWork, members: Members, users: Users, wechat: Prepay | None, settings: OrderSettings,
              *, user_id: int, order_id: int, channel: str, now: datetime | None = None) -> PaymentStart:
    """WeChat: a JSAPI prepay and the signed wx.requestPayment parameters. Balance: paid from the wallet, PAID now
    (a charge for an order cancelled or paid otherwise while the wallet paid goes back to the wallet, and 409).
    Nothing to pay (payable_fen 0): PAID now with channel "none", whichever channel was chosen.

    A wallet payment is recorded on the order (`wallet_attempt_at`, committed) before the wallet is charged, so
    that one whose answer is lost (a timeout, a dropped connection: 503 to the shopper) is settled by
    `reconcile_wallet_payments` even if the shopper never tries again."""
    now = now or utcnow()
    if channel not in PAY_CHANNELS:
        raise InvalidInput("CHANNEL_INVALID", "channel must be wechat or balance", details={"channel": "invalid"})
    order = get_order(uow, user_id=user_id, order_id=order_id)
    _payable(order, now)
    if order.payable_fen == 0:
        # Discounts, coupon and points cover it all and there is no freight: the wallet refuses 0 fen and WeChat Pay
        # needs 1, so no channel could ever take it. The shopper's tap on "pay" is the payment (order-paid as usual).
        paid = mark_paid(uow, order_no=order.order_no, channel=NO_CHANNEL, out_trade_no=order.order_no, paid_fen=0,
                         actor=f"user:{user_id}", now=now)
        return PaymentStart(NO_CHANNEL, order.order_no, paid.status)
    if channel == "balance":
        trade = order.open_wechat_trade
        if trade is not None and wechat is not None and _close_prepay(uow, wechat, trade, now):
            raise Conflict("ORDER_ALREADY_PAID", "this order has been paid with WeChat Pay; the wallet was not charged",
                           details={"status": OrderStatus.PAID.value})
        _record_wallet_attempt(uow, order_id=order_id, closed=trade, now=now)
        try:
            members.pay_with_balance(order.order_no, order.payable_fen)  # idempotent per order_no on the member side
        except DomainError as exc:
            if exc.kind in WALLET_DECLINED:  # the wallet answered and charged nothing: no attempt to resolve
                _forget_wallet_attempt(uow, order_no=order.order_no, attempt_at=now)
            if exc.kind is ErrorKind.BUSINESS_RULE:  # the wallet declined (not enough balance)
                metrics.payment_refused("balance")
            raise  # any other failure (no answer): reconciliation asks the member service later
        paid = _settle_wallet_charge(uow, members, order_no=order.order_no,
                                     charge=WalletCharge(user_id, order.payable_fen), actor=f"user:{user_id}", now=now)
        return PaymentStart("balance", order.order_no, paid.status)
    if order.payable_fen > WECHATPAY_AMOUNT_MAX_FEN:
        # WeChat Pay would refuse it (PARAM_ERROR), which read as "try again" (503): it never will take it.
        raise DomainError("PAYMENT_AMOUNT_TOO_LARGE",
                          f"WeChat Pay takes at most {WECHATPAY_AMOUNT_MAX_FEN} fen in one payment; pay this order "
                          "from the wallet (channel balance)",
                          details={"channel": "wechat", "max_fen": WECHATPAY_AMOUNT_MAX_FEN})
    if wechat is None:
        raise DomainError("WECHATPAY_NOT_CONFIGURED", "WeChat Pay is not configured on this server")
    payer_openid = users.payer_openid(user_id)
    if not payer_openid:
        raise wechat_not_bound()
    out_trade_no, prepay_id = _prepay(uow, wechat, order, payer_openid=payer_openid, notify_url=settings.notify_url,
                                      now=now)
    with uow:
        prepaid = uow.orders.get(order_id, lock=True)
        if prepaid is None:  # pragma: no cover - orders are never deleted
            raise order_not_found()
        if prepaid.status != OrderStatus.PENDING_PAYMENT:
            # Cancelled, or paid from the wallet, while WeChat Pay was asked (neither closed a transaction it did not
            # know of yet): the shopper is not handed a payment it could no longer take.
            raise prepaid.conflict("pay")
        if prepaid.wallet_attempt_at is not None or prepaid.wechat_out_trade_no != out_trade_no:
            # A wallet payment is under way (it closed what it saw prepaid, which may not have included this one), or
            # this transaction was closed and the next opened meanwhile: a wallet charge never meets a payable one.
            raise _payment_under_way(prepaid)
        if prepaid.prepaid_at is None:
            prepaid.prepaid_at = now
        uow.commit()
    return PaymentStart("wechat", out_trade_no, order.status, wechat.request_payment_params(prepay_id))


def _payment_under_way(order: Order, action: str = "pay") -> Conflict:
    """ORDER_STATE_CONFLICT (409) for a payment (or a cancellation) that meets a payment of the same order under way:
    try again."""
    return Conflict("ORDER_STATE_CONFLICT", "another payment of this order is under way; try again in a moment",
                    details={"status": order.status, "action": action})


def _prepay(uow: OrderUnitOfWork, wechat: Prepay, order: Order, *, payer_openid: str, notify_url: str,
            now: datetime) -> tuple[str, str]:
    """The JSAPI prepay of the order's current WeChat Pay transaction (`Order.wechat_out_trade_no`): its out_trade_no
    and prepay_id.

    WeChat Pay answering ORDERCLOSED (a wallet payment closed the transaction first, then charged nothing; WeChat Pay
    takes no payment under that number again): the next transaction is opened (`_next_wechat_attempt`) and prepaid.
    ORDERPAID (the shopper paid, tapped pay again, and the notify is still on its way): the payment is taken now
    (`_close_prepay`: closed, queried, PAID) and ORDER_ALREADY_PAID answered. No answer, or any other refusal:
    PAYMENT_CHANNEL_UNAVAILABLE (503)."""
    def jsapi_prepay(out_trade_no: str) -> str:
        return wechat.jsapi_prepay(out_trade_no=out_trade_no, description=_description(order),
                                   amount_fen=order.payable_fen, payer_openid=payer_openid, notify_url=notify_url,
                                   time_expire=order.pay_deadline)

    out_trade_no = order.wechat_out_trade_no
    try:
        try:
            return out_trade_no, jsapi_prepay(out_trade_no)
        except WechatPayApiError as exc:
            if not exc.means("ORDERCLOSED"):
                raise
        out_trade_no = _next_wechat_attempt(uow, order_id=order.id or 0, closed=out_trade_no, now=now)
        return out_trade_no, jsapi_prepay(out_trade_no)
    except WechatPayApiError as exc:
        if exc.means("ORDERPAID"):
            if _close_prepay(uow, wechat, out_trade_no, now):
                raise Conflict("ORDER_ALREADY_PAID", "this order has been paid with WeChat Pay",
                               details={"status": OrderStatus.PAID.value}) from None
            _payable(get_order(uow, user_id=order.user_id, order_id=order.id or 0), now)  # paid too late: refunded
        elif exc.means("ORDERCLOSED"):  # the transaction just opened was closed too: a wallet payment came between
            raise _payment_under_way(order) from None
        log.warning("the WeChat Pay prepay of order %s was refused: %s", out_trade_no, exc.reason)
        raise DomainError("PAYMENT_CHANNEL_UNAVAILABLE", "WeChat Pay did not take the payment; try again",
                          kind=ErrorKind.UNAVAILABLE, details={"channel_code": exc.code}) from None
    except WechatPayError as exc:
        log.warning("the WeChat Pay prepay of order %s failed: %s", out_trade_no, exc.reason)
        raise DomainError("PAYMENT_CHANNEL_UNAVAILABLE", "WeChat Pay did not answer; try again",
                          kind=ErrorKind.UNAVAILABLE) from None


def _next_wechat_attempt(uow: OrderUnitOfWork, *, order_id: int, closed: str, now: datetime) -> str:
    """The order's WeChat Pay transaction `closed` was closed unpaid (WeChat Pay answered its prepay ORDERCLOSED): open
    the next (`Order.next_wechat_attempt`) under the order's row lock, unless another tap opened it already; its
    out_trade_no. Not while a wallet payment is under way (409 ORDER_STATE_CONFLICT: the wallet closed the transaction
    to charge, and may still), nor for an order no longer payable."""
    with uow:
        order = uow.orders.get(order_id, lock=True)
        if order is None:  # pragma: no cover - orders are never deleted
            raise order_not_found()
        _payable(order, now)
        if order.wallet_attempt_at is not None:
            raise _payment_under_way(order)
        if order.wechat_out_trade_no == closed:
            order.next_wechat_attempt()
        out_trade_no = order.wechat_out_trade_no
        uow.commit()
    return out_trade_no


def _record_wallet_attempt(uow: OrderUnitOfWork, *, order_id: int, closed: str | None, now: datetime) -> None:
    """Note on the order, in its own committed transaction, that its wallet is about to be charged (while it is
    still payable, checked again under the row lock): until this attempt is resolved the timeout leaves it alone.

    `closed`: the WeChat Pay transaction the wallet payment found handed out and closed (`Order.open_wechat_trade`);
    if the order has handed out another since (a WeChat payment that came between), 409 ORDER_STATE_CONFLICT: that
    one is still payable, and the wallet is not charged beside it."""
    with uow:
        order = uow.orders.get(order_id, lock=True)
        if order is None:  # pragma: no cover - orders are never deleted
            raise order_not_found()
        _payable(order, now)
        if order.open_wechat_trade != closed:
            raise _payment_under_way(order)
        if order.id is not None and uow.wallet_reviews.for_order(order.id) is not None:
            # The member service took this order's one wallet charge already, from a wallet staff are looking into.
            raise wallet_payment_under_review(order)
        order.wallet_attempt_at = now
        uow.commit()


def _forget_wallet_attempt(uow: OrderUnitOfWork, *, order_no: str, attempt_at: datetime) -> bool:
    """The wallet charged nothing for the attempt started at `attempt_at`: forget it, unless a newer one has started
    since (whose charge may still be under way). True when forgotten."""
    with uow:
        order = uow.orders.by_order_no(order_no, lock=True)
        forgotten = order is not None and order.wallet_attempt_at == attempt_at
        if order is not None and forgotten:
            order.wallet_attempt_at = None
        uow.commit()
    return forgotten


def _settle_wallet_charge(uow: OrderUnitOfWork, members: Members, *, order_no: str, charge: WalletCharge,
                          actor: str, now: datetime) -> Order:
    """The wallet paid `charge` for the order: PAID if it still can be; when it was cancelled or paid otherwise
    meanwhile, the charge goes back to the wallet (`refund_late_wallet_payment`) and the Conflict is raised."""
    try:
        return mark_paid(uow, order_no=order_no, channel="balance", out_trade_no=order_no,
                         paid_fen=charge.amount_fen, actor=actor, now=now)
    except Conflict as exc:
        if exc.code == "ORDER_STATE_CONFLICT":  # cancelled, expired or paid otherwise while the wallet paid
            refund_late_wallet_payment(uow, members, order_no=order_no, user_id=charge.user_id,
                                       amount_fen=charge.amount_fen, actor=actor, now=now)
        raise


def _close_prepay(uow: OrderUnitOfWork, wechat: Prepay, out_trade_no: str, now: datetime) -> bool:
    """Close an unpaid order's WeChat Pay transaction `out_trade_no` before it is cancelled or paid otherwise; True when
    WeChat Pay had been paid first (the order is PAID by it now). Once closed, no WeChat payment can arrive for it.

    DomainError PAYMENT_CHANNEL_UNAVAILABLE (503, nothing changed) when WeChat Pay does not answer.
    """
    try:
        notice = _closed(wechat, out_trade_no)
    except WechatPayError as exc:
        log.warning("closing the WeChat Pay transaction %s failed: %s", out_trade_no, exc.reason)
        raise DomainError("PAYMENT_CHANNEL_UNAVAILABLE", "WeChat Pay did not answer; try again",
                          kind=ErrorKind.UNAVAILABLE) from None
    if notice is None or notice.trade_state != "SUCCESS":
        return False
    return take_wechat_payment(uow, wechat, notice, actor="wechatpay", now=now)


def take_wechat_payment(uow: OrderUnitOfWork, wechat: Prepay, notice: PaymentNotice, *, actor: str, now: datetime | None,
                        log_refund_failure: bool = False) -> bool:
    """A payment WeChat Pay reports made (its notify, or a query after a close or by reconciliation) pays its order
    once (`mark_paid`); when the order can no longer take it (cancelled, paid too late, or paid otherwise
    meanwhile) it is refunded (`refund_late_payment`). True when it paid the order, False when refunded. Every path
    that learns of a WeChat Pay payment comes here, so none can keep money the order refused.

    `mark_paid`'s other errors are raised. `log_refund_failure` (the jobs, which go on to the next order): a refund
    that fails is logged, not raised; WeChat Pay keeps notifying the payment, whose notify refunds it again."""
    try:
        mark_paid(uow, order_no=order_no_of_trade(notice.out_trade_no), channel="wechat",
                  out_trade_no=notice.out_trade_no, paid_fen=notice.amount_total_fen, actor=actor, now=now)
        return True
    except Conflict as exc:
        if exc.code != "ORDER_STATE_CONFLICT":
            raise
    try:
        refund_late_payment(uow, wechat, notice, now=now)
    except (DomainError, WechatPayError) as failed:
        if not log_refund_failure:
            raise
        log.warning("refunding the late payment %s failed: %s", notice.out_trade_no, failed)
    return False


def _description(order: Order) -> str:
    first = order.lines[0].name if order.lines else "MiniMall"
    return (first if len(order.lines) == 1 else f"{first} 等{len(order.lines)}件")[:127]


def mark_paid(uow: OrderUnitOfWork, *, order_no: str, channel: str, out_trade_no: str, paid_fen: int, actor: str,
              now: datetime | None = None) -> Order:
    """PENDING_PAYMENT -> PAID once, with order-paid, under the order row's lock; a replay changes nothing.
    Paid from the wallet, its wallet attempt is resolved with it. A WeChat Pay `out_trade_no` must be one of the
    order's transactions (`Order.has_wechat_trade`), else ORDER_NOT_FOUND.

    Learned of too late, when the order's stock may be on sale again (`Order.stock_may_be_released`), a payment
    cancels the order instead (order-cancelled) and raises ORDER_STATE_CONFLICT, as for an order cancelled before
    it was paid: every caller then refunds the payment."""
    now = now or utcnow()
    with uow:
        order = uow.orders.by_order_no(order_no, lock=True)
        if order is None or (channel == "wechat" and not order.has_wechat_trade(out_trade_no)):
            raise order_not_found()
        if paid_fen != order.payable_fen:
            raise Conflict("PAYMENT_AMOUNT_MISMATCH", "the amount paid differs from the order's",
                           details={"payable_fen": order.payable_fen, "paid_fen": paid_fen})
        if order.paid_at is not None and (order.pay_channel, order.out_trade_no) == (channel, out_trade_no):
            uow.commit()
            return order  # a replay of the payment already applied (another channel's payment is a conflict)
        if order.status == OrderStatus.PENDING_PAYMENT and order.stock_may_be_released(now):
            _expire(uow, order, now, reason=PAID_TOO_LATE, shopper_reason=PAID_TOO_LATE_SHOPPER)
            uow.on_commit(lambda: metrics.PAID_AFTER_STOCK_HOLD.labels(channel).inc())
            uow.commit()
            log.error("order %s: a %s payment of %d fen came %s after it was placed, when its stock may be on "
                      "sale again; the order is cancelled and the payment refunded", order_no, channel, paid_fen,
                      now - order.created_at)
            raise order.conflict("pay")
        order.apply("pay", actor=actor, now=now, reason=channel, shopper_reason=channel)
        order.paid_at, order.pay_channel, order.out_trade_no = now, channel, out_trade_no
        if channel == "balance":
            order.wallet_attempt_at = None  # what the wallet did is known: every attempt charges the order once
        uow.publish(OrderPaid(order_no=order.order_no, user_id=order.user_id, lines=_event_lines(order),
                              amounts=_event_amounts(order), province=order.address.province,
                              created_at=timestamp(order.created_at), paid_at=timestamp(now), channel=channel,
                              out_trade_no=out_trade_no, paid_fen=paid_fen, coupon_id=order.coupon_id,
                              points_used=order.points_used), aggregate_id=order.order_no)
        uow.on_commit(lambda: metrics.order_paid(channel, paid_fen))
        uow.commit()
    return order


def handle_wechat_notify(uow: OrderUnitOfWork, wechat: Prepay | None, *, headers: Mapping[str, str], body: bytes,
                         now: datetime | None = None) -> None:
    """A verified TRANSACTION.SUCCESS pays its order once; NotifyRejected (answered 4xx FAIL) for anything else."""
    if wechat is None:
        raise NotifyRejected("WeChat Pay is not configured")
    notice = wechat.verify_notify(headers, body)
    if notice.trade_state != "SUCCESS":
        return  # nothing paid: acknowledged so WeChat Pay stops repeating it
    try:
        take_wechat_payment(uow, wechat, notice, actor="wechatpay", now=now)
    except NotFound:
        raise NotifyRejected("no order has this out_trade_no") from None
    except Conflict as exc:  # the late payment's refund raises no Conflict: this is mark_paid's refusal
        raise NotifyRejected(exc.message) from None


LATE_PAYMENT = "paid after cancellation, refunded"
LATE_REFUND_REASON = "订单已取消"  # what WeChat Pay shows the shopper for a late payment's refund
DOUBLE_PAYMENT = "paid again with WeChat Pay, refunded"


def refund_late_payment(uow: OrderUnitOfWork, wechat: Prepay, notice: PaymentNotice, *,
                        now: datetime | None = None) -> str:
    """Money for an order that can no longer be paid (cancelled, or paid from the wallet meanwhile): recorded in its
    history, late-payment-received once per refund number (run_once, whoever recorded the step), refunded in full through the refund engine (`refunds.start_late_refund`:
    a refund of source "late_payment", tracked to its end like any other; late-payment-refunded when it is paid).

    The refund number is derived from the order, so a replayed notify finds the same refund (and asks WeChat Pay
    again only while it is PENDING, under the same number, which WeChat Pay treats as one); a refund call that gets
    no answer is answered 5xx and WeChat Pay notifies again (the fallback job asks about it meanwhile).
    """
    now = now or utcnow()
    out_refund_no = late_refund_no(notice.out_trade_no)
    with uow:
        order = uow.orders.by_order_no(order_no_of_trade(notice.out_trade_no), lock=True)
        if order is None or (order.pay_channel, order.out_trade_no) == ("wechat", notice.out_trade_no):  # mark_paid
            raise NotifyRejected("this payment does not belong to an order it did not pay")  # pragma: no cover
        why = LATE_PAYMENT if order.paid_at is None else DOUBLE_PAYMENT
        if not any(step.reason.startswith((LATE_PAYMENT, DOUBLE_PAYMENT)) for step in order.history):
            order.record_step(kind=StepKind.PAYMENT_NOTE, actor="wechatpay", now=now,
                              reason=f"{why} ({out_refund_no}, {notice.amount_total_fen} fen)", shopper=False)
        # Not tied to the step: one an earlier release recorded (before late-payment-received existed) would leave
        # the refund's late-payment-refunded without its receipt in the money ledger.
        late = order
        uow.run_once(scope=LATE_RECEIVED_SCOPE, key=out_refund_no, request=str(notice.amount_total_fen).encode(),
                     execute=lambda: publish_late_payment(uow, late, channel="wechat", out_trade_no=notice.out_trade_no,
                                                          amount_fen=notice.amount_total_fen,
                                                          refund_no=out_refund_no, now=now).encode())
        uow.commit()
    from services.order import refunds  # refunds builds on this module: imported when a late payment needs it
    refunds.start_late_refund(uow, wechat, out_trade_no=notice.out_trade_no, amount_fen=notice.amount_total_fen,
                              reason=LATE_REFUND_REASON, actor="wechatpay", now=now)
    return out_refund_no


def late_refund_no(out_trade_no: str) -> str:
    """The one refund number of a late WeChat Pay payment under `out_trade_no` (refunds.start_late_refund): LATE and
    the order number for an order's first transaction (every one before orders could open more), LATE<order_no>_<n>
    for a later one."""
    return f"LATE{out_trade_no}"


def late_refund_trade(refund_no: str) -> str:
    """The out_trade_no whose late payment the refund `refund_no` (`late_refund_no`) returns."""
    return refund_no.removeprefix("LATE")


def _late_payment_reason(order: Order) -> str:
    """Why the order could not take the payment, as late-payment-received says it."""
    if order.paid_at is not None:
        return "paid_otherwise"
    return "too_late" if any(step.reason == PAID_TOO_LATE for step in order.history) else "cancelled"


# The run_once scope that makes a WeChat Pay late payment's late-payment-received once per refund number (order
# migration 0014 claimed it for every one published before, when the order's history step alone guarded it).
LATE_RECEIVED_SCOPE = "late-payment-received"


def publish_late_payment(uow: OrderUnitOfWork, order: Order, *, channel: str, out_trade_no: str, amount_fen: int,
                         refund_no: str, now: datetime, reason: str = "", user_id: int | None = None) -> str:
    """late-payment-received (its event id returned): money came in for an order that could not take it (the finance
    ledger's + side); once per late payment: a WeChat Pay one under run_once (LATE_RECEIVED_SCOPE, keyed by its refund
    number), a wallet charge in the transaction that records it and its credit back together. `reason` (default:
    the order's state says it, `_late_payment_reason`) and `user_id` (default: the order's shopper) for a charge
    staff reviewed (services/order/wallet_reviews.py)."""
    return uow.publish(LatePaymentReceived(order_no=order.order_no, user_id=order.user_id if user_id is None else user_id,
                                    channel=channel, out_trade_no=out_trade_no, amount_fen=amount_fen,
                                    reason=reason or _late_payment_reason(order), refund_no=refund_no,
                                    received_at=timestamp(now)), aggregate_id=order.order_no)


def publish_late_refund(uow: OrderUnitOfWork, order: Order, *, channel: str, out_trade_no: str, amount_fen: int,
                        refund_no: str, now: datetime, user_id: int | None = None) -> bytes:
    """late-payment-refunded (its event id returned): the late payment went back (the ledger's - side); not an
    order-refunded, which would take back what the order's own payment earned (its spend and points, its sale).
    In the transaction that records the refund paid (a WeChat Pay refund settling SUCCESS, a wallet credit back),
    once per refund number."""
    return uow.publish(LatePaymentRefunded(order_no=order.order_no,
                                           user_id=order.user_id if user_id is None else user_id, refund_no=refund_no,
                                           amount_fen=amount_fen, channel=channel, out_trade_no=out_trade_no,
                                           refunded_at=timestamp(now)), aggregate_id=order.order_no).encode()


WALLET_LATE_PAYMENT = "paid from the wallet too late, refunded"


def refund_late_wallet_payment(uow: OrderUnitOfWork, members: Members, *, order_no: str, user_id: int,
                               amount_fen: int, actor: str, now: datetime) -> str:
    """A wallet charge made for an order that stopped being payable meanwhile (cancelled by the shopper or the
    timeout, or paid with WeChat Pay, between pay_order's check and its mark_paid): credited back to the wallet
    in full and recorded in the order's history, which resolves its wallet attempt.

    The refund number is derived from the order: the member service credits it once, however often this runs.
    When the member service does not answer, the attempt stays unresolved and `reconcile_wallet_payments`
    credits it back later.
    """
    refund_no = credit_back_no(order_no)
    try:
        members.refund_to_balance(refund_no, order_no, user_id, amount_fen)
    except DomainError:
        log.warning("order %s: the wallet charge of %d fen made after it stopped being payable was not credited "
                    "back yet (refund %s); reconciliation retries it", order_no, amount_fen, refund_no)
        raise
    reason = f"{WALLET_LATE_PAYMENT} ({refund_no}, {amount_fen} fen)"
    with uow:
        order = uow.orders.by_order_no(order_no, lock=True)
        if order is not None:
            order.wallet_attempt_at = None  # no order that stopped being payable takes a new attempt
            if all(step.reason != reason for step in order.history):
                order.record_step(kind=StepKind.PAYMENT_NOTE, actor=actor, now=now, reason=reason, shopper=False)
                publish_wallet_credit_back(uow, order, amount_fen=amount_fen, refund_no=refund_no, now=now)
        uow.commit()
    return refund_no


def publish_wallet_credit_back(uow: OrderUnitOfWork, order: Order, *, amount_fen: int, refund_no: str, now: datetime,
                               user_id: int | None = None, reason: str = "") -> None:
    """A wallet charge the order never kept, credited back to the wallet: late-payment-received and
    late-payment-refunded together, since the wallet answers synchronously and both are known only now. The caller
    publishes once, in the transaction that records the credit back (a late wallet payment's history step, a
    review's change to CREDITED). `user_id` and `reason` as `publish_late_payment` takes them (a reviewed charge
    from another user's wallet)."""
    money = {"channel": "balance", "out_trade_no": order.order_no, "amount_fen": amount_fen, "refund_no": refund_no,
             "now": now, "user_id": user_id}
    publish_late_payment(uow, order, reason=reason, **money)
    publish_late_refund(uow, order, **money)


def reconcile_wallet_payments(uow: Callable[[], OrderUnitOfWork], members: Members, *, now: datetime | None = None,
                              settle_seconds: int = WALLET_SETTLE_SECONDS, batch: int = 50) -> int:
    """Resolve wallet payments still unknown `settle_seconds` after they started (the PayWithBalance answer was
    lost, or a late charge could not be credited back): ask the member service, as the order service, what the
    wallet paid for the order (`_resolve_wallet_attempt`). Returns how many were resolved; one the member service
    does not answer waits for the next round (its order is not cancelled meanwhile). A charge that cannot settle
    its order is resolved by leaving it for staff (services/order/wallet_reviews.py), so it never holds up the
    oldest-first batch."""
    now = now or utcnow()
    with uow() as tx:
        attempts = [(order.order_no, order.wallet_attempt_at) for order in
                    tx.orders.wallet_attempts_before(now - timedelta(seconds=settle_seconds), batch)
                    if order.wallet_attempt_at is not None]
        tx.commit()
    resolved = 0
    for order_no, attempt_at in attempts:
        try:
            resolved += _resolve_wallet_attempt(uow(), members, order_no=order_no, attempt_at=attempt_at, now=now)
        except DomainError as exc:
            log.warning("the wallet payment of order %s is still unknown: %s", order_no, exc.code)
    return resolved


def _resolve_wallet_attempt(uow: OrderUnitOfWork, members: Members, *, order_no: str, attempt_at: datetime,
                            now: datetime) -> bool:
    """What did the wallet pay for the order whose wallet payment started at `attempt_at`? Charged: the order is
    PAID (it was paid before its deadline) if it is still unpaid, else the charge is credited back (LATEW<order_no>,
    once). Never charged: the member service voided the order's wallet payment in the same call, so a charge still
    under way there is refused and "never" is final (as closing a WeChat Pay transaction); the attempt is forgotten,
    unless a newer one started meanwhile, and the timeout may then cancel the order. A charge that cannot settle the
    order (another user's wallet, another amount) is left for staff (`leave_for_staff`). True when resolved.
    Replicas may resolve the same attempt: each outcome happens once."""
    charge = members.void_balance_payment(order_no)
    if charge is None:
        return _forget_wallet_attempt(uow, order_no=order_no, attempt_at=attempt_at)
    with uow:
        order = uow.orders.by_order_no(order_no)
        uow.commit()
    if order is None:  # pragma: no cover - orders are never deleted
        raise order_not_found()
    problem = OTHER_USERS_WALLET if charge.user_id != order.user_id else ""
    if not problem:
        try:
            _settle_wallet_charge(uow, members, order_no=order_no, charge=charge, actor="reconciliation", now=now)
        except Conflict as exc:
            problem = "" if exc.code == "ORDER_STATE_CONFLICT" else exc.code
    if problem:
        log.error("order %s: the wallet of user %d paid %d fen for it, which cannot settle it (%s); left for staff",
                  order_no, charge.user_id, charge.amount_fen, problem)
        return leave_for_staff(uow, order_no=order_no, attempt_at=attempt_at, charge=charge, problem=problem,
                               now=now)
    return True


# An unpaid order this long past its deadline is overdue: the payment timeout (every few seconds) and the wallet
# reconciliation (a minute or so) would have settled it unless something they wait for is not answering.
OVERDUE = timedelta(minutes=10)


@dataclass(frozen=True)
class PaymentBacklog:
    """Payment work that is stuck: unpaid orders overdue, by what settling them waits for (an unknown wallet answer,
    a WeChat Pay transaction not closed yet, or nothing: the timeout is not running), and wallet charges for staff."""

    unpaid_overdue: dict[str, int]
    wallet_charges_for_staff: int


def payment_backlog(uow: OrderUnitOfWork, *, now: datetime | None = None) -> PaymentBacklog:
    """What the payment-watch job shows as gauges (metrics.show_payment_backlog) for the alerts to see: an order left
    unpaid past its deadline keeps its stock reserved only PAYABLE_WITHIN its placing."""
    now = now or utcnow()
    with uow:
        backlog = PaymentBacklog(uow.orders.count_unpaid_due(now - OVERDUE), uow.wallet_reviews.count_open())
        uow.commit()
    return backlog


def reconcile_payments(uow: Callable[[], OrderUnitOfWork], wechat: Prepay, *, now: datetime | None = None,
                       settle_seconds: int = 60, batch: int = 50, interval_seconds: float = 0,
                       budget: RoundBudget | None = None) -> int:
    """Ask WeChat Pay about unpaid orders prepaid a while ago: a paid one whose notify was lost becomes PAID.

    Returns how many were paid. A query that fails is left for the next round. Every such order is asked about each
    round, page after page of `batch` (`each_page`): the prepaid orders shoppers left unpaid stay candidates until
    their deadline, and a fixed batch of the oldest would keep a paid one behind them unpaid until the timeout. So
    one round per `interval_seconds` asks, whichever replica's timer starts it, and never while another is under way
    (`one_round_at_a_time`; 0 otherwise): one query per order per interval, however many replicas. With a `budget`
    (the job's, started by its timer) the round stops between orders once it is spent, and the next goes on after
    the last order asked (one still unpaid stays due: starting over would ask the first pages again and again).
    """
    now = now or utcnow()
    prepaid_before = now - timedelta(seconds=settle_seconds)
    return one_round_at_a_time(uow, "payment-reconciliation", lambda: each_page(
        uow, lambda tx, after: tx.orders.unpaid_prepaid(prepaid_before, after[0], batch), (0, ""), batch,
        lambda key: _reconcile_payment(uow, wechat, out_trade_no=key[1], now=now), what="prepaid order",
        budget=budget),
        now=now, interval=timedelta(seconds=interval_seconds), budget=budget)


def _reconcile_payment(uow: Callable[[], OrderUnitOfWork], wechat: Prepay, *, out_trade_no: str, now: datetime) -> int:
    """Ask WeChat Pay about one unpaid prepaid order's current transaction (earlier ones were closed unpaid): 1 when a
    payment it reports made the order PAID."""
    try:
        notice = wechat.query_by_out_trade_no(out_trade_no)
    except WechatPayError as exc:
        log.warning("payment query for %s failed: %s", out_trade_no, exc.reason)
        return 0
    if notice.trade_state != "SUCCESS":
        return 0
    # One cancelled since it was picked (by staff, or its timeout on another replica), or just now because it
    # was paid too late, gets its money back, as when the notify itself arrives late.
    try:
        return int(take_wechat_payment(uow(), wechat, notice, actor="reconciliation", now=now,
                                       log_refund_failure=True))
    except Conflict as exc:
        log.error("%s was paid at WeChat Pay but cannot become PAID: %s", out_trade_no, exc.code)
        return 0


# -- fulfilment ----------------------------------------------------------------------------------

def ship_order(uow: OrderUnitOfWork, *, order_id: int, carrier: str, tracking_no: str,
               lines: dict[int, int] | None, actor: str, now: datetime | None = None) -> Order:
    """Staff hand units of a PAID order to a carrier; the shipment of its last units publishes order-shipped."""
    now = now or utcnow()
    carrier, tracking_no = check_parcel(carrier, tracking_no)
    with uow:
        order = uow.orders.get(order_id, lock=True)
        if order is None:
            raise order_not_found()
        shipment = order.ship(carrier=carrier, tracking_no=tracking_no, lines=lines, actor=actor, now=now)
        if order.status == OrderStatus.SHIPPED:
            uow.publish(OrderShipped(order_no=order.order_no, user_id=order.user_id,
                                     shipment=_event_shipment(order, shipment), shipped_at=timestamp(now)),
                        aggregate_id=order.order_no)
        uow.commit()
    return order


def check_parcel(carrier: str, tracking_no: str) -> tuple[str, str]:
    """A parcel's carrier (1-32 characters) and tracking number (`formats.TRACKING_NO`), trimmed; SHIPMENT_INVALID
    (400) otherwise. Never cut to fit: a tracking number cut short names another parcel, or none."""
    carrier, tracking_no = plain(carrier, formats.CARRIER_MAX + 1), tracking_no.strip()
    if not 0 < len(carrier) <= formats.CARRIER_MAX or not formats.TRACKING_NO_PATTERN.fullmatch(tracking_no):
        raise InvalidInput("SHIPMENT_INVALID", "give the carrier (1-32 characters) and the parcel's tracking number "
                           "(1-64 letters, digits or hyphens, starting with a letter or digit)",
                           details={"carrier": f"1-{formats.CARRIER_MAX} characters",
                                    "tracking_no": formats.TRACKING_NO})
    return carrier, tracking_no


def _event_shipment(order: Order, shipment: Shipment) -> EventShipment:
    return EventShipment(shipment_no=shipment.shipment_no, carrier=shipment.carrier, tracking_no=shipment.tracking_no,
                         lines=_event_lines(order, {item.line_id: item.quantity for item in shipment.lines}),
                         shipped_at=timestamp(shipment.shipped_at))


def confirm_receipt(uow: OrderUnitOfWork, *, user_id: int, order_id: int, now: datetime | None = None) -> Order:
    """The shopper got their SHIPPED order: COMPLETED, order-completed."""
    now = now or utcnow()
    with uow:
        order = uow.orders.get(order_id, lock=True)
        if order is None or order.user_id != user_id:
            raise order_not_found()
        order.confirm_receipt(actor=f"user:{user_id}", now=now)
        _publish_completed(uow, order, by="shopper", now=now)
        uow.commit()
    return order


def _publish_completed(uow: OrderUnitOfWork, order: Order, *, by: str, now: datetime) -> None:
    """order-completed with what the shopper keeps (`Order.kept`): each line's units and fen net of its refunds,
    lines refunded in full left out (none to review), and the order's payable less its refunds."""
    lines = [CompletedLine(line_id=kept.line.id, line=event_line(kept.line, kept.quantity),
                           refunded_quantity=kept.line.refunded_quantity, kept_fen=kept.kept_fen)
             for kept in order.kept()]
    uow.publish(OrderCompleted(order_no=order.order_no, user_id=order.user_id, lines=lines, confirmed_by=by,
                               completed_at=timestamp(now), kept_fen=order.payable_fen - order.refunded_fen),
                aggregate_id=order.order_no)


def auto_confirm_orders(uow: OrderUnitOfWork, settings: OrderSettings, *, now: datetime | None = None,
                        batch: int = 100) -> int:
    """Confirm receipt of up to `batch` orders SHIPPED `auto_confirm_days` ago, in one transaction (like the timeout);
    how many were confirmed.

    After-sales pause the clock, for `auto_confirm_max_pause_days` in total at most (`Order.confirm_clock`): the
    time its cases were open is added to its `auto_confirm_days`, and an order with a case open is not confirmed
    (the shopper may still confirm it) until its cases have held it that long; from then on, however many cases
    the shopper opens and withdraws, it is confirmed `auto_confirm_days` + `auto_confirm_max_pause_days` after
    shipping, a case open or not (the case goes on: cases run on completed orders too). One found due by
    shipped_at whose cases held it has its clock moved on instead (`confirm_clock_at`), and the job picks it up
    again when that is due. One found by shipped_at alone whose case still holds it (after a pause of the job, or a
    lowered limit: a case opened lately on an order shipped long ago) is passed over and the next rows read in its
    place, so such orders never crowd due ones out of the batch. Replicas skip the orders another holds (FOR UPDATE
    SKIP LOCKED); a case is opened under the order's row lock, so the cases read here under that lock are all there
    are.
    """
    now = now or utcnow()
    days = settings.auto_confirm_days
    max_pause = timedelta(days=settings.auto_confirm_max_pause_days)
    due = now - timedelta(days=days)
    confirmed = 0
    held: list[int] = []  # orders a case still holds: passed over, the next rows read in their place
    with uow:
        while True:
            wanted = batch - confirmed
            orders = uow.orders.lock_confirmable_before(due, due - max_pause, wanted, skip=held)
            case_times = uow.after_sales.case_times([order.id or 0 for order in orders])  # one query for the batch
            passed_over = len(held)
            for order in orders:
                clock = order.confirm_clock(case_times.get(order.id or 0, []), now=now, max_pause=max_pause)
                if clock is None:  # a case holds it (opened since the rows were chosen, or lately)
                    held.append(order.id or 0)
                    continue
                if clock > due:
                    order.confirm_clock_at = clock
                    continue
                order.confirm_receipt(actor="system:auto-confirm", now=now, automatic=True,
                                      reason=f"confirmed automatically {days} days after shipping"
                                      + _pause_note(clock - (order.shipped_at or clock), settings))
                _publish_completed(uow, order, by="auto", now=now)
                confirmed += 1
            if len(orders) < wanted or len(held) == passed_over:
                break
        uow.commit()
    return confirmed


def _pause_note(paused: timedelta, settings: OrderSettings) -> str:
    """What the history says of the after-sales pause in an automatic confirmation (the shopper reads it too)."""
    if not paused:
        return ""
    if paused >= timedelta(days=settings.auto_confirm_max_pause_days):
        return f" (after-sales paused the clock {settings.auto_confirm_max_pause_days} days, the most they may)"
    return " (after-sales paused the clock)"
