"""Repeated warnings: the first line, then at most one a minute per event and key, counting what was left out."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from agent.logs import JsonFormatter, RepeatGate, RepeatLimitedLogger, get_logger


class TestRepeatGate:
    def test_the_first_line_of_each_event_and_key_goes_through(self) -> None:
        """A new (event, key) is never held back, whatever else was logged just before."""
        gate = RepeatGate(every_s=60)
        assert gate.admit("device_failed", "pc1", 0.0) == 0
        assert gate.admit("device_failed", "pc2", 0.1) == 0
        assert gate.admit("record_refused", "pc1", 0.2) == 0

    def test_repeats_within_the_window_are_left_out_and_counted_in_the_next_line(self) -> None:
        """100 lines in a minute: one logged, 99 left out; the first line after the minute says suppressed=99."""
        gate = RepeatGate(every_s=60)
        admitted = [gate.admit("device_failed", "pc1", i * 0.5) for i in range(100)]
        assert admitted[0] == 0 and admitted[1:] == [None] * 99
        assert gate.admit("device_failed", "pc1", 60.0) == 99
        assert gate.admit("device_failed", "pc1", 60.5) is None
        assert gate.admit("device_failed", "pc1", 200.0) == 1

    def test_a_full_gate_forgets_its_oldest_pair_rather_than_growing(self) -> None:
        """Past max_keys pairs the oldest is forgotten: it is logged again at once, and memory stays bounded."""
        gate = RepeatGate(every_s=60, max_keys=2)
        assert gate.admit("e", "a", 0.0) == 0
        assert gate.admit("e", "b", 0.0) == 0
        assert gate.admit("e", "c", 0.0) == 0
        assert gate.admit("e", "b", 1.0) is None
        assert gate.admit("e", "a", 1.0) == 0


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, object]] = []
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def lines() -> Iterator[_Lines]:
    handler = _Lines()
    logger = logging.getLogger("test.repeat")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)


def test_the_logger_writes_one_line_per_window_with_the_count(lines: _Lines) -> None:
    """A warning repeated 30 times over 90 s of a fake clock gives two lines, the second with suppressed=N."""
    now = [0.0]
    log = RepeatLimitedLogger(get_logger("test.repeat"), every_s=60, clock=lambda: now[0])
    for step in range(30):
        now[0] = step * 3.0
        log.warning("device_failed", key="pc1", device="pc1", error="timeout")
    assert [(line["event"], line.get("suppressed")) for line in lines.lines] == [
        ("device_failed", None),
        ("device_failed", 19),
    ]
    assert lines.lines[1]["device"] == "pc1" and lines.lines[1]["level"] == "warning"
