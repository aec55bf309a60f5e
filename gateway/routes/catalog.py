"""Shopper catalogue: categories, brands, product list and search, product detail, reviews."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import grpc
from flask import Blueprint, Response, g, request
from mall.order.v1 import order_pb2
from mall.order.v1.order_pb2_grpc import OrderServiceStub
from mall.product.v1 import product_pb2
from mall.product.v1.product_pb2_grpc import ProductServiceStub
from mall.user.v1 import user_pb2
from mall.user.v1.user_pb2_grpc import UserServiceStub
from pydantic import Field

from gateway.api import (
    MAX_ID,
    OPTIONAL,
    PUBLIC,
    Body,
    Multiline,
    Page,
    PageQuery,
    ProvinceOrEmpty,
    Query,
    Reply,
    conditional,
    enforce_limits,
    operation,
    service,
)
from gateway.catalog_cache import SETTINGS, Rendered, cached, catalog_cache
from gateway.errors import ApiError
from gateway.ratelimit import Limit
from gateway.uploads import require_own_uploads
from services.common import formats
from services.common.formats import anchored
from services.common.grpc_server import from_grpc

bp = Blueprint("catalog", __name__, url_prefix="/api/v1")

MAX_FEN = 10**12
OptionalId = Field(None, ge=1, le=MAX_ID)
Fen = Field(None, ge=0, le=MAX_FEN)
StockStatus = Literal["in_stock", "low", "sold_out"]
# Seconds a client or CDN may reuse a catalogue answer without asking again. Products carry stock
# status and price, so at most a second; the category tree and brands change rarely.
MAX_AGE = {"catalog.list_categories": 60, "catalog.list_brands": 60, "catalog.list_products": 1}
# Reads that reach the product service (a page not in the worker's cache, a signed-in view, a review page: a search
# and a count each), per route: a shopper's browsing makes a few a minute, a carrier NAT address holds many shoppers.
# Cached pages are not counted (a hit costs no rate-limit round trip), so junk queries cannot crowd out hot ones.
CATALOG_READ_LIMITS = (Limit("ip", 300, 60), Limit("ipv6_48", 1500, 60))
CATALOG_READ_LIMITS_TEXT = (
    "Reads that reach the product service (a page the gateway has not cached, a signed-in view) count against "
    + ", ".join(f"{lim.count} a minute per {'IPv6 /48' if lim.key == 'ipv6_48' else 'address'}"
                for lim in CATALOG_READ_LIMITS)
    + " (429 RATE_LIMITED with Retry-After); cached pages do not.")


class CategoryOut(Reply):
    id: int
    name: str
    icon: str
    children: list[CategoryOut]

    @classmethod
    def from_proto(cls, category: product_pb2.Category) -> CategoryOut:
        return cls(id=category.id, name=category.name, icon=category.icon,
                   children=[cls.from_proto(child) for child in category.children])


class CategoryTree(Reply):
    """The category tree: roots, each with its children."""

    items: list[CategoryOut]


class BrandOut(Reply):
    id: int
    name: str
    logo: str


class BrandList(Reply):
    """Every brand."""

    items: list[BrandOut]


class BrandRef(Reply):
    id: int
    name: str


class ProductSummary(Reply):
    """A product in a list."""

    id: int
    name: str
    subtitle: str
    main_image: str
    price_fen: int = Field(description="the lowest SKU price")
    market_price_fen: int
    sales: int
    brand: BrandRef
    category_id: int

    @classmethod
    def from_proto(cls, p: product_pb2.Product) -> ProductSummary:
        return cls(id=p.id, name=p.name, subtitle=p.subtitle, main_image=p.images[0] if p.images else "",
                   price_fen=p.price_fen, market_price_fen=p.market_price_fen, sales=p.sales,
                   brand=BrandRef(id=p.brand.id, name=p.brand.name), category_id=p.category_id)


class ParamOut(Reply):
    name: str
    value: str


class SpecOut(Reply):
    name: str
    values: list[str]


class SkuOut(Reply):
    id: int
    spec: dict[str, str]
    price_fen: int
    market_price_fen: int
    stock_status: StockStatus


class RatingOut(Reply):
    """A product's rating summary (all reviews, kept up to date as each one is posted)."""

    average: float = Field(description="mean stars to one decimal (4.3); 0 without reviews")
    average_tenths: int = Field(description="the same mean in tenths of a star, an exact integer (43)")
    count: int
    distribution: dict[str, int] = Field(description='reviews per star rating: {"1": n, ..., "5": n}')

    @classmethod
    def from_proto(cls, rating: product_pb2.Rating) -> RatingOut:
        counts = list(rating.distribution) or [0] * 5
        return cls(average=rating.average_tenths / 10, average_tenths=rating.average_tenths, count=rating.count,
                   distribution={str(stars): n for stars, n in enumerate(counts, start=1)})


class DeliveryOut(Reply):
    province: str = Field(description="the destination asked for, by its full name (上海市); empty: the default "
                                      "estimate")
    estimate_days: int


class ProductDetail(ProductSummary):
    """A product's detail page: SKUs show a stock status, never a count."""

    description: str
    images: list[str]
    params: list[ParamOut]
    specs: list[SpecOut]
    skus: list[SkuOut]
    rating: RatingOut
    after_sales_policy: str
    delivery: DeliveryOut
    max_per_shopper: int = Field(description="限购: the most units of this product one shopper may buy (counting "
                                             "their orders awaiting payment, paid, shipped or completed); 0 = no limit")

    @classmethod
    def from_proto(cls, p: product_pb2.Product) -> ProductDetail:
        return cls(
            **ProductSummary.from_proto(p).model_dump(), description=p.description, images=list(p.images),
            params=[ParamOut(name=x.name, value=x.value) for x in p.params],
            specs=[SpecOut(name=s.name, values=list(s.values)) for s in p.specs],
            skus=[SkuOut(id=s.id, spec=dict(s.spec), price_fen=s.price_fen, market_price_fen=s.market_price_fen,
                         stock_status=s.stock_status) for s in p.skus],  # type: ignore[arg-type]
            rating=RatingOut.from_proto(p.rating),
            after_sales_policy=p.after_sales_policy,
            delivery=DeliveryOut(province=p.delivery.province, estimate_days=p.delivery.estimate_days),
            max_per_shopper=p.max_per_shopper)


class CatalogQuery(PageQuery):
    category_id: int | None = Field(None, ge=1, le=MAX_ID, description="includes its sub-categories")
    brand_id: int | None = OptionalId
    price_min_fen: int | None = Fen
    price_max_fen: int | None = Fen
    q: str | None = Field(None, max_length=100, description="keywords (Chinese segmented); ranks by relevance")
    sort: Literal["newest", "price_asc", "price_desc", "sales", "relevance"] | None = Field(
        None, description="default: relevance with q, else newest")

    def to_proto(self) -> product_pb2.SearchProductsRequest:
        return product_pb2.SearchProductsRequest(
            category_id=self.category_id or 0, brand_id=self.brand_id or 0, price_min_fen=self.price_min_fen or 0,
            price_max_fen=self.price_max_fen or 0, q=self.q or "", sort=self.sort or "", offset=self.offset,
            limit=self.page_size)


class DetailQuery(Query):
    province: ProvinceOrEmpty = Field(
        "", description="destination of the delivery estimate: a province by its full name (上海市, as addresses and "
                        "WeChat's region picker name it) or its short one (上海); the answer names it in full. Empty "
                        "or left out: the default estimate; any other text is 400")


@bp.get("/categories")
@operation(summary="The category tree", tag="catalog", access=PUBLIC, responses={200: CategoryTree})
def list_categories() -> Response:
    def load() -> CategoryTree:
        reply = service(ProductServiceStub).ListCategories(product_pb2.ListCategoriesRequest())
        return CategoryTree(items=[CategoryOut.from_proto(c) for c in reply.items])
    return cached("categories", load, about=SETTINGS)


@bp.get("/brands")
@operation(summary="Every brand", tag="catalog", access=PUBLIC, responses={200: BrandList})
def list_brands() -> Response:
    def load() -> BrandList:
        reply = service(ProductServiceStub).ListBrands(product_pb2.ListBrandsRequest())
        return BrandList(items=[BrandOut(id=b.id, name=b.name, logo=b.logo) for b in reply.items])
    return cached("brands", load, about=SETTINGS)


@bp.get("/products")
@operation(summary="On-shelf products: filter, search, sort, page", tag="catalog", access=PUBLIC,
           query=CatalogQuery, responses={200: Page[ProductSummary]}, description=CATALOG_READ_LIMITS_TEXT)
def list_products(query: CatalogQuery) -> Response:
    def load() -> Page[ProductSummary]:
        reply = service(ProductServiceStub).SearchProducts(query.to_proto())
        return Page[ProductSummary].of([ProductSummary.from_proto(p) for p in reply.items], query, reply.total)
    return cached(("products", query.model_dump_json()), load, limits=CATALOG_READ_LIMITS)


@bp.get("/products/<id:product_id>")
@operation(summary="A product's detail", tag="catalog", access=OPTIONAL, query=DetailQuery,
           description="With a shopper's token the view is recorded (browsing history). " + CATALOG_READ_LIMITS_TEXT,
           responses={200: ProductDetail})
def get_product(product_id: int, query: DetailQuery) -> Response:
    key = ("product", product_id, query.province)  # by full name: 上海 and 上海市 share a page

    def load() -> ProductDetail:
        reply = service(ProductServiceStub).ViewProduct(
            product_pb2.ViewProductRequest(id=product_id, province=query.province))
        return ProductDetail.from_proto(reply)
    if g.caller is None:
        return cached(key, load, about=product_id, limits=CATALOG_READ_LIMITS)
    # A shopper's view goes to the product service, which records it (product-viewed); the reply
    # is the same for everyone, so it refreshes the cache. An error (404) is never cached.
    enforce_limits(CATALOG_READ_LIMITS)
    version = catalog_cache().version()
    detail = Rendered.of(load())
    catalog_cache().put(key, detail, version, about=product_id)
    return detail.response()


# -- reviews (P5, U9) ---------------------------------------------------------------------------

class ReviewIn(Body):
    """1-5 stars, optional text up to 500 characters, up to 9 images uploaded with POST /uploads."""

    rating: int = Field(ge=1, le=5)
    content: Multiline = Field("", max_length=formats.REVIEW_CONTENT_MAX)
    images: list[Annotated[str, Field(pattern=anchored(formats.UPLOAD_URL))]] = Field(
        default_factory=list, max_length=formats.MAX_REVIEW_IMAGES,
        description="URLs POST /uploads answered me (another user's upload, or one from before uploads were signed "
                    "for their uploader: 400 UPLOAD_NOT_YOURS)")


class ReviewOut(Reply):
    """A review: the buyer's nickname masked, the SKU's spec as it was bought."""

    id: int
    product_id: int
    sku_id: int
    spec: dict[str, str]
    rating: int
    content: str
    images: list[str]
    buyer: str = Field(description="masked: 张*** (first character of the nickname) or 用户***")
    created_at: datetime

    @classmethod
    def fields_of(cls, review: product_pb2.Review) -> dict[str, Any]:
        return {"id": review.id, "product_id": review.product_id, "sku_id": review.sku_id, "spec": dict(review.spec),
                "rating": review.rating, "content": review.content, "images": list(review.images),
                "buyer": review.buyer, "created_at": review.created_at.ToDatetime(tzinfo=UTC)}


class MyReviewOut(ReviewOut):
    """One of my reviews, with the order line it reviews."""

    order_no: str = Field(description="GET /orders?order_no= finds the order")
    line_id: int
    hidden: bool = Field(description="hidden by staff (moderation): not on the product's page, not in its rating")

    @classmethod
    def from_proto(cls, review: product_pb2.Review) -> MyReviewOut:
        return cls(**cls.fields_of(review), order_no=review.order_no, line_id=review.line_id, hidden=review.hidden)


class ProductReviews(Page[ReviewOut]):
    """One page of a product's reviews, newest first, and its rating summary."""

    rating: RatingOut


@bp.post("/orders/<id:order_id>/lines/<id:line_id>/review")
@operation(summary="Review a line of my completed order (once)", tag="reviews", body=ReviewIn,
           responses={201: MyReviewOut},
           description="404 when the order is not mine or has no such line; 409 REVIEW_NOT_ELIGIBLE when the line "
                       "cannot be reviewed (yet), `details.reason` saying whether to retry: `completing` (the order "
                       "is COMPLETED and its completion reaches the product service within moments: retry shortly), "
                       "`refunded` (the line was refunded in full before the order completed: never reviewable, do "
                       "not retry), `not_completed` (the order is not COMPLETED yet, `details.status`: a SHIPPED "
                       "one once I confirm receipt; a cancelled or refunded one never); 409 REVIEW_EXISTS for a "
                       "second review of the line; 400 REVIEW_INVALID / INVALID_REQUEST with details per field; 400 "
                       "UPLOAD_NOT_YOURS (details images.N) for an image I did not upload.")
def post_review(order_id: int, line_id: int, body: ReviewIn) -> tuple[MyReviewOut, int]:
    require_own_uploads(body.images)
    order = service(OrderServiceStub).GetOrder(order_pb2.GetOrderRequest(id=order_id))  # a stranger's: 404
    line = next((line for line in order.lines if line.id == line_id), None)
    if line is None:
        raise ApiError(404, "ORDER_LINE_NOT_FOUND", "this order has no such line")
    nickname = service(UserServiceStub).GetProfile(user_pb2.GetProfileRequest()).nickname
    try:
        review = service(ProductServiceStub).CreateReview(product_pb2.CreateReviewRequest(
            order_no=order.order_no, line_id=line_id, rating=body.rating, content=body.content, images=body.images,
            buyer_nickname=nickname))
    except grpc.RpcError as exc:
        if from_grpc(exc)[1] == "REVIEW_NOT_ELIGIBLE":
            raise not_eligible(order, line) from exc
        raise
    return MyReviewOut.from_proto(review), 201


def not_eligible(order: order_pb2.Order, line: order_pb2.OrderLine) -> ApiError:
    """Why the product service does not know the line as reviewable, from the order read as the caller: it knows only
    the lines order-completed listed (services/product/reviews.py), which leaves out lines refunded in full, and it
    learns of them moments after the order completes. Only the last is worth a retry."""
    if line.refunded_quantity >= line.quantity:
        # A line refunded in full after completion stays reviewable (the product service accepts it, never here).
        return ApiError(409, "REVIEW_NOT_ELIGIBLE", "this line was refunded in full before the order completed: "
                        "there is nothing of it to review", {"reason": "refunded"})
    if order.status != "COMPLETED":
        return ApiError(409, "REVIEW_NOT_ELIGIBLE", "only a line of a completed order can be reviewed"
                        + ("; confirm receipt first" if order.status == "SHIPPED" else ""),
                        {"reason": "not_completed", "status": order.status})
    return ApiError(409, "REVIEW_NOT_ELIGIBLE", "the order's completion is still on its way; try again in a moment",
                    {"reason": "completing"})


@bp.get("/products/<id:product_id>/reviews")
@operation(summary="A product's reviews, newest first, with its rating summary", tag="reviews", access=PUBLIC,
           query=PageQuery, responses={200: ProductReviews}, limits=CATALOG_READ_LIMITS)
def list_product_reviews(product_id: int, query: PageQuery) -> ProductReviews:
    reply = service(ProductServiceStub).ListProductReviews(product_pb2.ListProductReviewsRequest(
        product_id=product_id, offset=query.offset, limit=query.page_size))
    return ProductReviews(items=[ReviewOut(**ReviewOut.fields_of(r)) for r in reply.items], page=query.page,
                          page_size=query.page_size, total=reply.total, rating=RatingOut.from_proto(reply.rating))


@bp.after_request
def _conditional(response: Response) -> Response:
    """ETag on every catalogue read, so an unchanged answer costs a 304 and no body."""
    if request.method != "GET" or response.status_code != 200:
        return response
    response.add_etag()
    if request.endpoint in MAX_AGE and "Authorization" not in request.headers:
        response.cache_control.public = True
        response.cache_control.max_age = MAX_AGE[request.endpoint]
    else:  # a detail view may be a logged-in one, which must reach the gateway to be recorded
        response.cache_control.no_cache = True
        response.cache_control.private = True
    return conditional(response)
