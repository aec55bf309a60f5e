import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PageViewed(_message.Message):
    __slots__ = ("device_id", "session_id", "user_id", "page", "referrer", "client_ts", "received_at", "viewed_at", "region")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    REFERRER_FIELD_NUMBER: _ClassVar[int]
    CLIENT_TS_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    VIEWED_AT_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    session_id: str
    user_id: int
    page: str
    referrer: str
    client_ts: _timestamp_pb2.Timestamp
    received_at: _timestamp_pb2.Timestamp
    viewed_at: _timestamp_pb2.Timestamp
    region: str
    def __init__(self, device_id: _Optional[str] = ..., session_id: _Optional[str] = ..., user_id: _Optional[int] = ..., page: _Optional[str] = ..., referrer: _Optional[str] = ..., client_ts: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., viewed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., region: _Optional[str] = ...) -> None: ...
