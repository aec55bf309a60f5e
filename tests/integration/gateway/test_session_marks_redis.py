"""Session marks in a real Redis (gateway/sessions.py): kept as long as their tokens live, read in one round trip."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from gateway.redisstore import RedisStore
from gateway.sessions import SESSION_KEY, USER_KEY, RedisSessionMarks, SessionMarksUnavailable
from services.common.auth import Caller
from services.common.sessions import SessionsEnded

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
T = 1_795_680_000.0
USER = 990_042  # far from the ids other tests' marks name


def caller(issued_at: float, session_id: str = "") -> Caller:
    return Caller(user_id=USER, roles=frozenset(), token_id="j", issued_at=issued_at, session_id=session_id)


@pytest.fixture
def store() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(USER_KEY.format(USER), SESSION_KEY.format("s-990042"))
    yield client
    client.delete(USER_KEY.format(USER), SESSION_KEY.format("s-990042"))
    client.close()


@pytest.fixture
def marks(store: redis.Redis) -> RedisSessionMarks:
    return RedisSessionMarks(RedisStore(store), leeway_seconds=10, clock=lambda: T)


def test_a_users_mark_lives_as_long_as_the_tokens_it_ends_and_the_leeway(marks: RedisSessionMarks,
                                                                        store: redis.Redis) -> None:
    marks.record(SessionsEnded(user_id=USER, before=T - 0.25, until=T + 900))

    assert (store.get(USER_KEY.format(USER)), 909_000 < store.pttl(USER_KEY.format(USER)) <= 910_000) == (
        repr(T - 0.25).encode(), True)
    assert [marks.ended(caller(at)) for at in (T - 0.26, T - 0.25, T)] == [True, False, False]


def test_a_sessions_mark_ends_that_session_only(marks: RedisSessionMarks, store: redis.Redis) -> None:
    marks.record(SessionsEnded(user_id=USER, session_id="s-990042", until=T + 900))

    assert [marks.ended(caller(T - 60, sid)) for sid in ("s-990042", "s-other", "")] == [True, False, False]
    assert 909_000 < store.pttl(SESSION_KEY.format("s-990042")) <= 910_000


def test_an_earlier_instant_arriving_later_does_not_move_the_mark_back(marks: RedisSessionMarks) -> None:
    marks.record(SessionsEnded(user_id=USER, before=T, until=T + 900))
    marks.record(SessionsEnded(user_id=USER, before=T - 30, until=T + 870))

    assert marks.ended(caller(T - 10)) is True


def test_an_unreachable_redis_makes_the_answer_unknown_and_is_not_asked_again_at_once() -> None:
    now = [0.0]
    marks = RedisSessionMarks(RedisStore(redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2),
                                         retry_after=5, clock=lambda: now[0]))
    marks.record(SessionsEnded(user_id=USER, before=T, until=T + 10 ** 10))  # logged, not raised

    with pytest.raises(SessionMarksUnavailable):
        marks.ended(caller(T))
    marks.store.client = None  # type: ignore[assignment]  # not asked again within retry_after
    with pytest.raises(SessionMarksUnavailable):
        marks.ended(caller(T))
