"""The shopper's own account: profile, phone, password, shipping addresses, real-name verification."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Literal

import grpc
from flask import Blueprint, current_app, g, request
from flask.blueprints import BlueprintSetupState
from mall.product.v1 import product_pb2
from mall.product.v1.product_pb2_grpc import ProductServiceStub
from mall.user.v1 import user_pb2
from mall.user.v1.user_pb2_grpc import UserServiceStub
from pydantic import Field

from gateway.api import Body, Page, PageQuery, Province, ProvinceOrEmpty, Reply, omittable, operation, service
from gateway.config import GatewaySettings
from gateway.errors import ApiError
from gateway.metrics import IDENTITY_CHECKS, IDENTITY_DAILY_BUDGET
from gateway.ratelimit import DAY, Limit, client_values
from gateway.routes.auth import LOGIN_LIMITS, NewPassword, Phone, Session
from gateway.routes.catalog import MyReviewOut, ProductSummary
from services.common import formats
from services.common.discovery import DiscoveryError
from services.common.formats import anchored
from services.common.grpc_server import from_grpc
from services.common.logs import mask_phone

bp = Blueprint("me", __name__, url_prefix="/api/v1/me")

Gender = Literal["unknown", "male", "female"]


class ProfileOut(Reply):
    """My profile; the phone is masked."""

    id: int
    phone: str = Field(description="masked, 138****8000")
    nickname: str
    avatar_url: str
    gender: Gender
    birthday: date | None
    region: str = Field(description="my province by its full name (广东省), or empty; a profile last changed before "
                                    "regions were provinces may hold other text, answered as it was saved")
    identity_verified: bool
    wechat_bound: bool

    @classmethod
    def from_proto(cls, profile: user_pb2.Profile) -> ProfileOut:
        return cls(id=profile.id, phone=profile.phone_masked, nickname=profile.nickname,
                   avatar_url=profile.avatar_url, gender=profile.gender,  # type: ignore[arg-type]
                   birthday=date.fromisoformat(profile.birthday) if profile.birthday else None, region=profile.region,
                   identity_verified=profile.identity_verified, wechat_bound=profile.wechat_bound)


class ProfilePatch(Body):
    """Only these fields can change; send the ones to change (any other field is refused)."""

    nickname: str = omittable(min_length=1, max_length=32)
    avatar_url: str = omittable(max_length=512, description="https URL, or empty")
    gender: Gender = omittable()
    birthday: date | None = Field(None, description="YYYY-MM-DD; null clears it")
    region: ProvinceOrEmpty = omittable(
        description="my province, by its full name (上海市, as WeChat's region picker gives it) or its short one (上海); "
                    "saved by the full name, so that it may be sent as a page view's region (POST /track). Empty "
                    "clears it; any other text is 400")


@bp.get("")
@operation(summary="My profile", tag="me", responses={200: ProfileOut})
def get_me() -> ProfileOut:
    return ProfileOut.from_proto(service(UserServiceStub).GetProfile(user_pb2.GetProfileRequest()))


@bp.patch("")
@operation(summary="Change my profile (nickname, avatar_url, gender, birthday, region)", tag="me",
           body=ProfilePatch, responses={200: ProfileOut})
def patch_me(body: ProfilePatch) -> ProfileOut:
    sent = body.model_fields_set
    request = user_pb2.UpdateProfileRequest(**{name: getattr(body, name) for name in sent - {"birthday"}})
    if "birthday" in sent:
        request.birthday = body.birthday.isoformat() if body.birthday else ""
    return ProfileOut.from_proto(service(UserServiceStub).UpdateProfile(request))


class PhoneBinding(Body):
    phone: str = Phone
    code: str = Field(pattern=anchored(formats.SMS_CODE),
                      description='the 6-digit code of purpose "bind" sent to this phone (POST /auth/sms-codes)')
    wechat_code: str = Field(min_length=1, max_length=128,
                             description="a fresh wx.login code: proves the caller is the owner of the account's "
                                         "WeChat, not only the holder of its access token")


@bp.post("/phone")
@operation(summary="Bind a phone to my account (a WeChat-first one) with an SMS code of purpose bind", tag="me",
           body=PhoneBinding, limits=LOGIN_LIMITS, responses={200: ProfileOut},
           description="Then SMS login and password reset with that phone reach this account. 409 "
                       "PHONE_BOUND_ELSEWHERE when another account has the phone (accounts are never merged: log in "
                       "with the phone instead); 409 PHONE_ALREADY_BOUND when my account has another phone (a bound "
                       "phone cannot be changed); binding the phone I have changes nothing. First the wx.login "
                       "code must be of my account's WeChat (403 WECHAT_MISMATCH; 400 WECHAT_CODE_INVALID), then "
                       "the SMS code is checked as SMS login checks it (400 SMS_CODE_INVALID, SMS_CODE_EXPIRED, "
                       "SMS_CODE_LOCKED).")
def bind_phone(body: PhoneBinding) -> ProfileOut:
    return ProfileOut.from_proto(service(UserServiceStub).BindPhone(
        user_pb2.BindPhoneRequest(phone=body.phone, code=body.code, wechat_code=body.wechat_code)))


class PasswordChange(Body):
    current_password: str = omittable(min_length=1, max_length=128,
                                      description="the current password; or send sms_code instead")
    sms_code: str = omittable(pattern=anchored(formats.SMS_CODE),
                              description='a 6-digit code of purpose "reset" sent to my phone')
    new_password: str = NewPassword


@bp.put("/password")
@operation(summary="Change my password (proof: the current password or an SMS code); ends my other sessions",
           tag="me", body=PasswordChange, limits=(Limit("ip", 10, 60),), responses={200: Session},
           description="Answers a new session; staff roles only when the current password was given. Staff "
                       "cannot use an SMS code (403 STAFF_PASSWORD_BY_ADMIN): an admin sets their password. Wrong "
                       "current passwords count per account (the password login's ceiling, 20 an hour, kept by "
                       "the user service): past it, 429 PASSWORD_LOCKED with Retry-After, even for the right one.")
def change_password(body: PasswordChange) -> Session:
    request = user_pb2.ChangePasswordRequest(new_password=body.new_password)
    if body.current_password is not None:
        request.current_password = body.current_password
    if body.sms_code is not None:
        request.sms_code = body.sms_code
    return Session.from_proto(service(UserServiceStub).ChangePassword(request))


# Shipping addresses

class AddressIn(Body):
    receiver_name: str = Field(min_length=1, max_length=20)
    receiver_phone: str = Field(pattern=anchored(formats.PHONE),
                                description="the full number (answers show it masked, so an edit sends it again)")
    province: Province = Field(description="a provincial-level division by its full name (广东省, as WeChat's "
                                           "chooseAddress gives it) or its short one (广东); saved by the full name")
    city: str = Field(min_length=2, max_length=20)
    district: str = Field(min_length=2, max_length=20)
    detail: str = Field(min_length=2, max_length=120)
    is_default: bool = omittable(description="true makes it the default address; new: false when left out, "
                                             "changed: left as it is")

    def to_proto(self) -> user_pb2.AddressFields:
        return user_pb2.AddressFields(receiver_name=self.receiver_name, receiver_phone=self.receiver_phone,
                                      province=self.province, city=self.city, district=self.district,
                                      detail=self.detail)


class AddressOut(Reply):
    """A shipping address; the receiver's phone is masked."""

    id: int
    receiver_name: str
    receiver_phone: str = Field(description="masked, 138****8000")
    province: str
    city: str
    district: str
    detail: str
    is_default: bool

    @classmethod
    def from_proto(cls, address: user_pb2.Address) -> AddressOut:
        return cls(id=address.id, receiver_name=address.receiver_name,
                   receiver_phone=mask_phone(address.receiver_phone), province=address.province, city=address.city,
                   district=address.district, detail=address.detail, is_default=address.is_default)


class AddressDeleted(Reply):
    """The address is gone (when it was the default, the newest other address is now)."""

    id: int
    deleted: Literal[True] = True


@bp.get("/addresses")
@operation(summary="My shipping addresses, the default first", tag="me", query=PageQuery,
           responses={200: Page[AddressOut]})
def list_addresses(query: PageQuery) -> Page[AddressOut]:
    found = service(UserServiceStub).ListAddresses(user_pb2.ListAddressesRequest()).addresses
    return Page[AddressOut].of_whole([AddressOut.from_proto(a) for a in found], query)


@bp.post("/addresses")
@operation(summary="Add a shipping address (at most 20; the first becomes the default)", tag="me", body=AddressIn,
           responses={201: AddressOut})
def add_address(body: AddressIn) -> tuple[AddressOut, int]:
    reply = service(UserServiceStub).AddAddress(
        user_pb2.AddAddressRequest(fields=body.to_proto(), is_default=bool(body.is_default)))
    return AddressOut.from_proto(reply), 201


@bp.put("/addresses/<id:address_id>")
@operation(summary="Replace one of my addresses; is_default true makes it the default", tag="me", body=AddressIn,
           responses={200: AddressOut},
           description="422 DEFAULT_ADDRESS_REQUIRED for is_default false on the default: make another one the "
                       "default instead.")
def change_address(address_id: int, body: AddressIn) -> AddressOut:
    request = user_pb2.ChangeAddressRequest(address_id=address_id, fields=body.to_proto())
    if body.is_default is not None:
        request.is_default = body.is_default
    return AddressOut.from_proto(service(UserServiceStub).ChangeAddress(request))


@bp.delete("/addresses/<id:address_id>")
@operation(summary="Delete one of my addresses", tag="me", responses={200: AddressDeleted})
def delete_address(address_id: int) -> AddressDeleted:
    service(UserServiceStub).DeleteAddress(user_pb2.DeleteAddressRequest(address_id=address_id))
    return AddressDeleted(id=address_id)


# Real-name verification

class IdentityIn(Body):
    real_name: str = Field(min_length=1, max_length=30, description="as on the ID card, e.g. 张三")
    id_number: str = Field(pattern=r"^[0-9]{17}[0-9Xx]$", description="18-character resident ID number")


class IdentityOut(Reply):
    """My real-name verification, masked."""

    verified: bool
    real_name: str | None = Field(description="masked, 张*")
    id_number: str | None = Field(description="masked, 1101**********002X")
    verified_at: datetime | None

    @classmethod
    def from_proto(cls, reply: user_pb2.Verification) -> IdentityOut:
        if not reply.verified:
            return cls(verified=False, real_name=None, id_number=None, verified_at=None)
        return cls(verified=True, real_name=reply.real_name_masked, id_number=reply.id_number_masked,
                   verified_at=reply.verified_at.ToDatetime(tzinfo=UTC))


# Each real-name check is a paid call to the identity provider. The user service allows each account five a day; the
# shop's own daily budget caps them for all accounts together (many accounts, registered with SMS codes, would
# otherwise each spend five), as GATEWAY_SMS_DAILY_BUDGET caps SMS codes. A check is held against the budget
# when passed on (atomically: checks in flight together see each other) and given back when the user service
# answered before asking the provider (by its code: a malformed name or number, an account verified already, its
# five spent, no such user; UNCHECKED_CODES) or was not reached. Any other answer (a match, a mismatch, the
# provider's own refusal of the name or number, a number taken, an account a concurrent check verified meanwhile:
# `provider_checked`, a timeout) may have been paid for, so it counts. While Redis
# is down the budget is counted in each gateway worker's memory, as the SMS budget is (so per worker), rather than
# refusing: the user service's five a day per account still hold.
IDENTITY_BUDGET_EXHAUSTED = "IDENTITY_DAILY_BUDGET_EXHAUSTED"
UNCHECKED_CODES = frozenset({"REAL_NAME_INVALID", "ID_NUMBER_INVALID", "IDENTITY_ALREADY_VERIFIED",
                             "IDENTITY_CHECKS_EXHAUSTED", "USER_NOT_FOUND"})
UNCHECKED_STATUSES = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})


def identity_budget(settings: GatewaySettings) -> Limit:
    """The day's real-name checks for all accounts together."""
    return Limit("global", settings.identity_daily_budget, DAY)


@bp.record_once
def _publish_identity_budget(state: BlueprintSetupState) -> None:
    limiter = state.app.extensions["rate_limiter"]
    IDENTITY_DAILY_BUDGET.set(limiter.allowed(identity_budget(state.app.extensions["settings"])))


def _provider_not_asked(exc: Exception) -> bool:
    """Whether the user service refused the check before it could reach the identity provider, or was not reached."""
    if isinstance(exc, DiscoveryError):
        return True
    if not isinstance(exc, grpc.RpcError):
        return False
    status, code, _, details = from_grpc(exc)
    if code in UNCHECKED_CODES:
        return not details.get("provider_checked")
    return status in UNCHECKED_STATUSES or (status == grpc.StatusCode.UNAVAILABLE and not code)  # the service is down


@bp.post("/identity")
@operation(summary="Verify my real name (实名认证) with name and ID number", tag="me", body=IdentityIn,
           limits=(Limit("ip", 30, 60),), responses={200: IdentityOut},
           description="409 IDENTITY_ALREADY_VERIFIED when this account is already verified. Each account has five "
                       "checks a day (each is a paid call to the provider; then 429 IDENTITY_CHECKS_EXHAUSTED with "
                       "Retry-After, kept by the user service), and the shop GATEWAY_IDENTITY_DAILY_BUDGET checks "
                       "(default 1000) in any 24 hours for all accounts together (then 429 "
                       "IDENTITY_DAILY_BUDGET_EXHAUSTED with Retry-After). The provider is asked first: 422 IDENTITY_MISMATCH "
                       "when name and number do not match, and only then 409 ID_NUMBER_TAKEN when another account "
                       "verified the number, so no one learns that without knowing the name that goes with it.")
def verify_identity(body: IdentityIn) -> IdentityOut:
    limiter, endpoint = current_app.extensions["rate_limiter"], request.endpoint or ""
    wait, held = limiter.hold(endpoint, identity_budget(current_app.extensions["settings"]),
                              client_values(request.remote_addr))
    if wait is not None:
        IDENTITY_CHECKS.labels("budget_exhausted").inc()
        raise ApiError.too_many_requests(wait, IDENTITY_BUDGET_EXHAUSTED, "the shop's real-name checks of the day "
                                                                          "are all spent")
    try:
        reply = service(UserServiceStub).VerifyIdentity(
            user_pb2.VerifyIdentityRequest(real_name=body.real_name, id_number=body.id_number))
    except Exception as exc:
        if held is not None and _provider_not_asked(exc):
            limiter.release(held)
        else:
            IDENTITY_CHECKS.labels("checked").inc()
        raise
    IDENTITY_CHECKS.labels("checked").inc()
    return IdentityOut.from_proto(reply)


@bp.get("/identity")
@operation(summary="My real-name verification (masked)", tag="me", responses={200: IdentityOut})
def get_identity() -> IdentityOut:
    return IdentityOut.from_proto(service(UserServiceStub).GetVerification(
        user_pb2.GetVerificationRequest(user_id=g.caller.user_id)))


class ViewedProductOut(Reply):
    """A product I viewed, at my latest view of it."""

    product_id: int
    viewed_at: datetime
    product: ProductSummary | None = Field(description="the product as GET /products lists it (no need to open "
                                                       "its page, which would count as a new view); null once it "
                                                       "is no longer on sale")


class HistoryCleared(Reply):
    """My browsing history is empty now."""

    cleared: int = Field(description="how many products it held")


@bp.get("/history")
@operation(summary="Products I viewed, newest first, one entry each (at most 200)", tag="me", query=PageQuery,
           responses={200: Page[ViewedProductOut]})
def list_history(query: PageQuery) -> Page[ViewedProductOut]:
    found = service(UserServiceStub).ListHistory(user_pb2.ListHistoryRequest()).products
    page = found[query.offset:query.offset + query.page_size]
    on_sale: dict[int, ProductSummary] = {}
    if page:
        ids = [viewed.product_id for viewed in page]
        on_sale = {p.id: ProductSummary.from_proto(p) for p in service(ProductServiceStub).SearchProducts(
            product_pb2.SearchProductsRequest(ids=ids, limit=len(ids))).items}
    return Page[ViewedProductOut].of(
        [ViewedProductOut(product_id=v.product_id, viewed_at=v.viewed_at.ToDatetime(tzinfo=UTC),
                          product=on_sale.get(v.product_id)) for v in page], query, len(found))


@bp.delete("/history")
@operation(summary="Clear my browsing history", tag="me", responses={200: HistoryCleared},
           description="Views made before now stay forgotten, even those still being recorded; later ones are kept.")
def clear_history() -> HistoryCleared:
    return HistoryCleared(cleared=service(UserServiceStub).ClearHistory(user_pb2.ClearHistoryRequest()).cleared)


class MyReviewsQuery(PageQuery):
    order_no: str | None = Field(None, pattern=anchored(formats.ORDER_NO),
                                 description="only my reviews of this order: which of its lines I reviewed (line_id); "
                                             "another shopper's order number finds none")


@bp.get("/reviews")
@operation(summary="My reviews, newest first", tag="me", query=MyReviewsQuery, responses={200: Page[MyReviewOut]})
def list_my_reviews(query: MyReviewsQuery) -> Page[MyReviewOut]:
    reply = service(ProductServiceStub).ListMyReviews(product_pb2.ListMyReviewsRequest(
        offset=query.offset, limit=query.page_size, order_no=query.order_no or ""))
    return Page[MyReviewOut].of([MyReviewOut.from_proto(r) for r in reply.items], query, reply.total)
