"""Real-name verification: the provider check (a Protocol the adapters implement) and encryption of what is kept."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from services.common.config import ConfigError

if TYPE_CHECKING:  # config imports this module (IdentityKeys)
    from services.user.config import RealNameSettings

NONCE_BYTES = 12
KEY_BYTES = 32  # AES-256


class IdentityChecker(Protocol):
    """A real-name provider: does this name belong to this ID number? (Unavailable when it cannot say.)"""

    def check(self, real_name: str, id_number: str) -> bool: ...


class FormatOnlyIdentityChecker:
    """DEV/TEST ONLY: accepts every name and number that passed the format checks, asking no one.

    Config refuses it outside MINIMALL_ENV=dev|test (IDENTITY_PROVIDER=format-only).
    """

    def check(self, real_name: str, id_number: str) -> bool:
        return True


def make_identity_checker(provider: str, realname: RealNameSettings | None = None) -> IdentityChecker:
    """The checker IDENTITY_PROVIDER names (config.IDENTITY_PROVIDERS lists them)."""
    if provider == "format-only":
        return FormatOnlyIdentityChecker()
    if provider == "faceid":
        if realname is None:
            raise ConfigError("IDENTITY_PROVIDER=faceid needs REALNAME_SECRET_ID and REALNAME_SECRET_KEY")
        from services.user.realname import RealNameChecker  # realname -> config -> identity: import when chosen

        return RealNameChecker(realname)
    raise ConfigError(f"unknown IDENTITY_PROVIDER {provider!r}")


@dataclass(frozen=True)
class IdentityKeys:
    """AES-256 keys by id (the first is the active one, the others only decrypt) and the fingerprint key."""

    keys: Mapping[str, bytes]
    active_key_id: str
    fingerprint_key: bytes

    @classmethod
    def parse(cls, keys_spec: str, fingerprint_key_b64: str) -> IdentityKeys:
        """From IDENTITY_KEYS="kid1:base64key,kid0:base64key" and IDENTITY_FINGERPRINT_KEY=base64."""
        keys: dict[str, bytes] = {}
        for item in (part.strip() for part in keys_spec.split(",") if part.strip()):
            key_id, _, encoded = item.partition(":")
            key = _decode_key("IDENTITY_KEYS", encoded)
            if not key_id or len(key_id) > 32 or key_id in keys or len(key) != KEY_BYTES:
                raise ConfigError(f"IDENTITY_KEYS: each entry is a unique id (<= 32 chars) and a base64 "
                                  f"{KEY_BYTES}-byte key, 'kid:base64'")
            keys[key_id] = key
        if not keys:
            raise ConfigError("IDENTITY_KEYS must list at least one key, 'kid:base64key'")
        fingerprint_key = _decode_key("IDENTITY_FINGERPRINT_KEY", fingerprint_key_b64)
        if len(fingerprint_key) < KEY_BYTES:
            raise ConfigError(f"IDENTITY_FINGERPRINT_KEY must be at least {KEY_BYTES} bytes, base64")
        return cls(keys=keys, active_key_id=next(iter(keys)), fingerprint_key=fingerprint_key)

    @classmethod
    def derived_for_dev(cls, secret: bytes) -> IdentityKeys:
        """DEV/TEST ONLY: keys derived from another local secret, so `make run` needs no extra setup."""
        def derive(label: bytes) -> bytes:
            return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=label).derive(secret)
        return cls(keys={"dev": derive(b"minimall-identity-aes")}, active_key_id="dev",
                   fingerprint_key=derive(b"minimall-identity-fingerprint"))


def _decode_key(name: str, encoded: str) -> bytes:
    try:
        return base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{name}: a key is not valid base64") from None


class IdentityVault:
    """AES-GCM encryption of names and ID numbers (the row's user id is authenticated data), and fingerprints."""

    def __init__(self, keys: IdentityKeys) -> None:
        self._keys = keys
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.keys.items()}

    @property
    def active_key_id(self) -> str:
        return self._keys.active_key_id

    def encrypt(self, plaintext: str, *, context: str) -> bytes:
        """nonce || ciphertext+tag under the active key; `context` (e.g. "user:7:id_number") must match to decrypt."""
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._ciphers[self.active_key_id].encrypt(nonce, plaintext.encode(), context.encode())

    def decrypt(self, key_id: str, blob: bytes, *, context: str) -> str:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise KeyError(f"identity key {key_id!r} is not configured (IDENTITY_KEYS); it is needed to decrypt")
        return cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context.encode()).decode()

    def fingerprint(self, id_number: str) -> str:
        """A keyed hash of the ID number: equal numbers match, and the table alone reveals none."""
        return hmac.new(self._keys.fingerprint_key, id_number.encode(), hashlib.sha256).hexdigest()

    def phone_fingerprint(self, phone: str) -> str:
        """A keyed hash of a mobile number (11 digits, as validated): the lookup audit tells searched phones apart
        without holding any. Labelled, so it never equals an ID number's fingerprint under the same key."""
        return hmac.new(self._keys.fingerprint_key, f"phone:{phone}".encode(), hashlib.sha256).hexdigest()
