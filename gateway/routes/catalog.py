"""Shopper catalogue: categories, brands, product list and search, product detail, catalogue images."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response, g, request
from mall.product.v1 import product_pb2
from mall.product.v1.product_pb2_grpc import ProductServiceStub
from pydantic import Field

from gateway.api import OPTIONAL, PUBLIC, Page, PageQuery, Query, Reply, operation, service
from gateway.catalog_cache import Rendered, cached, catalog_cache

bp = Blueprint("catalog", __name__, url_prefix="/api/v1")

MAX_ID = 999_999_999_999_999_999
MAX_FEN = 10**12
Id = Field(None, ge=1, le=MAX_ID)
Fen = Field(None, ge=0, le=MAX_FEN)
StockStatus = Literal["in_stock", "low", "sold_out"]
# Seconds a client or CDN may reuse a catalogue answer without asking again. Products carry stock
# status and price, so at most a second; the category tree and brands change rarely.
MAX_AGE = {"catalog.list_categories": 60, "catalog.list_brands": 60, "catalog.list_products": 1}


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
    average: float
    count: int


class DeliveryOut(Reply):
    province: str = Field(description="the destination asked for; empty: the default estimate")
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

    @classmethod
    def from_proto(cls, p: product_pb2.Product) -> ProductDetail:
        return cls(
            **ProductSummary.from_proto(p).model_dump(), description=p.description, images=list(p.images),
            params=[ParamOut(name=x.name, value=x.value) for x in p.params],
            specs=[SpecOut(name=s.name, values=list(s.values)) for s in p.specs],
            skus=[SkuOut(id=s.id, spec=dict(s.spec), price_fen=s.price_fen, market_price_fen=s.market_price_fen,
                         stock_status=s.stock_status) for s in p.skus],  # type: ignore[arg-type]
            rating=RatingOut(average=p.rating.average, count=p.rating.count),
            after_sales_policy=p.after_sales_policy,
            delivery=DeliveryOut(province=p.delivery.province, estimate_days=p.delivery.estimate_days))


class CatalogQuery(PageQuery):
    category_id: int | None = Field(None, ge=1, le=MAX_ID, description="includes its sub-categories")
    brand_id: int | None = Id
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
    province: str | None = Field(None, max_length=32, description="destination province for the delivery estimate")


@bp.get("/categories")
@operation(summary="The category tree", tag="catalog", access=PUBLIC, responses={200: CategoryTree})
def list_categories() -> Response:
    def load() -> CategoryTree:
        reply = service(ProductServiceStub).ListCategories(product_pb2.ListCategoriesRequest())
        return CategoryTree(items=[CategoryOut.from_proto(c) for c in reply.items])
    return cached("categories", load)


@bp.get("/brands")
@operation(summary="Every brand", tag="catalog", access=PUBLIC, responses={200: BrandList})
def list_brands() -> Response:
    def load() -> BrandList:
        reply = service(ProductServiceStub).ListBrands(product_pb2.ListBrandsRequest())
        return BrandList(items=[BrandOut(id=b.id, name=b.name, logo=b.logo) for b in reply.items])
    return cached("brands", load)


@bp.get("/products")
@operation(summary="On-shelf products: filter, search, sort, page", tag="catalog", access=PUBLIC,
           query=CatalogQuery, responses={200: Page[ProductSummary]})
def list_products(query: CatalogQuery) -> Response:
    def load() -> Page[ProductSummary]:
        reply = service(ProductServiceStub).SearchProducts(query.to_proto())
        return Page[ProductSummary].of([ProductSummary.from_proto(p) for p in reply.items], query, reply.total)
    return cached(("products", query.model_dump_json()), load)


@bp.get("/products/<id:product_id>")
@operation(summary="A product's detail", tag="catalog", access=OPTIONAL, query=DetailQuery,
           description="With a shopper's token the view is recorded (browsing history).",
           responses={200: ProductDetail})
def get_product(product_id: int, query: DetailQuery) -> Response:
    key = ("product", product_id, query.province or "")

    def load() -> ProductDetail:
        reply = service(ProductServiceStub).ViewProduct(
            product_pb2.ViewProductRequest(id=product_id, province=query.province or ""))
        return ProductDetail.from_proto(reply)
    if g.caller is None:
        return cached(key, load)
    # A shopper's view goes to the product service, which records it (product-viewed); the reply
    # is the same for everyone, so it refreshes the cache. An error (404) is never cached.
    version = catalog_cache().versions.current()
    detail = Rendered.of(load())
    catalog_cache().put(key, detail, version)
    return detail.response()


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
    return response.make_conditional(request)
