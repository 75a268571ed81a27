"""Page sizes and opaque keyset page tokens shared by every List method (AIP-158)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from odin.runtime.errors import InvalidArgument


def page_size(requested: int, *, default: int, maximum: int, field: str = "page_size") -> int:
    """0 means `default`; above `maximum` is coerced down; negative is INVALID_ARGUMENT."""
    if requested < 0:
        raise InvalidArgument.field(field, "must not be negative")
    if requested == 0:
        return default
    return min(requested, maximum)


def encode_token(position: dict[str, Any], filters: Any = None) -> str:
    """An opaque token holding the keyset position and a fingerprint of the filters."""
    payload = {"p": position, "f": _fingerprint(filters)}
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str, filters: Any = None, *, field: str = "page_token") -> dict[str, Any] | None:
    """The position of `token`, or None for the first page; a foreign token is INVALID_ARGUMENT."""
    if not token:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        position = payload["p"]
        fingerprint = payload["f"]
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument.field(field, "is not a token this method returned") from None
    if fingerprint != _fingerprint(filters) or not isinstance(position, dict):
        raise InvalidArgument.field(field, "was issued for a request with other filters")
    return position


def _fingerprint(filters: Any) -> str:
    return hashlib.sha256(json.dumps(filters, sort_keys=True, default=str).encode()).hexdigest()[:16]
