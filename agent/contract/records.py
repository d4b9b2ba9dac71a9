"""What the station says to the platform: the record types of contract v1 and their bodies.

The station logic never builds JSON by hand: it makes a body (a frozen dataclass per record type, with units in
the field names and integers for every metrological quantity) and turns it into a `RecordIntent`, which is a
record without its place in the chain. The ledger gives it `seq`, `prev` and a signature; sealing is the one
place a body becomes a JSON object (`Body.as_json`), and `agent.contract.decode` the one way back, so everything
in between reads typed fields. The JSON Schemas in `docs/contract/` are generated from these classes, so the
documentation cannot drift from what is sent.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import ClassVar, Literal, TypeAlias

JsonScalar: TypeAlias = str | int | bool | None
JsonValue: TypeAlias = JsonScalar | list["JsonValue"] | dict[str, "JsonValue"]

CONTRACT_VERSION = 1


class RecordType(StrEnum):
    TRANSACTION = "transaction"
    TANK_INVENTORY = "tank_inventory"
    DELIVERY = "delivery"
    RECONCILIATION = "reconciliation"
    VAPOUR = "vapour"
    ALARM = "alarm"
    EVENT = "event"
    HEARTBEAT = "heartbeat"
    DAILY_SUMMARY = "daily_summary"
    TANK_PRESSURE = "tank_pressure"
    CHAIN_RESET = "chain_reset"


def format_ts(ts_ms: int) -> str:
    """RFC 3339 UTC with milliseconds, the only time format of the contract: `2026-11-27T08:15:02.113Z`."""
    seconds, millis = divmod(ts_ms, 1000)
    moment = time.gmtime(seconds)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031 - the fastest way, and this runs per record
        moment.tm_year,
        moment.tm_mon,
        moment.tm_mday,
        moment.tm_hour,
        moment.tm_min,
        moment.tm_sec,
        millis,
    )


TS_DIGITS = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{3})Z", re.ASCII)
"""Exactly what format_ts writes: read by its digits, without `strptime`."""


def parse_ts(text: str) -> int:
    """The inverse of format_ts: milliseconds since the Unix epoch. What format_ts writes is read by its digits:
    `strptime` was most of the cost of a sale read back at start (three times each: the record and its sale's
    start and end). Any other text, and a date that does not exist, goes to `strptime` as before, so what is
    accepted and how a wrong one is refused is unchanged."""
    moment = _written_moment(text) or datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1000 + moment.microsecond // 1000


def _written_moment(text: str) -> datetime | None:
    digits = TS_DIGITS.fullmatch(text)
    if digits is None:
        return None
    year, month, day, hour, minute, second, millis = map(int, digits.groups())
    try:
        return datetime(year, month, day, hour, minute, second, millis * 1000, tzinfo=UTC)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Cursor:
    """A piece of station state committed in the same transaction as the record that advances it.

    This is how the agent knows, after a kill -9, which controller transactions it has already turned into
    records: the record and the cursor are durable together or not at all.
    """

    key: str
    value: int


class Body:
    """A record body. Subclasses are frozen dataclasses and name their record type."""

    __slots__ = ()
    record_type: ClassVar[RecordType]
    added_later: ClassVar[dict[str, JsonScalar]] = {}
    """Fields added to the body after records were first made, with the value an older record means by leaving
    them out: the decoder fills them in, so a restart reads back what an earlier version stored."""

    def intent(self, ts_ms: int, *cursors: Cursor) -> RecordIntent:
        """The intent of a record with this body."""
        return RecordIntent(self.record_type, ts_ms, self, cursors)

    def as_json(self) -> dict[str, JsonValue]:
        """The body as the JSON object sealing writes; nothing else turns a body into a dict. Fields are taken
        as they are (no deep copy, unlike `dataclasses.asdict`): bodies are frozen and hold JSON values only."""
        names = _FIELD_NAMES.get(type(self))
        if names is None:
            names = _FIELD_NAMES[type(self)] = tuple(f.name for f in dataclasses.fields(self))  # type: ignore[arg-type]
        return {name: getattr(self, name) for name in names}


_FIELD_NAMES: dict[type[Body], tuple[str, ...]] = {}


@dataclass(frozen=True, slots=True)
class RecordIntent:
    """A record the station wants made: its type, when it happened and its body, but no seq yet."""

    type: RecordType
    ts_ms: int
    body: Body
    cursors: tuple[Cursor, ...] = ()


@dataclass(frozen=True, slots=True)
class HeartbeatBody(Body):
    """Proof that the agent ran: one every `heartbeat.interval_s`, online or not."""

    record_type: ClassVar[RecordType] = RecordType.HEARTBEAT
    interval_s: int
    uptime_s: int
    uplink: Literal["online", "offline"]
    unacked: int
    devices_online: int
    devices_total: int


class EventKind(StrEnum):
    AGENT_START = "agent_start"
    AGENT_STOP = "agent_stop"
    UNCLEAN_STOP = "unclean_stop"
    CLOCK_JUMP = "clock_jump"
    CONFIG_CHANGE = "config_change"
    DEVICE_ONLINE = "device_online"
    DEVICE_OFFLINE = "device_offline"
    CONTROLLER_BASELINE = "controller_baseline"
    DEVICE_IDENTITY = "device_identity"
    CALIBRATION_CHANGE = "calibration_change"
    TANK_TEST = "tank_test"
    COMMAND_ACCEPTED = "command_accepted"
    COMMAND_REFUSED = "command_refused"
    KEY_ROTATION = "key_rotation"
    INTERNAL_ERROR = "internal_error"
    GAUGE_REPORT_UNAVAILABLE = "gauge_report_unavailable"
    ACK_REFUSED = "ack_refused"
    UPLINK_UNSTABLE = "uplink_unstable"


@dataclass(frozen=True, slots=True)
class AgentStartBody(Body):
    record_type: ClassVar[RecordType] = RecordType.EVENT
    version: str
    config_sha256: str
    kid: str
    kind: Literal[EventKind.AGENT_START] = EventKind.AGENT_START


@dataclass(frozen=True, slots=True)
class AgentStopBody(Body):
    record_type: ClassVar[RecordType] = RecordType.EVENT
    reason: str
    uptime_s: int
    kind: Literal[EventKind.AGENT_STOP] = EventKind.AGENT_STOP


@dataclass(frozen=True, slots=True)
class UncleanStopBody(Body):
    """The agent found, on start, that it had not stopped cleanly: killed, crashed or a power cut."""

    record_type: ClassVar[RecordType] = RecordType.EVENT
    last_record_seq: int
    last_record_ts: str | None
    kind: Literal[EventKind.UNCLEAN_STOP] = EventKind.UNCLEAN_STOP


@dataclass(frozen=True, slots=True)
class ClockJumpBody(Body):
    """The wall clock stepped: `from_ts` is where it was expected to be, `to_ts` where it is."""

    record_type: ClassVar[RecordType] = RecordType.EVENT
    from_ts: str
    to_ts: str
    jump_ms: int
    across_restart: bool
    kind: Literal[EventKind.CLOCK_JUMP] = EventKind.CLOCK_JUMP


@dataclass(frozen=True, slots=True)
class ConfigChangeBody(Body):
    record_type: ClassVar[RecordType] = RecordType.EVENT
    old_sha256: str
    new_sha256: str
    kind: Literal[EventKind.CONFIG_CHANGE] = EventKind.CONFIG_CHANGE


@dataclass(frozen=True, slots=True)
class DeviceOnlineBody(Body):
    record_type: ClassVar[RecordType] = RecordType.EVENT
    device: str
    line: str
    kind: Literal[EventKind.DEVICE_ONLINE] = EventKind.DEVICE_ONLINE


@dataclass(frozen=True, slots=True)
class DeviceOfflineBody(Body):
    record_type: ClassVar[RecordType] = RecordType.EVENT
    device: str
    line: str
    reason: str
    kind: Literal[EventKind.DEVICE_OFFLINE] = EventKind.DEVICE_OFFLINE


@dataclass(frozen=True, slots=True)
class ControllerBaselineBody(Body):
    """The first time the agent reads a nozzle's controller, it notes where its counters stand."""

    record_type: ClassVar[RecordType] = RecordType.EVENT
    nozzle: str
    controller: str
    txn_no: int
    totalizer_volume_ml: int
    totalizer_amount_fen: int | None
    kind: Literal[EventKind.CONTROLLER_BASELINE] = EventKind.CONTROLLER_BASELINE


@dataclass(frozen=True, slots=True)
class DeviceIdentityBody(Body):
    """What a controller says of its calibration and firmware the first time the agent reads it."""

    record_type: ClassVar[RecordType] = RecordType.EVENT
    device: str
    k_factor: int | None
    firmware_id: int | None
    kind: Literal[EventKind.DEVICE_IDENTITY] = EventKind.DEVICE_IDENTITY


@dataclass(frozen=True, slots=True)
class CalibrationChangeBody(Body):
    """A controller's calibration parameter or firmware changed; `verified` if the new value is the one a
    verification certificate in the config names."""

    record_type: ClassVar[RecordType] = RecordType.EVENT
    device: str
    parameter: Literal["k_factor", "firmware_id"]
    old: int | None
    new: int
    verified: bool
    certificate: str | None
    kind: Literal[EventKind.CALIBRATION_CHANGE] = EventKind.CALIBRATION_CHANGE


@dataclass(frozen=True, slots=True)
class TankTestBody(Body):
    """A tank's leak and unrecorded-sales test as it stands at the end of a local day (agent.station.leak):
    `pass`, `fail` or `inconclusive`, with the estimates and the smallest loss the data could have shown."""

    record_type: ClassVar[RecordType] = RecordType.EVENT
    tank: str
    status: Literal["pass", "fail", "inconclusive"]
    cause: Literal["leak", "unrecorded_sales"] | None
    span_h: int
    hours: int
    quiet_hours: int
    sold_20_ml: int
    leak_ml_per_h: int
    leak_threshold_ml_per_h: int
    min_detectable_leak_ml_per_h: int | None
    unrecorded_ppm: int
    unrecorded_threshold_ppm: int
    min_detectable_unrecorded_ppm: int | None
    kind: Literal[EventKind.TANK_TEST] = EventKind.TANK_TEST


@dataclass(frozen=True, slots=True)
class CommandAcceptedBody(Body):
    """A platform command passed every check (agent.commands) and is being carried out: the record that the
    platform, not someone on the network, asked for it."""

    record_type: ClassVar[RecordType] = RecordType.EVENT
    command_id: str
    cmd: str
    args: dict[str, JsonScalar]
    issued: str
    expires: str
    platform_kid: str
    kind: Literal[EventKind.COMMAND_ACCEPTED] = EventKind.COMMAND_ACCEPTED


@dataclass(frozen=True, slots=True)
class CommandRefusedBody(Body):
    """A message on the command topic was refused. Recorded at most `refusals_per_hour` an hour; the ones not
    recorded are counted in `suppressed` of the next one, so a flood costs counts, not records."""

    record_type: ClassVar[RecordType] = RecordType.EVENT
    command_id: str | None
    cmd: str | None
    reason: str
    detail: str
    suppressed: int
    suppressed_by_reason: dict[str, int]
    kind: Literal[EventKind.COMMAND_REFUSED] = EventKind.COMMAND_REFUSED


@dataclass(frozen=True, slots=True)
class KeyRotationBody(Body):
    """The device key changes: signed by the old key, this record hands trust to the new one, and every later
    record is signed by it. `new_public_key` is the raw 32-byte Ed25519 key in standard base64."""

    record_type: ClassVar[RecordType] = RecordType.EVENT
    old_kid: str
    new_kid: str
    new_public_key: str
    command_id: str | None
    kind: Literal[EventKind.KEY_ROTATION] = EventKind.KEY_ROTATION


@dataclass(frozen=True, slots=True)
class InternalErrorBody(Body):
    """A loop of the agent met an error it did not expect while handling one item, contained it and went on
    (agent/containment.py). At most one per loop per minute; `count` is how many errors it stands for."""

    record_type: ClassVar[RecordType] = RecordType.EVENT
    loop: str
    item: str
    error: str
    detail: str
    count: int
    kind: Literal[EventKind.INTERNAL_ERROR] = EventKind.INTERNAL_ERROR


class AlarmKind(StrEnum):
    """Every alarm the agent raises; each module that raises one says when it is raised and cleared, and
    docs/contract.md gives its evidence. The contract allows new kinds as documented additions."""

    METERING_DEVIATION = "metering_deviation"
    METERING_BIAS = "metering_bias"
    ENCODER_NO_PULSES = "encoder_no_pulses"
    TRANSACTION_SKIPPED = "transaction_skipped"
    TRANSACTION_COUNTER_RESET = "transaction_counter_reset"
    TOTALIZER_DISCONTINUITY = "totalizer_discontinuity"
    PULSES_AT_REST = "pulses_at_rest"
    CALIBRATION_UNVERIFIED = "calibration_unverified"
    DEVICE_SILENT = "device_silent"
    LINE_ERRORS = "line_errors"
    TANK_LEAK = "tank_leak"
    UNRECORDED_SALES = "unrecorded_sales"
    OUTBOX_FULL = "outbox_full"
    OUTBOX_FAILING = "outbox_failing"
    VAPOUR_PUMP_FAULT = "vapour_pump_fault"
    VAPOUR_AL_WARNING = "vapour_al_warning"
    VAPOUR_AL_ALARM = "vapour_al_alarm"
    SLOW_DISPENSER = "slow_dispenser"
    TANK_PRESSURE_ZERO_WARNING = "tank_pressure_zero_warning"
    TANK_PRESSURE_ZERO_ALARM = "tank_pressure_zero_alarm"
    TANK_PRESSURE_OVER_WARNING = "tank_pressure_over_warning"
    TANK_PRESSURE_OVER_ALARM = "tank_pressure_over_alarm"
    TANK_PRESSURE_BAND_WARNING = "tank_pressure_band_warning"
    TANK_PRESSURE_BAND_ALARM = "tank_pressure_band_alarm"
    OUTBOX_CORRUPT = "outbox_corrupt"
    DEVICE_VALUE_FAULT = "device_value_fault"
    RECORD_UNSEALABLE = "record_unsealable"


@dataclass(frozen=True, slots=True)
class GaugeReportUnavailableBody(Body):
    """A tank gauge refused one of its optional reports (`i202` deliveries, `i205` alarms): its console has it
    switched off, or its firmware lacks it. The agent stops asking for it, asks again once a day, and goes on
    without it; without `i202` deliveries are inferred from the inventory (`source` `detected`). Made once per
    gauge and report, when the refusal is first seen, and again with `available` true when it answers again."""

    record_type: ClassVar[RecordType] = RecordType.EVENT
    device: str
    report: str
    available: bool
    reason: str
    kind: Literal[EventKind.GAUGE_REPORT_UNAVAILABLE] = EventKind.GAUGE_REPORT_UNAVAILABLE


class AckRefusal(StrEnum):
    """Why a message on the ack topic was refused (agent/uplink/session.py)."""

    TOO_LARGE = "too_large"
    TOO_DEEP = "too_deep"
    BAD_NUMBER = "bad_number"
    NOT_JSON = "not_json"
    NOT_AN_ACK = "not_an_ack"


@dataclass(frozen=True, slots=True)
class AckRefusedBody(Body):
    """Messages on the ack topic were refused: anyone who may publish there (or a retained message, handed again
    at every connect) can send the agent anything. At most one a minute; `count` is how many refusals it stands
    for, the reason and detail are the last one's."""

    record_type: ClassVar[RecordType] = RecordType.EVENT
    reason: AckRefusal
    detail: str
    count: int
    payload_bytes: int
    kind: Literal[EventKind.ACK_REFUSED] = EventKind.ACK_REFUSED


class UplinkInstability(StrEnum):
    """What keeps the uplink from a steady session with a platform that keeps what it acked."""

    SESSIONS_SHORT = "sessions_short"
    TAKEN_OVER = "taken_over"
    PLATFORM_ACKED_LESS = "platform_acked_less"


@dataclass(frozen=True, slots=True)
class UplinkUnstableBody(Body):
    """The broker keeps ending the uplink's sessions, another client took its client id, or the platform acked
    less than it had. At most one a minute per reason; `count` is how many occurrences it stands for.
    `believed_upto` and `upto` are set for platform_acked_less only."""

    record_type: ClassVar[RecordType] = RecordType.EVENT
    reason: UplinkInstability
    count: int
    believed_upto: int | None
    upto: int | None
    kind: Literal[EventKind.UPLINK_UNSTABLE] = EventKind.UPLINK_UNSTABLE


class AlarmState(StrEnum):
    RAISED = "raised"
    CLEARED = "cleared"


@dataclass(frozen=True, slots=True)
class AlarmBody(Body):
    """An alarm is raised once and cleared once; `evidence` holds the numbers that prove it, per kind."""

    record_type: ClassVar[RecordType] = RecordType.ALARM
    kind: str
    state: AlarmState
    subject: str
    evidence: dict[str, JsonScalar]


@dataclass(frozen=True, slots=True)
class TransactionBody(Body):
    """One completed fuelling as the pump controller reported it, with the independent measurements beside
    it: the encoder's pulses (`pulse_volume_ml`, and the controller's deviation from it in ppm) and the
    vapour recovered (`vapour_ml`, A/L in per-mille). Those are null when the nozzle has no such meter or
    the fuelling could not be measured whole (e.g. the counter was offline)."""

    record_type: ClassVar[RecordType] = RecordType.TRANSACTION
    nozzle: str
    dispenser: str
    grade: str
    tank: str
    controller: str
    txn_no: int
    start: str
    end: str
    volume_ml: int
    amount_fen: int
    price_fen_per_l: int
    totalizer_volume_ml_before: int | None
    totalizer_volume_ml_after: int
    totalizer_amount_fen_before: int | None
    totalizer_amount_fen_after: int | None
    pulse_volume_ml: int | None
    deviation_ppm: int | None
    vapour_ml: int | None
    al_permille: int | None


@dataclass(frozen=True, slots=True)
class TankInventoryBody(Body):
    """A tank's contents now: at its temperature and at 20 degC (GB/T 1885), with the levels behind them."""

    record_type: ClassVar[RecordType] = RecordType.TANK_INVENTORY
    tank: str
    product: str
    volume_ml: int
    volume_20_ml: int
    ullage_ml: int
    height_um: int
    water_um: int
    temperature_cC: int
    delivery_in_progress: bool
    vcf_band: Literal["gasoline", "transition", "jet", "fuel_oil"]
    density_basis: Literal["20C", "15C"]


@dataclass(frozen=True, slots=True)
class DeliveryBody(Body):
    """A delivery into a tank: reported by the gauge, or seen by the agent as a rise that sales do not explain.

    `delivered_20_ml` is what arrived at 20 degC: the rise of the tank plus what was sold from it meanwhile."""

    record_type: ClassVar[RecordType] = RecordType.DELIVERY
    tank: str
    product: str
    source: Literal["gauge", "detected", "detected_report_unavailable"]
    start: str
    end: str
    start_volume_ml: int
    end_volume_ml: int
    start_volume_20_ml: int
    end_volume_20_ml: int
    sold_during_20_ml: int
    delivered_20_ml: int
    start_temperature_cC: int
    end_temperature_cC: int
    start_height_um: int
    end_height_um: int


@dataclass(frozen=True, slots=True)
class ReconciliationBody(Body):
    """A tank's books for an hour or a day, at 20 degC: what it held, received and sold, and what is missing.

    variance = opening - closing + delivered - sold: positive means fuel left the tank that no sale accounts
    for (a leak, unrecorded sales, a meter that gives too much), negative the opposite. `start`/`end` name the
    period; `opening_ts`/`closing_ts` are when its opening and closing levels were read: the first reading
    past the boundary, later while a delivery is under way. `complete` is false when the agent did not see
    the whole period (it started, or the gauge was silent, within it)."""

    record_type: ClassVar[RecordType] = RecordType.RECONCILIATION
    tank: str
    product: str
    period: Literal["hour", "day"]
    start: str
    end: str
    opening_ts: str
    closing_ts: str
    opening_volume_20_ml: int
    closing_volume_20_ml: int
    delivered_20_ml: int
    sold_20_ml: int
    sales: int
    temperature_cC: int
    variance_ml: int
    cumulative_variance_ml: int
    complete: bool


@dataclass(frozen=True, slots=True)
class VapourBody(Body):
    """A nozzle's vapour recovery over one local day (agent.station.vapour): what was counted, how the A/L
    looked, and the verdict of the configured rule set. It also carries what the next day's judgement starts
    from (counts rolled over from thin days, consecutive warning or failing days, the pump-fault run), so that the
    agent's own records are all it needs to resume after a restart."""

    record_type: ClassVar[RecordType] = RecordType.VAPOUR
    added_later: ClassVar[dict[str, JsonScalar]] = {"daily_fail_days": 0, "weekly_fail_days": 0}
    day: str
    nozzle: str
    dispenser: str
    grade: str
    rule_set: Literal["gb20952", "carb"]
    fuellings: int
    counted: int
    passed: int
    slow: int
    pump_fault: int
    pump_fault_run: int
    al_sum_permille: int
    al_mean_permille: int | None
    al_stdev_permille: int | None
    carried_fuellings: int
    carried_passed: int
    carried_slow: int
    carried_days: int
    judged_fuellings: int
    judged_passed: int
    judged_slow: int
    pass_share_permille: int | None
    week_counted: int
    week_al_mean_permille: int | None
    verdict: Literal["pass", "warning", "alarm", "inconclusive"]
    warning_days: int
    daily_fail_days: int
    weekly_fail_days: int
    rolled_over: bool


@dataclass(frozen=True, slots=True)
class TankPressureBody(Body):
    """A tank vapour-space pressure sensor summed up over an interval (every `record_interval_s`) or a local
    day (agent.station.pressure). A day's record also holds the consecutive warning days of the daily rules,
    which is how they survive a restart."""

    record_type: ClassVar[RecordType] = RecordType.TANK_PRESSURE
    device: str
    period: Literal["interval", "day"]
    day: str | None
    start: str
    end: str
    readings: int
    mean_pa: int | None
    min_pa: int | None
    max_pa: int | None
    outside_band: int
    over_pressure: int
    zero_run_s: int
    outside_band_permille: int | None
    zero_warning_days: int | None
    band_warning_days: int | None


@dataclass(frozen=True, slots=True)
class NozzleDay:
    """A nozzle's sales of one day, and how far its totalizers moved beyond them."""

    nozzle: str
    grade: str
    sales: int
    volume_ml: int
    amount_fen: int
    totalizer_volume_ml_opening: int | None
    totalizer_volume_ml_closing: int
    totalizer_volume_ml_difference: int | None
    totalizer_amount_fen_opening: int | None
    totalizer_amount_fen_closing: int | None
    totalizer_amount_fen_difference: int | None


@dataclass(frozen=True, slots=True)
class GradeDay:
    grade: str
    sales: int
    volume_ml: int
    amount_fen: int


@dataclass(frozen=True, slots=True)
class TankDay:
    """A tank's own day books (its `reconciliation` of period `day`) as the summary repeats them."""

    tank: str
    product: str
    start: str
    end: str
    opening_volume_20_ml: int
    closing_volume_20_ml: int
    delivered_20_ml: int
    sold_20_ml: int
    sales: int
    variance_ml: int
    cumulative_variance_ml: int
    complete: bool


@dataclass(frozen=True, slots=True)
class DownPeriod:
    start: str
    end: str
    seconds: int


@dataclass(frozen=True, slots=True)
class Downtime:
    """How long the agent, the uplink or one device was down within a day; only the longest periods are listed,
    so that a flapping device cannot make the record grow without bound."""

    subject: str
    seconds: int
    periods: tuple[DownPeriod, ...]
    periods_left_out: int
    down_at_end: bool


@dataclass(frozen=True, slots=True)
class DailySummaryBody(Body):
    """The station's books of one local day (agent.station.daybooks): sales per nozzle and grade against the
    totalizers, the tanks' day books, and the hours the agent, the uplink or a device was down."""

    record_type: ClassVar[RecordType] = RecordType.DAILY_SUMMARY
    day: str
    zone: str
    start: str
    end: str
    complete: bool
    nozzles: tuple[NozzleDay, ...]
    grades: tuple[GradeDay, ...]
    tanks: tuple[TankDay, ...]
    agent_down: Downtime
    uplink_down: Downtime
    devices_down: tuple[Downtime, ...]
    alarms_raised: dict[str, int]

    def as_json(self) -> dict[str, JsonValue]:
        """The nested shapes become JSON objects here, not in `Body.as_json`, which runs for every record; this
        body is made once a day, so the deep copy costs nothing."""
        return dataclasses.asdict(self)


class ChainResetReason(StrEnum):
    """Why the agent could not go on from its outbox (contract v1.1, agent/ledger/continuity.py)."""

    OUTBOX_MISSING = "outbox_missing"
    OUTBOX_ROLLED_BACK = "outbox_rolled_back"
    OUTBOX_CORRUPT = "outbox_corrupt"
    OUTBOX_REFUSED = "outbox_refused"


@dataclass(frozen=True, slots=True)
class ChainResetBody(Body):
    """The agent lost its outbox (or part of it) and starts it again, above every seq it may have used before.

    Records `lost_first` .. `lost_last` (= this record's seq - 1) may have been made and can no longer be sent
    by the station: those the platform holds are genuine, those it lacks are gone. `known_seq` is the last
    record the agent knows it made (its durable anchor), and this record's `prev` is that record's SHA-256
    (`known_digest`), or 64 zeros if it knows of none."""

    record_type: ClassVar[RecordType] = RecordType.CHAIN_RESET
    reason: ChainResetReason
    detail: str
    lost_first: int
    lost_last: int
    known_seq: int
    known_digest: str
    known_ts: str | None
    set_aside: str | None


BODY_TYPES: tuple[type[Body], ...] = (
    HeartbeatBody,
    AgentStartBody,
    AgentStopBody,
    UncleanStopBody,
    ClockJumpBody,
    ConfigChangeBody,
    DeviceOnlineBody,
    DeviceOfflineBody,
    ControllerBaselineBody,
    DeviceIdentityBody,
    CalibrationChangeBody,
    TankTestBody,
    CommandAcceptedBody,
    CommandRefusedBody,
    KeyRotationBody,
    InternalErrorBody,
    GaugeReportUnavailableBody,
    AckRefusedBody,
    UplinkUnstableBody,
    AlarmBody,
    TransactionBody,
    TankInventoryBody,
    DeliveryBody,
    ReconciliationBody,
    VapourBody,
    TankPressureBody,
    DailySummaryBody,
    ChainResetBody,
)
