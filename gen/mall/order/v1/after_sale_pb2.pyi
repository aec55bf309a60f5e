import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mall.order.v1 import order_pb2 as _order_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AfterSaleLine(_message.Message):
    __slots__ = ("line_id", "quantity", "amount_fen", "sku_id", "name", "spec")
    LINE_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    SKU_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    line_id: int
    quantity: int
    amount_fen: int
    sku_id: int
    name: str
    spec: str
    def __init__(self, line_id: _Optional[int] = ..., quantity: _Optional[int] = ..., amount_fen: _Optional[int] = ..., sku_id: _Optional[int] = ..., name: _Optional[str] = ..., spec: _Optional[str] = ...) -> None: ...

class AfterSaleStep(_message.Message):
    __slots__ = ("status", "at", "actor", "reason", "shopper_visible", "shopper_reason")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SHOPPER_VISIBLE_FIELD_NUMBER: _ClassVar[int]
    SHOPPER_REASON_FIELD_NUMBER: _ClassVar[int]
    status: str
    at: _timestamp_pb2.Timestamp
    actor: str
    reason: str
    shopper_visible: bool
    shopper_reason: str
    def __init__(self, status: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., reason: _Optional[str] = ..., shopper_visible: _Optional[bool] = ..., shopper_reason: _Optional[str] = ...) -> None: ...

class AfterSale(_message.Message):
    __slots__ = ("id", "case_no", "order_id", "order_no", "user_id", "type", "status", "reason", "images", "lines", "refund_fen", "return_carrier", "return_tracking_no", "refund_no", "created_at", "updated_at", "history", "return_address")
    ID_FIELD_NUMBER: _ClassVar[int]
    CASE_NO_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    REFUND_FEN_FIELD_NUMBER: _ClassVar[int]
    RETURN_CARRIER_FIELD_NUMBER: _ClassVar[int]
    RETURN_TRACKING_NO_FIELD_NUMBER: _ClassVar[int]
    REFUND_NO_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    RETURN_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    id: int
    case_no: str
    order_id: int
    order_no: str
    user_id: int
    type: str
    status: str
    reason: str
    images: _containers.RepeatedScalarFieldContainer[str]
    lines: _containers.RepeatedCompositeFieldContainer[AfterSaleLine]
    refund_fen: int
    return_carrier: str
    return_tracking_no: str
    refund_no: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    history: _containers.RepeatedCompositeFieldContainer[AfterSaleStep]
    return_address: _order_pb2.Address
    def __init__(self, id: _Optional[int] = ..., case_no: _Optional[str] = ..., order_id: _Optional[int] = ..., order_no: _Optional[str] = ..., user_id: _Optional[int] = ..., type: _Optional[str] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., images: _Optional[_Iterable[str]] = ..., lines: _Optional[_Iterable[_Union[AfterSaleLine, _Mapping]]] = ..., refund_fen: _Optional[int] = ..., return_carrier: _Optional[str] = ..., return_tracking_no: _Optional[str] = ..., refund_no: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., history: _Optional[_Iterable[_Union[AfterSaleStep, _Mapping]]] = ..., return_address: _Optional[_Union[_order_pb2.Address, _Mapping]] = ...) -> None: ...

class CreateAfterSaleRequest(_message.Message):
    __slots__ = ("order_id", "type", "lines", "reason", "images")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    order_id: int
    type: str
    lines: _containers.RepeatedCompositeFieldContainer[AfterSaleLine]
    reason: str
    images: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, order_id: _Optional[int] = ..., type: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[AfterSaleLine, _Mapping]]] = ..., reason: _Optional[str] = ..., images: _Optional[_Iterable[str]] = ...) -> None: ...

class GetAfterSaleRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class ListAfterSalesRequest(_message.Message):
    __slots__ = ("offset", "limit", "order_id")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    offset: int
    limit: int
    order_id: int
    def __init__(self, offset: _Optional[int] = ..., limit: _Optional[int] = ..., order_id: _Optional[int] = ...) -> None: ...

class ListAfterSalesResponse(_message.Message):
    __slots__ = ("cases", "total")
    CASES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    cases: _containers.RepeatedCompositeFieldContainer[AfterSale]
    total: int
    def __init__(self, cases: _Optional[_Iterable[_Union[AfterSale, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class SearchAfterSalesRequest(_message.Message):
    __slots__ = ("status", "type", "order_no", "created_from", "created_to", "offset", "limit")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    CREATED_FROM_FIELD_NUMBER: _ClassVar[int]
    CREATED_TO_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    status: str
    type: str
    order_no: str
    created_from: _timestamp_pb2.Timestamp
    created_to: _timestamp_pb2.Timestamp
    offset: int
    limit: int
    def __init__(self, status: _Optional[str] = ..., type: _Optional[str] = ..., order_no: _Optional[str] = ..., created_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class SubmitReturnShipmentRequest(_message.Message):
    __slots__ = ("id", "carrier", "tracking_no")
    ID_FIELD_NUMBER: _ClassVar[int]
    CARRIER_FIELD_NUMBER: _ClassVar[int]
    TRACKING_NO_FIELD_NUMBER: _ClassVar[int]
    id: int
    carrier: str
    tracking_no: str
    def __init__(self, id: _Optional[int] = ..., carrier: _Optional[str] = ..., tracking_no: _Optional[str] = ...) -> None: ...

class WithdrawAfterSaleRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: int
    reason: str
    def __init__(self, id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class DecideAfterSaleRequest(_message.Message):
    __slots__ = ("id", "approve", "reason", "shopper_reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    APPROVE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SHOPPER_REASON_FIELD_NUMBER: _ClassVar[int]
    id: int
    approve: bool
    reason: str
    shopper_reason: str
    def __init__(self, id: _Optional[int] = ..., approve: _Optional[bool] = ..., reason: _Optional[str] = ..., shopper_reason: _Optional[str] = ...) -> None: ...

class ReceiveReturnRequest(_message.Message):
    __slots__ = ("id", "note")
    ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    id: int
    note: str
    def __init__(self, id: _Optional[int] = ..., note: _Optional[str] = ...) -> None: ...
