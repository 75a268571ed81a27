"""Reading a listing RPC to the end: one loop for every `page_token`/`next_page_token` pair."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any


async def collect_pages(fetch: Callable[[str], Awaitable[Any]], field: str, limit: int = 0) -> list[Any]:
    """Every item of `field` across pages; `fetch(page_token)` asks for one page. `limit` > 0: at most that many."""
    items: list[Any] = []
    token = ""
    while True:
        page = await fetch(token)
        items += getattr(page, field)
        token = page.next_page_token
        if not token or (limit and len(items) >= limit):
            return items[:limit] if limit else items
