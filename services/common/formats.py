"""Formats of values that cross the API and service boundaries: each spelled once, used by every layer.

The gateway documents and checks them in its request models; the services' domains validate
with the same patterns (full matches: a trailing newline is not a phone number).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

ORDER_NO = r"[0-9A-Za-z]{1,32}"       # an order number as searched by staff: never free text (no NUL, no quotes)
# A recharge, refund or withdrawal number in a path (R2026..., RF2026..., LATE<out_trade_no>): what WeChat Pay allows of
# an out_refund_no that our numbers use, and the longest column (64) that stores one.
BUSINESS_NO = r"[0-9A-Za-z_-]{1,64}"
# A carrier's tracking number (运单号: SF1234567890123, 773012345678901, JDVA00012345678): letters, digits and
# hyphens, starting with a letter or digit, so never blank, spaced or hyphens alone.
TRACKING_NO = r"[A-Za-z0-9][A-Za-z0-9-]{0,63}"
CARRIER_MAX = 32
PHONE = r"1[3-9][0-9]{9}"            # mainland mobile number; ASCII digits only (\d would admit full-width ones)
SMS_CODE = r"[0-9]{6}"
# A password as set (signup of staff, change, reset, set by an admin): the user service refuses any other with 400
# PASSWORD_TOO_WEAK, and the gateway documents it for every new_password. No control character: the gateway refuses
# them in any text, a login's password too, so a password holding one (set by the create-staff command, which does
# not pass through the gateway) could never be typed into a login.
PASSWORD_MIN_LENGTH, PASSWORD_MAX_LENGTH = 8, 128
PASSWORD_RULE = (f"{PASSWORD_MIN_LENGTH}-{PASSWORD_MAX_LENGTH} characters with at least one letter (any script) and "
                 "one digit 0-9, no control characters")
CONTROL_CHARACTER = r"[\x00-\x1f\x7f]"  # C0 and DEL: in no name, number, reason, address or password
SMS_PURPOSES = ("login", "reset", "bind", "unbind", "signup")
MAX_PAGE_VIEWS_PER_BATCH = 50        # POST /track: page views in one batch
# Provincial-level divisions as the shipping form lists them (GB/T 2260 names, in its code order): an address's
# province (the user service), hence an order's, and a tracked page view's visitor region (POST /track), so that the
# regions report puts a province's page views and its orders in one row.
PROVINCES = (
    "北京市", "天津市", "河北省", "山西省", "内蒙古自治区", "辽宁省", "吉林省", "黑龙江省", "上海市", "江苏省",
    "浙江省", "安徽省", "福建省", "江西省", "山东省", "河南省", "湖北省", "湖南省", "广东省", "广西壮族自治区",
    "海南省", "重庆市", "四川省", "贵州省", "云南省", "西藏自治区", "陕西省", "甘肃省", "青海省",
    "宁夏回族自治区", "新疆维吾尔自治区", "台湾省", "香港特别行政区", "澳门特别行政区",
)
# What clients send for a province besides its full name: the name without 省, 市, 自治区 or 特别行政区, and for an
# autonomous region without its people too (广西, 内蒙古, 宁夏, 新疆, 西藏; 香港, 澳门). Mini-programs and the delivery
# table have long spoken so ("上海", "广东"), while WeChat's region pickers and chooseAddress give the full name.
PROVINCE_SHORT_NAMES = {re.sub(r"(?:壮族|回族|维吾尔)?(?:自治区|特别行政区|省|市)$", "", name): name for name in PROVINCES}
PROVINCE_RULE = "a provincial-level division, by its full name (上海市, 广东省, 广西壮族自治区) or its short one (上海, 广东, 广西)"
# POST /admin/reports: what an analytics export can be (the analytics figures, the raw events, and the order and
# money ledgers built from them), and the media type of each file format.
REPORT_KINDS = ("daily", "funnel", "retention", "regions", "preferences", "events", "orders", "money")
REPORT_CONTENT_TYPES = {"csv": "text/csv; charset=utf-8",
                        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
REPORT_FORMATS = tuple(REPORT_CONTENT_TYPES)
# What POST /uploads answers (gateway/uploads.py): images elsewhere (review photos) must be one of ours. Its name is
# 32 random hex digits and a signature for the uploader (32 hex), which the gateway checks when a review or an
# after-sales case names it; uploads from before the signature have the 32 digits alone, and reviews and cases that
# kept one still hold it, so both forms are read here (the services cannot check a signature: they have no key).
SIGNED_UPLOAD_URL = r"/media/uploads/([0-9a-f]{32})-([0-9a-f]{32})\.(jpg|png|webp)"
UPLOAD_URL = r"/media/uploads/[0-9a-f]{32}(?:-[0-9a-f]{32})?\.(?:jpg|png|webp)"
# A product image (staff enter them): one of our media paths (the seed's /media/catalog/..., an upload), each segment
# starting with a letter or digit (no "..", no "//"), or an https URL on a named host (the shop's CDN). Never
# javascript:, data:, plain http (mixed content, and the mini-program refuses it) or text breaking out of an attribute.
PRODUCT_IMAGE_URL = (r"(?:/media(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)+"
                     r"|https://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?(?:[/?#][^\s\"'<>\\`]*)?)")
# A SKU's price (and its crossed-out market price) at most: ¥1,000,000 a unit. Far above anything the shop sells,
# far below what overflows an order's totals or WeChat Pay's amount (a 32-bit number of fen).
SKU_PRICE_MAX_FEN = 100_000_000
# A SKU's spec: at most MAX_SPECS names of SPEC_NAME_MAX characters, each with one value of SPEC_VALUE_MAX. An order
# line keeps it as text, "颜色:黑;尺码:XL" (SPEC_TEXT_MAX characters at most), the product service keys a SKU by it as
# JSON, in which `"` and `\` take two characters each (SPEC_KEY_MAX): their columns are that wide, so that every spec
# the product service accepts can be stored and bought.
MAX_SPECS, SPEC_NAME_MAX, SPEC_VALUE_MAX = 5, 20, 50
SPEC_TEXT_MAX = MAX_SPECS * (SPEC_NAME_MAX + 1 + SPEC_VALUE_MAX) + MAX_SPECS - 1                 # 359
SPEC_KEY_MAX = 2 + MAX_SPECS * (2 * SPEC_NAME_MAX + 2 * SPEC_VALUE_MAX + 5) + MAX_SPECS - 1      # 731
# A wallet recharge's amount, and a withdrawal's: the member service refuses any other (400 AMOUNT_INVALID,
# 400 WITHDRAWAL_TOO_SMALL, 422 WITHDRAWAL_TOO_LARGE, 422 WITHDRAWAL_DAILY_LIMIT), the gateway documents them for
# POST /member/recharges and POST /member/withdrawals.
RECHARGE_MIN_FEN, RECHARGE_MAX_FEN = 100, 5_000_000     # 1 to 50,000 yuan
WITHDRAWAL_MIN_FEN = 100                                # 1 yuan
WITHDRAWAL_MAX_PER_DAY_FEN = 500_000                    # 5,000 yuan per shopper per shop day (rejected not counted)
WITHDRAWAL_MAX_FEN = WITHDRAWAL_MAX_PER_DAY_FEN         # a single withdrawal at most: a day's
# A shopper may keep at most this many recharges awaiting payment (each asked about at its channel every minute until
# it ends) and withdrawals awaiting finance's review: another is refused, 422 TOO_MANY_PENDING_RECHARGES /
# TOO_MANY_PENDING_WITHDRAWALS, until one ends.
MAX_PENDING_RECHARGES = 3
MAX_PENDING_WITHDRAWALS = 3
# Ledger accounts one audit call recomputes at most (member.CheckLedgers, GET /admin/ledger-audit): ~60,000 entries,
# well within a call; the whole ledger is checked a range at a time.
LEDGER_CHECK_MAX_ACCOUNTS = 10_000
# A WeChat Pay merchant transfer from this amount (2,000 yuan) names its payee: their verified real name, encrypted
# (services.common.wechatpay's `transfer`, user_name); a smaller one carries no name.
TRANSFER_NAMED_FROM_FEN = 200_000
# What the shopper reads of a withdrawal whose transfer the channel refused (back under review) or failed, instead of
# the channel's reason (an error code, a name check: finance's to read in the note; documented by the gateway).
PAYOUT_REFUSED_SHOPPER = "the transfer could not be made; finance will review it"
PAYOUT_FAILED_SHOPPER = "the transfer failed; the amount is back in your balance"
# A member's discount rate, the share of the price paid, in basis points: 9025 (gold 95% x PLUS 95%) pays 90.25%,
# exactly, from the member service (member.Discount, member.Member) through the order's price to the gateway's
# discount_rate (0.9025). FULL_PRICE_BP is no discount.
FULL_PRICE_BP = 10_000
MAX_REVIEW_IMAGES = 9                # a review's images
REVIEW_CONTENT_MAX = 500             # a review's text, in characters
SHOPPER_REASON_MAX = 200             # what staff write for the shopper of an after-sales or withdrawal decision (chars)

# The shop's day, by which analytics keeps its statistics and a shopper's withdrawals are limited: the Asia/Shanghai
# calendar day (UTC+8, no daylight saving), 16:00 UTC to 16:00 UTC.
SHOP_ZONE = ZoneInfo("Asia/Shanghai")


def shop_day(moment: datetime) -> date:
    """The Asia/Shanghai calendar day of an aware moment."""
    return moment.astimezone(SHOP_ZONE).date()


def shop_day_start(day: date) -> datetime:
    """When the shop day `day` begins, in UTC (its midnight in Shanghai)."""
    return datetime.combine(day, time(0), tzinfo=SHOP_ZONE).astimezone(UTC)


PHONE_PATTERN = re.compile(PHONE)
CONTROL_CHARACTER_PATTERN = re.compile(CONTROL_CHARACTER)
SMS_CODE_PATTERN = re.compile(SMS_CODE)
UPLOAD_URL_PATTERN = re.compile(UPLOAD_URL)
SIGNED_UPLOAD_URL_PATTERN = re.compile(SIGNED_UPLOAD_URL)
PRODUCT_IMAGE_URL_PATTERN = re.compile(PRODUCT_IMAGE_URL)
TRACKING_NO_PATTERN = re.compile(TRACKING_NO)


def password_is_strong(password: str) -> bool:
    """Whether `password` keeps PASSWORD_RULE."""
    return (PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH and any(c.isalpha() for c in password)
            and any(c in "0123456789" for c in password) and not CONTROL_CHARACTER_PATTERN.search(password))


def province_full_name(name: str) -> str | None:
    """The full name (one of PROVINCES) of the province `name` names, in full or short (PROVINCE_SHORT_NAMES); None
    for anything else, text around a name included: one province has one spelling wherever it is kept (an address,
    a profile, a page view, the delivery table), so that the regions report and the delivery lookup find it."""
    if name in PROVINCES:
        return name
    return PROVINCE_SHORT_NAMES.get(name)


STAFF_ACTOR_PREFIX = "staff:"


def discount_bp(bp: int, percent: int) -> int:
    """A member's discount rate in basis points from a member.Discount or member.Member: its `discount_bp`, or, from a
    member service older than that field (0: unset), its deprecated `discount_percent` (0 also unset: full price)."""
    return bp or percent * 100 or FULL_PRICE_BP


def staff_actor(user_id: int) -> str:
    """How a staff member is recorded as the actor of a step, a refund or a review: "staff:<user id>"."""
    return f"{STAFF_ACTOR_PREFIX}{user_id}"


def staff_user_id(actor: str) -> int:
    """The user id of a staff actor (`staff_actor`), for the decisions only staff make (whose own requests they
    may not decide: auth.refuse_own). ValueError for any other actor: such a decision was never meant for it."""
    prefix, _, user_id = actor.partition(":")
    if f"{prefix}:" != STAFF_ACTOR_PREFIX or not user_id.isdigit():
        raise ValueError(f"not a staff actor: {actor!r}")
    return int(user_id)


def shopper_actor(actor: str) -> str:
    """Who acted on an order or an after-sales case, as a shopper reads it: staff are "staff" only (which staff
    member acted is for staff). The order service answers shoppers so, and the gateway's shopper routes show it so
    to whoever calls them."""
    return "staff" if actor.startswith(STAFF_ACTOR_PREFIX) else actor


def anchored(pattern: str) -> str:
    """The pattern as a JSON Schema / pydantic `pattern`: anchored at both ends."""
    return f"^{pattern}$"
