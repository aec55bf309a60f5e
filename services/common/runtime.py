"""A service process: `serve | relay | consume | all | migrate | wait-migrated`, with graceful shutdown."""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from grpc_health.v1 import health
from sqlalchemy import Engine, Table

from services.common import migrations
from services.common.config import Env, ServiceSettings
from services.common.consumer import EventConsumer
from services.common.db import make_engine
from services.common.discovery import Discovery
from services.common.grpc_server import Registration, create_server
from services.common.kafka import delivery_timeout_ms
from services.common.liveness import (
    DATABASE_CALL_SECONDS,
    LIVENESS,
    LIVENESS_MARGIN_SECONDS,
    LIVENESS_PATH,
    Clock,
    GrpcSelfCheck,
    Heartbeat,
    Liveness,
    loopback_target,
)
from services.common.logs import configure_logging
from services.common.metrics import serve_metrics
from services.common.outbox import OutboxRelay
from services.common.pruning import PastUse, pruning_job, round_worst_seconds
from services.common.uow import RoundBudget

log = logging.getLogger(__name__)

ROLES = ("serve", "relay", "consume")


Beat = Callable[[], None]

# One round of a job whose own code does not bound it (a sweep of a few rows, a count): what liveness allows it.
# Pruning bounds its rounds itself (services/common/pruning.py), the reconciliations and timeout scans by their
# RoundBudget (`round_budget`, JOB_ROUND_BUDGET_SECONDS), as do the member points expiry and the product reservation
# sweep.
JOB_ROUND_SECONDS = 600.0
# The pause between a budgeted round that ran out with rows left and the next (at most the job's interval): a job
# whose backlog takes several rounds (points expiry over many members, a reconciliation after an outage) goes
# through it in minutes, not one budget per interval.
BACKLOG_PAUSE_SECONDS = 5.0


def _no_beat() -> None:
    """What a job beats when nobody watches it (tests, a job run by hand)."""


@dataclass(frozen=True)
class Job:
    """A background job of the serve role (ServiceApp.jobs): `loop(stop, beat)` runs until `stop` is set and calls
    `beat()` after each iteration, a failed one included; two beats are at most `bound_seconds` apart while it works
    (its wait, its longest iteration and LIVENESS_MARGIN_SECONDS), or /livez names it (services/common/liveness.py)."""

    loop: Callable[[threading.Event, Beat], None]
    bound_seconds: float

    def __call__(self, stop: threading.Event, beat: Beat = _no_beat) -> None:
        self.loop(stop, beat)


def job_bound_seconds(interval_seconds: float, round_seconds: float = JOB_ROUND_SECONDS) -> float:
    """The bound of a job that waits `interval_seconds` between rounds of at most `round_seconds`."""
    return interval_seconds + round_seconds + LIVENESS_MARGIN_SECONDS


def round_budget(seconds: float, *, row_calls_seconds: float, sweeps: int = 1,
                 clock: Clock = time.monotonic) -> RoundBudget:
    """The RoundBudget of a job's rounds (`seconds`, JOB_ROUND_BUDGET_SECONDS) of `sweeps` sweeps, each going on
    past the budget by at most its page read and its row in hand: the row's channel calls (`row_calls_seconds`, their
    timeouts) and a database call on a dead connection each (DATABASE_CALL_SECONDS); a dead connection ends the round
    at its first call, the round's lock and start included."""
    return RoundBudget(seconds, sweeps * (2 * DATABASE_CALL_SECONDS + row_calls_seconds), clock=clock)


def next_round_in(interval_seconds: float, budget: RoundBudget | None) -> float:
    """How long a job waits after a round: the interval, or BACKLOG_PAUSE_SECONDS (at most the interval) when the
    round's `budget` ran out with rows left (RoundBudget.ran_out)."""
    if budget is not None and budget.ran_out:
        return min(interval_seconds, BACKLOG_PAUSE_SECONDS)
    return interval_seconds


def every(interval_seconds: float, what: str, action: Callable[[], object], *,
          round_seconds: float = JOB_ROUND_SECONDS, budget: RoundBudget | None = None, at_start: bool = False) -> Job:
    """A job for ServiceApp.jobs: `action` each interval until stopped (`at_start`: at once too, then each interval
    after it); a failure is logged and retried next time.
    It beats after every round: its bound is the interval, plus `round_seconds` (the longest one round of `action`
    takes; with a `budget`, the one `action` goes by, started before each round: its worst_seconds), plus
    LIVENESS_MARGIN_SECONDS. A round whose budget ran out with rows left is followed by the next after
    BACKLOG_PAUSE_SECONDS, not the whole interval (`next_round_in`): a backlog is worked through round after round,
    each still beating, and the pause being no longer than the interval the bound holds."""
    def run(stop: threading.Event, beat: Beat) -> None:
        wait = 0.0 if at_start else interval_seconds
        while not stop.wait(wait):
            try:
                if budget is not None:
                    budget.start()
                action()
            except Exception:
                log.exception("%s failed; retrying in %.0f s", what, next_round_in(interval_seconds, budget))
            beat()
            wait = next_round_in(interval_seconds, budget)
    return Job(run, job_bound_seconds(interval_seconds, round_seconds if budget is None else budget.worst_seconds))


@dataclass
class ServiceApp:
    """Everything one service runs, built from its settings by the service's own `build_app`."""

    settings: ServiceSettings
    engine: Engine
    registrations: list[Registration]
    consumers: list[EventConsumer] = field(default_factory=list)
    # Background jobs of the serve role by name, e.g. the order service's payment timeout, each watched by /livez as
    # "job-<name>"; every service's serve role also prunes its bookkeeping tables (services/common/pruning.py).
    jobs: dict[str, Job] = field(default_factory=dict)
    # The service's own tables pruned beside its bookkeeping, each by its rule (services/common/pruning.py).
    own_rows: dict[Table, PastUse] = field(default_factory=dict)


def run_roles(app: ServiceApp, roles: Sequence[str], stop: threading.Event, liveness: Liveness = LIVENESS, *,
              clock: Clock = time.monotonic) -> None:
    """Run the given roles until `stop` is set; gRPC drains and leaves Consul before returning. The heartbeats of the
    relay, the consumers and the serve role's jobs are in `liveness` (its /livez) while they run, and so is the check
    of the gRPC server while it serves (until its drain begins)."""
    settings = app.settings
    threads = []
    heartbeats: list[Heartbeat] = []
    if "relay" in roles:
        relay = OutboxRelay(settings.service, app.engine, settings.kafka)
        threads.append(threading.Thread(target=relay.run, args=(stop,), name="outbox-relay", daemon=True))
        heartbeats.append(relay.heartbeat)
    if "consume" in roles:
        threads += [threading.Thread(target=c.run, args=(stop,), name=f"consumer-{c.name}", daemon=True)
                    for c in app.consumers]
        heartbeats += [c.heartbeat for c in app.consumers]
    if "serve" in roles:
        jobs = {**app.jobs, "prune-bookkeeping": every(
            settings.pruning.interval_seconds, "bookkeeping pruning",
            pruning_job(app.engine, settings.service, settings.pruning, app.own_rows),
            round_seconds=round_worst_seconds(settings.pruning, len(app.own_rows)))}
        for name, job in jobs.items():
            heartbeat = Heartbeat(f"job-{name}", job.bound_seconds, clock=clock)
            heartbeats.append(heartbeat)
            threads.append(threading.Thread(target=job, args=(stop, heartbeat.beat), name=f"job-{name}", daemon=True))
    liveness.register(heartbeats)
    for thread in threads:
        thread.start()
    if "serve" in roles:
        health_servicer = health.HealthServicer()
        server, port = create_server(settings, app.registrations, health_servicer=health_servicer)
        server.start()
        discovery = Discovery(settings.consul_http_addr)
        service_id = discovery.register(settings.service, settings.advertise_host, port)
        log.info("gRPC %s serving on port %d", settings.service, port)
        liveness.watch(GrpcSelfCheck.name, GrpcSelfCheck(loopback_target(settings.grpc_listen, port)))
        stop.wait()
        # Drain: report NOT_SERVING and leave Consul, give load balancers and endpoint lists the
        # delay to notice, then let calls in flight finish within the grace period. A draining server is not
        # restarted: its check leaves /livez first.
        liveness.unwatch(GrpcSelfCheck.name)
        health_servicer.enter_graceful_shutdown()
        discovery.deregister(service_id)
        time.sleep(settings.shutdown_delay_seconds)
        server.stop(grace=settings.shutdown_grace_seconds).wait()
    else:
        stop.wait()
    # A relay may be mid-send: let it settle that batch (bounded by the delivery timeout).
    join_deadline = time.monotonic() + delivery_timeout_ms(settings.kafka) / 1000 + 5
    for thread in threads:
        thread.join(timeout=max(0.1, join_deadline - time.monotonic()))
    liveness.unregister(heartbeats)
    log.info("%s stopped", settings.service)


Command = Callable[[ServiceSettings, argparse.Namespace], int]
# The consume role's event consumers, built on the service database's engine from the common settings and what the
# handlers themselves use: none of the service's providers, payment channels or keys.
Consumers = Callable[[ServiceSettings, Engine], list[EventConsumer]]


def lean_app(settings: ServiceSettings, consumers: Consumers | None = None) -> ServiceApp:
    """The app of a relay (no `consumers`) or of a consume role running `consumers` alone: the service's engine, with
    its session timeouts (settings.database_timeouts), and nothing of build_app."""
    engine = make_engine(settings.database_url, settings.database_timeouts)
    return ServiceApp(settings=settings, engine=engine, registrations=[],
                      consumers=consumers(settings, engine) if consumers else [])


def main(service: str, build_app: Callable[[ServiceSettings], ServiceApp], migrations_dir: Path,
         argv: Sequence[str] | None = None, commands: dict[str, Command] | None = None,
         add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
         consumers: Consumers | None = None) -> int:
    """Entry point shared by `python -m services.<name>`; `consume` runs the `consumers` alone (build_app's
    otherwise)."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}")
    choices = ["all", *ROLES, "migrate", "wait-migrated", *(commands or {})]
    parser.add_argument("command", nargs="?", default="all", choices=choices,
                        help="all = serve + relay + consume (default); migrate = upgrade the database; "
                             "wait-migrated = wait until another process has brought it to this code's head")
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args(argv)
    settings = ServiceSettings.from_env(service)
    configure_logging(service, settings.log_level)
    if args.command == "migrate":
        waits = migrations.MigrationSettings.from_env()
        migrations.upgrade(settings.database_url, migrations_dir, lock_timeout_seconds=waits.lock_timeout_seconds,
                           lock_attempts=waits.lock_attempts)
        return 0
    if args.command == "wait-migrated":
        try:
            migrations.wait_until_migrated(settings.database_url, migrations_dir, timeout_seconds=Env().float(
                "MIGRATION_WAIT_SECONDS", migrations.WAIT_TIMEOUT_SECONDS))
        except migrations.NotMigrated as exc:
            log.error("%s", exc)
            return 1
        return 0
    if commands and args.command in commands:
        return commands[args.command](settings, args)

    # A relay only copies its service's outbox to Kafka and a consumer only runs its handlers: neither builds the
    # service (settings, providers, payment channels, identity), so their pods hold only the secrets that code reads
    # (deploy/k8s/generate.py): the database URL and the Kafka credentials, and a consumer calling services as its own
    # its service token.
    if args.command == "relay" or (args.command == "consume" and consumers is not None):
        app = lean_app(settings, consumers if args.command == "consume" else None)
    else:
        app = build_app(settings)
    # What imports and build_app made lives as long as the process: later collections skip it (a full one
    # walking every protobuf descriptor and mapper took a few hundred ms with the GIL held; gateway/gunicorn.conf.py).
    gc.freeze()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    serve_metrics(settings.metrics_port, {LIVENESS_PATH: LIVENESS.answer})
    run_roles(app, ROLES if args.command == "all" else (args.command,), stop)
    return 0

