"""Results as JSON: frozen dataclasses in, plain dicts with readable numbers out, and the pass/fail lines."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Target:
    """One promise with its verdict: `measured` against `bound`, in `unit`; `at_most` says which side is good."""

    name: str
    measured: float
    bound: float
    unit: str
    at_most: bool

    @property
    def passed(self) -> bool:
        if math.isnan(self.measured):
            return False
        return self.measured <= self.bound if self.at_most else self.measured >= self.bound

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "measured": readable(self.measured),
            "rule": f"{'<=' if self.at_most else '>='} {readable(self.bound)} {self.unit}",
            "pass": self.passed,
        }


class Figure(Protocol):
    """What every benchmark returns: a frozen dataclass that can list its targets."""

    def targets(self) -> tuple[Target, ...]: ...


def ratio(measured: float, limit: float) -> float:
    """measured / limit, or NaN when there is no limit to compare with (rendered as null)."""
    return measured / limit if limit > 0 else math.nan


def per_s(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.nan


def readable(value: Any) -> Any:
    """Floats to four significant digits (NaN and infinities to null); dataclasses and containers recursively."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return float(f"{value:.4g}") if abs(value) < 1e15 else round(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: readable(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(key): readable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [readable(item) for item in value]
    return value
