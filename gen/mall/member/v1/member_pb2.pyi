import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Member(_message.Message):
    __slots__ = ("member_no", "level", "discount_percent", "points_multiplier_percent", "points", "balance_fen", "pending_fen", "coupons_available", "total_spend_fen", "channel", "joined_at", "plan", "invite_code", "bonus_fen", "points_owed", "discount_bp")
    MEMBER_NO_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    DISCOUNT_PERCENT_FIELD_NUMBER: _ClassVar[int]
    POINTS_MULTIPLIER_PERCENT_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FEN_FIELD_NUMBER: _ClassVar[int]
    PENDING_FEN_FIELD_NUMBER: _ClassVar[int]
    COUPONS_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SPEND_FEN_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    JOINED_AT_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    INVITE_CODE_FIELD_NUMBER: _ClassVar[int]
    BONUS_FEN_FIELD_NUMBER: _ClassVar[int]
    POINTS_OWED_FIELD_NUMBER: _ClassVar[int]
    DISCOUNT_BP_FIELD_NUMBER: _ClassVar[int]
    member_no: str
    level: str
    discount_percent: int
    points_multiplier_percent: int
    points: int
    balance_fen: int
    pending_fen: int
    coupons_available: int
    total_spend_fen: int
    channel: str
    joined_at: _timestamp_pb2.Timestamp
    plan: MemberPlan
    invite_code: str
    bonus_fen: int
    points_owed: int
    discount_bp: int
    def __init__(self, member_no: _Optional[str] = ..., level: _Optional[str] = ..., discount_percent: _Optional[int] = ..., points_multiplier_percent: _Optional[int] = ..., points: _Optional[int] = ..., balance_fen: _Optional[int] = ..., pending_fen: _Optional[int] = ..., coupons_available: _Optional[int] = ..., total_spend_fen: _Optional[int] = ..., channel: _Optional[str] = ..., joined_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., plan: _Optional[_Union[MemberPlan, _Mapping]] = ..., invite_code: _Optional[str] = ..., bonus_fen: _Optional[int] = ..., points_owed: _Optional[int] = ..., discount_bp: _Optional[int] = ...) -> None: ...

class GetWalletRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Wallet(_message.Message):
    __slots__ = ("balance_fen", "pending_fen", "bonus_fen")
    BALANCE_FEN_FIELD_NUMBER: _ClassVar[int]
    PENDING_FEN_FIELD_NUMBER: _ClassVar[int]
    BONUS_FEN_FIELD_NUMBER: _ClassVar[int]
    balance_fen: int
    pending_fen: int
    bonus_fen: int
    def __init__(self, balance_fen: _Optional[int] = ..., pending_fen: _Optional[int] = ..., bonus_fen: _Optional[int] = ...) -> None: ...

class MemberPlan(_message.Message):
    __slots__ = ("id", "name", "expires_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Plan(_message.Message):
    __slots__ = ("id", "name", "price_fen", "days", "discount_percent")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PRICE_FEN_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    DISCOUNT_PERCENT_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    price_fen: int
    days: int
    discount_percent: int
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., price_fen: _Optional[int] = ..., days: _Optional[int] = ..., discount_percent: _Optional[int] = ...) -> None: ...

class ListPlansRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPlansResponse(_message.Message):
    __slots__ = ("plans",)
    PLANS_FIELD_NUMBER: _ClassVar[int]
    plans: _containers.RepeatedCompositeFieldContainer[Plan]
    def __init__(self, plans: _Optional[_Iterable[_Union[Plan, _Mapping]]] = ...) -> None: ...

class SubscribePlanRequest(_message.Message):
    __slots__ = ("plan_id", "idempotency_key")
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    plan_id: int
    idempotency_key: str
    def __init__(self, plan_id: _Optional[int] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class SignUpRequest(_message.Message):
    __slots__ = ("channel", "invite_code")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    INVITE_CODE_FIELD_NUMBER: _ClassVar[int]
    channel: str
    invite_code: str
    def __init__(self, channel: _Optional[str] = ..., invite_code: _Optional[str] = ...) -> None: ...

class SignUpResponse(_message.Message):
    __slots__ = ("member", "created")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    member: Member
    created: bool
    def __init__(self, member: _Optional[_Union[Member, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetMemberRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetMemberResponse(_message.Message):
    __slots__ = ("member",)
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    member: Member
    def __init__(self, member: _Optional[_Union[Member, _Mapping]] = ...) -> None: ...

class LookUpMemberRequest(_message.Message):
    __slots__ = ("user_id", "offset", "limit")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    offset: int
    limit: int
    def __init__(self, user_id: _Optional[int] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class LookUpMemberResponse(_message.Message):
    __slots__ = ("member", "points_entries", "points_entries_total")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    POINTS_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    POINTS_ENTRIES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    member: Member
    points_entries: _containers.RepeatedCompositeFieldContainer[LedgerEntry]
    points_entries_total: int
    def __init__(self, member: _Optional[_Union[Member, _Mapping]] = ..., points_entries: _Optional[_Iterable[_Union[LedgerEntry, _Mapping]]] = ..., points_entries_total: _Optional[int] = ...) -> None: ...

class GetDiscountRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Discount(_message.Message):
    __slots__ = ("discount_percent", "discount_bp")
    DISCOUNT_PERCENT_FIELD_NUMBER: _ClassVar[int]
    DISCOUNT_BP_FIELD_NUMBER: _ClassVar[int]
    discount_percent: int
    discount_bp: int
    def __init__(self, discount_percent: _Optional[int] = ..., discount_bp: _Optional[int] = ...) -> None: ...

class LedgerEntry(_message.Message):
    __slots__ = ("id", "account", "amount", "balance_after", "kind", "reference", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    BALANCE_AFTER_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    account: str
    amount: int
    balance_after: int
    kind: str
    reference: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., account: _Optional[str] = ..., amount: _Optional[int] = ..., balance_after: _Optional[int] = ..., kind: _Optional[str] = ..., reference: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListEntriesRequest(_message.Message):
    __slots__ = ("offset", "limit")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    offset: int
    limit: int
    def __init__(self, offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListEntriesResponse(_message.Message):
    __slots__ = ("entries", "total")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[LedgerEntry]
    total: int
    def __init__(self, entries: _Optional[_Iterable[_Union[LedgerEntry, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class CheckLedgersRequest(_message.Message):
    __slots__ = ("after_account_id", "limit")
    AFTER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    after_account_id: int
    limit: int
    def __init__(self, after_account_id: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class LedgerMismatch(_message.Message):
    __slots__ = ("account_id", "user_id", "account", "balance", "entries_sum")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_SUM_FIELD_NUMBER: _ClassVar[int]
    account_id: int
    user_id: int
    account: str
    balance: int
    entries_sum: int
    def __init__(self, account_id: _Optional[int] = ..., user_id: _Optional[int] = ..., account: _Optional[str] = ..., balance: _Optional[int] = ..., entries_sum: _Optional[int] = ...) -> None: ...

class CheckLedgersResponse(_message.Message):
    __slots__ = ("accounts_checked", "mismatches", "next_after_account_id")
    ACCOUNTS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    MISMATCHES_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    accounts_checked: int
    mismatches: _containers.RepeatedCompositeFieldContainer[LedgerMismatch]
    next_after_account_id: int
    def __init__(self, accounts_checked: _Optional[int] = ..., mismatches: _Optional[_Iterable[_Union[LedgerMismatch, _Mapping]]] = ..., next_after_account_id: _Optional[int] = ...) -> None: ...

class QuotePointsRequest(_message.Message):
    __slots__ = ("points", "payable_fen")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    PAYABLE_FEN_FIELD_NUMBER: _ClassVar[int]
    points: int
    payable_fen: int
    def __init__(self, points: _Optional[int] = ..., payable_fen: _Optional[int] = ...) -> None: ...

class QuotePointsResponse(_message.Message):
    __slots__ = ("available_points", "usable_points", "discount_fen")
    AVAILABLE_POINTS_FIELD_NUMBER: _ClassVar[int]
    USABLE_POINTS_FIELD_NUMBER: _ClassVar[int]
    DISCOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    available_points: int
    usable_points: int
    discount_fen: int
    def __init__(self, available_points: _Optional[int] = ..., usable_points: _Optional[int] = ..., discount_fen: _Optional[int] = ...) -> None: ...

class LockPointsRequest(_message.Message):
    __slots__ = ("order_no", "points", "payable_fen")
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    PAYABLE_FEN_FIELD_NUMBER: _ClassVar[int]
    order_no: str
    points: int
    payable_fen: int
    def __init__(self, order_no: _Optional[str] = ..., points: _Optional[int] = ..., payable_fen: _Optional[int] = ...) -> None: ...

class LockPointsResponse(_message.Message):
    __slots__ = ("points", "discount_fen")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    DISCOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    points: int
    discount_fen: int
    def __init__(self, points: _Optional[int] = ..., discount_fen: _Optional[int] = ...) -> None: ...

class ReleasePointsRequest(_message.Message):
    __slots__ = ("order_no",)
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    order_no: str
    def __init__(self, order_no: _Optional[str] = ...) -> None: ...

class ReleasePointsResponse(_message.Message):
    __slots__ = ("points",)
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: int
    def __init__(self, points: _Optional[int] = ...) -> None: ...

class CreateCouponTemplateRequest(_message.Message):
    __slots__ = ("name", "kind", "amount_fen", "percent_off", "threshold_fen", "cap_fen", "total", "per_user_limit", "valid_from", "valid_to", "category_ids", "idempotency_key")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    PERCENT_OFF_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FEN_FIELD_NUMBER: _ClassVar[int]
    CAP_FEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PER_USER_LIMIT_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_TO_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_IDS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    amount_fen: int
    percent_off: int
    threshold_fen: int
    cap_fen: int
    total: int
    per_user_limit: int
    valid_from: _timestamp_pb2.Timestamp
    valid_to: _timestamp_pb2.Timestamp
    category_ids: _containers.RepeatedScalarFieldContainer[int]
    idempotency_key: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., amount_fen: _Optional[int] = ..., percent_off: _Optional[int] = ..., threshold_fen: _Optional[int] = ..., cap_fen: _Optional[int] = ..., total: _Optional[int] = ..., per_user_limit: _Optional[int] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., category_ids: _Optional[_Iterable[int]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class CouponTemplate(_message.Message):
    __slots__ = ("id", "name", "kind", "amount_fen", "percent_off", "threshold_fen", "cap_fen", "total", "issued", "per_user_limit", "valid_from", "valid_to", "category_ids", "status", "created_at", "created_by", "disabled_at", "disabled_by", "disable_reason", "approved_at", "approved_by", "usage")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    PERCENT_OFF_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FEN_FIELD_NUMBER: _ClassVar[int]
    CAP_FEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    ISSUED_FIELD_NUMBER: _ClassVar[int]
    PER_USER_LIMIT_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_TO_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_IDS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    DISABLED_AT_FIELD_NUMBER: _ClassVar[int]
    DISABLED_BY_FIELD_NUMBER: _ClassVar[int]
    DISABLE_REASON_FIELD_NUMBER: _ClassVar[int]
    APPROVED_AT_FIELD_NUMBER: _ClassVar[int]
    APPROVED_BY_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    kind: str
    amount_fen: int
    percent_off: int
    threshold_fen: int
    cap_fen: int
    total: int
    issued: int
    per_user_limit: int
    valid_from: _timestamp_pb2.Timestamp
    valid_to: _timestamp_pb2.Timestamp
    category_ids: _containers.RepeatedScalarFieldContainer[int]
    status: str
    created_at: _timestamp_pb2.Timestamp
    created_by: int
    disabled_at: _timestamp_pb2.Timestamp
    disabled_by: int
    disable_reason: str
    approved_at: _timestamp_pb2.Timestamp
    approved_by: int
    usage: CouponUsage
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., kind: _Optional[str] = ..., amount_fen: _Optional[int] = ..., percent_off: _Optional[int] = ..., threshold_fen: _Optional[int] = ..., cap_fen: _Optional[int] = ..., total: _Optional[int] = ..., issued: _Optional[int] = ..., per_user_limit: _Optional[int] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_to: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., category_ids: _Optional[_Iterable[int]] = ..., status: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_by: _Optional[int] = ..., disabled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., disabled_by: _Optional[int] = ..., disable_reason: _Optional[str] = ..., approved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., approved_by: _Optional[int] = ..., usage: _Optional[_Union[CouponUsage, _Mapping]] = ...) -> None: ...

class CouponUsage(_message.Message):
    __slots__ = ("available", "locked", "used", "expired")
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    LOCKED_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    EXPIRED_FIELD_NUMBER: _ClassVar[int]
    available: int
    locked: int
    used: int
    expired: int
    def __init__(self, available: _Optional[int] = ..., locked: _Optional[int] = ..., used: _Optional[int] = ..., expired: _Optional[int] = ...) -> None: ...

class ListCouponTemplatesRequest(_message.Message):
    __slots__ = ("status", "offset", "limit")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    status: str
    offset: int
    limit: int
    def __init__(self, status: _Optional[str] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListCouponTemplatesResponse(_message.Message):
    __slots__ = ("templates", "total")
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    templates: _containers.RepeatedCompositeFieldContainer[CouponTemplate]
    total: int
    def __init__(self, templates: _Optional[_Iterable[_Union[CouponTemplate, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class GetCouponTemplateRequest(_message.Message):
    __slots__ = ("template_id",)
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    template_id: int
    def __init__(self, template_id: _Optional[int] = ...) -> None: ...

class ApproveCouponTemplateRequest(_message.Message):
    __slots__ = ("template_id",)
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    template_id: int
    def __init__(self, template_id: _Optional[int] = ...) -> None: ...

class DisableCouponTemplateRequest(_message.Message):
    __slots__ = ("template_id", "reason")
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    template_id: int
    reason: str
    def __init__(self, template_id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class ListClaimableCouponTemplatesRequest(_message.Message):
    __slots__ = ("offset", "limit")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    offset: int
    limit: int
    def __init__(self, offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ClaimableCouponTemplate(_message.Message):
    __slots__ = ("template", "claimed")
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_FIELD_NUMBER: _ClassVar[int]
    template: CouponTemplate
    claimed: int
    def __init__(self, template: _Optional[_Union[CouponTemplate, _Mapping]] = ..., claimed: _Optional[int] = ...) -> None: ...

class ListClaimableCouponTemplatesResponse(_message.Message):
    __slots__ = ("templates", "total")
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    templates: _containers.RepeatedCompositeFieldContainer[ClaimableCouponTemplate]
    total: int
    def __init__(self, templates: _Optional[_Iterable[_Union[ClaimableCouponTemplate, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class Coupon(_message.Message):
    __slots__ = ("id", "template", "status", "order_no", "claimed_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    template: CouponTemplate
    status: str
    order_no: str
    claimed_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., template: _Optional[_Union[CouponTemplate, _Mapping]] = ..., status: _Optional[str] = ..., order_no: _Optional[str] = ..., claimed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ClaimCouponRequest(_message.Message):
    __slots__ = ("template_id", "idempotency_key")
    TEMPLATE_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    template_id: int
    idempotency_key: str
    def __init__(self, template_id: _Optional[int] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ListCouponsRequest(_message.Message):
    __slots__ = ("status", "offset", "limit")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    status: str
    offset: int
    limit: int
    def __init__(self, status: _Optional[str] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListCouponsResponse(_message.Message):
    __slots__ = ("coupons", "total")
    COUPONS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    coupons: _containers.RepeatedCompositeFieldContainer[Coupon]
    total: int
    def __init__(self, coupons: _Optional[_Iterable[_Union[Coupon, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class OrderLine(_message.Message):
    __slots__ = ("category_id", "amount_fen", "category_path")
    CATEGORY_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_PATH_FIELD_NUMBER: _ClassVar[int]
    category_id: int
    amount_fen: int
    category_path: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, category_id: _Optional[int] = ..., amount_fen: _Optional[int] = ..., category_path: _Optional[_Iterable[int]] = ...) -> None: ...

class QuoteCouponsRequest(_message.Message):
    __slots__ = ("lines", "coupon_id")
    LINES_FIELD_NUMBER: _ClassVar[int]
    COUPON_ID_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedCompositeFieldContainer[OrderLine]
    coupon_id: int
    def __init__(self, lines: _Optional[_Iterable[_Union[OrderLine, _Mapping]]] = ..., coupon_id: _Optional[int] = ...) -> None: ...

class CouponQuote(_message.Message):
    __slots__ = ("coupon", "usable", "reason", "discount_fen")
    COUPON_FIELD_NUMBER: _ClassVar[int]
    USABLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DISCOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    coupon: Coupon
    usable: bool
    reason: str
    discount_fen: int
    def __init__(self, coupon: _Optional[_Union[Coupon, _Mapping]] = ..., usable: _Optional[bool] = ..., reason: _Optional[str] = ..., discount_fen: _Optional[int] = ...) -> None: ...

class QuoteCouponsResponse(_message.Message):
    __slots__ = ("quotes",)
    QUOTES_FIELD_NUMBER: _ClassVar[int]
    quotes: _containers.RepeatedCompositeFieldContainer[CouponQuote]
    def __init__(self, quotes: _Optional[_Iterable[_Union[CouponQuote, _Mapping]]] = ...) -> None: ...

class LockCouponRequest(_message.Message):
    __slots__ = ("order_no", "coupon_id", "lines")
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    COUPON_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    order_no: str
    coupon_id: int
    lines: _containers.RepeatedCompositeFieldContainer[OrderLine]
    def __init__(self, order_no: _Optional[str] = ..., coupon_id: _Optional[int] = ..., lines: _Optional[_Iterable[_Union[OrderLine, _Mapping]]] = ...) -> None: ...

class LockCouponResponse(_message.Message):
    __slots__ = ("discount_fen", "category_ids")
    DISCOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_IDS_FIELD_NUMBER: _ClassVar[int]
    discount_fen: int
    category_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, discount_fen: _Optional[int] = ..., category_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class ReleaseCouponRequest(_message.Message):
    __slots__ = ("order_no",)
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    order_no: str
    def __init__(self, order_no: _Optional[str] = ...) -> None: ...

class ReleaseCouponResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PayWithBalanceRequest(_message.Message):
    __slots__ = ("order_no", "amount_fen")
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    order_no: str
    amount_fen: int
    def __init__(self, order_no: _Optional[str] = ..., amount_fen: _Optional[int] = ...) -> None: ...

class PayWithBalanceResponse(_message.Message):
    __slots__ = ("balance_fen",)
    BALANCE_FEN_FIELD_NUMBER: _ClassVar[int]
    balance_fen: int
    def __init__(self, balance_fen: _Optional[int] = ...) -> None: ...

class RefundToBalanceRequest(_message.Message):
    __slots__ = ("refund_no", "order_no", "user_id", "amount_fen")
    REFUND_NO_FIELD_NUMBER: _ClassVar[int]
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    refund_no: str
    order_no: str
    user_id: int
    amount_fen: int
    def __init__(self, refund_no: _Optional[str] = ..., order_no: _Optional[str] = ..., user_id: _Optional[int] = ..., amount_fen: _Optional[int] = ...) -> None: ...

class RefundToBalanceResponse(_message.Message):
    __slots__ = ("balance_fen",)
    BALANCE_FEN_FIELD_NUMBER: _ClassVar[int]
    balance_fen: int
    def __init__(self, balance_fen: _Optional[int] = ...) -> None: ...

class VoidBalancePaymentRequest(_message.Message):
    __slots__ = ("order_no",)
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    order_no: str
    def __init__(self, order_no: _Optional[str] = ...) -> None: ...

class VoidBalancePaymentResponse(_message.Message):
    __slots__ = ("charged", "user_id", "amount_fen")
    CHARGED_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    charged: bool
    user_id: int
    amount_fen: int
    def __init__(self, charged: _Optional[bool] = ..., user_id: _Optional[int] = ..., amount_fen: _Optional[int] = ...) -> None: ...

class Withdrawal(_message.Message):
    __slots__ = ("id", "withdrawal_no", "user_id", "amount_fen", "status", "note", "payout_txn_id", "created_at", "decided_at", "bonus_forfeited_fen", "payout_fen", "awaits_shopper", "wx_transfer_confirm", "shopper_reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWAL_NO_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    PAYOUT_TXN_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    BONUS_FORFEITED_FEN_FIELD_NUMBER: _ClassVar[int]
    PAYOUT_FEN_FIELD_NUMBER: _ClassVar[int]
    AWAITS_SHOPPER_FIELD_NUMBER: _ClassVar[int]
    WX_TRANSFER_CONFIRM_FIELD_NUMBER: _ClassVar[int]
    SHOPPER_REASON_FIELD_NUMBER: _ClassVar[int]
    id: int
    withdrawal_no: str
    user_id: int
    amount_fen: int
    status: str
    note: str
    payout_txn_id: str
    created_at: _timestamp_pb2.Timestamp
    decided_at: _timestamp_pb2.Timestamp
    bonus_forfeited_fen: int
    payout_fen: int
    awaits_shopper: bool
    wx_transfer_confirm: WxTransferConfirm
    shopper_reason: str
    def __init__(self, id: _Optional[int] = ..., withdrawal_no: _Optional[str] = ..., user_id: _Optional[int] = ..., amount_fen: _Optional[int] = ..., status: _Optional[str] = ..., note: _Optional[str] = ..., payout_txn_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., bonus_forfeited_fen: _Optional[int] = ..., payout_fen: _Optional[int] = ..., awaits_shopper: _Optional[bool] = ..., wx_transfer_confirm: _Optional[_Union[WxTransferConfirm, _Mapping]] = ..., shopper_reason: _Optional[str] = ...) -> None: ...

class WxTransferConfirm(_message.Message):
    __slots__ = ("mch_id", "app_id", "package")
    MCH_ID_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_FIELD_NUMBER: _ClassVar[int]
    mch_id: str
    app_id: str
    package: str
    def __init__(self, mch_id: _Optional[str] = ..., app_id: _Optional[str] = ..., package: _Optional[str] = ...) -> None: ...

class GetMyWithdrawalRequest(_message.Message):
    __slots__ = ("withdrawal_id",)
    WITHDRAWAL_ID_FIELD_NUMBER: _ClassVar[int]
    withdrawal_id: int
    def __init__(self, withdrawal_id: _Optional[int] = ...) -> None: ...

class RequestWithdrawalRequest(_message.Message):
    __slots__ = ("amount_fen", "idempotency_key")
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    amount_fen: int
    idempotency_key: str
    def __init__(self, amount_fen: _Optional[int] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class DecideWithdrawalRequest(_message.Message):
    __slots__ = ("withdrawal_id", "approve", "note", "shopper_reason")
    WITHDRAWAL_ID_FIELD_NUMBER: _ClassVar[int]
    APPROVE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    SHOPPER_REASON_FIELD_NUMBER: _ClassVar[int]
    withdrawal_id: int
    approve: bool
    note: str
    shopper_reason: str
    def __init__(self, withdrawal_id: _Optional[int] = ..., approve: _Optional[bool] = ..., note: _Optional[str] = ..., shopper_reason: _Optional[str] = ...) -> None: ...

class ListWithdrawalsRequest(_message.Message):
    __slots__ = ("status", "offset", "limit")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    status: str
    offset: int
    limit: int
    def __init__(self, status: _Optional[str] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListWithdrawalsResponse(_message.Message):
    __slots__ = ("withdrawals", "total")
    WITHDRAWALS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    withdrawals: _containers.RepeatedCompositeFieldContainer[Withdrawal]
    total: int
    def __init__(self, withdrawals: _Optional[_Iterable[_Union[Withdrawal, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class CreateRechargeRequest(_message.Message):
    __slots__ = ("amount_fen", "channel", "idempotency_key")
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    amount_fen: int
    channel: str
    idempotency_key: str
    def __init__(self, amount_fen: _Optional[int] = ..., channel: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class Recharge(_message.Message):
    __slots__ = ("id", "recharge_no", "amount_fen", "channel", "status", "payment", "bonus_fen", "created_at", "pay_deadline", "paid_at")
    class PaymentEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    RECHARGE_NO_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FEN_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    BONUS_FEN_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PAY_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    PAID_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    recharge_no: str
    amount_fen: int
    channel: str
    status: str
    payment: _containers.ScalarMap[str, str]
    bonus_fen: int
    created_at: _timestamp_pb2.Timestamp
    pay_deadline: _timestamp_pb2.Timestamp
    paid_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., recharge_no: _Optional[str] = ..., amount_fen: _Optional[int] = ..., channel: _Optional[str] = ..., status: _Optional[str] = ..., payment: _Optional[_Mapping[str, str]] = ..., bonus_fen: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pay_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., paid_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetRechargeRequest(_message.Message):
    __slots__ = ("recharge_no",)
    RECHARGE_NO_FIELD_NUMBER: _ClassVar[int]
    recharge_no: str
    def __init__(self, recharge_no: _Optional[str] = ...) -> None: ...

class CloseRechargeRequest(_message.Message):
    __slots__ = ("recharge_no",)
    RECHARGE_NO_FIELD_NUMBER: _ClassVar[int]
    recharge_no: str
    def __init__(self, recharge_no: _Optional[str] = ...) -> None: ...

class ListRechargesRequest(_message.Message):
    __slots__ = ("status", "offset", "limit")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    status: str
    offset: int
    limit: int
    def __init__(self, status: _Optional[str] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListRechargesResponse(_message.Message):
    __slots__ = ("recharges", "total")
    RECHARGES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    recharges: _containers.RepeatedCompositeFieldContainer[Recharge]
    total: int
    def __init__(self, recharges: _Optional[_Iterable[_Union[Recharge, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class RechargeNotifyRequest(_message.Message):
    __slots__ = ("channel", "body", "headers")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    channel: str
    body: bytes
    headers: _containers.ScalarMap[str, str]
    def __init__(self, channel: _Optional[str] = ..., body: _Optional[bytes] = ..., headers: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RechargeNotifyResponse(_message.Message):
    __slots__ = ("recharge_no",)
    RECHARGE_NO_FIELD_NUMBER: _ClassVar[int]
    recharge_no: str
    def __init__(self, recharge_no: _Optional[str] = ...) -> None: ...
