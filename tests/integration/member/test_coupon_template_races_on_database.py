"""A claim racing a disable, two approvals racing, and two claims racing with one idempotency key, on PostgreSQL, made
certain by holding the first transaction open until the second waits on it: a claim never issues a coupon of a
template whose disable committed first, a claim that got there first keeps its coupon, of two approvals the first is
the one recorded, and a claim retried while the first is under way answers the first's coupon."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from services.member import service
from services.member.db import SqlMemberUnitOfWork, coupon_templates, coupons
from tests.fakes import FakeCategories
from tests.integration.member.test_recharge_races_on_database import count, first_then_second

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 8, 8, 0, tzinfo=UTC)
ALICE, OPERATOR, ADMIN, FINANCE = 101, 900, 901, 902


def new_template(uow: Callable[[], SqlMemberUnitOfWork], *, needs_approval: bool = False,
                 per_user_limit: int = 1) -> int:
    return service.create_coupon_template(
        uow(), FakeCategories(), name="5 yuan off", kind="fixed", amount_fen=500, percent_off=0, threshold_fen=0, cap_fen=0, total=10,
        per_user_limit=per_user_limit, valid_from=NOW - timedelta(days=1), valid_to=NOW + timedelta(days=7), category_ids=[],
        created_by=OPERATOR, needs_approval=needs_approval, now=NOW).id or 0


def test_a_claim_waiting_on_a_disable_issues_nothing(engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    template_id = new_template(uow)

    disabled, claimed = first_then_second(
        engine, uow,
        lambda work: service.disable_coupon_template(work, template_id=template_id, actor_id=OPERATOR,
                                                     reason="typo", now=NOW).status,
        lambda work: service.claim_coupon(work, user_id=ALICE, template_id=template_id, now=NOW))

    assert (disabled, claimed) == ("disabled", "COUPON_TEMPLATE_DISABLED")
    assert (service.coupon_template(uow(), template_id=template_id).issued, count(engine, coupons)) == (0, 0)


def test_a_claim_under_way_when_the_template_is_disabled_keeps_its_coupon(
        engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    template_id = new_template(uow)

    claimed, disabled = first_then_second(
        engine, uow,
        lambda work: service.claim_coupon(work, user_id=ALICE, template_id=template_id, now=NOW)[0].status,
        lambda work: service.disable_coupon_template(work, template_id=template_id, actor_id=OPERATOR,
                                                     reason="typo", now=NOW).issued)

    assert (claimed, disabled) == ("available", 1)
    assert [v.status for v in service.list_coupons(uow(), user_id=ALICE, offset=0, limit=20, now=NOW)[0]] == ["available"]


def test_of_two_approvals_racing_the_first_is_recorded_and_the_second_changes_nothing(
        engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    template_id = new_template(uow, needs_approval=True)

    def approve(actor_id: int) -> Callable[[SqlMemberUnitOfWork], object]:
        return lambda work: service.approve_coupon_template(work, template_id=template_id, actor_id=actor_id,
                                                            now=NOW + timedelta(minutes=actor_id - ADMIN)).approved_by

    first, second = first_then_second(engine, uow, approve(FINANCE), approve(ADMIN))

    found = service.coupon_template(uow(), template_id=template_id)
    assert (first, second) == (FINANCE, FINANCE)
    assert (found.status, found.approved_by, found.approved_at) == ("active", FINANCE, NOW + timedelta(minutes=1))


def test_two_claims_racing_with_one_key_issue_one_coupon(engine: Engine,
                                                         uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    template_id = new_template(uow, per_user_limit=3)

    def claim(work: SqlMemberUnitOfWork) -> object:
        return service.claim_coupon(work, user_id=ALICE, template_id=template_id, idempotency_key="tap-1",
                                    now=NOW)[0].id

    first, retried = first_then_second(engine, uow, claim, claim)

    assert first == retried
    assert (service.coupon_template(uow(), template_id=template_id).issued, count(engine, coupons)) == (1, 1)


def test_two_template_creates_racing_with_one_key_create_one_template(
        engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    def create(work: SqlMemberUnitOfWork) -> object:
        return service.create_coupon_template(
            work, FakeCategories(), name="5 yuan off", kind="fixed", amount_fen=500, percent_off=0, threshold_fen=0,
            cap_fen=0, total=10, per_user_limit=1, valid_from=NOW - timedelta(days=1),
            valid_to=NOW + timedelta(days=7), category_ids=[], created_by=OPERATOR, idempotency_key="form-1",
            now=NOW).id

    first, retried = first_then_second(engine, uow, create, create)

    assert isinstance(first, int)
    assert (retried, count(engine, coupon_templates)) == (first, 1)


def test_a_template_create_retried_with_its_key_after_valid_to_answers_the_first(
        engine: Engine, uow: Callable[[], SqlMemberUnitOfWork]) -> None:
    """The stored answer is read before the fields are checked: valid_to has passed by the retry, and the product
    service is down, yet the retry gets the template the first request created, and no second one is made."""
    def create(now: datetime, categories: FakeCategories) -> int:
        return service.create_coupon_template(
            uow(), categories, name="5 yuan off", kind="fixed", amount_fen=500, percent_off=0, threshold_fen=0,
            cap_fen=0, total=10, per_user_limit=1, valid_from=NOW - timedelta(days=1), valid_to=NOW + timedelta(days=7),
            category_ids=[3], created_by=OPERATOR, idempotency_key="form-late", now=now).id or 0

    first = create(NOW, FakeCategories(known=[3]))

    assert (create(NOW + timedelta(days=8), FakeCategories(down=True)), count(engine, coupon_templates)) == (first, 1)
