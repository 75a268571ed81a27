"""Who a commit is by: the authenticated caller (`odin.runtime.auth`), else the service itself."""

from __future__ import annotations

from dataclasses import dataclass

from odin.runtime.auth import current_identity
from odin.runtime.errors import Unauthenticated

SERVICE_NAME = "odin"
SERVICE_EMAIL = "odin@localhost"


@dataclass(frozen=True)
class Author:
    name: str
    email: str


SERVICE_AUTHOR = Author(SERVICE_NAME, SERVICE_EMAIL)


def current_author() -> Author:
    """The caller of the RPC being handled; the "odin" identity outside an authenticated call."""
    try:
        identity = current_identity()
    except Unauthenticated:
        return SERVICE_AUTHOR
    # Odin users have no e-mail address; git wants one, so the username stands in for it.
    name = _clean(identity.username)
    return Author(name, f"{name}@odin")


def _clean(text: str) -> str:
    """git signatures cannot hold angle brackets or line breaks."""
    return "".join(ch for ch in text if ch not in "<>\n\r\0").strip() or SERVICE_NAME
