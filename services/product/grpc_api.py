"""ProductService servicer: protobuf in, use case, protobuf out. Errors are mapped by the interceptor."""

from __future__ import annotations

import json
from collections.abc import Callable

import grpc
from mall.product.v1 import product_pb2, product_pb2_grpc

from services.common.auth import REVIEW_MODERATORS, Role, caller_var, require_caller, require_service
from services.common.events import timestamp
from services.common.grpc_server import page as grpc_page
from services.common.logs import mask_pii
from services.product import reviews, service
from services.product.domain import (
    AuditEntry,
    Brand,
    ProductDraft,
    RatingSummary,
    Review,
    ReviewDraft,
    SettingsAuditEntry,
    Sku,
    SkuDraft,
    SkuOffer,
    StockLine,
    StockMovement,
    stock_status,
)
from services.product.service import CategoryNode, ProductPage, ProductView
from services.product.uow import ProductUnitOfWork

EDITORS = (Role.OPERATOR, Role.ADMIN)
AUDITORS = (Role.ADMIN,)
STOCK_CALLERS = ("order",)  # services that reserve and release stock (as themselves)


class ProductServicer(product_pb2_grpc.ProductServiceServicer):
    def __init__(self, uow: Callable[[], ProductUnitOfWork]) -> None:
        self.uow = uow

    # Catalogue

    def ListCategories(self, request: product_pb2.ListCategoriesRequest,
                       context: grpc.ServicerContext) -> product_pb2.ListCategoriesResponse:
        return product_pb2.ListCategoriesResponse(items=[_category(node) for node in service.list_categories(self.uow())])

    def ListBrands(self, request: product_pb2.ListBrandsRequest,
                   context: grpc.ServicerContext) -> product_pb2.ListBrandsResponse:
        return product_pb2.ListBrandsResponse(items=[_brand(b) for b in service.list_brands(self.uow())])

    def SearchProducts(self, request: product_pb2.SearchProductsRequest,
                       context: grpc.ServicerContext) -> product_pb2.SearchProductsResponse:
        return _page(_search(self.uow(), request, staff=False), staff=False)

    def ViewProduct(self, request: product_pb2.ViewProductRequest, context: grpc.ServicerContext) -> product_pb2.Product:
        caller = caller_var.get()
        view = service.view_product(self.uow(), product_id=request.id, province=request.province,
                                    viewer_id=caller.user_id if caller else None)
        return product_message(view, staff=False)

    def GetSkus(self, request: product_pb2.GetSkusRequest, context: grpc.ServicerContext) -> product_pb2.GetSkusResponse:
        # The exact stock only to the service that reserves it (its checkout preview refuses what a reservation
        # would): anyone else, a shopper's token included, reads the status alone, as on the product page.
        caller = caller_var.get()
        exact = caller is not None and caller.is_service and caller.service in STOCK_CALLERS
        return product_pb2.GetSkusResponse(skus=[_offer(offer, exact_stock=exact)
                                                 for offer in service.get_skus(self.uow(), sku_ids=request.sku_ids)])

    # Staff

    def CreateProduct(self, request: product_pb2.CreateProductRequest,
                      context: grpc.ServicerContext) -> product_pb2.Product:
        caller = require_caller(*EDITORS)
        return product_message(service.create_product(self.uow(), actor_id=caller.user_id,
                                                      draft=_draft(request.product),
                                                      idempotency_key=request.idempotency_key), staff=True)

    def UpdateProduct(self, request: product_pb2.UpdateProductRequest,
                      context: grpc.ServicerContext) -> product_pb2.Product:
        caller = require_caller(*EDITORS)
        return product_message(service.update_product(self.uow(), actor_id=caller.user_id, product_id=request.id,
                                                      draft=_draft(request.product), version=request.version),
                               staff=True)

    def SubmitProduct(self, request: product_pb2.ProductRef, context: grpc.ServicerContext) -> product_pb2.Product:
        caller = require_caller(*EDITORS)
        return product_message(service.submit_product(self.uow(), actor_id=caller.user_id, product_id=request.id),
                               staff=True)

    def AuditProduct(self, request: product_pb2.AuditProductRequest,
                     context: grpc.ServicerContext) -> product_pb2.Product:
        caller = require_caller(*AUDITORS)
        return product_message(service.audit_product(self.uow(), actor_id=caller.user_id, product_id=request.id,
                                                     approve=request.approve, reason=request.reason,
                                                     version=request.version), staff=True)

    def SetProductShelf(self, request: product_pb2.SetProductShelfRequest,
                        context: grpc.ServicerContext) -> product_pb2.Product:
        caller = require_caller(*EDITORS)
        return product_message(service.set_shelf(self.uow(), actor_id=caller.user_id, product_id=request.id,
                                                 on_shelf=request.on_shelf), staff=True)

    def GetAdminProduct(self, request: product_pb2.ProductRef, context: grpc.ServicerContext) -> product_pb2.Product:
        require_caller(*EDITORS)
        return product_message(service.get_admin_product(self.uow(), product_id=request.id), staff=True)

    def SearchAdminProducts(self, request: product_pb2.SearchProductsRequest,
                            context: grpc.ServicerContext) -> product_pb2.SearchProductsResponse:
        require_caller(*EDITORS)
        return _page(_search(self.uow(), request, staff=True), staff=True)

    def ListProductAuditLog(self, request: product_pb2.ListProductAuditLogRequest,
                            context: grpc.ServicerContext) -> product_pb2.ListProductAuditLogResponse:
        require_caller(*EDITORS)
        entries, total = service.audit_log(self.uow(), product_id=request.id, offset=request.offset,
                                           limit=request.limit or 20)
        return product_pb2.ListProductAuditLogResponse(items=[_audit_entry(e) for e in entries], total=total)

    def AdjustStock(self, request: product_pb2.AdjustStockRequest, context: grpc.ServicerContext) -> product_pb2.Sku:
        caller = require_caller(*EDITORS)
        sku = service.adjust_stock(self.uow(), actor_id=caller.user_id, product_id=request.product_id,
                                   sku_id=request.sku_id, delta=request.delta, reason=request.reason,
                                   idempotency_key=request.idempotency_key)
        return _sku(sku, staff=True)

    def ListStockMovements(self, request: product_pb2.ListStockMovementsRequest,
                           context: grpc.ServicerContext) -> product_pb2.ListStockMovementsResponse:
        require_caller(*EDITORS)
        items, total = service.stock_movements(self.uow(), product_id=request.product_id, sku_id=request.sku_id,
                                               offset=request.offset, limit=request.limit or 20)
        return product_pb2.ListStockMovementsResponse(items=[_movement(m) for m in items], total=total)

    # Staff: catalogue settings

    def SaveCategory(self, request: product_pb2.SaveCategoryRequest,
                     context: grpc.ServicerContext) -> product_pb2.Category:
        caller = require_caller(*EDITORS)
        category = service.save_category(self.uow(), actor_id=caller.user_id, category_id=request.id,
                                         name=request.name, parent_id=request.parent_id, icon=request.icon,
                                         sort=request.sort, idempotency_key=request.idempotency_key)
        return _category(CategoryNode(category))

    def SaveBrand(self, request: product_pb2.SaveBrandRequest, context: grpc.ServicerContext) -> product_pb2.Brand:
        caller = require_caller(*EDITORS)
        return _brand(service.save_brand(self.uow(), actor_id=caller.user_id, brand_id=request.id, name=request.name,
                                         logo=request.logo, idempotency_key=request.idempotency_key))

    def ListDeliveryEstimates(self, request: product_pb2.ListDeliveryEstimatesRequest,
                              context: grpc.ServicerContext) -> product_pb2.ListDeliveryEstimatesResponse:
        require_caller(*EDITORS)
        return product_pb2.ListDeliveryEstimatesResponse(items=[
            product_pb2.DeliveryEstimate(province=d.province, estimate_days=d.estimate_days)
            for d in service.delivery_estimates(self.uow())])

    def SetDeliveryEstimate(self, request: product_pb2.DeliveryEstimate,
                            context: grpc.ServicerContext) -> product_pb2.DeliveryEstimate:
        caller = require_caller(*EDITORS)
        saved = service.set_delivery_estimate(self.uow(), actor_id=caller.user_id, province=request.province,
                                              days=request.estimate_days)
        return product_pb2.DeliveryEstimate(province=saved.province, estimate_days=saved.estimate_days)

    def ListSettingsAuditLog(self, request: product_pb2.ListSettingsAuditLogRequest,
                             context: grpc.ServicerContext) -> product_pb2.ListSettingsAuditLogResponse:
        require_caller(*EDITORS)
        entries, total = service.settings_audit_log(self.uow(), entity=request.entity, offset=request.offset,
                                                    limit=request.limit or 20)
        return product_pb2.ListSettingsAuditLogResponse(items=[_settings_entry(e) for e in entries], total=total)

    # Inventory: only the order service, calling as itself (a shopper's token is refused)

    def ReserveStock(self, request: product_pb2.ReserveStockRequest,
                     context: grpc.ServicerContext) -> product_pb2.ReserveStockResponse:
        require_service(*STOCK_CALLERS)
        result = service.reserve_stock(self.uow(), order_no=request.order_no,
                                       lines=[StockLine(line.sku_id, line.quantity) for line in request.lines])
        reply = product_pb2.ReserveStockResponse(
            order_no=result.order_no, status=result.status,
            lines=[product_pb2.StockLine(sku_id=line.sku_id, quantity=line.quantity) for line in result.lines],
            skus=[_offer(offer) for offer in result.offers])
        if result.expires_at is not None:
            reply.expires_at.CopyFrom(timestamp(result.expires_at))
        return reply

    def ReleaseReservation(self, request: product_pb2.ReservationRef,
                           context: grpc.ServicerContext) -> product_pb2.ReservationResponse:
        require_service(*STOCK_CALLERS)
        status = service.release_reservation(self.uow(), order_no=request.order_no)
        return product_pb2.ReservationResponse(order_no=request.order_no, status=status)

    # Reviews

    def CreateReview(self, request: product_pb2.CreateReviewRequest,
                     context: grpc.ServicerContext) -> product_pb2.Review:
        caller = require_caller()
        review = reviews.post_review(
            self.uow(), user_id=caller.user_id, order_no=request.order_no, line_id=request.line_id,
            draft=ReviewDraft(rating=request.rating, content=request.content, images=tuple(request.images)),
            buyer_nickname=request.buyer_nickname)
        return _review(review, own=True)

    def ListProductReviews(self, request: product_pb2.ListProductReviewsRequest,
                           context: grpc.ServicerContext) -> product_pb2.ListReviewsResponse:
        page = reviews.product_reviews(self.uow(), product_id=request.product_id, offset=request.offset,
                                       limit=request.limit or 20)
        return product_pb2.ListReviewsResponse(items=[_review(r, own=False) for r in page.items], total=page.total,
                                               rating=_rating(page.summary or RatingSummary()))

    def HideReview(self, request: product_pb2.HideReviewRequest,
                   context: grpc.ServicerContext) -> product_pb2.Review:
        caller = require_caller(*REVIEW_MODERATORS)
        return _review(reviews.hide_review(self.uow(), actor_id=caller.user_id, product_id=request.product_id,
                                           review_id=request.id, reason=request.reason), own=False)

    def UnhideReview(self, request: product_pb2.UnhideReviewRequest,
                     context: grpc.ServicerContext) -> product_pb2.Review:
        caller = require_caller(*REVIEW_MODERATORS)
        return _staff_review(reviews.unhide_review(self.uow(), actor_id=caller.user_id, review_id=request.id,
                                                   reason=request.reason))

    def ListReviews(self, request: product_pb2.ListReviewsRequest,
                    context: grpc.ServicerContext) -> product_pb2.ListReviewsResponse:
        require_caller(*REVIEW_MODERATORS)
        page = reviews.staff_reviews(self.uow(), product_id=request.product_id, rating=request.rating,
                                     hidden=request.hidden if request.HasField("hidden") else None, **grpc_page(request))
        return product_pb2.ListReviewsResponse(items=[_staff_review(r) for r in page.items], total=page.total)

    def ListMyReviews(self, request: product_pb2.ListMyReviewsRequest,
                      context: grpc.ServicerContext) -> product_pb2.ListReviewsResponse:
        caller = require_caller()
        page = reviews.my_reviews(self.uow(), user_id=caller.user_id, order_no=request.order_no, offset=request.offset,
                                  limit=request.limit or 20)
        return product_pb2.ListReviewsResponse(items=[_review(r, own=True) for r in page.items], total=page.total)


def _search(uow: ProductUnitOfWork, request: product_pb2.SearchProductsRequest, *, staff: bool) -> ProductPage:
    return service.search_products(
        uow, category_id=request.category_id, brand_id=request.brand_id, price_min_fen=request.price_min_fen,
        price_max_fen=request.price_max_fen, q=request.q, sort=request.sort, offset=request.offset,
        limit=request.limit or 20, staff=staff, status=request.status if staff else "", ids=request.ids)


def _page(page: ProductPage, *, staff: bool) -> product_pb2.SearchProductsResponse:
    return product_pb2.SearchProductsResponse(items=[product_message(v, staff=staff) for v in page.items],
                                              total=page.total)


def _category(node: CategoryNode) -> product_pb2.Category:
    return product_pb2.Category(id=node.category.id or 0, name=node.category.name, icon=node.category.icon,
                                parent_id=node.category.parent_id or 0, sort=node.category.sort,
                                children=[_category(child) for child in node.children])


def _brand(brand: Brand) -> product_pb2.Brand:
    return product_pb2.Brand(id=brand.id or 0, name=brand.name, logo=brand.logo)


def _offer(offer: SkuOffer, *, exact_stock: bool = False) -> product_pb2.SkuOffer:
    return product_pb2.SkuOffer(sku=_sku(offer.sku, staff=exact_stock), product_id=offer.product_id, name=offer.name,
                                on_sale=offer.on_sale, category_id=offer.category_id, brand_id=offer.brand_id,
                                image=offer.image, category_path=offer.category_path,
                                max_per_shopper=offer.max_per_shopper)


def _sku(sku: Sku, *, staff: bool) -> product_pb2.Sku:
    return product_pb2.Sku(id=sku.id or 0, spec=sku.spec, price_fen=sku.price_fen,
                           market_price_fen=sku.market_price_fen, stock=sku.stock if staff else 0,
                           stock_status=stock_status(sku.stock), weight_g=sku.weight_g, sales=sku.sales)


def product_message(view: ProductView, *, staff: bool) -> product_pb2.Product:
    """A product as a reply; exact stock only for staff."""
    p = view.product
    message = product_pb2.Product(
        id=p.id or 0, name=p.name, subtitle=p.subtitle, category_id=p.category_id, brand=_brand(view.brand),
        description=p.description, images=p.images,
        params=[product_pb2.Param(name=param["name"], value=param["value"]) for param in p.params],
        specs=[product_pb2.Spec(name=spec["name"], values=spec["values"]) for spec in p.specs],
        skus=[_sku(sku, staff=staff) for sku in p.active_skus], after_sales_policy=p.after_sales_policy,
        status=str(p.status), on_shelf=p.on_shelf, reject_reason=p.reject_reason, price_fen=p.price_fen,
        market_price_fen=p.market_price_fen, sales=p.sales,
        rating=_rating(view.rating), version=p.version if staff else 0, max_per_shopper=p.max_per_shopper,
        retired_skus=[_sku(sku, staff=True) for sku in p.retired_stocked_skus] if staff else [])
    if view.delivery is not None:
        message.delivery.CopyFrom(product_pb2.Delivery(province=view.delivery.province,
                                                       estimate_days=view.delivery.estimate_days))
    message.created_at.CopyFrom(timestamp(p.created_at))
    message.updated_at.CopyFrom(timestamp(p.updated_at))
    return message


def _rating(summary: RatingSummary) -> product_pb2.Rating:
    return product_pb2.Rating(average=summary.average_tenths / 10, count=summary.count,
                              average_tenths=summary.average_tenths, distribution=summary.stars)


def _review(review: Review, *, own: bool) -> product_pb2.Review:
    """A review as a reply; which order and line it came from only to its author, and to others its text with any
    phone or ID number masked (a buyer writing theirs, or someone else's, publishes it to every shopper)."""
    message = product_pb2.Review(id=review.id or 0, product_id=review.product_id, sku_id=review.sku_id,
                                 spec=review.spec, rating=review.rating,
                                 content=review.content if own else mask_pii(review.content), images=review.images,
                                 buyer=review.buyer, order_no=review.order_no if own else "",
                                 line_id=review.line_id if own else 0, hidden=review.hidden)
    message.created_at.CopyFrom(timestamp(review.created_at))
    return message


def _staff_review(review: Review) -> product_pb2.Review:
    """A review as moderating staff see it: as others do (text masked), with its order line and who hid it."""
    message = _review(review, own=False)
    message.order_no, message.line_id = review.order_no, review.line_id
    message.hidden_reason, message.hidden_by = review.hidden_reason, review.hidden_by or 0
    if review.hidden_at is not None:
        message.hidden_at.CopyFrom(timestamp(review.hidden_at))
    return message


def _draft(product: product_pb2.ProductInput) -> ProductDraft:
    return ProductDraft(
        name=product.name, subtitle=product.subtitle, category_id=product.category_id, brand_id=product.brand_id,
        description=product.description, images=tuple(product.images),
        params=tuple((p.name, p.value) for p in product.params),
        specs=tuple((s.name, tuple(s.values)) for s in product.specs),
        skus=tuple(SkuDraft(spec=dict(s.spec), price_fen=s.price_fen, market_price_fen=s.market_price_fen,
                            stock=s.stock, weight_g=s.weight_g) for s in product.skus),
        after_sales_policy=product.after_sales_policy, max_per_shopper=product.max_per_shopper)


def _json(value: dict[str, object] | None) -> str:
    return json.dumps(value, ensure_ascii=False) if value is not None else ""


def _settings_entry(entry: SettingsAuditEntry) -> product_pb2.SettingsAuditEntry:
    message = product_pb2.SettingsAuditEntry(entity=entry.entity, entity_key=entry.entity_key,
                                             actor_id=entry.actor_id, action=entry.action,
                                             before_json=_json(entry.before), after_json=_json(entry.after))
    message.at.CopyFrom(timestamp(entry.at))
    return message


def _movement(movement: StockMovement) -> product_pb2.StockMovement:
    message = product_pb2.StockMovement(
        id=movement.id or 0, sku_id=movement.sku_id, product_id=movement.product_id, kind=movement.kind,
        available=movement.available, reserved=movement.reserved, sold=movement.sold, reference=movement.reference,
        actor_id=movement.actor_id, reason=movement.reason)
    message.at.CopyFrom(timestamp(movement.at))
    return message


def _audit_entry(entry: AuditEntry) -> product_pb2.AuditEntry:
    message = product_pb2.AuditEntry(
        actor_id=entry.actor_id, action=entry.action,
        before_json=json.dumps(entry.before, ensure_ascii=False) if entry.before is not None else "",
        after_json=json.dumps(entry.after, ensure_ascii=False) if entry.after is not None else "")
    message.at.CopyFrom(timestamp(entry.at))
    return message
