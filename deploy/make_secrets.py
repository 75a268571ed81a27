#!/usr/bin/env python3
"""Makes the Secrets the manifests reference, as YAML on stdout for `kubectl apply -f -` (nothing is written to disk).

    python deploy/make_secrets.py --dev | kubectl apply -f -
        odin-postgres (a random password), odin-database (URLs of the in-cluster PostgreSQL), odin-auth-keys
        (a new signing key), odin-admin (a random bootstrap password), odin-service-token (empty: the auth
        service writes the service robot's expiring token into it and renews it)
    python deploy/make_secrets.py --external --auth-database-url URL --scheduler-database-url URL | kubectl apply -f -
        the same for an external PostgreSQL (URLs may also come from ODIN_DEPLOY_AUTH_DATABASE_URL and
        ODIN_DEPLOY_SCHEDULER_DATABASE_URL, which keeps passwords out of the shell history)
    kubectl -n odin get secret odin-auth-keys -o json |
        python deploy/make_secrets.py --rotate-auth-keys | kubectl apply -f -
        a new signing key (the old one keeps verifying until the tokens it signed have expired)

Read the admin password back with
    kubectl -n odin get secret odin-admin -o jsonpath='{.data.password}' | base64 -d
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from odin_auth.keyring import KeyRing

NAMESPACE = "odin"
DEV_DATABASE_HOST = "odin-postgres.odin.svc.cluster.local:5432"
# Retired keys stay in the JWKS this long after a rotation: longer than an access token lives (10 minutes by
# default) plus the time the kubelet takes to deliver the updated Secret to every pod.
RETAIN_SECONDS = 3600.0


def secret(name: str, data: dict[str, bytes], namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "odin"}},
        "data": {key: base64.b64encode(value).decode() for key, value in sorted(data.items())},
    }


def auth_keys(keys_dir: Path | None = None, rotate: bool = False) -> dict[str, bytes]:
    """The files of an auth keyring (keyring.json and one PEM per key): new, or `keys_dir`'s after a rotation."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "keys"
        if keys_dir is not None:
            path.mkdir(mode=0o700)
            for source in keys_dir.iterdir():
                (path / source.name).write_bytes(source.read_bytes())
        ring = KeyRing(path, retain_seconds=RETAIN_SECONDS)
        if rotate:
            ring.rotate()
        else:
            ring.signing_key()  # creates the first key when there is none
        return {item.name: item.read_bytes() for item in path.iterdir() if not item.name.startswith(".")}


def rotated_keys_secret(existing: dict[str, Any]) -> dict[str, Any]:
    """The Secret odin-auth-keys after one rotation, from the current one (`kubectl get secret -o json`)."""
    with tempfile.TemporaryDirectory() as scratch:
        keys_dir = Path(scratch)
        for name, value in existing.get("data", {}).items():
            (keys_dir / name).write_bytes(base64.b64decode(value))
        data = auth_keys(keys_dir, rotate=True)
    metadata = existing["metadata"]
    return secret(metadata["name"], data, metadata.get("namespace", NAMESPACE))


def suite_secrets(auth_url: str, scheduler_url: str, namespace: str) -> list[dict[str, Any]]:
    return [
        secret("odin-database", {"auth-url": auth_url.encode(), "scheduler-url": scheduler_url.encode()}, namespace),
        secret("odin-auth-keys", auth_keys(), namespace),
        secret("odin-admin", {"password": secrets.token_urlsafe(18).encode()}, namespace),
        # Empty: the auth service creates the service robot and keeps its expiring token here (odin_auth.robot).
        secret("odin-service-token", {}, namespace),
    ]


def dev_secrets(namespace: str) -> list[dict[str, Any]]:
    password = secrets.token_urlsafe(24)
    base = f"postgresql://odin:{password}@{DEV_DATABASE_HOST}"
    return [secret("odin-postgres", {"password": password.encode()}, namespace),
            *suite_secrets(f"{base}/odin_auth", f"{base}/odin_scheduler", namespace)]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--namespace", default=NAMESPACE, help="the suite's namespace (default odin)")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dev", action="store_true", help="secrets for the dev overlay (in-cluster PostgreSQL)")
    mode.add_argument("--external", action="store_true", help="secrets for an external PostgreSQL (the URLs below)")
    mode.add_argument("--rotate-auth-keys", action="store_true", help="read odin-auth-keys (JSON) on stdin, rotate")
    parser.add_argument("--auth-database-url", default=os.environ.get("ODIN_DEPLOY_AUTH_DATABASE_URL", ""))
    parser.add_argument("--scheduler-database-url", default=os.environ.get("ODIN_DEPLOY_SCHEDULER_DATABASE_URL", ""))
    return parser.parse_args(argv)


def build(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.dev:
        return dev_secrets(args.namespace)
    if args.rotate_auth_keys:
        return [rotated_keys_secret(json.load(sys.stdin))]
    for flag, url in (("--auth-database-url", args.auth_database_url),
                      ("--scheduler-database-url", args.scheduler_database_url)):
        if not url.startswith("postgresql://"):
            raise SystemExit(f"make_secrets: {flag} must be a postgresql:// URL")
    return suite_secrets(args.auth_database_url, args.scheduler_database_url, args.namespace)


def main(argv: list[str] | None = None) -> int:
    documents = build(parse_args(argv))
    sys.stdout.write(yaml.safe_dump_all(documents, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
