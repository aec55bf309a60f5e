"""Coupon templates on the in-memory unit of work: staff list, approve and disable them (who, when, why), one an
operator created issues nothing until another staff member approves it, nobody claims one they created or approved,
one coupon takes at most the maximum face value off, a disabled one issues no more coupons while those claimed stay
usable, and shoppers list what they may claim now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mall.member.v1 import member_pb2 as pb

from services.common.auth import Caller, caller_var
from services.common.config import ConfigError
from services.common.errors import DomainError, ErrorKind, Forbidden, InvalidInput, NotFound
from services.common.events import timestamp
from services.member import service
from services.member.channels import RechargeChannels
from services.member.config import MemberServiceSettings
from services.member.domain import CouponUsage, OrderLine
from services.member.grpc_api import MemberServicer
from tests.fakes import FakeCategories, FakePhones, SimulatedPayout
from tests.fixtures.member_orders import award_points_for_order
from tests.unit.member.fakes import FakeMemberUnitOfWork
from tests.unit.member.test_recharge_expiry import base

NOW = datetime(2026, 12, 8, 8, 0, tzinfo=UTC)
ALICE, BOB, OPERATOR, ADMIN = 1, 2, 900, 901


@pytest.fixture
def uow() -> FakeMemberUnitOfWork:
    return FakeMemberUnitOfWork()


def create(uow: FakeMemberUnitOfWork, categories: FakeCategories | None = None, **overrides: object) -> int:
    fields: dict = {"name": "5 yuan off", "kind": "fixed", "amount_fen": 500, "percent_off": 0, "threshold_fen": 0,
                    "cap_fen": 0, "total": 10, "per_user_limit": 1, "valid_from": NOW - timedelta(days=1),
                    "valid_to": NOW + timedelta(days=7), "category_ids": [], "created_by": OPERATOR, "now": NOW}
    fields.update(overrides)
    return service.create_coupon_template(uow, categories or FakeCategories(), **fields).id or 0


def template(uow: FakeMemberUnitOfWork, **overrides: object) -> int:
    """An active template (as an admin creates them)."""
    return create(uow, needs_approval=False, **overrides)


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

    assert ([t.template.id for t in every], total) == ([third, second], 3)
    assert ([t.template.id for t in active], active_total, unknown.value.code) == ([third, first], 2,
                                                                                   "STATUS_INVALID")


def test_shoppers_see_only_what_they_may_claim_now(uow: FakeMemberUnitOfWork) -> None:
    claimable = template(uow, name="open")
    twice = template(uow, name="two per shopper", per_user_limit=2)
    taken = template(uow, name="one per shopper")
    template(uow, name="not started", valid_from=NOW + timedelta(hours=1))
    template(uow, name="ended", valid_from=NOW - timedelta(days=2), valid_to=NOW, now=NOW - timedelta(days=3))
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


FINANCE = 902


def pending(uow: FakeMemberUnitOfWork, **overrides: object) -> int:
    """A template an operator created: it waits for approval (unless said otherwise, a template does)."""
    return create(uow, **overrides)


def test_an_operators_template_issues_nothing_until_approved(uow: FakeMemberUnitOfWork) -> None:
    template_id = pending(uow)

    with pytest.raises(DomainError) as waiting:
        service.claim_coupon(uow, user_id=ALICE, template_id=template_id, now=NOW)
    listed, total = service.claimable_coupon_templates(uow, user_id=ALICE, offset=0, limit=20, now=NOW)

    assert (waiting.value.code, listed, total) == ("COUPON_TEMPLATE_NOT_APPROVED", [], 0)
    assert (service.coupon_template(uow, template_id=template_id).status, uow.coupons.coupons) == (
        "pending_approval", {})


def test_an_approved_template_records_who_and_when_and_takes_claims(uow: FakeMemberUnitOfWork) -> None:
    template_id = pending(uow)

    approved = service.approve_coupon_template(uow, template_id=template_id, actor_id=FINANCE, now=NOW)
    coupon, _ = service.claim_coupon(uow, user_id=ALICE, template_id=template_id, now=NOW)

    assert (approved.status, approved.approved_by, approved.approved_at, approved.created_by) == (
        "active", FINANCE, NOW, OPERATOR)
    assert (coupon.status, approved.issued) == ("available", 1)


def test_the_creator_cannot_approve_their_own_template(uow: FakeMemberUnitOfWork) -> None:
    template_id = pending(uow, created_by=ADMIN)

    with pytest.raises(Forbidden) as refused:
        service.approve_coupon_template(uow, template_id=template_id, actor_id=ADMIN, now=NOW)

    found = service.coupon_template(uow, template_id=template_id)
    assert (refused.value.code, found.status, found.approved_by) == ("OWN_REQUEST", "pending_approval", None)


def test_approving_again_changes_nothing_and_keeps_the_first_approver(uow: FakeMemberUnitOfWork) -> None:
    template_id = pending(uow)
    service.approve_coupon_template(uow, template_id=template_id, actor_id=FINANCE, now=NOW)

    again = service.approve_coupon_template(uow, template_id=template_id, actor_id=ADMIN,
                                            now=NOW + timedelta(hours=1))

    assert (again.status, again.approved_by, again.approved_at) == ("active", FINANCE, NOW)


def test_a_template_disabled_while_waiting_cannot_be_approved(uow: FakeMemberUnitOfWork) -> None:
    template_id = pending(uow)
    service.disable_coupon_template(uow, template_id=template_id, actor_id=ADMIN, reason="500 yuan? no", now=NOW)

    with pytest.raises(DomainError) as refused:
        service.approve_coupon_template(uow, template_id=template_id, actor_id=FINANCE, now=NOW)

    found = service.coupon_template(uow, template_id=template_id)
    assert (refused.value.code, found.status, found.approved_by) == ("COUPON_TEMPLATE_DISABLED", "disabled", None)


def test_the_creator_may_not_claim_or_see_their_template_even_approved(uow: FakeMemberUnitOfWork) -> None:
    template_id = pending(uow)
    uow.coupons.templates[template_id].status = "active"  # however it became active

    with pytest.raises(Forbidden) as own:
        service.claim_coupon(uow, user_id=OPERATOR, template_id=template_id, now=NOW)
    listed = service.claimable_coupon_templates(uow, user_id=OPERATOR, offset=0, limit=20, now=NOW)

    assert (own.value.code, listed, uow.coupons.templates[template_id].issued) == ("OWN_REQUEST", ([], 0), 0)


def test_neither_creator_nor_approver_may_claim_or_see_the_template(uow: FakeMemberUnitOfWork) -> None:
    template_id = pending(uow)
    service.approve_coupon_template(uow, template_id=template_id, actor_id=FINANCE, now=NOW)

    refused = []
    for staff in (OPERATOR, FINANCE):
        with pytest.raises(Forbidden) as own:
            service.claim_coupon(uow, user_id=staff, template_id=template_id, now=NOW)
        refused.append((own.value.code, service.claimable_coupon_templates(uow, user_id=staff, offset=0, limit=20,
                                                                           now=NOW)[1]))
    service.claim_coupon(uow, user_id=ALICE, template_id=template_id, now=NOW)

    assert refused == [("OWN_REQUEST", 0), ("OWN_REQUEST", 0)]
    assert [c.user_id for c in uow.coupons.coupons.values()] == [ALICE]


def test_an_admin_cannot_claim_the_template_they_created_active(uow: FakeMemberUnitOfWork) -> None:
    template_id = template(uow, created_by=ADMIN)

    with pytest.raises(Forbidden) as own:
        service.claim_coupon(uow, user_id=ADMIN, template_id=template_id, now=NOW)

    assert (own.value.code, service.coupon_template(uow, template_id=template_id).issued) == ("OWN_REQUEST", 0)


def test_one_coupon_takes_at_most_the_maximum_face_value_off(uow: FakeMemberUnitOfWork) -> None:
    refused = []
    for fields in ({"amount_fen": 100_001}, {"kind": "percent", "amount_fen": 0, "percent_off": 10, "cap_fen": 100_001},
                   {"kind": "percent", "amount_fen": 0, "percent_off": 10, "cap_fen": 0},
                   {"amount_fen": 501, "max_face_fen": 500}):
        with pytest.raises(DomainError) as too_much:
            create(uow, **fields)
        refused.append((too_much.value.code, too_much.value.kind.value, too_much.value.details))

    largest = service.coupon_template(uow, template_id=create(uow, amount_fen=100_000))

    assert refused == [("COUPON_TEMPLATE_TOO_VALUABLE", "business_rule", {"amount_fen": "1-100000"}),
                       ("COUPON_TEMPLATE_TOO_VALUABLE", "business_rule", {"cap_fen": "1-100000"}),
                       ("COUPON_TEMPLATE_TOO_VALUABLE", "business_rule", {"cap_fen": "1-100000"}),
                       ("COUPON_TEMPLATE_TOO_VALUABLE", "business_rule", {"amount_fen": "1-500"})]
    assert (largest.amount_fen, len(uow.coupons.templates)) == (100_000, 1)


@pytest.mark.parametrize(("raw", "expected"), [(None, 100_000), ("100", 100), ("1000000000000", 10**12)])
def test_the_maximum_face_value_is_read_from_the_environment(tmp_path: Path, raw: str | None, expected: int) -> None:
    environ = {} if raw is None else {"MEMBER_COUPON_MAX_FACE_FEN": raw}
    assert MemberServiceSettings.from_env(base(tmp_path), environ).coupon_max_face_fen == expected


@pytest.mark.parametrize("raw", ["99", "1000000000001", "-1"])
def test_a_maximum_face_value_out_of_its_bounds_stops_the_service_at_start(tmp_path: Path, raw: str) -> None:
    with pytest.raises(ConfigError, match=f"^MEMBER_COUPON_MAX_FACE_FEN must be 100 to 1000000000000, got '{raw}'$"):
        MemberServiceSettings.from_env(base(tmp_path), {"MEMBER_COUPON_MAX_FACE_FEN": raw})


def test_the_servicer_creates_templates_worth_at_most_its_configured_maximum(uow: FakeMemberUnitOfWork) -> None:
    servicer = MemberServicer(lambda: uow, SimulatedPayout(), RechargeChannels({}),
                              categories=FakeCategories(), phones=FakePhones(),
                              coupon_max_face_fen=1_000)
    request = pb.CreateCouponTemplateRequest(name="x", kind="fixed", amount_fen=1_001, total=1, per_user_limit=1,
                                             valid_from=timestamp(NOW), valid_to=timestamp(NOW + timedelta(days=1)))
    token = caller_var.set(Caller(user_id=ADMIN, roles=frozenset({"admin"}), token_id="t"))
    try:
        with pytest.raises(DomainError) as too_much:
            servicer.CreateCouponTemplate(request, None)  # type: ignore[arg-type]
        request.amount_fen = 1_000
        created = servicer.CreateCouponTemplate(request, None)  # type: ignore[arg-type]
    finally:
        caller_var.reset(token)

    assert (too_much.value.code, created.status, created.approved_by) == ("COUPON_TEMPLATE_TOO_VALUABLE", "active", 0)


def test_a_fixed_coupon_with_a_threshold_takes_off_at_most_its_threshold(uow: FakeMemberUnitOfWork) -> None:
    # "满50减100" (amount and threshold swapped by mistake) would make every order of 50-100 yuan free.
    with pytest.raises(InvalidInput) as swapped:
        create(uow, amount_fen=10_000, threshold_fen=5_000)

    at_its_threshold = create(uow, amount_fen=5_000, threshold_fen=5_000)
    no_threshold = create(uow, amount_fen=5_000, threshold_fen=0)  # 无门槛: takes at most the items' price off
    percent = create(uow, kind="percent", amount_fen=0, percent_off=50, cap_fen=10_000, threshold_fen=5_000)

    assert (swapped.value.code, swapped.value.details) == (
        "COUPON_TEMPLATE_INVALID", {"threshold_fen": "0 (no threshold) or at least amount_fen"})
    assert sorted(uow.coupons.templates) == sorted([at_its_threshold, no_threshold, percent])


def test_a_template_whose_validity_has_already_ended_is_refused(uow: FakeMemberUnitOfWork) -> None:
    # A mistyped year (2025 for 2026) would otherwise make an active template nobody can ever claim or use.
    with pytest.raises(InvalidInput) as ended:
        create(uow, valid_from=NOW - timedelta(days=30), valid_to=NOW)

    assert (ended.value.code, ended.value.details, uow.coupons.templates) == (
        "COUPON_TEMPLATE_INVALID", {"valid_to": "must be in the future"}, {})


def test_the_servicer_passes_the_claims_idempotency_key_so_a_retry_answers_the_first_coupon(
        uow: FakeMemberUnitOfWork) -> None:
    template_id = template(uow, total=5, per_user_limit=3)
    servicer = MemberServicer(lambda: uow, SimulatedPayout(), RechargeChannels({}),
                              categories=FakeCategories(), phones=FakePhones())
    request = pb.ClaimCouponRequest(template_id=template_id, idempotency_key="tap-1")
    token = caller_var.set(Caller(user_id=ALICE, roles=frozenset(), token_id="t"))
    try:
        first = servicer.ClaimCoupon(request, None)  # type: ignore[arg-type]
        retried = servicer.ClaimCoupon(request, None)  # type: ignore[arg-type]
    finally:
        caller_var.reset(token)

    assert (first.id, retried.id, service.coupon_template(uow, template_id=template_id).issued) == (1, 1, 1)


def test_a_claim_retried_after_its_template_ended_shows_the_coupon_expired_as_the_coupon_list_does(
        uow: FakeMemberUnitOfWork) -> None:
    now = datetime.now(UTC)  # the servicer reads the clock
    claimed_at = now - timedelta(days=2)
    template_id = template(uow, valid_from=now - timedelta(days=10), valid_to=now - timedelta(days=1), now=claimed_at)
    service.claim_coupon(uow, user_id=ALICE, template_id=template_id, idempotency_key="tap-1", now=claimed_at)
    servicer = MemberServicer(lambda: uow, SimulatedPayout(), RechargeChannels({}),
                              categories=FakeCategories(), phones=FakePhones())
    token = caller_var.set(Caller(user_id=ALICE, roles=frozenset(), token_id="t"))
    try:
        retried = servicer.ClaimCoupon(pb.ClaimCouponRequest(template_id=template_id, idempotency_key="tap-1"),
                                       None)  # type: ignore[arg-type]
        listed = servicer.ListCoupons(pb.ListCouponsRequest(limit=10), None)  # type: ignore[arg-type]
    finally:
        caller_var.reset(token)

    assert (retried.id, retried.status, [(c.id, c.status) for c in listed.coupons]) == (1, "expired", [(1, "expired")])


@pytest.mark.parametrize(("fields", "field"), [
    ({"kind": "percent", "amount_fen": 500, "percent_off": 10, "cap_fen": 1_000}, "amount_fen"),
    ({"kind": "fixed", "amount_fen": 500, "percent_off": 10}, "percent_off"),
    ({"kind": "fixed", "amount_fen": 500, "cap_fen": 1_000}, "cap_fen")])
def test_a_field_of_the_other_kind_of_template_is_refused_not_dropped(uow: FakeMemberUnitOfWork, fields: dict,
                                                                     field: str) -> None:
    # A percent template given amount_fen 500 was created as "10% off" with the 5 yuan silently dropped: staff
    # believed they had issued something else than shoppers got.
    with pytest.raises(InvalidInput) as refused:
        create(uow, **fields)

    assert (refused.value.code, list(refused.value.details), uow.coupons.templates) == (
        "COUPON_TEMPLATE_INVALID", [field], {})


def test_zero_in_a_field_of_the_other_kind_counts_as_not_set(uow: FakeMemberUnitOfWork) -> None:
    fixed = create(uow, kind="fixed", amount_fen=500, percent_off=0, cap_fen=0)
    percent = create(uow, kind="percent", amount_fen=0, percent_off=10, cap_fen=1_000)

    found = [service.coupon_template(uow, template_id=t) for t in (fixed, percent)]
    assert [(t.kind, t.amount_fen, t.percent_off, t.cap_fen) for t in found] == [
        ("fixed", 500, 0, 0), ("percent", 0, 10, 1_000)]


def test_a_template_restricted_to_categories_the_catalogue_lacks_is_refused_naming_them(
        uow: FakeMemberUnitOfWork) -> None:
    with pytest.raises(InvalidInput) as refused:
        create(uow, FakeCategories(known={3, 4}), category_ids=[99, 3, 7])

    assert (refused.value.code, refused.value.details, uow.coupons.templates) == (
        "COUPON_TEMPLATE_INVALID", {"category_ids": "no such categories: 7, 99"}, {})


def test_a_template_restricted_to_categories_the_catalogue_has_is_created_with_them(
        uow: FakeMemberUnitOfWork) -> None:
    categories = FakeCategories(known={3, 4})

    template_id = create(uow, categories, category_ids=[4, 3])

    assert (uow.coupons.templates[template_id].category_ids, categories.asked) == ([3, 4], [[3, 4]])


def test_no_template_is_created_while_the_product_service_cannot_say_which_categories_exist(
        uow: FakeMemberUnitOfWork) -> None:
    with pytest.raises(DomainError) as refused:
        create(uow, FakeCategories(down=True), category_ids=[3])

    assert (refused.value.code, refused.value.kind, uow.coupons.templates) == (
        "PRODUCT_UNAVAILABLE", ErrorKind.UNAVAILABLE, {})


def test_a_template_for_every_category_or_with_invalid_fields_asks_the_catalogue_nothing(
        uow: FakeMemberUnitOfWork) -> None:
    categories = FakeCategories(down=True)

    create(uow, categories, category_ids=[])
    with pytest.raises(InvalidInput):
        create(uow, categories, category_ids=[3], total=0)

    assert (categories.asked, len(uow.coupons.templates)) == ([], 1)


def test_a_template_create_retried_with_its_key_answers_the_first_and_creates_no_second(
        uow: FakeMemberUnitOfWork) -> None:
    first = create(uow, idempotency_key="form-1")
    service.approve_coupon_template(uow, template_id=first, actor_id=ADMIN, now=NOW)

    retried = service.create_coupon_template(uow, FakeCategories(), **{
        "name": "5 yuan off", "kind": "fixed", "amount_fen": 500, "percent_off": 0, "threshold_fen": 0,
        "cap_fen": 0, "total": 10, "per_user_limit": 1, "valid_from": NOW - timedelta(days=1),
        "valid_to": NOW + timedelta(days=7), "category_ids": [], "created_by": OPERATOR, "now": NOW,
        "idempotency_key": "form-1"})

    assert (retried.id, retried.status, sorted(uow.coupons.templates)) == (first, "active", [1])  # as it is now


def test_a_template_create_retried_after_valid_to_or_while_the_catalogue_is_down_answers_the_first(
        uow: FakeMemberUnitOfWork) -> None:
    """A retry is the same request: checking its fields or categories again would answer 400 or 503 to a create that
    went through, and the client would never learn the template's id."""
    first = create(uow, FakeCategories(known=[3]), idempotency_key="form-1", category_ids=[3])
    catalogue_down = FakeCategories(down=True)

    late = create(uow, catalogue_down, idempotency_key="form-1", category_ids=[3], now=NOW + timedelta(days=8))

    assert (late, catalogue_down.asked, sorted(uow.coupons.templates)) == (first, [], [first])


def test_a_template_key_reused_for_other_fields_is_a_conflict_and_creates_nothing(uow: FakeMemberUnitOfWork) -> None:
    create(uow, idempotency_key="form-1")

    with pytest.raises(DomainError) as raised:
        create(uow, idempotency_key="form-1", amount_fen=600)

    assert (raised.value.kind, raised.value.code, sorted(uow.coupons.templates)) == (
        ErrorKind.CONFLICT, "IDEMPOTENCY_KEY_REUSED", [1])


def test_template_creates_without_a_key_each_create_a_template(uow: FakeMemberUnitOfWork) -> None:
    assert ([create(uow), create(uow)], sorted(uow.coupons.templates)) == ([1, 2], [1, 2])


def test_the_servicer_passes_the_template_creates_idempotency_key_so_a_retry_answers_the_first(
        uow: FakeMemberUnitOfWork) -> None:
    servicer = MemberServicer(lambda: uow, SimulatedPayout(), RechargeChannels({}),
                              categories=FakeCategories(), phones=FakePhones())
    request = pb.CreateCouponTemplateRequest(
        name="5 yuan off", kind="fixed", amount_fen=500, total=10, per_user_limit=1,
        valid_from=timestamp(datetime.now(UTC) + timedelta(days=1)),
        valid_to=timestamp(datetime.now(UTC) + timedelta(days=8)), idempotency_key="form-1")
    token = caller_var.set(Caller(user_id=OPERATOR, roles=frozenset({"operator"}), token_id="t"))
    try:
        first = servicer.CreateCouponTemplate(request, None)  # type: ignore[arg-type]
        retried = servicer.CreateCouponTemplate(request, None)  # type: ignore[arg-type]
    finally:
        caller_var.reset(token)

    assert (first.id, retried.id, sorted(uow.coupons.templates)) == (1, 1, [1])


def test_staff_list_counts_each_templates_coupons_by_how_they_stand_now(uow: FakeMemberUnitOfWork) -> None:
    running = template(uow, name="running", per_user_limit=5)
    ended = template(uow, name="ended", per_user_limit=5, valid_to=NOW + timedelta(hours=1))
    untouched = template(uow, name="untouched")
    mine = [service.claim_coupon(uow, user_id=ALICE, template_id=running, now=NOW)[0].id or 0 for _ in range(5)]
    for n, coupon_id in enumerate(mine[:3]):
        service.lock_coupon(uow, user_id=ALICE, order_no=f"O{n}", coupon_id=coupon_id, lines=[OrderLine(1, 10_000)],
                            now=NOW)
    for order_no in ("O0", "O1"):  # paid: order-paid uses the coupon the order locked
        award_points_for_order(uow, order_no=order_no, user_id=ALICE, paid_fen=9_500, now=NOW)
    for _ in range(2):
        service.claim_coupon(uow, user_id=BOB, template_id=ended, now=NOW)

    listed, total = service.coupon_templates(uow, status="", offset=0, limit=20, now=NOW + timedelta(hours=2))

    assert ([(t.template.id, t.template.issued, t.usage) for t in listed], total) == ([
        (untouched, 0, CouponUsage()),
        (ended, 2, CouponUsage(expired=2)),
        (running, 5, CouponUsage(available=2, locked=1, used=2))], 3)


def test_the_servicer_lists_templates_with_their_usage_and_other_answers_carry_none(uow: FakeMemberUnitOfWork) -> None:
    template_id = template(uow, per_user_limit=3)
    for _ in range(3):
        service.claim_coupon(uow, user_id=ALICE, template_id=template_id, now=NOW)
    coupon_id = next(iter(uow.coupons.coupons))
    service.lock_coupon(uow, user_id=ALICE, order_no="O1", coupon_id=coupon_id, lines=[OrderLine(1, 10_000)], now=NOW)
    servicer = MemberServicer(lambda: uow, SimulatedPayout(), RechargeChannels({}),
                              categories=FakeCategories(), phones=FakePhones())
    token = caller_var.set(Caller(user_id=ADMIN, roles=frozenset({"admin"}), token_id="t"))
    try:
        listed = servicer.ListCouponTemplates(pb.ListCouponTemplatesRequest(limit=20), None)  # type: ignore[arg-type]
        one = servicer.GetCouponTemplate(pb.GetCouponTemplateRequest(template_id=template_id),
                                         None)  # type: ignore[arg-type]
    finally:
        caller_var.reset(token)

    assert [(t.issued, t.usage) for t in listed.templates] == [(3, pb.CouponUsage(available=2, locked=1))]
    assert one.HasField("usage") is False
