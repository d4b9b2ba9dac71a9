"""The agent's own life as records: how it started, whether it stopped cleanly, whether its clock jumped.

Pure code. The daemon reads what the outbox remembers of the previous run and passes it in; this module says
which events that calls for. A platform that sees an `unclean_stop` knows the box lost power or was killed;
one that sees a `clock_jump` knows the timestamps around it are to be read with care.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.contract.records import (
    AgentStartBody,
    ClockJumpBody,
    ConfigChangeBody,
    RecordIntent,
    UncleanStopBody,
    format_ts,
)


@dataclass(frozen=True, slots=True)
class PreviousRun:
    """What the outbox remembers: whether the last run was still marked running, and where it got to."""

    was_running: bool
    last_seq: int
    last_ts_ms: int | None
    config_sha256: str | None


def startup_intents(
    previous: PreviousRun,
    now_ms: int,
    *,
    version: str,
    config_sha256: str,
    kid: str,
    jump_threshold_ms: int,
) -> list[RecordIntent]:
    intents = [AgentStartBody(version=version, config_sha256=config_sha256, kid=kid).intent(now_ms)]
    if previous.was_running:
        last_ts = None if previous.last_ts_ms is None else format_ts(previous.last_ts_ms)
        intents.append(UncleanStopBody(last_record_seq=previous.last_seq, last_record_ts=last_ts).intent(now_ms))
    if previous.last_ts_ms is not None and now_ms < previous.last_ts_ms - jump_threshold_ms:
        body = ClockJumpBody(
            from_ts=format_ts(previous.last_ts_ms),
            to_ts=format_ts(now_ms),
            jump_ms=now_ms - previous.last_ts_ms,
            across_restart=True,
        )
        intents.append(body.intent(now_ms))
    if previous.config_sha256 is not None and previous.config_sha256 != config_sha256:
        intents.append(ConfigChangeBody(old_sha256=previous.config_sha256, new_sha256=config_sha256).intent(now_ms))
    return intents


class ClockWatch:
    """Compares the wall clock with a monotonic one; a difference beyond the threshold is a jump.

    NTP slews the clock by small amounts all the time, which stays under any sensible threshold; a step
    (a manual `date -s`, a first NTP sync after boot, a dead RTC battery) shows up as one jump.
    """

    def __init__(self, threshold_ms: int, wall_ms: int, monotonic_s: float) -> None:
        self._threshold_ms = threshold_ms
        self._wall_ms = wall_ms
        self._monotonic_s = monotonic_s

    def check(self, wall_ms: int, monotonic_s: float) -> RecordIntent | None:
        expected = self._wall_ms + round((monotonic_s - self._monotonic_s) * 1000)
        self._wall_ms, self._monotonic_s = wall_ms, monotonic_s
        jump = wall_ms - expected
        if abs(jump) <= self._threshold_ms:
            return None
        body = ClockJumpBody(from_ts=format_ts(expected), to_ts=format_ts(wall_ms), jump_ms=jump, across_restart=False)
        return body.intent(wall_ms)
