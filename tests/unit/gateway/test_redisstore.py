"""One record of whether the gateway's Redis answers (gateway/redisstore.py), shared by everything kept there."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from mall.user.v1 import user_pb2

from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.redisstore import RedisStore, RedisUnavailable, note_reply
from gateway.sessions import RedisSessionMarks, SessionMarksUnavailable
from services.common.auth import Caller
from services.common.sessions import SessionsEnded
from tests.fixtures.fake_services import FakeServices
from tests.unit.gateway.test_catalog_routes import API, phone


class Refusing:
    """A Redis client every command of which fails (as one that is down would, after its timeout); counts them."""

    def __init__(self) -> None:
        self.asked = 0

    def _refuse(self, *_: Any, **__: Any) -> Any:
        self.asked += 1
        raise redis.ConnectionError("Timeout connecting to server")

    mget = set = xadd = xrevrange = evalsha = _refuse

    def register_script(self, _: str) -> Any:
        return self._refuse


def test_after_a_failure_redis_is_not_asked_again_until_the_pause_is_over() -> None:
    now, client = [0.0], Refusing()
    store = RedisStore(client, retry_after=5, clock=lambda: now[0])  # type: ignore[arg-type]

    for now[0] in (0.0, 4.9, 5.0):
        with pytest.raises(RedisUnavailable):
            store.call(lambda c: c.mget(["k"]))

    assert (client.asked, store.down) == (2, True)  # at 0 and at 5, not at 4.9


def test_an_answer_ends_the_outage_and_each_change_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    now, answers = [0.0], iter([redis.ConnectionError("refused"), redis.ConnectionError("refused"), "a", "b"])

    def ask(_: Any) -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        note_reply()  # as a connection reading Redis's reply does
        return answer

    store = RedisStore(None, retry_after=5, clock=lambda: now[0])  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="gateway.redisstore"):
        for now[0] in (0.0, 5.0):
            with pytest.raises(RedisUnavailable):
                store.call(ask)
        now[0] = 10.0
        replies = [store.call(ask), store.call(ask)]

    assert (replies, store.down) == (["a", "b"], False)
    assert [r.getMessage() for r in caplog.records] == [
        "Redis unavailable (ConnectionError): rate limits counted per gateway worker, staff tokens refused, "
        "catalogue served uncached; asked again every 5s",
        "Redis answers again: rate limits, session checks and the catalogue cache use it again"]


def test_a_call_that_returns_without_asking_redis_does_not_end_the_outage(caplog: pytest.LogCaptureFixture) -> None:
    now, client = [0.0], Refusing()
    store = RedisStore(client, retry_after=5, clock=lambda: now[0])  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="gateway.redisstore"):
        with pytest.raises(RedisUnavailable):
            store.call(lambda c: c.mget(["k"]))
        now[0] = 5.0
        answer = store.call(lambda _: "from memory")  # nothing to ask Redis: no reply read

    assert (answer, store.down, [r.getMessage()[:17] for r in caplog.records]) == (
        "from memory", True, ["Redis unavailable"])


def test_a_session_mark_that_expired_unsaved_does_not_end_the_outage(caplog: pytest.LogCaptureFixture) -> None:
    now, wall, client = [0.0], [1_795_680_000.0], Refusing()
    store = RedisStore(client, retry_after=5, clock=lambda: now[0])  # type: ignore[arg-type]
    marks = RedisSessionMarks(store, leeway_seconds=10, clock=lambda: wall[0])
    with caplog.at_level(logging.WARNING, logger="gateway.redisstore"):
        marks.record(SessionsEnded(user_id=42, before=wall[0], until=wall[0] + 60))  # refused: kept unsaved
        now[0], wall[0] = 5.0, wall[0] + 120  # the mark has expired; the breaker lets the next call ask
        with pytest.raises(SessionMarksUnavailable):  # its write is skipped, then the MGET is refused
            marks.ended(Caller(user_id=42, roles=frozenset(), token_id="j", issued_at=wall[0] - 1))

    breaker = [r.getMessage()[:17] for r in caplog.records if r.name == "gateway.redisstore"]
    assert (store.down, client.asked, breaker) == (
        True, 2, ["Redis unavailable"])  # no "Redis answers again" between the two refusals


def test_one_outage_costs_a_worker_one_redis_timeout_not_one_per_store(
        settings: GatewaySettings, clients: FakeServices, mint: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    down = Refusing()
    monkeypatch.setattr(redis.Redis, "from_url", lambda *_, **__: down)
    client: FlaskClient = create_app(dataclasses.replace(
        settings, redis_url="redis://10.0.0.9:6379/0", rate_limit_secret="s" * 32), clients).test_client()
    clients.user.GetProfile.reply = user_pb2.Profile(id=42, phone_masked="139****5678", gender="unknown")
    clients.product.ViewProduct.reply = phone()

    replies = [client.post(API + "/auth/sms-codes", json={"phone": "13800000001", "purpose": "login"}).status_code,
               client.get(API + "/me", headers={
                   "Authorization": f"Bearer {mint(user_id=42, issued_ago=timedelta(seconds=1))}"}).status_code,
               client.get(API + "/products/1").status_code]

    assert (replies, down.asked) == ([202, 200, 200], 1)  # the rate limit's call; the marks and the catalogue wait
