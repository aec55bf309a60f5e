"""Browsing history from product-viewed events, on the in-memory unit of work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.product_events_pb2 import ProductViewed

from services.common.events import InvalidEvent, timestamp
from services.user import consumers, service
from services.user.domain import HISTORY_LIMIT, User
from tests.fakes import FakeUserUnitOfWork

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def shopper(uow: FakeUserUnitOfWork) -> int:
    user = User.register("13912345678", T0)
    uow.users.add(user)
    assert user.id is not None
    return user.id


def viewed(uow: FakeUserUnitOfWork, user_id: int, product_id: int, at: datetime) -> None:
    with uow:
        consumers.on_product_viewed(uow, ProductViewed(product_id=product_id, user_id=user_id, viewed_at=timestamp(at)),
                                    EventEnvelope(event_id="e"))
        uow.commit()


def history(uow: FakeUserUnitOfWork, user_id: int) -> list[int]:
    return [v.product_id for v in service.list_history(uow, user_id=user_id)]


def test_history_is_newest_first_with_one_entry_per_product() -> None:
    uow = FakeUserUnitOfWork()
    alice = shopper(uow)
    for minute, product_id in enumerate([10, 20, 10, 30]):
        viewed(uow, alice, product_id, T0 + timedelta(minutes=minute))

    assert history(uow, alice) == [30, 10, 20]


def test_a_view_arriving_late_does_not_move_a_product_back() -> None:
    uow = FakeUserUnitOfWork()
    alice = shopper(uow)
    viewed(uow, alice, 10, T0 + timedelta(minutes=5))
    viewed(uow, alice, 20, T0 + timedelta(minutes=3))

    viewed(uow, alice, 10, T0)  # an older view of 10, delivered late

    assert [(v.product_id, v.viewed_at) for v in service.list_history(uow, user_id=alice)] == [
        (10, T0 + timedelta(minutes=5)), (20, T0 + timedelta(minutes=3))]


def test_only_the_latest_views_are_kept() -> None:
    uow = FakeUserUnitOfWork()
    alice = shopper(uow)
    for n in range(HISTORY_LIMIT + 5):
        viewed(uow, alice, 1000 + n, T0 + timedelta(seconds=n))

    kept = history(uow, alice)

    assert (len(kept), kept[0], kept[-1]) == (HISTORY_LIMIT, 1000 + HISTORY_LIMIT + 4, 1005)


def test_clearing_forgets_only_my_history() -> None:
    uow = FakeUserUnitOfWork()
    alice = shopper(uow)
    bob = User.register("13912340000", T0)
    uow.users.add(bob)
    assert bob.id is not None
    viewed(uow, alice, 10, T0)
    viewed(uow, alice, 20, T0)
    viewed(uow, bob.id, 10, T0)

    cleared = service.clear_history(uow, user_id=alice)

    assert (cleared, history(uow, alice), history(uow, bob.id)) == (2, [], [10])


def test_a_view_by_an_unknown_account_is_not_kept() -> None:
    uow = FakeUserUnitOfWork()

    viewed(uow, 999, 10, T0)

    assert uow.history.views == {}



def test_a_view_from_before_i_cleared_my_history_arriving_late_stays_forgotten() -> None:
    uow = FakeUserUnitOfWork()
    alice = shopper(uow)
    viewed(uow, alice, 10, T0)
    service.clear_history(uow, user_id=alice)

    viewed(uow, alice, 20, T0 + timedelta(seconds=30))  # viewed before the clear, its event applied after it

    assert history(uow, alice) == []


def test_a_view_at_the_instant_i_cleared_my_history_is_forgotten() -> None:
    uow = FakeUserUnitOfWork()
    alice = shopper(uow)
    service.clear_history(uow, user_id=alice, now=T0)

    viewed(uow, alice, 10, T0)

    assert history(uow, alice) == []


def test_a_view_after_i_cleared_my_history_is_kept() -> None:
    uow = FakeUserUnitOfWork()
    alice = shopper(uow)
    service.clear_history(uow, user_id=alice, now=T0)

    viewed(uow, alice, 10, T0 + timedelta(seconds=1))

    assert history(uow, alice) == [10]


def test_a_view_dated_where_no_datetime_reaches_is_dead_lettered_and_changes_nothing() -> None:
    uow = FakeUserUnitOfWork()
    alice = shopper(uow)
    viewed(uow, alice, 10, T0)

    with pytest.raises(InvalidEvent, match="carries a time no datetime holds"), uow:  # protobuf's ValueError: retried for ever
        consumers.on_product_viewed(uow, ProductViewed(product_id=20, user_id=alice, viewed_at=Timestamp(seconds=10**12)),
                                    EventEnvelope(event_id="e"))

    assert history(uow, alice) == [10]
