"""Service tokens: minted with the user service's key, accepted only by gRPC servers, only as the service they name."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from services.common.auth import (
    SERVICE_AUDIENCE,
    Caller,
    TokenVerifier,
    caller_var,
    key_id,
    require_caller,
    require_service,
    service_identity,
)
from services.common.config import ConfigError, ServiceSettings
from services.common.errors import DomainError, ErrorKind, Forbidden, Unauthenticated
from services.common.runtime import main
from services.user.__main__ import MIGRATIONS, add_arguments, build_app, service_token_command
from services.user.tokens import mint_service_token
from tests.fixtures.keys import JwtKeys
from tests.unit.conftest import good_claims

INVALID = (ErrorKind.UNAUTHENTICATED, "TOKEN_INVALID")


@pytest.fixture(scope="module")
def services_verifier(public_pem: bytes) -> TokenVerifier:
    """What every gRPC server verifies with (services/common/grpc_server.py create_server)."""
    return TokenVerifier(public_pem, accept_services=True)


@pytest.fixture
def service_claims() -> Callable[..., dict[str, Any]]:
    """service_claims(**overrides): the claims of the order service's token; an override of None removes a claim."""
    def _claims(**overrides: Any) -> dict[str, Any]:
        return good_claims(**{"aud": SERVICE_AUDIENCE, "sub": "service:order", "svc": "order", "roles": ["service"],
                              **overrides})
    return _claims


def signed(private_pem: bytes, claims: dict[str, Any]) -> str:
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, private_pem, algorithm="EdDSA")


def refusal(verifier: TokenVerifier, token: str) -> tuple[ErrorKind, str]:
    with pytest.raises(DomainError) as raised:
        verifier.verify(token)
    return raised.value.kind, raised.value.code


def order_token(private_pem: bytes, *, issued_ago: timedelta = timedelta(0), ttl: timedelta = timedelta(days=1)) -> str:
    return mint_service_token(private_pem, "order", now=datetime.now(UTC) - issued_ago, ttl=ttl)


# -- minting and verifying ------------------------------------------------------------------------

def test_a_minted_service_token_is_the_service_calling_as_itself(services_verifier: TokenVerifier,
                                                                  private_pem: bytes) -> None:
    token = order_token(private_pem)

    caller = services_verifier.verify(token)

    assert (caller.service, caller.is_service, caller.user_id, caller.roles) == (
        "order", True, 0, frozenset({"service"}))
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["iss"], claims["aud"], claims["sub"], claims["svc"], claims["roles"]) == (
        "minimall-user", SERVICE_AUDIENCE, "service:order", "order", ["service"])


def test_a_service_token_names_the_signing_key_like_access_tokens_do(private_pem: bytes, public_pem: bytes) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    assert jwt.get_unverified_header(order_token(private_pem))["kid"] == key_id(load_pem_public_key(public_pem))


def test_the_gateway_refuses_a_service_token(verifier: TokenVerifier, private_pem: bytes) -> None:
    """The gateway's verifier (users only): a leaked service token opens no REST route."""
    assert refusal(verifier, order_token(private_pem)) == INVALID


def test_a_user_token_still_passes_where_services_are_accepted(services_verifier: TokenVerifier, mint) -> None:
    caller = services_verifier.verify(mint(user_id=42, roles="finance"))

    assert (caller.user_id, caller.roles, caller.is_service) == (42, frozenset({"finance"}), False)


def test_an_expired_service_token_is_refused_as_expired(services_verifier: TokenVerifier, private_pem: bytes) -> None:
    token = order_token(private_pem, issued_ago=timedelta(days=2), ttl=timedelta(days=1))

    assert refusal(services_verifier, token) == (ErrorKind.UNAUTHENTICATED, "TOKEN_EXPIRED")


@pytest.mark.parametrize("audience", ["minimall", "someone-else", ["minimall", SERVICE_AUDIENCE]])
def test_a_service_token_for_another_audience_is_refused(services_verifier: TokenVerifier, private_pem: bytes,
                                                         service_claims: Callable[..., dict[str, Any]],
                                                         audience: object) -> None:
    assert refusal(services_verifier, signed(private_pem, service_claims(aud=audience))) == INVALID


def test_the_control_a_hand_signed_service_token_with_good_claims_is_accepted(
        services_verifier: TokenVerifier, private_pem: bytes, service_claims: Callable[..., dict[str, Any]]) -> None:
    """The refusals around it change one claim each of these."""
    assert services_verifier.verify(signed(private_pem, service_claims())).service == "order"


@pytest.mark.parametrize("overrides", [
    {"roles": ["service"]},
    {"roles": ["service", "admin"]},
    {"svc": "order"},
], ids=["role service", "role service and admin", "svc claim"])
def test_a_shopper_token_claiming_to_be_a_service_is_refused(services_verifier: TokenVerifier, sign,
                                                             overrides: dict[str, Any]) -> None:
    """Signed with the real key, audience of users' tokens: no user token may carry a service's marks."""
    assert refusal(services_verifier, sign(**overrides)) == INVALID


@pytest.mark.parametrize("overrides", [
    {"svc": "payments", "sub": "service:payments"},
    {"svc": "gateway", "sub": "service:gateway"},
    {"svc": None},
    {"svc": "product"},
    {"sub": "42"},
    {"roles": ["service", "admin"]},
    {"roles": ["admin"]},
    {"roles": None},
], ids=["unknown svc", "gateway is no service", "no svc", "svc and sub disagree", "user subject", "extra role",
        "staff role", "no role"])
def test_a_service_token_that_is_not_exactly_one_known_service_is_refused(
        services_verifier: TokenVerifier, private_pem: bytes, service_claims: Callable[..., dict[str, Any]],
        overrides: dict[str, Any]) -> None:
    assert refusal(services_verifier, signed(private_pem, service_claims(**overrides))) == INVALID


def test_a_service_token_signed_by_another_key_is_refused(services_verifier: TokenVerifier,
                                                          other_private_pem: bytes) -> None:
    assert refusal(services_verifier, order_token(other_private_pem)) == INVALID


@pytest.mark.parametrize(("service", "ttl"), [("payments", timedelta(days=1)), ("gateway", timedelta(days=1)),
                                              ("order", timedelta(0))])
def test_minting_refuses_an_unknown_service_or_a_lifetime_of_nothing(private_pem: bytes, service: str,
                                                                     ttl: timedelta) -> None:
    with pytest.raises(ValueError):
        mint_service_token(private_pem, service, now=datetime.now(UTC), ttl=ttl)


# -- who may call what ----------------------------------------------------------------------------

ORDER = Caller(user_id=0, roles=frozenset({"service"}), token_id="s1", service="order")
PRODUCT = Caller(user_id=0, roles=frozenset({"service"}), token_id="s2", service="product")
SHOPPER = Caller(user_id=42, roles=frozenset(), token_id="u1")
ADMIN = Caller(user_id=1, roles=frozenset({"admin"}), token_id="u2")


@pytest.fixture
def calling() -> Iterator[Callable[[Caller | None], None]]:
    tokens = []

    def _as(caller: Caller | None) -> None:
        tokens.append(caller_var.set(caller))
    yield _as
    for token in reversed(tokens):
        caller_var.reset(token)


def test_require_service_lets_the_named_service_through(calling) -> None:
    calling(ORDER)

    assert require_service("order") is ORDER


@pytest.mark.parametrize("caller", [SHOPPER, ADMIN, PRODUCT], ids=["shopper", "admin", "another service"])
def test_require_service_forbids_users_and_other_services(calling, caller: Caller) -> None:
    calling(caller)

    with pytest.raises(Forbidden):
        require_service("order")


def test_require_service_without_a_token_is_unauthenticated(calling) -> None:
    calling(None)

    with pytest.raises(Unauthenticated):
        require_service("order")


def test_a_service_is_never_taken_for_a_user(calling) -> None:
    """RPCs acting for "the caller" (user_id) must not act for user 0 when a service calls them."""
    calling(ORDER)

    with pytest.raises(Forbidden):
        require_caller()


@pytest.mark.parametrize(("caller", "allowed"), [(ORDER, True), (ADMIN, True), (SHOPPER, False), (PRODUCT, False)],
                         ids=["order service", "staff", "shopper", "another service"])
def test_require_caller_accepts_the_services_it_names_as_well_as_the_roles(calling, caller: Caller,
                                                                           allowed: bool) -> None:
    calling(caller)

    try:
        require_caller("admin", services=("order",))
        outcome = True
    except Forbidden:
        outcome = False

    assert outcome is allowed


# -- the service's own token at start-up -----------------------------------------------------------

def identity(jwt_keys: JwtKeys, service: str, token: str | None) -> str:
    """service_identity of `service` started with `token` as SERVICE_TOKEN (None: unset)."""
    environ = {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path)} | ({"SERVICE_TOKEN": token} if token else {})
    return service_identity(ServiceSettings.from_env(service, environ), environ)


def test_a_service_starts_with_its_own_valid_token_which_its_settings_never_hold(jwt_keys: JwtKeys) -> None:
    token = order_token(jwt_keys.private_pem, ttl=timedelta(days=90))
    environ = {"JWT_PUBLIC_KEY_FILE": str(jwt_keys.public_path), "SERVICE_TOKEN": token}
    own = ServiceSettings.from_env("order", environ)

    assert service_identity(own, environ) == token
    assert token not in repr(own)


@pytest.mark.parametrize("case", ["missing", "another service's", "expired", "another key's", "a user's"])
def test_a_service_refuses_to_start_without_a_valid_token_of_its_own(jwt_keys: JwtKeys, other_private_pem: bytes,
                                                                    mint, case: str) -> None:
    token = {"missing": None,
             "another service's": mint_service_token(jwt_keys.private_pem, "product", now=datetime.now(UTC),
                                                     ttl=timedelta(days=1)),
             "expired": order_token(jwt_keys.private_pem, issued_ago=timedelta(days=2), ttl=timedelta(days=1)),
             "another key's": order_token(other_private_pem),
             "a user's": mint(user_id=1, roles="admin")}[case]

    with pytest.raises(ConfigError) as refused:
        identity(jwt_keys, "order", token)

    assert "python -m services.user service-token --service order" in str(refused.value)
    if token:
        assert token not in str(refused.value)


def test_a_token_about_to_expire_is_warned_about_without_showing_it(jwt_keys: JwtKeys,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    token = order_token(jwt_keys.private_pem, ttl=timedelta(days=3))

    with caplog.at_level(logging.WARNING):
        identity(jwt_keys, "order", token)

    assert "SERVICE_TOKEN expires" in caplog.text and token not in caplog.text


# -- `python -m services.user service-token` ------------------------------------------------------

def run_command(monkeypatch: pytest.MonkeyPatch, jwt_keys: JwtKeys, *argv: str) -> int:
    monkeypatch.setenv("JWT_PRIVATE_KEY_FILE", str(jwt_keys.private_path))
    monkeypatch.setenv("JWT_PUBLIC_KEY_FILE", str(jwt_keys.public_path))
    return main("user", build_app, MIGRATIONS, argv=["service-token", *argv],
                commands={"service-token": service_token_command}, add_arguments=add_arguments)


def test_the_command_prints_a_service_token_and_logs_nothing_of_it(
        monkeypatch: pytest.MonkeyPatch, jwt_keys: JwtKeys, services_verifier: TokenVerifier,
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        assert run_command(monkeypatch, jwt_keys, "--service", "order", "--ttl-days", "30") == 0
    token = capsys.readouterr().out.strip()

    assert services_verifier.verify(token).service == "order"
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30)).timestamp()) < 60
    assert token not in caplog.text


@pytest.mark.parametrize("argv", [("--service", "payments"), ("--service", "order", "--ttl-days", "0"), ()])
def test_the_command_refuses_an_unknown_service_or_lifetime(monkeypatch: pytest.MonkeyPatch, jwt_keys: JwtKeys,
                                                            capsys: pytest.CaptureFixture[str],
                                                            argv: tuple[str, ...]) -> None:
    assert run_command(monkeypatch, jwt_keys, *argv) == 2
    assert capsys.readouterr().out == ""
