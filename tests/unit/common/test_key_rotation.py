"""Rotating the access-token key: tokens name their key (`kid`), verifiers accept the current and the previous one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from gateway.config import GatewaySettings
from services.common.auth import ALGORITHM, TokenVerifier, key_id
from services.common.config import ServiceSettings
from services.common.errors import Unauthenticated
from services.user.tokens import TokenIssuer
from tests.unit.conftest import good_claims, make_user


class Pair:
    def __init__(self) -> None:
        key = Ed25519PrivateKey.generate()
        self.private_pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        self.public_pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        self.kid = key_id(key.public_key())

    def token(self) -> str:
        issuer = TokenIssuer(self.private_pem, access_ttl_seconds=900, refresh_ttl_seconds=60)
        return issuer.access_token(make_user(7), frozenset(), datetime.now(UTC))


OLD, NEW, STRANGER = Pair(), Pair(), Pair()


def accepted(verifier: TokenVerifier, token: str) -> bool:
    try:
        return verifier.verify(token).user_id == 7
    except Unauthenticated as refused:
        assert refused.code == "TOKEN_INVALID"
        return False


def test_the_issuer_names_its_key_in_the_kid_header() -> None:
    assert jwt.get_unverified_header(NEW.token()) == {"alg": "EdDSA", "typ": "JWT", "kid": NEW.kid}
    assert len({OLD.kid, NEW.kid, STRANGER.kid}) == 3


def test_a_rotation_in_three_steps_never_refuses_a_token_signed_with_a_trusted_key() -> None:
    # 1. Every verifier learns the new key (current) and keeps the old one (previous); the user service still signs OLD.
    both = TokenVerifier(NEW.public_pem, previous_public_key_pem=OLD.public_pem)
    assert (accepted(both, OLD.token()), accepted(both, NEW.token())) == (True, True)
    # 2. The user service signs with NEW: old tokens stay valid until they expire.
    # 3. After the access-token lifetime the previous key is dropped: OLD tokens are refused.
    only_new = TokenVerifier(NEW.public_pem)
    assert (accepted(only_new, OLD.token()), accepted(only_new, NEW.token())) == (False, True)
    assert accepted(both, STRANGER.token()) is False


def test_a_kid_naming_a_trusted_key_does_not_let_another_key_sign() -> None:
    stranger_key = load_pem_private_key(STRANGER.private_pem, password=None)
    forged = jwt.encode(good_claims(sub="7"), stranger_key, algorithm=ALGORITHM,  # type: ignore[arg-type]
                        headers={"kid": NEW.kid})
    unknown = jwt.encode(good_claims(sub="7"), stranger_key, algorithm=ALGORITHM,  # type: ignore[arg-type]
                         headers={"kid": "0123456789abcdef"})
    verifier = TokenVerifier(NEW.public_pem, previous_public_key_pem=OLD.public_pem)

    assert (accepted(verifier, forged), accepted(verifier, unknown)) == (False, False)


def test_a_token_without_kid_is_tried_with_each_trusted_key() -> None:
    # Tokens issued before kids existed are still in flight when the first rotation starts.
    legacy = jwt.encode(good_claims(sub="7"), load_pem_private_key(OLD.private_pem, password=None),  # type: ignore[arg-type]
                        algorithm=ALGORITHM)
    assert "kid" not in jwt.get_unverified_header(legacy)

    assert accepted(TokenVerifier(NEW.public_pem, previous_public_key_pem=OLD.public_pem), legacy) is True
    assert accepted(TokenVerifier(NEW.public_pem), legacy) is False


@pytest.mark.parametrize(("previous", "expected"), [(None, None), ("missing.pem", None), ("previous.pem", OLD.public_pem)])
def test_the_previous_key_is_read_only_while_its_file_exists(tmp_path: Path, previous: str | None,
                                                              expected: bytes | None) -> None:
    (tmp_path / "current.pem").write_bytes(NEW.public_pem)
    (tmp_path / "previous.pem").write_bytes(OLD.public_pem)
    environ = {"JWT_PUBLIC_KEY_FILE": str(tmp_path / "current.pem")}
    if previous:
        environ["JWT_PREVIOUS_PUBLIC_KEY_FILE"] = str(tmp_path / previous)

    assert ServiceSettings.from_env("order", environ).jwt_previous_public_key_pem == expected


def test_the_gateway_reads_the_previous_key_too(tmp_path: Path) -> None:
    (tmp_path / "current.pem").write_bytes(NEW.public_pem)
    (tmp_path / "previous.pem").write_bytes(OLD.public_pem)

    settings = GatewaySettings.from_env({"JWT_PUBLIC_KEY_FILE": str(tmp_path / "current.pem"),
                                         "JWT_PREVIOUS_PUBLIC_KEY_FILE": str(tmp_path / "previous.pem")})

    assert (settings.jwt_public_key_pem, settings.jwt_previous_public_key_pem) == (NEW.public_pem, OLD.public_pem)
