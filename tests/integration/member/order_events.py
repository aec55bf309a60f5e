"""Order events applied as the member service's consumers apply them, for its database tests: one record's handler
in a transaction of its own, or two consumers applying two events at the same moment."""

from __future__ import annotations

import threading
from collections.abc import Callable

from mall.events.v1.envelope_pb2 import EventEnvelope
from mall.events.v1.order_events_pb2 import OrderCancelled, OrderPaid, OrderRefunded
from sqlalchemy import Engine

from services.member import consumers
from services.member.db import SqlMemberUnitOfWork
from tests.fakes import FakePhones
from tests.fixtures.postgres import wait_until_blocked

OrderEvent = OrderPaid | OrderRefunded | OrderCancelled
# The handlers as the consumer runs them; every buyer here has bound a phone (FakePhones), so order-paid joins a
# buyer whose spend reaches the threshold, as before M1 reached purchases.
HANDLERS = consumers.handlers(FakePhones())


def apply(tx: SqlMemberUnitOfWork, event: OrderEvent, event_id: str) -> None:
    HANDLERS[type(event)](tx, event, EventEnvelope(event_id=event_id))  # type: ignore[index]


def deliver(uow: Callable[[], SqlMemberUnitOfWork], event: OrderEvent, event_id: str) -> None:
    """What the consumer does with one record: the handler inside a transaction of its own."""
    with uow() as tx:
        apply(tx, event, event_id)
        tx.commit()


def deliver_at_once(uow: Callable[[], SqlMemberUnitOfWork], engine: Engine, first: OrderEvent,
                    second: OrderEvent) -> list[BaseException]:
    """`first` applied and left uncommitted while another consumer delivers `second`, committed once that one waits
    for a lock (or has ended); what the other consumer raised."""
    errors: list[BaseException] = []

    def other_consumer() -> None:
        try:
            deliver(uow, second, "e-2")
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            errors.append(exc)

    with uow() as tx:
        apply(tx, first, "e-1")  # applied, not committed yet: the other consumer must not miss it
        racing = threading.Thread(target=other_consumer)
        racing.start()
        wait_until_blocked(engine, racing)
        tx.commit()
    racing.join(timeout=60)
    return errors
