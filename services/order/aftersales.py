"""After-sales (O4): refund-only and return-and-refund cases on the lines of a shipped or delivered order.

A case is opened by the buyer while the order is SHIPPED, or COMPLETED for `after_sale_days` after
receipt was confirmed (delivery), or partly shipped (PAID with parcels, which can no longer be cancelled:
its shipped units only); it names lines and units (one open case per line: the order row
lock serialises openings, a partial unique index stands behind it), a reason and up to 9 uploaded
images. Only units in a parcel can be claimed, less those refunded since (`claimable_units`): units never shipped
are still to ship, or were cancelled by cancel-unshipped (restocked, refunded by it, or owed by it when its refund
was closed), whatever the order's status; approval and receipt check it again. Its own table-driven state machine, every step in its history (actor, time, reason, and what the shopper
is told of it):

    REQUESTED --approve--> REFUNDING (refund_only) | AWAITING_RETURN (return_refund)
    REQUESTED --reject--> REJECTED
    AWAITING_RETURN --ship_return--> RETURN_SHIPPED (the shopper's carrier and tracking number)
    RETURN_SHIPPED --receive--> REFUNDING (order-returned: the product service restocks the units)
    RETURN_SHIPPED --reject--> REJECTED (what came back is not the goods, or not as sold: no restock, no refund)
    REFUNDING --refunded--> REFUNDED | --refund_failed--> REFUND_FAILED --retry--> REFUNDING (or --reject-->,
                                                   refund-only cases: a return's goods are back, so only its refund ends it;
                                                   or --refunded--> REFUNDED: WeChat Pay paid the closed refund after all)
    REFUNDING --refund_abnormal--> REFUND_ABNORMAL --refunded--> REFUNDED | --refund_resumed--> REFUNDING
                                                   | --refund_failed--> REFUND_FAILED (the refund was closed)
    REQUESTED | AWAITING_RETURN --withdraw--> WITHDRAWN (the shopper changed their mind)
    AWAITING_RETURN --return_expired--> WITHDRAWN (the goods were not sent back within `return_ship_days`: the
                                        return-expiry job, actor "system"; nothing was restocked or refunded)

REFUND_ABNORMAL: WeChat Pay could not pay the refund back (the shopper's card was cancelled, say); its amount
stays reserved, since the merchant may still complete it at WeChat Pay. Staff fix it there and retry (the
same refund is asked about again), or close the refund (POST /admin/refunds/{refund_no}/close), which makes
the case REFUND_FAILED: then a retry starts a new refund, or the case is rejected. It cannot be withdrawn
or rejected while the refund is open.

Who reads what of the history: staff every step as recorded (actor `staff:<id>`, their decision notes and reject
reasons, the receiving note, the refund engine's error codes and instructions to staff). The shopper sees every
step too (each is a status change), but with `CaseStep.shopper_reason` for its reason: their own words where the
step is theirs (the request, the return parcel, a withdrawal), the system's where written for them (a return
not sent back in time, a refund of 0 fen), else the fixed wording of SHOPPER_WORDS per kind of step ("refund
approved", "request declined", ...), and any staff member as "staff". What staff type as the decision's reason is
for staff (it used to be typed as an internal note); what the shopper should read of a decision, above all why a
request is declined, staff write apart (`decide(shopper_reason=)`), and the shopper reads it after the fixed
wording ("request declined: <it>").

REJECTED, REFUNDED and WITHDRAWN are closed: the case's lines are free for a new case. The shopper may
withdraw only before anything moved: once the goods are on their way back (RETURN_SHIPPED) or the
refund has started (REFUNDING, REFUND_FAILED) the shop must finish the case, so withdrawing is a 409.

The refund: each line's units are refunded their share of what was paid (`domain.line_refund_fen`): the
goods part of the payable amount (freight is not refunded by after-sales) split over the lines by
`domain.paid_shares` (a category coupon lowers only its own lines); within a line, units are worth share x
units / quantity, floored, and the line's last units take what is left, so refunding everything returns
exactly the goods paid.
The refund runs through the refund engine (`Refunder`, source "after_sale:<id>") under a number the case records
in the transaction that makes it REFUNDING (`AfterSale.apply`), so a refund interrupted before it started (the
process died after that commit, or an unexpected error hit) is started under that number by the refund job once the
case has been REFUNDING its settle time (`start_unstarted_refunds`), or by staff's retry sooner, and never twice (the
engine starts one refund per number under the order's row lock). When it settles, the
engine's SETTLED_LISTENERS["after_sale"] (`refund_settled`) moves the case to REFUNDED (or REFUND_FAILED, or
REFUND_ABNORMAL while WeChat Pay holds an ABNORMAL refund). Units paid 0 fen get a 0-fen refund that settles at
once without a channel: the case goes REFUNDED with `refunds.NOTHING_PAID` in its history.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from services.common import formats
from services.common.auth import refuse_own
from services.common.db import utcnow
from services.common.errors import Conflict, DomainError, InvalidInput, NotFound
from services.common.order_steps import StepKind
from services.common.uow import RoundBudget, each_page
from services.order import refunds
from services.order.domain import (
    Address,
    Order,
    OrderStatus,
    Refund,
    RefundItem,
    RefundStatus,
    Step,
    line_refund_fen,
    new_order_no,
    order_not_found,
    plain,
    shopper_steps,
)
from services.order.ports import Members
from services.order.service import check_parcel, publish_returned
from services.order.uow import CaseSearch, OrderUnitOfWork

log = logging.getLogger(__name__)

DEFAULT_AFTER_SALE_DAYS = 7
DEFAULT_RETURN_SHIP_DAYS = 7
MAX_IMAGES = formats.MAX_REVIEW_IMAGES
TYPES = ("refund_only", "return_refund")
SOURCE = refunds.AFTER_SALE


class CaseStatus(enum.StrEnum):
    REQUESTED = "REQUESTED"
    REJECTED = "REJECTED"
    AWAITING_RETURN = "AWAITING_RETURN"
    RETURN_SHIPPED = "RETURN_SHIPPED"
    REFUNDING = "REFUNDING"
    REFUND_FAILED = "REFUND_FAILED"
    REFUND_ABNORMAL = "REFUND_ABNORMAL"
    REFUNDED = "REFUNDED"
    WITHDRAWN = "WITHDRAWN"


C = CaseStatus
CLOSED = frozenset({C.REJECTED, C.REFUNDED, C.WITHDRAWN})

CASE_TRANSITIONS: dict[tuple[CaseStatus, str], CaseStatus] = {
    (C.REQUESTED, "approve_refund"): C.REFUNDING,
    (C.REQUESTED, "approve_return"): C.AWAITING_RETURN,
    (C.REQUESTED, "reject"): C.REJECTED,
    (C.AWAITING_RETURN, "ship_return"): C.RETURN_SHIPPED,
    (C.RETURN_SHIPPED, "receive"): C.REFUNDING,
    (C.RETURN_SHIPPED, "reject"): C.REJECTED,  # an empty box, another item: else only receiving (refund) ends it
    (C.REFUNDING, "refunded"): C.REFUNDED,
    (C.REFUNDING, "refund_failed"): C.REFUND_FAILED,
    (C.REFUNDING, "refund_abnormal"): C.REFUND_ABNORMAL,
    (C.REFUND_ABNORMAL, "refunded"): C.REFUNDED,
    (C.REFUND_ABNORMAL, "refund_resumed"): C.REFUNDING,
    (C.REFUND_ABNORMAL, "refund_failed"): C.REFUND_FAILED,
    (C.REFUND_FAILED, "retry"): C.REFUNDING,
    (C.REFUND_FAILED, "reject"): C.REJECTED,  # staff give up on it: the lines are free again (not a return's)
    (C.REFUND_FAILED, "refunded"): C.REFUNDED,  # its closed refund was paid by WeChat Pay after all (closed_refund_paid)
    (C.REQUESTED, "withdraw"): C.WITHDRAWN,    # the shopper's, before goods or money moved
    (C.AWAITING_RETURN, "withdraw"): C.WITHDRAWN,
    (C.AWAITING_RETURN, "return_expired"): C.WITHDRAWN,  # never sent back: the line must not stay locked for good
}


@dataclass
class CaseLine:
    line_id: int
    quantity: int
    amount_fen: int
    open: bool = True  # a line has at most one open case (partial unique index)
    id: int | None = None
    case_id: int | None = None


# What the shopper is told of each kind of step, in place of the recorded reason, which may be staff's own words or
# an internal note (order migration 0012 tells them the same of the steps recorded before). Where the step's words
# are the shopper's own (ship_return: their parcel, withdraw: their reason) or written for them (return_expired,
# a 0-fen refund), the use case gives those instead; these are what the shopper reads when it gives none.
SHOPPER_WORDS: dict[str, str] = {
    "ship_return": "goods sent back",
    "withdraw": "withdrawn",
    "return_expired": "closed: the goods were not sent back in time",
    "approve_refund": "refund approved",
    "approve_return": "return approved: please send the goods back",
    "reject": "request declined",
    "receive": "returned goods received",
    "refunded": "refunded",
    "refund_failed": "the refund did not go through: customer service will follow up",
    "refund_abnormal": "the refund is held up at WeChat Pay: customer service is handling it",
    "refund_resumed": "the refund is under way again",
    "retry": "refund started again",
}


@dataclass
class CaseStep(Step):
    """A step of a case's history; what the shopper reads of it (`shopper_reason`) is never staff's own words or ids
    unless written for them."""

    case_id: int | None = None


@dataclass
class AfterSale:
    case_no: str
    order_id: int
    order_no: str
    user_id: int
    type: str
    status: str
    reason: str
    images: list[str]
    refund_fen: int
    created_at: datetime
    updated_at: datetime
    lines: list[CaseLine] = field(default_factory=list)
    history: list[CaseStep] = field(default_factory=list)
    return_carrier: str = ""
    return_tracking_no: str = ""
    refund_no: str = ""
    id: int | None = None

    @property
    def is_open(self) -> bool:
        return CaseStatus(self.status) not in CLOSED

    @property
    def closed_at(self) -> datetime | None:
        """When the case closed (REJECTED, REFUNDED, WITHDRAWN); None while open. A closed case never moves again, so
        its last change (`updated_at`) is the step that closed it: the repository reads it so, without the history
        (AfterSaleRepository.case_times)."""
        return None if self.is_open else self.updated_at

    @property
    def goods_received(self) -> bool:
        """A return whose goods staff received (and order-returned restocked): past RETURN_SHIPPED, only the
        refund ends it; rejecting would keep both the goods and the money, and free the line for another return."""
        return self.type == "return_refund" and any(step.status == C.REFUNDING for step in self.history)

    def can(self, action: str) -> bool:
        return (CaseStatus(self.status), action) in CASE_TRANSITIONS

    def apply(self, action: str, *, actor: str, now: datetime, reason: str = "",
              shopper_reason: str | None = None) -> None:
        """Move along the case's state machine, recording the step; Conflict (with the current status) if not allowed.

        The shopper sees the step, with `shopper_reason` where staff read `reason`: the caller gives it when the
        words are the shopper's or written for them; else (None) they read SHOPPER_WORDS[action], never `reason`.
        """
        target = CASE_TRANSITIONS.get((CaseStatus(self.status), action))
        if target is None:
            raise Conflict("AFTER_SALE_STATE_CONFLICT", f"an after-sales case in {self.status} cannot "
                           f"{action.replace('_', ' ')}", details={"status": self.status, "action": action})
        if target == C.REJECTED and self.goods_received:
            raise Conflict("AFTER_SALE_GOODS_RECEIVED", "the returned goods were received: this case cannot be "
                           "rejected, only its refund retried", details={"status": self.status, "action": action})
        told = SHOPPER_WORDS[action] if shopper_reason is None else shopper_reason
        if target == C.REFUNDING and action != "refund_resumed":  # resumed: the same refund is under way again
            # A new refund: its number is committed with the step, before the refund starts, so whoever starts it
            # (this request, or a retry after it died) starts that one refund (refunds.start_refund is idempotent by
            # number), never a second. Here, so that no way into REFUNDING can forget it.
            self.refund_no = "RF" + new_order_no(now)
        self.status, self.updated_at = target.value, now
        self.history.append(CaseStep(status=target.value, actor=actor, at=now, reason=reason,
                                     shopper_visible=True, shopper_reason=told[:255]))
        if target in CLOSED:
            for line in self.lines:
                line.open = False

    def shopper_history(self) -> list[CaseStep]:
        """The history as the case's shopper sees it (`shopper_steps`)."""
        return shopper_steps(self.history)


def case_not_found() -> NotFound:
    return NotFound("AFTER_SALE_NOT_FOUND", "no such after-sales case")


# -- the refund engine (port) --------------------------------------------------------------------

class Refunder(Protocol):
    """The refund engine (services.order.refunds) as after-sales uses it."""

    def start(self, uow: OrderUnitOfWork, *, order_id: int, lines: list[CaseLine], reason: str, actor: str,
              source: str, now: datetime, refund_no: str) -> str:
        """Start refund `refund_no` of some units of an order's lines (one already started under that number is
        not started again): its number; DomainError when it cannot start."""

    def again(self, uow: OrderUnitOfWork, *, refund_no: str, actor: str, now: datetime) -> None:
        """Ask the channel again about a PENDING or ABNORMAL refund, by its number (no new refund)."""

    def started(self, uow: OrderUnitOfWork, *, refund_no: str) -> bool:
        """Whether a refund under this number exists (started, whatever its status since)."""


@dataclass(frozen=True)
class EngineRefunder:
    """Refunds back through the channel the order was paid with (WeChat Pay, or the wallet)."""

    payments: refunds.RefundPayments | None
    members: Members

    def start(self, uow: OrderUnitOfWork, *, order_id: int, lines: list[CaseLine], reason: str, actor: str,
              source: str, now: datetime, refund_no: str) -> str:
        items = [RefundItem(line_id=line.line_id, quantity=line.quantity, amount_fen=line.amount_fen)
                 for line in lines]
        return refunds.start_refund(uow, self.payments, self.members, order_id=order_id, items=items, reason=reason,
                                    actor=actor, source=source, now=now, refund_no=refund_no).refund_no

    def again(self, uow: OrderUnitOfWork, *, refund_no: str, actor: str, now: datetime) -> None:
        refunds.retry_refund(uow, self.payments, self.members, refund_no=refund_no, actor=actor, now=now)

    def started(self, uow: OrderUnitOfWork, *, refund_no: str) -> bool:
        with uow:
            found = uow.refunds.get(refund_no) is not None
            uow.commit()
        return found


@dataclass(frozen=True)
class AfterSaleSettings:
    after_sale_days: int = DEFAULT_AFTER_SALE_DAYS
    return_ship_days: int = DEFAULT_RETURN_SHIP_DAYS  # an approved return not sent back by then is closed
    return_address: Address | None = None  # where shoppers send returns (ORDER_RETURN_ADDRESS); None: not set

    def return_address_for(self, case: AfterSale) -> Address | None:
        """Where the case's shopper sends the goods back: the shop's return address while the case awaits them
        (AWAITING_RETURN), and nothing in any other state (before approval, or once sent, closed or refunded)."""
        return self.return_address if case.status == C.AWAITING_RETURN else None


Uow = Callable[[], OrderUnitOfWork]


# -- use cases -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CaseRequest:
    order_id: int
    type: str
    lines: dict[int, int]  # line id -> units (0: every unit not refunded yet)
    reason: str
    images: tuple[str, ...] = ()


def open_case(uow: OrderUnitOfWork, settings: AfterSaleSettings, *, user_id: int, request: CaseRequest,
              now: datetime | None = None) -> AfterSale:
    """The buyer asks for a refund (and maybe a return) of some units of their shipped or delivered order."""
    now = now or utcnow()
    _check_request(request)
    reason = plain(request.reason, 255)
    with uow:
        order = uow.orders.get(request.order_id, lock=True)  # serialises cases of one order
        if order is None or order.user_id != user_id:
            raise order_not_found()
        _check_window(order, settings, now)
        earlier = uow.after_sales.for_order(order.id or 0)
        lines = _case_lines(order, request.lines, earlier, uow.refunds.for_order(order.id or 0))
        case = AfterSale(case_no="AS" + new_order_no(now), order_id=order.id or 0, order_no=order.order_no,
                         user_id=user_id, type=request.type, status=C.REQUESTED.value, reason=reason,
                         images=list(request.images), refund_fen=sum(line.amount_fen for line in lines),
                         created_at=now, updated_at=now, lines=lines,
                         history=[CaseStep(status=C.REQUESTED.value, actor=f"user:{user_id}", at=now,
                                           reason=reason, shopper_visible=True, shopper_reason=reason)])
        uow.after_sales.add(case)
        uow.commit()
    return case


def _check_request(request: CaseRequest) -> None:
    if request.type not in TYPES:
        raise InvalidInput("AFTER_SALE_TYPE_INVALID", "type must be refund_only or return_refund",
                           details={"type": "invalid"})
    if not request.lines or any(quantity < 0 for quantity in request.lines.values()):
        raise InvalidInput("AFTER_SALE_LINES_INVALID", "name at least one line, each with its units (0: all)",
                           details={"lines": "invalid"})
    if not plain(request.reason, 256) or len(request.reason) > 255:
        raise InvalidInput("AFTER_SALE_REASON_INVALID", "give a reason of up to 255 characters",
                           details={"reason": "1-255 characters"})
    if len(request.images) > MAX_IMAGES or not all(formats.UPLOAD_URL_PATTERN.fullmatch(url)
                                                    for url in request.images):
        raise InvalidInput("AFTER_SALE_IMAGES_INVALID", f"up to {MAX_IMAGES} images uploaded with POST /uploads",
                           details={"images": "invalid"})


def _check_window(order: Order, settings: AfterSaleSettings, now: datetime) -> None:
    part_shipped = order.status == OrderStatus.PAID and bool(order.shipments)  # it can no longer be cancelled
    if order.status not in (OrderStatus.SHIPPED, OrderStatus.COMPLETED) and not part_shipped:
        raise Conflict("ORDER_STATE_CONFLICT", f"an order in {order.status} has no after-sales (paid orders not "
                       "shipped yet are cancelled instead)", details={"status": order.status, "action": "after_sale"})
    if order.completed_at is not None and now > order.completed_at + timedelta(days=settings.after_sale_days):
        raise DomainError("AFTER_SALE_WINDOW_CLOSED", f"after-sales ends {settings.after_sale_days} days after "
                          "delivery", details={"completed_at": order.completed_at.isoformat()})


def _case_lines(order: Order, wanted: dict[int, int], earlier: list[AfterSale],
                order_refunds: list[Refund]) -> list[CaseLine]:
    lines = {line.id: line for line in order.lines}
    unknown = sorted(set(wanted) - set(lines))
    if unknown:
        raise InvalidInput("LINE_NOT_IN_ORDER", "these lines are not in the order", details={"lines": unknown})
    busy = sorted({line.line_id for case in earlier if case.is_open for line in case.lines} & set(wanted))
    if busy:
        raise Conflict("AFTER_SALE_LINE_OPEN", "a line already has an open after-sales case",
                       details={"lines": busy})
    claimable = claimable_units(order, order_refunds)
    result = []
    for line_id, quantity in sorted(wanted.items()):
        left = claimable[line_id]
        quantity = quantity or left
        if not 0 < quantity <= left:
            raise quantity_invalid(line_id, left)
        result.append(CaseLine(line_id=line_id, quantity=quantity,
                               amount_fen=line_refund_fen(order, line_id, quantity)))
    return result


def claimable_units(order: Order, order_refunds: list[Refund]) -> dict[int, int]:
    """The units of each line (by id) after-sales may still take: those in a parcel, less those of them refunded
    (refunds not CLOSED, and CLOSED ones WeChat Pay paid after all, `paid_after_close_at`; but not cancel-unshipped's:
    its units were never in a parcel), and never more than the units not refunded (`refunded_quantity`). A refund
    paid after its close counts even when a second refund paid the same units since (its amounts could not be
    reserved again): those units were refunded twice, and nothing more of them is claimable.

    Units in no parcel are never claimable, whatever the order's status: on a partly shipped (PAID) order they are
    still to ship; once the order is SHIPPED or COMPLETED they are the units cancel-unshipped cancelled and restocked,
    whether their refund succeeded, is under way or was closed (refused, or an ABNORMAL one staff closed: the money is
    still owed, and cancel-unshipped starts it again). The parcels say which units those are for good, where
    `refunded_quantity` does not: a closed refund gives its units back.
    """
    unshipped = order.unshipped()
    taken: dict[int, int] = {}
    for refund in order_refunds:
        paid = refund.status != RefundStatus.CLOSED or refund.paid_after_close_at is not None  # closed, paid after all
        if paid and refund.source != refunds.UNSHIPPED:
            for item in refund.lines:
                taken[item.line_id] = taken.get(item.line_id, 0) + item.quantity
    return {line.id or 0: max(0, min(line.quantity - line.refunded_quantity,
                                     line.quantity - unshipped.get(line.id or 0, 0) - taken.get(line.id or 0, 0)))
            for line in order.lines}


def quantity_invalid(line_id: int, left: int) -> Conflict:
    return Conflict("AFTER_SALE_QUANTITY_INVALID", "more units than were shipped and not refunded yet",
                    details={"line_id": line_id, "left": left})


def _check_still_claimable(uow: OrderUnitOfWork, case: AfterSale) -> None:
    """Check that the case's units may still be claimed (`claimable_units`) before a decision or a receipt moves goods
    or money: a case opened on units in no parcel (before openings were held to the units in a parcel) is
    AFTER_SALE_QUANTITY_INVALID, for staff to reject. Its own refund has not started, so it is not counted."""
    order = uow.orders.get(case.order_id)
    assert order is not None  # a case's order is never deleted
    claimable = claimable_units(order, uow.refunds.for_order(case.order_id))
    for line in case.lines:
        if line.quantity > claimable.get(line.line_id, 0):
            raise quantity_invalid(line.line_id, claimable.get(line.line_id, 0))


def get_case(uow: OrderUnitOfWork, *, user_id: int | None, case_id: int) -> AfterSale:
    """The case; for a shopper (user_id given) only their own, another's is AFTER_SALE_NOT_FOUND."""
    with uow:
        case = uow.after_sales.get(case_id)
        uow.commit()
    if case is None or (user_id is not None and case.user_id != user_id):
        raise case_not_found()
    return case


def search_cases(uow: OrderUnitOfWork, search: CaseSearch) -> tuple[list[AfterSale], int]:
    if search.status and search.status not in CaseStatus.__members__:
        raise InvalidInput("STATUS_INVALID", "unknown after-sales status", details={"status": "invalid"})
    if search.type and search.type not in TYPES:
        raise InvalidInput("AFTER_SALE_TYPE_INVALID", "unknown after-sales type", details={"type": "invalid"})
    with uow:
        found = uow.after_sales.search(search)
        uow.commit()
    return found


def _step(uow: OrderUnitOfWork, case_id: int, change: Callable[[OrderUnitOfWork, AfterSale], None], *,
          user_id: int | None = None) -> AfterSale:
    """Change a case under its row lock, in one transaction (a shopper's own only)."""
    with uow:
        case = uow.after_sales.get(case_id, lock=True)
        if case is None or (user_id is not None and case.user_id != user_id):
            raise case_not_found()
        change(uow, case)
        uow.commit()
    return case


def submit_return_shipment(uow: OrderUnitOfWork, *, user_id: int, case_id: int, carrier: str, tracking_no: str,
                           now: datetime | None = None) -> AfterSale:
    """The shopper sent the goods back: carrier and tracking number."""
    now = now or utcnow()
    carrier, tracking_no = check_parcel(carrier, tracking_no)

    def ship(_: OrderUnitOfWork, case: AfterSale) -> None:
        parcel = f"{carrier} {tracking_no}"
        case.apply("ship_return", actor=f"user:{user_id}", now=now, reason=parcel, shopper_reason=parcel)
        case.return_carrier, case.return_tracking_no = carrier, tracking_no
    return _step(uow, case_id, ship, user_id=user_id)


def withdraw_case(uow: OrderUnitOfWork, *, user_id: int, case_id: int, reason: str = "",
                  now: datetime | None = None) -> AfterSale:
    """The shopper withdraws their own case (another's is AFTER_SALE_NOT_FOUND): WITHDRAWN, its lines free
    for a new case. Only while REQUESTED or AWAITING_RETURN; otherwise 409 with the current status."""
    now = now or utcnow()

    def withdraw(_: OrderUnitOfWork, case: AfterSale) -> None:
        why = plain(reason, 255) or "withdrawn by the shopper"
        case.apply("withdraw", actor=f"user:{user_id}", now=now, reason=why, shopper_reason=why)
    return _step(uow, case_id, withdraw, user_id=user_id)


def decide(uow: Uow, refunder: Refunder, *, case_id: int, approve: bool, reason: str, actor: str,
           shopper_reason: str = "", now: datetime | None = None) -> AfterSale:
    """Customer service approve (refund-only: the refund runs now; return: the shopper sends the goods) or reject.
    Never on a case of their own (`actor` is "staff:<id>"): OWN_REQUEST (403), the case unchanged.

    `reason` is for staff; the shopper reads the decision's fixed wording ("request declined"), followed by
    `shopper_reason` when staff wrote one for them ("request declined: the seal is broken").
    """
    now = now or utcnow()
    for_shopper = plain(shopper_reason, formats.SHOPPER_REASON_MAX)

    def decision(tx: OrderUnitOfWork, case: AfterSale) -> None:
        refuse_own(formats.staff_user_id(actor), case.user_id)
        action = "reject" if not approve else "approve_refund" if case.type == "refund_only" else "approve_return"
        if approve and case.can(action):
            _check_still_claimable(tx, case)
        told = f"{SHOPPER_WORDS[action]}: {for_shopper}" if for_shopper else SHOPPER_WORDS[action]
        case.apply(action, actor=actor, now=now, reason=plain(reason, 255), shopper_reason=told)
    case = _step(uow(), case_id, decision)
    return _refund(uow, refunder, case, actor=actor, now=now) if case.status == C.REFUNDING else case


def expire_returns(uow: OrderUnitOfWork, settings: AfterSaleSettings, *, now: datetime | None = None,
                   batch: int = 100) -> int:
    """Close up to `batch` cases AWAITING_RETURN for `return_ship_days` (the shopper never sent the goods back),
    in one transaction: WITHDRAWN by "system", their lines free; nothing was restocked or refunded, so nothing is.
    Replicas skip the cases another holds (FOR UPDATE SKIP LOCKED), and one the shopper shipped meanwhile is no
    longer AWAITING_RETURN under its lock."""
    now = now or utcnow()
    days = settings.return_ship_days
    with uow:
        cases = uow.after_sales.lock_awaiting_return_before(now - timedelta(days=days), batch)
        why = f"the goods were not sent back within {days} days of approval"
        for case in cases:
            case.apply("return_expired", actor="system", now=now, reason=why, shopper_reason=why)
        uow.commit()
    return len(cases)


def receive_return(uow: Uow, refunder: Refunder, *, case_id: int, note: str, actor: str,
                   now: datetime | None = None) -> AfterSale:
    """Staff got the goods back: order-returned (the product service restocks them), then the refund runs. Never
    for a case of their own (receiving pays the refund): OWN_REQUEST (403), the case unchanged."""
    now = now or utcnow()

    def receive(tx: OrderUnitOfWork, case: AfterSale) -> None:
        refuse_own(formats.staff_user_id(actor), case.user_id)
        if case.can("receive"):
            _check_still_claimable(tx, case)
        case.apply("receive", actor=actor, now=now, reason=plain(note, 255) or "goods received")
        order = tx.orders.get(case.order_id)
        assert order is not None  # a case's order is never deleted
        publish_returned(tx, order, case_no=case.case_no, units={line.line_id: line.quantity for line in case.lines},
                         now=now)
    case = _step(uow(), case_id, receive)
    return _refund(uow, refunder, case, actor=actor, now=now)


def retry_refund(uow: Uow, refunder: Refunder, *, case_id: int, actor: str, now: datetime | None = None) -> AfterSale:
    """Staff push a stuck refund: REFUND_FAILED starts a new one; REFUNDING and REFUND_ABNORMAL ask the channel
    again about the case's refund, under its number (an ABNORMAL one once fixed at WeChat Pay). A REFUNDING case
    whose refund never started (the process died, or an unexpected error hit, between approval and refund)
    starts it now under the number it was approved with, so it is never started twice. Never on a case of their own
    (`actor` is "staff:<id>"): a retry pays the refund out, as receiving does (a REFUND_FAILED case's starts a new
    one, after its last was closed, perhaps because the shopper was paid another way): OWN_REQUEST (403), nothing
    asked or changed."""
    now = now or utcnow()
    case = get_case(uow(), user_id=None, case_id=case_id)
    refuse_own(formats.staff_user_id(actor), case.user_id)
    if case.status in (C.REFUNDING, C.REFUND_ABNORMAL) and case.refund_no:
        if case.status == C.REFUNDING and not refunder.started(uow(), refund_no=case.refund_no):
            return _refund(uow, refunder, case, actor=actor, now=now)
        refunder.again(uow(), refund_no=case.refund_no, actor=actor, now=now)  # a settlement tells the case
        return get_case(uow(), user_id=None, case_id=case_id)

    def again(tx: OrderUnitOfWork, case: AfterSale) -> None:
        if case.can("retry"):  # a new refund: its units may have been refunded since (a closed refund paid after all)
            _check_still_claimable(tx, case)
        case.apply("retry", actor=actor, now=now, reason="refund again")
    case = _step(uow(), case_id, again)
    return _refund(uow, refunder, case, actor=actor, now=now)


def start_unstarted_refunds(uow: Uow, refunder: Refunder, *, before: datetime, now: datetime, batch: int = 50,
                            budget: RoundBudget | None = None) -> int:
    """The refund job's repair (`refunds.reconcile_refunds`): start the refund of every case REFUNDING since `before`
    or earlier whose refund never started (the process died, or an error other than a DomainError hit, between the
    step that made it REFUNDING, an approval, a receipt or a retry, and `_refund`). Nothing else would: the job's other
    sweeps read refunds, and approving again is a 409. It starts as `_refund` starts it, under the number the case
    recorded, so never twice, whoever starts it meanwhile (`refunds.start_refund` finds one started under that number,
    under the order's row lock); one that cannot start makes the case REFUND_FAILED, for staff. Page after page of
    `batch` (`each_page`, its `budget`); how many it started."""
    def start(key: tuple[int, str]) -> int:
        case = get_case(uow(), user_id=None, case_id=key[0])
        if case.status != C.REFUNDING or refunder.started(uow(), refund_no=case.refund_no):
            return 0  # moved on since its page was read
        log.warning("after-sales case %s has been REFUNDING since %s without its refund %s: starting it", case.case_no,
                    case.updated_at.isoformat(), case.refund_no)
        try:
            _refund(uow, refunder, case, actor="reconciliation", now=now)
        except DomainError as exc:
            log.warning("after-sales case %s: its refund %s could not start (%s): REFUND_FAILED, for staff",
                        case.case_no, case.refund_no, exc.code)
            return 0
        return 1
    return each_page(uow, lambda tx, after: tx.after_sales.refunding_unstarted_before(before, after[0], batch),
                     (0, ""), batch, start, what="after-sales case", budget=budget)


def _refund(uow: Uow, refunder: Refunder, case: AfterSale, *, actor: str, now: datetime) -> AfterSale:
    """Start the case's refund (it is REFUNDING, committed, so a refund that settles at once finds it so).

    A refund that cannot start leaves the case REFUND_FAILED with the reason, and the error is raised.
    """
    assert case.id is not None
    try:
        refund_no = refunder.start(uow(), order_id=case.order_id, lines=case.lines, reason=case.reason, actor=actor,
                                   source=f"{SOURCE}:{case.id}", now=now, refund_no=case.refund_no)
    except DomainError as exc:
        why = f"{exc.code}: {exc.message}"[:255]

        def failed(_: OrderUnitOfWork, case: AfterSale) -> None:
            if case.status == C.REFUNDING:  # not already ended by the engine's listener
                case.apply("refund_failed", actor=actor, now=now, reason=why)
        _step(uow(), case.id, failed)
        raise

    def started(_: OrderUnitOfWork, case: AfterSale) -> None:
        case.refund_no = refund_no
    return _step(uow(), case.id, started)


def _on_refund_settled(uow: OrderUnitOfWork, refund: Refund, now: datetime) -> None:
    case_id = int(refund.source.partition(":")[2])
    if refund.paid_after_close_at is not None:
        closed_refund_paid(uow, case_id, refund, now)
        return
    refund_settled(uow, case_id, refund_no=refund.refund_no, status=RefundStatus(refund.status), now=now)


def closed_refund_paid(uow: OrderUnitOfWork, case_id: int, refund: Refund, now: datetime) -> None:
    """WeChat Pay paid the CLOSED refund of case `case_id` after all (refunds._paid_after_close, inside its transaction,
    the order locked): its units are refunded. The case, if its refund failed (REFUND_FAILED: the closed refund is
    its last, or a new one failed to start), is REFUNDED by it; retrying would pay them again. One staff rejected since
    stays REJECTED (closed cases never move: `closed_at`; the order shows the refund paid, README "Refunds"). If it
    was retried and
    another refund pays (or paid) it, that is a second payment of one claim: noted for finance. Every other open case
    of the order whose refund has not started and that claims more units than are claimable now (it was opened on
    them while the refund was closed) is noted in the order's history for staff, and logged: approving, receiving or
    retrying it is refused (AFTER_SALE_QUANTITY_INVALID, `_check_still_claimable`); staff reject it (or, for a return
    whose goods came back, settle it with the shopper)."""
    case = uow.after_sales.get(case_id, lock=True)
    order = uow.orders.get(refund.order_id)
    assert order is not None  # a refund's order is never deleted
    if case is not None and case.status == C.REFUND_FAILED:
        case.refund_no = refund.refund_no
        case.apply("refunded", actor=f"refund:{refund.refund_no}", now=now,
                   reason=f"WeChat Pay paid the closed refund {refund.refund_no} after all")
    elif (case is not None and case.refund_no != refund.refund_no and case.status in PAYING
          and refund.paid_after_close_waiting_at is None):
        # retried after the close: a second refund of the same claim pays (or paid) it again (one still open that
        # holds its amounts is not yet: the engine decides when it ends, `refunds._decide_waiting`, and the case is
        # REFUNDED by this one if it closes, `refund_settled`)
        log.error("after-sales case %s: its closed refund %s was paid after all, and its refund %s too",
                  case.case_no, refund.refund_no, case.refund_no)
        order.record_step(kind=StepKind.REFUND_NOTE, actor=f"refund:{refund.refund_no}", now=now, shopper=False,
                          reason=f"after-sales case {case.case_no} was refunded by {refund.refund_no} after its close "
                                 f"and by {case.refund_no} too: paid twice; finance must check")
    claimable = claimable_units(order, uow.refunds.for_order(refund.order_id))
    for other in uow.after_sales.for_order(refund.order_id):
        if other.id == case_id or other.status not in UNREFUNDED_OPEN:
            continue
        over = {line.line_id: claimable.get(line.line_id, 0) for line in other.lines
                if line.quantity > claimable.get(line.line_id, 0)}
        if over:
            log.error("after-sales case %s claims units refund %s refunded after its close (claimable now by line: "
                      "%s): reject it", other.case_no, refund.refund_no, over)
            order.record_step(kind=StepKind.REFUND_NOTE, actor=f"refund:{refund.refund_no}", now=now, shopper=False,
                              reason=f"after-sales case {other.case_no} claims units refund {refund.refund_no} refunded "
                                     f"after its close (left by line: {over}): it cannot be approved or refunded; "
                                     "reject it")


def _paid_after_close(uow: OrderUnitOfWork, case: AfterSale) -> Refund | None:
    """A refund of the case staff closed that WeChat Pay paid after all (`Refund.paid_after_close_at`), if any."""
    source = f"{SOURCE}:{case.id}"
    return next((refund for refund in uow.refunds.for_order(case.order_id)
                 if refund.source == source and refund.paid_after_close_at is not None), None)


# Open cases whose refund has not started (or failed): `_check_still_claimable` stands before their next move.
UNREFUNDED_OPEN = frozenset({C.REQUESTED, C.AWAITING_RETURN, C.RETURN_SHIPPED, C.REFUND_FAILED})
# Cases whose (latest) refund is paying or has paid.
PAYING = frozenset({C.REFUNDING, C.REFUND_ABNORMAL, C.REFUNDED})


refunds.SETTLED_LISTENERS[SOURCE] = _on_refund_settled

# What the case does when its refund takes a status, and why (in its history, for staff: the shopper reads
# SHOPPER_WORDS of the action).
ON_REFUND: dict[RefundStatus, tuple[str, str]] = {
    RefundStatus.SUCCESS: ("refunded", "refunded"),
    RefundStatus.CLOSED: ("refund_failed", "the refund did not go through; retry it"),
    RefundStatus.ABNORMAL: ("refund_abnormal", "WeChat Pay could not pay the refund back (ABNORMAL): complete it "
                            "at WeChat Pay and retry, or close the refund"),
    RefundStatus.PENDING: ("refund_resumed", "WeChat Pay is paying the refund again"),
}


def refund_settled(uow: OrderUnitOfWork, case_id: int, *, refund_no: str, status: RefundStatus,
                   now: datetime) -> None:
    """The refund engine moved the case's refund (inside its settling transaction): REFUNDED, REFUND_FAILED,
    REFUND_ABNORMAL, or REFUNDING again.

    A refund retried after staff closed the case's last one that closes too, when WeChat Pay paid that closed one
    after all meanwhile (it waited for this one, `refunds._decide_waiting`), makes the case REFUNDED by the one paid,
    not REFUND_FAILED: its units count as refunded, so the case could never be retried, and a return whose goods came
    back could not be rejected either: it stayed open for good."""
    case = uow.after_sales.get(case_id, lock=True)
    action, reason = ON_REFUND[status]
    if case is None or (CaseStatus(case.status), action) not in CASE_TRANSITIONS:
        return  # nothing waits for this refund (a replay, or a refund staff started by hand)
    paid = _paid_after_close(uow, case) if status == RefundStatus.CLOSED else None
    if paid is not None:  # the claim was paid all the same: retrying it is refused (its units are not claimable)
        case.refund_no = paid.refund_no
        case.apply("refunded", actor=f"refund:{paid.refund_no}", now=now,
                   reason=f"WeChat Pay paid the closed refund {paid.refund_no} after all")
        return
    case.refund_no = refund_no
    if status == RefundStatus.SUCCESS and not case.refund_fen:  # written for the shopper too
        case.apply(action, actor=f"refund:{refund_no}", now=now, reason=refunds.NOTHING_PAID,
                   shopper_reason=refunds.NOTHING_PAID)
        return
    case.apply(action, actor=f"refund:{refund_no}", now=now, reason=reason)
