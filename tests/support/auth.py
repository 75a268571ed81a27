"""Test identities. The auth issue fills this in: a test signing key, its JWKS, and minted tokens.

Until then `default_token()` is None and channels carry no token.
"""

from __future__ import annotations


def default_token() -> str | None:
    """The token test channels send by default (an admin's), or None when auth is not wired yet."""
    return None
