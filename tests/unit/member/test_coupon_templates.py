"""Coupon templates on the in-memory unit of work: staff list and disable them (who, when, why), a disabled one
issues no more coupons while those claimed stay usable, and shoppers list what they may claim now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.common.errors import DomainError, InvalidInput, NotFound
from services.member import service
from services.member.domain import OrderLine
from tests.unit.member.fakes import FakeMemberUnitOfWork

NOW = datetime(2026, 12, 8, 8, 0, tzinfo=UTC)
ALICE, BOB, OPERATOR, ADMIN = 1, 2, 900, 901


@pytest.fixture
def uow() -> FakeMemberUnitOfWork:
    return FakeMemberUnitOfWork()


def template(uow: FakeMemberUnitOfWork, **overrides: object) -> int:
    fields: dict = {"name": "5 yuan off", "kind": "fixed", "amount_fen": 500, "percent_off": 0, "threshold_fen": 0,
                    "cap_fen": 0, "total": 10, "per_user_limit": 1, "valid_from": NOW - timedelta(days=1),
                    "valid_to": NOW + timedelta(days=7), "category_ids": [], "created_by": OPERATOR, "now": NOW}
    fields.update(overrides)
    return service.create_coupon_template(uow, **fields).id or 0


def test_disabling_records_who_when_and_why_and_stops_claims(uow: FakeMemberUnitOfWork) -> None:
    template_id = template(uow)

    disabled = service.disable_coupon_template(uow, template_id=template_id, actor_id=ADMIN,
                                               reason="  typed 500 yuan for 5  ", now=NOW)
    with pytest.raises(DomainError) as refused:
        service.claim_coupon(uow, user_id=ALICE, template_id=template_id, now=NOW)

    assert (disabled.status, disabled.disabled_by, disabled.disabled_at, disabled.disable_reason) == (
        "disabled", ADMIN, NOW, "typed 500 yuan for 5")
    assert (refused.value.code, disabled.issued, disabled.created_by) == ("COUPON_TEMPLATE_DISABLED", 0, OPERATOR)


def test_a_coupon_claimed_before_the_template_was_disabled_stays_usable(uow: FakeMemberUnitOfWork) -> None:
    template_id = template(uow)
    coupon, _ = service.claim_coupon(uow, user_id=ALICE, template_id=template_id, now=NOW)
    service.disable_coupon_template(uow, template_id=template_id, actor_id=ADMIN, reason="campaign over", now=NOW)

    locked = service.lock_coupon(uow, user_id=ALICE, order_no="O1", coupon_id=coupon.id or 0,
                                 lines=[OrderLine(1, 2_000)], now=NOW)

    assert (locked.discount_fen, coupon.status) == (500, "locked")


def test_disabling_again_changes_nothing_and_keeps_the_first_reason(uow: FakeMemberUnitOfWork) -> None:
    template_id = template(uow)
    service.disable_coupon_template(uow, template_id=template_id, actor_id=ADMIN, reason="first", now=NOW)

    again = service.disable_coupon_template(uow, template_id=template_id, actor_id=OPERATOR, reason="second",
                                            now=NOW + timedelta(hours=1))

    assert (again.disabled_by, again.disabled_at, again.disable_reason) == (ADMIN, NOW, "first")


def test_disabling_needs_a_reason_and_an_existing_template(uow: FakeMemberUnitOfWork) -> None:
    template_id = template(uow)

    with pytest.raises(InvalidInput) as blank:
        service.disable_coupon_template(uow, template_id=template_id, actor_id=ADMIN, reason="   ", now=NOW)
    with pytest.raises(NotFound) as unknown:
        service.disable_coupon_template(uow, template_id=99, actor_id=ADMIN, reason="gone", now=NOW)

    assert (blank.value.code, unknown.value.code) == ("REASON_REQUIRED", "COUPON_TEMPLATE_NOT_FOUND")
    assert service.coupon_template(uow, template_id=template_id).status == "active"


def test_staff_list_templates_newest_first_by_status(uow: FakeMemberUnitOfWork) -> None:
    first, second, third = template(uow, name="a"), template(uow, name="b"), template(uow, name="c")
    service.disable_coupon_template(uow, template_id=second, actor_id=ADMIN, reason="typo", now=NOW)

    every, total = service.coupon_templates(uow, status="", offset=0, limit=2)
    active, active_total = service.coupon_templates(uow, status="active", offset=0, limit=20)
    with pytest.raises(InvalidInput) as unknown:
        service.coupon_templates(uow, status="paused", offset=0, limit=20)

    assert ([t.id for t in every], total) == ([third, second], 3)
    assert ([t.id for t in active], active_total, unknown.value.code) == ([third, first], 2, "STATUS_INVALID")


def test_shoppers_see_only_what_they_may_claim_now(uow: FakeMemberUnitOfWork) -> None:
    claimable = template(uow, name="open")
    twice = template(uow, name="two per shopper", per_user_limit=2)
    taken = template(uow, name="one per shopper")
    template(uow, name="not started", valid_from=NOW + timedelta(hours=1))
    template(uow, name="ended", valid_from=NOW - timedelta(days=2), valid_to=NOW)
    sold_out = template(uow, name="sold out", total=1)
    disabled = template(uow, name="disabled")
    for template_id in (twice, taken):
        service.claim_coupon(uow, user_id=ALICE, template_id=template_id, now=NOW)
    service.claim_coupon(uow, user_id=BOB, template_id=sold_out, now=NOW)
    service.disable_coupon_template(uow, template_id=disabled, actor_id=ADMIN, reason="typo", now=NOW)

    alice, alice_total = service.claimable_coupon_templates(uow, user_id=ALICE, offset=0, limit=20, now=NOW)
    bob, bob_total = service.claimable_coupon_templates(uow, user_id=BOB, offset=1, limit=1, now=NOW)

    assert ([(t.id, claimed) for t, claimed in alice], alice_total) == ([(twice, 1), (claimable, 0)], 2)
    assert ([(t.id, claimed) for t, claimed in bob], bob_total) == ([(twice, 0)], 3)
