"""Settings read from environment variables (12-factor); one object per process, no I/O at import."""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SERVICES = ("user", "product", "order", "member", "analytics")
GRPC_PORTS = {"user": 50051, "product": 50052, "order": 50053, "member": 50054, "analytics": 50055}
METRICS_PORTS = {"user": 9101, "product": 9102, "order": 9103, "member": 9104, "analytics": 9105}


ENVIRONMENTS = ("prod", "staging", "dev", "test")
DEV_ENVIRONMENTS = ("dev", "test")


class ConfigError(ValueError):
    """An environment variable is missing or malformed."""


class Env:
    """Typed reads of environment variables with clear errors."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def str(self, name: str, default: str | None = None) -> str:
        value = self.environ.get(name, default)
        if value is None or value == "":
            if default is not None:
                return default
            raise ConfigError(f"{name} must be set")
        return value

    def int(self, name: str, default: int) -> int:
        raw = self.environ.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None

    def int_within(self, name: str, default: int, minimum: int, maximum: int) -> int:
        """An integer from `minimum` to `maximum` (days, seconds, fen...); ConfigError outside them."""
        value = self.int(name, default)
        if not minimum <= value <= maximum:
            raise ConfigError(f"{name} must be {minimum} to {maximum}, got {self.environ[name]!r}")
        return value

    def float(self, name: str, default: float) -> float:
        """A finite number >= 0 (seconds, factors...)."""
        raw = self.environ.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} must be a number >= 0, got {raw!r}")
        return value

    def bool(self, name: str, default: bool) -> bool:
        raw = self.environ.get(name)
        if raw is None or raw == "":
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be a boolean (true/false), got {raw!r}")

    def optional(self, name: str) -> str | None:
        return self.environ.get(name) or None


def grpc_target(env: Env, service: str) -> str:
    """Static address of a service's gRPC server (Kubernetes DNS name or host:port)."""
    return env.str(f"{service.upper()}_GRPC_TARGET", f"127.0.0.1:{GRPC_PORTS[service]}")


KAFKA_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
KAFKA_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSecurity:
    """How clients authenticate to the brokers and encrypt the connection (kafka-python's names).

    KAFKA_SECURITY_PROTOCOL (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL); with SASL_*:
    KAFKA_SASL_MECHANISM (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), KAFKA_SASL_USERNAME and
    KAFKA_SASL_PASSWORD (from a Secret); with SSL/SASL_SSL: KAFKA_SSL_CAFILE (the brokers' CA; the
    system's otherwise; hostnames are always checked), KAFKA_SSL_CERTFILE + KAFKA_SSL_KEYFILE
    (a client certificate, when the brokers require one).
    """

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    @classmethod
    def from_env(cls, env: Env) -> KafkaSecurity:
        security = cls(protocol=env.str("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper(),
                       sasl_mechanism=env.optional("KAFKA_SASL_MECHANISM"),
                       sasl_username=env.optional("KAFKA_SASL_USERNAME"),
                       sasl_password=env.optional("KAFKA_SASL_PASSWORD"),
                       ssl_cafile=env.optional("KAFKA_SSL_CAFILE"), ssl_certfile=env.optional("KAFKA_SSL_CERTFILE"),
                       ssl_keyfile=env.optional("KAFKA_SSL_KEYFILE"))
        security.check()
        return security

    def check(self) -> None:
        if self.protocol not in KAFKA_PROTOCOLS:
            raise ConfigError(f"KAFKA_SECURITY_PROTOCOL must be one of {', '.join(KAFKA_PROTOCOLS)}, got {self.protocol!r}")
        sasl, tls = self.protocol.startswith("SASL_"), self.protocol.endswith("SSL")
        if sasl and not (self.sasl_mechanism in KAFKA_SASL_MECHANISMS and self.sasl_username and self.sasl_password):
            raise ConfigError(f"{self.protocol} needs KAFKA_SASL_MECHANISM (one of {', '.join(KAFKA_SASL_MECHANISMS)}), "
                              "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
        if not sasl and (self.sasl_mechanism or self.sasl_username or self.sasl_password):
            raise ConfigError(f"KAFKA_SASL_* are set but KAFKA_SECURITY_PROTOCOL is {self.protocol}")
        if not tls and (self.ssl_cafile or self.ssl_certfile or self.ssl_keyfile):
            raise ConfigError(f"KAFKA_SSL_* are set but KAFKA_SECURITY_PROTOCOL is {self.protocol}")
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ConfigError("KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together: set both or neither")

    def client_options(self) -> dict[str, Any]:
        """The keyword arguments every kafka-python client (producer, consumer, admin) takes."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.protocol.startswith("SASL_"):
            options |= {"sasl_mechanism": self.sasl_mechanism, "sasl_plain_username": self.sasl_username,
                        "sasl_plain_password": self.sasl_password}
        if self.protocol.endswith("SSL"):
            options |= {"ssl_check_hostname": True, "ssl_cafile": self.ssl_cafile, "ssl_certfile": self.ssl_certfile,
                        "ssl_keyfile": self.ssl_keyfile}
        return options


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str
    # tansu completes a consumer-group join only after the rebalance timeout, which kafka-python
    # sets to max_poll_interval_ms: keep it small in dev and tests, large in production.
    max_poll_interval_ms: int
    topic_prefix: str
    request_timeout_ms: int
    security: KafkaSecurity = KafkaSecurity()
    # Records one poll returns at most, their offsets committed at once; a batched EventConsumer (analytics)
    # applies them in one transaction, the others one transaction per record.
    max_poll_records: int = 500

    @classmethod
    def from_env(cls, env: Env) -> KafkaSettings:
        if env.int("KAFKA_MAX_POLL_RECORDS", 500) < 1:
            raise ConfigError("KAFKA_MAX_POLL_RECORDS must be at least 1")
        return cls(
            bootstrap_servers=env.str("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            max_poll_interval_ms=env.int("KAFKA_MAX_POLL_INTERVAL_MS", 300_000),
            topic_prefix=env.str("KAFKA_TOPIC_PREFIX", ""),
            request_timeout_ms=env.int("KAFKA_REQUEST_TIMEOUT_MS", 30_000),
            security=KafkaSecurity.from_env(env),
            max_poll_records=env.int("KAFKA_MAX_POLL_RECORDS", 500),
        )

    def client_options(self) -> dict[str, Any]:
        """Brokers and security, as every kafka-python client takes them."""
        return {"bootstrap_servers": self.bootstrap_servers.split(","), **self.security.client_options()}

    def topic(self, event_type: str) -> str:
        return f"{self.topic_prefix}{event_type}"

    def group(self, consumer: str) -> str:
        """The consumer group of `consumer`: prefixed like the topics, so that environments (or tests) sharing a
        broker under different prefixes never share a group, whose rebalances would otherwise wait on each other."""
        return f"{self.topic_prefix}{consumer}"


# How long the topics keep their records: deploy/k8s/generate.py creates them with this retention (some shorter).
KAFKA_TOPIC_RETENTION_DAYS = 7
# Kafka deletes a log segment only once its newest record is past the retention, and rolls a segment after
# segment.ms (default 7 days) at most: a record can be read again for this much longer than the retention.
KAFKA_SEGMENT_DAYS = 7


def redelivery_days(topic_retention_days: int) -> int:
    """How long Kafka may deliver a record after it was written: its topic's retention, then the rest of its segment
    (a segment is deleted only when its newest record is past retention), plus a day for consumer lag and clocks."""
    return topic_retention_days + KAFKA_SEGMENT_DAYS + 1


@dataclass(frozen=True)
class PruneSettings:
    """How long each service keeps its bookkeeping rows (services/common/pruning.py), read when the process starts.

    PROCESSED_EVENTS_RETENTION_DAYS must exceed the longest time Kafka may deliver an event again:
    KAFKA_TOPIC_RETENTION_DAYS plus KAFKA_SEGMENT_DAYS, plus one day for lag and clocks. A consumer whose record of
    an event is gone would apply a redelivered one again; a shorter setting is a ConfigError. A copy published again
    (lost-range recovery, dead-letter replay) is a new record Kafka may deliver for that long again, so an event may be
    published again only while every consumer's record of it outlives the copy: `republish_days` =
    PROCESSED_EVENTS_RETENTION_DAYS - (KAFKA_TOPIC_RETENTION_DAYS + KAFKA_SEGMENT_DAYS + 1), and OUTBOX_RETENTION_DAYS
    may be at most that.
    """

    outbox_days: int = 14
    processed_events_days: int = 30
    idempotency_key_days: int = 7  # the replay window of an Idempotency-Key
    interval_seconds: int = 3600
    # A round stops starting batches once it has run this long (each table's first batch aside): a large backlog is
    # pruned over several rounds, each within the job's liveness bound (services/common/pruning.py).
    round_seconds: int = 60
    topic_retention_days: int = KAFKA_TOPIC_RETENTION_DAYS

    @property
    def republish_days(self) -> int:
        """How old an event may be and still be published again: every consumer still holds its processed record as
        long as Kafka may deliver the new copy (the topics' retention, a segment, a day for lag and clocks)."""
        return self.processed_events_days - redelivery_days(self.topic_retention_days)

    @classmethod
    def from_env(cls, env: Env) -> PruneSettings:
        topic = env.int_within("KAFKA_TOPIC_RETENTION_DAYS", KAFKA_TOPIC_RETENTION_DAYS, 1, 365)
        processed = env.int_within("PROCESSED_EVENTS_RETENTION_DAYS", cls.processed_events_days, 1, 3650)
        least = redelivery_days(topic)
        if processed <= least:  # and a day more for the outbox to keep its rows (below)
            raise ConfigError(f"PROCESSED_EVENTS_RETENTION_DAYS must be at least {least + 1} (KAFKA_TOPIC_RETENTION_DAYS "
                              f"{topic} + {KAFKA_SEGMENT_DAYS} days of Kafka segment + 1, and 1 day of outbox): Kafka "
                              f"may deliver an event again that long, and a consumer that forgot it would apply it "
                              f"twice; got {processed}")
        outbox = env.int("OUTBOX_RETENTION_DAYS", cls.outbox_days)
        if not 1 <= outbox <= processed - least:
            raise ConfigError(f"OUTBOX_RETENTION_DAYS must be 1 to {processed - least} (PROCESSED_EVENTS_RETENTION_DAYS "
                              f"- {least}, how long Kafka may deliver a copy): a row published again from the outbox "
                              f"must still be recognised by every consumer as long as its copy may come; got {outbox}")
        return cls(outbox_days=outbox, processed_events_days=processed, topic_retention_days=topic,
                   idempotency_key_days=env.int_within("IDEMPOTENCY_KEY_RETENTION_DAYS", cls.idempotency_key_days,
                                                       1, 3650),
                   interval_seconds=env.int_within("PRUNE_INTERVAL_SECONDS", cls.interval_seconds, 60, 86400),
                   round_seconds=env.int_within("PRUNE_ROUND_SECONDS", cls.round_seconds, 1, 3600))


# The longest statement a service may run, and so the longest any timeout below may be: the relay's liveness bound
# (services/common/outbox.py) budgets one database call of connect_timeout + tcp_user_timeout (60 s) per pass, so a
# statement cut short by its timeout still fits in it; the consumers' bound (370.5 s) is looser still.
DB_TIMEOUT_MAX_SECONDS = 60.0
# A report (analytics' ReportRunner, `export`, `backup`) that wrote no row for STALLED_AFTER (30 min) is taken over by
# another runner anyway: no report statement may run longer.
DB_REPORT_TIMEOUT_MAX_SECONDS = 1800.0
DB_IDLE_IN_TRANSACTION_MAX_SECONDS = 3600.0


@dataclass(frozen=True)
class DatabaseTimeouts:
    """How long a service's PostgreSQL session lets one statement run (statement_timeout), wait for a lock
    (lock_timeout) and sit idle inside a transaction (idle_in_transaction_session_timeout); set on every connection of
    the engines a service role makes (services/common/db.py make_engine, which sets none unless given them), never on
    `migrate`'s (services/common/migrations.py) nor the whole-table tools' (tools/audit.py, bench/).

    A request or a loop waiting on a row lock a stuck transaction holds gives up after the lock timeout instead of
    hanging until the client's deadline (GATEWAY_GRPC_TIMEOUT_MS, 5 s; the thread stayed busy after it) or the pod's
    liveness bound: the RPC answers UNAVAILABLE (DATABASE_BUSY, 503, nothing committed), a consumer or job logs it and
    tries again. The defaults are below the 5 s deadlines of every gRPC call; a lock wait a checkout would win within
    its deadline (a queue on a hot SKU's stock row) is not cut short before the deadline is near.
    `report_statement_seconds` is the statement timeout of the analytics reports' own engine (long aggregations).
    """

    statement_seconds: float = 4.0  # DB_STATEMENT_TIMEOUT_SECONDS
    lock_seconds: float = 3.0  # DB_LOCK_TIMEOUT_SECONDS
    idle_in_transaction_seconds: float = 60.0  # DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS
    report_statement_seconds: float = 600.0  # DB_REPORT_STATEMENT_TIMEOUT_SECONDS

    @classmethod
    def from_env(cls, env: Env) -> DatabaseTimeouts:
        statement = _positive_seconds(env, "DB_STATEMENT_TIMEOUT_SECONDS", cls.statement_seconds, DB_TIMEOUT_MAX_SECONDS)
        lock = _positive_seconds(env, "DB_LOCK_TIMEOUT_SECONDS", cls.lock_seconds, DB_TIMEOUT_MAX_SECONDS)
        if lock > statement:
            raise ConfigError(f"DB_LOCK_TIMEOUT_SECONDS ({lock:g}) must be at most DB_STATEMENT_TIMEOUT_SECONDS "
                              f"({statement:g}): a statement waiting for a lock is cut short by the statement timeout "
                              f"first")
        return cls(statement_seconds=statement, lock_seconds=lock,
                   idle_in_transaction_seconds=_positive_seconds(env, "DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS",
                                                                 cls.idle_in_transaction_seconds,
                                                                 DB_IDLE_IN_TRANSACTION_MAX_SECONDS),
                   report_statement_seconds=_positive_seconds(env, "DB_REPORT_STATEMENT_TIMEOUT_SECONDS",
                                                              cls.report_statement_seconds,
                                                              DB_REPORT_TIMEOUT_MAX_SECONDS))

    def for_reports(self) -> DatabaseTimeouts:
        """These timeouts with the reports' statement timeout: for the engine of report exports and backups only."""
        return replace(self, statement_seconds=max(self.statement_seconds, self.report_statement_seconds))


def _positive_seconds(env: Env, name: str, default: float, maximum: float) -> float:
    value = env.float(name, default)
    if not 0 < value <= maximum:
        raise ConfigError(f"{name} must be more than 0 and at most {maximum:g} seconds, got {env.environ[name]!r}")
    return value


@dataclass(frozen=True)
class ServiceSettings:
    """What every service process needs; a service's own settings hold one of these as `base`."""

    service: str
    environment: str  # "prod" (default), "staging", "dev" or "test": dev-only conveniences need dev or test
    database_url: str
    grpc_listen: str
    metrics_port: int
    kafka: KafkaSettings
    jwt_public_key_pem: bytes
    consul_http_addr: str | None
    advertise_host: str
    log_level: str
    shutdown_delay_seconds: float = 0.0  # after NOT_SERVING, before refusing calls (Kubernetes: ~5)
    shutdown_grace_seconds: float = 10.0  # for calls in flight to finish
    jwt_previous_public_key_pem: bytes | None = None  # during a key rotation only
    pruning: PruneSettings = PruneSettings()
    database_timeouts: DatabaseTimeouts = DatabaseTimeouts()
    # How long one round of a reconciliation or timeout scan goes on handling rows before it leaves the rest to the
    # next round, started after runtime.BACKLOG_PAUSE_SECONDS (services/common/uow.py RoundBudget): its job's
    # liveness bound follows from it.
    job_round_budget_seconds: int = 300

    @classmethod
    def from_env(cls, service: str, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        env = Env(environ)
        prefix = service.upper()
        environment = env.str("MINIMALL_ENV", "prod")
        if environment not in ENVIRONMENTS:
            raise ConfigError(f"MINIMALL_ENV must be one of {', '.join(ENVIRONMENTS)}, got {environment!r}")
        return cls(
            service=service,
            environment=environment,
            database_url=database_url(env, service),
            grpc_listen=env.str(f"{prefix}_GRPC_LISTEN", f"127.0.0.1:{GRPC_PORTS[service]}"),
            metrics_port=env.int(f"{prefix}_METRICS_PORT", METRICS_PORTS[service]),
            kafka=KafkaSettings.from_env(env),
            jwt_public_key_pem=read_key(env, "JWT_PUBLIC_KEY_FILE", "var/keys/jwt-public.pem"),
            consul_http_addr=env.optional("CONSUL_HTTP_ADDR"),
            advertise_host=env.str(f"{prefix}_ADVERTISE_HOST", env.str("POD_IP", "127.0.0.1")),
            log_level=env.str("LOG_LEVEL", "INFO"),
            shutdown_delay_seconds=env.float("SHUTDOWN_DELAY_SECONDS", 0.0),
            shutdown_grace_seconds=env.float("SHUTDOWN_GRACE_SECONDS", 10.0),
            jwt_previous_public_key_pem=read_optional_key(env, "JWT_PREVIOUS_PUBLIC_KEY_FILE"),
            pruning=PruneSettings.from_env(env),
            database_timeouts=DatabaseTimeouts.from_env(env),
            job_round_budget_seconds=env.int_within("JOB_ROUND_BUDGET_SECONDS", cls.job_round_budget_seconds, 1,
                                                    3600),
        )


def var_dir(env: Env, root: Path | None = None) -> Path:
    """$MINIMALL_VAR (default `var`), the folder of local state: the default SQLite databases, media and reports,
    `make run`'s keys and logs. A relative one is taken from the working directory; the tools `make` runs from the
    repository root pass it as `root`, and get it resolved there, where tools/devrun.py runs the services too."""
    path = Path(env.str("MINIMALL_VAR", "var"))
    return path if root is None else (root / path).resolve()


def database_url(env: Env, service: str) -> str:
    """The service's database: <SERVICE>_DATABASE_URL, by default a SQLite file under $MINIMALL_VAR (var/), where
    `make run` and `make audit` look for it too."""
    return env.str(f"{service.upper()}_DATABASE_URL", f"sqlite:///{var_dir(env) / service}.db")


def provider_url(name: str, url: str, environment: str) -> str:
    """`url`, read from the variable `name`, if it is an https URL (http too in dev and test, for local fakes):
    requests to a payment or identity provider carry credentials and personal data. ConfigError otherwise."""
    allowed = ("https", "http") if environment in DEV_ENVIRONMENTS else ("https",)
    if urlsplit(url).scheme not in allowed or not urlsplit(url).netloc:
        raise ConfigError(f"{name} must be an {' or '.join(allowed)} URL, got {url!r}")
    return url


# The shop's public origin (https://shop.example.com: where the ingress publishes /api/); payment channels call
# back under it unless a service's own *_NOTIFY_URL variable says otherwise.
PUBLIC_URL = "MINIMALL_PUBLIC_URL"
DEV_PUBLIC_URL = "https://localhost"  # dev and test only: a channel that never calls back (make run sets its own)


def callback_url(env: Env, name: str, path: str) -> str:
    """Where a payment channel calls back: the variable `name` if set, else MINIMALL_PUBLIC_URL + `path` (e.g.
    /api/v1/payments/wechat/notify), else https://localhost + `path`, which `public_callback_url` refuses outside
    dev and test once the channel is configured."""
    explicit = env.optional(name)
    if explicit is not None:
        return explicit
    return env.str(PUBLIC_URL, DEV_PUBLIC_URL).rstrip("/") + path


def public_callback_url(name: str, url: str, environment: str) -> str:
    """`url` (read from `name` or MINIMALL_PUBLIC_URL) if a payment channel can call it back: outside dev and test
    an https URL whose host is a public name or address, not localhost nor a loopback or private address.
    ConfigError otherwise, so a process configured with a channel does not start taking payments whose notifies
    can never arrive."""
    if environment in DEV_ENVIRONMENTS:
        return url
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        local = not ipaddress.ip_address(host).is_global
    except ValueError:  # a name, not an address
        local = host in ("", "localhost") or host.endswith(".localhost")
    if parts.scheme != "https" or local:
        raise ConfigError(f"{name} (or {PUBLIC_URL}, the shop's public https origin) must be a public https URL "
                          f"outside dev and test: the payment channel calls it back; got {url!r}")
    return url


def read_optional_key(env: Env, name: str) -> bytes | None:
    """The key in the file an environment variable names; None when unset or when the file does not
    exist (Kubernetes mounts the optional rotation secret only while it exists)."""
    path = env.optional(name)
    if path is None or not Path(path).exists():
        return None
    return read_key(env, name, path)


def read_key(env: Env, name: str, default_path: str | None = None) -> bytes:
    """Read a PEM key from the file an environment variable names (required when there is no default)."""
    path = Path(env.str(name, default_path))
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read key file {path}: {exc.strerror}") from None
