"""Admin product management: create and edit SPUs with SKUs, audit, shelf, audit log, search, stock."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from flask import Blueprint
from mall.product.v1 import product_pb2
from mall.product.v1.product_pb2_grpc import ProductServiceStub
from pydantic import Field

from gateway.api import Body, Multiline, Page, PageQuery, Reply, operation, service
from gateway.catalog_cache import invalidate_after_writes
from gateway.routes.catalog import MAX_ID, BrandRef, ParamOut, ReviewOut, SpecOut, StockStatus
from services.common import formats
from services.common.auth import REVIEW_MODERATORS, Role

bp = Blueprint("admin_products", __name__, url_prefix="/api/v1/admin/products")
invalidate_after_writes(bp)  # the next shopper read, on any worker, sees the change

EDITORS = (Role.ADMIN, Role.OPERATOR)
AUDITORS = (Role.ADMIN,)
Text = Field(max_length=200)
ProductStatus = Literal["DRAFT", "PENDING_AUDIT", "APPROVED", "REJECTED"]


class ParamIn(Body):
    name: str = Field(min_length=1, max_length=50)
    value: str = Field(max_length=500)


class SpecIn(Body):
    name: str = Field(min_length=1, max_length=20)
    values: list[Annotated[str, Field(min_length=1, max_length=50)]] = Field(min_length=1, max_length=50)


class SkuIn(Body):
    spec: dict[Annotated[str, Field(max_length=20)], Annotated[str, Field(max_length=50)]] = Field(
        max_length=5, description="one value for each declared spec: {\"颜色\": \"黑\"}")
    price_fen: int = Field(ge=1, le=formats.SKU_PRICE_MAX_FEN)
    market_price_fen: int = Field(0, ge=0, le=formats.SKU_PRICE_MAX_FEN,
                                  description="the crossed-out price: 0 = none, else at least price_fen")
    stock: int = Field(0, ge=0, le=10**9, description="initial stock of a new SKU; later changes: the stock route")
    weight_g: int = Field(0, ge=0, le=10**6)


class ProductIn(Body):
    name: str = Field(min_length=1, max_length=100)
    subtitle: str = Field("", max_length=200)
    category_id: int = Field(ge=1, le=MAX_ID)
    brand_id: int = Field(ge=1, le=MAX_ID)
    description: Multiline = Field("", max_length=20_000)
    # Only the shape here: the product service refuses a new or changed image that is not our media or https, and
    # keeps one an edit sends back as stored (saved before that rule, it must not block a rename).
    images: list[Annotated[str, Field(min_length=1, max_length=512)]] = Field(
        default_factory=list, max_length=20, description="our /media/... paths (POST /uploads, by any staff member: "
        "unlike a review's images, not checked for their uploader) or https URLs; an edit may send back a stored "
        "image unchanged (400 PRODUCT_INVALID for a new or changed one)")
    params: list[ParamIn] = Field(default_factory=list, max_length=50)
    specs: list[SpecIn] = Field(default_factory=list, max_length=5)
    skus: list[SkuIn] = Field(min_length=1, max_length=200)
    after_sales_policy: Multiline = Field("", max_length=2000)
    max_per_shopper: int = Field(0, ge=0, le=999, description=(
        "限购: the most units of this product one shopper may hold in orders awaiting payment, paid, shipped or "
        "completed (checkout answers 422 PURCHASE_LIMIT_EXCEEDED beyond it); 0 = no limit"))

    def to_proto(self) -> product_pb2.ProductInput:
        return product_pb2.ProductInput(
            name=self.name, subtitle=self.subtitle, category_id=self.category_id, brand_id=self.brand_id,
            description=self.description, images=self.images,
            params=[product_pb2.Param(name=p.name, value=p.value) for p in self.params],
            specs=[product_pb2.Spec(name=s.name, values=s.values) for s in self.specs],
            skus=[product_pb2.SkuInput(spec=s.spec, price_fen=s.price_fen, market_price_fen=s.market_price_fen,
                                       stock=s.stock, weight_g=s.weight_g) for s in self.skus],
            after_sales_policy=self.after_sales_policy, max_per_shopper=self.max_per_shopper)


class ProductEditIn(ProductIn):
    version: int = Field(ge=1, le=2**31 - 1, description="the product's `version` as the form was read (GET); "
                         "409 PRODUCT_CHANGED when another edit came first")

    def to_request(self, product_id: int) -> product_pb2.UpdateProductRequest:
        return product_pb2.UpdateProductRequest(id=product_id, product=self.to_proto(), version=self.version)


class AuditIn(Body):
    approve: bool
    reason: str = Field("", max_length=500, description="required to reject")
    version: int = Field(ge=1, le=2**31 - 1, description="the product's `version` as the auditor read it (GET); "
                         "409 PRODUCT_CHANGED when it was edited since (reload, audit again)")


class ShelfIn(Body):
    on_shelf: bool


class HideReviewIn(Body):
    reason: str = Field(min_length=1, max_length=200, description="why (spam, abuse, personal data): audited")


class HiddenReviewOut(ReviewOut):
    """The review as shoppers saw it, now hidden."""

    hidden: bool


class StockIn(Body):
    delta: int = Field(ge=-(10**9), le=10**9, json_schema_extra={"not": {"const": 0}},
                       description="+ restock, - write-off, never 0 (400 STOCK_DELTA_INVALID); the stock never goes "
                                   "below 0")
    reason: str = Field("", max_length=200)


class AdminSku(Reply):
    """A SKU with its exact stock (staff only)."""

    id: int
    spec: dict[str, str]
    price_fen: int
    market_price_fen: int
    stock: int
    stock_status: StockStatus
    weight_g: int
    sales: int

    @classmethod
    def from_proto(cls, s: product_pb2.Sku) -> AdminSku:
        return cls(id=s.id, spec=dict(s.spec), price_fen=s.price_fen, market_price_fen=s.market_price_fen,
                   stock=s.stock, stock_status=s.stock_status, weight_g=s.weight_g,  # type: ignore[arg-type]
                   sales=s.sales)


class AdminProductSummary(Reply):
    """A product in the admin list, whatever its status."""

    id: int
    name: str
    subtitle: str
    main_image: str
    status: ProductStatus
    on_shelf: bool
    price_fen: int
    sales: int
    brand: BrandRef
    category_id: int
    updated_at: datetime

    @classmethod
    def from_proto(cls, p: product_pb2.Product) -> AdminProductSummary:
        return cls(id=p.id, name=p.name, subtitle=p.subtitle, main_image=p.images[0] if p.images else "",
                   status=p.status, on_shelf=p.on_shelf, price_fen=p.price_fen,  # type: ignore[arg-type]
                   sales=p.sales, brand=BrandRef(id=p.brand.id, name=p.brand.name), category_id=p.category_id,
                   updated_at=p.updated_at.ToDatetime(tzinfo=UTC))


class AdminProduct(AdminProductSummary):
    """A product as staff edit it: every field, exact stock per SKU."""

    description: str
    images: list[str]
    params: list[ParamOut]
    specs: list[SpecOut]
    skus: list[AdminSku]
    after_sales_policy: str
    reject_reason: str
    market_price_fen: int
    created_at: datetime
    version: int = Field(description="edits so far: a PUT sends back the version it was read at")
    retired_skus: list[AdminSku] = Field(description=(
        "retired SKUs still holding stock (retired with it before edits refused that, or given units back since by a "
        "return or cancellation): write it off with POST .../skus/{sku_id}/stock, or add the spec back to sell it. "
        "Apart from `skus`, so a form sending `skus` back never puts them on sale again"))
    max_per_shopper: int = Field(description="限购: units one shopper may hold in orders; 0 = no limit")

    @classmethod
    def from_proto(cls, p: product_pb2.Product) -> AdminProduct:
        return cls(
            **AdminProductSummary.from_proto(p).model_dump(), description=p.description, images=list(p.images),
            params=[ParamOut(name=x.name, value=x.value) for x in p.params],
            specs=[SpecOut(name=s.name, values=list(s.values)) for s in p.specs],
            skus=[AdminSku.from_proto(s) for s in p.skus], after_sales_policy=p.after_sales_policy,
            reject_reason=p.reject_reason, market_price_fen=p.market_price_fen,
            created_at=p.created_at.ToDatetime(tzinfo=UTC), version=p.version,
            retired_skus=[AdminSku.from_proto(s) for s in p.retired_skus], max_per_shopper=p.max_per_shopper)


class AuditEntryOut(Reply):
    actor: int = Field(description="user id of the staff member (0: the demo seed)")
    action: str
    at: datetime
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class StockMovementOut(Reply):
    """One change of a SKU's stock: units moved per bucket (available + reserved + sold == initial + adjustments)."""

    id: int
    kind: Literal["opening", "initial", "adjust", "reserve", "confirm", "release", "expire", "late_sale", "cancel_paid",
                  "return"]
    available: int
    reserved: int
    sold: int
    reference: str = Field(description="the order number, the after-sales case, or admin:<user id>")
    actor: int = Field(description="user id of the staff member of an initial stock or adjustment (0: a service)")
    reason: str
    at: datetime

    @classmethod
    def from_proto(cls, m: product_pb2.StockMovement) -> StockMovementOut:
        return cls(id=m.id, kind=m.kind, available=m.available, reserved=m.reserved,  # type: ignore[arg-type]
                   sold=m.sold, reference=m.reference, actor=m.actor_id, reason=m.reason,
                   at=m.at.ToDatetime(tzinfo=UTC))


class AdminProductQuery(PageQuery):
    q: str | None = Field(None, max_length=100)
    status: ProductStatus | None = None
    category_id: int | None = Field(None, ge=1, le=MAX_ID)
    brand_id: int | None = Field(None, ge=1, le=MAX_ID)
    sort: Literal["newest", "price_asc", "price_desc", "sales", "relevance"] | None = None


def _stub() -> ProductServiceStub:
    return service(ProductServiceStub)


@bp.post("")
@operation(summary="Create a product (DRAFT) with its SKUs", tag="admin", roles=EDITORS, body=ProductIn,
           responses={201: AdminProduct}, idempotent=True, key_optional=True,
           description="A retry with the same Idempotency-Key and body (after a 503 whose commit went through, "
                       "say) answers the product the first created, as it is now, never a second product; the same "
                       "key with another body is 409 IDEMPOTENCY_KEY_REUSED. Keys are per staff member.")
def create_product(body: ProductIn, idempotency_key: str) -> tuple[AdminProduct, int]:
    reply = _stub().CreateProduct(product_pb2.CreateProductRequest(product=body.to_proto(),
                                                                   idempotency_key=idempotency_key))
    return AdminProduct.from_proto(reply), 201


@bp.get("")
@operation(summary="Search products of any status", tag="admin", roles=EDITORS, query=AdminProductQuery,
           responses={200: Page[AdminProductSummary]})
def search_products(query: AdminProductQuery) -> Page[AdminProductSummary]:
    reply = _stub().SearchAdminProducts(product_pb2.SearchProductsRequest(
        q=query.q or "", status=query.status or "", category_id=query.category_id or 0,
        brand_id=query.brand_id or 0, sort=query.sort or "", offset=query.offset, limit=query.page_size))
    return Page[AdminProductSummary].of([AdminProductSummary.from_proto(p) for p in reply.items], query, reply.total)


@bp.get("/<id:product_id>")
@operation(summary="One product with exact stock", tag="admin", roles=EDITORS, responses={200: AdminProduct})
def get_product(product_id: int) -> AdminProduct:
    return AdminProduct.from_proto(_stub().GetAdminProduct(product_pb2.ProductRef(id=product_id)))


@bp.put("/<id:product_id>")
@operation(summary="Replace a product's content and SKUs", tag="admin", roles=EDITORS, body=ProductEditIn,
           description="An approved product goes back to audit and off the shelf; a rejected one back to draft. "
                       "SKUs are matched by spec: existing ones keep id and stock, missing ones are retired. "
                       "The body's `version` is the one the product was read at (GET): when another edit came "
                       "first the answer is 409 PRODUCT_CHANGED with details.version the current one (reload, "
                       "edit again), and nothing changes. A SKU left out (or its spec renamed) that still holds "
                       "units, in stock or reserved by unpaid orders, is not retired: 409 SKU_HAS_STOCK, "
                       "details.skus listing them (id, spec, stock, reserved); adjust its stock to 0 first.",
           responses={200: AdminProduct})
def update_product(product_id: int, body: ProductEditIn) -> AdminProduct:
    return AdminProduct.from_proto(_stub().UpdateProduct(body.to_request(product_id)))


@bp.post("/<id:product_id>/submit")
@operation(summary="Submit a draft (or rejected) product for audit", tag="admin", roles=EDITORS,
           responses={200: AdminProduct})
def submit_product(product_id: int) -> AdminProduct:
    return AdminProduct.from_proto(_stub().SubmitProduct(product_pb2.ProductRef(id=product_id)))


@bp.post("/<id:product_id>/audit")
@operation(summary="Approve, or reject with a reason, a product waiting for audit", tag="admin", roles=AUDITORS,
           body=AuditIn, responses={200: AdminProduct})
def audit_product(product_id: int, body: AuditIn) -> AdminProduct:
    return AdminProduct.from_proto(_stub().AuditProduct(
        product_pb2.AuditProductRequest(id=product_id, approve=body.approve, reason=body.reason,
                                        version=body.version)))


@bp.post("/<id:product_id>/shelf")
@operation(summary="Put an approved product on the shelf, or take it off", tag="admin", roles=EDITORS,
           body=ShelfIn, responses={200: AdminProduct})
def shelf_product(product_id: int, body: ShelfIn) -> AdminProduct:
    return AdminProduct.from_proto(_stub().SetProductShelf(
        product_pb2.SetProductShelfRequest(id=product_id, on_shelf=body.on_shelf)))


@bp.get("/<id:product_id>/audit-log")
@operation(summary="Every change of a product, newest first: who, when, before and after", tag="admin",
           roles=EDITORS, query=PageQuery, responses={200: Page[AuditEntryOut]})
def product_audit_log(product_id: int, query: PageQuery) -> Page[AuditEntryOut]:
    reply = _stub().ListProductAuditLog(product_pb2.ListProductAuditLogRequest(
        id=product_id, offset=query.offset, limit=query.page_size))
    items = [AuditEntryOut(actor=e.actor_id, action=e.action, at=e.at.ToDatetime(tzinfo=UTC),
                           before=json.loads(e.before_json) if e.before_json else None,
                           after=json.loads(e.after_json) if e.after_json else None) for e in reply.items]
    return Page[AuditEntryOut].of(items, query, reply.total)


@bp.post("/<id:product_id>/skus/<id:sku_id>/stock")
@operation(summary="Adjust a SKU's stock by a delta", tag="admin", roles=EDITORS, body=StockIn,
           responses={200: AdminSku}, idempotent=True, key_optional=True,
           description="A retired SKU (left out by an edit) may be written off, not restocked: 409 SKU_RETIRED. "
                       "A retry with the same Idempotency-Key and body (after a 503 whose commit went through, say) "
                       "answers the SKU as it is now and moves no units again; the same key with another body is "
                       "409 IDEMPOTENCY_KEY_REUSED. Keys are per staff member.")
def adjust_stock(product_id: int, sku_id: int, body: StockIn, idempotency_key: str) -> AdminSku:
    return AdminSku.from_proto(_stub().AdjustStock(product_pb2.AdjustStockRequest(
        product_id=product_id, sku_id=sku_id, delta=body.delta, reason=body.reason,
        idempotency_key=idempotency_key)))


@bp.get("/<id:product_id>/skus/<id:sku_id>/stock-movements")
@operation(summary="A SKU's stock ledger, newest first", tag="admin", roles=EDITORS, query=PageQuery,
           description="Every change of the SKU's stock (initial stock, adjustments, reservations, sales, "
                       "releases, returns) with the units it moved per bucket and what caused it.",
           responses={200: Page[StockMovementOut]})
def stock_movements(product_id: int, sku_id: int, query: PageQuery) -> Page[StockMovementOut]:
    reply = _stub().ListStockMovements(product_pb2.ListStockMovementsRequest(
        product_id=product_id, sku_id=sku_id, offset=query.offset, limit=query.page_size))
    return Page[StockMovementOut].of([StockMovementOut.from_proto(m) for m in reply.items], query, reply.total)


@bp.post("/<id:product_id>/reviews/<id:review_id>/hide")
@operation(summary="Hide a review of the product (moderation)", tag="admin", roles=REVIEW_MODERATORS, body=HideReviewIn,
           description="Takes the review off the product's page and out of its rating summary, once (hiding it again "
                       "changes nothing); its author still sees it, marked hidden. In the product's audit log "
                       "(hide_review, who, the reason). 404 REVIEW_NOT_FOUND when it is not this product's.",
           responses={200: HiddenReviewOut})
def hide_review(product_id: int, review_id: int, body: HideReviewIn) -> HiddenReviewOut:
    review = _stub().HideReview(product_pb2.HideReviewRequest(product_id=product_id, id=review_id,
                                                              reason=body.reason))
    return HiddenReviewOut(**ReviewOut.fields_of(review), hidden=review.hidden)
