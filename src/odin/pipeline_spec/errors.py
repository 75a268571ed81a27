"""Violations found while validating a pipeline, and the exception that carries them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Violation:
    """One problem at one place, e.g. ``tasks[2].depends: unknown task "trian"``."""

    field: str
    description: str

    def __str__(self) -> str:
        return f"{self.field}: {self.description}" if self.field else self.description


class PipelineInvalid(Exception):
    """Raised with every violation found, not just the first."""

    def __init__(self, violations: Iterable[Violation]) -> None:
        self.violations: tuple[Violation, ...] = tuple(violations)
        super().__init__(self.violations)

    def __str__(self) -> str:
        lines = "\n".join(f"  - {v}" for v in self.violations)
        return f"pipeline is invalid ({len(self.violations)} problem(s)):\n{lines}"


class Collector:
    """Accumulates errors and warnings so validation can report everything at once."""

    def __init__(self) -> None:
        self.errors: list[Violation] = []
        self.warnings: list[Violation] = []

    def error(self, field: str, description: str) -> None:
        self.errors.append(Violation(field, description))

    def warn(self, field: str, description: str) -> None:
        self.warnings.append(Violation(field, description))
