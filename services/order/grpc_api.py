"""OrderService servicer: protobuf in, use case, protobuf out. Errors are mapped by the interceptor."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TypeVar

import grpc
from mall.order.v1 import after_sale_pb2, after_sale_pb2_grpc, order_pb2, order_pb2_grpc

from services.common import formats
from services.common.auth import (
    ORDER_STAFF,
    REFUND_CLOSERS,
    REFUND_DECIDERS,
    REFUND_READERS,
    REFUND_RETRIERS,
    SHIPPERS,
    WALLET_RESOLVERS,
    WALLET_REVIEWERS,
    Role,
    require_caller,
    require_service,
)
from services.common.errors import InvalidInput
from services.common.events import timestamp
from services.common.grpc_server import page as _page
from services.common.wechatpay import NotifyRejected
from services.order import aftersales, metrics, refunds, service, wallet_reviews
from services.order.domain import Address, Amounts, Order, OrderLine, Refund, Step, Transition
from services.order.ports import Catalog, Members, Stock, Users
from services.order.service import CartLine, CheckoutInput, OrderSettings, Prepay
from services.order.uow import CaseSearch, ListedRefund, OrderSearch, OrderUnitOfWork, RefundSearch

# The product service's reservation sweep asks whether the orders it holds stock for were paid, the member service's
# checkout-hold sweep whether those it holds a coupon or points for were (services/common/orders.py).
STATE_READERS = ("product", "member")
MAX_ORDER_STATES = 100
StepMessage = TypeVar("StepMessage", order_pb2.Transition, after_sale_pb2.AfterSaleStep)


class OrderServicer(order_pb2_grpc.OrderServiceServicer):
    def __init__(self, uow: Callable[[], OrderUnitOfWork], catalog: Catalog, stock: Stock, members: Members,
                 users: Users, settings: OrderSettings, wechat: Prepay | None = None,
                 refund_payments: refunds.RefundPayments | None = None) -> None:
        self.uow = uow
        self.catalog = catalog
        self.stock = stock
        self.members = members
        self.users = users
        self.settings = settings
        self.wechat = wechat
        self.refund_payments = refund_payments

    # Cart

    def ListCart(self, request: order_pb2.ListCartRequest, context: grpc.ServicerContext) -> order_pb2.Cart:
        cart = service.list_cart(self.uow(), self.catalog, user_id=require_caller().user_id)
        return order_pb2.Cart(items=[_cart_item(line) for line in cart.lines],
                              selected_total_fen=cart.selected_total_fen)

    def AddCartItem(self, request: order_pb2.AddCartItemRequest, context: grpc.ServicerContext) -> order_pb2.CartItem:
        return _cart_item(service.add_cart_item(self.uow(), self.catalog, user_id=require_caller().user_id,
                                                sku_id=request.sku_id, quantity=request.quantity))

    def ChangeCartItem(self, request: order_pb2.ChangeCartItemRequest,
                       context: grpc.ServicerContext) -> order_pb2.CartItem:
        selected = request.selected if request.HasField("selected") else None
        return _cart_item(service.change_cart_item(self.uow(), self.catalog, user_id=require_caller().user_id,
                                                   item_id=request.item_id, quantity=request.quantity,
                                                   selected=selected))

    def RemoveCartItem(self, request: order_pb2.RemoveCartItemRequest,
                       context: grpc.ServicerContext) -> order_pb2.RemoveCartItemResponse:
        service.remove_cart_item(self.uow(), user_id=require_caller().user_id, item_id=request.item_id)
        return order_pb2.RemoveCartItemResponse()

    # Checkout

    def QuoteCheckout(self, request: order_pb2.CheckoutRequest,
                      context: grpc.ServicerContext) -> order_pb2.CheckoutQuote:
        quote = service.quote_checkout(self.uow(), self.catalog, self.members, self.users, self.settings,
                                       user_id=require_caller().user_id, request=_checkout(request))
        return order_pb2.CheckoutQuote(lines=[_line(line) for line in quote.lines], amounts=_amounts(quote.amounts),
                                       points_used=quote.points_used, usable_coupons=[
                                           order_pb2.UsableCoupon(id=offer.coupon_id, name=offer.name,
                                                                  discount_fen=offer.discount_fen,
                                                                  valid_to=timestamp(offer.valid_to))
                                           for offer in quote.usable_coupons])

    def SubmitOrder(self, request: order_pb2.SubmitOrderRequest, context: grpc.ServicerContext) -> order_pb2.Order:
        user_id = require_caller().user_id
        fingerprint = order_pb2.SubmitOrderRequest(checkout=request.checkout, note=request.note)
        # The same cart lines named in another order are the same order (a client's retry may list them anew).
        fingerprint.checkout.cart_item_ids[:] = sorted(set(request.checkout.cart_item_ids))
        order = service.submit_order(self.uow(), self.members, self.stock, self.users, self.settings,
                                     user_id=user_id, request=_checkout(request.checkout), note=request.note,
                                     idempotency_key=request.idempotency_key,
                                     request_fingerprint=fingerprint.SerializeToString(deterministic=True))
        return order_message(order, staff=False, open_cases={})  # a new order: no case yet

    # Orders

    def ListOrders(self, request: order_pb2.ListOrdersRequest,
                   context: grpc.ServicerContext) -> order_pb2.ListOrdersResponse:
        search = OrderSearch(user_id=require_caller().user_id, statuses=_statuses(request), order_no=request.order_no,
                             **_page(request))
        return _order_page(service.search_orders(self.uow(), search), staff=False)

    def GetOrder(self, request: order_pb2.GetOrderRequest, context: grpc.ServicerContext) -> order_pb2.Order:
        caller = require_caller()
        staff = caller.has_any_role(*ORDER_STAFF)
        detail = service.get_order_detail(self.uow(), user_id=None if staff else caller.user_id, order_id=request.id)
        return order_message(detail.order, staff=staff, open_cases=detail.open_cases, with_refunds=detail.refunds)

    def CancelOrder(self, request: order_pb2.CancelOrderRequest, context: grpc.ServicerContext) -> order_pb2.Order:
        return self._answer(service.cancel_order(self.uow(), user_id=require_caller().user_id, order_id=request.id,
                                                 reason=request.reason[:255], wechat=self.wechat), staff=False)

    def SearchOrders(self, request: order_pb2.SearchOrdersRequest,
                     context: grpc.ServicerContext) -> order_pb2.ListOrdersResponse:
        require_caller(*ORDER_STAFF)
        search = OrderSearch(user_id=request.user_id, statuses=_statuses(request), order_no=request.order_no,
                             created_from=_time(request, "created_from"), created_to=_time(request, "created_to"),
                             **_page(request))
        return _order_page(service.search_orders(self.uow(), search), staff=True)

    def GetOrderStates(self, request: order_pb2.GetOrderStatesRequest,
                       context: grpc.ServicerContext) -> order_pb2.GetOrderStatesResponse:
        require_service(*STATE_READERS)
        if len(request.order_nos) > MAX_ORDER_STATES:
            raise InvalidInput("TOO_MANY_ORDERS", f"ask for at most {MAX_ORDER_STATES} orders at once",
                               details={"order_nos": f"max {MAX_ORDER_STATES}"})
        return order_pb2.GetOrderStatesResponse(orders=_order_states(self.uow(), request.order_nos))

    # Payment

    def PayOrder(self, request: order_pb2.PayOrderRequest, context: grpc.ServicerContext) -> order_pb2.PayOrderResponse:
        started = service.pay_order(self.uow(), self.members, self.users, self.wechat, self.settings,
                                    user_id=require_caller().user_id, order_id=request.id, channel=request.channel)
        return order_pb2.PayOrderResponse(channel=started.channel, out_trade_no=started.out_trade_no,
                                          wx_request_payment=started.wx_request_payment, status=started.status)

    def HandleWechatPayNotify(self, request: order_pb2.WechatPayNotifyRequest,
                              context: grpc.ServicerContext) -> order_pb2.WechatPayNotifyResponse:
        with _notify_rejected():
            service.handle_wechat_notify(self.uow(), self.wechat, headers=dict(request.headers), body=request.body)
        return order_pb2.WechatPayNotifyResponse()

    # Cancellation review and refunds

    def ReviewCancellation(self, request: order_pb2.ReviewCancellationRequest,
                           context: grpc.ServicerContext) -> order_pb2.Order:
        caller = require_caller(*REFUND_DECIDERS)
        return self._answer(refunds.review_cancellation(
            self.uow(), self.refund_payments, self.members, order_id=request.id, approve=request.approve,
            reason=request.reason[:255], actor=formats.staff_actor(caller.user_id)), staff=True)

    def CancelUnshipped(self, request: order_pb2.CancelUnshippedRequest,
                        context: grpc.ServicerContext) -> order_pb2.Order:
        caller = require_caller(*REFUND_DECIDERS)
        fingerprint = order_pb2.CancelUnshippedRequest(id=request.id, reason=request.reason,
                                                       shopper_reason=request.shopper_reason)
        return self._answer(refunds.cancel_unshipped(
            self.uow(), self.refund_payments, self.members, order_id=request.id, reason=request.reason,
            shopper_reason=request.shopper_reason, actor=formats.staff_actor(caller.user_id),
            idempotency_key=request.idempotency_key,
            request_fingerprint=fingerprint.SerializeToString(deterministic=True)), staff=True)

    def CloseRefund(self, request: order_pb2.CloseRefundRequest, context: grpc.ServicerContext) -> order_pb2.Order:
        caller = require_caller(*REFUND_CLOSERS)
        return self._answer(refunds.close_refund(self.uow(), self.refund_payments, refund_no=request.refund_no,
                                                 reason=request.reason, actor=formats.staff_actor(caller.user_id)),
                            staff=True)

    def RetryRefund(self, request: order_pb2.RetryRefundRequest, context: grpc.ServicerContext) -> order_pb2.Order:
        caller = require_caller(*REFUND_RETRIERS)
        return self._answer(refunds.staff_retry_refund(self.uow, self.refund_payments, self.members,
                                                       refund_no=request.refund_no,
                                                       actor=formats.staff_actor(caller.user_id)), staff=True)

    def ListRefunds(self, request: order_pb2.ListRefundsRequest,
                    context: grpc.ServicerContext) -> order_pb2.ListRefundsResponse:
        require_caller(*REFUND_READERS)
        found, total = refunds.list_refunds(self.uow(), RefundSearch(
            status=request.status, source=request.source, order_no=request.order_no,
            created_from=_time(request, "created_from"), created_to=_time(request, "created_to"), **_page(request)))
        return order_pb2.ListRefundsResponse(refunds=[_refund_summary(listed) for listed in found], total=total)

    # Wallet charges left for staff

    def ListWalletReviews(self, request: order_pb2.ListWalletReviewsRequest,
                          context: grpc.ServicerContext) -> order_pb2.ListWalletReviewsResponse:
        require_caller(*WALLET_REVIEWERS)
        found, total = wallet_reviews.list_reviews(self.uow(), status=request.status, **_page(request))
        return order_pb2.ListWalletReviewsResponse(reviews=[_wallet_review(review) for review in found], total=total)

    def ResolveWalletReview(self, request: order_pb2.ResolveWalletReviewRequest,
                            context: grpc.ServicerContext) -> order_pb2.WalletReview:
        caller = require_caller(*WALLET_RESOLVERS)
        return _wallet_review(wallet_reviews.resolve_review(
            self.uow(), self.members, review_id=request.id, resolution=request.resolution, reason=request.reason,
            actor=formats.staff_actor(caller.user_id)))

    def HandleWechatRefundNotify(self, request: order_pb2.WechatPayNotifyRequest,
                                 context: grpc.ServicerContext) -> order_pb2.WechatPayNotifyResponse:
        with _notify_rejected():
            refunds.handle_refund_notify(self.uow(), self.refund_payments, headers=dict(request.headers),
                                         body=request.body)
        return order_pb2.WechatPayNotifyResponse()

    # Fulfilment

    def ShipOrder(self, request: order_pb2.ShipOrderRequest, context: grpc.ServicerContext) -> order_pb2.Order:
        caller = require_caller(*SHIPPERS)
        lines = _units_by_line(request.lines)
        return self._answer(service.ship_order(self.uow(), order_id=request.id, carrier=request.carrier,
                                               tracking_no=request.tracking_no, lines=lines or None,
                                               actor=formats.staff_actor(caller.user_id)), staff=True)

    def GetWaybill(self, request: order_pb2.GetWaybillRequest, context: grpc.ServicerContext) -> order_pb2.Waybill:
        require_caller(*SHIPPERS)
        return _waybill(service.get_order(self.uow(), user_id=None, order_id=request.id))

    def ConfirmReceipt(self, request: order_pb2.ConfirmReceiptRequest,
                       context: grpc.ServicerContext) -> order_pb2.Order:
        return self._answer(service.confirm_receipt(self.uow(), user_id=require_caller().user_id,
                                                    order_id=request.id), staff=False)

    def _answer(self, order: Order, *, staff: bool) -> order_pb2.Order:
        """An order a use case just changed, with its lines' open after-sales cases as they are now."""
        return order_message(order, staff=staff, open_cases=service.open_cases(self.uow(), [order]))


def _order_page(page: service.OrderPage, *, staff: bool) -> order_pb2.ListOrdersResponse:
    return order_pb2.ListOrdersResponse(orders=[order_message(order, staff=staff, open_cases=page.open_cases)
                                                for order in page.orders], total=page.total)


def _order_states(uow: OrderUnitOfWork, order_nos: Iterable[str]) -> list[order_pb2.OrderState]:
    """The existing orders among `order_nos`: status, and whether they were ever paid (paid_at stays set)."""
    with uow:
        return [order_pb2.OrderState(order_no=order_no, status=status, paid=paid)
                for order_no, status, paid in uow.orders.states(list(dict.fromkeys(order_nos)))]


@contextmanager
def _notify_rejected() -> Iterator[None]:
    """A notify we must not trust is INVALID_ARGUMENT NOTIFY_REJECTED: the gateway answers it 400 FAIL."""
    try:
        yield
    except NotifyRejected as exc:
        metrics.NOTIFY_REJECTED.labels("wechat").inc()
        raise InvalidInput("NOTIFY_REJECTED", exc.reason) from None


def _units_by_line(lines: Iterable[order_pb2.ShipmentLine | after_sale_pb2.AfterSaleLine]) -> dict[int, int]:
    """Line id -> units. A line named twice is LINE_REPEATED (400), as the gateway refuses it: adding the two up, or
    taking either, may not be what the caller meant."""
    units: dict[int, int] = {}
    repeated: list[int] = []
    for line in lines:
        if line.line_id in units:
            repeated.append(line.line_id)
        units[line.line_id] = line.quantity
    if repeated:
        raise InvalidInput("LINE_REPEATED", "name each line once", details={"lines": sorted(set(repeated))})
    return units


def _statuses(request: order_pb2.ListOrdersRequest | order_pb2.SearchOrdersRequest) -> tuple[str, ...]:
    """The statuses asked for: `statuses`, and the single `status` a gateway of the previous release sends."""
    return (*request.statuses, request.status) if request.status else tuple(request.statuses)


def _time(request: order_pb2.SearchOrdersRequest | after_sale_pb2.SearchAfterSalesRequest
          | order_pb2.ListRefundsRequest, name: str) -> datetime | None:
    return getattr(request, name).ToDatetime(tzinfo=UTC) if request.HasField(name) else None


def _checkout(request: order_pb2.CheckoutRequest) -> CheckoutInput:
    return CheckoutInput(cart_item_ids=tuple(request.cart_item_ids), sku_id=request.sku_id, quantity=request.quantity,
                         address_id=request.address_id, coupon_id=request.coupon_id, points=request.points)


def _cart_item(line: CartLine) -> order_pb2.CartItem:
    item, sku = line.item, line.sku
    return order_pb2.CartItem(id=item.id, sku_id=item.sku_id, product_id=item.product_id,
                              name=sku.name if sku else "", spec=sku.spec if sku else "", price_fen=line.price_fen,
                              quantity=item.quantity, selected=item.selected, valid=line.valid,
                              price_changed=line.price_changed,
                              stock_status=sku.stock_status if sku and sku.on_sale else "unavailable",
                              image=sku.image if sku else "", max_per_shopper=sku.max_per_shopper if sku else 0)


def _line(line: OrderLine) -> order_pb2.OrderLine:
    return order_pb2.OrderLine(id=line.id or 0, sku_id=line.sku_id, product_id=line.product_id, name=line.name,
                               spec=line.spec, price_fen=line.price_fen, quantity=line.quantity, image=line.image)


def _order_line(line: OrderLine, open_case_id: int) -> order_pb2.OrderLine:
    """A line of an order: as bought, its units refunded (or being refunded) and its open after-sales case (0: none)."""
    message = _line(line)
    message.refunded_quantity, message.open_case_id = line.refunded_quantity, open_case_id
    return message


def _address(a: Address) -> order_pb2.Address:
    """The address in full (the phone too): the gateway masks it wherever a shipper's waybill does not need it."""
    return order_pb2.Address(name=a.name, phone=a.phone, province=a.province, city=a.city, district=a.district,
                             detail=a.detail)


def _waybill(order: Order) -> order_pb2.Waybill:
    return order_pb2.Waybill(order_no=order.order_no, receiver=_address(order.address), lines=[
        order_pb2.WaybillLine(line_id=line.id or 0, name=line.name, spec=line.spec, quantity=line.quantity,
                              to_ship=units) for line, units in order.units_to_ship()])


def _amounts(amounts: Amounts) -> order_pb2.Amounts:
    return order_pb2.Amounts(items_total_fen=amounts.items_total_fen, level_discount_fen=amounts.level_discount_fen,
                             coupon_discount_fen=amounts.coupon_discount_fen,
                             points_discount_fen=amounts.points_discount_fen, freight_fen=amounts.freight_fen,
                             payable_fen=amounts.payable_fen)


def _refund_summary(listed: ListedRefund) -> order_pb2.RefundSummary:
    refund = listed.refund
    message = order_pb2.RefundSummary(
        refund_no=refund.refund_no, order_id=refund.order_id, order_no=listed.order_no, source=refund.source,
        status=refund.status, amount_fen=refund.amount_fen, channel=refund.channel, reason=refund.reason,
        actor=refund.actor, created_at=timestamp(refund.created_at), updated_at=timestamp(refund.updated_at),
        points_returned=refund.points_returned)
    if refund.paid_after_close_at is not None:
        message.paid_after_close_at.CopyFrom(timestamp(refund.paid_after_close_at))
    return message


def _wallet_review(review: wallet_reviews.WalletReview) -> order_pb2.WalletReview:
    message = order_pb2.WalletReview(
        id=review.id, order_id=review.order_id, order_no=review.order_no, user_id=review.user_id,
        amount_fen=review.amount_fen, order_user_id=review.order_user_id, payable_fen=review.payable_fen,
        problem=review.problem, status=review.status, flagged_at=timestamp(review.flagged_at),
        resolved_by=review.resolved_by, note=review.note, refund_no=review.refund_no)
    if review.resolved_at is not None:
        message.resolved_at.CopyFrom(timestamp(review.resolved_at))
    return message


def _steps(message: Callable[..., StepMessage], history: Iterable[Step]) -> list[StepMessage]:
    """A history's steps as `message`: order_pb2.Transition and after_sale_pb2.AfterSaleStep have the same fields."""
    return [message(status=step.status, at=timestamp(step.at), actor=step.actor, reason=step.reason,
                    shopper_visible=step.shopper_visible, shopper_reason=step.shopper_reason) for step in history]


def _order_steps(history: list[Transition]) -> list[order_pb2.Transition]:
    """An order's history: the fields every history has, and which step each is (`kind`)."""
    messages = _steps(order_pb2.Transition, history)
    for message, step in zip(messages, history, strict=True):
        message.kind = step.kind
    return messages


def _order_refund(refund: Refund) -> order_pb2.OrderRefund:
    """A refund as the order's detail lists it, for its shopper and staff alike: no staff reason or actor."""
    message = order_pb2.OrderRefund(
        refund_no=refund.refund_no, amount_fen=refund.amount_fen, points_returned=refund.points_returned,
        status=refund.status, channel=refund.channel, source=refund.source, created_at=timestamp(refund.created_at),
        updated_at=timestamp(refund.updated_at))
    if refund.paid_after_close_at is not None:
        message.paid_after_close_at.CopyFrom(timestamp(refund.paid_after_close_at))
    return message


def order_message(order: Order, *, staff: bool, open_cases: Mapping[int, int],
                  with_refunds: Iterable[Refund] = ()) -> order_pb2.Order:
    """The order as staff see it (every step of its history, as recorded), or as its shopper does
    (`Order.shopper_history`): callers say which, so no note for staff reaches a shopper by default. `open_cases`: the
    open after-sales case of each line that has one (line id -> case id), read with the order or after the change it
    answers: callers say which, so no line shows no case for want of a read. `with_refunds`: the order's, for its
    detail (GetOrder) only."""
    message = order_pb2.Order(
        id=order.id, order_no=order.order_no, user_id=order.user_id, status=order.status,
        lines=[_order_line(line, open_cases.get(line.id or 0, 0)) for line in order.lines],
        address=_address(order.address),
        amounts=_amounts(order.amounts), pay_deadline=timestamp(order.pay_deadline),
        created_at=timestamp(order.created_at), pay_channel=order.pay_channel, coupon_id=order.coupon_id,
        points_used=order.points_used, note=order.note, refunded_fen=order.refunded_fen,
        history=_order_steps(order.history if staff else order.shopper_history()))
    for name in ("paid_at", "shipped_at", "completed_at"):
        if getattr(order, name) is not None:
            getattr(message, name).CopyFrom(timestamp(getattr(order, name)))
    message.shipments.extend(order_pb2.Shipment(
        shipment_no=s.shipment_no, carrier=s.carrier, tracking_no=s.tracking_no, shipped_at=timestamp(s.shipped_at),
        lines=[order_pb2.ShipmentLine(line_id=item.line_id, quantity=item.quantity) for item in s.lines])
        for s in order.shipments)
    message.refunds.extend(_order_refund(refund) for refund in with_refunds)
    return message



AFTER_SALE_STAFF = (Role.ADMIN, Role.CUSTOMER_SERVICE)
RECEIVERS = (Role.ADMIN, Role.CUSTOMER_SERVICE, Role.OPERATOR)


class AfterSaleServicer(after_sale_pb2_grpc.AfterSaleServiceServicer):
    def __init__(self, uow: Callable[[], OrderUnitOfWork], refunder: aftersales.Refunder,
                 settings: aftersales.AfterSaleSettings) -> None:
        self.uow = uow
        self.refunder = refunder
        self.settings = settings

    def CreateAfterSale(self, request: after_sale_pb2.CreateAfterSaleRequest,
                        context: grpc.ServicerContext) -> after_sale_pb2.AfterSale:
        lines = _units_by_line(request.lines)
        case = aftersales.open_case(self.uow(), self.settings, user_id=require_caller().user_id,
                                    request=aftersales.CaseRequest(order_id=request.order_id, type=request.type,
                                                                   lines=lines, reason=request.reason,
                                                                   images=tuple(request.images)))
        return self._message(case, staff=False)

    def GetAfterSale(self, request: after_sale_pb2.GetAfterSaleRequest,
                     context: grpc.ServicerContext) -> after_sale_pb2.AfterSale:
        caller = require_caller()
        staff = caller.has_any_role(*RECEIVERS)
        return self._message(aftersales.get_case(self.uow(), user_id=None if staff else caller.user_id,
                                                 case_id=request.id), staff=staff)

    def ListAfterSales(self, request: after_sale_pb2.ListAfterSalesRequest,
                       context: grpc.ServicerContext) -> after_sale_pb2.ListAfterSalesResponse:
        return self._page(CaseSearch(user_id=require_caller().user_id, order_id=request.order_id, **_page(request)),
                          staff=False)

    def SubmitReturnShipment(self, request: after_sale_pb2.SubmitReturnShipmentRequest,
                             context: grpc.ServicerContext) -> after_sale_pb2.AfterSale:
        return self._message(aftersales.submit_return_shipment(
            self.uow(), user_id=require_caller().user_id, case_id=request.id, carrier=request.carrier,
            tracking_no=request.tracking_no), staff=False)

    def WithdrawAfterSale(self, request: after_sale_pb2.WithdrawAfterSaleRequest,
                          context: grpc.ServicerContext) -> after_sale_pb2.AfterSale:
        return self._message(aftersales.withdraw_case(self.uow(), user_id=require_caller().user_id,
                                                      case_id=request.id, reason=request.reason), staff=False)

    def SearchAfterSales(self, request: after_sale_pb2.SearchAfterSalesRequest,
                         context: grpc.ServicerContext) -> after_sale_pb2.ListAfterSalesResponse:
        require_caller(*RECEIVERS)
        return self._page(CaseSearch(status=request.status, type=request.type, order_no=request.order_no,
                                     created_from=_time(request, "created_from"),
                                     created_to=_time(request, "created_to"), **_page(request)), staff=True)

    def DecideAfterSale(self, request: after_sale_pb2.DecideAfterSaleRequest,
                        context: grpc.ServicerContext) -> after_sale_pb2.AfterSale:
        caller = require_caller(*AFTER_SALE_STAFF)
        return self._message(aftersales.decide(self.uow, self.refunder, case_id=request.id, approve=request.approve,
                                               reason=request.reason, shopper_reason=request.shopper_reason,
                                               actor=formats.staff_actor(caller.user_id)), staff=True)

    def ReceiveReturn(self, request: after_sale_pb2.ReceiveReturnRequest,
                      context: grpc.ServicerContext) -> after_sale_pb2.AfterSale:
        caller = require_caller(*RECEIVERS)
        return self._message(aftersales.receive_return(self.uow, self.refunder, case_id=request.id,
                                                       note=request.note, actor=formats.staff_actor(caller.user_id)),
                             staff=True)

    def RetryAfterSaleRefund(self, request: after_sale_pb2.GetAfterSaleRequest,
                             context: grpc.ServicerContext) -> after_sale_pb2.AfterSale:
        caller = require_caller(*AFTER_SALE_STAFF)
        return self._message(aftersales.retry_refund(self.uow, self.refunder, case_id=request.id,
                                                     actor=formats.staff_actor(caller.user_id)), staff=True)

    def _page(self, search: CaseSearch, *, staff: bool) -> after_sale_pb2.ListAfterSalesResponse:
        found, total = aftersales.search_cases(self.uow(), search)
        with self.uow() as tx:  # the page's goods in one read, not an order per case
            lines = tx.orders.lines_of([case.order_id for case in found])
            tx.commit()
        return after_sale_pb2.ListAfterSalesResponse(
            cases=[self._message(case, staff=staff, lines=lines.get(case.order_id, [])) for case in found], total=total)

    def _message(self, case: aftersales.AfterSale, *, staff: bool,
                 lines: list[OrderLine] | None = None) -> after_sale_pb2.AfterSale:
        """The case as staff see it (every step of its history, as recorded), or as its shopper does
        (`AfterSale.shopper_history`): callers say which, so no note for staff reaches a shopper by default.
        `lines`: its order's lines, when the caller read them already."""
        if lines is None:
            with self.uow() as tx:  # the lines' names and specs as bought
                order = tx.orders.get(case.order_id)
                tx.commit()
            lines = order.lines if order is not None else []
        bought = {line.id: line for line in lines}
        return_address = self.settings.return_address_for(case)
        return after_sale_pb2.AfterSale(
            return_address=_address(return_address) if return_address is not None else None,
            id=case.id, case_no=case.case_no, order_id=case.order_id, order_no=case.order_no, user_id=case.user_id,
            type=case.type, status=case.status, reason=case.reason, images=case.images, refund_fen=case.refund_fen,
            return_carrier=case.return_carrier, return_tracking_no=case.return_tracking_no, refund_no=case.refund_no,
            created_at=timestamp(case.created_at), updated_at=timestamp(case.updated_at),
            lines=[after_sale_pb2.AfterSaleLine(line_id=line.line_id, quantity=line.quantity,
                                                amount_fen=line.amount_fen, sku_id=bought[line.line_id].sku_id,
                                                name=bought[line.line_id].name, spec=bought[line.line_id].spec)
                   for line in case.lines],
            history=_steps(after_sale_pb2.AfterSaleStep, case.history if staff else case.shopper_history()))
