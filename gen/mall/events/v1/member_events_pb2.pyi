import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MemberJoined(_message.Message):
    __slots__ = ("user_id", "member_no", "channel", "level", "invited_by_user_id", "joined_at")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_NO_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    INVITED_BY_USER_ID_FIELD_NUMBER: _ClassVar[int]
    JOINED_AT_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    member_no: str
    channel: str
    level: str
    invited_by_user_id: int
    joined_at: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[int] = ..., member_no: _Optional[str] = ..., channel: _Optional[str] = ..., level: _Optional[str] = ..., invited_by_user_id: _Optional[int] = ..., joined_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MemberRecharged(_message.Message):
    __slots__ = ("user_id", "member_no", "recharge_no", "amount_fen", "bonus_fen", "channel", "balance_fen", "recharged_at")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_NO_FIELD_NUMBER: _ClassVar[int]
    RECHARGE_NO_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    BONUS_FEN_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FEN_FIELD_NUMBER: _ClassVar[int]
    RECHARGED_AT_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    member_no: str
    recharge_no: str
    amount_fen: int
    bonus_fen: int
    channel: str
    balance_fen: int
    recharged_at: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[int] = ..., member_no: _Optional[str] = ..., recharge_no: _Optional[str] = ..., amount_fen: _Optional[int] = ..., bonus_fen: _Optional[int] = ..., channel: _Optional[str] = ..., balance_fen: _Optional[int] = ..., recharged_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MemberWithdrawn(_message.Message):
    __slots__ = ("user_id", "member_no", "withdrawal_id", "amount_fen", "balance_fen", "withdrawn_at", "withdrawal_no", "requested_fen", "bonus_forfeited_fen", "channel")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_NO_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWAL_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FEN_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWN_AT_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWAL_NO_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_FEN_FIELD_NUMBER: _ClassVar[int]
    BONUS_FORFEITED_FEN_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    member_no: str
    withdrawal_id: int
    amount_fen: int
    balance_fen: int
    withdrawn_at: _timestamp_pb2.Timestamp
    withdrawal_no: str
    requested_fen: int
    bonus_forfeited_fen: int
    channel: str
    def __init__(self, user_id: _Optional[int] = ..., member_no: _Optional[str] = ..., withdrawal_id: _Optional[int] = ..., amount_fen: _Optional[int] = ..., balance_fen: _Optional[int] = ..., withdrawn_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., withdrawal_no: _Optional[str] = ..., requested_fen: _Optional[int] = ..., bonus_forfeited_fen: _Optional[int] = ..., channel: _Optional[str] = ...) -> None: ...

class MemberPlanSubscribed(_message.Message):
    __slots__ = ("user_id", "member_no", "plan_id", "plan_name", "amount_fen", "posting_key", "balance_fen", "subscribed_at", "expires_at")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_NO_FIELD_NUMBER: _ClassVar[int]
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_NAME_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    POSTING_KEY_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FEN_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    member_no: str
    plan_id: int
    plan_name: str
    amount_fen: int
    posting_key: str
    balance_fen: int
    subscribed_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[int] = ..., member_no: _Optional[str] = ..., plan_id: _Optional[int] = ..., plan_name: _Optional[str] = ..., amount_fen: _Optional[int] = ..., posting_key: _Optional[str] = ..., balance_fen: _Optional[int] = ..., subscribed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
