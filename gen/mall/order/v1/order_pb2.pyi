import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListCartRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CartItem(_message.Message):
    __slots__ = ("id", "sku_id", "product_id", "name", "spec", "price_fen", "quantity", "selected", "valid", "price_changed", "stock_status", "image", "max_per_shopper")
    ID_FIELD_NUMBER: _ClassVar[int]
    SKU_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    PRICE_FEN_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    SELECTED_FIELD_NUMBER: _ClassVar[int]
    VALID_FIELD_NUMBER: _ClassVar[int]
    PRICE_CHANGED_FIELD_NUMBER: _ClassVar[int]
    STOCK_STATUS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_SHOPPER_FIELD_NUMBER: _ClassVar[int]
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
    stock_status: str
    image: str
    max_per_shopper: int
    def __init__(self, id: _Optional[int] = ..., sku_id: _Optional[int] = ..., product_id: _Optional[int] = ..., name: _Optional[str] = ..., spec: _Optional[str] = ..., price_fen: _Optional[int] = ..., quantity: _Optional[int] = ..., selected: _Optional[bool] = ..., valid: _Optional[bool] = ..., price_changed: _Optional[bool] = ..., stock_status: _Optional[str] = ..., image: _Optional[str] = ..., max_per_shopper: _Optional[int] = ...) -> None: ...

class Cart(_message.Message):
    __slots__ = ("items", "selected_total_fen")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SELECTED_TOTAL_FEN_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[CartItem]
    selected_total_fen: int
    def __init__(self, items: _Optional[_Iterable[_Union[CartItem, _Mapping]]] = ..., selected_total_fen: _Optional[int] = ...) -> None: ...

class AddCartItemRequest(_message.Message):
    __slots__ = ("sku_id", "quantity")
    SKU_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    sku_id: int
    quantity: int
    def __init__(self, sku_id: _Optional[int] = ..., quantity: _Optional[int] = ...) -> None: ...

class ChangeCartItemRequest(_message.Message):
    __slots__ = ("item_id", "quantity", "selected")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    SELECTED_FIELD_NUMBER: _ClassVar[int]
    item_id: int
    quantity: int
    selected: bool
    def __init__(self, item_id: _Optional[int] = ..., quantity: _Optional[int] = ..., selected: _Optional[bool] = ...) -> None: ...

class RemoveCartItemRequest(_message.Message):
    __slots__ = ("item_id",)
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    item_id: int
    def __init__(self, item_id: _Optional[int] = ...) -> None: ...

class RemoveCartItemResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CheckoutRequest(_message.Message):
    __slots__ = ("cart_item_ids", "sku_id", "quantity", "address_id", "coupon_id", "points")
    CART_ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    SKU_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_ID_FIELD_NUMBER: _ClassVar[int]
    COUPON_ID_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    cart_item_ids: _containers.RepeatedScalarFieldContainer[int]
    sku_id: int
    quantity: int
    address_id: int
    coupon_id: int
    points: int
    def __init__(self, cart_item_ids: _Optional[_Iterable[int]] = ..., sku_id: _Optional[int] = ..., quantity: _Optional[int] = ..., address_id: _Optional[int] = ..., coupon_id: _Optional[int] = ..., points: _Optional[int] = ...) -> None: ...

class OrderLine(_message.Message):
    __slots__ = ("id", "sku_id", "product_id", "name", "spec", "price_fen", "quantity", "image", "refunded_quantity", "open_case_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    SKU_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    PRICE_FEN_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    OPEN_CASE_ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    sku_id: int
    product_id: int
    name: str
    spec: str
    price_fen: int
    quantity: int
    image: str
    refunded_quantity: int
    open_case_id: int
    def __init__(self, id: _Optional[int] = ..., sku_id: _Optional[int] = ..., product_id: _Optional[int] = ..., name: _Optional[str] = ..., spec: _Optional[str] = ..., price_fen: _Optional[int] = ..., quantity: _Optional[int] = ..., image: _Optional[str] = ..., refunded_quantity: _Optional[int] = ..., open_case_id: _Optional[int] = ...) -> None: ...

class Amounts(_message.Message):
    __slots__ = ("items_total_fen", "level_discount_fen", "coupon_discount_fen", "points_discount_fen", "freight_fen", "payable_fen")
    ITEMS_TOTAL_FEN_FIELD_NUMBER: _ClassVar[int]
    LEVEL_DISCOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    COUPON_DISCOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    POINTS_DISCOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    FREIGHT_FEN_FIELD_NUMBER: _ClassVar[int]
    PAYABLE_FEN_FIELD_NUMBER: _ClassVar[int]
    items_total_fen: int
    level_discount_fen: int
    coupon_discount_fen: int
    points_discount_fen: int
    freight_fen: int
    payable_fen: int
    def __init__(self, items_total_fen: _Optional[int] = ..., level_discount_fen: _Optional[int] = ..., coupon_discount_fen: _Optional[int] = ..., points_discount_fen: _Optional[int] = ..., freight_fen: _Optional[int] = ..., payable_fen: _Optional[int] = ...) -> None: ...

class UsableCoupon(_message.Message):
    __slots__ = ("id", "name", "discount_fen", "valid_to")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISCOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    VALID_TO_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    discount_fen: int
    valid_to: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., discount_fen: _Optional[int] = ..., valid_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CheckoutQuote(_message.Message):
    __slots__ = ("lines", "amounts", "points_used", "usable_coupons")
    LINES_FIELD_NUMBER: _ClassVar[int]
    AMOUNTS_FIELD_NUMBER: _ClassVar[int]
    POINTS_USED_FIELD_NUMBER: _ClassVar[int]
    USABLE_COUPONS_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedCompositeFieldContainer[OrderLine]
    amounts: Amounts
    points_used: int
    usable_coupons: _containers.RepeatedCompositeFieldContainer[UsableCoupon]
    def __init__(self, lines: _Optional[_Iterable[_Union[OrderLine, _Mapping]]] = ..., amounts: _Optional[_Union[Amounts, _Mapping]] = ..., points_used: _Optional[int] = ..., usable_coupons: _Optional[_Iterable[_Union[UsableCoupon, _Mapping]]] = ...) -> None: ...

class SubmitOrderRequest(_message.Message):
    __slots__ = ("checkout", "note", "idempotency_key")
    CHECKOUT_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    checkout: CheckoutRequest
    note: str
    idempotency_key: str
    def __init__(self, checkout: _Optional[_Union[CheckoutRequest, _Mapping]] = ..., note: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class Address(_message.Message):
    __slots__ = ("name", "phone", "province", "city", "district", "detail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    DISTRICT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    phone: str
    province: str
    city: str
    district: str
    detail: str
    def __init__(self, name: _Optional[str] = ..., phone: _Optional[str] = ..., province: _Optional[str] = ..., city: _Optional[str] = ..., district: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class Transition(_message.Message):
    __slots__ = ("status", "at", "actor", "reason", "shopper_visible", "shopper_reason", "kind")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SHOPPER_VISIBLE_FIELD_NUMBER: _ClassVar[int]
    SHOPPER_REASON_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    status: str
    at: _timestamp_pb2.Timestamp
    actor: str
    reason: str
    shopper_visible: bool
    shopper_reason: str
    kind: str
    def __init__(self, status: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., shopper_visible: _Optional[bool] = ..., shopper_reason: _Optional[str] = ..., kind: _Optional[str] = ...) -> None: ...

class Order(_message.Message):
    __slots__ = ("id", "order_no", "user_id", "status", "lines", "address", "amounts", "pay_deadline", "created_at", "paid_at", "pay_channel", "coupon_id", "points_used", "note", "history", "refunded_fen", "shipments", "shipped_at", "completed_at", "refunds")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    AMOUNTS_FIELD_NUMBER: _ClassVar[int]
    PAY_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PAID_AT_FIELD_NUMBER: _ClassVar[int]
    PAY_CHANNEL_FIELD_NUMBER: _ClassVar[int]
    COUPON_ID_FIELD_NUMBER: _ClassVar[int]
    POINTS_USED_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_FEN_FIELD_NUMBER: _ClassVar[int]
    SHIPMENTS_FIELD_NUMBER: _ClassVar[int]
    SHIPPED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    REFUNDS_FIELD_NUMBER: _ClassVar[int]
    id: int
    order_no: str
    user_id: int
    status: str
    lines: _containers.RepeatedCompositeFieldContainer[OrderLine]
    address: Address
    amounts: Amounts
    pay_deadline: _timestamp_pb2.Timestamp
    created_at: _timestamp_pb2.Timestamp
    paid_at: _timestamp_pb2.Timestamp
    pay_channel: str
    coupon_id: int
    points_used: int
    note: str
    history: _containers.RepeatedCompositeFieldContainer[Transition]
    refunded_fen: int
    shipments: _containers.RepeatedCompositeFieldContainer[Shipment]
    shipped_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    refunds: _containers.RepeatedCompositeFieldContainer[OrderRefund]
    def __init__(self, id: _Optional[int] = ..., order_no: _Optional[str] = ..., user_id: _Optional[int] = ..., status: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[OrderLine, _Mapping]]] = ..., address: _Optional[_Union[Address, _Mapping]] = ..., amounts: _Optional[_Union[Amounts, _Mapping]] = ..., pay_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., paid_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pay_channel: _Optional[str] = ..., coupon_id: _Optional[int] = ..., points_used: _Optional[int] = ..., note: _Optional[str] = ..., history: _Optional[_Iterable[_Union[Transition, _Mapping]]] = ..., refunded_fen: _Optional[int] = ..., shipments: _Optional[_Iterable[_Union[Shipment, _Mapping]]] = ..., shipped_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., refunds: _Optional[_Iterable[_Union[OrderRefund, _Mapping]]] = ...) -> None: ...

class ShipmentLine(_message.Message):
    __slots__ = ("line_id", "quantity")
    LINE_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    line_id: int
    quantity: int
    def __init__(self, line_id: _Optional[int] = ..., quantity: _Optional[int] = ...) -> None: ...

class Shipment(_message.Message):
    __slots__ = ("shipment_no", "carrier", "tracking_no", "shipped_at", "lines")
    SHIPMENT_NO_FIELD_NUMBER: _ClassVar[int]
    CARRIER_FIELD_NUMBER: _ClassVar[int]
    TRACKING_NO_FIELD_NUMBER: _ClassVar[int]
    SHIPPED_AT_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    shipment_no: str
    carrier: str
    tracking_no: str
    shipped_at: _timestamp_pb2.Timestamp
    lines: _containers.RepeatedCompositeFieldContainer[ShipmentLine]
    def __init__(self, shipment_no: _Optional[str] = ..., carrier: _Optional[str] = ..., tracking_no: _Optional[str] = ..., shipped_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lines: _Optional[_Iterable[_Union[ShipmentLine, _Mapping]]] = ...) -> None: ...

class ListOrdersRequest(_message.Message):
    __slots__ = ("status", "offset", "limit", "order_no", "statuses")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    status: str
    offset: int
    limit: int
    order_no: str
    statuses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, status: _Optional[str] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ..., order_no: _Optional[str] = ..., statuses: _Optional[_Iterable[str]] = ...) -> None: ...

class ListOrdersResponse(_message.Message):
    __slots__ = ("orders", "total")
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    orders: _containers.RepeatedCompositeFieldContainer[Order]
    total: int
    def __init__(self, orders: _Optional[_Iterable[_Union[Order, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class GetOrderRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class GetOrderStatesRequest(_message.Message):
    __slots__ = ("order_nos",)
    ORDER_NOS_FIELD_NUMBER: _ClassVar[int]
    order_nos: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, order_nos: _Optional[_Iterable[str]] = ...) -> None: ...

class OrderState(_message.Message):
    __slots__ = ("order_no", "status", "paid")
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAID_FIELD_NUMBER: _ClassVar[int]
    order_no: str
    status: str
    paid: bool
    def __init__(self, order_no: _Optional[str] = ..., status: _Optional[str] = ..., paid: _Optional[bool] = ...) -> None: ...

class GetOrderStatesResponse(_message.Message):
    __slots__ = ("orders",)
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    orders: _containers.RepeatedCompositeFieldContainer[OrderState]
    def __init__(self, orders: _Optional[_Iterable[_Union[OrderState, _Mapping]]] = ...) -> None: ...

class CancelOrderRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: int
    reason: str
    def __init__(self, id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class SearchOrdersRequest(_message.Message):
    __slots__ = ("status", "order_no", "user_id", "created_from", "created_to", "offset", "limit", "statuses")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_FROM_FIELD_NUMBER: _ClassVar[int]
    CREATED_TO_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    status: str
    order_no: str
    user_id: int
    created_from: _timestamp_pb2.Timestamp
    created_to: _timestamp_pb2.Timestamp
    offset: int
    limit: int
    statuses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, status: _Optional[str] = ..., order_no: _Optional[str] = ..., user_id: _Optional[int] = ..., created_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ..., statuses: _Optional[_Iterable[str]] = ...) -> None: ...

class PayOrderRequest(_message.Message):
    __slots__ = ("id", "channel")
    ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    id: int
    channel: str
    def __init__(self, id: _Optional[int] = ..., channel: _Optional[str] = ...) -> None: ...

class PayOrderResponse(_message.Message):
    __slots__ = ("channel", "out_trade_no", "wx_request_payment", "status")
    class WxRequestPaymentEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    OUT_TRADE_NO_FIELD_NUMBER: _ClassVar[int]
    WX_REQUEST_PAYMENT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    channel: str
    out_trade_no: str
    wx_request_payment: _containers.ScalarMap[str, str]
    status: str
    def __init__(self, channel: _Optional[str] = ..., out_trade_no: _Optional[str] = ..., wx_request_payment: _Optional[_Mapping[str, str]] = ..., status: _Optional[str] = ...) -> None: ...

class WechatPayNotifyRequest(_message.Message):
    __slots__ = ("body", "headers")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BODY_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    body: bytes
    headers: _containers.ScalarMap[str, str]
    def __init__(self, body: _Optional[bytes] = ..., headers: _Optional[_Mapping[str, str]] = ...) -> None: ...

class WechatPayNotifyResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ShipOrderRequest(_message.Message):
    __slots__ = ("id", "carrier", "tracking_no", "lines")
    ID_FIELD_NUMBER: _ClassVar[int]
    CARRIER_FIELD_NUMBER: _ClassVar[int]
    TRACKING_NO_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    id: int
    carrier: str
    tracking_no: str
    lines: _containers.RepeatedCompositeFieldContainer[ShipmentLine]
    def __init__(self, id: _Optional[int] = ..., carrier: _Optional[str] = ..., tracking_no: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[ShipmentLine, _Mapping]]] = ...) -> None: ...

class ConfirmReceiptRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class GetWaybillRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class WaybillLine(_message.Message):
    __slots__ = ("line_id", "name", "spec", "quantity", "to_ship")
    LINE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    TO_SHIP_FIELD_NUMBER: _ClassVar[int]
    line_id: int
    name: str
    spec: str
    quantity: int
    to_ship: int
    def __init__(self, line_id: _Optional[int] = ..., name: _Optional[str] = ..., spec: _Optional[str] = ..., quantity: _Optional[int] = ..., to_ship: _Optional[int] = ...) -> None: ...

class Waybill(_message.Message):
    __slots__ = ("order_no", "receiver", "lines")
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    order_no: str
    receiver: Address
    lines: _containers.RepeatedCompositeFieldContainer[WaybillLine]
    def __init__(self, order_no: _Optional[str] = ..., receiver: _Optional[_Union[Address, _Mapping]] = ..., lines: _Optional[_Iterable[_Union[WaybillLine, _Mapping]]] = ...) -> None: ...

class CloseRefundRequest(_message.Message):
    __slots__ = ("refund_no", "reason")
    REFUND_NO_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    refund_no: str
    reason: str
    def __init__(self, refund_no: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RetryRefundRequest(_message.Message):
    __slots__ = ("refund_no",)
    REFUND_NO_FIELD_NUMBER: _ClassVar[int]
    refund_no: str
    def __init__(self, refund_no: _Optional[str] = ...) -> None: ...

class ReviewCancellationRequest(_message.Message):
    __slots__ = ("id", "approve", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    APPROVE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: int
    approve: bool
    reason: str
    def __init__(self, id: _Optional[int] = ..., approve: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelUnshippedRequest(_message.Message):
    __slots__ = ("id", "reason", "shopper_reason", "idempotency_key")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SHOPPER_REASON_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    id: int
    reason: str
    shopper_reason: str
    idempotency_key: str
    def __init__(self, id: _Optional[int] = ..., reason: _Optional[str] = ..., shopper_reason: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class WalletReview(_message.Message):
    __slots__ = ("id", "order_id", "order_no", "user_id", "amount_fen", "order_user_id", "payable_fen", "problem", "status", "flagged_at", "resolved_at", "resolved_by", "note", "refund_no")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    ORDER_USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAYABLE_FEN_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_AT_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_BY_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    REFUND_NO_FIELD_NUMBER: _ClassVar[int]
    id: int
    order_id: int
    order_no: str
    user_id: int
    amount_fen: int
    order_user_id: int
    payable_fen: int
    problem: str
    status: str
    flagged_at: _timestamp_pb2.Timestamp
    resolved_at: _timestamp_pb2.Timestamp
    resolved_by: str
    note: str
    refund_no: str
    def __init__(self, id: _Optional[int] = ..., order_id: _Optional[int] = ..., order_no: _Optional[str] = ..., user_id: _Optional[int] = ..., amount_fen: _Optional[int] = ..., order_user_id: _Optional[int] = ..., payable_fen: _Optional[int] = ..., problem: _Optional[str] = ..., status: _Optional[str] = ..., flagged_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resolved_by: _Optional[str] = ..., note: _Optional[str] = ..., refund_no: _Optional[str] = ...) -> None: ...

class ListWalletReviewsRequest(_message.Message):
    __slots__ = ("status", "offset", "limit")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    status: str
    offset: int
    limit: int
    def __init__(self, status: _Optional[str] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListWalletReviewsResponse(_message.Message):
    __slots__ = ("reviews", "total")
    REVIEWS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    reviews: _containers.RepeatedCompositeFieldContainer[WalletReview]
    total: int
    def __init__(self, reviews: _Optional[_Iterable[_Union[WalletReview, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class RefundSummary(_message.Message):
    __slots__ = ("refund_no", "order_id", "order_no", "source", "status", "amount_fen", "channel", "reason", "actor", "created_at", "updated_at", "points_returned", "paid_after_close_at")
    REFUND_NO_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    POINTS_RETURNED_FIELD_NUMBER: _ClassVar[int]
    PAID_AFTER_CLOSE_AT_FIELD_NUMBER: _ClassVar[int]
    refund_no: str
    order_id: int
    order_no: str
    source: str
    status: str
    amount_fen: int
    channel: str
    reason: str
    actor: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    points_returned: int
    paid_after_close_at: _timestamp_pb2.Timestamp
    def __init__(self, refund_no: _Optional[str] = ..., order_id: _Optional[int] = ..., order_no: _Optional[str] = ..., source: _Optional[str] = ..., status: _Optional[str] = ..., amount_fen: _Optional[int] = ..., channel: _Optional[str] = ..., reason: _Optional[str] = ..., actor: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., points_returned: _Optional[int] = ..., paid_after_close_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListRefundsRequest(_message.Message):
    __slots__ = ("status", "source", "order_no", "created_from", "created_to", "offset", "limit")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    CREATED_FROM_FIELD_NUMBER: _ClassVar[int]
    CREATED_TO_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    status: str
    source: str
    order_no: str
    created_from: _timestamp_pb2.Timestamp
    created_to: _timestamp_pb2.Timestamp
    offset: int
    limit: int
    def __init__(self, status: _Optional[str] = ..., source: _Optional[str] = ..., order_no: _Optional[str] = ..., created_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListRefundsResponse(_message.Message):
    __slots__ = ("refunds", "total")
    REFUNDS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    refunds: _containers.RepeatedCompositeFieldContainer[RefundSummary]
    total: int
    def __init__(self, refunds: _Optional[_Iterable[_Union[RefundSummary, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class ResolveWalletReviewRequest(_message.Message):
    __slots__ = ("id", "resolution", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: int
    resolution: str
    reason: str
    def __init__(self, id: _Optional[int] = ..., resolution: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class OrderRefund(_message.Message):
    __slots__ = ("refund_no", "amount_fen", "points_returned", "status", "channel", "source", "created_at", "updated_at", "paid_after_close_at")
    REFUND_NO_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    POINTS_RETURNED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    PAID_AFTER_CLOSE_AT_FIELD_NUMBER: _ClassVar[int]
    refund_no: str
    amount_fen: int
    points_returned: int
    status: str
    channel: str
    source: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    paid_after_close_at: _timestamp_pb2.Timestamp
    def __init__(self, refund_no: _Optional[str] = ..., amount_fen: _Optional[int] = ..., points_returned: _Optional[int] = ..., status: _Optional[str] = ..., channel: _Optional[str] = ..., source: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., paid_after_close_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
