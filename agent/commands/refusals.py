"""How many refused commands become records: a token bucket, so that a flood costs counts, not records.

Anyone who can publish on the command topic can make the agent refuse things; each refusal recorded is a
signed record kept in the outbox and sent to the platform. The bucket holds `per_hour` tokens and refills
at `per_hour` an hour: a burst of that many is recorded in full, and beyond it one an hour per token. A
refusal without a token is counted by reason; the next recorded refusal carries those counts
(`suppressed`, `suppressed_by_reason`) and starts them from zero, so no refusal goes unaccounted. Pure code.
"""

from __future__ import annotations

from collections import Counter

HOUR_MS = 3_600_000


class RefusalGate:
    def __init__(self, per_hour: int, now_ms: int) -> None:
        self._capacity = float(per_hour)
        self._per_ms = per_hour / HOUR_MS
        self._tokens = self._capacity
        self._last_ms = now_ms
        self._suppressed: Counter[str] = Counter()

    def admit(self, reason: str, now_ms: int) -> dict[str, int] | None:
        """The counts suppressed since the last recorded refusal if this one is to be recorded (and they are
        then cleared), or None if it is only counted."""
        self._tokens = min(self._capacity, self._tokens + max(0, now_ms - self._last_ms) * self._per_ms)
        self._last_ms = now_ms
        if self._tokens < 1:
            self._suppressed[reason] += 1
            return None
        self._tokens -= 1
        suppressed = dict(sorted(self._suppressed.items()))
        self._suppressed.clear()
        return suppressed

    @property
    def suppressed(self) -> int:
        """Refusals counted but not yet reported in a record."""
        return sum(self._suppressed.values())
