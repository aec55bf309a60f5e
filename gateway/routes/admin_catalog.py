"""Admin catalogue settings: categories, brands and the delivery estimate table, with their audit log."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from flask import Blueprint
from mall.product.v1 import product_pb2
from mall.product.v1.product_pb2_grpc import ProductServiceStub
from pydantic import Field

from gateway.api import Body, Page, PageQuery, Reply, operation, service
from gateway.catalog_cache import invalidate_after_writes
from gateway.routes.admin_products import EDITORS
from gateway.routes.catalog import MAX_ID

bp = Blueprint("admin_catalog", __name__, url_prefix="/api/v1/admin")
invalidate_after_writes(bp)  # brand names and delivery days show on product pages

# Only the shape here: the product service refuses a new or changed icon/logo that is not our media or https, and
# keeps one sent back as stored (saved before that rule, it must not block a rename).
Url = Field("", max_length=512, description="empty, or a /media/... path (POST /uploads) or an https URL; an edit "
            "may send back the stored one unchanged (400 CATEGORY_INVALID / BRAND_INVALID for a new or changed one)")


class CategoryIn(Body):
    name: str = Field(min_length=1, max_length=64)
    parent_id: int | None = Field(None, ge=1, le=MAX_ID, description="null: a root category")
    icon: str = Url
    sort: int = Field(0, ge=-(10**6), le=10**6, description="display order among siblings")


class AdminCategory(Reply):
    """A category as staff edit it."""

    id: int
    name: str
    parent_id: int | None
    icon: str
    sort: int


class BrandIn(Body):
    name: str = Field(min_length=1, max_length=64)
    logo: str = Url


class AdminBrand(Reply):
    """A brand."""

    id: int
    name: str
    logo: str


class DeliveryIn(Body):
    estimate_days: int = Field(ge=1, le=60)


class DeliveryEstimateOut(Reply):
    """Planned delivery days to a province ("*": everywhere not listed)."""

    province: str = Field(description='a province by its full name (上海市), or "*"')
    estimate_days: int


class DeliveryTable(Reply):
    """The delivery estimate table, by province."""

    items: list[DeliveryEstimateOut]


class SettingsAuditEntryOut(Reply):
    entity: Literal["category", "brand", "delivery"]
    key: str = Field(description="the category or brand id, or the province")
    actor: int = Field(description="user id of the staff member (0: the demo seed)")
    action: str
    at: datetime
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class SettingsAuditQuery(PageQuery):
    entity: Literal["category", "brand", "delivery"] | None = None


def _stub() -> ProductServiceStub:
    return service(ProductServiceStub)


def _category(c: product_pb2.Category) -> AdminCategory:
    return AdminCategory(id=c.id, name=c.name, parent_id=c.parent_id or None, icon=c.icon, sort=c.sort)


def _save_category(category_id: int, body: CategoryIn, idempotency_key: str = "") -> AdminCategory:
    return _category(_stub().SaveCategory(product_pb2.SaveCategoryRequest(
        id=category_id, name=body.name, parent_id=body.parent_id or 0, icon=body.icon, sort=body.sort,
        idempotency_key=idempotency_key)))


def _save_brand(brand_id: int, body: BrandIn, idempotency_key: str = "") -> AdminBrand:
    b = _stub().SaveBrand(product_pb2.SaveBrandRequest(id=brand_id, name=body.name, logo=body.logo,
                                                       idempotency_key=idempotency_key))
    return AdminBrand(id=b.id, name=b.name, logo=b.logo)


@bp.post("/categories")
@operation(summary="Create a category", tag="admin", roles=EDITORS, body=CategoryIn, responses={201: AdminCategory},
           idempotent=True, key_optional=True,
           description="A retry with the same Idempotency-Key and body (after a 503 whose commit went through, "
                       "say) answers the category the first created, as it is now, never a second category; the "
                       "same key with another body is 409 IDEMPOTENCY_KEY_REUSED. Keys are per staff member.")
def create_category(body: CategoryIn, idempotency_key: str) -> tuple[AdminCategory, int]:
    return _save_category(0, body, idempotency_key), 201


@bp.put("/categories/<id:category_id>")
@operation(summary="Rename, move or re-order a category", tag="admin", roles=EDITORS, body=CategoryIn,
           description="The parent must exist and must not be the category itself or below it.",
           responses={200: AdminCategory})
def update_category(category_id: int, body: CategoryIn) -> AdminCategory:
    return _save_category(category_id, body)


@bp.post("/brands")
@operation(summary="Create a brand", tag="admin", roles=EDITORS, body=BrandIn, responses={201: AdminBrand},
           idempotent=True, key_optional=True,
           description="Names are unique (409 BRAND_EXISTS). A retry with the same Idempotency-Key and body (after "
                       "a 503 whose commit went through, say) answers the brand the first created, as it is now, "
                       "never BRAND_EXISTS nor a second brand; the same key with another body is 409 "
                       "IDEMPOTENCY_KEY_REUSED. Keys are per staff member.")
def create_brand(body: BrandIn, idempotency_key: str) -> tuple[AdminBrand, int]:
    return _save_brand(0, body, idempotency_key), 201


@bp.put("/brands/<id:brand_id>")
@operation(summary="Rename a brand or change its logo", tag="admin", roles=EDITORS, body=BrandIn,
           description="Names are unique (409 BRAND_EXISTS); a rename re-indexes the brand's products for search.",
           responses={200: AdminBrand})
def update_brand(brand_id: int, body: BrandIn) -> AdminBrand:
    return _save_brand(brand_id, body)


@bp.get("/delivery-estimates")
@operation(summary="The delivery estimate table", tag="admin", roles=EDITORS, responses={200: DeliveryTable})
def delivery_table() -> DeliveryTable:
    reply = _stub().ListDeliveryEstimates(product_pb2.ListDeliveryEstimatesRequest())
    return DeliveryTable(items=[DeliveryEstimateOut(province=d.province, estimate_days=d.estimate_days)
                                for d in reply.items])


@bp.put("/delivery-estimates/<province>")
@operation(summary="Set the planned delivery days to a province (\"*\": everywhere else)", tag="admin",
           roles=EDITORS, body=DeliveryIn, responses={200: DeliveryEstimateOut},
           description="The province by its full name (上海市) or its short one (上海), kept by the full name: the "
                       "one addresses and product pages (`?province=`) look it up by; \"*\" is the row for every "
                       "province without one. Anything else is 400 DELIVERY_INVALID.")
def set_delivery_estimate(province: str, body: DeliveryIn) -> DeliveryEstimateOut:
    saved = _stub().SetDeliveryEstimate(product_pb2.DeliveryEstimate(province=province,
                                                                      estimate_days=body.estimate_days))
    return DeliveryEstimateOut(province=saved.province, estimate_days=saved.estimate_days)


@bp.get("/catalog-settings/audit-log")
@operation(summary="Changes of categories, brands and the delivery table: who, when, before and after",
           tag="admin", roles=EDITORS, query=SettingsAuditQuery, responses={200: Page[SettingsAuditEntryOut]})
def settings_audit_log(query: SettingsAuditQuery) -> Page[SettingsAuditEntryOut]:
    reply = _stub().ListSettingsAuditLog(product_pb2.ListSettingsAuditLogRequest(
        entity=query.entity or "", offset=query.offset, limit=query.page_size))
    items = [SettingsAuditEntryOut(entity=e.entity, key=e.entity_key, actor=e.actor_id,  # type: ignore[arg-type]
                                   action=e.action, at=e.at.ToDatetime(tzinfo=UTC),
                                   before=json.loads(e.before_json) if e.before_json else None,
                                   after=json.loads(e.after_json) if e.after_json else None) for e in reply.items]
    return Page[SettingsAuditEntryOut].of(items, query, reply.total)
