"""The Ed25519 keys that sign access tokens, kept as PEM files under `keys_path`, and their rotation.

Layout: `<kid>.pem` (PKCS#8, mode 0600) per key and `keyring.json` naming the signing key and
when each other key was retired. Rotation without downtime: the new key signs at once, the
retired ones stay in the JWKS until every token they signed has expired (`retain_seconds`),
then they are deleted. `odin-auth rotate-keys` rotates on disk; a running service notices the
changed `keyring.json` on its next use.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from odin.runtime.tokens import key_id

MANIFEST = "keyring.json"


class KeyRing:
    """Signing key and verification keys; thread-safe, reloads when `keyring.json` changes."""

    def __init__(self, path: Path, *, retain_seconds: float, rotate_after_seconds: float = 0.0) -> None:
        self.path = path
        self.retain_seconds = retain_seconds
        self.rotate_after_seconds = rotate_after_seconds
        self._lock = threading.Lock()
        self._stamp: int | None = None
        self._manifest: dict[str, Any] = {}
        self._keys: dict[str, Ed25519PrivateKey] = {}

    def signing_key(self, now: float | None = None) -> tuple[str, Ed25519PrivateKey]:
        now = time.time() if now is None else now
        with self._lock:
            self._load()
            kid = self._manifest["signing"]
            created = float(self._manifest["keys"][kid]["created"])
            if self.rotate_after_seconds and now - created > self.rotate_after_seconds:
                kid = self._rotate(now)
            return kid, self._keys[kid]

    def public_keys(self, now: float | None = None) -> list[tuple[str, Ed25519PublicKey]]:
        """The signing key first, then retired keys whose tokens may still be valid."""
        now = time.time() if now is None else now
        with self._lock:
            self._load()
            signing = self._manifest["signing"]
            kids = [signing] + [k for k, meta in self._manifest["keys"].items()
                                if k != signing and now - float(meta["retired"] or now) <= self.retain_seconds]
            return [(kid, self._keys[kid].public_key()) for kid in kids]

    def rotate(self, now: float | None = None) -> str:
        """Makes a new signing key; returns its kid."""
        with self._lock:
            self._load()
            return self._rotate(time.time() if now is None else now)

    def _rotate(self, now: float) -> str:
        key = Ed25519PrivateKey.generate()
        kid = key_id(key.public_key())
        _write_private(self.path / f"{kid}.pem", key)
        keys = self._manifest["keys"]
        keys[self._manifest["signing"]]["retired"] = now
        keys[kid] = {"created": now, "retired": None}
        for old, meta in list(keys.items()):
            if meta["retired"] is not None and now - float(meta["retired"]) > self.retain_seconds:
                del keys[old]
                (self.path / f"{old}.pem").unlink(missing_ok=True)
        self._manifest["signing"] = kid
        self._save()
        self._stamp = None
        self._load()
        return kid

    def _load(self) -> None:
        manifest = self.path / MANIFEST
        if not manifest.exists():
            self._create(time.time())
        stamp = manifest.stat().st_mtime_ns
        if stamp == self._stamp:
            return
        self._manifest = json.loads(manifest.read_text())
        self._keys = {kid: _read_private(self.path / f"{kid}.pem") for kid in self._manifest["keys"]}
        self._stamp = stamp

    def _create(self, now: float) -> None:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Ed25519PrivateKey.generate()
        kid = key_id(key.public_key())
        _write_private(self.path / f"{kid}.pem", key)
        self._manifest = {"signing": kid, "keys": {kid: {"created": now, "retired": None}}}
        self._save()

    def _save(self) -> None:
        temporary = self.path / f".{MANIFEST}.{os.getpid()}"
        temporary.write_text(json.dumps(self._manifest, indent=2))
        temporary.replace(self.path / MANIFEST)


def _write_private(path: Path, key: Ed25519PrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)


def _read_private(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key
