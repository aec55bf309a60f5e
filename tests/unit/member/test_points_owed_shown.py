"""GetMember shows the points a shopper owes: what refunds could not take back, every kind in one total."""

from __future__ import annotations

from mall.member.v1 import member_pb2

from services.common.auth import Caller, caller_var
from services.member import service
from services.member.channels import RechargeChannels
from services.member.grpc_api import MemberServicer
from tests.fakes import FakeCategories, FakePhones, SimulatedPayout
from tests.unit.member.fakes import FakeMemberUnitOfWork
from tests.unit.member.test_use_cases import ALICE, BOB, NOW


def test_get_member_answers_the_points_owed_of_every_kind_in_one_total() -> None:
    uow = FakeMemberUnitOfWork()
    service.sign_up(uow, user_id=ALICE, channel="self", invite_code=None, now=NOW)
    uow.points.add_owed(ALICE, "order_refunded", 70)
    uow.points.add_owed(ALICE, "points_used", 30)
    uow.points.add_owed(BOB, "order_refunded", 500)
    servicer = MemberServicer(lambda: uow, SimulatedPayout(), RechargeChannels({}),
                              categories=FakeCategories(), phones=FakePhones())
    token = caller_var.set(Caller(user_id=ALICE, roles=frozenset(), token_id="t", token="x"))
    try:
        answer = servicer.GetMember(member_pb2.GetMemberRequest(), None)  # type: ignore[arg-type]
    finally:
        caller_var.reset(token)

    assert answer.member.points_owed == 100
