import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListCategoriesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Category(_message.Message):
    __slots__ = ("id", "name", "icon", "children", "parent_id", "sort")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ICON_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    SORT_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    icon: str
    children: _containers.RepeatedCompositeFieldContainer[Category]
    parent_id: int
    sort: int
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., icon: _Optional[str] = ..., children: _Optional[_Iterable[_Union[Category, _Mapping]]] = ..., parent_id: _Optional[int] = ..., sort: _Optional[int] = ...) -> None: ...

class ListCategoriesResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Category]
    def __init__(self, items: _Optional[_Iterable[_Union[Category, _Mapping]]] = ...) -> None: ...

class ListBrandsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Brand(_message.Message):
    __slots__ = ("id", "name", "logo")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LOGO_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    logo: str
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., logo: _Optional[str] = ...) -> None: ...

class ListBrandsResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Brand]
    def __init__(self, items: _Optional[_Iterable[_Union[Brand, _Mapping]]] = ...) -> None: ...

class SearchProductsRequest(_message.Message):
    __slots__ = ("category_id", "brand_id", "price_min_fen", "price_max_fen", "q", "sort", "offset", "limit", "status", "ids")
    CATEGORY_ID_FIELD_NUMBER: _ClassVar[int]
    BRAND_ID_FIELD_NUMBER: _ClassVar[int]
    PRICE_MIN_FEN_FIELD_NUMBER: _ClassVar[int]
    PRICE_MAX_FEN_FIELD_NUMBER: _ClassVar[int]
    Q_FIELD_NUMBER: _ClassVar[int]
    SORT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    category_id: int
    brand_id: int
    price_min_fen: int
    price_max_fen: int
    q: str
    sort: str
    offset: int
    limit: int
    status: str
    ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, category_id: _Optional[int] = ..., brand_id: _Optional[int] = ..., price_min_fen: _Optional[int] = ..., price_max_fen: _Optional[int] = ..., q: _Optional[str] = ..., sort: _Optional[str] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ..., status: _Optional[str] = ..., ids: _Optional[_Iterable[int]] = ...) -> None: ...

class SearchProductsResponse(_message.Message):
    __slots__ = ("items", "total")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Product]
    total: int
    def __init__(self, items: _Optional[_Iterable[_Union[Product, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class ViewProductRequest(_message.Message):
    __slots__ = ("id", "province")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    id: int
    province: str
    def __init__(self, id: _Optional[int] = ..., province: _Optional[str] = ...) -> None: ...

class GetSkusRequest(_message.Message):
    __slots__ = ("sku_ids",)
    SKU_IDS_FIELD_NUMBER: _ClassVar[int]
    sku_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, sku_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class SkuOffer(_message.Message):
    __slots__ = ("sku", "product_id", "name", "on_sale", "category_id", "brand_id", "image", "category_path", "max_per_shopper")
    SKU_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ON_SALE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_ID_FIELD_NUMBER: _ClassVar[int]
    BRAND_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_PATH_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_SHOPPER_FIELD_NUMBER: _ClassVar[int]
    sku: Sku
    product_id: int
    name: str
    on_sale: bool
    category_id: int
    brand_id: int
    image: str
    category_path: _containers.RepeatedScalarFieldContainer[int]
    max_per_shopper: int
    def __init__(self, sku: _Optional[_Union[Sku, _Mapping]] = ..., product_id: _Optional[int] = ..., name: _Optional[str] = ..., on_sale: _Optional[bool] = ..., category_id: _Optional[int] = ..., brand_id: _Optional[int] = ..., image: _Optional[str] = ..., category_path: _Optional[_Iterable[int]] = ..., max_per_shopper: _Optional[int] = ...) -> None: ...

class GetSkusResponse(_message.Message):
    __slots__ = ("skus",)
    SKUS_FIELD_NUMBER: _ClassVar[int]
    skus: _containers.RepeatedCompositeFieldContainer[SkuOffer]
    def __init__(self, skus: _Optional[_Iterable[_Union[SkuOffer, _Mapping]]] = ...) -> None: ...

class ProductRef(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class Param(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class Spec(_message.Message):
    __slots__ = ("name", "values")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    name: str
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., values: _Optional[_Iterable[str]] = ...) -> None: ...

class Sku(_message.Message):
    __slots__ = ("id", "spec", "price_fen", "market_price_fen", "stock", "stock_status", "weight_g", "sales")
    class SpecEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    PRICE_FEN_FIELD_NUMBER: _ClassVar[int]
    MARKET_PRICE_FEN_FIELD_NUMBER: _ClassVar[int]
    STOCK_FIELD_NUMBER: _ClassVar[int]
    STOCK_STATUS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_G_FIELD_NUMBER: _ClassVar[int]
    SALES_FIELD_NUMBER: _ClassVar[int]
    id: int
    spec: _containers.ScalarMap[str, str]
    price_fen: int
    market_price_fen: int
    stock: int
    stock_status: str
    weight_g: int
    sales: int
    def __init__(self, id: _Optional[int] = ..., spec: _Optional[_Mapping[str, str]] = ..., price_fen: _Optional[int] = ..., market_price_fen: _Optional[int] = ..., stock: _Optional[int] = ..., stock_status: _Optional[str] = ..., weight_g: _Optional[int] = ..., sales: _Optional[int] = ...) -> None: ...

class Rating(_message.Message):
    __slots__ = ("average", "count", "average_tenths", "distribution")
    AVERAGE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_TENTHS_FIELD_NUMBER: _ClassVar[int]
    DISTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    average: float
    count: int
    average_tenths: int
    distribution: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, average: _Optional[float] = ..., count: _Optional[int] = ..., average_tenths: _Optional[int] = ..., distribution: _Optional[_Iterable[int]] = ...) -> None: ...

class Delivery(_message.Message):
    __slots__ = ("province", "estimate_days")
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    ESTIMATE_DAYS_FIELD_NUMBER: _ClassVar[int]
    province: str
    estimate_days: int
    def __init__(self, province: _Optional[str] = ..., estimate_days: _Optional[int] = ...) -> None: ...

class Product(_message.Message):
    __slots__ = ("id", "name", "subtitle", "category_id", "brand", "description", "images", "params", "specs", "skus", "after_sales_policy", "status", "on_shelf", "reject_reason", "price_fen", "market_price_fen", "sales", "rating", "delivery", "created_at", "updated_at", "version", "retired_skus", "max_per_shopper")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SUBTITLE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_ID_FIELD_NUMBER: _ClassVar[int]
    BRAND_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    SPECS_FIELD_NUMBER: _ClassVar[int]
    SKUS_FIELD_NUMBER: _ClassVar[int]
    AFTER_SALES_POLICY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ON_SHELF_FIELD_NUMBER: _ClassVar[int]
    REJECT_REASON_FIELD_NUMBER: _ClassVar[int]
    PRICE_FEN_FIELD_NUMBER: _ClassVar[int]
    MARKET_PRICE_FEN_FIELD_NUMBER: _ClassVar[int]
    SALES_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RETIRED_SKUS_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_SHOPPER_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    subtitle: str
    category_id: int
    brand: Brand
    description: str
    images: _containers.RepeatedScalarFieldContainer[str]
    params: _containers.RepeatedCompositeFieldContainer[Param]
    specs: _containers.RepeatedCompositeFieldContainer[Spec]
    skus: _containers.RepeatedCompositeFieldContainer[Sku]
    after_sales_policy: str
    status: str
    on_shelf: bool
    reject_reason: str
    price_fen: int
    market_price_fen: int
    sales: int
    rating: Rating
    delivery: Delivery
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    version: int
    retired_skus: _containers.RepeatedCompositeFieldContainer[Sku]
    max_per_shopper: int
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., subtitle: _Optional[str] = ..., category_id: _Optional[int] = ..., brand: _Optional[_Union[Brand, _Mapping]] = ..., description: _Optional[str] = ..., images: _Optional[_Iterable[str]] = ..., params: _Optional[_Iterable[_Union[Param, _Mapping]]] = ..., specs: _Optional[_Iterable[_Union[Spec, _Mapping]]] = ..., skus: _Optional[_Iterable[_Union[Sku, _Mapping]]] = ..., after_sales_policy: _Optional[str] = ..., status: _Optional[str] = ..., on_shelf: _Optional[bool] = ..., reject_reason: _Optional[str] = ..., price_fen: _Optional[int] = ..., market_price_fen: _Optional[int] = ..., sales: _Optional[int] = ..., rating: _Optional[_Union[Rating, _Mapping]] = ..., delivery: _Optional[_Union[Delivery, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ..., retired_skus: _Optional[_Iterable[_Union[Sku, _Mapping]]] = ..., max_per_shopper: _Optional[int] = ...) -> None: ...

class SkuInput(_message.Message):
    __slots__ = ("spec", "price_fen", "market_price_fen", "stock", "weight_g")
    class SpecEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SPEC_FIELD_NUMBER: _ClassVar[int]
    PRICE_FEN_FIELD_NUMBER: _ClassVar[int]
    MARKET_PRICE_FEN_FIELD_NUMBER: _ClassVar[int]
    STOCK_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_G_FIELD_NUMBER: _ClassVar[int]
    spec: _containers.ScalarMap[str, str]
    price_fen: int
    market_price_fen: int
    stock: int
    weight_g: int
    def __init__(self, spec: _Optional[_Mapping[str, str]] = ..., price_fen: _Optional[int] = ..., market_price_fen: _Optional[int] = ..., stock: _Optional[int] = ..., weight_g: _Optional[int] = ...) -> None: ...

class ProductInput(_message.Message):
    __slots__ = ("name", "subtitle", "category_id", "brand_id", "description", "images", "params", "specs", "skus", "after_sales_policy", "max_per_shopper")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SUBTITLE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_ID_FIELD_NUMBER: _ClassVar[int]
    BRAND_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    SPECS_FIELD_NUMBER: _ClassVar[int]
    SKUS_FIELD_NUMBER: _ClassVar[int]
    AFTER_SALES_POLICY_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_SHOPPER_FIELD_NUMBER: _ClassVar[int]
    name: str
    subtitle: str
    category_id: int
    brand_id: int
    description: str
    images: _containers.RepeatedScalarFieldContainer[str]
    params: _containers.RepeatedCompositeFieldContainer[Param]
    specs: _containers.RepeatedCompositeFieldContainer[Spec]
    skus: _containers.RepeatedCompositeFieldContainer[SkuInput]
    after_sales_policy: str
    max_per_shopper: int
    def __init__(self, name: _Optional[str] = ..., subtitle: _Optional[str] = ..., category_id: _Optional[int] = ..., brand_id: _Optional[int] = ..., description: _Optional[str] = ..., images: _Optional[_Iterable[str]] = ..., params: _Optional[_Iterable[_Union[Param, _Mapping]]] = ..., specs: _Optional[_Iterable[_Union[Spec, _Mapping]]] = ..., skus: _Optional[_Iterable[_Union[SkuInput, _Mapping]]] = ..., after_sales_policy: _Optional[str] = ..., max_per_shopper: _Optional[int] = ...) -> None: ...

class CreateProductRequest(_message.Message):
    __slots__ = ("product", "idempotency_key")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    product: ProductInput
    idempotency_key: str
    def __init__(self, product: _Optional[_Union[ProductInput, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class UpdateProductRequest(_message.Message):
    __slots__ = ("id", "product", "version")
    ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id: int
    product: ProductInput
    version: int
    def __init__(self, id: _Optional[int] = ..., product: _Optional[_Union[ProductInput, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class AuditProductRequest(_message.Message):
    __slots__ = ("id", "approve", "reason", "version")
    ID_FIELD_NUMBER: _ClassVar[int]
    APPROVE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id: int
    approve: bool
    reason: str
    version: int
    def __init__(self, id: _Optional[int] = ..., approve: _Optional[bool] = ..., reason: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class SetProductShelfRequest(_message.Message):
    __slots__ = ("id", "on_shelf")
    ID_FIELD_NUMBER: _ClassVar[int]
    ON_SHELF_FIELD_NUMBER: _ClassVar[int]
    id: int
    on_shelf: bool
    def __init__(self, id: _Optional[int] = ..., on_shelf: _Optional[bool] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("actor_id", "action", "at", "before_json", "after_json")
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_JSON_FIELD_NUMBER: _ClassVar[int]
    AFTER_JSON_FIELD_NUMBER: _ClassVar[int]
    actor_id: int
    action: str
    at: _timestamp_pb2.Timestamp
    before_json: str
    after_json: str
    def __init__(self, actor_id: _Optional[int] = ..., action: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., before_json: _Optional[str] = ..., after_json: _Optional[str] = ...) -> None: ...

class ListProductAuditLogRequest(_message.Message):
    __slots__ = ("id", "offset", "limit")
    ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    id: int
    offset: int
    limit: int
    def __init__(self, id: _Optional[int] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListProductAuditLogResponse(_message.Message):
    __slots__ = ("items", "total")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    total: int
    def __init__(self, items: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class AdjustStockRequest(_message.Message):
    __slots__ = ("product_id", "sku_id", "delta", "reason", "idempotency_key")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_ID_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    product_id: int
    sku_id: int
    delta: int
    reason: str
    idempotency_key: str
    def __init__(self, product_id: _Optional[int] = ..., sku_id: _Optional[int] = ..., delta: _Optional[int] = ..., reason: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ListStockMovementsRequest(_message.Message):
    __slots__ = ("product_id", "sku_id", "offset", "limit")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    product_id: int
    sku_id: int
    offset: int
    limit: int
    def __init__(self, product_id: _Optional[int] = ..., sku_id: _Optional[int] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class StockMovement(_message.Message):
    __slots__ = ("id", "sku_id", "product_id", "kind", "available", "reserved", "sold", "reference", "actor_id", "reason", "at")
    ID_FIELD_NUMBER: _ClassVar[int]
    SKU_ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    SOLD_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    sku_id: int
    product_id: int
    kind: str
    available: int
    reserved: int
    sold: int
    reference: str
    actor_id: int
    reason: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., sku_id: _Optional[int] = ..., product_id: _Optional[int] = ..., kind: _Optional[str] = ..., available: _Optional[int] = ..., reserved: _Optional[int] = ..., sold: _Optional[int] = ..., reference: _Optional[str] = ..., actor_id: _Optional[int] = ..., reason: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListStockMovementsResponse(_message.Message):
    __slots__ = ("items", "total")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[StockMovement]
    total: int
    def __init__(self, items: _Optional[_Iterable[_Union[StockMovement, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class StockLine(_message.Message):
    __slots__ = ("sku_id", "quantity")
    SKU_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    sku_id: int
    quantity: int
    def __init__(self, sku_id: _Optional[int] = ..., quantity: _Optional[int] = ...) -> None: ...

class ReserveStockRequest(_message.Message):
    __slots__ = ("order_no", "lines")
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    order_no: str
    lines: _containers.RepeatedCompositeFieldContainer[StockLine]
    def __init__(self, order_no: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[StockLine, _Mapping]]] = ...) -> None: ...

class ReserveStockResponse(_message.Message):
    __slots__ = ("order_no", "lines", "expires_at", "status", "skus")
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SKUS_FIELD_NUMBER: _ClassVar[int]
    order_no: str
    lines: _containers.RepeatedCompositeFieldContainer[StockLine]
    expires_at: _timestamp_pb2.Timestamp
    status: str
    skus: _containers.RepeatedCompositeFieldContainer[SkuOffer]
    def __init__(self, order_no: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[StockLine, _Mapping]]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[str] = ..., skus: _Optional[_Iterable[_Union[SkuOffer, _Mapping]]] = ...) -> None: ...

class ReservationRef(_message.Message):
    __slots__ = ("order_no",)
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    order_no: str
    def __init__(self, order_no: _Optional[str] = ...) -> None: ...

class ReservationResponse(_message.Message):
    __slots__ = ("order_no", "status")
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    order_no: str
    status: str
    def __init__(self, order_no: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...

class CreateReviewRequest(_message.Message):
    __slots__ = ("order_no", "line_id", "rating", "content", "images", "buyer_nickname")
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    LINE_ID_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    BUYER_NICKNAME_FIELD_NUMBER: _ClassVar[int]
    order_no: str
    line_id: int
    rating: int
    content: str
    images: _containers.RepeatedScalarFieldContainer[str]
    buyer_nickname: str
    def __init__(self, order_no: _Optional[str] = ..., line_id: _Optional[int] = ..., rating: _Optional[int] = ..., content: _Optional[str] = ..., images: _Optional[_Iterable[str]] = ..., buyer_nickname: _Optional[str] = ...) -> None: ...

class Review(_message.Message):
    __slots__ = ("id", "product_id", "sku_id", "spec", "rating", "content", "images", "buyer", "created_at", "order_no", "line_id", "hidden", "hidden_reason", "hidden_by", "hidden_at")
    class SpecEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    BUYER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    LINE_ID_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_REASON_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_BY_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    product_id: int
    sku_id: int
    spec: _containers.ScalarMap[str, str]
    rating: int
    content: str
    images: _containers.RepeatedScalarFieldContainer[str]
    buyer: str
    created_at: _timestamp_pb2.Timestamp
    order_no: str
    line_id: int
    hidden: bool
    hidden_reason: str
    hidden_by: int
    hidden_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., product_id: _Optional[int] = ..., sku_id: _Optional[int] = ..., spec: _Optional[_Mapping[str, str]] = ..., rating: _Optional[int] = ..., content: _Optional[str] = ..., images: _Optional[_Iterable[str]] = ..., buyer: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., order_no: _Optional[str] = ..., line_id: _Optional[int] = ..., hidden: _Optional[bool] = ..., hidden_reason: _Optional[str] = ..., hidden_by: _Optional[int] = ..., hidden_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class HideReviewRequest(_message.Message):
    __slots__ = ("product_id", "id", "reason")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    product_id: int
    id: int
    reason: str
    def __init__(self, product_id: _Optional[int] = ..., id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class UnhideReviewRequest(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: int
    reason: str
    def __init__(self, id: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class ListReviewsRequest(_message.Message):
    __slots__ = ("product_id", "rating", "hidden", "offset", "limit")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    product_id: int
    rating: int
    hidden: bool
    offset: int
    limit: int
    def __init__(self, product_id: _Optional[int] = ..., rating: _Optional[int] = ..., hidden: _Optional[bool] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListProductReviewsRequest(_message.Message):
    __slots__ = ("product_id", "offset", "limit")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    product_id: int
    offset: int
    limit: int
    def __init__(self, product_id: _Optional[int] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListMyReviewsRequest(_message.Message):
    __slots__ = ("offset", "limit", "order_no")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ORDER_NO_FIELD_NUMBER: _ClassVar[int]
    offset: int
    limit: int
    order_no: str
    def __init__(self, offset: _Optional[int] = ..., limit: _Optional[int] = ..., order_no: _Optional[str] = ...) -> None: ...

class ListReviewsResponse(_message.Message):
    __slots__ = ("items", "total", "rating")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Review]
    total: int
    rating: Rating
    def __init__(self, items: _Optional[_Iterable[_Union[Review, _Mapping]]] = ..., total: _Optional[int] = ..., rating: _Optional[_Union[Rating, _Mapping]] = ...) -> None: ...

class SaveCategoryRequest(_message.Message):
    __slots__ = ("id", "name", "parent_id", "icon", "sort", "idempotency_key")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    ICON_FIELD_NUMBER: _ClassVar[int]
    SORT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    parent_id: int
    icon: str
    sort: int
    idempotency_key: str
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., parent_id: _Optional[int] = ..., icon: _Optional[str] = ..., sort: _Optional[int] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class SaveBrandRequest(_message.Message):
    __slots__ = ("id", "name", "logo", "idempotency_key")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LOGO_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    id: int
    name: str
    logo: str
    idempotency_key: str
    def __init__(self, id: _Optional[int] = ..., name: _Optional[str] = ..., logo: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class DeliveryEstimate(_message.Message):
    __slots__ = ("province", "estimate_days")
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    ESTIMATE_DAYS_FIELD_NUMBER: _ClassVar[int]
    province: str
    estimate_days: int
    def __init__(self, province: _Optional[str] = ..., estimate_days: _Optional[int] = ...) -> None: ...

class ListDeliveryEstimatesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDeliveryEstimatesResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[DeliveryEstimate]
    def __init__(self, items: _Optional[_Iterable[_Union[DeliveryEstimate, _Mapping]]] = ...) -> None: ...

class SettingsAuditEntry(_message.Message):
    __slots__ = ("entity", "entity_key", "actor_id", "action", "at", "before_json", "after_json")
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    ENTITY_KEY_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_JSON_FIELD_NUMBER: _ClassVar[int]
    AFTER_JSON_FIELD_NUMBER: _ClassVar[int]
    entity: str
    entity_key: str
    actor_id: int
    action: str
    at: _timestamp_pb2.Timestamp
    before_json: str
    after_json: str
    def __init__(self, entity: _Optional[str] = ..., entity_key: _Optional[str] = ..., actor_id: _Optional[int] = ..., action: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., before_json: _Optional[str] = ..., after_json: _Optional[str] = ...) -> None: ...

class ListSettingsAuditLogRequest(_message.Message):
    __slots__ = ("entity", "offset", "limit")
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    entity: str
    offset: int
    limit: int
    def __init__(self, entity: _Optional[str] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListSettingsAuditLogResponse(_message.Message):
    __slots__ = ("items", "total")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[SettingsAuditEntry]
    total: int
    def __init__(self, items: _Optional[_Iterable[_Union[SettingsAuditEntry, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...
