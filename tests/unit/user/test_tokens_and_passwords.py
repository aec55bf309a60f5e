"""Access tokens as the user service signs them, SMS code hashes, refresh tokens, password hashing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from services.user.domain import User
from services.user.passwords import Passwords
from services.user.tokens import TokenIssuer, token_hash

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


@pytest.fixture
def staff() -> User:
    return User(phone="13800138000", created_at=NOW, roles="operator,admin", id=1001)


def unverified_claims(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_access_token_is_signed_with_eddsa(issuer: TokenIssuer, staff: User) -> None:
    assert jwt.get_unverified_header(issuer.access_token(staff, staff.role_set, NOW))["alg"] == "EdDSA"


def test_access_token_claims_say_who_for_whom_and_how_long(issuer: TokenIssuer, staff: User) -> None:
    claims = unverified_claims(issuer.access_token(staff, staff.role_set, NOW, session_id="family-1"))

    assert {k: v for k, v in claims.items() if k != "jti"} == {
        "iss": "minimall-user", "aud": "minimall", "sub": "1001", "iat": 1795680000, "exp": 1795680900,
        "sid": "family-1", "roles": ["admin", "operator"]}


def test_access_token_keeps_the_microseconds_it_was_issued_at(issuer: TokenIssuer, staff: User) -> None:
    claims = unverified_claims(issuer.access_token(staff, staff.role_set, NOW + timedelta(microseconds=250_001)))

    assert (claims["iat"], claims["exp"]) == (1795680000.250001, 1795680900)


def test_each_access_token_has_its_own_uuid(issuer: TokenIssuer, staff: User) -> None:
    first, second = (unverified_claims(issuer.access_token(staff, staff.role_set, NOW))["jti"] for _ in range(2))

    assert (uuid.UUID(first).version, first != second) == (4, True)


def test_token_issued_now_is_accepted_by_the_verifier(issuer: TokenIssuer, verifier, staff: User) -> None:
    caller = verifier.verify(issuer.access_token(staff, staff.role_set, datetime.now(UTC)))

    assert (caller.user_id, caller.roles) == (1001, frozenset({"admin", "operator"}))


def test_sms_code_hash_is_stable_for_the_same_phone_and_code(issuer: TokenIssuer) -> None:
    assert issuer.sms_code_hash("13800138000", "123456") == issuer.sms_code_hash("13800138000", "123456")


def test_sms_code_hash_differs_by_code_and_by_phone(issuer: TokenIssuer) -> None:
    hashes = {issuer.sms_code_hash("13800138000", "123456"), issuer.sms_code_hash("13800138000", "123457"),
              issuer.sms_code_hash("13800138001", "123456")}

    assert len(hashes) == 3


def test_sms_code_hash_depends_on_the_signing_key(issuer: TokenIssuer, other_private_pem: bytes) -> None:
    other = TokenIssuer(other_private_pem, access_ttl_seconds=1, refresh_ttl_seconds=1)

    assert issuer.sms_code_hash("13800138000", "123456") != other.sms_code_hash("13800138000", "123456")


def test_sms_code_hash_is_not_the_code_itself(issuer: TokenIssuer) -> None:
    digest = issuer.sms_code_hash("13800138000", "123456")

    assert (len(digest), "123456" in digest) == (64, False)


def test_refresh_tokens_are_random_and_long() -> None:
    tokens = {TokenIssuer.refresh_token() for _ in range(20)}

    assert (len(tokens), min(len(t) for t in tokens)) == (20, 43)


def test_refresh_token_is_stored_as_its_sha256() -> None:
    assert token_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# Passwords (argon2id; hashing is deliberately slow, so one hasher and one hash per module)

@pytest.fixture(scope="module")
def passwords() -> Passwords:
    return Passwords()


@pytest.fixture(scope="module")
def stored_hash(passwords: Passwords) -> str:
    return passwords.hash("abcd1234")


def test_password_hash_is_argon2id_and_not_the_password(stored_hash: str) -> None:
    assert (stored_hash.startswith("$argon2id$"), "abcd1234" in stored_hash) == (True, False)


def test_right_password_verifies(passwords: Passwords, stored_hash: str) -> None:
    assert passwords.verify(stored_hash, "abcd1234") is True


def test_wrong_password_does_not_verify(passwords: Passwords, stored_hash: str) -> None:
    assert passwords.verify(stored_hash, "abcd1235") is False


def test_account_without_a_password_never_verifies(passwords: Passwords) -> None:
    assert passwords.verify(None, "not-a-real-password-0") is False


def test_corrupt_stored_hash_does_not_verify(passwords: Passwords) -> None:
    assert passwords.verify("not-a-hash", "abcd1234") is False


def test_fresh_hash_needs_no_rehash(passwords: Passwords, stored_hash: str) -> None:
    assert passwords.needs_rehash(stored_hash) is False
