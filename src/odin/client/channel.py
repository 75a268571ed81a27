"""Opening a channel to an Odin endpoint and the metadata every call carries."""

from __future__ import annotations

from pathlib import Path

import grpc
from grpc import aio

USER_AGENT = "odin-client/0.1"
# Large enough for a job's rendered spec with its inline files (1 MiB) and a page of jobs.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def open_channel(address: str, session: Path | None = None) -> aio.Channel:
    """An asyncio channel; `https://host:port` or `grpcs://host:port` uses TLS, anything else plaintext.

    With `session` (where `odin login` keeps the refresh token), a call refused because its access token was
    revoked or expired is renewed and made again (odin.client.renewal)."""
    from odin.client.renewal import renewing_interceptors

    interceptors = renewing_interceptors(session) if session is not None else None
    options = [
        ("grpc.primary_user_agent", USER_AGENT),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    for scheme in ("https://", "grpcs://"):
        if address.startswith(scheme):
            return aio.secure_channel(address[len(scheme):], grpc.ssl_channel_credentials(), options=options,
                                      interceptors=interceptors)
    for scheme in ("http://", "grpc://"):
        address = address.removeprefix(scheme)
    return aio.insecure_channel(address, options=options, interceptors=interceptors)


def call_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """`authorization: Bearer <token>` when there is a token."""
    return (("authorization", f"Bearer {token}"),) if token else ()
