"""Kafka TLS and SASL settings: read from the environment, checked whole, handed to every kafka-python client."""

from __future__ import annotations

from typing import Any

import pytest

from services.common import kafka
from services.common.config import ConfigError, Env, KafkaSettings

SASL_SSL = {"KAFKA_BOOTSTRAP_SERVERS": "kafka-0:9093,kafka-1:9093", "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "minimall-order",
            "KAFKA_SASL_PASSWORD": "s3cret-from-a-Secret", "KAFKA_SSL_CAFILE": "/etc/minimall/kafka/ca.crt"}


def test_sasl_over_tls_gives_kafka_python_its_mechanism_credentials_and_ca() -> None:
    settings = KafkaSettings.from_env(Env(SASL_SSL))

    assert settings.client_options() == {
        "bootstrap_servers": ["kafka-0:9093", "kafka-1:9093"], "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "minimall-order",
        "sasl_plain_password": "s3cret-from-a-Secret", "ssl_check_hostname": True,
        "ssl_cafile": "/etc/minimall/kafka/ca.crt", "ssl_certfile": None, "ssl_keyfile": None}
    assert "s3cret" not in repr(settings)


def test_without_settings_clients_speak_plaintext() -> None:
    assert KafkaSettings.from_env(Env({})).client_options() == {
        "bootstrap_servers": ["127.0.0.1:9092"], "security_protocol": "PLAINTEXT"}


def test_mutual_tls_passes_the_client_certificate() -> None:
    options = KafkaSettings.from_env(Env({"KAFKA_SECURITY_PROTOCOL": "ssl", "KAFKA_SSL_CERTFILE": "/c.pem",
                                          "KAFKA_SSL_KEYFILE": "/k.pem"})).client_options()

    assert (options["security_protocol"], options["ssl_certfile"], options["ssl_keyfile"], options["ssl_cafile"]) == (
        "SSL", "/c.pem", "/k.pem", None)


@pytest.mark.parametrize("environ", [
    {"KAFKA_SECURITY_PROTOCOL": "TLS"},
    {**SASL_SSL, "KAFKA_SASL_MECHANISM": "GSSAPI"},
    {**SASL_SSL, "KAFKA_SASL_PASSWORD": ""},
    {"KAFKA_SASL_USERNAME": "order", "KAFKA_SASL_PASSWORD": "x"},   # SASL credentials but no SASL protocol
    {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "o",
     "KAFKA_SASL_PASSWORD": "x", "KAFKA_SSL_CAFILE": "/ca.pem"},     # a CA that would never be used
    {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTFILE": "/c.pem"},
], ids=["protocol", "mechanism", "no-password", "sasl-without-protocol", "ca-without-tls", "cert-without-key"])
def test_an_incomplete_or_contradictory_configuration_is_refused_at_start(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        KafkaSettings.from_env(Env(environ))


def test_the_producer_and_the_consumer_get_the_security_options(monkeypatch: pytest.MonkeyPatch) -> None:
    made: dict[str, dict[str, Any]] = {}
    monkeypatch.setattr(kafka, "KafkaProducer", lambda **kwargs: made.setdefault("producer", kwargs))
    monkeypatch.setattr(kafka, "KafkaConsumer", lambda *topics, **kwargs: made.setdefault("consumer", kwargs))
    settings = KafkaSettings.from_env(Env(SASL_SSL))

    kafka.make_producer(settings)
    kafka.make_consumer(settings, "analytics", ["order-paid"])

    for role in ("producer", "consumer"):
        assert settings.client_options().items() <= made[role].items(), role
