"""Service registration and discovery: Consul when CONSUL_HTTP_ADDR is set, static addresses otherwise."""

from __future__ import annotations

import logging
import random
from urllib.parse import urlsplit

import consul
import requests

from services.common.config import ConfigError, Env, grpc_target

log = logging.getLogger(__name__)

# How long a Consul request may wait to connect, and then for an answer (py-consul's connections_timeout, its default
# made explicit); a blocking query's answer is waited for its `wait`, Consul's jitter of up to wait / 16 and this on
# top (runtime_config.RuntimeConfig.liveness_bound_seconds).
CONSUL_TIMEOUT_SECONDS = 30.0


class _HTTPClient(consul.std.HTTPClient):
    """py-consul's client, but connecting within CONSUL_TIMEOUT_SECONDS whatever the request: py-consul gives requests
    one number, which requests applies to the connect and to the answer each, so a blocking query's connect could
    take its whole wait and jitter too (a (connect, read) pair it cannot be given: it adds the wait to it)."""

    def timeout(self, params: object) -> tuple[float, float] | None:
        read = super().timeout(params)
        return None if read is None else (CONSUL_TIMEOUT_SECONDS, read)


class _Consul(consul.Consul):
    def http_connect(self, host: str, port: int, scheme: str, verify: bool | str = True,
                     cert: tuple[str, str] | None = None) -> _HTTPClient:
        return _HTTPClient(host, port, scheme, verify, cert, connections_timeout=self.connections_timeout)


class DiscoveryError(LookupError):
    """No address for a service: Consul is unreachable or knows no healthy instance."""


def consul_client(http_addr: str, env: Env) -> consul.Consul:
    """A py-consul client configured as the consul CLI would be from the same environment variables.

    CONSUL_HTTP_ADDR is "host:port" or "http(s)://host:port" (CONSUL_HTTP_SSL=true makes a bare
    one HTTPS); CONSUL_CACERT is the CA bundle that verifies Consul's certificate (the system's
    otherwise; verification is never turned off); CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY, given
    together, are the client certificate when Consul requires one (verify_incoming); CONSUL_HTTP_TOKEN
    is the ACL token.
    """
    default_scheme = "https" if env.bool("CONSUL_HTTP_SSL", False) else "http"
    parts = urlsplit(http_addr if "://" in http_addr else f"{default_scheme}://{http_addr}")
    client_cert, client_key = env.optional("CONSUL_CLIENT_CERT"), env.optional("CONSUL_CLIENT_KEY")
    if bool(client_cert) != bool(client_key):
        raise ConfigError("CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY go together: set both or neither")
    tls = parts.scheme == "https"
    if not tls and (client_cert or env.optional("CONSUL_CACERT")):
        raise ConfigError(f"CONSUL_CACERT / CONSUL_CLIENT_CERT need an https CONSUL_HTTP_ADDR, got {http_addr!r}")
    return _Consul(host=parts.hostname or "127.0.0.1", port=parts.port or 8500, scheme=parts.scheme,
                         token=env.optional("CONSUL_HTTP_TOKEN"), verify=env.optional("CONSUL_CACERT") or True,
                         cert=(client_cert, client_key) if client_cert else None,
                         connections_timeout=CONSUL_TIMEOUT_SECONDS)


class Discovery:
    """Finds a service's gRPC address and (un)registers this process's own server."""

    def __init__(self, consul_http_addr: str | None, env: Env | None = None) -> None:
        self.env = env or Env()
        self.consul = consul_client(consul_http_addr, self.env) if consul_http_addr else None

    def target(self, service: str) -> str:
        """"host:port" of a healthy instance: from Consul's passing instances, else the static address."""
        if self.consul is None:
            return grpc_target(self.env, service)
        try:
            _, instances = self.consul.health.service(service, passing=True)
        except (consul.ConsulException, requests.RequestException, OSError) as exc:
            raise DiscoveryError(f"Consul did not answer for {service}: {exc}") from exc
        if not instances:
            raise DiscoveryError(f"no healthy {service} instance registered in Consul")
        chosen = random.choice(instances)
        address = chosen["Service"]["Address"] or chosen["Node"]["Address"]
        return f"{address}:{chosen['Service']['Port']}"

    def register(self, service: str, host: str, port: int) -> str | None:
        """Register with a gRPC health check; returns the service id to deregister, or None without Consul."""
        if self.consul is None:
            return None
        service_id = f"{service}-{host}-{port}"
        self.consul.agent.service.register(
            service, service_id=service_id, address=host, port=port, tags=["grpc", "minimall"],
            check=consul.Check.grpc(f"{host}:{port}", interval="10s", deregister="1m"),
        )
        log.info("registered %s in Consul as %s", service, service_id)
        return service_id

    def deregister(self, service_id: str | None) -> None:
        if self.consul is not None and service_id:
            self.consul.agent.service.deregister(service_id)
            log.info("deregistered %s from Consul", service_id)
