"""Kubernetes resource quantities (``500m``, ``2Gi``, ``1.5``)."""

from __future__ import annotations

import re

# Same grammar as k8s resource.Quantity, minus signs: requests and limits are never negative.
QUANTITY_PATTERN = r"^\+?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?$"


def parse_quantity(value: object) -> str:
    """Normalise a quantity to its string form; raise ValueError when malformed."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError('must be a Kubernetes quantity such as "500m", "2Gi" or 1.5')
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("must not be negative")
        return str(value)
    if not re.fullmatch(QUANTITY_PATTERN, value):
        raise ValueError(f'invalid Kubernetes quantity "{value}" (e.g. "500m", "2Gi", "1.5")')
    return value
