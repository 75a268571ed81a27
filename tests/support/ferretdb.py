"""A private FerretDB v1 (MongoDB wire protocol on PostgreSQL) for tests of the MongoDB store.

FerretDB runs on a free loopback port and keeps its data in a database of the session's private
PostgreSQL. The binary is built from its Go module by `tools/ferretdb/install.sh` into a cache
outside the repository; when it is missing the fixture FAILS with that command (never skips).
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from odin.devsuite import free_port
from support.postgres import PostgresServer

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "tools" / "ferretdb" / "install.sh"


@dataclass(frozen=True)
class FerretServer:
    """A running FerretDB; `url(db)` is a `mongodb://` URL of one (lazily created) database."""

    host: str
    port: int
    log: Path

    def url(self, database: str) -> str:
        return f"mongodb://{self.host}:{self.port}/{database}"


def ferretdb_binary() -> Path:
    """The cached FerretDB binary of the pinned version; raises with the install command when absent."""
    version = _pinned_version()
    root = Path(os.environ.get("ODIN_FERRETDB_TOOLS", Path.home() / ".cache" / "odin-tools" / "ferretdb"))
    binary = root / version / "bin" / "ferretdb"
    if not os.access(binary, os.X_OK):
        raise RuntimeError(f"FerretDB {version} is not installed at {binary}; run: {INSTALL.relative_to(REPO)}")
    return binary


def _pinned_version() -> str:
    for line in (INSTALL.parent / "version.env").read_text().splitlines():
        if line.startswith("FERRETDB_VERSION="):
            return line.split("=", 1)[1].strip()
    raise RuntimeError("tools/ferretdb/version.env names no FERRETDB_VERSION")


@contextmanager
def private_ferretdb(postgres: PostgresServer, database: str = "") -> Iterator[FerretServer]:
    """Starts FerretDB on 127.0.0.1 backed by `database` (created fresh; default: a new name) in `postgres`."""
    binary = ferretdb_binary()
    database = database or f"ferretdb_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(postgres.url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database}")  # type: ignore[arg-type]
        conn.execute(f"CREATE DATABASE {database}")  # type: ignore[arg-type]
    state = Path(tempfile.mkdtemp(prefix="odin-ferretdb-"))
    port = free_port()
    log = state / "ferretdb.log"
    command = [
        str(binary), "--handler=postgresql", f"--postgresql-url={postgres.url(database)}",
        f"--listen-addr=127.0.0.1:{port}", "--debug-addr=-", "--telemetry=disable", f"--state-dir={state}",
        "--log-level=WARN", "--mode=normal",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_listening(port, process, log)
        yield FerretServer("127.0.0.1", port, log)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(state, ignore_errors=True)


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"FerretDB exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"FerretDB did not listen on 127.0.0.1:{port} within {timeout}s:\n{log.read_text()[-2000:]}")


_databases = itertools.count()


@pytest.fixture(scope="session")
def ferretdb_server(postgres_server: PostgresServer) -> Iterator[FerretServer]:
    """One FerretDB for the test session, on the session's private PostgreSQL (import it into a conftest)."""
    try:
        ferretdb_binary()
    except RuntimeError as exc:
        pytest.fail(str(exc))  # a missing server fails loudly, never skips
    with private_ferretdb(postgres_server) as server:
        yield server


def new_mongo_database(server: FerretServer, prefix: str = "scheduler") -> str:
    """A `mongodb://` URL of a database no other test uses (created on first write)."""
    return server.url(f"{prefix}_{os.getpid()}_{next(_databases)}")
