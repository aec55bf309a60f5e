"""The browsing-history repository on PostgreSQL and SQLite: upsert keeps the latest view, trim keeps the newest."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from services.user import service
from services.user.db import SqlUserUnitOfWork
from services.user.domain import User

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def shopper(uow: Callable[[], SqlUserUnitOfWork], phone: str = "13912345678") -> int:
    with uow() as work:
        user = User.register(phone, T0)
        work.users.add(user)
        work.commit()
    assert user.id is not None
    return user.id


def view(uow: Callable[[], SqlUserUnitOfWork], user_id: int, product_id: int, at: datetime) -> None:
    with uow() as work:
        service.record_view(work, user_id=user_id, product_id=product_id, viewed_at=at)
        work.commit()


def test_viewing_again_moves_a_product_to_the_front_and_a_late_older_view_does_not(uow) -> None:  # type: ignore[no-untyped-def]
    alice = shopper(uow)
    view(uow, alice, 10, T0)
    view(uow, alice, 20, T0 + timedelta(minutes=1))
    view(uow, alice, 10, T0 + timedelta(minutes=2))
    view(uow, alice, 20, T0)  # late and older

    found = service.list_history(uow(), user_id=alice)

    assert [(v.product_id, v.viewed_at) for v in found] == [(10, T0 + timedelta(minutes=2)),
                                                            (20, T0 + timedelta(minutes=1))]


def test_the_history_keeps_only_the_newest_products_and_clears_per_user(uow) -> None:  # type: ignore[no-untyped-def]
    alice, bob = shopper(uow), shopper(uow, "13912340000")
    for n in range(205):
        view(uow, alice, 1000 + n, T0 + timedelta(seconds=n))
    view(uow, bob, 1, T0)

    kept = [v.product_id for v in service.list_history(uow(), user_id=alice)]
    cleared = service.clear_history(uow(), user_id=alice)

    assert (len(kept), kept[0], kept[-1], cleared) == (200, 1204, 1005, 200)
    assert [v.product_id for v in service.list_history(uow(), user_id=bob)] == [1]
