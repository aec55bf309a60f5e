"""Settings from environment variables: typed reads, defaults per service, overrides, key files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url

from services.common.alipay import AlipaySettings
from services.common.bankcard import BankcardSettings
from services.common.config import (
    ConfigError,
    Env,
    KafkaSettings,
    PruneSettings,
    ServiceSettings,
    database_url,
    grpc_target,
    provider_url,
    read_key,
    var_dir,
)
from services.common.discovery import Discovery
from services.common.wechatpay import WechatPaySettings

PEM = b"-----BEGIN PUBLIC KEY-----\nnot checked here\n-----END PUBLIC KEY-----\n"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "jwt-public.pem"
    path.write_bytes(PEM)
    return path


@pytest.fixture
def default_key_in_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding the key at the default path var/keys/jwt-public.pem."""
    (tmp_path / "var" / "keys").mkdir(parents=True)
    (tmp_path / "var" / "keys" / "jwt-public.pem").write_bytes(PEM)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# Env: typed reads

def test_int_reads_a_number() -> None:
    assert Env({"PORT": "8080"}).int("PORT", 1) == 8080


def test_int_falls_back_to_default_when_unset_or_empty() -> None:
    assert (Env({}).int("PORT", 7), Env({"PORT": ""}).int("PORT", 7)) == (7, 7)


def test_int_that_is_not_a_number_names_the_variable_and_value() -> None:
    with pytest.raises(ConfigError) as raised:
        Env({"USER_METRICS_PORT": "91o1"}).int("USER_METRICS_PORT", 9101)

    assert str(raised.value) == "USER_METRICS_PORT must be an integer, got '91o1'"


@pytest.mark.parametrize(("raw", "value"), [("2.5", 2.5), ("0", 0.0), ("10", 10.0), ("", 7.0)])
def test_float_reads_a_non_negative_number(raw: str, value: float) -> None:
    assert Env({"SHUTDOWN_DELAY_SECONDS": raw}).float("SHUTDOWN_DELAY_SECONDS", 7.0) == value


@pytest.mark.parametrize("raw", ["-1", "soon", "nan", "inf"])
def test_float_refuses_negative_or_non_finite_values_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match=f"SHUTDOWN_DELAY_SECONDS must be a number >= 0, got '{raw}'"):
        Env({"SHUTDOWN_DELAY_SECONDS": raw}).float("SHUTDOWN_DELAY_SECONDS", 0.0)


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "yes", "On"])
def test_bool_accepts_the_usual_spellings_of_true(raw: str) -> None:
    assert Env({"FLAG": raw}).bool("FLAG", False) is True


@pytest.mark.parametrize("raw", ["0", "false", "False", "no", "OFF"])
def test_bool_accepts_the_usual_spellings_of_false(raw: str) -> None:
    assert Env({"FLAG": raw}).bool("FLAG", True) is False


def test_bool_falls_back_to_default_when_unset() -> None:
    assert Env({}).bool("FLAG", True) is True


def test_bool_that_is_not_a_boolean_names_the_variable_and_value() -> None:
    with pytest.raises(ConfigError) as raised:
        Env({"DEBUG": "maybe"}).bool("DEBUG", False)

    assert str(raised.value) == "DEBUG must be a boolean (true/false), got 'maybe'"


@pytest.mark.parametrize("environ", [{}, {"SMS_PROVIDER": ""}], ids=["unset", "empty"])
def test_required_string_without_default_names_the_missing_variable(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as raised:
        Env(environ).str("SMS_PROVIDER")

    assert str(raised.value) == "SMS_PROVIDER must be set"


def test_empty_string_falls_back_to_default() -> None:
    assert Env({"LOG_LEVEL": ""}).str("LOG_LEVEL", "INFO") == "INFO"


def test_optional_is_none_when_unset_or_empty() -> None:
    assert (Env({}).optional("CONSUL_HTTP_ADDR"), Env({"CONSUL_HTTP_ADDR": ""}).optional("CONSUL_HTTP_ADDR")) == (
        None, None)


def test_env_reads_the_process_environment_when_given_no_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIMALL_UNIT_TEST_VALUE", "42")

    assert Env().int("MINIMALL_UNIT_TEST_VALUE", 0) == 42


# ServiceSettings.from_env

@pytest.mark.parametrize(("service", "grpc_port", "metrics_port"), [
    ("user", 50051, 9101), ("product", 50052, 9102), ("order", 50053, 9103),
    ("member", 50054, 9104), ("analytics", 50055, 9105),
])
def test_each_service_has_its_own_default_ports_and_sqlite_database(
        default_key_in_cwd: Path, service: str, grpc_port: int, metrics_port: int) -> None:
    settings = ServiceSettings.from_env(service, {})

    assert (settings.service, settings.grpc_listen, settings.metrics_port, settings.database_url) == (
        service, f"127.0.0.1:{grpc_port}", metrics_port, f"sqlite:///var/{service}.db")


def test_the_default_sqlite_database_lies_under_minimall_var_where_make_audit_reads_it(default_key_in_cwd: Path) -> None:
    from tools.audit import database_urls

    environ = {"MINIMALL_VAR": "/srv/mall-state"}

    assert ServiceSettings.from_env("order", environ).database_url == "sqlite:////srv/mall-state/order.db"
    assert database_urls(environ)["order"] == "sqlite:////srv/mall-state/order.db"


@pytest.mark.parametrize(("environ", "under_root"), [
    ({}, "var/order.db"), ({"MINIMALL_VAR": ""}, "var/order.db"), ({"MINIMALL_VAR": "state"}, "state/order.db"),
    ({"MINIMALL_VAR": "/srv/mall-state"}, "/srv/mall-state/order.db"),
], ids=["unset", "empty", "relative", "absolute"])
def test_a_service_make_run_and_make_audit_find_the_same_sqlite_file(
        environ: dict[str, str], under_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tools import devrun
    from tools.audit import database_urls

    monkeypatch.chdir(devrun.ROOT)  # where make runs the tools, and devrun its services
    monkeypatch.delenv("MINIMALL_VAR", raising=False)
    monkeypatch.delenv("ORDER_DATABASE_URL", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(devrun, "ensure_keys", lambda var: (var / "keys" / "private.pem", var / "keys" / "public.pem"))
    children = devrun.platform_env(var_dir(Env(), root=devrun.ROOT))  # the folder devrun.main() runs in

    found = {"a service": database_url(Env(environ), "order"), "make audit": database_urls(environ)["order"],
             "make run": children["ORDER_DATABASE_URL"], "make run's service": database_url(Env(children), "order")}

    assert {who: Path(make_url(url).database or "").resolve() for who, url in found.items()} == dict.fromkeys(
        found, devrun.ROOT / under_root)


def test_defaults_need_no_consul_and_log_at_info(default_key_in_cwd: Path) -> None:
    settings = ServiceSettings.from_env("order", {})

    assert (settings.consul_http_addr, settings.advertise_host, settings.log_level, settings.jwt_public_key_pem) == (
        None, "127.0.0.1", "INFO", PEM)


def test_without_minimall_env_a_process_assumes_production(default_key_in_cwd: Path) -> None:
    assert ServiceSettings.from_env("order", {}).environment == "prod"


def test_an_unknown_minimall_env_is_refused(default_key_in_cwd: Path) -> None:
    with pytest.raises(ConfigError, match="^MINIMALL_ENV must be one of prod, staging, dev, test, got 'production'$"):
        ServiceSettings.from_env("order", {"MINIMALL_ENV": "production"})


def test_default_kafka_settings_point_at_a_local_broker(default_key_in_cwd: Path) -> None:
    settings = ServiceSettings.from_env("order", {})

    assert settings.kafka == KafkaSettings(bootstrap_servers="127.0.0.1:9092", max_poll_interval_ms=300_000,
                                           topic_prefix="", request_timeout_ms=30_000)


def test_every_setting_can_be_overridden_by_environment(key_file: Path) -> None:
    environ = {
        "USER_DATABASE_URL": "postgresql+psycopg://u@db/user", "USER_GRPC_LISTEN": "0.0.0.0:6000",
        "USER_METRICS_PORT": "9999", "JWT_PUBLIC_KEY_FILE": str(key_file), "CONSUL_HTTP_ADDR": "consul:8500",
        "USER_ADVERTISE_HOST": "user.svc", "LOG_LEVEL": "DEBUG", "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092",
        "KAFKA_MAX_POLL_INTERVAL_MS": "5000", "KAFKA_TOPIC_PREFIX": "ci-", "KAFKA_REQUEST_TIMEOUT_MS": "2000",
        "MINIMALL_ENV": "staging", "SHUTDOWN_DELAY_SECONDS": "5", "SHUTDOWN_GRACE_SECONDS": "20",
    }

    settings = ServiceSettings.from_env("user", environ)

    assert settings == ServiceSettings(
        service="user", environment="staging", database_url="postgresql+psycopg://u@db/user", grpc_listen="0.0.0.0:6000",
        metrics_port=9999, kafka=KafkaSettings("kafka:9092", 5000, "ci-", 2000), jwt_public_key_pem=PEM,
        consul_http_addr="consul:8500", advertise_host="user.svc", log_level="DEBUG",
        shutdown_delay_seconds=5, shutdown_grace_seconds=20)


def test_variables_of_another_service_are_ignored(key_file: Path) -> None:
    settings = ServiceSettings.from_env("user", {"JWT_PUBLIC_KEY_FILE": str(key_file),
                                                 "ORDER_GRPC_LISTEN": "0.0.0.0:7000"})

    assert settings.grpc_listen == "127.0.0.1:50051"


def test_advertise_host_defaults_to_the_pod_ip(key_file: Path) -> None:
    settings = ServiceSettings.from_env("user", {"JWT_PUBLIC_KEY_FILE": str(key_file), "POD_IP": "10.1.2.3"})

    assert settings.advertise_host == "10.1.2.3"


def test_service_specific_advertise_host_wins_over_pod_ip(key_file: Path) -> None:
    settings = ServiceSettings.from_env("user", {"JWT_PUBLIC_KEY_FILE": str(key_file), "POD_IP": "10.1.2.3",
                                                 "USER_ADVERTISE_HOST": "user.local"})

    assert settings.advertise_host == "user.local"


def test_malformed_port_override_names_the_variable(key_file: Path) -> None:
    with pytest.raises(ConfigError, match="^ANALYTICS_METRICS_PORT must be an integer, got 'x'$"):
        ServiceSettings.from_env("analytics", {"JWT_PUBLIC_KEY_FILE": str(key_file), "ANALYTICS_METRICS_PORT": "x"})


def test_missing_key_file_is_a_config_error_naming_the_variable_and_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"

    with pytest.raises(ConfigError) as raised:
        ServiceSettings.from_env("user", {"JWT_PUBLIC_KEY_FILE": str(missing)})

    assert str(raised.value) == f"JWT_PUBLIC_KEY_FILE: cannot read key file {missing}: No such file or directory"


def test_read_key_returns_the_file_bytes(key_file: Path) -> None:
    assert read_key(Env({"K": str(key_file)}), "K", "unused.pem") == PEM


# Kafka topics and service addresses

def test_topic_is_the_event_type_behind_the_prefix() -> None:
    kafka = KafkaSettings("k:9092", 1000, "ci-42-", 1000)

    assert kafka.topic("order-paid") == "ci-42-order-paid"


def test_grpc_target_defaults_to_the_local_port_of_the_service() -> None:
    assert grpc_target(Env({}), "member") == "127.0.0.1:50054"


def test_grpc_target_can_be_a_cluster_dns_name() -> None:
    assert grpc_target(Env({"MEMBER_GRPC_TARGET": "member:50051"}), "member") == "member:50051"


def test_discovery_without_consul_uses_the_static_address() -> None:
    discovery = Discovery(None, Env({"ANALYTICS_GRPC_TARGET": "analytics.mall:50051"}))

    assert discovery.target("analytics") == "analytics.mall:50051"


def test_discovery_without_consul_registers_nothing() -> None:
    assert Discovery(None, Env({})).register("user", "10.0.0.1", 50051) is None


@pytest.mark.parametrize(("value", "records"), [("", 500), ("2000", 2000)])
def test_a_consumer_batch_is_500_records_unless_set(value: str, records: int) -> None:
    assert KafkaSettings.from_env(Env({"KAFKA_MAX_POLL_RECORDS": value})).max_poll_records == records


@pytest.mark.parametrize("value", ["0", "-5", "many"])
def test_a_consumer_batch_of_no_records_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="KAFKA_MAX_POLL_RECORDS"):
        KafkaSettings.from_env(Env({"KAFKA_MAX_POLL_RECORDS": value}))


@pytest.mark.parametrize(("url", "environment"), [
    ("https://pay.example.com/gateway", "prod"), ("http://127.0.0.1:8090", "dev"), ("http://fake:80/", "test")])
def test_a_provider_url_is_https_or_in_dev_and_test_also_http(url: str, environment: str) -> None:
    assert provider_url("PAY_URL", url, environment) == url


@pytest.mark.parametrize(("url", "environment", "allowed"), [
    ("http://pay.example.com", "prod", "https"), ("http://pay.example.com", "staging", "https"),
    ("ftp://pay.example.com", "dev", "https or http"), ("https://", "prod", "https"), ("pay.example.com", "prod", "https")])
def test_any_other_provider_url_is_refused_naming_the_variable(url: str, environment: str, allowed: str) -> None:
    with pytest.raises(ConfigError, match=f"^PAY_URL must be an {allowed} URL, got "):
        provider_url("PAY_URL", url, environment)


@pytest.mark.parametrize(("settings", "environ"), [
    (AlipaySettings.from_env, {"ALIPAY_APP_ID": "2021", "ALIPAY_GATEWAY_URL": "http://alipay.example.com"}),
    (BankcardSettings.from_env, {"BANKCARD_MERCHANT_ID": "M1", "BANKCARD_SECRET": "s" * 32,
                                 "BANKCARD_CASHIER_URL": "https://bank.example.com",
                                 "BANKCARD_QUERY_URL": "http://bank.example.com/query"}),
    (BankcardSettings.from_env, {"BANKCARD_MERCHANT_ID": "M1", "BANKCARD_SECRET": "s" * 32,
                                 "BANKCARD_CASHIER_URL": "http://bank.example.com"}),
    (WechatPaySettings.from_env, {"WECHATPAY_MCHID": "1900", "WECHATPAY_API_BASE": "http://wx.example.com"}),
], ids=["alipay", "bankcard-query", "bankcard-cashier", "wechatpay"])
def test_every_payment_channel_refuses_a_plain_http_url_in_production(settings: Any, environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="_URL must be an https URL|_BASE must be an https URL"):
        settings(environ=environ, environment="prod")


def test_pruning_defaults_keep_processed_events_beyond_kafka_redeliveries() -> None:
    assert PruneSettings.from_env(Env({})) == PruneSettings(outbox_days=14, processed_events_days=30,
                                                            idempotency_key_days=7, interval_seconds=3600)


@pytest.mark.parametrize(("environ", "named"), [
    ({"PROCESSED_EVENTS_RETENTION_DAYS": "15"}, "PROCESSED_EVENTS_RETENTION_DAYS must be at least 16"),
    ({"KAFKA_TOPIC_RETENTION_DAYS": "30"}, "PROCESSED_EVENTS_RETENTION_DAYS must be at least 39"),
    ({"OUTBOX_RETENTION_DAYS": "16"}, "OUTBOX_RETENTION_DAYS must be 1 to 15"),
    ({"OUTBOX_RETENTION_DAYS": "0"}, "OUTBOX_RETENTION_DAYS must be 1 to 15"),
    ({"IDEMPOTENCY_KEY_RETENTION_DAYS": "0"}, "IDEMPOTENCY_KEY_RETENTION_DAYS must be 1 to 3650"),
    ({"PRUNE_INTERVAL_SECONDS": "5"}, "PRUNE_INTERVAL_SECONDS must be 60 to 86400"),
])
def test_a_retention_that_lets_a_redelivered_event_apply_twice_is_refused_at_start(
        environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        PruneSettings.from_env(Env(environ))


def test_a_longer_topic_retention_with_a_longer_processed_retention_is_accepted() -> None:
    settings = PruneSettings.from_env(Env({"KAFKA_TOPIC_RETENTION_DAYS": "30", "PROCESSED_EVENTS_RETENTION_DAYS": "50",
                                           "OUTBOX_RETENTION_DAYS": "12"}))

    assert (settings.processed_events_days, settings.republish_days) == (50, 12)


def test_the_least_processed_retention_starts_with_one_day_of_outbox() -> None:
    settings = PruneSettings.from_env(Env({"PROCESSED_EVENTS_RETENTION_DAYS": "16", "OUTBOX_RETENTION_DAYS": "1"}))

    assert (settings.processed_events_days, settings.outbox_days, settings.republish_days) == (16, 1, 1)


def test_an_outbox_kept_longer_than_a_republished_copy_stays_recognised_is_refused() -> None:
    # 30 days of records - (7 retention + 7 segment + 1): a row republished on day 16 could come again on day 31.
    with pytest.raises(ConfigError, match="OUTBOX_RETENTION_DAYS must be 1 to 15"):
        PruneSettings.from_env(Env({"OUTBOX_RETENTION_DAYS": "16"}))
