"""The coupon rules the database filters, pages and counts by (services.member.db shown_coupon_status, usable_coupon)
answer as the domain's (Coupon.shown_status, Coupon.usable) on PostgreSQL, at and around a template's valid_from and
valid_to, for every stored status."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from services.member.db import SqlMemberUnitOfWork, coupons, coupons_with_templates, shown_coupon_status, usable_coupon
from services.member.domain import Coupon, CouponStatus, CouponTemplate

pytestmark = pytest.mark.integration

VALID_FROM = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
VALID_TO = datetime(2026, 12, 8, 0, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)  # the columns' precision
INSTANTS = [VALID_FROM - TICK, VALID_FROM, VALID_FROM + TICK, VALID_TO - TICK, VALID_TO, VALID_TO + TICK]


def test_the_database_and_the_domain_show_and_offer_each_coupon_alike_at_the_boundaries(
        uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    with uow() as tx:
        template = CouponTemplate(name="5 off", kind="fixed", amount_fen=500, percent_off=0, threshold_fen=0, cap_fen=0,
                                  total=10, per_user_limit=10, valid_from=VALID_FROM, valid_to=VALID_TO,
                                  created_at=VALID_FROM)
        tx.coupons.add_template(template)
        for n, status in enumerate((CouponStatus.AVAILABLE, CouponStatus.LOCKED, CouponStatus.USED)):
            tx.coupons.add(Coupon(template_id=template.id or 0, user_id=1, status=status, claimed_at=VALID_FROM,
                                  order_no=None if status == CouponStatus.AVAILABLE else f"O{n}"))
        tx.commit()

    in_sql, in_python = {}, {}
    with uow() as tx:
        claimed = {coupon.status: coupon for coupon, _ in
                   tx.coupons.of_user(1, status="", now=VALID_FROM, offset=0, limit=10)[0]}
        for now in INSTANTS:
            rows = tx.session.execute(select(coupons.c.status, shown_coupon_status(now), usable_coupon(now))
                                      .select_from(coupons_with_templates)).all()
            in_sql |= {(now, stored): (shown, usable) for stored, shown, usable in rows}
            in_python |= {(now, stored): (coupon.shown_status(template, now), coupon.usable(template, now))
                          for stored, coupon in claimed.items()}

    assert in_sql == in_python
    # and what both say: usable from valid_from on, expired from valid_to on; a held or used coupon never either
    assert [in_python[now, CouponStatus.AVAILABLE] for now in INSTANTS] == [
        ("available", False), ("available", True), ("available", True), ("available", True),
        ("expired", False), ("expired", False)]
    assert {in_python[now, stored] for now in INSTANTS for stored in (CouponStatus.LOCKED, CouponStatus.USED)} == {
        ("locked", False), ("used", False)}
