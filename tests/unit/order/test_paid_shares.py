"""Paid shares: what each line was paid after the level discount, the coupon (over the lines of its categories
only) and points, so that refunding a line returns what that line cost, and every share adds up to what was paid."""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from services.common.formats import FULL_PRICE_BP
from services.order import refunds, service
from services.order.domain import (
    Order,
    OrderLine,
    RefundItem,
    line_points_returned,
    line_refund_fen,
    new_order,
    paid_shares,
    points_shares,
    price,
)
from services.order.service import CheckoutInput
from tests.fakes import HOME, FakeRefundPayments
from tests.unit.order.conftest import NOW, Shop, paid_order

TEA, CUPS = 3, 5  # categories


def test_a_category_coupon_is_paid_for_only_by_the_lines_of_its_category(shop: Shop) -> None:
    shop.catalog.put(103, price_fen=3000, category_id=CUPS)
    shop.stock.available[103] = 10
    shop.members.coupon_fen, shop.members.coupon_categories = 1000, (CUPS,)
    cart = [service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=sku_id, quantity=quantity, now=NOW)
            for sku_id, quantity in ((101, 1), (103, 2))]
    request = CheckoutInput(cart_item_ids=tuple(line.item.id or 0 for line in cart), address_id=7, coupon_id=9)
    order = service.submit_order(shop.uow, shop.members, shop.stock, shop.users, shop.settings, user_id=1,
                                 request=request, note="", idempotency_key="k", request_fingerprint=b"k", now=NOW)
    order = service.mark_paid(shop.uow, order_no=order.order_no, channel="wechat", out_trade_no=order.order_no,
                              paid_fen=order.payable_fen, actor="wechatpay", now=NOW)
    tea, cups = order.lines
    assert order.payable_fen == 1999 + 6000 - 1000

    # The tea was not in the coupon's category: it costs its full price; the cups carry the whole coupon.
    assert paid_shares(order) == {tea.id: 1999, cups.id: 5000}
    assert (line_refund_fen(order, tea.id or 0, 1), line_refund_fen(order, cups.id or 0, 1)) == (1999, 2500)
    refund = refunds.start_refund(shop.uow, FakeRefundPayments(), shop.members, order_id=order.id or 0, items=[],
                                  reason="退货", actor="staff:9", source="cancel", now=NOW)
    assert [(line.line_id, line.amount_fen) for line in refund.lines] == [(tea.id, 1999), (cups.id, 5000)]


def order_of(lines: list[tuple[int, int, bool]], *, bp: int = FULL_PRICE_BP, coupon_fen: int = 0,
             points_fen: int = 0, freight_fen: int = 0, points_used: int = 0) -> Order:
    """A paid order of (unit price, quantity, in the coupon's categories) lines, priced by `price` as submit does;
    `points_used`: the points that paid `points_fen`."""
    order_lines = [OrderLine(sku_id=100 + n, product_id=10, name="x", spec="", price_fen=unit, quantity=quantity,
                             coupon_applied=in_scope, id=n + 1)
                   for n, (unit, quantity, in_scope) in enumerate(lines)]
    amounts = price(sum(line.total_fen for line in order_lines), discount_bp=bp, coupon_fen=coupon_fen,
                    points_fen=points_fen)
    amounts = replace(amounts, freight_fen=freight_fen, payable_fen=amounts.payable_fen + freight_fen)
    return new_order(user_id=1, order_no="O1", lines=order_lines, address=HOME, amounts=amounts, now=NOW,
                     pay_minutes=30, coupon_id=9 if coupon_fen else 0, points_used=points_used)


@pytest.mark.parametrize(("lines", "discounts", "shares"), [
    # No coupon: the goods split by line totals, floored, the last line taking the rest (as always).
    ([(1999, 2, True), (500, 1, True)], {}, [3998, 500]),
    # A coupon of every category: spread over every line, as before.
    ([(1999, 2, True), (500, 1, True)], {"coupon_fen": 1001}, [3108, 389]),
    # Limited to the second line's category: only that line carries it, the first costs its full price.
    ([(1999, 2, False), (500, 1, True)], {"coupon_fen": 300}, [3998, 200]),
    ([(1999, 2, True), (500, 1, False)], {"coupon_fen": 1000}, [2998, 500]),
    # The freight is not part of any line.
    ([(1999, 2, False), (500, 1, True)], {"coupon_fen": 300, "freight_fen": 800}, [3998, 200]),
    # Level discount (5%: 224 of 4498) over every line; the coupon (1000) over the first line only:
    # the first line keeps 3998 x 4274 / 4498 - 1000 = 2798.88.. -> 2798, the second the rest of 3274.
    ([(1999, 2, True), (500, 1, False)], {"bp": 9_500, "coupon_fen": 1000}, [2798, 476]),
    # A coupon worth more than its lines after the level discount (500 off a 500 line, 10% level): the line
    # is free and what the coupon took beyond it (500 - 449.9..) lowers the other lines.
    ([(1999, 2, False), (500, 1, True)], {"bp": 9_000, "coupon_fen": 500}, [3549, 0]),
    # The rounding within the coupon's lines stays there: the other line still costs exactly its price.
    ([(333, 1, True), (333, 1, True), (1000, 1, False)], {"coupon_fen": 101}, [282, 283, 1000]),
    # Points are spread over what each line still cost after the level discount and the coupon.
    ([(1000, 1, True), (1000, 1, False), (2000, 1, False)], {"coupon_fen": 400, "points_fen": 360},
     [540, 900, 1800]),
])
def test_paid_shares_follow_the_discounts_to_the_lines_they_apply_to_exactly(
        lines: list[tuple[int, int, bool]], discounts: dict[str, int], shares: list[int]) -> None:
    order = order_of(lines, **discounts)

    assert list(paid_shares(order).values()) == shares
    assert sum(shares) == order.payable_fen - order.freight_fen


LINES = st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 5), st.booleans()), min_size=1, max_size=8)


def priced(lines: list[tuple[int, int, bool]], bp: int, coupon: int, points: int) -> Order:
    """As member and order price it: the coupon at most what its lines cost (and only when it has lines)."""
    in_scope = sum(unit * quantity for unit, quantity, applies in lines if applies)
    return order_of(lines, bp=bp, coupon_fen=min(coupon, in_scope), points_fen=points)


@given(lines=LINES, bp=st.integers(8_500, 10_000), coupon=st.integers(0, 10**6), points=st.integers(0, 10**6))
def test_every_lines_paid_share_adds_up_to_what_was_paid_and_lies_within_a_fen_of_its_exact_value(
        lines: list[tuple[int, int, bool]], bp: int, coupon: int, points: int) -> None:
    order = priced(lines, bp, coupon, points)
    shares = paid_shares(order)

    assert sum(shares.values()) == order.payable_fen - order.freight_fen
    assert all(share >= 0 for share in shares.values())
    # Exactly: the level discount in proportion to the totals; the coupon on its lines up to what they cost
    # after it, any excess off the others; points in proportion to what is left. Each group of lines (the
    # coupon's, the others) is within one fen of its exact part; each line within as many fen as its group has lines.
    total = order.items_total_fen
    after_level = {line.id: Fraction(line.total_fen * (total - order.level_discount_fen), total) if total else 0
                   for line in order.lines}
    scoped = [line for line in order.lines if line.coupon_applied]
    others = [line for line in order.lines if not line.coupon_applied]
    scoped_value = sum(after_level[line.id] for line in scoped)
    taken = min(Fraction(order.coupon_discount_fen), scoped_value)
    excess = order.coupon_discount_fen - taken
    other_value = sum(after_level[line.id] for line in others)
    left = {line.id: after_level[line.id] * (1 - taken / scoped_value) for line in scoped if scoped_value}
    left |= {line.id: after_level[line.id] * (1 - excess / other_value) for line in others if other_value}
    goods, remaining = order.payable_fen - order.freight_fen, sum(left.values())
    exact = {line_id: value * goods / remaining if remaining else 0 for line_id, value in left.items()}
    for group in (scoped, others):
        assert abs(sum(shares[line.id] for line in group) - sum(exact.get(line.id, 0) for line in group)) < 1
        assert all(abs(shares[line.id] - exact.get(line.id, 0)) < len(group) for line in group)


@given(lines=LINES, coupon=st.integers(0, 10**6))
def test_without_level_discount_or_points_lines_outside_the_coupon_cost_their_price_and_its_lines_carry_it_all(
        lines: list[tuple[int, int, bool]], coupon: int) -> None:
    order = priced(lines, FULL_PRICE_BP, coupon, 0)
    shares = paid_shares(order)

    outside = [line for line in order.lines if not line.coupon_applied]
    inside = [line for line in order.lines if line.coupon_applied]
    assert [shares[line.id] for line in outside] == [line.total_fen for line in outside]
    assert sum(shares[line.id] for line in inside) == sum(line.total_fen for line in inside) - order.coupon_discount_fen


@given(lines=LINES, bp=st.integers(8_500, 10_000), coupon=st.integers(0, 10**6), points=st.integers(0, 10**6))
def test_a_coupon_of_every_category_keeps_the_split_orders_were_refunded_by_so_far(
        lines: list[tuple[int, int, bool]], bp: int, coupon: int, points: int) -> None:
    order = priced([(unit, quantity, True) for unit, quantity, _ in lines], bp, coupon, points)
    goods, total = order.payable_fen - order.freight_fen, order.items_total_fen

    before = {line.id: goods * line.total_fen // total if total else 0 for line in order.lines[:-1]}
    before[order.lines[-1].id] = goods - sum(before.values())
    assume(all(before[line.id] <= line.total_fen for line in order.lines))  # else the last line is capped (below)
    assert paid_shares(order) == before


# A line is never paid more than its total: the database refuses to refund a line more than that
# (ck_order_lines_refund_within_total), so a share above it made every refund of the line fail.

def test_a_one_fen_gift_last_in_the_cart_is_paid_its_fen_and_the_fen_the_floors_left_goes_to_the_first_line(
        ) -> None:
    # 95% of 3999 is 3800 (199.95 off, floored to 199); 3800 x 1999 / 3999 = 1899.52.. floored for each 1999 line
    # leaves 2 fen for the 1-fen gift: it is paid 1, the first line the other.
    order = order_of([(1999, 1, True), (1999, 1, True), (1, 1, True)], bp=9_500)

    assert paid_shares(order) == {1: 1900, 2: 1899, 3: 1}
    assert [line_refund_fen(order, line_id, 1) for line_id in (1, 2, 3)] == [1900, 1899, 1]


def test_the_gift_of_a_cancelled_order_is_refunded_its_fen_and_the_order_all_it_paid(shop: Shop) -> None:
    order = gift_order(shop)
    service.cancel_order(shop.uow, user_id=1, order_id=order.id or 0, reason="买错了", now=NOW)

    refunds.review_cancellation(shop.uow, FakeRefundPayments(), shop.members, order_id=order.id or 0, approve=True,
                                reason="同意", actor="staff:9", now=NOW)

    refund = shop.uow.refunds.for_order(order.id or 0)[0]
    assert (refund.amount_fen, [line.amount_fen for line in refund.lines]) == (3800, [1900, 1899, 1])
    assert all(line.refunded_fen <= line.total_fen for line in order.lines)


def test_a_refund_of_just_the_gift_returns_its_fen(shop: Shop) -> None:
    order = gift_order(shop)
    gift = order.lines[-1].id or 0

    refund = refunds.start_refund(shop.uow, FakeRefundPayments(), shop.members, order_id=order.id or 0,
                                  items=[RefundItem(gift, 1, line_refund_fen(order, gift, 1))], reason="赠品破损",
                                  actor="staff:9", source="after_sale:1", now=NOW)

    assert (refund.amount_fen, order.lines[-1].refunded_fen) == (1, 1)


def gift_order(shop: Shop) -> Order:
    """A member at 95% paid [1999, 1999, 1-fen gift], in that order."""
    shop.catalog.put(103, price_fen=1999)
    shop.catalog.put(104, price_fen=1)
    shop.stock.available |= {103: 10, 104: 10}
    shop.members.bp = 9_500
    return paid_order(shop, (101, 1), (103, 1), (104, 1))


def main_paid_shares(order: Order) -> dict[int, int]:
    """main's paid_shares before lines were capped at their totals (services/order/domain.py), the reference."""
    return main_spread(order, order.payable_fen - order.freight_fen)


def main_points_shares(order: Order) -> dict[int, int]:
    """main's points_shares before lines' points were kept within what their totals leave beside their cash."""
    return main_spread(order, order.points_used)


def main_spread(order: Order, amount: int) -> dict[int, int]:
    """`amount` spread over the lines as main spread the goods and the points, without any cap."""
    def split(amount: int, lines: list[OrderLine]) -> dict[int, int]:
        total = sum(line.total_fen for line in lines)
        shares = {line.id or 0: amount * line.total_fen // total if total else 0 for line in lines[:-1]}
        if lines:
            shares[lines[-1].id or 0] = amount - sum(shares.values())
        return shares

    scoped = [line for line in order.lines if line.coupon_applied]
    others = [line for line in order.lines if not line.coupon_applied]
    total, level, coupon = order.items_total_fen, order.level_discount_fen, order.coupon_discount_fen
    left = total - level - coupon
    kept = max(Fraction(sum(line.total_fen for line in scoped) * (total - level), total) - coupon, Fraction(0)) \
        if left > 0 else Fraction(0)
    scoped_part = math.floor(amount * kept / left) if left > 0 else 0
    shares = split(scoped_part, scoped) | split(amount - scoped_part, others)
    return {line.id or 0: shares[line.id or 0] for line in order.lines}


# Cheap lines (0 to 3 fen) as often as dear ones: a cheap line last in its group is what passed its total.
CARTS = st.lists(st.tuples(st.one_of(st.integers(0, 3), st.integers(0, 10**5)), st.integers(1, 3), st.booleans()),
                 min_size=1, max_size=8)


@given(lines=CARTS, bp=st.integers(8_500, 10_000), coupon=st.integers(0, 10**5), points=st.integers(0, 10**5))
def test_every_share_lies_within_its_lines_total_adds_up_to_the_goods_and_is_mains_where_main_stayed_within(
        lines: list[tuple[int, int, bool]], bp: int, coupon: int, points: int) -> None:
    order = priced(lines, bp, coupon, points)
    shares, before = paid_shares(order), main_paid_shares(order)

    assert all(0 <= shares[line.id or 0] <= line.total_fen for line in order.lines)
    assert sum(shares.values()) == order.payable_fen - order.freight_fen
    if all(before[line.id or 0] <= line.total_fen for line in order.lines):
        assert shares == before
    else:  # only the line over its total loses, to its total; every other line gains or keeps its share
        assert all(shares[line.id or 0] == line.total_fen if before[line.id or 0] > line.total_fen
                   else shares[line.id or 0] >= before[line.id or 0] for line in order.lines)


# Points spent on units the shop could not supply come back (cancel-unshipped): the order's points spread over the
# lines as the goods are, then over each line's units.

def refund_units(order: Order, units: dict[int, int]) -> list[tuple[int, int]]:
    """(fen, points) for some more units of each line (line id -> units), reserved on the lines as a refund does."""
    taken = []
    for line in order.lines:
        quantity = units.get(line.id or 0, 0)
        if quantity:
            taken.append((line_refund_fen(order, line.id or 0, quantity),
                          line_points_returned(order, line.id or 0, quantity)))
            line.refunded_quantity += quantity
            line.refunded_fen += taken[-1][0]
    return taken


def test_the_points_spent_spread_over_the_lines_as_the_goods_and_units_cancelled_in_turns_return_all_of_them(
        ) -> None:
    # 3 x 1999 and 2 x 500 under a coupon of their categories (1000), 3 x 1000 outside it; a 95% level (499 off) and
    # 733 points of 733 fen. What the lines cost after the level and the coupon is 5647.74.. for the coupon's two,
    # 2850.25.. for the other: points go 48714 / 24586 of 73300 between them, as the goods (7765) go 5160 / 2605.
    order = order_of([(1999, 3, True), (500, 2, True), (1000, 3, False)], bp=9_500, coupon_fen=1000,
                     points_fen=733, points_used=73_300, freight_fen=800)
    assert (list(paid_shares(order).values()), list(points_shares(order).values())) == (
        [4422, 738, 2605], [41_751, 6963, 24_586])

    some = refund_units(order, {1: 2, 2: 1, 3: 2})
    rest = refund_units(order, {1: 1, 2: 1, 3: 1})

    # Each unit its floored part; a line's last units what its floors left.
    assert some == [(2948, 27_834), (369, 3481), (1736, 16_390)]
    assert rest == [(1474, 13_917), (369, 3482), (869, 8196)]
    assert sum(points for _, points in some + rest) == 73_300
    assert sum(fen for fen, _ in some + rest) == 8565 - 800


def test_the_units_refunded_before_count_first_whether_their_points_came_back_or_not() -> None:
    order = order_of([(1000, 4, True)], points_fen=1003, points_used=1003)
    line = order.lines[0]
    line.refunded_quantity, line.refunded_fen = 1, 749  # after-sales: a unit's cash, none of its points

    assert line_points_returned(order, 1, 2) == 1003 * 3 // 4 - 1003 // 4  # 752 - 250: units 2 and 3
    assert line_points_returned(order, 1, 3) == 1003 - 1003 // 4  # the last units: what the floors left


def test_an_open_cases_units_count_as_refunded_before_so_the_line_adds_up_to_its_share() -> None:
    order = order_of([(1000, 3, True)], coupon_fen=1)  # a share of 2999 over 3 units
    case = RefundItem(line_id=1, quantity=1, amount_fen=line_refund_fen(order, 1, 1))  # opened: 999, not reserved

    cancelled = line_refund_fen(order, 1, 2, held=case)

    assert (case.amount_fen, cancelled, line_refund_fen(order, 1, 2)) == (999, 2000, 1999)  # without it: 2 floors


@given(lines=LINES, bp=st.integers(8_500, 10_000), coupon=st.integers(0, 10**6), points=st.integers(0, 10**6),
       turns=st.lists(st.lists(st.integers(0, 5), min_size=8, max_size=8), min_size=1, max_size=4))
def test_however_the_units_are_refunded_each_lines_points_add_up_to_its_share_and_all_to_the_points_used(
        lines: list[tuple[int, int, bool]], bp: int, coupon: int, points: int, turns: list[list[int]]) -> None:
    order = priced(lines, bp, coupon, points)
    order.points_used = order.points_discount_fen * 100  # 100 points a yuan
    shares = points_shares(order)
    assert sum(shares.values()) == order.points_used and all(share >= 0 for share in shares.values())

    returned = dict.fromkeys(shares, 0)
    for turn in [*turns, [5] * 8]:  # some units of each line in turns, then every unit left
        for line, wanted in zip(order.lines, turn, strict=False):
            quantity = min(wanted, line.quantity - line.refunded_quantity)
            if quantity:
                returned[line.id or 0] += line_points_returned(order, line.id or 0, quantity)
                line.refunded_quantity += quantity
    assert returned == shares


# A line's points are worth no more than its total leaves beside its cash share: else a cancelled cheap line gave back
# more than it was worth (1 fen and 2 points for a 1-fen gift), and the points it took over came off other lines.

def test_a_one_fen_gift_carries_no_points_beside_its_fen_and_the_points_the_floors_left_it_go_to_the_first_lines(
        ) -> None:
    # 1998 points (1998 fen) off 3999: 2001 paid, 1000 / 1000 / 1 fen. The points' floors (998.75.. for each 1999
    # line) left the gift 2 points: 3 fen of value for a 1-fen line. Its fen fill it; the points go one a line.
    order = order_of([(1999, 1, True), (1999, 1, True), (1, 1, True)], points_fen=1998, points_used=1998)

    assert paid_shares(order) == {1: 1000, 2: 1000, 3: 1}
    assert points_shares(order) == {1: 999, 2: 999, 3: 0}
    assert refund_units(order, {3: 1}) == [(1, 0)]
    assert refund_units(order, {1: 1, 2: 1}) == [(1000, 999), (1000, 999)]  # every point of the 1998, once


def test_with_a_level_discount_the_gifts_points_go_to_the_first_line_with_room_beside_its_cash() -> None:
    # 95%: 3800 after the level discount, 1900 points: 1900 paid, 950 / 949 / 1 fen (the gift capped at its fen, the
    # first line taking the other). Points 949 / 949 / 2: the gift has no room, the first line (1999 - 950) has.
    order = order_of([(1999, 1, True), (1999, 1, True), (1, 1, True)], bp=9_500, points_fen=1900,
                     points_used=1900)

    assert paid_shares(order) == {1: 950, 2: 949, 3: 1}
    assert points_shares(order) == {1: 951, 2: 949, 3: 0}


def test_a_cheap_line_with_room_for_part_of_its_points_keeps_that_part() -> None:
    # 2000 points off 4003: 2003 paid, 1000 / 1000 / 3 fen; points 998 / 998 / 4 (7 fen of value for a 5-fen line).
    order = order_of([(1999, 1, True), (1999, 1, True), (5, 1, True)], points_fen=2000, points_used=2000)

    assert (paid_shares(order), points_shares(order)) == ({1: 1000, 2: 1000, 3: 3}, {1: 999, 2: 999, 3: 2})


def test_at_100_points_a_fen_the_gift_is_still_worth_its_fen_and_no_more() -> None:
    order = order_of([(1999, 1, True), (1999, 1, True), (1, 1, True)], points_fen=1998, points_used=199_800)

    assert points_shares(order) == {1: 99_900, 2: 99_900, 3: 0}  # the plain spread gave it 50 (half a fen)


def test_cancelling_the_unshipped_gift_gives_back_its_fen_and_no_points_it_was_not_worth(shop: Shop) -> None:
    shop.catalog.put(103, price_fen=1999)
    shop.catalog.put(104, price_fen=1)
    shop.stock.available |= {103: 10, 104: 10}
    shop.members.points = 199_800  # 1998 fen, as the fake member service counts (100 points a fen)
    cart = [service.add_cart_item(shop.uow, shop.catalog, user_id=1, sku_id=sku_id, quantity=1, now=NOW)
            for sku_id in (101, 103, 104)]
    order = service.submit_order(shop.uow, shop.members, shop.stock, shop.users, shop.settings, user_id=1,
                                 request=CheckoutInput(cart_item_ids=tuple(line.item.id or 0 for line in cart),
                                                       address_id=7, points=199_800),
                                 note="", idempotency_key="k", request_fingerprint=b"k", now=NOW)
    order = service.mark_paid(shop.uow, order_no=order.order_no, channel="wechat", out_trade_no=order.order_no,
                              paid_fen=order.payable_fen, actor="wechatpay", now=NOW)
    first, second, _ = order.lines
    service.ship_order(shop.uow, order_id=order.id or 0, carrier="SF", tracking_no="SF1",
                       lines={first.id or 0: 1, second.id or 0: 1}, actor="staff:7", now=NOW)

    refunds.cancel_unshipped(shop.uow, FakeRefundPayments(), shop.members, order_id=order.id or 0, reason="赠品缺货",
                             shopper_reason="", actor="staff:9", idempotency_key="cu", request_fingerprint=b"cu",
                             now=NOW)

    [refund] = shop.uow.refunds.refunds
    assert (order.payable_fen, refund.amount_fen, refund.points_returned) == (2001, 1, 0)


# Cheap lines; points at 1 a fen (the member service), 100 a fen, or an odd fraction of a fen (the fakes round so).
RATES = st.tuples(st.sampled_from([1, 100]), st.one_of(st.just(0), st.integers(1, 10**4)))


@given(lines=CARTS, bp=st.integers(8_500, 10_000), coupon=st.integers(0, 10**5), points=st.integers(0, 10**5),
       rate=RATES)
def test_every_lines_points_fit_beside_its_cash_add_up_to_the_points_used_and_are_mains_where_main_fit(
        lines: list[tuple[int, int, bool]], bp: int, coupon: int, points: int, rate: tuple[int, int]) -> None:
    order = priced(lines, bp, coupon, points)
    per_fen, surplus = rate
    used, fen = order.points_discount_fen * per_fen + surplus, order.points_discount_fen
    assume(fen or not surplus)  # points that took nothing off (the goods were free): no line to carry them
    order.points_used = used
    cash, shares, before = paid_shares(order), points_shares(order), main_points_shares(order)

    def room(line: OrderLine) -> Fraction:  # in points: what the line's total leaves beside its cash
        return Fraction((line.total_fen - cash[line.id or 0]) * used, fen) if fen else Fraction(used)

    assert sum(shares.values()) == used and all(share >= 0 for share in shares.values())
    if sum(math.floor(room(line)) for line in order.lines) >= used:  # whole points fit: every line within its room
        assert all(shares[line.id or 0] <= room(line) for line in order.lines)
    else:  # a point worth an odd fraction of a fen: a line passes its room by less than a point
        assert all(shares[line.id or 0] < room(line) + 1 for line in order.lines)
    if all(before[line.id or 0] <= room(line) for line in order.lines):
        assert shares == before
    else:  # only the lines over their room lose; every other line gains or keeps its points
        assert all(shares[line.id or 0] <= before[line.id or 0] if before[line.id or 0] > room(line)
                   else shares[line.id or 0] >= before[line.id or 0] for line in order.lines)
