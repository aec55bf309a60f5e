"""Staff's list of coupon templates counts each template's coupons by how they stand, on PostgreSQL: one grouped read
of the coupons for the whole page, however many templates it holds (no read per template)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from services.member import service
from services.member.db import SqlMemberUnitOfWork
from services.member.domain import CouponUsage, OrderLine
from tests.fakes import FakeCategories
from tests.fixtures.member_orders import award_points_for_order
from tests.fixtures.statements import statements

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 8, 8, 0, tzinfo=UTC)
ALICE, BOB, ADMIN = 101, 102, 901


def new_template(uow: Callable[[], SqlMemberUnitOfWork], *, valid_to: datetime = NOW + timedelta(days=7)) -> int:
    return service.create_coupon_template(
        uow(), FakeCategories(), name="5 yuan off", kind="fixed", amount_fen=500, percent_off=0, threshold_fen=0,
        cap_fen=0, total=10, per_user_limit=5, valid_from=NOW - timedelta(days=1), valid_to=valid_to,
        category_ids=[], created_by=ADMIN, needs_approval=False, now=NOW).id or 0


def claimed(uow: Callable[[], SqlMemberUnitOfWork], user_id: int, template_id: int, times: int) -> list[int]:
    return [service.claim_coupon(uow(), user_id=user_id, template_id=template_id, now=NOW)[0].id or 0
            for _ in range(times)]


def test_each_template_on_the_page_has_its_coupons_counted_by_status_in_one_read(
        engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    running, ended, untouched = new_template(uow), new_template(uow, valid_to=NOW + timedelta(hours=1)), new_template(uow)
    mine = claimed(uow, ALICE, running, 5)
    for n, coupon_id in enumerate(mine[:3]):
        service.lock_coupon(uow(), user_id=ALICE, order_no=f"O{n}", coupon_id=coupon_id,
                            lines=[OrderLine(1, 10_000)], now=NOW)
    for order_no in ("O0", "O1"):  # paid: order-paid uses the coupon the order locked
        award_points_for_order(uow(), order_no=order_no, user_id=ALICE, paid_fen=9_500, now=NOW)
    claimed(uow, BOB, ended, 2)

    with statements(engine) as sent:
        listed, total = service.coupon_templates(uow(), status="", offset=0, limit=20, now=NOW + timedelta(hours=2))
    with statements(engine) as sent_for_one:
        service.coupon_templates(uow(), status="", offset=0, limit=1, now=NOW + timedelta(hours=2))

    assert ([(t.template.id, t.template.issued, t.usage) for t in listed], total) == ([
        (untouched, 0, CouponUsage()),
        (ended, 2, CouponUsage(expired=2)),
        (running, 5, CouponUsage(available=2, locked=1, used=2))], 3)
    assert (sent.count("SELECT coupons"), sent) == (1, sent_for_one)
