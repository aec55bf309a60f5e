"""PostgreSQL connections from the pool: pinged before use only after idling, and a dead idle one is replaced."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from services.common import db

pytestmark = pytest.mark.integration


def backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pytest.fixture
def pings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the pings sent (and still sends them)."""
    sent: list[int] = []
    real_ping = db.ping
    monkeypatch.setattr(db, "ping", lambda connection: (sent.append(1), real_ping(connection))[1])
    return sent


def test_a_connection_used_again_at_once_is_not_pinged_and_one_that_idled_is(
        service_engine: Callable[[str], Engine], pings: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    engine = service_engine("order")
    first = backend_pid(engine)
    again = [backend_pid(engine) for _ in range(5)]
    busy = len(pings)
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", -1.0)  # as if every connection had idled for long
    idled = backend_pid(engine)

    assert (again, idled) == ([first] * 5, first)
    assert (busy, len(pings)) == (0, 1)


def test_a_connection_the_database_ended_while_it_idled_is_replaced_before_a_request_uses_it(
        service_engine: Callable[[str], Engine], monkeypatch: pytest.MonkeyPatch) -> None:
    engine = service_engine("order")
    dead = backend_pid(engine)
    killer = create_engine(engine.url, poolclass=NullPool)
    with killer.connect() as other:  # the server ends the pooled connection's process, as a restart would
        assert other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dead}).scalar_one()
    killer.dispose()
    monkeypatch.setattr(db, "PING_IDLE_SECONDS", -1.0)

    assert backend_pid(engine) != dead  # not an error: the ping found it dead and the pool opened another
