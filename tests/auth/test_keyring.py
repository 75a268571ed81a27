"""Signing keys on disk: created once with mode 0600, rotated, retired keys dropped after their tokens expire."""

from __future__ import annotations

import time
from pathlib import Path

from odin_auth.keyring import KeyRing


def test_rotation_keeps_old_keys_until_their_tokens_expire(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys", retain_seconds=600)
    first, _ = ring.signing_key(now=1000)
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "keys" / f"{first}.pem").stat().st_mode & 0o777 == 0o600
    second = ring.rotate(now=2000)
    assert ring.signing_key(now=2000)[0] == second
    assert [kid for kid, _ in ring.public_keys(now=2500)] == [second, first]
    assert [kid for kid, _ in ring.public_keys(now=2601)] == [second]
    third = ring.rotate(now=3000)  # rotating also deletes keys retired long ago
    assert not (tmp_path / "keys" / f"{first}.pem").exists()
    assert [kid for kid, _ in KeyRing(tmp_path / "keys", retain_seconds=600).public_keys(now=3001)] == [third, second]


def test_automatic_rotation_by_age(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys", retain_seconds=60, rotate_after_seconds=3600)
    first, _ = ring.signing_key()
    assert ring.signing_key()[0] == first
    later, _ = ring.signing_key(now=time.time() + 7200)
    assert later != first
