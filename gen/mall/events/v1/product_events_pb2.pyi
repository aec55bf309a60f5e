import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProductViewed(_message.Message):
    __slots__ = ("product_id", "user_id", "viewed_at")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    VIEWED_AT_FIELD_NUMBER: _ClassVar[int]
    product_id: int
    user_id: int
    viewed_at: _timestamp_pb2.Timestamp
    def __init__(self, product_id: _Optional[int] = ..., user_id: _Optional[int] = ..., viewed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ProductChanged(_message.Message):
    __slots__ = ("product_id", "reason", "changed_at", "catalog_wide")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    CATALOG_WIDE_FIELD_NUMBER: _ClassVar[int]
    product_id: int
    reason: str
    changed_at: _timestamp_pb2.Timestamp
    catalog_wide: bool
    def __init__(self, product_id: _Optional[int] = ..., reason: _Optional[str] = ..., changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., catalog_wide: _Optional[bool] = ...) -> None: ...
