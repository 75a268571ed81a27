"""Password hashing with argon2id, timing-safe checks and a dummy hash for unknown users.

Defaults are OWASP's argon2id baseline (19 MiB memory, 2 iterations, 1 lane): about 20-40 ms
per hash on one core. Hashes record their parameters, so raising them later re-hashes each
password at its owner's next login.
"""

from __future__ import annotations

import dataclasses
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from odin.runtime.errors import InvalidArgument

MIN_LENGTH, MAX_LENGTH = 12, 256


@dataclasses.dataclass(frozen=True)
class Argon2Parameters:
    memory_kib: int = 19 * 1024
    time_cost: int = 2
    parallelism: int = 1


class Passwords:
    """Hashes and checks passwords; `check` costs the same whether or not the user exists."""

    def __init__(self, params: Argon2Parameters = Argon2Parameters()) -> None:
        self.hasher = PasswordHasher(time_cost=params.time_cost, memory_cost=params.memory_kib,
                                     parallelism=params.parallelism, hash_len=32, salt_len=16, type=Type.ID)
        # Checked against when the user does not exist, so that answer takes as long as a real one.
        self._dummy = self.hasher.hash(secrets.token_urlsafe(24))

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def check(self, stored_hash: str | None, password: str) -> bool:
        """True when `password` matches; with no stored hash it burns the same time and says False."""
        try:
            return bool(self.hasher.verify(stored_hash or self._dummy, password)) and stored_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return bool(self.hasher.check_needs_rehash(stored_hash))


def validate_new_password(password: str, field: str) -> None:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise InvalidArgument.field(field, f"must be {MIN_LENGTH} to {MAX_LENGTH} characters long")
