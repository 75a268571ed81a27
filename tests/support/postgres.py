"""A private PostgreSQL cluster for tests: initdb into a temp dir, a free loopback port, torn down after.

The Debian `postgresql` package provides the binaries (`.ci/run` installs it). As root,
initdb and the server run as the `postgres` user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from odin.devsuite import free_port


@dataclass(frozen=True)
class PostgresServer:
    """A running private cluster; `url(db)` gives a connection URL."""

    host: str
    port: int
    user: str
    data_dir: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"


def postgres_bin_dir() -> Path:
    """The newest installed server's bin directory; fails loudly when PostgreSQL is absent."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[4]))
    if not candidates:
        raise RuntimeError("PostgreSQL server binaries not found; install the Debian `postgresql` package")
    return Path(candidates[-1]).parent


def _as_owner(command: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *command] if owner else command


@contextmanager
def private_postgres() -> Iterator[PostgresServer]:
    bindir = postgres_bin_dir()
    owner = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="odin-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if owner:
        shutil.chown(root, owner)
        shutil.chown(sockets, owner)
    user = "odin"
    port = free_port()
    run = lambda cmd: subprocess.run(_as_owner(cmd, owner), check=True, capture_output=True)  # noqa: E731
    try:
        run([str(bindir / "initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8", "--no-sync"])
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
        run([str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "server.log"), "-w", "start"])
        yield PostgresServer("127.0.0.1", port, user, data)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(_as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], owner),
                           capture_output=True)
        time.sleep(0.05)
        shutil.rmtree(root, ignore_errors=True)
