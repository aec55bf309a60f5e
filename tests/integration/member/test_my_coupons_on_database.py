"""A shopper's coupons on PostgreSQL read only what is asked for: the checkout quote only the usable ones, "my
coupons" one page in the status asked for, the member summary a count; however many used and expired coupons years of
campaigns have left them. What each answers is as before (rows counted, not timed)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from mall.member.v1 import member_pb2 as pb
from sqlalchemy import Engine

from services.common.auth import Caller, caller_var
from services.common.errors import NotFound
from services.member import service
from services.member.channels import RechargeChannels
from services.member.db import SqlMemberUnitOfWork
from services.member.domain import OrderLine
from services.member.grpc_api import MemberServicer
from tests.fakes import FakeCategories, FakePhones, SimulatedPayout
from tests.fixtures.member_orders import award_points_for_order
from tests.fixtures.statements import rows_read

pytestmark = pytest.mark.integration

# The servicer and the use cases read the clock: Alice's coupons were claimed two days ago, one campaign has ended
# since, another has not started yet.
NOW = datetime.now(UTC)
CLAIMED_AT = NOW - timedelta(days=2)
ALICE, BOB, ADMIN = 101, 102, 901
LINES = [OrderLine(1, 10_000)]


def new_template(uow: Callable[[], SqlMemberUnitOfWork], *, valid_from: datetime = NOW - timedelta(days=10),
                 valid_to: datetime = NOW + timedelta(days=7)) -> int:
    return service.create_coupon_template(
        uow(), FakeCategories(), name="5 yuan off", kind="fixed", amount_fen=500, percent_off=0, threshold_fen=0,
        cap_fen=0, total=100, per_user_limit=50, valid_from=valid_from, valid_to=valid_to, category_ids=[],
        created_by=ADMIN, needs_approval=False, now=CLAIMED_AT).id or 0


def claimed(uow: Callable[[], SqlMemberUnitOfWork], user_id: int, template_id: int, times: int) -> list[int]:
    return [service.claim_coupon(uow(), user_id=user_id, template_id=template_id, now=CLAIMED_AT)[0].id or 0
            for _ in range(times)]


@pytest.fixture
def alices(uow: Callable[[], SqlMemberUnitOfWork]) -> dict[str, list[int]]:
    """Alice's coupons by the status she sees now, newest first: 20 expired, 10 used, 2 locked, 2 usable and 1 of a
    campaign not started yet (shown available, not usable yet); Bob has some of each campaign too."""
    service.sign_up(uow(), user_id=ALICE, channel="self", invite_code=None, now=CLAIMED_AT)
    ended = new_template(uow, valid_to=NOW - timedelta(days=1))
    running = new_template(uow)
    later = new_template(uow, valid_from=NOW + timedelta(days=1))
    expired = claimed(uow, ALICE, ended, 20)
    claimed(uow, BOB, ended, 3)
    spent = claimed(uow, ALICE, running, 14)
    claimed(uow, BOB, running, 3)
    for n, coupon_id in enumerate(spent[:12]):
        service.lock_coupon(uow(), user_id=ALICE, order_no=f"O{n}", coupon_id=coupon_id, lines=LINES, now=CLAIMED_AT)
    for n in range(10):  # paid: order-paid uses the coupon the order locked
        award_points_for_order(uow(), order_no=f"O{n}", user_id=ALICE, paid_fen=9_500, now=CLAIMED_AT)
    not_started = claimed(uow, ALICE, later, 1)
    newest_first = {"expired": expired, "used": spent[:10], "locked": spent[10:12], "usable": spent[12:]}
    return {status: ids[::-1] for status, ids in newest_first.items()} | {"not_started": not_started}


def coupon_rows(read: list[tuple[str, int]]) -> list[int]:
    """How many rows each read of the coupons answered, in the order sent."""
    return [rows for named, rows in read if named == "SELECT coupons"]


def test_the_checkout_quote_reads_only_the_usable_coupons(
        engine: Engine, uow: Callable[[], SqlMemberUnitOfWork], alices: dict[str, list[int]]) -> None:
    with rows_read(engine) as read:
        quotes = service.quote_coupons(uow(), user_id=ALICE, lines=LINES)

    # the expired, locked and not yet started ones were quoted unusable before: the order service drops those
    assert (coupon_rows(read), [(q.view.coupon.id, q.view.status, q.discount_fen, q.reason) for q in quotes]) == (
        [2], [(coupon_id, "available", 500, "") for coupon_id in alices["usable"]])


@pytest.mark.parametrize(("status", "reason"), [("usable", ""), ("expired", "COUPON_EXPIRED"),
                                                ("used", "COUPON_NOT_AVAILABLE"), ("locked", "COUPON_NOT_AVAILABLE"),
                                                ("not_started", "COUPON_NOT_STARTED")])
def test_quoting_one_coupon_reads_that_coupon_and_answers_as_before(
        engine: Engine, uow: Callable[[], SqlMemberUnitOfWork], alices: dict[str, list[int]], status: str,
        reason: str) -> None:
    coupon_id = alices[status][0]

    with rows_read(engine) as read:
        [quote] = service.quote_coupons(uow(), user_id=ALICE, lines=LINES, coupon_id=coupon_id)

    assert (quote.view.coupon.id, quote.reason, quote.discount_fen) == (coupon_id, reason, 0 if reason else 500)
    assert coupon_rows(read) == [1]


def test_quoting_another_shoppers_coupon_is_not_found(uow: Callable[[], SqlMemberUnitOfWork],
                                                      alices: dict[str, list[int]]) -> None:
    with pytest.raises(NotFound) as raised:
        service.quote_coupons(uow(), user_id=BOB, lines=LINES, coupon_id=alices["usable"][0])

    assert raised.value.code == "COUPON_NOT_FOUND"


@pytest.fixture
def as_alice() -> Iterator[None]:
    token = caller_var.set(Caller(user_id=ALICE, roles=frozenset(), token_id="t"))
    yield
    caller_var.reset(token)


@pytest.mark.parametrize("status", ["", "available", "expired", "used", "locked"])
def test_my_coupons_pages_in_the_database_newest_first_in_the_status_asked(
        engine: Engine, uow: Callable[[], SqlMemberUnitOfWork], alices: dict[str, list[int]], as_alice: None,
        status: str) -> None:
    shown = {"available": sorted(alices["usable"] + alices["not_started"], reverse=True), "expired": alices["expired"],
             "used": alices["used"], "locked": alices["locked"]}
    expected = sorted((coupon_id for ids in shown.values() for coupon_id in ids), reverse=True) if not status \
        else shown[status]
    servicer = MemberServicer(uow, SimulatedPayout(), RechargeChannels({}), categories=FakeCategories(),
                              phones=FakePhones())

    pages, reads = [], []
    for offset in range(0, len(expected) + 4, 4):
        with rows_read(engine) as read:
            pages.append(servicer.ListCoupons(pb.ListCouponsRequest(status=status, offset=offset, limit=4),
                                              None))  # type: ignore[arg-type]
        reads.append(coupon_rows(read))

    listed = [(c.id, c.status) for page in pages for c in page.coupons]
    assert listed == [(coupon_id, status or next(s for s, ids in shown.items() if coupon_id in ids))
                      for coupon_id in expected]
    assert {page.total for page in pages} == {len(expected)}
    # each page: the count (one row) and the page (at most 4)
    assert [sorted(rows) for rows in reads] == [sorted([1, len(page.coupons)]) for page in pages]


def test_the_member_summary_counts_the_available_coupons_in_the_database(
        engine: Engine, uow: Callable[[], SqlMemberUnitOfWork], alices: dict[str, list[int]]) -> None:
    with rows_read(engine) as read:
        summary = service.get_member(uow(), user_id=ALICE)

    assert summary.coupons_available == 3  # the 2 usable and the 1 not started: shown available, as before
    assert coupon_rows(read) == [1]
