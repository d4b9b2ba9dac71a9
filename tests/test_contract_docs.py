"""The contract documentation: the schemas are as generated, the agent's records pass them, the example is true."""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import itertools
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jsonschema import Draft7Validator, Draft202012Validator
from jsonschema.protocols import Validator
from pressure_story import pressure_story
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from support.waiting import wait_until
from tank_story import tank_story
from vapour_story import vapour_story

from agent.clock import SystemClock
from agent.contract.decode import decode_body
from agent.contract.framing import Topics, build_records_message, status_payload
from agent.contract.records import (
    BODY_TYPES,
    AckRefusal,
    AckRefusedBody,
    AgentStartBody,
    AgentStopBody,
    AlarmBody,
    AlarmKind,
    AlarmState,
    Body,
    CalibrationChangeBody,
    ChainResetBody,
    ChainResetReason,
    ClockJumpBody,
    CommandAcceptedBody,
    CommandRefusedBody,
    ConfigChangeBody,
    ControllerBaselineBody,
    DailySummaryBody,
    DeliveryBody,
    DeviceIdentityBody,
    DeviceOfflineBody,
    DeviceOnlineBody,
    DownPeriod,
    Downtime,
    EventKind,
    GaugeReportUnavailableBody,
    GradeDay,
    HeartbeatBody,
    InternalErrorBody,
    KeyRotationBody,
    NozzleDay,
    ReconciliationBody,
    RecordIntent,
    RecordType,
    TankDay,
    TankInventoryBody,
    TankPressureBody,
    TankTestBody,
    TransactionBody,
    UncleanStopBody,
    UplinkInstability,
    UplinkUnstableBody,
    VapourBody,
    parse_ts,
)
from agent.field.events import DeviceOffline, DeviceOnline, DeviceReading, DeviceValueFaults, LineHealth
from agent.ledger.chain import ChainHead, SealedRecord, seal
from agent.ledger.integrity import Damage, damage_alarm
from agent.ledger.keys import DeviceKey
from agent.ledger.outbox import Outbox, OutboxError, OutboxFull, OutboxReader, StoredRecord
from agent.ledger.recorder import Recorder
from agent.ledger.settings import OutboxSection
from agent.ledger.suites import Suite, kid_of
from agent.station.bindings import NozzleBinding, Tap
from agent.station.devices import OPTIONAL_GAUGE_REPORTS
from agent.station.settings import MeteringSection, VerificationSection
from agent.station.station import Station
from drivers.readings import (
    ChannelCount,
    ControllerCounters,
    NozzleReading,
    PulseCounterReading,
    PumpControllerReading,
    TankGaugeReading,
    ValueFault,
)
from station_lab import contract_docs

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
SCHEMAS = DOCS / "contract" / "schemas"
CONTRACT_MD = DOCS / "contract.md"
STATION = "CQ-YB-0001"
RFC8032_TEST1_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
"""RFC 8032 section 7.1, TEST 1: a published secret key, used only to reproduce the worked example."""

Json = dict[str, Any]


def _schemas() -> dict[str, Json]:
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(SCHEMAS.glob("*.json"))}


def _draft7(schema: Json) -> Json:
    """The schema as a draft-07 reader (an AsyncAPI 3.0 tool) sees it."""
    return {key: value for key, value in schema.items() if key != "$schema"}


def _validators(name: str) -> list[Validator]:
    """A validator for schema file `name` in draft 2020-12 and one reading it as draft-07."""
    schemas = _schemas()
    modern = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas.values())
    old = Registry().with_resources((s["$id"], DRAFT7.create_resource(_draft7(s))) for s in schemas.values())
    return [
        Draft202012Validator(schemas[name], registry=modern),
        Draft7Validator(_draft7(schemas[name]), registry=old),
    ]


def _field_names(cls: type[Body]) -> list[str]:
    return [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]


def _walk(node: object) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


# -- the schema files ------------------------------------------------------------------------------------------


def test_committed_schemas_are_what_the_generator_writes() -> None:
    """`python -m station_lab.contract_docs --check` passes on the committed files."""
    result = subprocess.run(
        [sys.executable, "-m", "station_lab.contract_docs", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_check_names_each_file_that_is_not_as_generated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--check exits 1 and names a changed file, a missing one and one the generator does not make."""
    assert contract_docs.main(["--dir", str(tmp_path)]) == 0
    (tmp_path / "ack.json").write_text("{}\n")
    (tmp_path / "alarm.json").unlink()
    (tmp_path / "old.json").write_text("{}\n")
    capsys.readouterr()
    assert contract_docs.main(["--check", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'ack.json'}: differs" in err
    assert f"{tmp_path / 'alarm.json'}: missing" in err
    assert f"{tmp_path / 'old.json'}: not generated" in err


def test_output_is_deterministic(tmp_path: Path) -> None:
    """Two runs under different hash seeds write the same bytes: keys sorted in every object, 2-space indent,
    non-ASCII text as itself, one trailing newline."""
    written = {}
    for seed in ("1", "2"):
        folder = tmp_path / f"seed-{seed}"
        result = subprocess.run(
            [sys.executable, "-m", contract_docs.__name__, "--dir", str(folder)],
            cwd=REPO,
            env=os.environ | {"PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        written[seed] = {path.name: path.read_bytes() for path in sorted(folder.glob("*.json"))}
    assert written["1"] == written["2"] and len(written["1"]) == len(_schemas())

    def sorted_keys(pairs: list[tuple[str, Any]]) -> Json:
        keys = [key for key, _ in pairs]
        assert keys == sorted(keys), keys
        return dict(pairs)

    for name, data in written["1"].items():
        text = data.decode("utf-8")
        json.loads(text, object_pairs_hook=sorted_keys)
        assert text.endswith("}\n") and not text.endswith("\n\n")
        assert text.startswith('{\n  "')
        indents = {len(line) - len(line.lstrip(" ")) for line in text.splitlines()}
        assert all(indent % 2 == 0 for indent in indents), name
        assert "\\u" not in text, f"{name}: non-ASCII written as an escape"


def test_every_schema_names_and_describes_itself() -> None:
    """Each file has $schema 2020-12, an $id ending in its own name, a title and a description."""
    schemas = _schemas()
    assert set(schemas) == {
        "record.json",
        "records-message.json",
        "ack.json",
        "status.json",
        "transaction.json",
        "tank_inventory.json",
        "delivery.json",
        "reconciliation.json",
        "event.json",
        "alarm.json",
        "heartbeat.json",
        "daily_summary.json",
        "vapour.json",
        "tank_pressure.json",
        "chain_reset.json",
    }
    for name, schema in schemas.items():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == contract_docs.BASE_ID + name
        assert schema["title"] and schema["description"]
        Draft202012Validator.check_schema(schema)
        Draft7Validator.check_schema(_draft7(schema))


def test_numbers_are_integers_only() -> None:
    """No schema anywhere allows a JSON number that is not an integer."""
    for name, schema in _schemas().items():
        for node in _walk(schema):
            types = node.get("type")
            assert types != "number" and not (isinstance(types, list) and "number" in types), name


def test_envelope_is_exactly_the_seven_keys() -> None:
    record = _schemas()["record.json"]
    assert record["additionalProperties"] is False
    assert set(record["required"]) == set(record["properties"]) == {"v", "station", "seq", "ts", "type", "body", "prev"}


def test_a_field_without_a_description_stops_the_generator(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The generator names the field and where to describe it, and writes nothing."""
    monkeypatch.delitem(contract_docs._FIELDS, "vapour_ml")
    message = "TransactionBody.vapour_ml has no description; add one under 'transaction.vapour_ml'"
    with pytest.raises(contract_docs.ContractDocsError, match=re.escape(message)):
        contract_docs.body_schema(TransactionBody)
    assert contract_docs.main(["--dir", str(tmp_path)]) == 1
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_alarm_schema_describes_each_documented_kind() -> None:
    """alarm.json has one `if kind then` branch per documented kind, each with a subject and its evidence."""
    alarm = _schemas()["alarm.json"]
    branches = {branch["if"]["properties"]["kind"]["const"]: branch["then"]["$ref"] for branch in alarm["allOf"]}
    assert branches == {name: f"#/$defs/{name}" for name in contract_docs.ALARM_KINDS}
    for name in contract_docs.ALARM_KINDS:
        assert alarm["$defs"][name]["description"].startswith("Subject: ")


def test_body_schema_wants_every_field_of_its_dataclass(sealed: list[SealedRecord]) -> None:
    """The agent writes every field of a body, so every field is required: each body's schema requires exactly
    the keys the body has once the agent has sealed it, in the order of its dataclass's fields."""
    for body, record in zip(SAMPLES, sealed, strict=True):
        required = contract_docs.body_schema(type(body))["required"]
        assert sorted(required) == sorted(_record(record)["body"]), type(body).__name__
        assert required == _field_names(type(body))


# -- records the agent makes -----------------------------------------------------------------------------------

_SHA = hashlib.sha256(b"config").hexdigest()
SAMPLES: list[Body] = [
    HeartbeatBody(interval_s=60, uptime_s=0, uplink="offline", unacked=0, devices_online=0, devices_total=3),
    AgentStartBody(version="0.1.0", config_sha256=_SHA, kid="0123456789abcdef"),
    AgentStopBody(reason="stopped", uptime_s=86_400),
    UncleanStopBody(last_record_seq=0, last_record_ts=None),
    UncleanStopBody(last_record_seq=41, last_record_ts="2026-11-27T08:14:41.250Z"),
    ClockJumpBody(
        from_ts="2026-11-27T08:00:00.000Z", to_ts="2026-11-27T07:00:00.000Z", jump_ms=-3_600_000, across_restart=True
    ),
    ConfigChangeBody(old_sha256=_SHA, new_sha256=hashlib.sha256(b"new").hexdigest()),
    DeviceOnlineBody(device="pc1", line="rs485-1"),
    DeviceOfflineBody(device="pc1", line="rs485-1", reason="ModbusTimeout: no answer within 300 ms"),
    ControllerBaselineBody(
        nozzle="D01-N1", controller="pc1", txn_no=18230, totalizer_volume_ml=912345670, totalizer_amount_fen=0
    ),
    DeviceIdentityBody(device="pc1", k_factor=10_000, firmware_id=0x0102),
    DeviceIdentityBody(device="pc2", k_factor=None, firmware_id=None),
    CalibrationChangeBody(
        device="pc1", parameter="k_factor", old=10_000, new=10_100, verified=True, certificate="JJG443-2026-0042"
    ),
    CalibrationChangeBody(
        device="pc1", parameter="firmware_id", old=None, new=0x0200, verified=False, certificate=None
    ),
    AlarmBody(
        kind="outbox_full",
        state=AlarmState.RAISED,
        subject="outbox",
        evidence={"problem": "outbox is full", "max_bytes": 2**31, "used_bytes": -1, "acked_upto": 0, "head_seq": 7},
    ),
    AlarmBody(
        kind="outbox_full",
        state=AlarmState.CLEARED,
        subject="outbox",
        evidence={"duration_s": 120, "dropped": 3, "dropped_heartbeat": 2, "dropped_transaction": 1},
    ),
    AlarmBody(kind="tank_water_high", state=AlarmState.RAISED, subject="T1", evidence={"water_ml": 41_000, "x": None}),
    TransactionBody(
        nozzle="D01-N1",
        dispenser="D01",
        grade="0#",
        tank="T3",
        controller="pc1",
        txn_no=18231,
        start="2026-11-27T08:13:09.517Z",
        end="2026-11-27T08:14:58.902Z",
        volume_ml=30120,
        amount_fen=23132,
        price_fen_per_l=768,
        totalizer_volume_ml_before=None,
        totalizer_volume_ml_after=2**53 - 1,
        totalizer_amount_fen_before=None,
        totalizer_amount_fen_after=0,
        pulse_volume_ml=30110,
        deviation_ppm=332,
        vapour_ml=32530,
        al_permille=1080,
    ),
    TransactionBody(
        nozzle="D01-N2",
        dispenser="D01",
        grade="95",
        tank="T2",
        controller="pc1",
        txn_no=0,
        start="2026-11-27T08:13:09.517Z",
        end="2026-11-27T08:13:09.517Z",
        volume_ml=0,
        amount_fen=0,
        price_fen_per_l=812,
        totalizer_volume_ml_before=5,
        totalizer_volume_ml_after=5,
        totalizer_amount_fen_before=None,
        totalizer_amount_fen_after=None,
        pulse_volume_ml=None,
        deviation_ppm=None,
        vapour_ml=None,
        al_permille=None,
    ),
    TankTestBody(
        tank="T1",
        status="inconclusive",
        cause=None,
        span_h=720,
        hours=655,
        quiet_hours=201,
        sold_20_ml=104_220_310,
        leak_ml_per_h=-41,
        leak_threshold_ml_per_h=378,
        min_detectable_leak_ml_per_h=902,
        unrecorded_ppm=1_210,
        unrecorded_threshold_ppm=4_480,
        min_detectable_unrecorded_ppm=None,
    ),
    CommandAcceptedBody(
        command_id="7f9c2ba4-e88f-11ee-a506-0242ac120002",
        cmd="resend",
        args={"first": 1, "last": 40},
        issued="2026-11-27T08:15:02.113Z",
        expires="2026-11-27T08:16:02.113Z",
        platform_kid="fedcba9876543210",
    ),
    CommandRefusedBody(
        command_id=None,
        cmd="ping",
        reason="unsigned",
        detail="no sig: commands must be signed with the platform's key",
        suppressed=3,
        suppressed_by_reason={"bad_signature": 1, "unsigned": 2},
    ),
    KeyRotationBody(
        old_kid="0123456789abcdef",
        new_kid="89abcdef01234567",
        new_public_key="A" * 43 + "=",
        command_id="7f9c2ba4-e88f-11ee-a506-0242ac120003",
    ),
    ChainResetBody(
        reason=ChainResetReason.OUTBOX_MISSING,
        detail="no outbox file; the anchor names record 41",
        lost_first=39,
        lost_last=4137,
        known_seq=41,
        known_digest=_SHA,
        known_ts="2026-11-27T08:14:41.250Z",
        set_aside=None,
    ),
    InternalErrorBody(
        loop="uplink",
        item="ack message",
        error="ValueError",
        detail="ValueError: Exceeds the limit (4300 digits) for integer string conversion",
        count=3,
    ),
    AckRefusedBody(
        reason=AckRefusal.BAD_NUMBER,
        detail="ack refused: an integer of 5001 characters, more than the 20 allowed",
        count=3,
        payload_bytes=5012,
    ),
    UplinkUnstableBody(reason=UplinkInstability.PLATFORM_ACKED_LESS, count=1, believed_upto=4137, upto=3900),
    UplinkUnstableBody(reason=UplinkInstability.SESSIONS_SHORT, count=12, believed_upto=None, upto=None),
    GaugeReportUnavailableBody(
        device="tg1", report="i202", available=False, reason=f"the gauge refuses i202; {OPTIONAL_GAUGE_REPORTS['i202']}"
    ),
    TankInventoryBody(
        tank="T1",
        product="gasoline",
        volume_ml=18_402_117,
        volume_20_ml=18_387_904,
        ullage_ml=11_597_883,
        height_um=1_402_550,
        water_um=12_000,
        temperature_cC=2105,
        delivery_in_progress=False,
        vcf_band="gasoline",
        density_basis="20C",
    ),
    DeliveryBody(
        tank="T1",
        product="gasoline",
        source="gauge",
        start="2026-11-27T02:05:00.000Z",
        end="2026-11-27T02:41:00.000Z",
        start_volume_ml=6_120_400,
        end_volume_ml=18_102_900,
        start_volume_20_ml=6_117_050,
        end_volume_20_ml=18_071_660,
        sold_during_20_ml=85_210,
        delivered_20_ml=12_039_820,
        start_temperature_cC=1880,
        end_temperature_cC=2240,
        start_height_um=611_200,
        end_height_um=1_380_400,
    ),
    ReconciliationBody(
        tank="T1",
        product="gasoline",
        period="hour",
        start="2026-11-27T02:00:00.000Z",
        end="2026-11-27T03:00:00.000Z",
        opening_ts="2026-11-27T02:00:04.312Z",
        closing_ts="2026-11-27T03:00:02.118Z",
        opening_volume_20_ml=6_302_410,
        closing_volume_20_ml=17_981_040,
        delivered_20_ml=12_039_820,
        sold_20_ml=361_190,
        sales=11,
        temperature_cC=1942,
        variance_ml=0,
        cumulative_variance_ml=-1_250,
        complete=True,
    ),
    VapourBody(
        day="2026-11-27",
        nozzle="D01-N1",
        dispenser="D01",
        grade="92",
        rule_set="gb20952",
        fuellings=3,
        counted=2,
        passed=1,
        slow=1,
        pump_fault=0,
        pump_fault_run=0,
        al_sum_permille=2_030,
        al_mean_permille=1_015,
        al_stdev_permille=134,
        carried_fuellings=1,
        carried_passed=1,
        carried_slow=0,
        carried_days=1,
        judged_fuellings=3,
        judged_passed=2,
        judged_slow=1,
        pass_share_permille=None,
        week_counted=3,
        week_al_mean_permille=1_043,
        verdict="inconclusive",
        warning_days=2,
        daily_fail_days=0,
        weekly_fail_days=0,
        rolled_over=True,
    ),
    TankPressureBody(
        device="ps1",
        period="interval",
        day=None,
        start="2026-11-27T08:00:00.000Z",
        end="2026-11-27T08:05:00.000Z",
        readings=0,
        mean_pa=None,
        min_pa=None,
        max_pa=None,
        outside_band=0,
        over_pressure=0,
        zero_run_s=0,
        outside_band_permille=None,
        zero_warning_days=None,
        band_warning_days=None,
    ),
    DailySummaryBody(
        day="2026-11-27",
        zone="Asia/Shanghai",
        start="2026-11-26T16:00:00.000Z",
        end="2026-11-27T16:00:00.000Z",
        complete=False,
        nozzles=(
            NozzleDay(
                nozzle="D01-N1",
                grade="92",
                sales=211,
                volume_ml=6_120_440,
                amount_fen=4_700_498,
                totalizer_volume_ml_opening=912_345_670,
                totalizer_volume_ml_closing=918_466_610,
                totalizer_volume_ml_difference=500,
                totalizer_amount_fen_opening=None,
                totalizer_amount_fen_closing=700_876_543,
                totalizer_amount_fen_difference=None,
            ),
        ),
        grades=(GradeDay(grade="92", sales=211, volume_ml=6_120_440, amount_fen=4_700_498),),
        tanks=(
            TankDay(
                tank="T1",
                product="gasoline",
                start="2026-11-26T16:00:00.000Z",
                end="2026-11-27T16:00:00.000Z",
                opening_volume_20_ml=18_387_904,
                closing_volume_20_ml=12_270_010,
                delivered_20_ml=0,
                sold_20_ml=6_117_020,
                sales=211,
                variance_ml=874,
                cumulative_variance_ml=-1_250,
                complete=True,
            ),
        ),
        agent_down=Downtime(
            subject="agent",
            seconds=10_800,
            periods=(DownPeriod(start="2026-11-27T02:00:00.000Z", end="2026-11-27T05:00:00.000Z", seconds=10_800),),
            periods_left_out=0,
            down_at_end=False,
        ),
        uplink_down=Downtime(subject="uplink", seconds=0, periods=(), periods_left_out=0, down_at_end=False),
        devices_down=(
            Downtime(
                subject="pc2",
                seconds=3_720,
                periods=(DownPeriod(start="2026-11-27T15:00:00.000Z", end="2026-11-27T16:00:00.000Z", seconds=3_600),),
                periods_left_out=3,
                down_at_end=True,
            ),
        ),
        alarms_raised={"device_silent": 1},
    ),
]
"""One body of every type, by hand; the alarms of every kind come from the station and the recorder below."""


def _seal(intents: Sequence[RecordIntent]) -> list[SealedRecord]:
    records, _ = seal(intents, ChainHead.genesis(), STATION, DeviceKey.from_private(Ed25519PrivateKey.generate()))
    return records


@pytest.fixture(scope="module")
def sealed() -> list[SealedRecord]:
    start = parse_ts("2026-11-27T08:00:00.000Z")
    return _seal([body.intent(start + 1000 * index) for index, body in enumerate(SAMPLES)])


def _record(record: SealedRecord) -> Json:
    parsed: Json = json.loads(record.canonical)
    return parsed


# -- alarms, as the code raises and clears them ----------------------------------------------------------------

RULES = MeteringSection()
COUNTERS = ControllerCounters(
    txn_no_modulus=2**32,
    totalizer_volume_modulus_ml=2**32 * 10,
    totalizer_amount_modulus_fen=2**32,
    volume_resolution_ml=10,
)
BINDING = NozzleBinding(
    "D01-N1", "D01", "92", "T1", "pc1", 1, Tap("pcm1", 1, Decimal(10)), Tap("pcm1", 2, Decimal(10), Decimal("1.02"))
)
IDLE = NozzleReading(
    nozzle=1,
    state="idle",
    txn_no=18_230,
    txn_volume_ml=20_000,
    txn_amount_fen=15_360,
    txn_price_fen_per_l=768,
    totalizer_volume_ml=912_345_670,
    totalizer_amount_fen=700_876_543,
)
VERIFIED = VerificationSection(device="pc1", k_factor=10_100, certificate="JJG443-2026-0042")


class Forecourt:
    """One nozzle's pump controller and its pulse counter, polled by hand and fed to a Station."""

    def __init__(self, station: Station) -> None:
        self.station = station
        self.now = parse_ts("2026-11-27T08:00:00.000Z")
        self.nozzle = IDLE
        self.liquid, self.vapour = 65_000, 1_000
        self.made: list[RecordIntent] = []

    def poll(self, state: str | None = None, *, k_factor: int = 10_000) -> None:
        """A controller poll and, 100 ms later, a counter poll."""
        if state is not None:
            self.nozzle = replace(self.nozzle, state=state)
        self.now += 250
        controller = PumpControllerReading((self.nozzle,), k_factor, 0x0102, COUNTERS)
        self.made += self.station.on_event(DeviceReading("pc1", "rs485-1", self.now, controller))
        self.now += 100
        counts = (ChannelCount(1, self.liquid % 65_536), ChannelCount(2, self.vapour % 65_536))
        self.made += self.station.on_event(
            DeviceReading("pcm1", "rs485-1", self.now, PulseCounterReading(counts, 65_536))
        )
        self.made += self.station.tick(self.now)

    def sale(
        self, reported_ml: int, *, counted_ml: int | None = None, skip: int = 0, totalizer_error_ml: int = 0
    ) -> None:
        """Lift, fuel (the encoder counts counted_ml, the controller books reported_ml), hang up."""
        counted = reported_ml if counted_ml is None else counted_ml
        self.poll("lifted")
        self.liquid += counted // 10
        self.vapour += counted * 106 // 1000
        self.poll("fuelling")
        amount = (reported_ml * 768 + 500) // 1000
        self.nozzle = replace(
            self.nozzle,
            state="finished",
            txn_no=self.nozzle.txn_no + 1 + skip,
            txn_volume_ml=reported_ml,
            txn_amount_fen=amount,
            totalizer_volume_ml=self.nozzle.totalizer_volume_ml + reported_ml + totalizer_error_ml,
            totalizer_amount_fen=(self.nozzle.totalizer_amount_fen or 0) + amount,
        )
        self.poll()
        self.poll("idle")


def _nozzle_story() -> list[RecordIntent]:
    """Sales honest and not, a dead encoder, skipped and reset sale numbers, totalizers and pulses that move
    without a sale, and a K-factor changed and put back: every nozzle alarm, raised and cleared."""
    court = Forecourt(Station([BINDING], {}, RULES))
    for _ in range(3):
        court.poll()
    court.sale(30_120)
    court.sale(20_200, counted_ml=20_000)
    court.sale(18_000)
    court.sale(10_000, counted_ml=0)
    court.sale(12_000)
    court.sale(10_000, skip=2)
    court.sale(10_000)
    court.nozzle = replace(court.nozzle, totalizer_volume_ml=court.nozzle.totalizer_volume_ml + 50_000)
    court.poll()
    court.sale(10_000)
    court.sale(10_000, totalizer_error_ml=500)
    court.sale(10_000)
    court.liquid += 150
    for _ in range(4):
        court.poll()
    court.now += int(RULES.rest_clear_s * 1000)
    court.poll()
    court.poll()
    court.nozzle = replace(court.nozzle, txn_no=0, totalizer_volume_ml=0, totalizer_amount_fen=0)
    court.poll()
    court.sale(10_000)
    court.poll(k_factor=10_100)
    court.poll(k_factor=10_000)
    return court.made


def _device_story() -> list[RecordIntent]:
    """A verified controller, a device silent and back (once across a restart), a noisy line that recovers."""
    t0 = parse_ts("2026-11-27T09:00:00.000Z")
    verified = Station([], {}, RULES, (VERIFIED,))
    made = [
        *verified.on_event(DeviceReading("pc1", "rs485-1", t0, PumpControllerReading((), 10_000, 0x0102))),
        *verified.on_event(DeviceReading("pc1", "rs485-1", t0 + 1_000, PumpControllerReading((), 10_100, 0x0102))),
    ]
    station = Station([], {}, RULES)
    made += station.on_event(DeviceOffline("pc2", "rs485-2", t0, "ModbusTimeout: no answer within 300 ms"))
    made += station.tick(t0 + int(RULES.silent_after_s * 1000))
    made += station.on_event(DeviceOnline("pc2", "rs485-2", t0 + 85_000))
    restarted = Station([], {"alarm/device_silent/pc2": 1}, RULES)
    made += restarted.on_event(DeviceOnline("pc2", "rs485-2", t0 + 90_000))
    made += station.on_event(LineHealth("rs485-1", t0, 0, 0, 0, 0))
    made += station.on_event(LineHealth("rs485-1", t0 + 10_000, 100, 40, 38, 2))
    made += station.on_event(LineHealth("rs485-1", t0 + 80_000, 800, 45, 40, 5))
    nan = ValueFault("pressure_pa", 0x0010, "7FC00000", "not a number (NaN)")
    made += station.on_event(DeviceValueFaults("ps1", "rs485-1", t0 + 90_000, (nan,)))
    made += station.on_event(DeviceValueFaults("ps1", "rs485-1", t0 + 95_000, ()))
    made += station.on_event(DeviceReading("tg1", "tls", t0 + 96_000, TankGaugeReading((), refused=("i202",))))
    made += station.on_event(DeviceReading("tg1", "tls", t0 + 97_000, TankGaugeReading(())))
    return made


class FlakyOutbox(Outbox):
    """A real outbox whose writes fail with `failure` while it is set."""

    failure: OutboxError | None = None

    def append(self, records: Sequence[SealedRecord]) -> None:
        if self.failure is not None:
            raise self.failure
        super().append(records)


def _outbox_story(folder: Path, failure: OutboxError) -> list[Json]:
    """The store fails while records keep coming, more than can wait; then it works again."""
    outbox = FlakyOutbox(folder / "outbox.sqlite", 64 * 1024**2)
    settings = OutboxSection(path=outbox.path, retry_s=0.05, pending_limit=100)
    recorder = Recorder(outbox, STATION, DeviceKey.from_private(Ed25519PrivateKey.generate()), settings, SystemClock())
    beat = HeartbeatBody(interval_s=60, uptime_s=60, uplink="offline", unacked=0, devices_online=2, devices_total=2)
    outbox.failure = failure
    recorder.start()
    recorder.submit(beat.intent(SystemClock().wall_ms()))
    wait_until(lambda: recorder.status().state != "ok", 10, "the outbox alarm")
    for _ in range(105):
        recorder.submit(beat.intent(SystemClock().wall_ms()))
    wait_until(lambda: recorder.status().dropped == 7, 10, "records beyond pending_limit to be dropped")
    outbox.failure = None
    wait_until(lambda: recorder.status().state == "ok" and recorder.status().pending == 0, 10, "recovery")
    recorder.stop()
    stored = [json.loads(record.canonical) for record in OutboxReader(outbox.path).read(1, 10**6)]
    return [record for record in stored if record["type"] == "alarm"]


def _corrupt_story(folder: Path) -> list[Json]:
    """A stored record's bytes change on the medium; reading it for sending raises outbox_corrupt."""
    path = folder / "outbox.sqlite"
    key = DeviceKey.from_private(Ed25519PrivateKey.generate())
    beat = HeartbeatBody(interval_s=60, uptime_s=60, uplink="offline", unacked=0, devices_online=2, devices_total=2)
    recorder = Recorder(Outbox(path, 64 * 1024**2), STATION, key, OutboxSection(path=path), SystemClock())
    recorder.start()
    for _ in range(3):
        recorder.submit(beat.intent(SystemClock().wall_ms()))
    wait_until(lambda: recorder.status().head_seq == 3, 10, "three records")
    recorder.stop()
    with sqlite3.connect(path) as db:
        damaged = "CAST(replace(canonical, X'2275707469', X'2276707469') AS BLOB)"  # "upti… becomes "vpti…
        db.execute(f"UPDATE record SET canonical = {damaged} WHERE seq = 2")
    found: list[Damage] = []
    list(OutboxReader(path, found.append).read(1, 3))
    recorder = Recorder(Outbox(path, 64 * 1024**2), STATION, key, OutboxSection(path=path), SystemClock())
    recorder.start()
    for damage in found:
        recorder.submit(damage_alarm(damage, SystemClock().wall_ms()))
    wait_until(lambda: recorder.status().head_seq == 3 + len(found), 10, "the alarm")
    recorder.stop()
    stored = [json.loads(record.canonical) for record in OutboxReader(path).read(4, 10**6)]
    return [record for record in stored if record["type"] == "alarm"]


@pytest.fixture(scope="module")
def station_records() -> list[Json]:
    stories = [*_nozzle_story(), *_device_story(), *tank_story(), *vapour_story(), *pressure_story()]
    return [_record(record) for record in _seal(stories)]


def _unsealable_story(folder: Path) -> list[Json]:
    """Two heartbeats with a count beyond 2^53, then a sane one: the alarm raised once, then cleared."""
    outbox = Outbox(folder / "outbox.sqlite", 64 * 1024**2)
    recorder = Recorder(
        outbox,
        STATION,
        DeviceKey.from_private(Ed25519PrivateKey.generate()),
        OutboxSection(path=outbox.path),
        SystemClock(),
    )
    recorder.start()
    for unacked in (2**60, 2**61, 0):
        beat = HeartbeatBody(
            interval_s=60, uptime_s=60, uplink="offline", unacked=unacked, devices_online=0, devices_total=0
        )
        recorder.submit(beat.intent(SystemClock().wall_ms()))
    wait_until(lambda: recorder.status().head_seq >= 3, 10, "the alarm, the heartbeat and the clearing")
    recorder.stop()
    stored = [json.loads(record.canonical) for record in OutboxReader(outbox.path).read(1, 10**6)]
    return [record for record in stored if record["type"] == "alarm"]


@pytest.fixture(scope="module")
def outbox_alarms(tmp_path_factory: pytest.TempPathFactory) -> list[Json]:
    full = OutboxFull("outbox full while appending 2 record(s): database or disk is full")
    failing = OutboxError("outbox failed while appending 2 record(s): disk I/O error")
    return [
        *_outbox_story(tmp_path_factory.mktemp("full"), full),
        *_outbox_story(tmp_path_factory.mktemp("failing"), failing),
        *_corrupt_story(tmp_path_factory.mktemp("corrupt")),
        *_unsealable_story(tmp_path_factory.mktemp("unsealable")),
    ]


@pytest.fixture(scope="module")
def made_alarms(station_records: list[Json], outbox_alarms: list[Json]) -> list[Json]:
    return [record for record in station_records if record["type"] == "alarm"] + outbox_alarms


def _documented_keys(body: Json) -> tuple[list[str], dict[str, Json]]:
    """The evidence keys alarm.json names for this alarm's kind and state, and its key patterns."""
    kind = contract_docs.ALARM_KINDS[body["kind"]]
    if body["state"] == "raised" or kind.cleared_evidence is None:
        return list(kind.evidence), {}
    return list(kind.cleared_evidence), kind.cleared_patterns


def test_the_code_raises_and_clears_every_documented_alarm_kind(made_alarms: list[Json]) -> None:
    """The stories above make each documented kind raised and cleared, and no kind that is not documented."""
    made = {(record["body"]["kind"], record["body"]["state"]) for record in made_alarms}
    assert made == {
        (name, state)
        for name, kind in contract_docs.ALARM_KINDS.items()
        for state in (("raised",) if kind.raised_only else ("raised", "cleared"))
    }


def test_alarm_evidence_is_exactly_what_the_contract_documents(made_alarms: list[Json]) -> None:
    """Each alarm the code makes carries the documented evidence keys of its kind and state, and no others."""
    for record in made_alarms:
        body = record["body"]
        keys, patterns = _documented_keys(body)
        extra = {key for key in body["evidence"] if key not in keys}
        assert all(any(re.match(pattern, key) for pattern in patterns) for key in extra), (body, extra)
        assert set(keys) <= set(body["evidence"]), body


def test_every_alarm_kind_of_the_agent_is_documented() -> None:
    """An alarm kind added to agent.contract.records.AlarmKind without its evidence documented here fails."""
    assert set(contract_docs.ALARM_KINDS) == {str(kind) for kind in AlarmKind}


def test_samples_cover_every_body_type() -> None:
    """Adding a body class to agent.contract.records without a sample here fails."""
    assert {type(body) for body in SAMPLES} == set(BODY_TYPES)


def test_records_the_agent_seals_are_valid(
    sealed: list[SealedRecord], station_records: list[Json], outbox_alarms: list[Json]
) -> None:
    """Every sealed sample, and every record of the stories, passes record.json read as 2020-12 and as draft-07."""
    records = [*map(_record, sealed), *station_records, *outbox_alarms]
    assert {record["body"].get("kind") for record in records} >= set(EventKind)
    for validator in _validators("record.json"):
        for record in records:
            validator.validate(record)


def test_each_body_schema_stands_alone(sealed: list[SealedRecord], station_records: list[Json]) -> None:
    """A body validates against its type's schema file loaded on its own, without a registry."""
    schemas = _schemas()
    for record in [*map(_record, sealed), *station_records]:
        Draft202012Validator(schemas[f"{record['type']}.json"]).validate(record["body"])


def test_measured_and_unmeasured_sales_both_occur(station_records: list[Json]) -> None:
    """The nozzle story makes sales with every independent measurement and sales with none, as the page says."""
    sales = [record["body"] for record in station_records if record["type"] == "transaction"]
    measured = ("pulse_volume_ml", "deviation_ppm", "vapour_ml", "al_permille")
    assert any(all(isinstance(sale[key], int) for key in measured) for sale in sales)
    assert any(all(sale[key] is None for key in measured) for sale in sales)


def test_records_messages_the_agent_builds_are_valid(sealed: list[SealedRecord]) -> None:
    stored = [StoredRecord(record.seq, record.kid, record.canonical, record.sig) for record in sealed]
    message = build_records_message(stored, 1 << 20)
    assert message is not None and (message.first, message.last) == (1, len(sealed))
    for validator in _validators("records-message.json"):
        validator.validate(json.loads(message.payload))


def test_status_payloads_the_agent_publishes_are_valid() -> None:
    """Birth, goodbye and will, shaped as the uplink sends them."""
    problem = {
        "kind": "metering_deviation",
        "severity": "fault",
        "subject": "D01-N2",
        "since": "2026-11-27T08:10:00.000Z",
        "advice": "metering_deviation",
        "size": 10_000,
        "unit": "ppm",
        "members": [],
        "detail": None,
    }
    birth = {
        "faults": ["metering_deviation D01-N2"],
        "health": "fault",
        "problems": [problem],
        "ts": "2026-11-27T08:14:20.517Z",
        "kid": "21fe31dfa154a261",
        "version": "0.1.0",
    }
    payloads = [
        status_payload("online", **birth, head_seq=40),
        status_payload("offline", **birth, head_seq=40, reason="stopped"),
        status_payload("offline", reason="connection_lost", client_id=f"station-agent-{STATION}"),
    ]
    for validator in _validators("status.json"):
        for payload in payloads:
            validator.validate(json.loads(payload))
        assert not validator.is_valid({"state": "away"})
        assert not validator.is_valid({"state": "online", "health": "fine"})


def test_ack_schema() -> None:
    for validator in _validators("ack.json"):
        assert validator.is_valid({"upto": 0}) and validator.is_valid({"upto": 42})
        assert not validator.is_valid({"upto": -1})
        assert not validator.is_valid({"upto": 4.5})
        assert not validator.is_valid({})


def _transaction(sealed: list[SealedRecord]) -> Json:
    return next(record for record in map(_record, sealed) if record["type"] == "transaction")


def _event(sealed: list[SealedRecord], kind: str) -> Json:
    return next(record for record in map(_record, sealed) if record["body"].get("kind") == kind)


def _set(path: str, value: object) -> Callable[[Json], None]:
    def change(record: Json) -> None:
        *parents, last = path.split(".")
        node = record
        for part in parents:
            node = node[part]
        node[last] = value

    return change


def _delete(path: str) -> Callable[[Json], None]:
    def change(record: Json) -> None:
        *parents, last = path.split(".")
        node = record
        for part in parents:
            node = node[part]
        del node[last]

    return change


BAD_TRANSACTIONS: dict[str, Callable[[Json], None]] = {
    "float in body": _set("body.volume_ml", 30120.5),
    "float in an added body field": _set("body.temperature", 15.5),
    "float nested in an added body field": _set("body.extra", {"list": [1, 2.5]}),
    "string for an integer": _set("body.amount_fen", "23132"),
    "deviation_ppm as a string": _set("body.deviation_ppm", "332"),
    "pulse volume with a fraction": _set("body.pulse_volume_ml", 30110.5),
    "A/L as a ratio": _set("body.al_permille", 1.08),
    "new measurement missing": _delete("body.vapour_ml"),
    "boolean for an integer": _set("body.price_fen_per_l", True),
    "integer beyond 2**53 - 1": _set("body.totalizer_volume_ml_after", 2**53),
    "body field missing": _delete("body.tank"),
    "body time without milliseconds": _set("body.start", "2026-11-27T08:13:09Z"),
    "extra envelope key": _set("note", "hello"),
    "envelope key missing": _delete("prev"),
    "ts without milliseconds": _set("ts", "2026-11-27T08:15:02Z"),
    "ts with an offset": _set("ts", "2026-11-27T08:15:02.113+00:00"),
    "ts with microseconds": _set("ts", "2026-11-27T08:15:02.113000Z"),
    "seq 0": _set("seq", 0),
    "seq as a string": _set("seq", "1"),
    "v 2": _set("v", 2),
    "prev in upper case": _set("prev", "A" * 64),
    "prev too short": _set("prev", "0" * 63),
    "station with a slash": _set("station", "CQ/YB"),
    "body not an object": _set("body", [1, 2]),
    "empty type": _set("type", ""),
}


@pytest.mark.parametrize("change", BAD_TRANSACTIONS.values(), ids=BAD_TRANSACTIONS.keys())
def test_bad_records_are_rejected(sealed: list[SealedRecord], change: Callable[[Json], None]) -> None:
    record = copy.deepcopy(_transaction(sealed))
    change(record)
    for validator in _validators("record.json"):
        assert not validator.is_valid(record)


BAD_EVENTS: dict[str, tuple[str, Callable[[Json], None]]] = {
    "unknown event kind": ("device_online", _set("body.kind", "device_lost")),
    "kind of another body": ("device_online", _set("body.kind", "device_offline")),
    "no kind": ("agent_stop", _delete("body.kind")),
    "config hash in upper case": ("agent_start", _set("body.config_sha256", _SHA.upper())),
    "kid too long": ("agent_start", _set("body.kid", "0" * 32)),
    "K-factor as a string": ("device_identity", _set("body.k_factor", "10000")),
    "identity without firmware_id": ("device_identity", _delete("body.firmware_id")),
    "calibration of another parameter": ("calibration_change", _set("body.parameter", "pressure_pa")),
    "verified as a string": ("calibration_change", _set("body.verified", "yes")),
    "certificate as a number": ("calibration_change", _set("body.certificate", 42)),
}


@pytest.mark.parametrize(("kind", "change"), BAD_EVENTS.values(), ids=BAD_EVENTS.keys())
def test_bad_events_are_rejected(sealed: list[SealedRecord], kind: str, change: Callable[[Json], None]) -> None:
    record = copy.deepcopy(_event(sealed, kind))
    change(record)
    for validator in _validators("record.json"):
        assert not validator.is_valid(record)


def _alarm(records: list[Json], kind: str, state: str) -> Json:
    return copy.deepcopy(next(r for r in records if r["body"].get("kind") == kind and r["body"]["state"] == state))


BAD_ALARMS: dict[str, tuple[str, str, Callable[[Json], None]]] = {
    "state neither raised nor cleared": ("line_errors", "raised", _set("body.state", "active")),
    "float in evidence": ("metering_deviation", "raised", _set("body.evidence.deviation_ppm", 10_000.5)),
    "float in an added evidence key": ("metering_deviation", "cleared", _set("body.evidence.ratio", 0.99)),
    "object in evidence": ("line_errors", "raised", _set("body.evidence.by_device", {"pc1": 3})),
    "array in evidence": ("pulses_at_rest", "raised", _set("body.evidence.counts", [1, 2])),
    "documented key missing": ("metering_deviation", "raised", _delete("body.evidence.allowed_ml")),
    "string for an integer key": ("line_errors", "cleared", _set("body.evidence.attempts", "700")),
    "null where the kind has none": ("metering_deviation", "raised", _set("body.evidence.pulse_volume_ml", None)),
    "form neither jump nor step_back": ("totalizer_discontinuity", "raised", _set("body.evidence.form", "leap")),
    "at_rest as 0": ("totalizer_discontinuity", "raised", _set("body.evidence.at_rest", 0)),
    "raised silence without its line": ("device_silent", "raised", _delete("body.evidence.line")),
    "cleared silence as text": ("device_silent", "cleared", _set("body.evidence.silent_s", "85")),
    "skip of no sale numbers": ("transaction_skipped", "raised", _set("body.evidence.missing", 0)),
    "cleared skip without its sale number": ("transaction_skipped", "cleared", _delete("body.evidence.txn_no")),
    "certificate as a number": ("calibration_unverified", "raised", _set("body.evidence.certificate", 42)),
    "outbox used_bytes below -1": ("outbox_full", "raised", _set("body.evidence.used_bytes", -2)),
    "dropped per type as text": ("outbox_failing", "cleared", _set("body.evidence.dropped_heartbeat", "7")),
    "evidence not an object": ("outbox_full", "cleared", _set("body.evidence", [1])),
}


@pytest.mark.parametrize(("kind", "state", "change"), BAD_ALARMS.values(), ids=BAD_ALARMS.keys())
def test_bad_alarms_are_rejected(
    made_alarms: list[Json], kind: str, state: str, change: Callable[[Json], None]
) -> None:
    """Each change turns an alarm the code made, valid before, into one record.json rejects."""
    record = _alarm(made_alarms, kind, state)
    for validator in _validators("record.json"):
        assert validator.is_valid(record)
    change(record)
    for validator in _validators("record.json"):
        assert not validator.is_valid(record)


def test_alarms_of_other_kinds_and_added_evidence_stay_valid(made_alarms: list[Json]) -> None:
    """v1 may add alarm kinds and evidence keys: an unknown kind with any scalar evidence, and a known kind with
    an extra key, pass; a float in either does not."""
    unknown = _alarm(made_alarms, "line_errors", "raised")
    unknown["body"].update(kind="tank_water_high", subject="T1", evidence={"water_ml": 41_000, "probe": "p1"})
    added = _alarm(made_alarms, "metering_deviation", "raised")
    added["body"]["evidence"]["temp_cC"] = 1525
    for validator in _validators("record.json"):
        assert validator.is_valid(unknown) and validator.is_valid(added)
        unknown["body"]["evidence"]["water_ml"] = 41.5
        assert not validator.is_valid(unknown)
        unknown["body"]["evidence"]["water_ml"] = 41_000


def test_documented_additions_stay_valid(sealed: list[SealedRecord]) -> None:
    """A new optional body field without floats, and a record of a type not documented yet, pass the v1 schemas."""
    added = copy.deepcopy(_transaction(sealed))
    added["body"]["pump_temp_cC"] = 1525
    added["body"]["detail"] = {"readings": [1, "two", None, True]}
    reserved = copy.deepcopy(_transaction(sealed))
    reserved["type"] = "nozzle_health"
    reserved["body"] = {"nozzle": "D01-N1", "fuellings": 31, "temp_cC": 1525}
    for validator in _validators("record.json"):
        validator.validate(added)
        validator.validate(reserved)


BAD_MESSAGES: dict[str, Callable[[Json], None]] = {
    "kid in upper case": lambda m: m.update(kid=m["kid"].upper()),
    "kid too short": lambda m: m.update(kid=m["kid"][:15]),
    "no records": lambda m: m.update(records=[]),
    "extra message key": lambda m: m.update(station=STATION),
    "signature one character short": lambda m: m["records"][0].update(sig=m["records"][0]["sig"][1:]),
    "signature without padding": lambda m: m["records"][0].update(sig=m["records"][0]["sig"].rstrip("=")),
    "signature in base64url": lambda m: m["records"][0].update(sig="-_" + m["records"][0]["sig"][2:]),
    "signature with unused bits set": lambda m: m["records"][0].update(sig=m["records"][0]["sig"][:85] + "B=="),
    "extra item key": lambda m: m["records"][0].update(kid=m["kid"]),
    "bad record inside": lambda m: m["records"][0]["record"].update(seq=0),
}


@pytest.mark.parametrize("change", BAD_MESSAGES.values(), ids=BAD_MESSAGES.keys())
def test_bad_records_messages_are_rejected(sealed: list[SealedRecord], change: Callable[[Json], None]) -> None:
    stored = [StoredRecord(record.seq, record.kid, record.canonical, record.sig) for record in sealed[:3]]
    message = build_records_message(stored, 1 << 20)
    assert message is not None
    payload = json.loads(message.payload)
    for validator in _validators("records-message.json"):
        assert validator.is_valid(payload)
    change(payload)
    for validator in _validators("records-message.json"):
        assert not validator.is_valid(payload)


# -- the worked example ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example() -> Json:
    loaded: Json = json.loads((DOCS / "contract" / "example.json").read_text(encoding="utf-8"))
    return loaded


def test_example_canonical_bytes_and_hashes_hold(example: Json) -> None:
    """Each example record's canonical bytes are its RFC 8785 form, and its SHA-256 is the next record's prev."""
    items = example["records"]
    for item in items:
        assert rfc8785.dumps(item["record"]) == item["canonical"].encode()
        assert hashlib.sha256(item["canonical"].encode()).hexdigest() == item["sha256"]
    for before, after in itertools.pairwise(items):
        assert after["record"]["prev"] == before["sha256"]
        assert after["record"]["seq"] == before["record"]["seq"] + 1


def test_example_signatures_verify_with_the_published_key(example: Json) -> None:
    key = example["key"]
    public = Ed25519PrivateKey.from_private_bytes(RFC8032_TEST1_SECRET).public_key()
    assert public.public_bytes_raw().hex() == key["public_raw_hex"]
    assert (
        DeviceKey.from_private(Ed25519PrivateKey.from_private_bytes(RFC8032_TEST1_SECRET)).public_pem()
        == (key["public_pem"])
    )
    assert kid_of(Suite.ED25519, bytes.fromhex(key["public_raw_hex"])) == key["kid"]
    for item in example["records"]:
        public.verify(base64.b64decode(item["sig"], validate=True), item["canonical"].encode())


def test_example_is_what_the_agent_makes(example: Json) -> None:
    """Sealing the example's intents with the same key gives the same bytes, signatures and message; the
    transaction has every field a TransactionBody has now."""
    (transaction,) = [item["record"] for item in example["records"] if item["record"]["type"] == "transaction"]
    assert transaction["body"] == dataclasses.asdict(TransactionBody(**transaction["body"]))
    key = DeviceKey.from_private(Ed25519PrivateKey.from_private_bytes(RFC8032_TEST1_SECRET))
    records = [item["record"] for item in example["records"]]
    intents = [decode_body(RecordType(r["type"]), r["body"]).intent(parse_ts(r["ts"])) for r in records]
    head = ChainHead(records[0]["seq"] - 1, records[0]["prev"], None)
    resealed, _ = seal(intents, head, records[0]["station"], key)
    for record, item in zip(resealed, example["records"], strict=True):
        assert record.canonical.decode() == item["canonical"]
        assert base64.b64encode(record.sig).decode() == item["sig"]
    stored = [StoredRecord(record.seq, record.kid, record.canonical, record.sig) for record in resealed]
    message = build_records_message(stored, 1 << 20)
    assert message is not None and message.payload.decode() == example["payload"]
    for validator in _validators("records-message.json"):
        validator.validate(json.loads(example["payload"]))


def _fenced(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", CONTRACT_MD.read_text(encoding="utf-8"), re.M | re.S)


def test_markdown_quotes_the_example(example: Json) -> None:
    """The record, its canonical bytes, hash and signature in contract.md are those of example.json."""
    text = CONTRACT_MD.read_text(encoding="utf-8")
    shown = example["records"][-1]
    assert [json.loads(block) for block in _fenced("json")] == [shown["record"]]
    plain = [block.strip() for block in _fenced("text")]
    for item in example["records"]:
        assert item["canonical"] in plain
    assert shown["sha256"] in plain and shown["sig"] in plain
    assert f"{len(shown['canonical'].encode())} bytes" in text
    assert example["key"]["public_raw_hex"] in text and example["key"]["kid"] in text


def test_markdown_python_runs(
    example: Json, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Python on the page runs as printed, from the docs folder, and prints the example record's hash, as the
    comment beside it says."""
    monkeypatch.chdir(DOCS)
    blocks = _fenced("python")
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, str(CONTRACT_MD), "exec"), {})
    digest = example["records"][-1]["sha256"]
    assert capsys.readouterr().out.split() == [digest]
    assert f"# {digest}" in blocks[0]


def test_markdown_names_every_body_field_and_event_kind() -> None:
    text = CONTRACT_MD.read_text(encoding="utf-8")
    for cls in BODY_TYPES:
        for field in _field_names(cls):
            assert f"`{field}`" in text, f"{cls.__name__}.{field} is not in docs/contract.md"
    for kind in EventKind:
        assert f"`{kind}`" in text
    for record_type in RecordType:
        assert f"`{record_type}`" in text


def _sections(level: str) -> dict[str, str]:
    """The page's sections at one heading level (e.g. "####"), by heading text, each up to the next heading."""
    parts = re.split(rf"^{level} (.+)$", CONTRACT_MD.read_text(encoding="utf-8"), flags=re.M)
    return {
        title: re.split(r"^#", body, maxsplit=1, flags=re.M)[0]
        for title, body in zip(parts[1::2], parts[2::2], strict=True)
    }


def test_markdown_documents_every_alarm_kind_and_its_evidence() -> None:
    """Each kind has a row in the table of kinds, and a section naming every evidence key of alarm.json."""
    text = CONTRACT_MD.read_text(encoding="utf-8")
    sections = _sections("####")
    for name, kind in contract_docs.ALARM_KINDS.items():
        assert f"\n| `{name}` | " in text, f"{name} has no row in the alarm kinds table"
        (section,) = [body for title, body in sections.items() if f"`{name}`" in title]
        for key in [*kind.evidence, *(kind.cleared_evidence or {})]:
            assert f"| `{key}` |" in section, f"evidence {key} of {name} is not in its section"


def test_asyncapi_names_the_five_topics_and_existing_schemas() -> None:
    text = (DOCS / "contract" / "asyncapi.yaml").read_text(encoding="utf-8")
    addresses = set(re.findall(r"^    address: '(.*)'$", text, re.M))
    topics = Topics.for_station("{prefix}", "{station}")
    assert addresses == {topics.records, topics.status, topics.ack, topics.cmd, topics.cmd_reply}
    referenced = set(re.findall(r"\$ref: '\./schemas/([\w-]+\.json)'", text))
    assert referenced == {"records-message.json", "status.json", "ack.json"}
    assert all((SCHEMAS / name).exists() for name in referenced)
