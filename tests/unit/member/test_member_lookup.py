"""Staff read a shopper's member record (LookUpMember, on fakes): the staff who answer shoppers see what GetMember
shows the shopper, points owed included, with a page of their points entries; every read is audited (member_lookups);
shoppers and operators are refused and nothing is recorded."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from mall.member.v1 import member_pb2

from services.common.auth import Caller, Role, caller_var
from services.common.errors import Forbidden, InvalidInput, NotFound
from services.member import service
from services.member.channels import RechargeChannels
from services.member.domain import PLATFORM, Account, transfer
from services.member.grpc_api import MemberServicer
from tests.fakes import FakeCategories, FakePhones, SimulatedPayout
from tests.unit.member.fakes import FakeMemberUnitOfWork

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
SHOPPER, CLERK, OTHER = 31, 5, 32


@pytest.fixture
def uow() -> FakeMemberUnitOfWork:
    uow = FakeMemberUnitOfWork()
    service.sign_up(uow, user_id=SHOPPER, channel="self", invite_code=None, now=NOW)
    for n, points in enumerate((100, 250, 40), start=1):
        uow.ledger.post(transfer(f"award:{n}", "points_awarded", f"order-{n}", amount=points,
                                 source=(PLATFORM, Account.POINTS_ISSUED), target=(SHOPPER, Account.POINTS)), NOW)
    uow.ledger.post(transfer("seed", "recharge", "seed", amount=12_345, source=(PLATFORM, Account.CLEARING),
                             target=(SHOPPER, Account.AVAILABLE)), NOW)
    uow.points.add_owed(SHOPPER, "order_refunded", 70)
    uow.points.add_owed(SHOPPER, "points_used", 30)
    return uow


@contextmanager
def calling_as(user_id: int, *roles: str) -> Iterator[None]:
    token = caller_var.set(Caller(user_id=user_id, roles=frozenset(roles), token_id="t", token="x"))
    try:
        yield
    finally:
        caller_var.reset(token)


def servicer(uow: FakeMemberUnitOfWork) -> MemberServicer:
    return MemberServicer(lambda: uow, SimulatedPayout(), RechargeChannels({}),
                          categories=FakeCategories(), phones=FakePhones())


def look_up(uow: FakeMemberUnitOfWork, user_id: int = SHOPPER, **page: int) -> member_pb2.LookUpMemberResponse:
    return servicer(uow).LookUpMember(member_pb2.LookUpMemberRequest(user_id=user_id, **page), None)  # type: ignore[arg-type]


@pytest.mark.parametrize("role", [Role.ADMIN, Role.CUSTOMER_SERVICE, Role.FINANCE])
def test_staff_who_answer_shoppers_see_the_member_record_the_shopper_sees_points_owed_included(
        uow: FakeMemberUnitOfWork, role: Role) -> None:
    with calling_as(SHOPPER):
        own = servicer(uow).GetMember(member_pb2.GetMemberRequest(), None)  # type: ignore[arg-type]

    with calling_as(CLERK, role):
        answer = look_up(uow)

    assert answer.member == own.member
    assert (answer.member.points, answer.member.points_owed, answer.member.balance_fen) == (390, 100, 12_345)


def test_the_points_entries_come_newest_first_a_page_at_a_time(uow: FakeMemberUnitOfWork) -> None:
    with calling_as(CLERK, Role.CUSTOMER_SERVICE):
        first = look_up(uow, limit=2)
        second = look_up(uow, offset=2, limit=2)

    assert [(e.amount, e.balance_after, e.reference) for e in first.points_entries] == [
        (40, 390, "order-3"), (250, 350, "order-2")]
    assert [(e.amount, e.reference) for e in second.points_entries] == [(100, "order-1")]
    assert (first.points_entries_total, second.points_entries_total) == (3, 3)


def test_every_read_is_recorded_with_who_read_whose_record_and_when(uow: FakeMemberUnitOfWork) -> None:
    with calling_as(CLERK, Role.FINANCE):
        look_up(uow)
        look_up(uow, offset=20)

    assert [(r.actor_id, r.user_id, r.found, r.looked_up_at.tzinfo) for r in uow.lookups.by_actor(CLERK)] == [
        (CLERK, SHOPPER, True, UTC), (CLERK, SHOPPER, True, UTC)]


def test_a_user_who_is_not_a_member_is_not_found_and_the_read_is_still_recorded(uow: FakeMemberUnitOfWork) -> None:
    with calling_as(CLERK, Role.ADMIN), pytest.raises(NotFound) as missing:
        look_up(uow, OTHER)

    assert (missing.value.code, missing.value.message) == ("MEMBER_NOT_FOUND", f"user {OTHER} is not a member")
    assert [(r.user_id, r.found) for r in uow.lookups.lookups] == [(OTHER, False)]


@pytest.mark.parametrize("roles", [(), (Role.OPERATOR,)], ids=["shopper", "operator"])
def test_shoppers_and_operators_may_not_read_a_member_record_and_nothing_is_recorded(
        uow: FakeMemberUnitOfWork, roles: tuple[str, ...]) -> None:
    with calling_as(OTHER, *roles), pytest.raises(Forbidden) as refused:
        look_up(uow)

    assert (refused.value.code, uow.lookups.lookups) == ("FORBIDDEN", [])


def test_a_shopper_may_not_read_even_their_own_record_this_way(uow: FakeMemberUnitOfWork) -> None:
    with calling_as(SHOPPER), pytest.raises(Forbidden):
        look_up(uow)

    assert uow.lookups.lookups == []


@pytest.mark.parametrize("user_id", [0, -31])
def test_a_lookup_naming_no_user_is_invalid_input_and_records_nothing(uow: FakeMemberUnitOfWork, user_id: int) -> None:
    with calling_as(CLERK, Role.CUSTOMER_SERVICE), pytest.raises(InvalidInput) as raised:
        look_up(uow, user_id=user_id)

    assert (raised.value.code, raised.value.details, uow.lookups.by_actor(CLERK)) == (
        "USER_ID_INVALID", {"user_id": "at least 1"}, [])
