import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OrderLine(_message.Message):
    __slots__ = ("sku_id", "product_id", "category_id", "brand_id", "quantity", "price_fen")
    SKU_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_ID_FIELD_NUMBER: _ClassVar[int]
    BRAND_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FEN_FIELD_NUMBER: _ClassVar[int]
    sku_id: int
    product_id: int
    category_id: int
    brand_id: int
    quantity: int
    price_fen: int
    def __init__(self, sku_id: _Optional[int] = ..., product_id: _Optional[int] = ..., category_id: _Optional[int] = ..., brand_id: _Optional[int] = ..., quantity: _Optional[int] = ..., price_fen: _Optional[int] = ...) -> None: ...

class OrderAmounts(_message.Message):
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

class OrderCreated(_message.Message):
    __slots__ = ("order_no", "user_id", "lines", "amounts", "province", "created_at", "pay_deadline")
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    AMOUNTS_FIELD_NUMBER: _ClassVar[int]
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PAY_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    order_no: str
    user_id: int
    lines: _containers.RepeatedCompositeFieldContainer[OrderLine]
    amounts: OrderAmounts
    province: str
    created_at: _timestamp_pb2.Timestamp
    pay_deadline: _timestamp_pb2.Timestamp
    def __init__(self, order_no: _Optional[str] = ..., user_id: _Optional[int] = ..., lines: _Optional[_Iterable[_Union[OrderLine, _Mapping]]] = ..., amounts: _Optional[_Union[OrderAmounts, _Mapping]] = ..., province: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pay_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class OrderPaid(_message.Message):
    __slots__ = ("order_no", "user_id", "lines", "amounts", "province", "created_at", "paid_at", "channel", "out_trade_no", "paid_fen", "coupon_id", "points_used")
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    AMOUNTS_FIELD_NUMBER: _ClassVar[int]
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PAID_AT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    OUT_TRADE_NO_FIELD_NUMBER: _ClassVar[int]
    PAID_FEN_FIELD_NUMBER: _ClassVar[int]
    COUPON_ID_FIELD_NUMBER: _ClassVar[int]
    POINTS_USED_FIELD_NUMBER: _ClassVar[int]
    order_no: str
    user_id: int
    lines: _containers.RepeatedCompositeFieldContainer[OrderLine]
    amounts: OrderAmounts
    province: str
    created_at: _timestamp_pb2.Timestamp
    paid_at: _timestamp_pb2.Timestamp
    channel: str
    out_trade_no: str
    paid_fen: int
    coupon_id: int
    points_used: int
    def __init__(self, order_no: _Optional[str] = ..., user_id: _Optional[int] = ..., lines: _Optional[_Iterable[_Union[OrderLine, _Mapping]]] = ..., amounts: _Optional[_Union[OrderAmounts, _Mapping]] = ..., province: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., paid_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., channel: _Optional[str] = ..., out_trade_no: _Optional[str] = ..., paid_fen: _Optional[int] = ..., coupon_id: _Optional[int] = ..., points_used: _Optional[int] = ...) -> None: ...

class OrderCancelled(_message.Message):
    __slots__ = ("order_no", "user_id", "lines", "reason", "cancelled_by", "was_paid", "cancelled_at", "coupon_id")
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_BY_FIELD_NUMBER: _ClassVar[int]
    WAS_PAID_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_AT_FIELD_NUMBER: _ClassVar[int]
    COUPON_ID_FIELD_NUMBER: _ClassVar[int]
    order_no: str
    user_id: int
    lines: _containers.RepeatedCompositeFieldContainer[OrderLine]
    reason: str
    cancelled_by: str
    was_paid: bool
    cancelled_at: _timestamp_pb2.Timestamp
    coupon_id: int
    def __init__(self, order_no: _Optional[str] = ..., user_id: _Optional[int] = ..., lines: _Optional[_Iterable[_Union[OrderLine, _Mapping]]] = ..., reason: _Optional[str] = ..., cancelled_by: _Optional[str] = ..., was_paid: _Optional[bool] = ..., cancelled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., coupon_id: _Optional[int] = ...) -> None: ...

class OrderRefunded(_message.Message):
    __slots__ = ("order_no", "user_id", "refund_no", "amount_fen", "lines", "channel", "reason", "refunded_at", "points_returned")
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    REFUND_NO_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_AT_FIELD_NUMBER: _ClassVar[int]
    POINTS_RETURNED_FIELD_NUMBER: _ClassVar[int]
    order_no: str
    user_id: int
    refund_no: str
    amount_fen: int
    lines: _containers.RepeatedCompositeFieldContainer[OrderLine]
    channel: str
    reason: str
    refunded_at: _timestamp_pb2.Timestamp
    points_returned: int
    def __init__(self, order_no: _Optional[str] = ..., user_id: _Optional[int] = ..., refund_no: _Optional[str] = ..., amount_fen: _Optional[int] = ..., lines: _Optional[_Iterable[_Union[OrderLine, _Mapping]]] = ..., channel: _Optional[str] = ..., reason: _Optional[str] = ..., refunded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., points_returned: _Optional[int] = ...) -> None: ...

class Shipment(_message.Message):
    __slots__ = ("shipment_no", "carrier", "tracking_no", "lines", "shipped_at")
    SHIPMENT_NO_FIELD_NUMBER: _ClassVar[int]
    CARRIER_FIELD_NUMBER: _ClassVar[int]
    TRACKING_NO_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    SHIPPED_AT_FIELD_NUMBER: _ClassVar[int]
    shipment_no: str
    carrier: str
    tracking_no: str
    lines: _containers.RepeatedCompositeFieldContainer[OrderLine]
    shipped_at: _timestamp_pb2.Timestamp
    def __init__(self, shipment_no: _Optional[str] = ..., carrier: _Optional[str] = ..., tracking_no: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[OrderLine, _Mapping]]] = ..., shipped_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class OrderShipped(_message.Message):
    __slots__ = ("order_no", "user_id", "shipment", "shipped_at")
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SHIPMENT_FIELD_NUMBER: _ClassVar[int]
    SHIPPED_AT_FIELD_NUMBER: _ClassVar[int]
    order_no: str
    user_id: int
    shipment: Shipment
    shipped_at: _timestamp_pb2.Timestamp
    def __init__(self, order_no: _Optional[str] = ..., user_id: _Optional[int] = ..., shipment: _Optional[_Union[Shipment, _Mapping]] = ..., shipped_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CompletedLine(_message.Message):
    __slots__ = ("line_id", "line", "refunded_quantity", "kept_fen")
    LINE_ID_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    KEPT_FEN_FIELD_NUMBER: _ClassVar[int]
    line_id: int
    line: OrderLine
    refunded_quantity: int
    kept_fen: int
    def __init__(self, line_id: _Optional[int] = ..., line: _Optional[_Union[OrderLine, _Mapping]] = ..., refunded_quantity: _Optional[int] = ..., kept_fen: _Optional[int] = ...) -> None: ...

class OrderCompleted(_message.Message):
    __slots__ = ("order_no", "user_id", "lines", "confirmed_by", "completed_at", "kept_fen")
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_BY_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    KEPT_FEN_FIELD_NUMBER: _ClassVar[int]
    order_no: str
    user_id: int
    lines: _containers.RepeatedCompositeFieldContainer[CompletedLine]
    confirmed_by: str
    completed_at: _timestamp_pb2.Timestamp
    kept_fen: int
    def __init__(self, order_no: _Optional[str] = ..., user_id: _Optional[int] = ..., lines: _Optional[_Iterable[_Union[CompletedLine, _Mapping]]] = ..., confirmed_by: _Optional[str] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kept_fen: _Optional[int] = ...) -> None: ...

class CartItemAdded(_message.Message):
    __slots__ = ("user_id", "sku_id", "product_id", "quantity", "price_fen", "added_at")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FEN_FIELD_NUMBER: _ClassVar[int]
    ADDED_AT_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    sku_id: int
    product_id: int
    quantity: int
    price_fen: int
    added_at: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[int] = ..., sku_id: _Optional[int] = ..., product_id: _Optional[int] = ..., quantity: _Optional[int] = ..., price_fen: _Optional[int] = ..., added_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class OrderReturned(_message.Message):
    __slots__ = ("order_no", "user_id", "case_no", "lines", "received_at")
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CASE_NO_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    order_no: str
    user_id: int
    case_no: str
    lines: _containers.RepeatedCompositeFieldContainer[OrderLine]
    received_at: _timestamp_pb2.Timestamp
    def __init__(self, order_no: _Optional[str] = ..., user_id: _Optional[int] = ..., case_no: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[OrderLine, _Mapping]]] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LatePaymentReceived(_message.Message):
    __slots__ = ("order_no", "user_id", "channel", "out_trade_no", "amount_fen", "reason", "refund_no", "received_at")
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    OUT_TRADE_NO_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REFUND_NO_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    order_no: str
    user_id: int
    channel: str
    out_trade_no: str
    amount_fen: int
    reason: str
    refund_no: str
    received_at: _timestamp_pb2.Timestamp
    def __init__(self, order_no: _Optional[str] = ..., user_id: _Optional[int] = ..., channel: _Optional[str] = ..., out_trade_no: _Optional[str] = ..., amount_fen: _Optional[int] = ..., reason: _Optional[str] = ..., refund_no: _Optional[str] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LatePaymentRefunded(_message.Message):
    __slots__ = ("order_no", "user_id", "refund_no", "amount_fen", "channel", "out_trade_no", "refunded_at")
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    REFUND_NO_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    OUT_TRADE_NO_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_AT_FIELD_NUMBER: _ClassVar[int]
    order_no: str
    user_id: int
    refund_no: str
    amount_fen: int
    channel: str
    out_trade_no: str
    refunded_at: _timestamp_pb2.Timestamp
    def __init__(self, order_no: _Optional[str] = ..., user_id: _Optional[int] = ..., refund_no: _Optional[str] = ..., amount_fen: _Optional[int] = ..., channel: _Optional[str] = ..., out_trade_no: _Optional[str] = ..., refunded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RefundPaidTwice(_message.Message):
    __slots__ = ("order_no", "user_id", "refund_no", "amount_fen", "channel", "paid_at")
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    REFUND_NO_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    PAID_AT_FIELD_NUMBER: _ClassVar[int]
    order_no: str
    user_id: int
    refund_no: str
    amount_fen: int
    channel: str
    paid_at: _timestamp_pb2.Timestamp
    def __init__(self, order_no: _Optional[str] = ..., user_id: _Optional[int] = ..., refund_no: _Optional[str] = ..., amount_fen: _Optional[int] = ..., channel: _Optional[str] = ..., paid_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
