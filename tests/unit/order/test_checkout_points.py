"""Points at checkout against the member service's own rules: the preview and the order use the same points."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from services.member import service as member_service
from services.member.domain import Account
from services.order import service
from services.order.service import CheckoutInput
from tests.fakes import FakeMembers
from tests.fixtures.member_orders import award_points_for_order
from tests.unit.member.fakes import FakeMemberUnitOfWork
from tests.unit.order.conftest import NOW, Shop

SHOPPER = 1


@dataclass
class MemberServicePoints(FakeMembers):
    """The shopper's points as the member service keeps them (services.member.service over its in-memory unit of
    work): QuotePoints takes up to the points wished for; LockPoints holds exactly what it is asked, refusing more
    than the shopper has (INSUFFICIENT_POINTS) or than half the goods (POINTS_OVER_LIMIT)."""

    member: FakeMemberUnitOfWork = field(default_factory=FakeMemberUnitOfWork)

    def quote_points(self, points: int, payable_fen: int) -> tuple[int, int]:
        quote = member_service.quote_points(self.member, user_id=SHOPPER, points=points, payable_fen=payable_fen)
        return quote.usable_points, quote.discount_fen

    def lock_points(self, order_no: str, points: int, payable_fen: int) -> tuple[int, int]:
        held = member_service.lock_points(self.member, user_id=SHOPPER, order_no=order_no, points=points,
                                          payable_fen=payable_fen, now=NOW)
        return held.usable_points, held.discount_fen

    def release_points(self, order_no: str) -> None:
        member_service.release_points(self.member, order_no=order_no, now=NOW)

    def held(self) -> tuple[int, int]:
        """(spendable, held) points of the shopper."""
        return (self.member.ledger.balance(SHOPPER, Account.POINTS),
                self.member.ledger.balance(SHOPPER, Account.POINTS_LOCKED))


@pytest.fixture
def points_shop(shop: Shop) -> Shop:
    members = MemberServicePoints()
    member_service.sign_up(members.member, user_id=SHOPPER, channel="self", invite_code=None, now=NOW)
    award_points_for_order(members.member, order_no="O0", user_id=SHOPPER, paid_fen=120_000, now=NOW)
    assert members.held() == (1_200, 0)  # 1,200 yuan paid at normal: 1,200 points (silver after it)
    shop.members = members
    return shop


@pytest.mark.parametrize(("request_", "items_fen", "points_used", "payable_fen"), [
    # 2 x 19.99 yuan: half is 1,999 points, the shopper has 1,200 and wishes for 1,500: all 1,200 of theirs.
    (CheckoutInput(sku_id=101, quantity=2, address_id=7, points=1_500), 3_998, 1_200, 2_798),
    # 1 x 5 yuan: the shopper's 1,200 points would pay it all; points pay half at most, 250.
    (CheckoutInput(sku_id=102, quantity=1, address_id=7, points=1_000), 500, 250, 250),
], ids=["more-than-the-shopper-has", "more-than-half-the-goods"])
def test_an_order_uses_the_points_its_preview_showed_when_more_were_wished_for(
        points_shop: Shop, request_: CheckoutInput, items_fen: int, points_used: int, payable_fen: int) -> None:
    shop = points_shop
    quote = service.quote_checkout(shop.uow, shop.catalog, shop.members, shop.users, shop.settings,
                                   user_id=SHOPPER, request=request_)

    order = service.submit_order(shop.uow, shop.members, shop.stock, shop.users, shop.settings, user_id=SHOPPER,
                                 request=request_, note="", idempotency_key="k1",
                                 request_fingerprint=repr(request_).encode(), now=NOW)

    assert (quote.amounts.items_total_fen, quote.points_used, quote.amounts.points_discount_fen,
            quote.amounts.payable_fen) == (items_fen, points_used, points_used, payable_fen)
    assert (order.points_used, order.amounts) == (quote.points_used, quote.amounts)
    assert shop.members.held() == (1_200 - points_used, points_used)  # type: ignore[attr-defined]


def test_an_order_wishing_for_points_the_shopper_does_not_have_is_placed_without_points(points_shop: Shop) -> None:
    shop = points_shop
    shop.members.member = MemberServicePoints().member  # type: ignore[attr-defined]  # a shopper with no points
    request = CheckoutInput(sku_id=101, quantity=2, address_id=7, points=500)
    quote = service.quote_checkout(shop.uow, shop.catalog, shop.members, shop.users, shop.settings,
                                   user_id=SHOPPER, request=request)

    order = service.submit_order(shop.uow, shop.members, shop.stock, shop.users, shop.settings, user_id=SHOPPER,
                                 request=request, note="", idempotency_key="k1",
                                 request_fingerprint=repr(request).encode(), now=NOW)

    assert (quote.points_used, quote.amounts.payable_fen) == (0, 3_998)
    assert (order.points_used, order.points_discount_fen, order.payable_fen) == (0, 0, 3_998)
    assert shop.members.held() == (0, 0)  # type: ignore[attr-defined]
