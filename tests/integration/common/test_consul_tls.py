"""Consul over HTTPS with client certificates (verify_incoming), as the consul CLI's variables configure it."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest

from services.common.config import ConfigError, Env
from services.common.discovery import Discovery, DiscoveryError
from tests.fixtures.http import serving
from tests.fixtures.tls import Pki, make_pki
from tests.integration.common.test_discovery import FakeConsul

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_consul(pki: Pki) -> Iterator[FakeConsul]:
    """The fake Consul agent behind TLS that requires a client certificate signed by the test CA."""
    server = FakeConsul()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    context.verify_mode = ssl.CERT_REQUIRED
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with serving(server):
        yield server


def tls_env(pki: Pki, **overrides: str | None) -> Env:
    environ = {"CONSUL_CACERT": str(pki.ca), "CONSUL_CLIENT_CERT": str(pki.client_cert),
               "CONSUL_CLIENT_KEY": str(pki.client_key)} | overrides
    return Env({name: value for name, value in environ.items() if value is not None})


def test_with_the_ca_and_a_client_certificate_registration_and_discovery_work(tls_consul: FakeConsul, pki: Pki) -> None:
    discovery = Discovery(f"https://127.0.0.1:{tls_consul.server_port}", tls_env(pki))
    service_id = discovery.register("user", "10.1.2.3", 50051)
    tls_consul.passing.add(service_id or "")

    assert discovery.target("user") == "10.1.2.3:50051"


def test_consul_http_ssl_makes_a_bare_address_https(tls_consul: FakeConsul, pki: Pki) -> None:
    discovery = Discovery(f"127.0.0.1:{tls_consul.server_port}", tls_env(pki, CONSUL_HTTP_SSL="true"))

    assert discovery.register("user", "10.1.2.3", 50051) == "user-10.1.2.3-50051"


@pytest.mark.parametrize("missing", ["CONSUL_CACERT", "client certificate"])
def test_without_the_ca_or_the_client_certificate_nothing_is_exchanged(
        tls_consul: FakeConsul, pki: Pki, missing: str) -> None:
    env = (tls_env(pki, CONSUL_CACERT=None) if missing == "CONSUL_CACERT"
           else tls_env(pki, CONSUL_CLIENT_CERT=None, CONSUL_CLIENT_KEY=None))
    discovery = Discovery(f"https://127.0.0.1:{tls_consul.server_port}", env)

    with pytest.raises(DiscoveryError):
        discovery.target("user")
    assert tls_consul.requests == []


@pytest.mark.parametrize(("address", "environ"), [
    ("https://consul:8501", {"CONSUL_CLIENT_CERT": "/c.pem"}),  # a certificate without its key
    ("http://consul:8500", {"CONSUL_CACERT": "/ca.pem"}),       # TLS settings on a plain HTTP address
])
def test_half_a_tls_configuration_is_refused_at_start(address: str, environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Discovery(address, Env(environ))
