"""The unpaid orders limit on fakes: a shopper with ORDER_MAX_UNPAID_PER_USER orders awaiting payment is refused
another before anything is held, replays still answer, and an order paid, cancelled or timed out frees its slot."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.common.errors import Conflict, ErrorKind
from services.order import service
from services.order.domain import Order
from services.order.service import CheckoutInput, OrderSettings
from tests.unit.order.conftest import NOW, Shop

LIMIT = 3


@pytest.fixture
def limited(shop: Shop) -> Shop:
    shop.settings = OrderSettings(pay_minutes=30, max_unpaid_orders=LIMIT)
    return shop


def submit(shop: Shop, key: str, *, user_id: int = 1) -> Order:
    request = CheckoutInput(sku_id=102, quantity=1, address_id=7 + user_id - 1)
    return service.submit_order(shop.uow, shop.members, shop.stock, shop.users, shop.settings, user_id=user_id,
                                request=request, note="", idempotency_key=key,
                                request_fingerprint=repr(request).encode(), now=NOW)


def at_the_limit(shop: Shop) -> list[Order]:
    return [submit(shop, f"k{n}") for n in range(LIMIT)]


def test_a_shopper_with_the_limit_of_unpaid_orders_is_refused_another_and_nothing_is_held(limited: Shop) -> None:
    at_the_limit(limited)
    events = len(limited.uow.published)

    with pytest.raises(Conflict) as refused:
        submit(limited, "one-more")

    assert (refused.value.code, refused.value.kind, refused.value.details) == (
        "TOO_MANY_UNPAID_ORDERS", ErrorKind.CONFLICT, {"unpaid_orders": LIMIT, "limit": LIMIT})
    assert (len(limited.uow.orders.orders), len(limited.stock.reserved), limited.stock.available[102]) == (3, 3, 97)
    assert (limited.stock.released, len(limited.uow.published)) == ([], events)


def test_one_order_fewer_than_the_limit_is_placed(limited: Shop) -> None:
    orders = [submit(limited, f"k{n}") for n in range(LIMIT - 1)]

    last = submit(limited, "last")

    assert (len(orders) + 1, last.status, limited.stock.available[102]) == (LIMIT, "PENDING_PAYMENT", 97)


def test_another_shoppers_unpaid_orders_do_not_count(limited: Shop) -> None:
    at_the_limit(limited)

    theirs = submit(limited, "k0", user_id=2)

    assert (theirs.user_id, limited.stock.available[102]) == (2, 96)


def test_a_replay_of_a_placed_order_is_answered_at_the_limit(limited: Shop) -> None:
    first, *_ = at_the_limit(limited)

    again = submit(limited, "k0")

    assert (again.id, again.order_no, limited.stock.available[102]) == (first.id, first.order_no, 97)
    with pytest.raises(Conflict, match="3 orders awaiting payment"):  # while a new key is refused
        submit(limited, "new-key")


def test_paying_an_unpaid_order_frees_its_slot(limited: Shop) -> None:
    first, *_ = at_the_limit(limited)
    service.mark_paid(limited.uow, order_no=first.order_no, channel="balance", out_trade_no=first.order_no,
                      paid_fen=first.payable_fen, actor="user:1", now=NOW)

    placed = submit(limited, "after-paying")

    assert (placed.status, limited.stock.available[102]) == ("PENDING_PAYMENT", 96)
    with pytest.raises(Conflict):  # one slot, taken again
        submit(limited, "one-more")


def test_cancelling_an_unpaid_order_frees_its_slot(limited: Shop) -> None:
    first, *_ = at_the_limit(limited)
    service.cancel_order(limited.uow, user_id=1, order_id=first.id or 0, reason="changed my mind", now=NOW)

    placed = submit(limited, "after-cancelling")

    assert (placed.status, sorted(order.status for order in limited.uow.orders.orders)) == (
        "PENDING_PAYMENT", ["CANCELLED", "PENDING_PAYMENT", "PENDING_PAYMENT", "PENDING_PAYMENT"])
    with pytest.raises(Conflict):  # one slot, taken again
        submit(limited, "one-more")


def test_an_unpaid_order_timed_out_frees_its_slot(limited: Shop) -> None:
    at_the_limit(limited)
    service.expire_orders(limited.uow, now=NOW + timedelta(minutes=31))

    placed = [submit(limited, f"after-timeout-{n}") for n in range(LIMIT)]

    assert [order.status for order in limited.uow.orders.orders] == ["CANCELLED"] * LIMIT + ["PENDING_PAYMENT"] * LIMIT
    with pytest.raises(Conflict):
        submit(limited, "one-more")
    assert len(placed) == LIMIT
