"""Access-token verification (pinned to EdDSA) and the caller of the current request."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import jwt
import pytest

from services.common.auth import Caller, TokenVerifier, bearer_token, caller_var, require_caller
from services.common.errors import DomainError, ErrorKind, Forbidden, Unauthenticated


def refusal(verifier: TokenVerifier, token: str) -> tuple[ErrorKind, str]:
    with pytest.raises(DomainError) as raised:
        verifier.verify(token)
    return raised.value.kind, raised.value.code


INVALID = (ErrorKind.UNAUTHENTICATED, "TOKEN_INVALID")


def test_valid_token_gives_the_caller_it_was_issued_for(verifier: TokenVerifier, mint) -> None:
    token = mint(user_id=42, roles="operator,admin")

    caller = verifier.verify(token)

    assert (caller.user_id, caller.roles) == (42, frozenset({"admin", "operator"}))


def test_caller_token_id_is_the_jti_claim(verifier: TokenVerifier, mint) -> None:
    token = mint()

    assert verifier.verify(token).token_id == jwt.decode(token, options={"verify_signature": False})["jti"]


def test_token_without_roles_claim_is_a_shopper(verifier: TokenVerifier, sign) -> None:
    assert verifier.verify(sign(roles=None)).roles == frozenset()


def test_expired_token_is_refused_as_expired(verifier: TokenVerifier, mint) -> None:
    token = mint(issued_ago=timedelta(seconds=900 + 60))

    assert refusal(verifier, token) == (ErrorKind.UNAUTHENTICATED, "TOKEN_EXPIRED")


def test_token_expired_within_the_leeway_is_still_accepted(verifier: TokenVerifier, mint) -> None:
    token = mint(user_id=7, issued_ago=timedelta(seconds=900 + 3))

    assert verifier.verify(token).user_id == 7


def test_tampered_signature_is_refused(verifier: TokenVerifier, mint) -> None:
    header, payload, signature = mint().split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]

    assert refusal(verifier, f"{header}.{payload}.{flipped}") == INVALID


def test_payload_changed_to_claim_admin_is_refused(verifier: TokenVerifier, mint, tamper_payload) -> None:
    token = tamper_payload(mint(roles=""), roles=["admin"])

    assert refusal(verifier, token) == INVALID


def test_token_signed_by_another_key_is_refused(verifier: TokenVerifier, sign, other_private_pem: bytes) -> None:
    assert refusal(verifier, sign(signing_key=other_private_pem)) == INVALID


def test_token_signed_with_the_trusted_key_and_good_claims_is_accepted(verifier: TokenVerifier, sign) -> None:
    """The control for the refusals around it: only the one claim they change is wrong."""
    caller = verifier.verify(sign(sub="9", roles=["finance"]))

    assert (caller.user_id, caller.roles) == (9, frozenset({"finance"}))


def test_token_from_another_issuer_is_refused(verifier: TokenVerifier, sign) -> None:
    assert refusal(verifier, sign(iss="someone-else")) == INVALID


def test_token_for_another_audience_is_refused(verifier: TokenVerifier, sign) -> None:
    assert refusal(verifier, sign(aud="another-app")) == INVALID


def test_alg_none_token_is_refused(verifier: TokenVerifier, unsigned_token) -> None:
    assert refusal(verifier, unsigned_token(roles=["admin"])) == INVALID


def test_hs256_token_keyed_with_the_public_key_is_refused(verifier: TokenVerifier, hs256_with_public_key) -> None:
    assert refusal(verifier, hs256_with_public_key(roles=["admin"])) == INVALID


@pytest.mark.parametrize("claim", ["jti", "exp", "iat", "sub"])
def test_token_missing_a_required_claim_is_refused(verifier: TokenVerifier, sign, claim: str) -> None:
    assert refusal(verifier, sign(**{claim: None})) == INVALID


def test_token_whose_subject_is_not_a_user_id_is_refused(verifier: TokenVerifier, sign) -> None:
    assert refusal(verifier, sign(sub="alice")) == INVALID


def test_token_issued_in_the_future_is_refused(verifier: TokenVerifier, mint) -> None:
    assert refusal(verifier, mint(issued_ago=timedelta(minutes=-5))) == INVALID


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "a.b"])
def test_garbage_is_refused_as_invalid(verifier: TokenVerifier, token: str) -> None:
    assert refusal(verifier, token) == INVALID


# bearer_token

def test_no_authorization_header_means_no_token() -> None:
    assert (bearer_token(None), bearer_token("")) == (None, None)


@pytest.mark.parametrize("header", ["Bearer abc.def.ghi", "bearer abc.def.ghi", "Bearer   abc.def.ghi  "])
def test_bearer_token_is_taken_from_the_header(header: str) -> None:
    assert bearer_token(header) == "abc.def.ghi"


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "abc.def.ghi"])
def test_authorization_that_is_not_a_bearer_token_is_refused(header: str) -> None:
    with pytest.raises(Unauthenticated) as raised:
        bearer_token(header)

    assert raised.value.code == "TOKEN_INVALID"


# require_caller

@pytest.fixture
def as_caller() -> Iterator[Callable[[Caller | None], None]]:
    tokens = []

    def _set(caller: Caller | None) -> None:
        tokens.append(caller_var.set(caller))

    yield _set
    for token in reversed(tokens):
        caller_var.reset(token)


def test_require_caller_without_a_caller_asks_for_a_token(as_caller) -> None:
    as_caller(None)

    with pytest.raises(Unauthenticated) as raised:
        require_caller()

    assert raised.value.code == "AUTH_REQUIRED"


def test_require_caller_without_roles_accepts_any_caller(as_caller) -> None:
    shopper = Caller(user_id=5, roles=frozenset(), token_id="t")
    as_caller(shopper)

    assert require_caller() is shopper


def test_require_caller_accepts_one_of_the_roles(as_caller) -> None:
    operator = Caller(user_id=5, roles=frozenset({"operator"}), token_id="t")
    as_caller(operator)

    assert require_caller("admin", "operator") is operator


def test_require_caller_refuses_a_caller_without_the_roles(as_caller) -> None:
    as_caller(Caller(user_id=5, roles=frozenset({"finance"}), token_id="t"))

    with pytest.raises(Forbidden) as raised:
        require_caller("admin", "operator")

    assert raised.value.code == "FORBIDDEN"


def test_a_token_that_passed_is_not_checked_again_until_it_expires(public_pem: bytes, mint,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_000.0]
    verifier = TokenVerifier(public_pem, clock=lambda: now[0])
    decoded = []
    real_decode = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda *args, **kwargs: decoded.append(1) or real_decode(*args, **kwargs))
    token = mint(user_id=7)
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    decoded.clear()

    first, again = verifier.verify(token), verifier.verify(token)
    now[0] = expires + 10 + 1  # past the expiry and the leeway: the remembered answer no longer counts
    verifier.verify(token)  # (the real clock has not moved: the token itself still passes)

    assert (first, again.user_id, len(decoded)) == (again, 7, 2)


def test_a_refused_token_is_refused_every_time(verifier: TokenVerifier, mint) -> None:
    header, payload, signature = mint().split(".")
    flipped = f"{header}.{payload}.{signature[:10]}{'A' if signature[10] != 'A' else 'B'}{signature[11:]}"

    assert [refusal(verifier, flipped) for _ in range(2)] == [INVALID, INVALID]
