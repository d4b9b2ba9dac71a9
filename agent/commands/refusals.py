"""How many refused commands become records: a token bucket, so that a flood costs counts, not records.

Anyone who can publish on the command topic can make the agent refuse things; each refusal recorded is a
signed record kept in the outbox and sent to the platform. The bucket holds `per_hour` tokens and refills
at `per_hour` an hour: a burst of that many is recorded in full, and beyond it one an hour per token. A
refusal without a token is counted by reason; the next recorded refusal carries those counts
(`suppressed`, `suppressed_by_reason`) and starts them from zero, so no refusal goes unaccounted.

The bucket runs on the wall clock and its state (`GateState`) is kept on disk by the desk, because a bucket that
refilled at every start would let whoever can restart the agent buy a fresh burst of records each time. A wall
clock that steps back refills nothing until it passes the step; it never empties the bucket. Pure code.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from agent.commands.bucket import TokenBucket


@dataclass(frozen=True, slots=True)
class GateState:
    """What a restart must not forget: the tokens left at `at_ms`, and the refusals counted but not recorded."""

    tokens: float
    at_ms: int
    suppressed: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"tokens": self.tokens, "at_ms": self.at_ms, "suppressed": dict(self.suppressed)}

    @classmethod
    def from_json(cls, data: object) -> GateState:
        """ValueError unless `data` is what `to_json` made."""
        if not isinstance(data, dict) or not isinstance(data.get("suppressed"), dict):
            raise ValueError("want {tokens, at_ms, suppressed}")
        tokens, at_ms = float(data["tokens"]), int(data["at_ms"])
        suppressed = {str(reason): int(count) for reason, count in data["suppressed"].items()}
        if not tokens >= 0 or any(count < 0 for count in suppressed.values()):
            raise ValueError("negative tokens or counts")
        return cls(tokens, at_ms, suppressed)


class RefusalGate:
    def __init__(self, per_hour: int, now_ms: int, saved: GateState | None = None) -> None:
        self._bucket = TokenBucket(
            float(per_hour),
            per_hour / 3600,
            now_ms if saved is None else saved.at_ms,
            tokens=None if saved is None else saved.tokens,
        )
        self._suppressed: Counter[str] = Counter() if saved is None else Counter(saved.suppressed)

    def admit(self, reason: str, now_ms: int) -> dict[str, int] | None:
        """The counts suppressed since the last recorded refusal if this one is to be recorded (and they are
        then cleared), or None if it is only counted."""
        if not self._bucket.take(now_ms):
            self._suppressed[reason] += 1
            return None
        suppressed = dict(sorted(self._suppressed.items()))
        self._suppressed.clear()
        return suppressed

    def state(self) -> GateState:
        return GateState(self._bucket.tokens, self._bucket.at_ms, dict(sorted(self._suppressed.items())))

    @property
    def suppressed(self) -> int:
        """Refusals counted but not yet reported in a record."""
        return sum(self._suppressed.values())
