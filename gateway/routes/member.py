"""Member API: membership, wallet and points ledgers, coupons, withdrawals, recharges."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from flask import Blueprint
from google.protobuf.timestamp_pb2 import Timestamp
from mall.member.v1 import member_pb2 as pb
from mall.member.v1.member_pb2_grpc import MemberServiceStub
from pydantic import Field

from gateway.api import Body, Id, Page, PageQuery, Reply, operation, service
from gateway.ratelimit import Limit
from services.common import formats

bp = Blueprint("member", __name__, url_prefix="/api/v1/member")

MAX_FEN = 10**12  # far beyond any real amount; keeps int64 arithmetic safe


def moment(stamp: Timestamp) -> datetime | None:
    return stamp.ToDatetime(tzinfo=UTC) if stamp.seconds or stamp.nanos else None


class SignUp(Body):
    # Not "purchase": the shop records that itself, when paid spend reaches 100 yuan (the member service refuses it too).
    channel: Literal["self", "invitation", "campaign"]
    invite_code: str | None = Field(None, pattern=r"^[A-Za-z0-9]{4,32}$",
                                    description="a member's invite code (case-insensitive); required for invitation")


class Plan(Reply):
    id: int
    name: str
    expires_at: datetime


class PlanOut(Reply):
    """A paid plan on sale."""

    id: int
    name: str
    price_fen: int
    days: int
    discount_rate: float = Field(description="on top of the level's, exactly: 0.95 = another 5% off (a gold member, "
                                             "0.95, pays 0.95 x 0.95 = 0.9025)")


class Plans(Reply):
    """The paid plans on sale."""

    items: list[PlanOut]


class MemberOut(Reply):
    """A member's account."""

    member_no: str
    level: str = Field(description="normal | silver | gold | diamond, by total paid spend")
    discount_rate: float = Field(description="share of the price paid now (level x active plan, exact, to the "
                                             "basis point): 0.95 = 5% off, 0.9025 (gold with PLUS) = 9.75% off; "
                                             "orders take off the goods x (1 - this), rounded down to the fen")
    points_multiplier: float = Field(description="points per yuan paid")
    points: int
    balance_fen: int
    pending_fen: int = Field(description="held by withdrawals under review")
    coupons_available: int
    total_spend_fen: int
    channel: str
    joined_at: datetime | None
    plan: Plan | None = Field(None, description="the active paid plan, if any")
    invite_code: str = Field("", description="my own code: who signs up with it is recorded as invited by me")
    bonus_fen: int = Field(0, description="promotional credit: pays orders before the balance, never withdrawn")
    points_owed: int = Field(0, description="points a refund could not take back (already spent or held for an "
                                            "order): taken from the next points credited to me")

    @classmethod
    def from_proto(cls, member: pb.Member) -> MemberOut:
        discount_bp = formats.discount_bp(member.discount_bp, member.discount_percent)
        return cls(member_no=member.member_no, level=member.level, discount_rate=discount_bp / formats.FULL_PRICE_BP,
                   points_multiplier=member.points_multiplier_percent / 100, points=member.points,
                   balance_fen=member.balance_fen, pending_fen=member.pending_fen,
                   coupons_available=member.coupons_available, total_spend_fen=member.total_spend_fen,
                   channel=member.channel, joined_at=moment(member.joined_at), invite_code=member.invite_code,
                   bonus_fen=member.bonus_fen, points_owed=member.points_owed,
                   plan=Plan(id=member.plan.id, name=member.plan.name,
                             expires_at=member.plan.expires_at.ToDatetime(tzinfo=UTC))
                   if member.HasField("plan") else None)


class WalletOut(Reply):
    """My wallet, member or not: a shopper who cannot join yet (no phone bound) may still recharge, pay and withdraw."""

    balance_fen: int = Field(description="available: pays orders, may be withdrawn; GET /member's balance_fen")
    pending_fen: int = Field(description="held by withdrawals under review")
    bonus_fen: int = Field(description="promotional credit: pays orders before the balance, never withdrawn")

    @classmethod
    def from_proto(cls, wallet: pb.Wallet) -> WalletOut:
        return cls(balance_fen=wallet.balance_fen, pending_fen=wallet.pending_fen, bonus_fen=wallet.bonus_fen)


class LedgerEntryOut(Reply):
    """One points ledger line."""

    id: int
    account: str = Field(description="points (spendable; the shopper's history has only these) | points_locked "
                                     "(held for unpaid orders; staff's member record shows them too)")
    amount: int = Field(description="points; signed")
    balance_after: int = Field(description="points, of `account`")
    kind: str = Field(description="order_paid (earned) | order_refunded (taken back by a refund) | points_locked "
                                  "(held at checkout) | points_released (a hold given back) | points_used | "
                                  "points_returned | points_expired | points_owed_taken (what a refund could not take "
                                  "back, taken from points credited later)")
    reference: str
    created_at: datetime

    @classmethod
    def from_proto(cls, entry: pb.LedgerEntry) -> LedgerEntryOut:
        return cls(id=entry.id, account=entry.account, amount=entry.amount, balance_after=entry.balance_after,
                   kind=entry.kind, reference=entry.reference, created_at=entry.created_at.ToDatetime(tzinfo=UTC))


class WalletEntryOut(Reply):
    """One wallet ledger line: money, so in fen and named `*_fen` (`amount` and `balance_after` repeat them for
    clients written before; read the `_fen` fields)."""

    id: int
    account: str = Field(description="available | pending | bonus")
    amount_fen: int = Field(description="signed")
    balance_after_fen: int
    amount: int = Field(description="deprecated: amount_fen", json_schema_extra={"deprecated": True})
    balance_after: int = Field(description="deprecated: balance_after_fen", json_schema_extra={"deprecated": True})
    kind: str
    reference: str
    created_at: datetime

    @classmethod
    def from_proto(cls, entry: pb.LedgerEntry) -> WalletEntryOut:
        return cls(id=entry.id, account=entry.account, amount_fen=entry.amount, balance_after_fen=entry.balance_after,
                   amount=entry.amount, balance_after=entry.balance_after, kind=entry.kind, reference=entry.reference,
                   created_at=entry.created_at.ToDatetime(tzinfo=UTC))


class CouponTemplateOut(Reply):
    """A coupon template."""

    id: int
    name: str
    kind: Literal["fixed", "percent"]
    amount_fen: int
    percent_off: int
    threshold_fen: int
    cap_fen: int = Field(description="percent coupons: the most one coupon takes off, which a percent template "
                         "must have (1 to MEMBER_COUPON_MAX_FACE_FEN; 0 only on one created before that "
                         "rule: no cap); 0 on fixed coupons")
    total: int
    issued: int
    per_user_limit: int
    valid_from: datetime
    valid_to: datetime
    category_ids: list[int]

    @classmethod
    def from_proto(cls, template: pb.CouponTemplate) -> CouponTemplateOut:
        return cls(id=template.id, name=template.name, kind=template.kind,  # type: ignore[arg-type]
                   amount_fen=template.amount_fen, percent_off=template.percent_off,
                   threshold_fen=template.threshold_fen, cap_fen=template.cap_fen, total=template.total,
                   issued=template.issued, per_user_limit=template.per_user_limit,
                   valid_from=template.valid_from.ToDatetime(tzinfo=UTC),
                   valid_to=template.valid_to.ToDatetime(tzinfo=UTC), category_ids=list(template.category_ids))


class ClaimableTemplateOut(CouponTemplateOut):
    """A coupon template I may claim now."""

    claimed: int = Field(description="how many of it I hold (fewer than per_user_limit)")

    @classmethod
    def from_proto(cls, claimable: pb.ClaimableCouponTemplate) -> ClaimableTemplateOut:  # type: ignore[override]
        return cls(**CouponTemplateOut.from_proto(claimable.template).model_dump(), claimed=claimable.claimed)


class CouponOut(Reply):
    """A coupon of the caller's."""

    id: int
    status: Literal["available", "locked", "used", "expired"]
    order_no: str | None
    claimed_at: datetime
    template: CouponTemplateOut

    @classmethod
    def from_proto(cls, coupon: pb.Coupon) -> CouponOut:
        return cls(id=coupon.id, status=coupon.status, order_no=coupon.order_no or None,  # type: ignore[arg-type]
                   claimed_at=coupon.claimed_at.ToDatetime(tzinfo=UTC),
                   template=CouponTemplateOut.from_proto(coupon.template))


class CouponsQuery(PageQuery):
    status: Literal["available", "locked", "used", "expired"] | None = None


class ClaimCoupon(Body):
    template_id: int = Id


def judged_by_member(low: int, high: int, description: str) -> Any:
    """An amount the member service judges (its rule in services/common/formats.py): documented as low..high, so
    that the contract states the real limits, while the gateway bounds it only by MAX_FEN and leaves the rest to the
    service's own codes, which the description names."""
    return Field(ge=1, le=MAX_FEN, json_schema_extra={"minimum": low, "maximum": high}, description=description)


class WithdrawalRequest(Body):
    amount_fen: int = judged_by_member(
        formats.WITHDRAWAL_MIN_FEN, formats.WITHDRAWAL_MAX_PER_DAY_FEN,
        f"at least {formats.WITHDRAWAL_MIN_FEN} fen (400 WITHDRAWAL_TOO_SMALL); at most {formats.WITHDRAWAL_MAX_FEN} "
        f"fen at once (422 WITHDRAWAL_TOO_LARGE); at most {formats.WITHDRAWAL_MAX_PER_DAY_FEN} fen a shop day (from "
        "00:00 in Shanghai, 16:00 UTC), this one included (422 WITHDRAWAL_DAILY_LIMIT). From "
        f"{formats.TRANSFER_NAMED_FROM_FEN} fen the WeChat transfer names the payee: the shopper's verified real name (without one, finance's approval answers 422 PAYOUT_FAILED and "
        "the withdrawal stays under review, nothing sent)")


SHOPPER_REASON = (f"what the shopper reads of it: finance's words for them when deciding it (at most "
                  f"{formats.SHOPPER_REASON_MAX} characters; above all why it was rejected); when the transfer was "
                  f"refused, \"{formats.PAYOUT_REFUSED_SHOPPER}\" (back under review), when it failed, "
                  f"\"{formats.PAYOUT_FAILED_SHOPPER}\"; else empty")


class _Withdrawal(Reply):
    id: int
    withdrawal_no: str
    user_id: int
    status: Literal["PENDING_REVIEW", "PAYING", "PAID", "REJECTED", "FAILED"]
    amount_fen: int = Field(description="taken from the available balance")
    bonus_forfeited_fen: int = Field(description="bonus credit of the recharges it draws on, forfeited")
    payout_fen: int = Field(description="what the transfer pays: amount_fen less the forfeited bonus already spent")
    shopper_reason: str = Field(description=SHOPPER_REASON)
    created_at: datetime
    decided_at: datetime | None
    awaits_shopper: bool = Field(description="PAYING by a WeChat Pay transfer that is paid only once the shopper "
                                 "confirms receipt in WeChat (WeChat Pay cancels it after 24 hours unconfirmed: the "
                                 "withdrawal then ends FAILED, the amount back to the balance)")



class WithdrawalOut(_Withdrawal):
    """A withdrawal, as staff read it."""

    note: str = Field(description="staff only: finance's note, and the payout channel's reasons "
                      "(\"[payout refused: ...]\", \"[payout failed: ...]\"); never shown to the shopper")

    @classmethod
    def from_proto(cls, withdrawal: pb.Withdrawal) -> WithdrawalOut:
        return cls(**_withdrawal_fields(withdrawal), note=withdrawal.note)


def _withdrawal_fields(withdrawal: pb.Withdrawal) -> dict[str, Any]:
    return {"id": withdrawal.id, "withdrawal_no": withdrawal.withdrawal_no, "user_id": withdrawal.user_id,
            "status": withdrawal.status, "amount_fen": withdrawal.amount_fen,
            "bonus_forfeited_fen": withdrawal.bonus_forfeited_fen, "payout_fen": withdrawal.payout_fen,
            "shopper_reason": withdrawal.shopper_reason, "created_at": withdrawal.created_at.ToDatetime(tzinfo=UTC),
            "decided_at": moment(withdrawal.decided_at), "awaits_shopper": withdrawal.awaits_shopper}


class WxTransferConfirmOut(Reply):
    """Pass to wx.requestMerchantTransfer as {mchId: mch_id, appId: app_id, package}: the shopper confirms receipt."""

    mch_id: str
    app_id: str
    package: str = Field(description="the WeChat Pay transfer bill's package_info")


class MyWithdrawalOut(_Withdrawal):
    """A withdrawal of mine: what finance wrote for me (shopper_reason), never their note."""

    wx_transfer_confirm: WxTransferConfirmOut | None = Field(
        description="while the withdrawal's WeChat Pay transfer awaits my confirmation (awaits_shopper), what the "
                    "mini-program calls wx.requestMerchantTransfer with; nothing is paid until I confirm; else null")

    @classmethod
    def from_proto(cls, withdrawal: pb.Withdrawal) -> MyWithdrawalOut:
        confirm = withdrawal.wx_transfer_confirm if withdrawal.HasField("wx_transfer_confirm") else None
        return cls(**_withdrawal_fields(withdrawal), wx_transfer_confirm=WxTransferConfirmOut(
            mch_id=confirm.mch_id, app_id=confirm.app_id, package=confirm.package) if confirm else None)


class RechargeRequest(Body):
    amount_fen: int = judged_by_member(
        formats.RECHARGE_MIN_FEN, formats.RECHARGE_MAX_FEN,
        f"{formats.RECHARGE_MIN_FEN}-{formats.RECHARGE_MAX_FEN} fen (400 AMOUNT_INVALID otherwise)")
    channel: Literal["wechat", "alipay", "bank_card"]


RechargeStatus = Literal["PENDING", "PAID", "EXPIRED", "CLOSED"]


class RechargeView(Reply):
    """A recharge of mine: has the payment arrived?"""

    id: int
    recharge_no: str
    status: RechargeStatus = Field(description="PENDING while awaiting payment; PAID once the channel's verified "
                                   "payment was credited; EXPIRED when the channel said it was not paid by pay_deadline "
                                   "(a payment the channel reports later still credits it: PAID); CLOSED when the "
                                   "shopper closed it (POST …/close; likewise credited if a payment still arrives)")
    channel: Literal["wechat", "alipay", "bank_card"]
    amount_fen: int
    bonus_fen: int = Field(description="the bonus credit it earned when paid; 0 while PENDING")
    created_at: datetime
    pay_deadline: datetime = Field(description="the end of the channel's payment window; a recharge still "
                                               "PENDING after it is asked about once more and EXPIRED unpaid")
    paid_at: datetime | None

    @classmethod
    def fields(cls, recharge: pb.Recharge) -> dict[str, object]:
        return {"id": recharge.id, "recharge_no": recharge.recharge_no, "status": recharge.status,
                "channel": recharge.channel, "amount_fen": recharge.amount_fen, "bonus_fen": recharge.bonus_fen,
                "created_at": moment(recharge.created_at), "pay_deadline": moment(recharge.pay_deadline),
                "paid_at": moment(recharge.paid_at)}

    @classmethod
    def from_proto(cls, recharge: pb.Recharge) -> RechargeView:
        return cls(**cls.fields(recharge))  # type: ignore[arg-type]


class RechargeOut(RechargeView):
    """A recharge awaiting payment, with the channel's payment parameters."""

    payment: dict[str, str] = Field(description="the channel's payment parameters, with out_trade_no")

    @classmethod
    def from_proto(cls, recharge: pb.Recharge) -> RechargeOut:
        return cls(**cls.fields(recharge), payment=dict(recharge.payment))  # type: ignore[arg-type]


class RechargesQuery(PageQuery):
    status: RechargeStatus | None = None


@bp.post("/signup")
@operation(summary="Become a member (again: the same membership)", tag="member", body=SignUp,
           responses={200: MemberOut},
           description="channel: how the shopper came, self, invitation (needs a member's invite_code) or campaign. "
                       "A shopper whose paid spend reaches 100 yuan joins by itself with channel purchase, which a "
                       "signup cannot declare (400). Membership is by phone number: an account with no phone bound "
                       "(WeChat-only) is refused 422 PHONE_REQUIRED, nothing joined; bind one with POST /me/phone.")
def sign_up(body: SignUp) -> MemberOut:
    reply = service(MemberServiceStub).SignUp(pb.SignUpRequest(channel=body.channel,
                                                                invite_code=body.invite_code or ""))
    return MemberOut.from_proto(reply.member)


@bp.get("")
@operation(summary="My member account", tag="member", responses={200: MemberOut},
           description="404 MEMBER_NOT_FOUND for a shopper who has not joined: their balances are GET /member/wallet.")
def get_member() -> MemberOut:
    return MemberOut.from_proto(service(MemberServiceStub).GetMember(pb.GetMemberRequest()).member)


@bp.get("/wallet")
@operation(summary="My wallet: balance, pending withdrawals, bonus credit (members and non-members)", tag="member",
           responses={200: WalletOut},
           description="Any signed-in shopper, member or not: a WeChat-only shopper cannot join (422 PHONE_REQUIRED) "
                       "and gets 404 from GET /member, yet may recharge, and reads that money here. For a member the "
                       "same numbers as GET /member; the movements are GET /member/ledger.")
def get_wallet() -> WalletOut:
    return WalletOut.from_proto(service(MemberServiceStub).GetWallet(pb.GetWalletRequest()))


@bp.get("/plans")
@operation(summary="Paid membership plans", tag="member", responses={200: Plans})
def list_plans() -> Plans:
    return Plans(items=[PlanOut(id=p.id, name=p.name, price_fen=p.price_fen, days=p.days,
                                discount_rate=p.discount_percent / 100)
                        for p in service(MemberServiceStub).ListPlans(pb.ListPlansRequest()).plans])


@bp.post("/plans/<id:plan_id>/subscribe")
@operation(summary="Buy or renew a paid plan with my balance (a renewal extends from the current expiry)",
           tag="member", responses={200: MemberOut}, idempotent=True, description="The same key buys once.")
def subscribe_plan(plan_id: int, idempotency_key: str) -> MemberOut:
    return MemberOut.from_proto(service(MemberServiceStub).SubscribePlan(pb.SubscribePlanRequest(
        plan_id=plan_id, idempotency_key=idempotency_key)).member)


@bp.get("/ledger")
@operation(summary="My wallet ledger, newest first", tag="member", query=PageQuery,
           responses={200: Page[WalletEntryOut]})
def wallet_ledger(query: PageQuery) -> Page[WalletEntryOut]:
    reply = service(MemberServiceStub).ListWalletEntries(pb.ListEntriesRequest(offset=query.offset,
                                                                               limit=query.page_size))
    return Page[WalletEntryOut].of([WalletEntryOut.from_proto(e) for e in reply.entries], query, reply.total)


@bp.get("/points")
@operation(summary="My points history, newest first", tag="member", query=PageQuery,
           responses={200: Page[LedgerEntryOut]},
           description="My spendable points, each movement once, balance_after always of them: points held at "
                       "checkout show as points_locked (minus), given back as points_released; the order's payment "
                       "spends the held points and moves nothing more.")
def points_ledger(query: PageQuery) -> Page[LedgerEntryOut]:
    reply = service(MemberServiceStub).ListPointsEntries(pb.ListEntriesRequest(offset=query.offset,
                                                                               limit=query.page_size))
    return Page[LedgerEntryOut].of([LedgerEntryOut.from_proto(e) for e in reply.entries], query, reply.total)


@bp.get("/coupons")
@operation(summary="My coupons (available, locked, used, expired)", tag="member", query=CouponsQuery,
           responses={200: Page[CouponOut]})
def list_coupons(query: CouponsQuery) -> Page[CouponOut]:
    reply = service(MemberServiceStub).ListCoupons(pb.ListCouponsRequest(status=query.status or "",
                                                                         offset=query.offset, limit=query.page_size))
    return Page[CouponOut].of([CouponOut.from_proto(c) for c in reply.coupons], query, reply.total)


@bp.get("/coupon-templates")
@operation(summary="Coupons I may claim now (领券中心), newest first", tag="member", query=PageQuery,
           responses={200: Page[ClaimableTemplateOut]},
           description="Active templates that have started and not ended, not all claimed, of which I hold fewer "
                       "than the per-user limit; claim one with POST /member/coupons/claim.")
def claimable_coupon_templates(query: PageQuery) -> Page[ClaimableTemplateOut]:
    reply = service(MemberServiceStub).ListClaimableCouponTemplates(pb.ListClaimableCouponTemplatesRequest(
        offset=query.offset, limit=query.page_size))
    return Page[ClaimableTemplateOut].of([ClaimableTemplateOut.from_proto(t) for t in reply.templates], query,
                                         reply.total)


@bp.post("/coupons/claim")
@operation(summary="Claim a coupon of a template", tag="member", body=ClaimCoupon, responses={201: CouponOut},
           idempotent=True, key_optional=True,
           description="One coupon of an active template, within its total and the per-user limit; a retry with "
                       "the same Idempotency-Key and template answers the coupon the first claim issued (as it is "
                       "now), never a second coupon nor COUPON_LIMIT_REACHED. 404 "
                       "COUPON_TEMPLATE_NOT_FOUND; 422 COUPON_TEMPLATE_NOT_APPROVED while it waits for approval, 422 "
                       "COUPON_TEMPLATE_DISABLED once disabled, 422 COUPON_EXPIRED past its end, 422 "
                       "COUPON_LIMIT_REACHED, 422 COUPON_SOLD_OUT; 403 OWN_REQUEST for the staff member who created "
                       "or approved it.")
def claim_coupon(body: ClaimCoupon, idempotency_key: str) -> tuple[CouponOut, int]:
    return CouponOut.from_proto(service(MemberServiceStub).ClaimCoupon(
        pb.ClaimCouponRequest(template_id=body.template_id, idempotency_key=idempotency_key))), 201


# A shopper starts a recharge or a withdrawal or two at a time; more is a script making the channels sign and query
# payments, or the member service lock the shopper's wallet, for nothing (the member service also caps what one
# shopper has awaiting payment or review: MAX_PENDING_RECHARGES, MAX_PENDING_WITHDRAWALS).
WALLET_REQUEST_LIMITS = (Limit("user", 10, 60),)


WX_TRANSFER_CONFIRM = ("Once finance approves it, the withdrawal is paid by a WeChat Pay transfer that the shopper "
                       "must confirm: while `wx_transfer_confirm` is set, the mini-program calls "
                       "wx.requestMerchantTransfer({mchId: mch_id, appId: app_id, package}); the withdrawal is PAID "
                       "once WeChat Pay reports the transfer done, FAILED (the amount back) if it is never confirmed.")


@bp.post("/withdrawals")
@operation(summary="Withdraw from my balance (held at once, paid after review)", tag="member",
           body=WithdrawalRequest, responses={201: MyWithdrawalOut}, idempotent=True, limits=WALLET_REQUEST_LIMITS,
           description=f"The same key gives the same withdrawal. 422 TOO_MANY_PENDING_WITHDRAWALS "
                       f"(details.pending_withdrawals, details.limit) when the shopper already has "
                       f"{formats.MAX_PENDING_WITHDRAWALS} awaiting review: nothing is held. {WX_TRANSFER_CONFIRM}")
def request_withdrawal(body: WithdrawalRequest, idempotency_key: str) -> tuple[MyWithdrawalOut, int]:
    return MyWithdrawalOut.from_proto(service(MemberServiceStub).RequestWithdrawal(pb.RequestWithdrawalRequest(
        amount_fen=body.amount_fen, idempotency_key=idempotency_key))), 201


@bp.get("/withdrawals")
@operation(summary="My withdrawals, newest first", tag="member", query=PageQuery,
           responses={200: Page[MyWithdrawalOut]}, description=WX_TRANSFER_CONFIRM)
def my_withdrawals(query: PageQuery) -> Page[MyWithdrawalOut]:
    reply = service(MemberServiceStub).ListMyWithdrawals(pb.ListWithdrawalsRequest(offset=query.offset,
                                                                                  limit=query.page_size))
    return Page[MyWithdrawalOut].of([MyWithdrawalOut.from_proto(w) for w in reply.withdrawals], query, reply.total)


@bp.get("/withdrawals/<id:withdrawal_id>")
@operation(summary="One withdrawal of mine", tag="member", responses={200: MyWithdrawalOut},
           description=f"404 WITHDRAWAL_NOT_FOUND for anyone else's. {WX_TRANSFER_CONFIRM}")
def my_withdrawal(withdrawal_id: int) -> MyWithdrawalOut:
    return MyWithdrawalOut.from_proto(service(MemberServiceStub).GetMyWithdrawal(pb.GetMyWithdrawalRequest(
        withdrawal_id=withdrawal_id)))




@bp.post("/recharges")
@operation(summary="Start a recharge: the channel's payment parameters; credited on the verified notify",
           tag="member", body=RechargeRequest, responses={201: RechargeOut}, idempotent=True, limits=WALLET_REQUEST_LIMITS,
           description="The same key and body give the first recharge again (its status now, the payment "
                       "parameters first given), the same key with another body is a 409. A channel that refuses "
                       "stores no recharge. 422 TOO_MANY_PENDING_RECHARGES (details.pending_recharges, "
                       f"details.limit) when the shopper already has {formats.MAX_PENDING_RECHARGES} awaiting "
                       "payment: pay one, close one (POST /member/recharges/{recharge_no}/close), or wait until "
                       "one expires (minutes after its pay_deadline).")
def create_recharge(body: RechargeRequest, idempotency_key: str) -> tuple[RechargeOut, int]:
    return RechargeOut.from_proto(service(MemberServiceStub).CreateRecharge(pb.CreateRechargeRequest(
        amount_fen=body.amount_fen, channel=body.channel, idempotency_key=idempotency_key))), 201


@bp.get("/recharges")
@operation(summary="My recharges, newest first", tag="member", query=RechargesQuery,
           responses={200: Page[RechargeView]})
def my_recharges(query: RechargesQuery) -> Page[RechargeView]:
    reply = service(MemberServiceStub).ListMyRecharges(pb.ListRechargesRequest(
        status=query.status or "", offset=query.offset, limit=query.page_size))
    return Page[RechargeView].of([RechargeView.from_proto(r) for r in reply.recharges], query, reply.total)


@bp.get("/recharges/<no:recharge_no>")
@operation(summary="One of my recharges: poll it after paying until it is PAID", tag="member",
           responses={200: RechargeView}, description="Another shopper's recharge is a 404.")
def get_recharge(recharge_no: str) -> RechargeView:
    return RechargeView.from_proto(service(MemberServiceStub).GetRecharge(pb.GetRechargeRequest(
        recharge_no=recharge_no)))


@bp.post("/recharges/<no:recharge_no>/close")
@operation(summary="Close one of my recharges awaiting payment, so another can start", tag="member",
           responses={200: RechargeView}, limits=WALLET_REQUEST_LIMITS,
           description="The channel closes the payment first, then the recharge is CLOSED and no longer counts "
                       f"against the {formats.MAX_PENDING_RECHARGES} awaiting payment. One the channel reports paid "
                       "(the payer beat the close) is credited and answered PAID, a 200 too; so is a CLOSED or "
                       "PAID one, as it is. 404 RECHARGE_NOT_FOUND for another shopper's; 409 "
                       "RECHARGE_STATE_CONFLICT (details.status) for an EXPIRED one, or one being paid right now; "
                       "422 RECHARGE_NOT_CLOSABLE for a bank-card recharge (the channel has no close), an Alipay "
                       "one never opened in Alipay (it stays payable until pay_deadline), or a WeChat Pay one "
                       "WeChat Pay has not registered yet (minutes after it started: try again); 503 "
                       "WECHATPAY_UNAVAILABLE or ALIPAY_UNAVAILABLE when the channel gives no trustworthy answer: "
                       "the recharge stays PENDING, try again.")
def close_recharge(recharge_no: str) -> RechargeView:
    return RechargeView.from_proto(service(MemberServiceStub).CloseRecharge(pb.CloseRechargeRequest(
        recharge_no=recharge_no)))
