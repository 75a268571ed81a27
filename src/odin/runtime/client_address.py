"""Who is calling, as an address: the key of the auth service's per-client login throttle and the
`client` of audit records.

Behind Envoy every call comes from the gateway's address, so the peer alone would make one
throttle key for everyone. Envoy (`use_remote_address: true`) appends the address it saw to
`x-forwarded-for`; with `trusted_hops` proxies in front, the client is the entry that many places
from the right. Entries further left are whatever the client sent and are never trusted. With 0
hops (no proxy) or a header shorter than the trusted chain, the peer is used.
"""

from __future__ import annotations

import ipaddress
from typing import Any

_MAX_HEADER = 4096


def client_address(context: Any, trusted_hops: int) -> str:
    """The caller's address without the port, e.g. `203.0.113.7` or `ipv4:127.0.0.1` (the peer)."""
    try:
        return _client_address(context, trusted_hops)
    except Exception:  # a context without a transport (unit tests): no address rather than no record
        return ""


def _client_address(context: Any, trusted_hops: int) -> str:
    if trusted_hops > 0:
        forwarded = _header(context.invocation_metadata(), "x-forwarded-for")
        entries = [e.strip() for e in forwarded[:_MAX_HEADER].split(",") if e.strip()]
        if len(entries) >= trusted_hops:
            return _address(entries[-trusted_hops])
    peer = str(context.peer() or "unknown")
    return peer.rsplit(":", 1)[0] if peer.count(":") > 1 else peer


def _header(metadata: Any, name: str) -> str:
    # Several x-forwarded-for headers count as one list, in order (RFC 7230 §3.2.2).
    values = [str(v) for k, v in metadata or () if k == name and isinstance(v, str)]
    return ",".join(values)


def _address(entry: str) -> str:
    """A normalised IP address; anything else is kept (bounded) so it still throttles as its own key."""
    try:
        return str(ipaddress.ip_address(entry.strip("[]")))
    except ValueError:
        return entry[:64]
