"""Session marks in a Redis that will not take them (gateway/sessions.py): kept in the worker, written once it does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from gateway.redisstore import RedisStore
from gateway.sessions import SESSION_KEY, USER_KEY, WRITABLE_KEY, RedisSessionMarks, SessionMarksUnavailable
from services.common.auth import Caller
from services.common.sessions import SessionsEnded

T = 1_795_680_000.0


class WritesRefused:
    """A Redis that answers reads but refuses writes (maxmemory with noeviction, a read-only replica after a
    failover) until `.writable` is set; keeps what it is given."""

    def __init__(self) -> None:
        self.writable, self.kept = False, {}

    def register_script(self, _: str) -> Any:
        def keep_latest(keys: list[str], args: list[Any]) -> None:
            self.set(keys[0], args[0])
        return keep_latest

    def set(self, key: str, value: Any, **_: Any) -> None:
        if not self.writable:
            raise redis.exceptions.ReadOnlyError("You can't write against a read only replica.")
        self.kept[key] = value

    def mget(self, keys: list[str]) -> list[Any]:
        return [self.kept.get(key) for key in keys]

    def pipeline(self, transaction: bool = True) -> Pipelined:
        return Pipelined(self)


class Pipelined:
    """Commands queued for WritesRefused, run by `execute`, which raises the first error (as redis-py's does)."""

    def __init__(self, client: WritesRefused) -> None:
        self.client, self.queued = client, list[Callable[[], Any]]()

    def mget(self, keys: list[str]) -> Pipelined:
        self.queued.append(lambda: self.client.mget(keys))
        return self

    def set(self, key: str, value: Any, **options: Any) -> Pipelined:
        self.queued.append(lambda: self.client.set(key, value, **options))
        return self

    def execute(self) -> list[Any]:
        return [command() for command in self.queued]


def token(user_id: int, roles: str = "admin", issued_at: float = T - 60, session_id: str = "s") -> Caller:
    return Caller(user_id=user_id, roles=frozenset(roles.split(",")), token_id="j", issued_at=issued_at,
                  session_id=session_id)


@pytest.fixture
def now() -> list[float]:
    return [0.0]  # the breaker's monotonic clock


@pytest.fixture
def client() -> WritesRefused:
    return WritesRefused()


@pytest.fixture
def marks(client: WritesRefused, now: list[float]) -> RedisSessionMarks:
    return RedisSessionMarks(RedisStore(client, retry_after=5, clock=lambda: now[0]),  # type: ignore[arg-type]
                             leeway_seconds=10, clock=lambda: T)


def test_a_mark_redis_refused_still_ends_the_tokens_in_this_worker(marks: RedisSessionMarks) -> None:
    marks.record(SessionsEnded(user_id=5, before=T, until=T + 900))  # an admin took the roles away

    assert marks.ended(token(5)) is True


def test_while_a_mark_is_not_written_other_tokens_are_unknown_so_staff_are_refused(
        marks: RedisSessionMarks, now: list[float]) -> None:
    marks.record(SessionsEnded(user_id=5, before=T, until=T + 900))

    for now[0] in (1.0, 6.0):  # within the pause, and after it (the write is tried again and refused)
        with pytest.raises(SessionMarksUnavailable):
            marks.ended(token(6))


def test_the_mark_is_written_once_redis_takes_writes_and_other_tokens_are_known_again(
        marks: RedisSessionMarks, client: WritesRefused, now: list[float]) -> None:
    marks.record(SessionsEnded(user_id=5, before=T, until=T + 900))
    marks.record(SessionsEnded(user_id=7, session_id="s-7", until=T + 900))
    client.writable, now[0] = True, 5.0

    answers = marks.ended(token(6)), marks.ended(token(7, session_id="s-7"))

    assert answers == (False, True)
    assert client.kept == {USER_KEY.format(5): repr(T), SESSION_KEY.format("s-7"): b"1", WRITABLE_KEY: b"1"}


def test_while_redis_refuses_writes_a_worker_not_told_of_an_end_refuses_staff_tokens_and_checks_shoppers(
        client: WritesRefused, now: list[float]) -> None:
    told = RedisSessionMarks(RedisStore(client, retry_after=5, clock=lambda: now[0]),  # type: ignore[arg-type]
                             leeway_seconds=10, clock=lambda: T)
    other_worker = RedisSessionMarks(RedisStore(client, retry_after=5, clock=lambda: now[0]),  # type: ignore[arg-type]
                                     leeway_seconds=10, clock=lambda: T)
    told.record(SessionsEnded(user_id=5, before=T, until=T + 900))  # an admin took user 5's roles away

    shopper = other_worker.ended(Caller(user_id=9, roles=frozenset(), token_id="j", issued_at=T - 60))  # only read
    with pytest.raises(SessionMarksUnavailable):  # the end of user 5 may be what Redis would not take
        other_worker.ended(token(5))

    assert (told.ended(token(5)), shopper) == (True, False)
