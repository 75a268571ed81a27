"""Where the Odin services listen: an explicit address, `ODIN_ADDRESS`, or the local suite's `suite.json`.

An explicit address (or `ODIN_ADDRESS`) names one endpoint that serves every service, such as the gateway
of a deployed suite. Without one, the local suite started by `odin dev up` is asked: its gateway when it
has one (every service behind one port), else each service's own address.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from odin.client.errors import ConfigurationError
from odin.devsuite import Suite

ADDRESS_ENV = "ODIN_ADDRESS"
GATEWAY = "gateway"
SERVICES = ("scheduler", "auth", "pipelines", "midgard")


@dataclass(frozen=True)
class ServiceAddresses:
    """Resolves a service name to the `host:port` (or `https://host:port`) that serves it."""

    explicit: str | None = None
    state_dir: Path | None = None

    @classmethod
    def from_environment(cls, address: str | None = None, state_dir: Path | None = None) -> ServiceAddresses:
        """`address` wins, then `ODIN_ADDRESS`, then the local suite under `state_dir` (default state dir)."""
        return cls(explicit=address or os.environ.get(ADDRESS_ENV) or None, state_dir=state_dir)

    def address(self, service: str) -> str:
        """The address of `service`; ConfigurationError says how to provide one when none is known."""
        if self.explicit:
            return self.explicit
        suite = Suite(self.state_dir)
        found = suite.address(GATEWAY) or suite.address(service)
        if not found:
            raise ConfigurationError(
                f"no address for the {service} service: pass --address HOST:PORT, set {ADDRESS_ENV}, "
                f"or start the local suite with `odin dev up` (looked in {suite.info_path})"
            )
        return found

    def suite_state_dir(self) -> Path | None:
        """The local suite's state directory when addresses come from it, else None."""
        return None if self.explicit else Suite(self.state_dir).state_dir
