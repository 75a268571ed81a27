"""The local suite behind `odin dev up|down|status`: every service as its own process on loopback.

State lives under one directory (default `~/.local/state/odin/dev`, or `$ODIN_HOME/dev`):
`suite.json` (addresses and pids), `logs/<service>.log`, SQLite files, the pipelines repository,
job working directories and the dev admin's generated password (mode 0600).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from odin.gateway import suite as gateway
from odin.gateway.process import GatewayError

LOOPBACK = "127.0.0.1"
DEV_ADMIN = "admin"


@dataclass(frozen=True)
class ServiceSpec:
    """How the suite starts one service."""

    name: str
    command: str
    env: Callable[[Path, Mapping[str, str]], dict[str, str]]

    @property
    def prefix(self) -> str:
        return "ODIN_" + self.name.upper().replace("-", "_")


def _auth_env(state: Path, addr: Mapping[str, str]) -> dict[str, str]:
    return {
        "ODIN_AUTH_STORE_URL": f"sqlite:///{state / 'auth.db'}",
        "ODIN_AUTH_KEYS_PATH": str(state / "keys"),
        "ODIN_AUTH_BOOTSTRAP_ADMIN_USERNAME": DEV_ADMIN,
        "ODIN_AUTH_BOOTSTRAP_ADMIN_PASSWORD_FILE": str(state / "admin-password"),
        "ODIN_AUTH_BOOTSTRAP_SERVICE_TOKEN_FILE": str(state / "service-token"),
        "ODIN_AUTH_REFLECT_SUITE": "true",  # the gateway routes grpc.reflection here
    }


def _pipelines_env(state: Path, addr: Mapping[str, str]) -> dict[str, str]:
    return {"ODIN_PIPELINES_REPO_PATH": str(state / "pipelines")}


def _scheduler_env(state: Path, addr: Mapping[str, str]) -> dict[str, str]:
    return {
        "ODIN_SCHEDULER_STORE_URL": f"sqlite:///{state / 'scheduler.db'}",
        "ODIN_SCHEDULER_RUN_PATH": str(state / "runs"),
        "ODIN_SCHEDULER_PIPELINES_ADDRESS": addr["pipelines"],
        "ODIN_SCHEDULER_EXECUTOR": "local",
    }


def _agent_env(state: Path, addr: Mapping[str, str]) -> dict[str, str]:
    return {}


def _midgard_env(state: Path, addr: Mapping[str, str]) -> dict[str, str]:
    return {"ODIN_MIDGARD_AGENTS": addr["midgard-agent"], "ODIN_MIDGARD_SCHEDULER_ADDRESS": addr["scheduler"]}


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("auth", "odin-auth", _auth_env),
    ServiceSpec("pipelines", "odin-pipelines", _pipelines_env),
    ServiceSpec("scheduler", "odin-scheduler", _scheduler_env),
    ServiceSpec("midgard-agent", "odin-midgard-agent", _agent_env),
    ServiceSpec("midgard", "odin-midgard", _midgard_env),
)


def _is_root() -> bool:
    return os.geteuid() == 0


def local_tasks_notice(is_root: Callable[[], bool] = _is_root) -> str | None:
    """What `odin dev up` says first when local tasks cannot be isolated (None: they run as an unprivileged user).

    Only a root scheduler can run tasks as another user; otherwise any job's task can read everything the suite
    can: its state directory (databases, auth keys, the service token) and the services' environments.
    """
    if is_root():
        return None
    return ("note: local tasks run as you, with the suite's privileges: any job can read the suite's state "
            "(databases, auth keys, service token). Run only jobs you trust, or start the suite as root to run "
            "tasks as an unprivileged user.")


class SuiteError(Exception):
    """The suite could not be started or stopped; the message says what to look at."""


def default_state_dir() -> Path:
    home = os.environ.get("ODIN_HOME")
    base = Path(home) if home else Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "odin"
    return base / "dev"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


class Suite:
    """Starts, inspects and stops the local suite rooted at `state_dir`."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self.state_dir = (state_dir or default_state_dir()).resolve()
        self.info_path = self.state_dir / "suite.json"

    def info(self) -> dict[str, dict[str, object]] | None:
        """The running suite's services (`address`, `pid`), or None when it is not up."""
        try:
            data: dict[str, dict[str, object]] = json.loads(self.info_path.read_text())["services"]
        except (OSError, ValueError, KeyError):
            return None
        return data

    def address(self, service: str) -> str | None:
        info = self.info()
        entry = info.get(service) if info else None
        return str(entry["address"]) if entry else None

    def up(self, timeout: float = 30.0) -> dict[str, dict[str, object]]:
        """Starts every service and waits until each health check reports SERVING."""
        if self.info() and any(_alive(int(str(s["pid"]))) for s in (self.info() or {}).values()):
            raise SuiteError(f"the suite is already up (state in {self.state_dir}); run `odin dev down` first")
        (self.state_dir / "logs").mkdir(parents=True, exist_ok=True)
        self._ensure_admin_password()
        addresses = {spec.name: f"{LOOPBACK}:{free_port()}" for spec in SERVICES}
        metrics = {spec.name: f"{LOOPBACK}:{free_port()}" for spec in SERVICES}  # each service's /metrics
        started: dict[str, dict[str, object]] = {}
        for spec in SERVICES:
            proc = self._spawn(spec, addresses, metrics[spec.name])
            started[spec.name] = {"address": addresses[spec.name], "pid": proc.pid, "metrics": metrics[spec.name]}
        self.info_path.write_text(json.dumps({"services": started, "started_at": time.time()}, indent=2))
        try:
            self._wait_healthy(started, timeout)
            started[gateway.NAME] = self._start_gateway(addresses, timeout)
        except SuiteError:
            self.down()
            raise
        self.info_path.write_text(json.dumps({"services": started, "started_at": time.time()}, indent=2))
        return started

    def down(self, grace: float = 15.0) -> list[str]:
        """Stops every service with SIGTERM (SIGKILL after `grace` seconds); returns what was stopped."""
        info = self.info() or {}
        pids = {name: int(str(entry["pid"])) for name, entry in info.items()}
        for pid in pids.values():
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(_alive(p) for p in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in pids.values():
            _signal(pid, signal.SIGKILL)
        self.info_path.unlink(missing_ok=True)
        return sorted(pids)

    def status(self) -> dict[str, str]:
        """Each service's health status name, or why it could not be read."""
        info = self.info() or {}
        with ThreadPoolExecutor(len(info) or 1) as pool:
            results = pool.map(lambda item: _entry_health(*item), info.items())
        return dict(zip(info, results, strict=True))

    def _start_gateway(self, addresses: Mapping[str, str], timeout: float) -> dict[str, object]:
        """Envoy in front of the services, started once they are healthy (its health checks need them)."""
        listen, admin = f"{LOOPBACK}:{free_port()}", f"{LOOPBACK}:{free_port()}"
        try:
            return gateway.start(self.state_dir, addresses, listen, admin, timeout)
        except GatewayError as exc:
            raise SuiteError(f"the gateway did not start: {exc}") from exc

    def _spawn(self, spec: ServiceSpec, addresses: Mapping[str, str], metrics: str) -> subprocess.Popen[bytes]:
        host, port = addresses[spec.name].rsplit(":", 1)
        env = {**os.environ, f"{spec.prefix}_HOST": host, f"{spec.prefix}_PORT": port,
               f"{spec.prefix}_METRICS_ADDRESS": metrics}
        env.update(spec.env(self.state_dir, addresses))
        # Clients reach the suite through its Envoy, which appends the address it saw to x-forwarded-for.
        env.setdefault(f"{spec.prefix}_TRUSTED_PROXY_HOPS", "1")
        if spec.name != "auth":
            env[f"{spec.prefix}_AUTH_ADDRESS"] = addresses["auth"]
            # The services' own calls to each other use the API token the auth service writes here.
            env[f"{spec.prefix}_AUTH_TOKEN_FILE"] = str(self.state_dir / "service-token")
        log = (self.state_dir / "logs" / f"{spec.name}.log").open("ab")
        command = shutil.which(spec.command, path=str(Path(sys.executable).parent)) or spec.command
        # As root, tasks run as another user who can reach the run path under this directory: whatever the
        # services write here (databases, keys) must then be private to them.
        umask = 0o077 if _is_root() else -1
        proc = subprocess.Popen([command], env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=self.state_dir, umask=umask)
        log.close()
        (self.state_dir / f"{spec.name}.pid").write_text(str(proc.pid))
        return proc

    def _wait_healthy(self, started: Mapping[str, Mapping[str, object]], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = dict(started)
        while pending:
            for name, entry in list(pending.items()):
                if not _alive(int(str(entry["pid"]))):
                    raise SuiteError(f"{name} exited during start-up; see {self.state_dir / 'logs' / name}.log")
                if _health(str(entry["address"]), 0.5) == "SERVING":
                    del pending[name]
            if pending and time.monotonic() > deadline:
                raise SuiteError(f"not healthy after {timeout:.0f}s: {', '.join(sorted(pending))}")
            if pending:
                time.sleep(0.05)

    def _ensure_admin_password(self) -> None:
        path = self.state_dir / "admin-password"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(18))


def _health(address: str, timeout: float) -> str:
    try:
        with grpc.insecure_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
            return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
    except grpc.RpcError as exc:
        return f"UNREACHABLE ({exc.code().name})"


def _entry_health(name: str, entry: Mapping[str, object]) -> str:
    return gateway.status(entry) if name == gateway.NAME else _health(str(entry["address"]), 2.0)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass  # not our child: fall through to a signal probe
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
