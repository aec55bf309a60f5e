"""A relay or consumer process that SIGKILLs itself at one precise point: `python -m tests.reliability.crashing`.

    python -m tests.reliability.crashing relay    USER_DATABASE_URL      BOOTSTRAP TOPIC_PREFIX
    python -m tests.reliability.crashing consumer ANALYTICS_DATABASE_URL BOOTSTRAP TOPIC_PREFIX

The relay dies after the broker acknowledged its batch and before it marks the rows published; the
consumer dies after its database transaction committed and before it commits the offset. Real
processes, real SIGKILL: no finally block, no atexit, no socket closed politely.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading

from services.analytics.consumers import HANDLERS
from services.analytics.db import SqlAnalyticsUnitOfWork
from services.common.config import KafkaSettings
from services.common.consumer import EventConsumer
from services.common.db import make_engine
from services.common.outbox import OutboxRelay


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class RelayDyingBeforeMark(OutboxRelay):
    def _mark_published(self, conn, ids):  # type: ignore[no-untyped-def]
        die()


class ConsumerDyingBeforeOffsetCommit(EventConsumer):
    def _commit_offsets(self, consumer, offsets):  # type: ignore[no-untyped-def]
        die()


def main(role: str, database_url: str, bootstrap: str, prefix: str) -> None:
    kafka = KafkaSettings(bootstrap_servers=bootstrap, max_poll_interval_ms=1000, topic_prefix=prefix,
                          request_timeout_ms=3000)
    engine = make_engine(database_url)
    if role == "relay":
        RelayDyingBeforeMark("user", engine, kafka).run(threading.Event())
    else:
        uow = functools.partial(SqlAnalyticsUnitOfWork, engine, "analytics")
        ConsumerDyingBeforeOffsetCommit("analytics", uow, kafka, HANDLERS, batched=True).run(threading.Event())
    sys.exit("the process was meant to die before this line")


if __name__ == "__main__":
    main(*sys.argv[1:5])
