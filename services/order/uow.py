"""What the order use cases need from storage: repository protocols and the order unit of work."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from services.common.uow import UnitOfWork
from services.order.domain import CartItem, Order, OrderLine, Refund, RefundStatus

if TYPE_CHECKING:
    from services.order.aftersales import AfterSale
    from services.order.wallet_reviews import WalletReview


class CartRepository(Protocol):
    def lock_user(self, user_id: int) -> None:
        """Serialise changes to one user's cart, and their submits, until the transaction ends (line limits and the
        unpaid orders limit hold)."""

    def for_user(self, user_id: int) -> list[CartItem]:
        """Oldest first."""

    def add(self, item: CartItem) -> None: ...

    def remove(self, *items: CartItem) -> int:
        """Delete these lines; how many were still there (a checkout of the same lines may have taken them first)."""


@dataclass(frozen=True)
class OrderSearch:
    user_id: int = 0          # 0 = anyone (staff)
    statuses: tuple[str, ...] = ()  # any of these; () = any status
    order_no: str = ""
    created_from: datetime | None = None
    created_to: datetime | None = None
    offset: int = 0
    limit: int = 20


class OrderRepository(Protocol):
    def add(self, order: Order) -> None: ...

    def get(self, order_id: int, *, lock: bool = False) -> Order | None: ...

    def by_order_no(self, order_no: str, *, lock: bool = False) -> Order | None: ...

    def lines_of(self, order_ids: Collection[int]) -> dict[int, list[OrderLine]]:
        """The lines of each of `order_ids`, in one read (a page of after-sales cases names their goods by them)."""

    def states(self, order_nos: list[str]) -> list[tuple[str, str, bool]]:
        """(order_no, status, ever paid) of the existing orders among `order_nos`, in one read of those columns."""

    def search(self, search: OrderSearch) -> tuple[list[Order], int]:
        """Newest first, and the total matching."""

    def count_unpaid(self, user_id: int) -> int:
        """How many of the user's orders await payment (PENDING_PAYMENT), deadline past or not."""

    def units_held(self, user_id: int, product_ids: Collection[int]) -> dict[int, int]:
        """The user's units of each of `product_ids` in their orders that count against a purchase limit
        (domain.PURCHASE_LIMIT_STATUSES), less units refunded; products with none are left out."""

    def lock_expired(self, now: datetime, limit: int) -> list[Order]:
        """Unpaid orders past their deadline whose wallet payment is not unknown (no `wallet_attempt_at`), locked;
        rows other transactions hold are skipped."""

    def wallet_attempts_before(self, before: datetime, limit: int) -> list[Order]:
        """Orders whose wallet payment, started at or before `before`, is still unresolved, oldest attempt first."""

    def lock_confirmable_before(self, before: datetime, held_before: datetime, limit: int,
                                skip: Collection[int] = ()) -> list[Order]:
        """SHIPPED orders whose auto-confirm clock (`confirm_clock_at`, else `shipped_at`) is at or before `before`
        and with no after-sales case open, or shipped at or before `held_before` (after-sales have held them all
        they may: a case open or not), oldest clock first, locked; rows other transactions hold, and the ids in
        `skip`, are skipped."""

    def unpaid_prepaid(self, prepaid_before: datetime, after_id: int, limit: int) -> list[tuple[int, str]]:
        """(id, out_trade_no of the current WeChat Pay transaction) of up to `limit` unpaid orders with a WeChat Pay
        prepay made before `prepaid_before`, by id after `after_id` (a page of `each_page`)."""

    def count_unpaid_due(self, due: datetime) -> dict[str, int]:
        """Unpaid orders whose deadline is at or before `due`, counted by what settling them waits for: "wallet" (a
        wallet attempt unresolved), "wechat" (a WeChat Pay prepay), "none"."""


@dataclass(frozen=True)
class CaseSearch:
    user_id: int = 0  # 0 = anyone (staff)
    order_id: int = 0  # 0 = any order
    status: str = ""
    type: str = ""
    order_no: str = ""
    created_from: datetime | None = None
    created_to: datetime | None = None
    offset: int = 0
    limit: int = 20


class AfterSaleRepository(Protocol):
    def add(self, case: AfterSale) -> None: ...

    def get(self, case_id: int, *, lock: bool = False) -> AfterSale | None: ...

    def for_order(self, order_id: int) -> list[AfterSale]:
        """Oldest first."""

    def case_times(self, order_ids: list[int]) -> dict[int, list[tuple[datetime, datetime | None]]]:
        """When each of these orders' after-sales cases opened and closed (None: still open), by order id (orders with
        none left out): what the auto-confirm clock needs of a batch of orders, in one query, without the cases'
        lines and history."""

    def open_cases(self, line_ids: Collection[int]) -> dict[int, int]:
        """The open case (its id) of each of these order lines that has one, lines without left out, in one read of
        the case lines (a line has at most one open case: `CaseLine.open`, a partial unique index behind it)."""

    def lock_awaiting_return_before(self, before: datetime, limit: int) -> list[AfterSale]:
        """Cases AWAITING_RETURN since `before` or earlier, oldest first, locked (others' rows skipped)."""

    def refunding_unstarted_before(self, before: datetime, after_id: int, limit: int) -> list[tuple[int, str]]:
        """(id, case_no) of up to `limit` cases REFUNDING since `before` or earlier whose refund number (recorded) has no
        refund, by id after `after_id` (a page of `each_page`)."""

    def search(self, search: CaseSearch) -> tuple[list[AfterSale], int]:
        """Newest first, and the total matching."""


@dataclass(frozen=True)
class LineReservation:
    """Refund `quantity` units and `amount_fen` of a line, whose refunds may add up to `cap_fen` at most."""

    line_id: int
    quantity: int
    amount_fen: int
    cap_fen: int


@dataclass(frozen=True)
class RefundSearch:
    status: str = ""
    source: str = ""          # a source ("after_sale:12", "cancel"), or a prefix of them ("after_sale")
    order_no: str = ""
    created_from: datetime | None = None
    created_to: datetime | None = None
    offset: int = 0
    limit: int = 20


@dataclass(frozen=True)
class ListedRefund:
    """A refund as staff list it: with its order's number."""

    refund: Refund
    order_no: str


class RefundRepository(Protocol):
    def add(self, refund: Refund) -> None: ...

    def get(self, refund_no: str, *, lock: bool = False) -> Refund | None: ...

    def for_order(self, order_id: int) -> list[Refund]:
        """Oldest first."""

    def pending_before(self, created_before: datetime, after_id: int, limit: int) -> list[tuple[int, str]]:
        """(id, refund_no) of up to `limit` PENDING refunds started before `created_before`, by id after `after_id`
        (a page of `each_page`)."""

    def closed_noted_unmarked(self, step_words: str, created_since: datetime, after_id: int,
                              limit: int) -> list[tuple[int, str]]:
        """(id, refund_no) of up to `limit` CLOSED refunds created since `created_since`, without `paid_after_close_at`,
        whose order's history has a step starting "refund <refund_no><step_words>", by id after `after_id` (a page of
        `each_page`): those a pod of the release before migration 0017 recorded paid after close
        (`refunds.mark_noted_refund`)."""

    def waiting_since(self, status: RefundStatus, *, before: datetime | None = None) -> tuple[int, datetime | None]:
        """How many refunds have been in `status` since `before` or earlier (None: whenever; their updated_at: when
        they last took it), and since when the longest-standing one has (None: there is none)."""

    def search(self, search: RefundSearch) -> tuple[list[ListedRefund], int]:
        """Those needing staff first: ABNORMAL, then PENDING, each longest waiting first (updated_at, then id);
        then the ended ones, newest first (created_at, then id). And the total matching."""

    def reserve(self, order: Order, amount_fen: int, lines: list[LineReservation]) -> bool:
        """Add to the order's and lines' refunded amounts by conditional updates, all or nothing: False, nothing
        changed, when that would pass the order's payable_fen, a line's quantity or a line's cap_fen."""

    def give_back(self, order: Order, refund: Refund) -> None:
        """Take an ended (CLOSED, ABNORMAL) refund's amounts off the order and its lines again."""


class WalletReviewRepository(Protocol):
    def add(self, review: WalletReview) -> None: ...

    def get(self, review_id: int) -> WalletReview | None: ...

    def for_order(self, order_id: int) -> WalletReview | None: ...

    def search(self, *, status: str, offset: int, limit: int) -> tuple[list[WalletReview], int]:
        """In `status` ("" = any), oldest first, and the total matching."""

    def count_open(self) -> int: ...


class SubmitAttemptRepository(Protocol):
    """The order number each keyed submit last tried, per (user, Idempotency-Key): what a retry releases when that
    attempt's order was never stored (its commit failed, its process died) but its stock, coupon and points may
    still be held under its number."""

    def record(self, user_id: int, key: str, order_no: str, now: datetime) -> bool:
        """Record `order_no` as the key's attempt, unless one is recorded already (False, nothing changed); committed at
        once, outside any block of the unit of work (none is needed)."""

    def last(self, user_id: int, key: str) -> str | None:
        """The order number the key's last attempt recorded (None: none is), read in the unit of work's block."""

    def move(self, user_id: int, key: str, order_no: str, now: datetime) -> None:
        """Record `order_no` as the key's attempt in place of any earlier one, committed at once, apart from this
        unit of work's transaction (which holds the key's claim, and may yet roll back)."""


class OrderUnitOfWork(UnitOfWork):
    """The order service's unit of work; its repositories are set on entering it, `submit_attempts` when it is made."""

    carts: CartRepository
    orders: OrderRepository
    after_sales: AfterSaleRepository
    refunds: RefundRepository
    wallet_reviews: WalletReviewRepository
    submit_attempts: SubmitAttemptRepository
