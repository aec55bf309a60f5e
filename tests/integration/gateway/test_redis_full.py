"""A full Redis (maxmemory, noeviction: deploy/k8s/base/redis.yaml) refuses the gateway's writes with "OOM command
not allowed", and the gateway handles that as it handles an outage: limits counted per worker, staff tokens refused
wherever an end may be missing. A Redis server of the test's own, filled to its maxmemory."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from gateway.ratelimit import FallbackCounter, Limit, MemoryCounter, RateLimiter, RedisCounter
from gateway.redisstore import RedisStore
from gateway.sessions import USER_KEY, RedisSessionMarks, SessionMarksUnavailable
from services.common.auth import Caller
from services.common.sessions import SessionsEnded

pytestmark = pytest.mark.integration

T = 1_795_680_000.0


@pytest.fixture
def full_redis(tmp_path: Path) -> Iterator[str]:
    """URL of a Redis with the deployment's eviction policy, filled until it refuses writes."""
    server = shutil.which("redis-server")
    if server is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is missing: CI must run the full-Redis tests (.ci/run starts redis-server)")
        pytest.skip("redis-server is not installed")
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                "--maxmemory-policy", "noeviction", "--dir", str(tmp_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)  # polling for the server to listen, not for a race to pass
        client.config_set("maxmemory", client.info("memory")["used_memory"] + 256 * 1024)
        filler = 0
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            while True:
                client.set(f"filler:{filler}", b"x" * 1024)
                filler += 1
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=30)


def token(user_id: int, roles: frozenset[str] = frozenset({"admin"})) -> Caller:
    return Caller(user_id=user_id, roles=roles, token_id="j", issued_at=T - 60, session_id=f"s-{user_id}")


def test_the_end_of_a_session_a_full_redis_refuses_leaves_staff_tokens_refused_in_every_worker(full_redis: str) -> None:
    told, other_worker = (RedisSessionMarks(RedisStore.from_url(full_redis), leeway_seconds=10, clock=lambda: T)
                          for _ in range(2))

    told.record(SessionsEnded(user_id=5, before=T, until=T + 900))  # an admin took user 5's roles away: refused
    answers = {"told, user 5": told.ended(token(5)),
               "other worker, a shopper": other_worker.ended(token(9, frozenset()))}  # read only: fails open anyway
    unknown = []
    for name, marks, caller in (("told, user 6", told, token(6)), ("other worker, user 5", other_worker, token(5))):
        try:
            marks.ended(caller)
        except SessionMarksUnavailable:
            unknown.append(name)

    assert redis.Redis.from_url(full_redis).get(USER_KEY.format(5)) is None  # the end is nowhere in Redis
    assert (answers, unknown) == ({"told, user 5": True, "other worker, a shopper": False},
                                  ["told, user 6", "other worker, user 5"])


def test_a_full_redis_leaves_each_worker_counting_limits_alone(full_redis: str) -> None:
    store = RedisStore.from_url(full_redis)
    limiter = RateLimiter(FallbackCounter(RedisCounter(store.client), MemoryCounter(), store), key=b"k" * 32)
    limit = (Limit("ip", 2, 60),)

    waits = [limiter.check("auth.send_sms_code", limit, {"ip": "203.0.113.7"}, now=T + n) for n in range(3)]

    assert (waits, store.down) == ([None, None, 58], True)  # the third is refused from this worker's own count
    assert redis.Redis.from_url(full_redis).keys("mall:ratelimit:*") == []
