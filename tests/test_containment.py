"""The wall around a loop's items: an error is contained, counted, recorded at a bounded rate, and paced."""

from __future__ import annotations

import pytest
from support.clock import FakeClock
from support.waiting import wait_until

from agent.clock import SystemClock
from agent.containment import FAILING_AFTER, MAX_PAUSE_S, Boundary, describe
from agent.contract.records import EventKind, RecordIntent, RecordType
from agent.field.events import DeviceOnline
from agent.station_loop import HeartbeatFacts, StationLoop


def _boundary(records: list[RecordIntent], clock: FakeClock) -> Boundary:
    return Boundary("uplink", records.append, clock, report_every_s=60.0)


def test_an_error_is_contained_and_recorded_with_its_loop_item_and_class() -> None:
    """The block's exception stops at the wall; one internal_error record names loop, item and class."""
    records: list[RecordIntent] = []
    boundary = _boundary(records, FakeClock())
    with boundary.contain("ack message"):
        int("9" * 5000)
    assert len(records) == 1
    body = records[0].body.as_json()
    assert records[0].type is RecordType.EVENT
    assert body["kind"] == EventKind.INTERNAL_ERROR
    assert (body["loop"], body["item"], body["error"], body["count"]) == ("uplink", "ack message", "ValueError", 1)
    assert isinstance(body["detail"], str) and len(body["detail"]) <= 200
    assert boundary.status().errors == 1


def test_errors_within_the_interval_are_counted_into_the_next_record() -> None:
    """A flood of bad items makes one record a minute, whose count covers the ones not recorded."""
    records: list[RecordIntent] = []
    clock = FakeClock()
    boundary = _boundary(records, clock)
    for _ in range(50):
        with boundary.contain("cmd message"):
            raise RecursionError("deep")
        clock.advance(1.0)
    assert [r.body.count for r in records] == [1]
    clock.advance(60.0)
    with boundary.contain("cmd message"):
        raise KeyError("x")
    assert [r.body.count for r in records] == [1, 50]
    assert boundary.status().errors == 51


def test_failures_in_a_row_pace_the_loop_and_one_success_resets_it() -> None:
    """pause_s doubles with each failure in a row, is capped, and returns to 0 after an item goes through."""
    boundary = _boundary([], FakeClock())
    assert boundary.pause_s() == 0.0
    pauses = []
    for _ in range(30):
        with boundary.contain("poll"):
            raise OSError("gone")
        pauses.append(boundary.pause_s())
    assert pauses[0] < pauses[1] < pauses[2]
    assert max(pauses) == MAX_PAUSE_S
    assert boundary.status().failing and boundary.status().in_a_row == 30
    with boundary.contain("poll"):
        pass
    assert boundary.pause_s() == 0.0 and not boundary.status().failing
    assert FAILING_AFTER > 1


def test_a_failing_report_does_not_escape_the_wall() -> None:
    """Even when the record cannot be submitted, the loop's caller carries on."""

    def broken(_: RecordIntent) -> None:
        raise RuntimeError("queue gone")

    boundary = Boundary("station", broken, FakeClock())
    with boundary.contain("tick"):
        raise ValueError("bad")
    assert boundary.status().errors == 1


def test_base_exceptions_are_not_contained() -> None:
    """A stop (KeyboardInterrupt, SystemExit) still ends the loop."""
    boundary = _boundary([], FakeClock())
    with pytest.raises(KeyboardInterrupt), boundary.contain("tick"):
        raise KeyboardInterrupt


def test_describe_is_short_ascii() -> None:
    """Whatever the message holds, the description is one ASCII line of at most 200 characters."""
    text = describe(ValueError("\u00e9" * 1000 + "\n"))
    assert text.isascii() and len(text) <= 200 and text.startswith("ValueError: ")


class _BrittleStation:
    """A station whose first event raises, as a bug would; the rest go through."""

    def __init__(self) -> None:
        self.events = 0

    def on_event(self, event: object) -> list[RecordIntent]:
        self.events += 1
        if self.events == 1:
            raise ZeroDivisionError("a bug")
        return []

    def tick(self, now_ms: int) -> list[RecordIntent]:
        return []

    def closes_due(self, now_ms: int) -> bool:
        return False


def test_the_station_loop_contains_a_failing_event_and_handles_the_next() -> None:
    """An event the station cannot handle is an internal_error record of the `station` loop; the thread lives."""
    records: list[RecordIntent] = []
    station = _BrittleStation()
    loop = StationLoop(
        station,  # type: ignore[arg-type]
        records.append,
        SystemClock(),
        heartbeat_interval_s=3600,
        jump_threshold_ms=60_000,
        facts=lambda: HeartbeatFacts(True, 0, 0, 0),
        boundary=Boundary("station", records.append, SystemClock()),
    )
    loop.start()
    try:
        loop.post(DeviceOnline("pc1", "rs485-1", 0))
        loop.post(DeviceOnline("pc1", "rs485-1", 1))
        wait_until(lambda: station.events == 2, 10, "both events handled")
        assert loop.alive()
    finally:
        loop.stop("stopped")
    errors = [r.body.as_json() for r in records if getattr(r.body, "kind", None) == EventKind.INTERNAL_ERROR]
    assert [(e["loop"], e["item"], e["error"]) for e in errors] == [
        ("station", "event DeviceOnline", "ZeroDivisionError")
    ]
