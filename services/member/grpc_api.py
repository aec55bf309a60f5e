"""MemberService servicer: protobuf in, use case, protobuf out. Errors are mapped by the interceptor."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from mall.member.v1 import member_pb2 as pb
from mall.member.v1 import member_pb2_grpc

from services.common.auth import (
    MEMBER_READERS,
    TEMPLATE_APPROVERS,
    TEMPLATE_EDITORS,
    TEMPLATE_READERS,
    Role,
    require_caller,
    require_service,
)
from services.common.db import utcnow
from services.common.errors import InvalidInput
from services.common.events import timestamp
from services.common.formats import LEDGER_CHECK_MAX_ACCOUNTS
from services.common.grpc_server import PageRequest, page
from services.member import service
from services.member.channels import NotifyRejected, PaymentChannel, PayoutChannel
from services.member.domain import (
    DEFAULT_COUPON_MAX_FACE_FEN,
    PLANS,
    CouponTemplate,
    LedgerEntry,
    MemberSummary,
    OrderLine,
    Recharge,
    Withdrawal,
)
from services.member.service import Categories, Phones
from services.member.uow import MemberUnitOfWork

STAFF_ACTING_FOR_SHOPPERS = (Role.ADMIN, Role.FINANCE, Role.CUSTOMER_SERVICE)
# Refunds of balance payments come from the order service only (its refund engine, reconciliation and wallet
# reviews); no staff tool calls RefundToBalance directly.
REFUNDING_SERVICES = ("order",)
PAYMENT_VOIDERS = ("order",)  # what a wallet paid for an order, else no payment ever: reconciling lost answers


class MemberServicer(member_pb2_grpc.MemberServiceServicer):
    def __init__(self, uow: Callable[[], MemberUnitOfWork], payout: PayoutChannel, payment: PaymentChannel, *,
                 categories: Categories, phones: Phones,
                 coupon_max_face_fen: int = DEFAULT_COUPON_MAX_FACE_FEN) -> None:
        self.uow = uow
        self.payout = payout
        self.payment = payment
        self.categories = categories  # coupon templates name only categories the catalogue has
        self.phones = phones  # shoppers join with a bound phone number
        self.coupon_max_face_fen = coupon_max_face_fen

    # membership

    def SignUp(self, request: pb.SignUpRequest, context: grpc.ServicerContext) -> pb.SignUpResponse:
        summary, created = service.sign_up_by_phone(self.uow(), self.phones, user_id=require_caller().user_id,
                                                    channel=request.channel, invite_code=request.invite_code or None)
        return pb.SignUpResponse(member=_member(summary), created=created)

    def GetMember(self, request: pb.GetMemberRequest, context: grpc.ServicerContext) -> pb.GetMemberResponse:
        return pb.GetMemberResponse(member=_member(service.get_member(self.uow(), user_id=require_caller().user_id)))

    def GetWallet(self, request: pb.GetWalletRequest, context: grpc.ServicerContext) -> pb.Wallet:
        wallet = service.get_wallet(self.uow(), user_id=require_caller().user_id)
        return pb.Wallet(balance_fen=wallet.balance_fen, pending_fen=wallet.pending_fen, bonus_fen=wallet.bonus_fen)

    def LookUpMember(self, request: pb.LookUpMemberRequest, context: grpc.ServicerContext) -> pb.LookUpMemberResponse:
        caller = require_caller(*MEMBER_READERS)
        record = service.look_up_member(self.uow(), actor_id=caller.user_id, user_id=request.user_id,
                                        **_page(request))
        return pb.LookUpMemberResponse(member=_member(record.summary),
                                       points_entries=[_entry(e) for e in record.points_entries],
                                       points_entries_total=record.points_entries_total)

    def GetDiscount(self, request: pb.GetDiscountRequest, context: grpc.ServicerContext) -> pb.Discount:
        bp = service.discount_bp(self.uow(), user_id=require_caller().user_id)
        return pb.Discount(discount_bp=bp, discount_percent=_deprecated_percent(bp))

    def ListPlans(self, request: pb.ListPlansRequest, context: grpc.ServicerContext) -> pb.ListPlansResponse:
        return pb.ListPlansResponse(plans=[pb.Plan(id=p.id, name=p.name, price_fen=p.price_fen, days=p.days,
                                                   discount_percent=p.discount_percent) for p in PLANS])

    def SubscribePlan(self, request: pb.SubscribePlanRequest, context: grpc.ServicerContext) -> pb.GetMemberResponse:
        return pb.GetMemberResponse(member=_member(service.subscribe_plan(
            self.uow(), user_id=require_caller().user_id, plan_id=request.plan_id,
            idempotency_key=request.idempotency_key)))

    # ledgers

    def ListWalletEntries(self, request: pb.ListEntriesRequest, context: grpc.ServicerContext) -> pb.ListEntriesResponse:
        entries, total = service.wallet_entries(self.uow(), user_id=require_caller().user_id, **_page(request))
        return pb.ListEntriesResponse(entries=[_entry(e) for e in entries], total=total)

    def ListPointsEntries(self, request: pb.ListEntriesRequest, context: grpc.ServicerContext) -> pb.ListEntriesResponse:
        entries, total = service.points_entries(self.uow(), user_id=require_caller().user_id, **_page(request))
        return pb.ListEntriesResponse(entries=[_entry(e) for e in entries], total=total)

    def CheckLedgers(self, request: pb.CheckLedgersRequest, context: grpc.ServicerContext) -> pb.CheckLedgersResponse:
        require_caller(Role.FINANCE, Role.ADMIN)
        limit = request.limit or LEDGER_CHECK_MAX_ACCOUNTS
        checked = service.check_ledgers(self.uow(), after_account_id=request.after_account_id, limit=limit)
        return pb.CheckLedgersResponse(accounts_checked=checked.checked, mismatches=[
            pb.LedgerMismatch(account_id=m.account_id, user_id=m.user_id, account=m.account, balance=m.balance,
                              entries_sum=m.entries_sum) for m in checked.mismatches],
            next_after_account_id=checked.last_account_id if checked.checked == limit else 0)

    # points

    def QuotePoints(self, request: pb.QuotePointsRequest, context: grpc.ServicerContext) -> pb.QuotePointsResponse:
        quote = service.quote_points(self.uow(), user_id=require_caller().user_id, points=request.points,
                                     payable_fen=request.payable_fen)
        return pb.QuotePointsResponse(available_points=quote.available_points, usable_points=quote.usable_points,
                                      discount_fen=quote.discount_fen)

    def LockPoints(self, request: pb.LockPointsRequest, context: grpc.ServicerContext) -> pb.LockPointsResponse:
        quote = service.lock_points(self.uow(), user_id=require_caller().user_id, order_no=request.order_no,
                                    points=request.points, payable_fen=request.payable_fen)
        return pb.LockPointsResponse(points=quote.usable_points, discount_fen=quote.discount_fen)

    def ReleasePoints(self, request: pb.ReleasePointsRequest, context: grpc.ServicerContext) -> pb.ReleasePointsResponse:
        return pb.ReleasePointsResponse(points=service.release_points(self.uow(), order_no=request.order_no,
                                                                      user_id=_owner_unless_staff()))

    # coupons

    def CreateCouponTemplate(self, request: pb.CreateCouponTemplateRequest,
                             context: grpc.ServicerContext) -> pb.CouponTemplate:
        caller = require_caller(*TEMPLATE_EDITORS)
        if not (request.HasField("valid_from") and request.HasField("valid_to")):
            raise InvalidInput("COUPON_TEMPLATE_INVALID", "valid_from and valid_to are required",
                               details={"valid_to": "required"})
        return _template(service.create_coupon_template(
            self.uow(), self.categories, name=request.name, kind=request.kind, amount_fen=request.amount_fen,
            percent_off=request.percent_off, threshold_fen=request.threshold_fen, cap_fen=request.cap_fen,
            total=request.total, per_user_limit=request.per_user_limit, valid_from=_datetime(request.valid_from),
            valid_to=_datetime(request.valid_to), category_ids=list(request.category_ids), created_by=caller.user_id,
            needs_approval=not caller.has_any_role(Role.ADMIN), max_face_fen=self.coupon_max_face_fen,
            idempotency_key=request.idempotency_key))

    def ListCouponTemplates(self, request: pb.ListCouponTemplatesRequest,
                            context: grpc.ServicerContext) -> pb.ListCouponTemplatesResponse:
        require_caller(*TEMPLATE_READERS)
        found, total = service.coupon_templates(self.uow(), status=request.status, **_page(request))
        return pb.ListCouponTemplatesResponse(templates=[_counted_template(t) for t in found], total=total)

    def GetCouponTemplate(self, request: pb.GetCouponTemplateRequest,
                          context: grpc.ServicerContext) -> pb.CouponTemplate:
        require_caller(*TEMPLATE_READERS)
        return _template(service.coupon_template(self.uow(), template_id=request.template_id))

    def ApproveCouponTemplate(self, request: pb.ApproveCouponTemplateRequest,
                              context: grpc.ServicerContext) -> pb.CouponTemplate:
        caller = require_caller(*TEMPLATE_APPROVERS)
        return _template(service.approve_coupon_template(self.uow(), template_id=request.template_id,
                                                         actor_id=caller.user_id))

    def DisableCouponTemplate(self, request: pb.DisableCouponTemplateRequest,
                              context: grpc.ServicerContext) -> pb.CouponTemplate:
        caller = require_caller(*TEMPLATE_EDITORS)
        return _template(service.disable_coupon_template(self.uow(), template_id=request.template_id,
                                                         actor_id=caller.user_id, reason=request.reason))

    def ListClaimableCouponTemplates(self, request: pb.ListClaimableCouponTemplatesRequest,
                                     context: grpc.ServicerContext) -> pb.ListClaimableCouponTemplatesResponse:
        found, total = service.claimable_coupon_templates(self.uow(), user_id=require_caller().user_id,
                                                          **_page(request))
        return pb.ListClaimableCouponTemplatesResponse(total=total, templates=[
            pb.ClaimableCouponTemplate(template=_template(template, staff=False), claimed=claimed)
            for template, claimed in found])

    def ClaimCoupon(self, request: pb.ClaimCouponRequest, context: grpc.ServicerContext) -> pb.Coupon:
        coupon, template = service.claim_coupon(self.uow(), user_id=require_caller().user_id,
                                                template_id=request.template_id,
                                                idempotency_key=request.idempotency_key)
        # As ListCoupons shows it: a retry after the template ended answers it expired, not the stored available.
        return _coupon(service.CouponView(coupon, template, coupon.shown_status(template, utcnow())))

    def ListCoupons(self, request: pb.ListCouponsRequest, context: grpc.ServicerContext) -> pb.ListCouponsResponse:
        views, total = service.list_coupons(self.uow(), user_id=require_caller().user_id, status=request.status,
                                            **_page(request))
        return pb.ListCouponsResponse(coupons=[_coupon(v) for v in views], total=total)

    def QuoteCoupons(self, request: pb.QuoteCouponsRequest, context: grpc.ServicerContext) -> pb.QuoteCouponsResponse:
        quotes = service.quote_coupons(self.uow(), user_id=require_caller().user_id, lines=_lines(request.lines),
                                       coupon_id=request.coupon_id)
        return pb.QuoteCouponsResponse(quotes=[
            pb.CouponQuote(coupon=_coupon(q.view), usable=not q.reason, reason=q.reason, discount_fen=q.discount_fen)
            for q in quotes])

    def LockCoupon(self, request: pb.LockCouponRequest, context: grpc.ServicerContext) -> pb.LockCouponResponse:
        locked = service.lock_coupon(self.uow(), user_id=require_caller().user_id, order_no=request.order_no,
                                     coupon_id=request.coupon_id, lines=_lines(request.lines))
        return pb.LockCouponResponse(discount_fen=locked.discount_fen, category_ids=locked.category_ids)

    def ReleaseCoupon(self, request: pb.ReleaseCouponRequest, context: grpc.ServicerContext) -> pb.ReleaseCouponResponse:
        service.release_coupon(self.uow(), order_no=request.order_no, user_id=_owner_unless_staff())
        return pb.ReleaseCouponResponse()

    # balance

    def PayWithBalance(self, request: pb.PayWithBalanceRequest,
                       context: grpc.ServicerContext) -> pb.PayWithBalanceResponse:
        return pb.PayWithBalanceResponse(balance_fen=service.pay_with_balance(
            self.uow(), user_id=require_caller().user_id, order_no=request.order_no, amount_fen=request.amount_fen))

    def RefundToBalance(self, request: pb.RefundToBalanceRequest,
                        context: grpc.ServicerContext) -> pb.RefundToBalanceResponse:
        require_service(*REFUNDING_SERVICES)
        return pb.RefundToBalanceResponse(balance_fen=service.refund_to_balance(
            self.uow(), user_id=request.user_id, refund_no=request.refund_no, order_no=request.order_no,
            amount_fen=request.amount_fen))

    def VoidBalancePayment(self, request: pb.VoidBalancePaymentRequest,
                           context: grpc.ServicerContext) -> pb.VoidBalancePaymentResponse:
        require_service(*PAYMENT_VOIDERS)
        paid = service.void_balance_payment(self.uow(), order_no=request.order_no)
        if paid is None:
            return pb.VoidBalancePaymentResponse(charged=False)
        return pb.VoidBalancePaymentResponse(charged=True, user_id=paid.user_id, amount_fen=paid.amount_fen)

    # withdrawals

    def RequestWithdrawal(self, request: pb.RequestWithdrawalRequest, context: grpc.ServicerContext) -> pb.Withdrawal:
        return _withdrawal(service.request_withdrawal(self.uow(), user_id=require_caller().user_id,
                                                      amount_fen=request.amount_fen,
                                                      idempotency_key=request.idempotency_key), mine=True)

    def DecideWithdrawal(self, request: pb.DecideWithdrawalRequest, context: grpc.ServicerContext) -> pb.Withdrawal:
        caller = require_caller(Role.FINANCE)
        return _withdrawal(service.decide_withdrawal(self.uow(), self.payout, withdrawal_id=request.withdrawal_id,
                                                     approve=request.approve, note=request.note,
                                                     shopper_reason=request.shopper_reason,
                                                     decided_by=caller.user_id))

    def ListWithdrawals(self, request: pb.ListWithdrawalsRequest,
                        context: grpc.ServicerContext) -> pb.ListWithdrawalsResponse:
        require_caller(Role.FINANCE, Role.ADMIN)
        found, total = service.list_withdrawals(self.uow(), status=request.status, **_page(request))
        return pb.ListWithdrawalsResponse(withdrawals=[_withdrawal(w) for w in found], total=total)

    def ListMyWithdrawals(self, request: pb.ListWithdrawalsRequest,
                          context: grpc.ServicerContext) -> pb.ListWithdrawalsResponse:
        found, total = service.my_withdrawals(self.uow(), user_id=require_caller().user_id, **_page(request))
        return pb.ListWithdrawalsResponse(withdrawals=[_withdrawal(w, mine=True) for w in found], total=total)

    def GetMyWithdrawal(self, request: pb.GetMyWithdrawalRequest, context: grpc.ServicerContext) -> pb.Withdrawal:
        return _withdrawal(service.my_withdrawal(self.uow(), user_id=require_caller().user_id,
                                                 withdrawal_id=request.withdrawal_id), mine=True)

    # recharges

    def CreateRecharge(self, request: pb.CreateRechargeRequest, context: grpc.ServicerContext) -> pb.Recharge:
        recharge, payment = service.create_recharge(self.uow(), self.payment, user_id=require_caller().user_id,
                                                    amount_fen=request.amount_fen, channel=request.channel,
                                                    idempotency_key=request.idempotency_key)
        return _recharge(recharge, payment)

    def GetRecharge(self, request: pb.GetRechargeRequest, context: grpc.ServicerContext) -> pb.Recharge:
        return _recharge(service.get_recharge(self.uow(), user_id=require_caller().user_id,
                                              recharge_no=request.recharge_no))

    def CloseRecharge(self, request: pb.CloseRechargeRequest, context: grpc.ServicerContext) -> pb.Recharge:
        return _recharge(service.close_recharge(self.uow(), self.payment, user_id=require_caller().user_id,
                                                recharge_no=request.recharge_no))

    def ListMyRecharges(self, request: pb.ListRechargesRequest,
                        context: grpc.ServicerContext) -> pb.ListRechargesResponse:
        found, total = service.my_recharges(self.uow(), user_id=require_caller().user_id, status=request.status,
                                            **_page(request))
        return pb.ListRechargesResponse(recharges=[_recharge(r) for r in found], total=total)

    def HandleRechargeNotify(self, request: pb.RechargeNotifyRequest,
                             context: grpc.ServicerContext) -> pb.RechargeNotifyResponse:
        try:
            recharge_no = service.handle_recharge_notify(self.uow(), self.payment, channel=request.channel,
                                                         headers=dict(request.headers), body=request.body)
        except NotifyRejected as exc:
            raise InvalidInput("NOTIFY_REJECTED", exc.reason) from None
        return pb.RechargeNotifyResponse(recharge_no=recharge_no)


def _owner_unless_staff() -> int | None:
    """The caller's id when the object must be theirs; None for staff, who act on any."""
    caller = require_caller()
    return None if caller.has_any_role(*STAFF_ACTING_FOR_SHOPPERS) else caller.user_id


def _page(request: PageRequest) -> dict[str, int]:
    """The common page, but a negative offset or limit is refused here rather than read as the nearest valid one."""
    if request.offset < 0 or request.limit < 0:
        raise InvalidInput("PAGE_INVALID", "offset and limit must not be negative")
    return page(request)


def _datetime(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def _lines(lines: list[pb.OrderLine]) -> list[OrderLine]:
    if any(line.amount_fen < 0 for line in lines):
        raise InvalidInput("LINES_INVALID", "line amounts must not be negative", details={"lines": "invalid"})
    return [OrderLine(category_id=line.category_id, amount_fen=line.amount_fen,
                      category_path=tuple(line.category_path)) for line in lines]


def _deprecated_percent(bp: int) -> int:
    """The deprecated discount_percent sent beside the rate `bp` to callers older than discount_bp: floored to the
    percent, as it always was (9025 -> 90)."""
    return bp // 100


def _member(summary: MemberSummary) -> pb.Member:
    member, level = summary.member, summary.member.level
    plan = member.active_plan(summary.now)
    bp = member.discount_bp(summary.now)
    return pb.Member(member_no=member.member_no or "", level=level.code,
                     discount_bp=bp, discount_percent=_deprecated_percent(bp),
                     plan=pb.MemberPlan(id=plan.id, name=plan.name, expires_at=timestamp(member.plan_expires_at))
                     if plan and member.plan_expires_at else None,
                     points_multiplier_percent=level.points_multiplier_percent, points=summary.points,
                     balance_fen=summary.balance_fen, pending_fen=summary.pending_fen, bonus_fen=summary.bonus_fen,
                     points_owed=summary.points_owed,
                     coupons_available=summary.coupons_available, total_spend_fen=member.total_spend_fen,
                     channel=member.channel or "", invite_code=member.referral_code or "", joined_at=timestamp(member.joined_at) if member.joined_at else None)


def _entry(entry: LedgerEntry) -> pb.LedgerEntry:
    return pb.LedgerEntry(id=entry.id, account=entry.account, amount=entry.amount, balance_after=entry.balance_after,
                          kind=entry.kind, reference=entry.reference, created_at=timestamp(entry.created_at))


def _template(template: CouponTemplate, *, staff: bool = True) -> pb.CouponTemplate:
    """The template; with who created and disabled it, and why, only for `staff`."""
    message = pb.CouponTemplate(
        id=template.id or 0, name=template.name, kind=template.kind, amount_fen=template.amount_fen,
        percent_off=template.percent_off, threshold_fen=template.threshold_fen, cap_fen=template.cap_fen,
        total=template.total, issued=template.issued, per_user_limit=template.per_user_limit,
        valid_from=timestamp(template.valid_from), valid_to=timestamp(template.valid_to),
        category_ids=template.category_ids, status=template.status,
        created_at=timestamp(template.created_at) if template.created_at else None)
    if staff:
        message.created_by, message.disabled_by = template.created_by or 0, template.disabled_by or 0
        message.disable_reason, message.approved_by = template.disable_reason, template.approved_by or 0
        if template.disabled_at:
            message.disabled_at.CopyFrom(timestamp(template.disabled_at))
        if template.approved_at:
            message.approved_at.CopyFrom(timestamp(template.approved_at))
    return message


def _counted_template(counted: service.TemplateUsage) -> pb.CouponTemplate:
    message, usage = _template(counted.template), counted.usage
    message.usage.CopyFrom(pb.CouponUsage(available=usage.available, locked=usage.locked, used=usage.used,
                                          expired=usage.expired))
    return message


def _coupon(view: service.CouponView) -> pb.Coupon:
    return pb.Coupon(id=view.coupon.id or 0, template=_template(view.template, staff=False), status=view.status,
                     order_no=view.coupon.order_no or "", claimed_at=timestamp(view.coupon.claimed_at))


def _recharge(recharge: Recharge, payment: dict[str, str] | None = None) -> pb.Recharge:
    return pb.Recharge(id=recharge.id or 0, recharge_no=recharge.recharge_no, amount_fen=recharge.amount_fen,
                       channel=recharge.channel, status=recharge.status, payment=payment or {},
                       bonus_fen=recharge.bonus_fen, created_at=timestamp(recharge.created_at),
                       pay_deadline=timestamp(recharge.pay_deadline),
                       paid_at=timestamp(recharge.paid_at) if recharge.paid_at else None)


def _withdrawal(withdrawal: Withdrawal, *, mine: bool = False) -> pb.Withdrawal:
    """A withdrawal; what confirms its transfer only in its owner's answers (`mine`): it is theirs to confirm. The
    note (finance's, the payout channel's reasons) only in staff's: the owner reads `shopper_reason`."""
    confirm = withdrawal.payout_confirm if mine and withdrawal.awaits_shopper else None
    return pb.Withdrawal(id=withdrawal.id or 0, withdrawal_no=withdrawal.withdrawal_no, user_id=withdrawal.user_id,
                         amount_fen=withdrawal.amount_fen, status=withdrawal.status,
                         note="" if mine else withdrawal.note, shopper_reason=withdrawal.shopper_reason,
                         payout_txn_id=withdrawal.payout_txn_id, created_at=timestamp(withdrawal.created_at),
                         bonus_forfeited_fen=withdrawal.bonus_forfeited_fen, payout_fen=withdrawal.payout_fen,
                         decided_at=timestamp(withdrawal.decided_at) if withdrawal.decided_at else None,
                         awaits_shopper=withdrawal.awaits_shopper,
                         wx_transfer_confirm=pb.WxTransferConfirm(**confirm) if confirm else None)
