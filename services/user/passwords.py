"""Password hashing with argon2id."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP's argon2id configuration (Password Storage Cheat Sheet): 19 MiB, 2 passes, 1 lane. The
# library's default (64 MiB, 3 passes, 4 lanes) costs ~6x the CPU, so a login took ~0.5 s here
# and a handful of concurrent ones saturate a service replica. Hashes made with other parameters
# are upgraded (or downgraded) at the next successful login (needs_rehash).
OWASP_ARGON2ID = {"time_cost": 2, "memory_cost": 19 * 1024, "parallelism": 1}


class Passwords:
    def __init__(self) -> None:
        self._hasher = PasswordHasher(**OWASP_ARGON2ID)
        self._dummy_hash = self._hasher.hash("not-a-real-password-0")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when it matches; with no hash it still spends the time, so timing reveals no account."""
        try:
            return self._hasher.verify(password_hash or self._dummy_hash, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
