import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
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

class Figures(_message.Message):
    __slots__ = ("page_views", "unique_visitors", "visits", "new_users", "active_users", "orders", "paid_orders", "paying_users", "gmv_fen", "refunds", "refund_fen", "net_gmv_fen", "average_order_value_fen", "cancelled_orders", "recharges", "recharge_fen", "new_members", "withdrawals", "withdrawal_fen", "cart_additions", "product_views")
    PAGE_VIEWS_FIELD_NUMBER: _ClassVar[int]
    UNIQUE_VISITORS_FIELD_NUMBER: _ClassVar[int]
    VISITS_FIELD_NUMBER: _ClassVar[int]
    NEW_USERS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_USERS_FIELD_NUMBER: _ClassVar[int]
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    PAID_ORDERS_FIELD_NUMBER: _ClassVar[int]
    PAYING_USERS_FIELD_NUMBER: _ClassVar[int]
    GMV_FEN_FIELD_NUMBER: _ClassVar[int]
    REFUNDS_FIELD_NUMBER: _ClassVar[int]
    REFUND_FEN_FIELD_NUMBER: _ClassVar[int]
    NET_GMV_FEN_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_ORDER_VALUE_FEN_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_ORDERS_FIELD_NUMBER: _ClassVar[int]
    RECHARGES_FIELD_NUMBER: _ClassVar[int]
    RECHARGE_FEN_FIELD_NUMBER: _ClassVar[int]
    NEW_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWALS_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWAL_FEN_FIELD_NUMBER: _ClassVar[int]
    CART_ADDITIONS_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_VIEWS_FIELD_NUMBER: _ClassVar[int]
    page_views: int
    unique_visitors: int
    visits: int
    new_users: int
    active_users: int
    orders: int
    paid_orders: int
    paying_users: int
    gmv_fen: int
    refunds: int
    refund_fen: int
    net_gmv_fen: int
    average_order_value_fen: int
    cancelled_orders: int
    recharges: int
    recharge_fen: int
    new_members: int
    withdrawals: int
    withdrawal_fen: int
    cart_additions: int
    product_views: int
    def __init__(self, page_views: _Optional[int] = ..., unique_visitors: _Optional[int] = ..., visits: _Optional[int] = ..., new_users: _Optional[int] = ..., active_users: _Optional[int] = ..., orders: _Optional[int] = ..., paid_orders: _Optional[int] = ..., paying_users: _Optional[int] = ..., gmv_fen: _Optional[int] = ..., refunds: _Optional[int] = ..., refund_fen: _Optional[int] = ..., net_gmv_fen: _Optional[int] = ..., average_order_value_fen: _Optional[int] = ..., cancelled_orders: _Optional[int] = ..., recharges: _Optional[int] = ..., recharge_fen: _Optional[int] = ..., new_members: _Optional[int] = ..., withdrawals: _Optional[int] = ..., withdrawal_fen: _Optional[int] = ..., cart_additions: _Optional[int] = ..., product_views: _Optional[int] = ...) -> None: ...

class DailyOverview(_message.Message):
    __slots__ = ("date", "figures")
    DATE_FIELD_NUMBER: _ClassVar[int]
    FIGURES_FIELD_NUMBER: _ClassVar[int]
    date: str
    figures: Figures
    def __init__(self, date: _Optional[str] = ..., figures: _Optional[_Union[Figures, _Mapping]] = ...) -> None: ...

class GetOverviewResponse(_message.Message):
    __slots__ = ("from_date", "to_date", "totals", "days")
    FROM_DATE_FIELD_NUMBER: _ClassVar[int]
    TO_DATE_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    from_date: str
    to_date: str
    totals: Figures
    days: _containers.RepeatedCompositeFieldContainer[DailyOverview]
    def __init__(self, from_date: _Optional[str] = ..., to_date: _Optional[str] = ..., totals: _Optional[_Union[Figures, _Mapping]] = ..., days: _Optional[_Iterable[_Union[DailyOverview, _Mapping]]] = ...) -> None: ...

class GetPurchasePreferencesRequest(_message.Message):
    __slots__ = ("from_date", "to_date", "top")
    FROM_DATE_FIELD_NUMBER: _ClassVar[int]
    TO_DATE_FIELD_NUMBER: _ClassVar[int]
    TOP_FIELD_NUMBER: _ClassVar[int]
    from_date: str
    to_date: str
    top: int
    def __init__(self, from_date: _Optional[str] = ..., to_date: _Optional[str] = ..., top: _Optional[int] = ...) -> None: ...

class Sales(_message.Message):
    __slots__ = ("key", "paid_orders", "quantity", "sales_fen", "max_fen")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PAID_ORDERS_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    SALES_FEN_FIELD_NUMBER: _ClassVar[int]
    MAX_FEN_FIELD_NUMBER: _ClassVar[int]
    key: str
    paid_orders: int
    quantity: int
    sales_fen: int
    max_fen: int
    def __init__(self, key: _Optional[str] = ..., paid_orders: _Optional[int] = ..., quantity: _Optional[int] = ..., sales_fen: _Optional[int] = ..., max_fen: _Optional[int] = ...) -> None: ...

class GetPurchasePreferencesResponse(_message.Message):
    __slots__ = ("from_date", "to_date", "sales_fen", "by_category", "by_brand", "by_price_band", "top_products")
    FROM_DATE_FIELD_NUMBER: _ClassVar[int]
    TO_DATE_FIELD_NUMBER: _ClassVar[int]
    SALES_FEN_FIELD_NUMBER: _ClassVar[int]
    BY_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    BY_BRAND_FIELD_NUMBER: _ClassVar[int]
    BY_PRICE_BAND_FIELD_NUMBER: _ClassVar[int]
    TOP_PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    from_date: str
    to_date: str
    sales_fen: int
    by_category: _containers.RepeatedCompositeFieldContainer[Sales]
    by_brand: _containers.RepeatedCompositeFieldContainer[Sales]
    by_price_band: _containers.RepeatedCompositeFieldContainer[Sales]
    top_products: _containers.RepeatedCompositeFieldContainer[Sales]
    def __init__(self, from_date: _Optional[str] = ..., to_date: _Optional[str] = ..., sales_fen: _Optional[int] = ..., by_category: _Optional[_Iterable[_Union[Sales, _Mapping]]] = ..., by_brand: _Optional[_Iterable[_Union[Sales, _Mapping]]] = ..., by_price_band: _Optional[_Iterable[_Union[Sales, _Mapping]]] = ..., top_products: _Optional[_Iterable[_Union[Sales, _Mapping]]] = ...) -> None: ...

class GetRegionalDistributionRequest(_message.Message):
    __slots__ = ("from_date", "to_date")
    FROM_DATE_FIELD_NUMBER: _ClassVar[int]
    TO_DATE_FIELD_NUMBER: _ClassVar[int]
    from_date: str
    to_date: str
    def __init__(self, from_date: _Optional[str] = ..., to_date: _Optional[str] = ...) -> None: ...

class Region(_message.Message):
    __slots__ = ("province", "paid_orders", "gmv_fen", "gmv_share", "page_views")
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    PAID_ORDERS_FIELD_NUMBER: _ClassVar[int]
    GMV_FEN_FIELD_NUMBER: _ClassVar[int]
    GMV_SHARE_FIELD_NUMBER: _ClassVar[int]
    PAGE_VIEWS_FIELD_NUMBER: _ClassVar[int]
    province: str
    paid_orders: int
    gmv_fen: int
    gmv_share: float
    page_views: int
    def __init__(self, province: _Optional[str] = ..., paid_orders: _Optional[int] = ..., gmv_fen: _Optional[int] = ..., gmv_share: _Optional[float] = ..., page_views: _Optional[int] = ...) -> None: ...

class GetRegionalDistributionResponse(_message.Message):
    __slots__ = ("from_date", "to_date", "gmv_fen", "provinces")
    FROM_DATE_FIELD_NUMBER: _ClassVar[int]
    TO_DATE_FIELD_NUMBER: _ClassVar[int]
    GMV_FEN_FIELD_NUMBER: _ClassVar[int]
    PROVINCES_FIELD_NUMBER: _ClassVar[int]
    from_date: str
    to_date: str
    gmv_fen: int
    provinces: _containers.RepeatedCompositeFieldContainer[Region]
    def __init__(self, from_date: _Optional[str] = ..., to_date: _Optional[str] = ..., gmv_fen: _Optional[int] = ..., provinces: _Optional[_Iterable[_Union[Region, _Mapping]]] = ...) -> None: ...

class GetFunnelRequest(_message.Message):
    __slots__ = ("from_date", "to_date")
    FROM_DATE_FIELD_NUMBER: _ClassVar[int]
    TO_DATE_FIELD_NUMBER: _ClassVar[int]
    from_date: str
    to_date: str
    def __init__(self, from_date: _Optional[str] = ..., to_date: _Optional[str] = ...) -> None: ...

class FunnelSteps(_message.Message):
    __slots__ = ("viewed", "added_to_cart", "ordered", "paid")
    VIEWED_FIELD_NUMBER: _ClassVar[int]
    ADDED_TO_CART_FIELD_NUMBER: _ClassVar[int]
    ORDERED_FIELD_NUMBER: _ClassVar[int]
    PAID_FIELD_NUMBER: _ClassVar[int]
    viewed: int
    added_to_cart: int
    ordered: int
    paid: int
    def __init__(self, viewed: _Optional[int] = ..., added_to_cart: _Optional[int] = ..., ordered: _Optional[int] = ..., paid: _Optional[int] = ...) -> None: ...

class DailyFunnel(_message.Message):
    __slots__ = ("date", "steps")
    DATE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    date: str
    steps: FunnelSteps
    def __init__(self, date: _Optional[str] = ..., steps: _Optional[_Union[FunnelSteps, _Mapping]] = ...) -> None: ...

class GetFunnelResponse(_message.Message):
    __slots__ = ("from_date", "to_date", "totals", "days")
    FROM_DATE_FIELD_NUMBER: _ClassVar[int]
    TO_DATE_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    DAYS_FIELD_NUMBER: _ClassVar[int]
    from_date: str
    to_date: str
    totals: FunnelSteps
    days: _containers.RepeatedCompositeFieldContainer[DailyFunnel]
    def __init__(self, from_date: _Optional[str] = ..., to_date: _Optional[str] = ..., totals: _Optional[_Union[FunnelSteps, _Mapping]] = ..., days: _Optional[_Iterable[_Union[DailyFunnel, _Mapping]]] = ...) -> None: ...

class GetRetentionRequest(_message.Message):
    __slots__ = ("from_date", "to_date")
    FROM_DATE_FIELD_NUMBER: _ClassVar[int]
    TO_DATE_FIELD_NUMBER: _ClassVar[int]
    from_date: str
    to_date: str
    def __init__(self, from_date: _Optional[str] = ..., to_date: _Optional[str] = ...) -> None: ...

class Cohort(_message.Message):
    __slots__ = ("date", "new_users", "d1", "d7", "d30", "d1_rate", "d7_rate", "d30_rate")
    DATE_FIELD_NUMBER: _ClassVar[int]
    NEW_USERS_FIELD_NUMBER: _ClassVar[int]
    D1_FIELD_NUMBER: _ClassVar[int]
    D7_FIELD_NUMBER: _ClassVar[int]
    D30_FIELD_NUMBER: _ClassVar[int]
    D1_RATE_FIELD_NUMBER: _ClassVar[int]
    D7_RATE_FIELD_NUMBER: _ClassVar[int]
    D30_RATE_FIELD_NUMBER: _ClassVar[int]
    date: str
    new_users: int
    d1: int
    d7: int
    d30: int
    d1_rate: float
    d7_rate: float
    d30_rate: float
    def __init__(self, date: _Optional[str] = ..., new_users: _Optional[int] = ..., d1: _Optional[int] = ..., d7: _Optional[int] = ..., d30: _Optional[int] = ..., d1_rate: _Optional[float] = ..., d7_rate: _Optional[float] = ..., d30_rate: _Optional[float] = ...) -> None: ...

class GetRetentionResponse(_message.Message):
    __slots__ = ("from_date", "to_date", "cohorts")
    FROM_DATE_FIELD_NUMBER: _ClassVar[int]
    TO_DATE_FIELD_NUMBER: _ClassVar[int]
    COHORTS_FIELD_NUMBER: _ClassVar[int]
    from_date: str
    to_date: str
    cohorts: _containers.RepeatedCompositeFieldContainer[Cohort]
    def __init__(self, from_date: _Optional[str] = ..., to_date: _Optional[str] = ..., cohorts: _Optional[_Iterable[_Union[Cohort, _Mapping]]] = ...) -> None: ...

class PageView(_message.Message):
    __slots__ = ("session_id", "page", "referrer", "client_ts", "region")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    REFERRER_FIELD_NUMBER: _ClassVar[int]
    CLIENT_TS_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    page: str
    referrer: str
    client_ts: _timestamp_pb2.Timestamp
    region: str
    def __init__(self, session_id: _Optional[str] = ..., page: _Optional[str] = ..., referrer: _Optional[str] = ..., client_ts: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., region: _Optional[str] = ...) -> None: ...

class TrackPageViewsRequest(_message.Message):
    __slots__ = ("device_id", "views")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    VIEWS_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    views: _containers.RepeatedCompositeFieldContainer[PageView]
    def __init__(self, device_id: _Optional[str] = ..., views: _Optional[_Iterable[_Union[PageView, _Mapping]]] = ...) -> None: ...

class TrackPageViewsResponse(_message.Message):
    __slots__ = ("accepted",)
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    def __init__(self, accepted: _Optional[int] = ...) -> None: ...

class CreateReportRequest(_message.Message):
    __slots__ = ("kind", "format", "from_date", "to_date")
    KIND_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    FROM_DATE_FIELD_NUMBER: _ClassVar[int]
    TO_DATE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    format: str
    from_date: str
    to_date: str
    def __init__(self, kind: _Optional[str] = ..., format: _Optional[str] = ..., from_date: _Optional[str] = ..., to_date: _Optional[str] = ...) -> None: ...

class Report(_message.Message):
    __slots__ = ("id", "kind", "format", "from_date", "to_date", "status", "percent", "rows", "size_bytes", "file_name", "error", "created_at", "finished_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    FROM_DATE_FIELD_NUMBER: _ClassVar[int]
    TO_DATE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    kind: str
    format: str
    from_date: str
    to_date: str
    status: str
    percent: int
    rows: int
    size_bytes: int
    file_name: str
    error: str
    created_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., kind: _Optional[str] = ..., format: _Optional[str] = ..., from_date: _Optional[str] = ..., to_date: _Optional[str] = ..., status: _Optional[str] = ..., percent: _Optional[int] = ..., rows: _Optional[int] = ..., size_bytes: _Optional[int] = ..., file_name: _Optional[str] = ..., error: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetReportRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class ListReportsRequest(_message.Message):
    __slots__ = ("offset", "limit")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    offset: int
    limit: int
    def __init__(self, offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListReportsResponse(_message.Message):
    __slots__ = ("reports", "total")
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    reports: _containers.RepeatedCompositeFieldContainer[Report]
    total: int
    def __init__(self, reports: _Optional[_Iterable[_Union[Report, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class GetReportChunkRequest(_message.Message):
    __slots__ = ("id", "offset")
    ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    id: int
    offset: int
    def __init__(self, id: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class GetReportChunkResponse(_message.Message):
    __slots__ = ("report", "data")
    REPORT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    report: Report
    data: bytes
    def __init__(self, report: _Optional[_Union[Report, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...
