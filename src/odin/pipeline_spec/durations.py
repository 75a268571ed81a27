"""Durations: a number of seconds or a string such as ``"90s"``, ``"5m"``, ``"1h30m"``."""

from __future__ import annotations

import re

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = r"\d+(?:\.\d+)?(?:ms|s|m|h|d)"
# Shared with the JSON schema so both accept the same strings.
DURATION_PATTERN = rf"^(?:(?:{_PART})+|\d+(?:\.\d+)?)$"
_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(value: object) -> float:
    """Return seconds; raise ValueError with a user-facing description when malformed."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError('must be a number of seconds or a duration string like "90s", "5m", "1h"')
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(DURATION_PATTERN, text):
            raise ValueError(f'invalid duration "{value}" (use e.g. "90s", "5m", "1h30m")')
        if not text[-1].isalpha():
            return float(text)
        return sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART_RE.findall(text))
    if value < 0:
        raise ValueError("must not be negative")
    return float(value)
