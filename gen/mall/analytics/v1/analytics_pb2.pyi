from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetOverviewRequest(_message.Message):
    __slots__ = ("from_date", "to_date")
    FROM_DATE_FIELD_NUMBER: _ClassVar[int]
    TO_DATE_FIELD_NUMBER: _ClassVar[int]
    from_date: str
    to_date: str
    def __init__(self, from_date: _Optional[str] = ..., to_date: _Optional[str] = ...) -> None: ...

class DailyOverview(_message.Message):
    __slots__ = ("date", "new_users")
    DATE_FIELD_NUMBER: _ClassVar[int]
    NEW_USERS_FIELD_NUMBER: _ClassVar[int]
    date: str
    new_users: int
    def __init__(self, date: _Optional[str] = ..., new_users: _Optional[int] = ...) -> None: ...

class GetOverviewResponse(_message.Message):
    __slots__ = ("from_date", "to_date", "new_users", "days")
    FROM_DATE_FIELD_NUMBER: _ClassVar[int]
    TO_DATE_FIELD_NUMBER: _ClassVar[int]
    NEW_USERS_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    from_date: str
    to_date: str
    new_users: int
    days: _containers.RepeatedCompositeFieldContainer[DailyOverview]
    def __init__(self, from_date: _Optional[str] = ..., to_date: _Optional[str] = ..., new_users: _Optional[int] = ..., days: _Optional[_Iterable[_Union[DailyOverview, _Mapping]]] = ...) -> None: ...
