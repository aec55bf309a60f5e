"""Submit's attempts per Idempotency-Key on fakes: what a retry releases, and what it must never release."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from services.common.errors import DomainError
from services.order import service
from services.order.domain import Order
from services.order.ports import StockLine
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


def lost_attempt(shop: Shop, key: str = "k1") -> None:
    """An earlier attempt under `key` recorded its number and had 2 units held, then was lost (nothing stored)."""
    shop.uow.submit_attempts.record(1, key, "LOST1", NOW)
    shop.stock.reserve("LOST1", [StockLine(sku_id=101, quantity=2)])


def released(outcome: str) -> float:
    return REGISTRY.get_sample_value("mall_order_lost_attempts_released_total", {"outcome": outcome}) or 0


def test_a_retry_that_releases_a_lost_attempt_counts_it_released_once_and_its_replay_counts_nothing(
        shop: Shop) -> None:
    lost_attempt(shop)
    before = released("released"), released("failed")

    order = submit(shop)
    submit(shop)  # replayed: the key's order is placed, nothing is looked at again

    assert (shop.stock.released, shop.stock.available[101]) == (["LOST1"], 8)
    assert shop.uow.submit_attempts.attempts == {(1, "k1"): order.order_no}
    assert (released("released") - before[0], released("failed") - before[1]) == (1, 0)


def test_a_release_that_fails_counts_failed_and_the_retry_that_releases_counts_released(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    lost_attempt(shop)
    before = released("released"), released("failed")
    release = shop.stock.release

    def product_service_down(order_no: str) -> None:
        raise DomainError("PRODUCT_UNAVAILABLE", "the product service did not answer")
    monkeypatch.setattr(shop.stock, "release", product_service_down)
    with pytest.raises(DomainError) as unreleased:
        submit(shop)
    monkeypatch.setattr(shop.stock, "release", release)
    submit(shop)

    assert (unreleased.value.code, shop.stock.released, shop.stock.available[101]) == (
        "ORDER_ATTEMPT_UNRELEASED", ["LOST1"], 8)
    assert (released("released") - before[0], released("failed") - before[1]) == (1, 1)
