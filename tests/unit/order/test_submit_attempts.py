"""Submit's attempts per Idempotency-Key on fakes: what a retry releases, and what it must never release."""

from __future__ import annotations

from services.order import service
from services.order.domain import Order
from services.order.service import CheckoutInput
from tests.unit.order.conftest import NOW, Shop

BUY_TWO = CheckoutInput(sku_id=101, quantity=2, address_id=7)


def submit(shop: Shop, key: str = "k1") -> Order:
    return service.submit_order(shop.uow, shop.members, shop.stock, shop.users, shop.settings, user_id=1,
                                request=BUY_TWO, note="", idempotency_key=key,
                                request_fingerprint=repr(BUY_TWO).encode(), now=NOW)


def test_each_keyed_submit_records_its_order_number_first(shop: Shop) -> None:
    order = submit(shop)

    assert shop.uow.submit_attempts.attempts == {(1, "k1"): order.order_no}


def test_a_key_used_again_after_its_replay_window_never_releases_the_order_its_first_attempt_placed(
        shop: Shop) -> None:
    first = submit(shop)
    shop.uow._keys.clear()  # the key pruned after IDEMPOTENCY_KEY_RETENTION_DAYS: the same key is a new request

    second = submit(shop)

    assert second.order_no != first.order_no
    assert (shop.stock.released, shop.stock.available[101]) == ([], 6)  # both orders hold their 2 units
    assert shop.uow.submit_attempts.attempts == {(1, "k1"): second.order_no}


def test_a_replay_of_a_placed_order_releases_nothing_and_records_nothing(shop: Shop) -> None:
    first = submit(shop)

    again = submit(shop)

    assert (again.id, shop.stock.released, shop.stock.available[101]) == (first.id, [], 8)
    assert shop.uow.submit_attempts.attempts == {(1, "k1"): first.order_no}
