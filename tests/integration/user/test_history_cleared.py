"""A cleared browsing history stays cleared when product-viewed events from before the clear arrive late."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from mall.events.v1.product_events_pb2 import ProductViewed
from sqlalchemy import Engine

from services.common.consumer import EventConsumer
from services.common.db import utcnow
from services.common.events import timestamp
from services.user import service
from services.user.consumers import HANDLERS
from services.user.db import SqlUserUnitOfWork
from services.user.domain import User
from tests.fixtures.kafka import OFFLINE_KAFKA, Delivered, delivered
from tests.fixtures.postgres import wait_until_blocked

pytestmark = pytest.mark.integration

UowFactory = Callable[[], SqlUserUnitOfWork]
T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


def shopper(uow: UowFactory) -> int:
    with uow() as work:
        user = User.register("13912345678", T0)
        work.users.add(user)
        work.commit()
    assert user.id is not None
    return user.id


def product_viewed(user_id: int, product_id: int, at: datetime) -> Delivered:
    return delivered(ProductViewed(product_id=product_id, user_id=user_id, viewed_at=timestamp(at)),
                     "product-viewed", producer="product", aggregate_id=str(product_id))


def history(uow: UowFactory, user_id: int) -> list[int]:
    return [v.product_id for v in service.list_history(uow(), user_id=user_id)]


def test_a_view_from_before_the_clear_applied_after_it_does_not_come_back(uow: UowFactory) -> None:
    consumer = EventConsumer("user", uow, OFFLINE_KAFKA, HANDLERS)
    alice = shopper(uow)
    consumer.handle(product_viewed(alice, 10, T0))
    service.clear_history(uow(), user_id=alice)  # now, well after T0

    applied = [consumer.handle(product_viewed(alice, 10, T0 + timedelta(seconds=30))),  # lagging behind the clear
               consumer.handle(product_viewed(alice, 20, utcnow() + timedelta(seconds=1)))]  # a view after it

    assert (applied, history(uow, alice)) == ([True, True], [20])


def test_a_view_recorded_while_the_clear_commits_is_cleared_with_it(pg_uow: UowFactory, pg_engine: Engine) -> None:
    consumer = EventConsumer("user", pg_uow, OFFLINE_KAFKA, HANDLERS)
    alice = shopper(pg_uow)
    with pg_uow() as clearing:
        clearing.history.clear(alice, utcnow())  # holds the user's row until it commits
        racing = threading.Thread(target=consumer.handle, args=(product_viewed(alice, 10, T0),))
        racing.start()
        wait_until_blocked(pg_engine, racing)
        clearing.commit()
    racing.join(timeout=30)

    assert history(pg_uow, alice) == []
