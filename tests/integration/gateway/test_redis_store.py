"""The gateway's Redis breaker against a real Redis (gateway/redisstore.py): only a reply from Redis ends an outage."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis

from gateway.redisstore import RedisStore

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
KEY = f"test:redisstore:{uuid.uuid4().hex}"


def after_an_outage(client: redis.Redis) -> tuple[RedisStore, list[float]]:
    """A store on `client` whose breaker opened at 0 and lets calls through again (now 5)."""
    now = [0.0]
    store = RedisStore(client, retry_after=5, clock=lambda: now[0])
    store.failed(redis.ConnectionError("refused"))
    now[0] = 5.0
    return store, now


def pipelined(client: redis.Redis) -> Any:
    return client.pipeline(transaction=False).set(KEY, 1, px=60_000).get(KEY).execute()


ASKING_REDIS: dict[str, Callable[[redis.Redis], Any]] = {
    "command": lambda client: client.ping(),
    "pipeline": pipelined,  # the known phones' bits
    "script": lambda client: client.register_script("return 1")(),  # the rate limits' and session marks' scripts
}


@pytest.mark.parametrize("asking", ASKING_REDIS)
def test_a_reply_from_redis_ends_the_outage_one_that_never_asked_does_not(asking: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    client.ping()  # a connection made before the store: its replies are noted too
    store, _ = after_an_outage(client)

    without_redis = store.call(lambda _: "kept in memory")
    still_down = store.down
    store.call(ASKING_REDIS[asking])

    client.delete(KEY)
    client.close()
    assert (without_redis, still_down, store.down) == ("kept in memory", True, False)
