"""The gateway as part of `odin dev up`: Envoy in front of the suite's services."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from odin.gateway.config import GatewaySettings, JwtSettings, render
from odin.gateway.methods import PUBLIC_SERVICES
from odin.gateway.process import health, launch
from odin.runtime.tokens import DEFAULT_AUDIENCE, DEFAULT_ISSUER

NAME = "gateway"
# The web console built from ui/ (`npm run build`, run by scripts/setup) in a source checkout.
REPO_UI_DIR = Path(__file__).resolve().parents[3] / "ui" / "dist"


def default_ui_dir() -> Path | None:
    """The console's files: `$ODIN_UI_DIR` if set (empty: no console), else ui/dist when it was built."""
    configured = os.environ.get("ODIN_UI_DIR")
    if configured is not None:
        return Path(configured) if configured else None
    return REPO_UI_DIR if (REPO_UI_DIR / "index.html").is_file() else None


def start(state_dir: Path, addresses: Mapping[str, str], listen: str, admin: str,
          timeout: float = 20.0) -> dict[str, object]:
    """Starts Envoy for the suite's `addresses` and waits until it is ready; returns its suite.json entry.

    Access tokens are checked with the keys the auth service publishes (GET /v1/jwks, fetched
    through the gateway itself), for the issuer and audience the suite's services use. The web
    console is served at `/` when it was built (see `default_ui_dir`).
    """
    settings = GatewaySettings(
        listen=listen,
        admin=admin,
        upstreams={name: addresses[name] for name in sorted(set(PUBLIC_SERVICES.values()))},
        access_log=state_dir / "logs" / "gateway-access.log",
        jwt=JwtSettings(issuer=DEFAULT_ISSUER, audiences=(DEFAULT_AUDIENCE,)),
        ui_dir=default_ui_dir(),
    )
    process = launch(render(settings), state_dir / NAME, admin, timeout, log_path=state_dir / "logs" / "gateway.log")
    return {"address": listen, "pid": process.pid, "admin_address": admin}


def status(entry: Mapping[str, object]) -> str:
    """SERVING while Envoy answers and every upstream passes its health check."""
    return health(str(entry["address"]))
