"""The leak test on the tanks' books: alarms raised once and cleared on a pass, a verdict every day."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tank_story import QUICK, hourly_books, tank_story

from agent.contract.records import RecordType
from agent.ledger.chain import ChainHead, seal
from agent.ledger.keys import DeviceKey
from agent.station.alarms import AlarmBook
from agent.station.leak_watch import LeakWatch
from agent.station.leak_watch import hourly_books as books_from_records

KEY = DeviceKey.from_private(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


def alarms(made: list) -> list[tuple[str, str, int]]:
    return [
        (str(i.body.kind), str(i.body.state), (i.ts_ms - hourly_books()[0].ts_ms) // 3_600_000 + 1)
        for i in made
        if i.type is RecordType.ALARM
    ]


def test_a_leak_then_unrecorded_sales_are_each_raised_once_and_cleared_on_a_pass() -> None:
    made = tank_story()
    found = alarms(made)
    assert [(kind, state) for kind, state, _ in found] == [
        ("tank_leak", "raised"),
        ("tank_leak", "cleared"),
        ("unrecorded_sales", "raised"),
        ("unrecorded_sales", "cleared"),
    ]
    hours = [hour for _, _, hour in found]
    assert hours[0] <= 36, "the leak is found while it lasts"
    assert 100 < hours[2] <= 148, "the unrecorded sales while they last"
    raised = next(i for i in made if i.type is RecordType.ALARM)
    assert 2_000 <= int(raised.body.evidence["leak_ml_per_h"]) <= 4_000  # type: ignore[call-overload]


def test_every_day_closes_with_the_tank_test() -> None:
    tests = [i.body.as_json() for i in tank_story() if i.type is RecordType.EVENT]
    assert len(tests) == 9 and all(body["kind"] == "tank_test" and body["tank"] == "T1" for body in tests)
    assert tests[0]["status"] == "fail" and tests[0]["cause"] == "leak"
    assert "pass" in {body["status"] for body in tests[3:]}


def test_after_a_restart_the_history_from_the_outbox_carries_the_evidence() -> None:
    """Fed the hours before a restart as the outbox gives them back, the test goes on where it was."""
    books = hourly_books(30)
    canonical = [record.canonical for record in seal(books, ChainHead.genesis(), "S-1", KEY)[0]]
    history = books_from_records(canonical)
    assert len(history["T1"]) == 30  # the day records are not the detector's
    watch = LeakWatch(["T1"], QUICK, AlarmBook({}), history)
    made = watch.on_books(hourly_books(31)[-1:])
    assert [(i.body.kind, i.body.state) for i in made] == [("tank_leak", "raised")]
