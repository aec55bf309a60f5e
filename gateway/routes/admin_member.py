"""Admin API of the member service: a user's member record (staff who answer shoppers), coupon templates (create,
list, find, approve, disable), withdrawal decisions, the ledger audit."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from flask import Blueprint
from google.protobuf.timestamp_pb2 import Timestamp
from mall.member.v1 import member_pb2 as pb
from mall.member.v1.member_pb2_grpc import MemberServiceStub
from pydantic import Field

from gateway.api import MAX_ID, Body, Id, Page, PageQuery, Query, Reply, ShopTime, operation, service
from gateway.routes.member import MAX_FEN, CouponTemplateOut, LedgerEntryOut, MemberOut, WithdrawalOut, moment
from services.common.auth import MEMBER_READERS, TEMPLATE_APPROVERS, TEMPLATE_EDITORS, TEMPLATE_READERS, Role
from services.common.formats import LEDGER_CHECK_MAX_ACCOUNTS, SHOPPER_REASON_MAX

bp = Blueprint("admin_member", __name__, url_prefix="/api/v1/admin")

TemplateStatus = Literal["pending_approval", "active", "disabled"]


def stamp(moment: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(moment)
    return result


class CouponTemplateIn(Body):
    name: str = Field(min_length=1, max_length=64)
    kind: Literal["fixed", "percent"]
    amount_fen: int = Field(0, ge=0, le=MAX_FEN, description="fixed: the amount off")
    percent_off: int = Field(0, ge=0, le=99, description="percent: 1-99")
    threshold_fen: int = Field(0, ge=0, le=MAX_FEN)
    cap_fen: int | None = Field(None, ge=0, le=MAX_FEN,
                                 description="percent: most taken off, required: 1 to MEMBER_COUPON_MAX_FACE_FEN")
    total: int = Field(ge=1, le=10_000_000)
    per_user_limit: int = Field(1, ge=1, le=1_000)
    valid_from: ShopTime = Field(description="ISO 8601 with offset, years 2000-2199")
    valid_to: ShopTime = Field(description="ISO 8601 with offset, years 2000-2199")
    category_ids: list[Annotated[int, Id]] | None = Field(None, max_length=100, description="empty or missing: every category; a category covers those below it")


class StaffCouponTemplateOut(CouponTemplateOut):
    """A coupon template, with who created and approved it and who stopped its claims, when and why."""

    status: TemplateStatus = Field(description="pending_approval: no claims until an admin or finance staff member "
                                               "other than its creator approves it; disabled: no new claims, the "
                                               "coupons claimed stay usable")
    created_at: datetime | None
    created_by: int | None = Field(description="the staff member's user id; null for templates created before "
                                               "it was recorded")
    approved_at: datetime | None
    approved_by: int | None = Field(description="null while pending, or when it needed no approval (an admin's)")
    disabled_at: datetime | None
    disabled_by: int | None
    disable_reason: str

    @classmethod
    def from_proto(cls, template: pb.CouponTemplate) -> StaffCouponTemplateOut:
        return cls(**CouponTemplateOut.from_proto(template).model_dump(),
                   status=template.status or "active",  # type: ignore[arg-type]
                   created_at=moment(template.created_at), created_by=template.created_by or None,
                   approved_at=moment(template.approved_at), approved_by=template.approved_by or None,
                   disabled_at=moment(template.disabled_at), disabled_by=template.disabled_by or None,
                   disable_reason=template.disable_reason)


class CountedCouponTemplateOut(StaffCouponTemplateOut):
    """A coupon template as staff list them, with its claimed coupons counted by how they stand now: each is in
    exactly one count, together `issued`."""

    available_count: int = Field(description="claimed, neither held by an order nor used, the template still valid")
    locked_count: int = Field(description="held by an order awaiting payment (released if it is cancelled)")
    used_count: int = Field(description="an order was paid with it")
    expired_count: int = Field(description="claimed, never used, and the template's valid_to has passed")

    @classmethod
    def from_proto(cls, template: pb.CouponTemplate) -> CountedCouponTemplateOut:
        usage = template.usage
        return cls(**StaffCouponTemplateOut.from_proto(template).model_dump(), available_count=usage.available,
                   locked_count=usage.locked, used_count=usage.used, expired_count=usage.expired)


class TemplatesQuery(PageQuery):
    status: TemplateStatus | None = None


class DisableIn(Body):
    reason: str = Field(min_length=1, max_length=200, description="why claims stop (kept with who and when)")


class DecisionIn(Body):
    """Approve (pay out) or reject (release) a withdrawal: `note` for staff, `shopper_reason` for the shopper."""

    approve: bool
    note: str = Field("", max_length=200, description="staff only: never shown to the shopper (admin views keep it)")
    shopper_reason: str = Field("", max_length=SHOPPER_REASON_MAX,
                                description="shown to the shopper (their withdrawal's shopper_reason): write there "
                                            "why it is rejected; finance's note is not shown")


class Mismatch(Reply):
    """A ledger account whose stored balance is not the sum of its entries, in the account's unit: fen for the
    wallet's and the platform's money accounts, points for points, points_locked and platform_points_issued (hence
    no `_fen` names)."""

    account_id: int
    user_id: int = Field(description="0 for platform accounts")
    account: str
    balance: int = Field(description="the stored balance, in the account's unit (fen or points)")
    entries_sum: int = Field(description="the sum of the account's entries, in the account's unit (fen or points)")


class LedgerAuditQuery(Query):
    after_account_id: int = Field(0, ge=0, le=MAX_ID, description="check the accounts after this one (0: from the first)")
    limit: int = Field(LEDGER_CHECK_MAX_ACCOUNTS, ge=1, le=LEDGER_CHECK_MAX_ACCOUNTS, description="accounts to check")


class LedgerAudit(Reply):
    """A range of ledger accounts recomputed from their entries; ask again from `next_after_account_id` until it is
    null to check them all."""

    accounts_checked: int
    mismatches: list[Mismatch]
    next_after_account_id: int | None = Field(description="where the next range starts; null once every account "
                                                          "has been checked")


class StaffMemberOut(MemberOut):
    """A user's member record as staff read it: what GET /member shows the shopper, and a page of their points
    entries."""

    user_id: int
    points_entries: Page[LedgerEntryOut] = Field(description="points and points_locked entries, newest first: the "
                                                             "query's page and page_size")


@bp.get("/members/<id:user_id>")
@operation(summary="A user's member record and their points entries, newest first (audited)", tag="admin",
           roles=MEMBER_READERS, query=PageQuery, responses={200: StaffMemberOut},
           description="For the staff who answer shoppers (\"where are my points?\"): the level, points, points_owed "
                       "(what refunds could not take back, taken from the next points credited), wallet (balance, "
                       "held by withdrawals, bonus) and coupons, as GET /member answers the shopper, and the query's "
                       "page of the points ledger. 404 MEMBER_NOT_FOUND when the user is not a member. Every read is "
                       "recorded with who read whose record and when (the member service's member_lookups), a 404 "
                       "too. The member record holds no phone or name: the user search answers those, masked.")
def get_member_record(user_id: int, query: PageQuery) -> StaffMemberOut:
    reply = service(MemberServiceStub).LookUpMember(pb.LookUpMemberRequest(
        user_id=user_id, offset=query.offset, limit=query.page_size))
    return StaffMemberOut(**MemberOut.from_proto(reply.member).model_dump(), user_id=user_id,
                          points_entries=Page[LedgerEntryOut].of(
                              [LedgerEntryOut.from_proto(e) for e in reply.points_entries], query,
                              reply.points_entries_total))


@bp.post("/coupons")
@operation(summary="Create a coupon template", tag="admin", roles=TEMPLATE_EDITORS,
           body=CouponTemplateIn, responses={201: StaffCouponTemplateOut}, idempotent=True, key_optional=True,
           description="Percent discounts are rounded down to the fen. An operator's template is pending_approval "
                       "(no claims) until an admin or finance staff member approves it; an admin's is active at "
                       "once. One coupon takes at most MEMBER_COUPON_MAX_FACE_FEN off (default 100000 fen: a "
                       "fixed amount_fen, a percent cap_fen, which a percent template must have): 422 "
                       "COUPON_TEMPLATE_TOO_VALUABLE above it. A fixed template's threshold_fen is 0 (no "
                       "threshold) or at least its amount_fen, and valid_to is after valid_from and in the future; a "
                       "field of the other kind (amount_fen on a percent template, percent_off or cap_fen on a fixed "
                       "one) is left out or 0: 400 COUPON_TEMPLATE_INVALID otherwise, details naming the field. "
                       "category_ids must be categories the catalogue has (each covers the products filed below it "
                       "at any depth): 400 COUPON_TEMPLATE_INVALID naming the "
                       "others; 503 PRODUCT_UNAVAILABLE when the product service cannot say (nothing created). A "
                       "retry with the same Idempotency-Key and body (after a 503 whose commit went through, say) "
                       "answers the template the first created, as it is now, never a second template; the same key "
                       "with another body is 409 IDEMPOTENCY_KEY_REUSED. Keys are per staff member.")
def create_coupon_template(body: CouponTemplateIn, idempotency_key: str) -> tuple[StaffCouponTemplateOut, int]:
    reply = service(MemberServiceStub).CreateCouponTemplate(pb.CreateCouponTemplateRequest(
        name=body.name, kind=body.kind, amount_fen=body.amount_fen, percent_off=body.percent_off,
        threshold_fen=body.threshold_fen, cap_fen=body.cap_fen or 0, total=body.total,
        per_user_limit=body.per_user_limit, valid_from=stamp(body.valid_from), valid_to=stamp(body.valid_to),
        category_ids=body.category_ids or [], idempotency_key=idempotency_key))
    return StaffCouponTemplateOut.from_proto(reply), 201


@bp.get("/coupon-templates")
@operation(summary="Coupon templates, newest first", tag="admin", roles=TEMPLATE_READERS, query=TemplatesQuery,
           responses={200: Page[CountedCouponTemplateOut]},
           description="Each with its claimed coupons counted by how they stand now (available, locked, used, "
                       "expired: together issued).")
def list_coupon_templates(query: TemplatesQuery) -> Page[CountedCouponTemplateOut]:
    reply = service(MemberServiceStub).ListCouponTemplates(pb.ListCouponTemplatesRequest(
        status=query.status or "", offset=query.offset, limit=query.page_size))
    return Page[CountedCouponTemplateOut].of([CountedCouponTemplateOut.from_proto(t) for t in reply.templates],
                                             query, reply.total)


@bp.get("/coupon-templates/<id:template_id>")
@operation(summary="One coupon template", tag="admin", roles=TEMPLATE_READERS,
           responses={200: StaffCouponTemplateOut})
def get_coupon_template(template_id: int) -> StaffCouponTemplateOut:
    return StaffCouponTemplateOut.from_proto(service(MemberServiceStub).GetCouponTemplate(
        pb.GetCouponTemplateRequest(template_id=template_id)))


@bp.post("/coupon-templates/<id:template_id>/approve")
@operation(summary="Approve a pending coupon template: it takes claims from now on", tag="admin",
           roles=TEMPLATE_APPROVERS, responses={200: StaffCouponTemplateOut},
           description="Who and when are kept on the template (approved_by, approved_at). 403 OWN_REQUEST for its "
                       "creator: another staff member approves it; and neither may claim its coupons. Again, or an "
                       "active template: unchanged (the first approver kept). 422 COUPON_TEMPLATE_DISABLED when it "
                       "was disabled first (that is how a pending template is turned down).")
def approve_coupon_template(template_id: int) -> StaffCouponTemplateOut:
    return StaffCouponTemplateOut.from_proto(service(MemberServiceStub).ApproveCouponTemplate(
        pb.ApproveCouponTemplateRequest(template_id=template_id)))


@bp.post("/coupon-templates/<id:template_id>/disable")
@operation(summary="Stop a coupon template's claims (the coupons claimed stay usable)", tag="admin",
           roles=TEMPLATE_EDITORS, body=DisableIn, responses={200: StaffCouponTemplateOut},
           description="No coupon of it is claimed from now on (422 COUPON_TEMPLATE_DISABLED), also by a claim under "
                       "way; who, when and why are kept on the template. One-way: disabling it again changes "
                       "nothing (the first reason stays).")
def disable_coupon_template(template_id: int, body: DisableIn) -> StaffCouponTemplateOut:
    return StaffCouponTemplateOut.from_proto(service(MemberServiceStub).DisableCouponTemplate(
        pb.DisableCouponTemplateRequest(template_id=template_id, reason=body.reason)))


@bp.post("/withdrawals/<id:withdrawal_id>/decision")
@operation(summary="Approve (pay out) or reject (release) a withdrawal", tag="admin", roles=(Role.FINANCE,),
           body=DecisionIn, responses={200: WithdrawalOut},
           description="The note is staff's (admin views show it); the shopper reads shopper_reason instead: for a "
                       "rejection, write there why, it is shown to the shopper as written. Should the payout "
                       "channel then refuse or fail the transfer, the shopper reads a fixed sentence instead, the "
                       "channel's reason going to the note. 403 OWN_REQUEST on the staff member's own withdrawal: "
                       "another finance staff member decides it.")
def decide_withdrawal(withdrawal_id: int, body: DecisionIn) -> WithdrawalOut:
    return WithdrawalOut.from_proto(service(MemberServiceStub).DecideWithdrawal(pb.DecideWithdrawalRequest(
        withdrawal_id=withdrawal_id, approve=body.approve, note=body.note, shopper_reason=body.shopper_reason)))


class WithdrawalsQuery(PageQuery):
    status: Literal["PENDING_REVIEW", "PAYING", "PAID", "REJECTED", "FAILED"] | None = None


@bp.get("/withdrawals")
@operation(summary="Withdrawals to review (oldest first)", tag="admin", roles=(Role.FINANCE, Role.ADMIN),
           query=WithdrawalsQuery, responses={200: Page[WithdrawalOut]})
def list_withdrawals(query: WithdrawalsQuery) -> Page[WithdrawalOut]:
    reply = service(MemberServiceStub).ListWithdrawals(pb.ListWithdrawalsRequest(
        status=query.status or "", offset=query.offset, limit=query.page_size))
    return Page[WithdrawalOut].of([WithdrawalOut.from_proto(w) for w in reply.withdrawals], query, reply.total)


@bp.get("/ledger-audit")
@operation(summary="Recompute a range of ledger accounts from their entries and list mismatches", tag="admin",
           roles=(Role.FINANCE, Role.ADMIN), query=LedgerAuditQuery, responses={200: LedgerAudit})
def ledger_audit(query: LedgerAuditQuery) -> LedgerAudit:
    reply = service(MemberServiceStub).CheckLedgers(pb.CheckLedgersRequest(
        after_account_id=query.after_account_id, limit=query.limit))
    return LedgerAudit(accounts_checked=reply.accounts_checked, mismatches=[
        Mismatch(account_id=m.account_id, user_id=m.user_id, account=m.account, balance=m.balance,
                 entries_sum=m.entries_sum) for m in reply.mismatches],
                       next_after_account_id=reply.next_after_account_id or None)
