"""After-sales (O4): the shopper's refund-only and return-and-refund cases; the staff queue and decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from flask import Blueprint
from mall.order.v1 import after_sale_pb2
from mall.order.v1.after_sale_pb2_grpc import AfterSaleServiceStub
from pydantic import Field, model_validator

from gateway.api import MAX_ID, Body, Id, Page, PageQuery, Reply, operation, service
from gateway.routes.orders import (
    LineUnitsIn,
    ShopperStep,
    StaffSearchQuery,
    StaffStep,
    created_between,
    utc_time,
)
from gateway.uploads import require_own_uploads
from services.common import formats
from services.common.auth import Role
from services.common.formats import anchored

bp = Blueprint("aftersales", __name__, url_prefix="/api/v1")

CaseStatus = Literal["REQUESTED", "REJECTED", "AWAITING_RETURN", "RETURN_SHIPPED", "REFUNDING", "REFUND_FAILED",
                     "REFUND_ABNORMAL", "REFUNDED", "WITHDRAWN"]
CaseType = Literal["refund_only", "return_refund"]
DECIDERS = (Role.ADMIN, Role.CUSTOMER_SERVICE)
AFTER_SALE_STAFF = (Role.ADMIN, Role.CUSTOMER_SERVICE, Role.OPERATOR)  # operators receive returned goods


class CaseLineOut(Reply):
    """A line of the case: the units asked for and their refund (their share of what was paid)."""

    line_id: int
    sku_id: int
    name: str
    spec: str
    quantity: int
    amount_fen: int


class CaseStepOut(ShopperStep):
    """One step of my case's history: to which status, when, by whom ("staff" for any staff member), why.

    Every status change is listed, with the reason written for me; staff's notes are not (their admin view has them).
    """

    status: CaseStatus  # type: ignore[assignment]
    actor: str = Field(description='user:<id> (me) | staff | refund:<refund_no> | system')
    reason: str = Field(description="what the shopper is told of the step: their own words (request, return parcel, "
                                    "withdrawal) or the shop's fixed wording (\"refund approved\", \"request "
                                    "declined: <why, as staff wrote it for the shopper>\"); may be empty")


class StaffCaseStepOut(StaffStep):
    """One step of a case's history as recorded, and what its shopper sees of it."""

    status: CaseStatus  # type: ignore[assignment]
    actor: str = Field(description="user:<id> | staff:<id> | refund:<refund_no> | system")
    reason: str = Field(description="as recorded: staff's own notes and reject reasons, the refund engine's errors")


class ReturnAddressOut(Reply):
    """The shop's return address (ORDER_RETURN_ADDRESS): where to send the goods of an approved return. The phone is
    the shop's, in full."""

    name: str
    phone: str
    province: str
    city: str
    district: str
    detail: str


class CaseOut(Reply):
    """An after-sales case with its lines, refund and history, as its shopper sees it (who, when, why: in the
    shopper's words or the shop's wording for them, never staff's notes or ids)."""

    id: int
    case_no: str
    order_id: int
    order_no: str
    type: CaseType
    status: CaseStatus
    reason: str
    images: list[str]
    lines: list[CaseLineOut]
    refund_fen: int
    refund_no: str | None
    return_shipment: dict[str, str] | None = Field(description='{"carrier", "tracking_no"} once sent back')
    return_address: ReturnAddressOut | None = Field(
        description="where to send the goods back: the shop's return address while the case is AWAITING_RETURN "
                          "(POST .../return-shipment then says how they were sent); null in every other status")
    created_at: datetime
    updated_at: datetime
    history: list[CaseStepOut]

    @classmethod
    def from_proto(cls, case: after_sale_pb2.AfterSale) -> Self:
        return cls(id=case.id, case_no=case.case_no, order_id=case.order_id, order_no=case.order_no,
                   type=case.type, status=case.status, reason=case.reason, images=list(case.images),  # type: ignore[arg-type]
                   lines=[CaseLineOut(line_id=line.line_id, sku_id=line.sku_id, name=line.name, spec=line.spec,
                                      quantity=line.quantity, amount_fen=line.amount_fen) for line in case.lines],
                   refund_fen=case.refund_fen, refund_no=case.refund_no or None,
                   return_shipment={"carrier": case.return_carrier, "tracking_no": case.return_tracking_no}
                   if case.return_tracking_no else None,
                   return_address=ReturnAddressOut(
                       name=case.return_address.name, phone=case.return_address.phone,
                       province=case.return_address.province, city=case.return_address.city,
                       district=case.return_address.district, detail=case.return_address.detail)
                   if case.HasField("return_address") else None,
                   created_at=utc_time(case.created_at), updated_at=utc_time(case.updated_at),
                   history=cls.history_of(case))

    @classmethod
    def history_of(cls, case: after_sale_pb2.AfterSale) -> list[Any]:
        """The history this view shows: the shopper's (AdminCaseOut: staff's)."""
        return CaseStepOut.shopper_view(case.history)


class AdminCaseOut(CaseOut):
    """An after-sales case as staff see it: its whole history, every step as recorded, with what the shopper sees
    of each."""

    history: list[StaffCaseStepOut]  # type: ignore[assignment]

    @classmethod
    def history_of(cls, case: after_sale_pb2.AfterSale) -> list[Any]:
        return StaffCaseStepOut.staff_view(case.history)


class CaseIn(Body):
    """Which units (`lines`, or whole lines by `line_ids`), why, and up to 9 photos uploaded with POST /uploads."""

    type: CaseType
    lines: list[LineUnitsIn] = Field(default_factory=list, max_length=100)
    line_ids: list[Annotated[int, Id]] = Field(default_factory=list, max_length=100,
                                               description="whole lines: every unit not refunded yet")
    reason: str = Field(min_length=1, max_length=255)
    images: list[Annotated[str, Field(pattern=anchored(formats.UPLOAD_URL))]] = Field(
        default_factory=list, max_length=formats.MAX_REVIEW_IMAGES,
        description="URLs POST /uploads answered me (another user's upload, or one from before uploads were signed "
                    "for their uploader: 400 UPLOAD_NOT_YOURS)")

    @model_validator(mode="after")
    def _some_lines(self) -> CaseIn:
        if not self.lines and not self.line_ids:
            raise ValueError("name the lines: lines [{line_id, quantity}] or line_ids")
        named = [line.line_id for line in self.lines] + self.line_ids
        if len(set(named)) != len(named):  # some units and every unit of one line: which did the shopper mean?
            raise ValueError("name each line once, in lines or in line_ids")
        return self


@bp.post("/orders/<id:order_id>/after-sales")
@operation(summary="Ask for a refund (or a return and refund) of some of my order's units", tag="after-sales",
           body=CaseIn, responses={201: CaseOut},
           description="While the order is SHIPPED, or up to ORDER_AFTER_SALE_DAYS (7) after delivery (COMPLETED), "
                       "or partly shipped; only units shipped in a parcel and not refunded yet, never units cancelled "
                       "unshipped (409 AFTER_SALE_QUANTITY_INVALID beyond them); "
                       "one open case per line (409 AFTER_SALE_LINE_OPEN). Freight is not refunded. 400 "
                       "UPLOAD_NOT_YOURS (details images.N) for an image I did not upload.")
def open_case(order_id: int, body: CaseIn) -> tuple[CaseOut, int]:
    require_own_uploads(body.images)
    lines = [after_sale_pb2.AfterSaleLine(line_id=line.line_id, quantity=line.quantity) for line in body.lines]
    lines += [after_sale_pb2.AfterSaleLine(line_id=line_id, quantity=0) for line_id in body.line_ids]
    case = service(AfterSaleServiceStub).CreateAfterSale(after_sale_pb2.CreateAfterSaleRequest(
        order_id=order_id, type=body.type, lines=lines, reason=body.reason, images=body.images))
    return CaseOut.from_proto(case), 201


class CasesQuery(PageQuery):
    order_id: int | None = Field(None, ge=1, le=MAX_ID,
                                 description="only this order's cases (an order's page: its lines' `open_case_id` "
                                             "names the open one); another shopper's order finds nothing")


@bp.get("/after-sales")
@operation(summary="My after-sales cases, newest first", tag="after-sales", query=CasesQuery,
           responses={200: Page[CaseOut]})
def list_cases(query: CasesQuery) -> Page[CaseOut]:
    found = service(AfterSaleServiceStub).ListAfterSales(after_sale_pb2.ListAfterSalesRequest(
        offset=query.offset, limit=query.page_size, order_id=query.order_id or 0))
    return Page[CaseOut].of([CaseOut.from_proto(case) for case in found.cases], query, found.total)


@bp.get("/after-sales/<id:case_id>")
@operation(summary="One of my after-sales cases", tag="after-sales", responses={200: CaseOut},
           description="Its history lists every status change in my words or the shop's wording for me "
                       "(\"refund approved\", \"request declined: <why>\"); staff's notes and ids are not shown.")
def get_case(case_id: int) -> CaseOut:
    return CaseOut.from_proto(service(AfterSaleServiceStub).GetAfterSale(after_sale_pb2.GetAfterSaleRequest(id=case_id)))


class ReturnShipmentIn(Body):
    """The parcel I sent the goods back in."""

    carrier: str = Field(min_length=1, max_length=formats.CARRIER_MAX)
    tracking_no: str = Field(min_length=1, max_length=64, pattern=anchored(formats.TRACKING_NO))


@bp.post("/after-sales/<id:case_id>/return-shipment")
@operation(summary="Tell the shop how I sent the goods back (an approved return)", tag="after-sales",
           body=ReturnShipmentIn, responses={200: CaseOut},
           description="Only while AWAITING_RETURN: within ORDER_RETURN_SHIP_DAYS (7) of approval, after which the "
                       "case is closed (WITHDRAWN by system, its lines free; nothing refunded) and this is 409 "
                       "AFTER_SALE_STATE_CONFLICT with details.status.")
def return_shipment(case_id: int, body: ReturnShipmentIn) -> CaseOut:
    return CaseOut.from_proto(service(AfterSaleServiceStub).SubmitReturnShipment(
        after_sale_pb2.SubmitReturnShipmentRequest(id=case_id, carrier=body.carrier, tracking_no=body.tracking_no)))


class WithdrawIn(Body):
    """Why I withdraw the case (optional; kept in its history)."""

    reason: str = Field("", max_length=255)


@bp.post("/after-sales/<id:case_id>/withdraw")
@operation(summary="Withdraw my after-sales case (its lines are free for a new one)", tag="after-sales",
           body=WithdrawIn, responses={200: CaseOut},
           description="Only while REQUESTED or AWAITING_RETURN (nothing sent back, no refund started): WITHDRAWN, "
                       "recorded in the history; otherwise 409 AFTER_SALE_STATE_CONFLICT with details.status. "
                       "Another shopper's case is 404.")
def withdraw(case_id: int, body: WithdrawIn) -> CaseOut:
    return CaseOut.from_proto(service(AfterSaleServiceStub).WithdrawAfterSale(
        after_sale_pb2.WithdrawAfterSaleRequest(id=case_id, reason=body.reason)))


# -- staff ---------------------------------------------------------------------------------------

class CaseQuery(StaffSearchQuery):
    status: CaseStatus | None = None
    type: CaseType | None = None


@bp.get("/admin/after-sales")
@operation(summary="The after-sales queue, newest first", tag="admin-after-sales", roles=AFTER_SALE_STAFF,
           query=CaseQuery, responses={200: Page[AdminCaseOut]})
def search_cases(query: CaseQuery) -> Page[AdminCaseOut]:
    search = after_sale_pb2.SearchAfterSalesRequest(status=query.status or "", type=query.type or "",
                                                    order_no=query.order_no or "", offset=query.offset,
                                                    limit=query.page_size)
    created_between(search, query)
    found = service(AfterSaleServiceStub).SearchAfterSales(search)
    return Page[AdminCaseOut].of([AdminCaseOut.from_proto(case) for case in found.cases], query, found.total)


@bp.get("/admin/after-sales/<id:case_id>")
@operation(summary="Any after-sales case", tag="admin-after-sales", roles=AFTER_SALE_STAFF,
           responses={200: AdminCaseOut})
def admin_get_case(case_id: int) -> AdminCaseOut:
    return AdminCaseOut.from_proto(service(AfterSaleServiceStub).GetAfterSale(
        after_sale_pb2.GetAfterSaleRequest(id=case_id)))


class DecisionIn(Body):
    """Approve (refund-only: the refund runs now; a return: the shopper sends the goods) or reject, with why.

    `note` (or `reason`) is for staff only. The shopper reads "refund approved", "return approved: please send the
    goods back" or "request declined", followed by `shopper_reason` when given: write there what the shopper
    should know, above all why their request is declined ("request declined: 商品已拆封使用，不支持退货").
    """

    approve: bool
    note: str = Field("", max_length=255, description="staff only: never shown to the shopper")
    reason: str = Field("", max_length=255, description="the same as note (staff only); give one of them")
    shopper_reason: str = Field("", max_length=formats.SHOPPER_REASON_MAX,
                                description="written for the shopper, who reads it after the decision's wording")

    @model_validator(mode="after")
    def _one_note(self) -> DecisionIn:
        if self.note and self.reason:  # two names of one note: never keep one and drop the other
            raise ValueError("give note or reason (the same staff note), not both")
        return self


@bp.post("/admin/after-sales/<id:case_id>/decision")
@operation(summary="Approve or reject an after-sales case", tag="admin-after-sales", roles=DECIDERS, body=DecisionIn,
           responses={200: AdminCaseOut},
           description="The note is staff's; the shopper reads the decision's wording (\"refund approved\", "
                       "\"return approved: please send the goods back\", \"request declined\") followed by "
                       "shopper_reason when given: write there why a request is declined. "
                       "409 AFTER_SALE_STATE_CONFLICT (details.status) unless REQUESTED; a RETURN_SHIPPED case "
                       "(what came back is not the goods as sold: nothing restocked or refunded) and a refund-only "
                       "REFUND_FAILED one may be rejected (closed). A return whose goods were received is never "
                       "rejected (409 AFTER_SALE_GOODS_RECEIVED): retry its refund instead. 403 OWN_REQUEST on "
                       "the staff member's own case: another staff member decides it.")
def decide(case_id: int, body: DecisionIn) -> AdminCaseOut:
    return AdminCaseOut.from_proto(service(AfterSaleServiceStub).DecideAfterSale(after_sale_pb2.DecideAfterSaleRequest(
        id=case_id, approve=body.approve, reason=body.reason or body.note, shopper_reason=body.shopper_reason)))


class ReceiveIn(Body):
    """What came back, for staff (the shopper reads "returned goods received")."""

    note: str = Field("", max_length=255, description="staff only: never shown to the shopper")


@bp.post("/admin/after-sales/<id:case_id>/receive")
@operation(summary="The returned goods arrived: restock them and refund", tag="admin-after-sales",
           roles=AFTER_SALE_STAFF, body=ReceiveIn, responses={200: AdminCaseOut},
           description="409 AFTER_SALE_STATE_CONFLICT unless RETURN_SHIPPED. 403 OWN_REQUEST on the staff "
                       "member's own case (receiving pays its refund): another staff member receives it.")
def receive(case_id: int, body: ReceiveIn) -> AdminCaseOut:
    return AdminCaseOut.from_proto(service(AfterSaleServiceStub).ReceiveReturn(after_sale_pb2.ReceiveReturnRequest(
        id=case_id, note=body.note)))


@bp.post("/admin/after-sales/<id:case_id>/retry-refund")
@operation(summary="Start a failed refund of a case again", tag="admin-after-sales", roles=DECIDERS,
           responses={200: AdminCaseOut},
           description="REFUND_FAILED: a new refund. REFUNDING, or REFUND_ABNORMAL (WeChat Pay could not pay it "
                       "back; complete it at WeChat Pay first): the case's refund is asked about again under its "
                       "number, no second refund; a REFUNDING case whose refund never started (interrupted after the "
                       "approval) starts it under that number, once. 409 AFTER_SALE_STATE_CONFLICT otherwise; 503 "
                       "PAYMENT_CHANNEL_UNAVAILABLE when WeChat Pay gives no usable answer (details.channel_code: "
                       "its refusal's code, if any): nothing is changed, try again; or (details.status PENDING) "
                       "the refund was sent again and the answer lost: the refund is PENDING (the case REFUNDING) "
                       "until the fallback job learns what became of it. 403 OWN_REQUEST on the staff member's own "
                       "case (a retry pays the refund): another staff member retries it.")
def retry_refund(case_id: int) -> AdminCaseOut:
    return AdminCaseOut.from_proto(service(AfterSaleServiceStub).RetryAfterSaleRefund(
        after_sale_pb2.GetAfterSaleRequest(id=case_id)))
