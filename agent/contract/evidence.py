"""What each alarm kind carries as `evidence`: one frozen class per kind, documented where it is defined.

An alarm's evidence is the handful of numbers that prove it, and the platform reads them by key, so their names,
units and meanings are part of the contract. Each kind's class says when the alarm is raised (first paragraph of
its docstring) and cleared (second paragraph), what its subject is, and, per field, what the value means
(`Annotated[..., Doc(...)]`); the schema generator reads exactly these, so the contract cannot describe an
evidence key the code does not make. Where a cleared alarm carries other evidence than a raised one, the kind
names that class in `cleared_by`. Kinds that share a shape (a judged sale, a leak test, a vapour day, ...)
share a base class and differ in their docstrings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from agent.contract.records import AlarmKind, JsonScalar


@dataclass(frozen=True, slots=True)
class Doc:
    """The meaning of an evidence field for the platform's readers, with its unit; `minimum` is its least value
    where there is one (integers are otherwise bounded only by what RFC 8785 carries exactly)."""

    text: str
    minimum: int | None = None


class Evidence:
    """The evidence of an alarm record, raised or cleared: a frozen dataclass of JSON scalars."""

    __slots__ = ()
    patterns: ClassVar[dict[str, Doc]] = {}
    """Keys named by a pattern rather than a field, present only when they apply (see `OutboxRecovered`)."""

    def as_json(self) -> dict[str, JsonScalar]:
        """The evidence object as it is sealed: one key per field, in field order."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def pattern_fields(cls, evidence: dict[str, JsonScalar]) -> dict[str, object]:
        """The fields a decoder cannot read by name, made from the pattern keys of `evidence` (none here)."""
        return {}


class AlarmEvidence(Evidence):
    """The evidence of one alarm kind: its docstring says when it is raised (first paragraph) and cleared
    (second); `cleared_by` is the evidence of a cleared alarm where it differs from the raised one's."""

    __slots__ = ()
    kind: ClassVar[AlarmKind]
    subject: ClassVar[str]
    cleared_by: ClassVar[type[Evidence] | None] = None
    raised_only: ClassVar[bool] = False
    """No record clears it (it is over at the next agent_start)."""


# --- Shapes shared by several kinds ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JudgedSale(AlarmEvidence):
    """A sale whose controller volume was judged against the encoder's."""

    txn_no: Annotated[int, Doc("The sale number of the sale judged.")]
    volume_ml: Annotated[int, Doc("The controller's volume of that sale, mL (its transaction's volume_ml).")]
    pulse_volume_ml: Annotated[int, Doc("The encoder's volume of that sale, mL (its transaction's pulse_volume_ml).")]
    deviation_ppm: Annotated[
        int | None,
        Doc(
            "(volume_ml - pulse_volume_ml) * 1000000 / pulse_volume_ml, rounded; null if pulse_volume_ml is not "
            "positive (always so for encoder_no_pulses when raised)."
        ),
    ]
    mpe_ppm: Annotated[int, Doc("The maximum permissible error configured, ppm of volume (3000 = 0.3 %).", 0)]
    allowed_ml: Annotated[
        int,
        Doc(
            "The largest difference between volume_ml and pulse_volume_ml accepted for this sale, mL: volume_ml * "
            "mpe_ppm / 1000000 rounded down, plus the controller's volume step, plus the encoder's mL per pulse "
            "rounded down, plus 1.",
            0,
        ),
    ]


@dataclass(frozen=True, slots=True)
class SaleInSequence(Evidence):
    """A cleared sale-sequence alarm: the sale that put the nozzle back in order."""

    txn_no: Annotated[int, Doc("The sale number of the sale that cleared it.")]


@dataclass(frozen=True, slots=True)
class OutboxRecovered(Evidence):
    """A cleared outbox alarm: how long the store could not be written and what was not made meanwhile.
    `dropped_by_type` travels as one `dropped_<type>` key per record type with at least one."""

    patterns: ClassVar[dict[str, Doc]] = {
        "^dropped_[a-z_]+$": Doc(
            "dropped_<type>: of the records not made, those of record type <type> (e.g. dropped_transaction); "
            "present only for types with at least one.",
            1,
        )
    }
    duration_s: Annotated[int, Doc("Whole seconds from the condition's start (the raised alarm's ts) to its end.", 0)]
    dropped: Annotated[
        int, Doc("Records not made at all because too many were already waiting in memory; 0 if none.", 0)
    ]
    dropped_by_type: dict[str, int] = dataclasses.field(default_factory=dict)

    def as_json(self) -> dict[str, JsonScalar]:
        by_type = {f"dropped_{record_type}": count for record_type, count in sorted(self.dropped_by_type.items())}
        return {"duration_s": self.duration_s, "dropped": self.dropped, **by_type}

    @classmethod
    def pattern_fields(cls, evidence: dict[str, JsonScalar]) -> dict[str, object]:
        by_type = {key.removeprefix("dropped_"): value for key, value in evidence.items() if key.startswith("dropped_")}
        return {"dropped_by_type": by_type}


@dataclass(frozen=True, slots=True)
class OutboxTrouble(AlarmEvidence):
    """The agent's store of records could not take a record."""

    cleared_by: ClassVar[type[Evidence] | None] = OutboxRecovered
    subject: ClassVar[str] = "`outbox`"
    problem: Annotated[str, Doc("The error, as text.")]
    max_bytes: Annotated[int, Doc("The store's configured size limit, bytes.", 0)]
    used_bytes: Annotated[int, Doc("The store's size on disk at that moment, bytes; -1 if it could not be read.", -1)]
    acked_upto: Annotated[int, Doc("The highest seq the agent knew to be acknowledged at that moment.", 0)]
    head_seq: Annotated[int, Doc("The seq of the last record stored before the condition began.", 0)]


@dataclass(frozen=True, slots=True)
class TankTestEvidence(AlarmEvidence):
    """A tank's leak and unrecorded-sales test as it stands after an hour's books."""

    subject: ClassVar[str] = "the tank id"
    status: Annotated[Literal["fail", "pass"], Doc("The test's answer now: `fail` when raised, `pass` when cleared.")]
    span_h: Annotated[int, Doc("The hours the figures describe (see the tank_test event).", 0)]
    hours: Annotated[int, Doc("Hours of data used in that span.", 0)]
    quiet_hours: Annotated[int, Doc("Of those, hours without a sale.", 0)]
    sold_20_ml: Annotated[int, Doc("Metered sales from the tank over those hours, at 20 degC, mL.", 0)]
    leak_ml_per_h: Annotated[int, Doc("The estimated loss per hour independent of sales, mL/h.")]
    leak_threshold_ml_per_h: Annotated[int, Doc("The loss per hour beyond which the test fails, mL/h.")]
    unrecorded_ppm: Annotated[int, Doc("The estimated unrecorded share of throughput, ppm.")]
    unrecorded_threshold_ppm: Annotated[int, Doc("The share beyond which the test fails, ppm.")]


@dataclass(frozen=True, slots=True)
class VapourDayEvidence(AlarmEvidence):
    """A nozzle's vapour-recovery day as judged at its close (its vapour record)."""

    subject: ClassVar[str] = "the nozzle id"
    day: Annotated[str, Doc("The local date judged, YYYY-MM-DD (its vapour record's day).")]
    rule_set: Annotated[Literal["gb20952", "carb"], Doc("The rule set that judged it.")]
    verdict: Annotated[
        Literal["pass", "warning", "alarm", "inconclusive"], Doc("The day's verdict (see the vapour record).")
    ]
    judged_fuellings: Annotated[int, Doc("Counted fuellings the verdict rests on, rolled-over ones included.", 0)]
    judged_passed: Annotated[int, Doc("Of those, the ones within the A/L band.", 0)]
    pass_share_permille: Annotated[int | None, Doc("judged_passed * 1000 / judged_fuellings (gb20952); else null.", 0)]
    warning_days: Annotated[int, Doc("Warning days in a row up to this day (gb20952; 0 under carb).", 0)]
    daily_fail_days: Annotated[int, Doc("Failing daily-mean assessments in a row (carb; 0 under gb20952).", 0)]
    weekly_fail_days: Annotated[int, Doc("Failing weekly-mean assessments in a row (carb; 0 under gb20952).", 0)]
    al_mean_permille: Annotated[int | None, Doc("The day's mean A/L, per mille; null without counted fuellings.", 0)]
    week_counted: Annotated[int, Doc("Counted fuellings of the last carb_week_days days.", 0)]
    week_al_mean_permille: Annotated[int | None, Doc("Their mean A/L, per mille; null if none.", 0)]


@dataclass(frozen=True, slots=True)
class OverPressureEvidence(AlarmEvidence):
    """A spell of tank pressure above the P/V valve's opening pressure plus the margin."""

    subject: ClassVar[str] = "the pressure sensor's device name"
    max_pa: Annotated[
        int | None, Doc("The highest reading of the spell, Pa; null if the agent saw none since it started.")
    ]
    limit_pa: Annotated[int, Doc("valve_opening_pa + over_margin_pa: the pressure above which a reading is over, Pa.")]
    duration_s: Annotated[
        int | None, Doc("Whole seconds from the spell's first reading to its last over one; null as max_pa.", 0)
    ]
    since: Annotated[str | None, Doc("When the spell began (ts format); null as max_pa.")]


@dataclass(frozen=True, slots=True)
class BandDaysEvidence(AlarmEvidence):
    """A day of tank pressure judged against the configured band."""

    subject: ClassVar[str] = "the pressure sensor's device name"
    day: Annotated[str, Doc("The local date of the day record that decided, YYYY-MM-DD.")]
    readings: Annotated[int, Doc("The day's readings.", 0)]
    outside_band: Annotated[int, Doc("Of those, the ones outside the band.", 0)]
    outside_band_permille: Annotated[int, Doc("outside_band * 1000 / readings, rounded.", 0)]
    limit_permille: Annotated[int, Doc("band_share_permille as configured.", 0)]
    band_low_pa: Annotated[int, Doc("The band's lower end as configured, Pa.")]
    band_high_pa: Annotated[int, Doc("The band's upper end as configured, Pa.")]
    warning_days: Annotated[int, Doc("Band warning days in a row up to that day.", 0)]


# --- One class per alarm kind ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MeteringDeviationEvidence(JudgedSale):
    """Raised when a sale of at least the configured minimum measured quantity (min_measured_ml, default 2000
    mL) has a volume_ml that differs from its pulse_volume_ml by more than allowed_ml.

    Cleared by the nozzle's next such sale that is within allowed_ml."""

    kind: ClassVar[AlarmKind] = AlarmKind.METERING_DEVIATION
    subject: ClassVar[str] = "the nozzle id"


@dataclass(frozen=True, slots=True)
class MeteringBiasEvidence(AlarmEvidence):
    """Raised when the nozzle's sequential bias test (two one-sided CUSUMs on every measured sale, small ones
    too, each weighted by its resolution noise) finds the controller over- or under-reading by bias_alarm_ppm
    (default 3600) rather than at most mpe_ppm, with error rates bias_error_rate.

    Cleared when the same test, turned round, finds the nozzle within mpe_ppm again."""

    kind: ClassVar[AlarmKind] = AlarmKind.METERING_BIAS
    subject: ClassVar[str] = "the nozzle id"
    direction: Annotated[
        Literal["over", "under"],
        Doc("Which way the controller errs: over (it shows more than the encoder counted) or under."),
    ]
    txn_no: Annotated[int, Doc("The sale number of the sale that decided.")]
    sales: Annotated[int, Doc("The sales of the run that decided: since the test last restarted.", 1)]
    since: Annotated[str, Doc("When the run's first sale was seen (RFC 3339).")]
    bias_ppm: Annotated[
        int | None,
        Doc(
            "The run's bias estimate, ppm of volume: the weighted least-squares slope of the deviation "
            "(volume_ml - pulse_volume_ml) on pulse_volume_ml."
        ),
    ]
    bias_low_ppm: Annotated[int | None, Doc("The lower end of its 95 % interval, ppm.")]
    bias_high_ppm: Annotated[int | None, Doc("The upper end of its 95 % interval, ppm.")]
    legal_ppm: Annotated[int, Doc("mpe_ppm as configured: the bias a legal meter may have, ppm.", 0)]
    alarm_ppm: Annotated[int, Doc("bias_alarm_ppm as configured: the bias the test is built to find, ppm.", 0)]
    llr_millinats: Annotated[
        int,
        Doc(
            "The run's log-likelihood ratio, thousandths of a nat: for the alarm level over the legal band when "
            "raised, the other way round when cleared; the boundary is ln((1 - a) / a), a = bias_error_rate."
        ),
    ]


@dataclass(frozen=True, slots=True)
class EncoderNoPulsesEvidence(JudgedSale):
    """Raised when a sale of at least the minimum measured quantity has no encoder pulse at all
    (pulse_volume_ml 0): the encoder or its wiring is dead.

    Cleared by the nozzle's next such sale with pulses."""

    kind: ClassVar[AlarmKind] = AlarmKind.ENCODER_NO_PULSES
    subject: ClassVar[str] = "the nozzle id"


@dataclass(frozen=True, slots=True)
class TransactionSkippedEvidence(AlarmEvidence):
    """Raised when a sale number is more than one past the last one the agent saw: sales happened that no
    transaction records. The sale seen is recorded, with null independent measurements.

    Cleared by the nozzle's next sale whose number follows the last one."""

    kind: ClassVar[AlarmKind] = AlarmKind.TRANSACTION_SKIPPED
    subject: ClassVar[str] = "the nozzle id"
    cleared_by: ClassVar[type[Evidence] | None] = SaleInSequence
    expected_txn_no: Annotated[int, Doc("The sale number that should have come next.")]
    txn_no: Annotated[int, Doc("The sale number that came (its transaction is recorded).")]
    missing: Annotated[int, Doc("How many sale numbers were skipped.", 1)]


@dataclass(frozen=True, slots=True)
class TransactionCounterResetEvidence(AlarmEvidence):
    """Raised when a nozzle's sale number goes back: the controller was reset or replaced. No transaction is
    recorded for that sale number; the nozzle's next transaction follows from the sale number and totalizers
    reported now.

    Cleared by the nozzle's next sale in sequence."""

    kind: ClassVar[AlarmKind] = AlarmKind.TRANSACTION_COUNTER_RESET
    subject: ClassVar[str] = "the nozzle id"
    cleared_by: ClassVar[type[Evidence] | None] = SaleInSequence
    previous_txn_no: Annotated[int, Doc("The last sale number before it went back.")]
    txn_no: Annotated[int, Doc("The sale number reported now.")]
    totalizer_volume_ml_before: Annotated[int, Doc("The volume totalizer as last read before, mL.")]
    totalizer_volume_ml_now: Annotated[int, Doc("The volume totalizer reported now, mL.")]


@dataclass(frozen=True, slots=True)
class TotalizerDiscontinuityEvidence(AlarmEvidence):
    """Raised when a totalizer of the nozzle moves by other than its sales: at a sale in sequence, the volume
    totalizer did not advance by volume_ml, or the money totalizer (if any) by amount_fen, within the
    controller's resolution; or, with the nozzle at rest and no new sale, the volume totalizer moved.

    Cleared by the nozzle's next sale in sequence whose totalizers add up."""

    kind: ClassVar[AlarmKind] = AlarmKind.TOTALIZER_DISCONTINUITY
    subject: ClassVar[str] = "the nozzle id"
    cleared_by: ClassVar[type[Evidence] | None] = SaleInSequence
    txn_no: Annotated[int, Doc("The sale number of the sale checked; at rest, the nozzle's last one.")]
    counter: Annotated[
        Literal["volume_ml", "amount_fen"],
        Doc(
            "Which totalizer: `volume_ml` or `amount_fen`. It gives the unit (mL or fen) of before, after, "
            "expected and difference."
        ),
    ]
    form: Annotated[Literal["jump", "step_back"], Doc("`jump` if it moved more than expected, `step_back` if less.")]
    before: Annotated[int, Doc("The totalizer as last read, in the counter's unit.")]
    after: Annotated[int, Doc("The totalizer now, in the counter's unit.")]
    expected: Annotated[int, Doc("Where it should be: before plus the sale (at rest, before), across its wrap point.")]
    difference: Annotated[int, Doc("after - expected, across the wrap point, in the counter's unit.")]
    at_rest: Annotated[bool, Doc("true if found with the nozzle at rest and no new sale.")]


@dataclass(frozen=True, slots=True)
class PulsesStopped(Evidence):
    """A cleared pulses_at_rest alarm: how long the encoder stayed quiet at rest."""

    quiet_s: Annotated[int, Doc("rest_clear_s as configured: the seconds without pulses at rest.", 0)]


@dataclass(frozen=True, slots=True)
class PulsesAtRestEvidence(AlarmEvidence):
    """Raised when the nozzle's encoder gives more pulses than the configured tolerance (rest_pulse_tolerance,
    default 2) between two polls that both find the nozzle at rest with no new sale: fuel left without a sale.

    Cleared once no such pulses have been seen for rest_clear_s (default 60 s)."""

    kind: ClassVar[AlarmKind] = AlarmKind.PULSES_AT_REST
    subject: ClassVar[str] = "the nozzle id"
    cleared_by: ClassVar[type[Evidence] | None] = PulsesStopped
    pulses: Annotated[int, Doc("The encoder pulses counted at rest.", 1)]
    volume_ml: Annotated[int, Doc("Those pulses times the encoder's mL per pulse, rounded, mL.")]
    counted_by: Annotated[str, Doc("The pulse counter and channel that counted them, as `device#channel`.")]
    since_txn_no: Annotated[int, Doc("The nozzle's last sale number.")]


@dataclass(frozen=True, slots=True)
class CalibrationUnverifiedEvidence(AlarmEvidence):
    """Raised when a pump controller reports a K-factor or firmware id other than the trusted one: the value
    its verification in the station config names or, where that names none, the value first seen
    (device_identity): after the calibration_change event that shows the change or, with a verification
    configured, at the controller's first reading.

    Cleared when every value it reports is trusted again."""

    kind: ClassVar[AlarmKind] = AlarmKind.CALIBRATION_UNVERIFIED
    subject: ClassVar[str] = "the pump controller's device name"
    k_factor: Annotated[int | None, Doc("The K-factor reported now; null if the controller reports none.")]
    firmware_id: Annotated[int | None, Doc("The firmware id reported now; null if the controller reports none.")]
    trusted_k_factor: Annotated[int | None, Doc("The trusted K-factor; null if none is known.")]
    trusted_firmware_id: Annotated[int | None, Doc("The trusted firmware id; null if none is known.")]
    certificate: Annotated[
        str | None, Doc("The certificate number of the controller's verification in the config; null if none.")
    ]


@dataclass(frozen=True, slots=True)
class DeviceAnswers(Evidence):
    """A cleared device_silent alarm: how long the device was silent."""

    silent_s: Annotated[int | None, Doc("Whole seconds it was silent; null if the agent restarted in the meantime.", 0)]


@dataclass(frozen=True, slots=True)
class DeviceSilentEvidence(AlarmEvidence):
    """Raised when a field device has not answered polls for silent_after_s (default 60 s) since its
    device_offline event.

    Cleared when it answers again (with its device_online event)."""

    kind: ClassVar[AlarmKind] = AlarmKind.DEVICE_SILENT
    subject: ClassVar[str] = "the device name"
    cleared_by: ClassVar[type[Evidence] | None] = DeviceAnswers
    line: Annotated[str, Doc("The bus line the device is on.")]
    silent_s: Annotated[int, Doc("Whole seconds since it stopped answering.", 0)]
    reason: Annotated[str, Doc("The error that ended polling, as in the device_offline event.")]


@dataclass(frozen=True, slots=True)
class LineErrorsEvidence(AlarmEvidence):
    """Raised when, over line_error_window_s (default 60 s) and at least line_error_min_requests (default 20)
    polls of devices that do answer, more than line_error_ratio (default 0.2) of those polls failed: CRC
    errors, timeouts, a bad termination, a slow device. A device that does not answer at all is a device_silent
    alarm instead.

    Cleared when the failed share over the window falls below half that ratio."""

    kind: ClassVar[AlarmKind] = AlarmKind.LINE_ERRORS
    subject: ClassVar[str] = "the bus line name"
    attempts: Annotated[int, Doc("Polls of answering devices in the window.", 0)]
    failures: Annotated[int, Doc("Of those, the polls that failed.", 0)]
    crc_errors: Annotated[int, Doc("Of the failures, answers with a bad checksum.", 0)]
    timeouts: Annotated[int, Doc("Of the failures, polls with no answer in time.", 0)]
    window_s: Annotated[int, Doc("Whole seconds the window spans.", 0)]
    failed_permille: Annotated[int, Doc("failures * 1000 / attempts, rounded.", 0)]


@dataclass(frozen=True, slots=True)
class DeviceValuesPlausible(Evidence):
    """A cleared device_value_fault alarm."""

    line: Annotated[str, Doc("The bus line the device is on.")]


@dataclass(frozen=True, slots=True)
class DeviceValueFaultEvidence(AlarmEvidence):
    """Raised when a field device answers with a value that cannot be true: NaN or infinity (how many
    transmitters say sensor fault), or a value outside its point's plausible range (the profile's min/max, else
    a default by unit). The poll's values are not used: no sale, inventory or reading comes from them. A gauge's
    tank or delivery with such a value is left out; its other tanks go on.

    Cleared at the device's first poll whose values are all plausible."""

    kind: ClassVar[AlarmKind] = AlarmKind.DEVICE_VALUE_FAULT
    subject: ClassVar[str] = "the device name"
    cleared_by: ClassVar[type[Evidence] | None] = DeviceValuesPlausible
    line: Annotated[str, Doc("The bus line the device is on.")]
    point: Annotated[
        str,
        Doc(
            "The first implausible value: the profile's meaning, with `nozzle N` or `channel N` before it for a "
            "repeated point (`nozzle 2 txn_volume_ml`), or the gauge's field (`tank 1 volume`)."
        ),
    ]
    register: Annotated[int | None, Doc("The address of the point's first register; null for a gauge.", 0)]
    raw_hex: Annotated[
        str,
        Doc(
            "What the device sent, as uppercase hex: the point's registers in address order, or the gauge field's "
            "eight digits (an IEEE-754 single)."
        ),
    ]
    reason: Annotated[str, Doc("Why it cannot be true, in words, with the plausible range where one applies.")]
    faults: Annotated[int, Doc("How many values of the poll were implausible.", 1)]


@dataclass(frozen=True, slots=True)
class RecordsSealedAgain(Evidence):
    """A cleared record_unsealable alarm: how many records of the type were refused while it was raised."""

    record_type: Annotated[str, Doc("The type of the records that were refused.")]
    count: Annotated[int, Doc("Records of that type refused while the alarm was raised.", 1)]


@dataclass(frozen=True, slots=True)
class RecordUnsealableEvidence(AlarmEvidence):
    """Raised in place of a record the contract cannot carry (a value beyond 2^53, which RFC 8785 refuses): the
    record is not made, and this alarm says so. Field values are judged before they become records
    (device_value_fault), so this points to a bug; the log has the record.

    Cleared when a record of that type is sealed again, with the count of those refused meanwhile."""

    kind: ClassVar[AlarmKind] = AlarmKind.RECORD_UNSEALABLE
    subject: ClassVar[str] = "the record type that could not be sealed"
    cleared_by: ClassVar[type[Evidence] | None] = RecordsSealedAgain
    record_type: Annotated[str, Doc("The type of the record that was refused.")]
    count: Annotated[int, Doc("Records of that type refused: 1 when raised; all of them when cleared.", 1)]
    reason: Annotated[str, Doc("Why the first was refused, at most 200 characters.")]


@dataclass(frozen=True, slots=True)
class TankLeakEvidence(TankTestEvidence):
    """Raised when the tank's leak test fails with cause leak: over the span judged, the tank loses more per
    hour than the threshold, whether or not anything is sold (see the tank_test event).

    Cleared when the test passes again; an inconclusive answer leaves it raised."""

    kind: ClassVar[AlarmKind] = AlarmKind.TANK_LEAK


@dataclass(frozen=True, slots=True)
class UnrecordedSalesEvidence(TankTestEvidence):
    """Raised when the tank's test fails with cause unrecorded_sales: the tank loses a share of what is sold
    beyond the meters' tolerance, as if sales went off the books or the meters gave more than they count.

    Cleared when the test passes again; an inconclusive answer leaves it raised."""

    kind: ClassVar[AlarmKind] = AlarmKind.UNRECORDED_SALES


@dataclass(frozen=True, slots=True)
class OutboxFullEvidence(OutboxTrouble):
    """Raised when the agent's store of records reached its size limit (max_bytes) and held no acknowledged
    record it could delete. Its ts is when that began, though it is stored only once writing works again, ahead
    of the records that waited.

    Cleared when records can be stored again; stored behind the records that waited."""

    kind: ClassVar[AlarmKind] = AlarmKind.OUTBOX_FULL


@dataclass(frozen=True, slots=True)
class OutboxFailingEvidence(OutboxTrouble):
    """Raised when the agent's store of records could not be written: a disk or file-system error. Its ts is
    when that began, though it is stored only once writing works again, ahead of the records that waited.

    Cleared when records can be stored again; stored behind the records that waited."""

    kind: ClassVar[AlarmKind] = AlarmKind.OUTBOX_FAILING


@dataclass(frozen=True, slots=True)
class VapourPumpFaultEvidence(AlarmEvidence):
    """Raised when pump_fault_fuellings (default 3) counted fuellings of the nozzle in a row drew less vapour
    than pump_fault_vapour_ml_per_min (default 1000 mL/min): the vacuum pump does not draw. Fuellings that do
    not count, or whose start or end the agent did not see, neither add to the run nor break it.

    Cleared by the nozzle's next counted fuelling with enough vapour flow."""

    kind: ClassVar[AlarmKind] = AlarmKind.VAPOUR_PUMP_FAULT
    subject: ClassVar[str] = "the nozzle id"
    txn_no: Annotated[int, Doc("The sale number of the fuelling that decided.")]
    volume_ml: Annotated[int, Doc("Its volume_ml, mL.", 0)]
    vapour_ml: Annotated[int, Doc("Its vapour_ml, mL.", 0)]
    duration_ms: Annotated[int, Doc("Its end minus its start, ms.", 1)]
    vapour_ml_per_min: Annotated[int, Doc("vapour_ml * 60000 / duration_ms, rounded, mL/min.", 0)]
    threshold_ml_per_min: Annotated[int, Doc("pump_fault_vapour_ml_per_min as configured.", 0)]
    consecutive: Annotated[
        int,
        Doc("Counted fuellings in a row with too little vapour flow, this one included (0 when cleared).", 0),
    ]


@dataclass(frozen=True, slots=True)
class VapourAlWarningEvidence(VapourDayEvidence):
    """Raised at the close of a day with verdict warning or alarm: under gb20952 a judged day whose pass share
    is below warning_pass_share_permille (default 750); under carb a day whose daily or weekly mean A/L, judged
    with enough fuellings, lies out of its band.

    Cleared by the nozzle's next pass day; an inconclusive day leaves it raised."""

    kind: ClassVar[AlarmKind] = AlarmKind.VAPOUR_AL_WARNING


@dataclass(frozen=True, slots=True)
class VapourAlAlarmEvidence(VapourDayEvidence):
    """Raised at the close of a day with verdict alarm: under gb20952, the alarm_warning_days-th (default 5th)
    warning day in a row; under carb, the carb_daily_failure_days-th (default 2nd) failing daily assessment in a
    row or the carb_weekly_failure_days-th (default 8th) failing weekly one.

    Cleared by the nozzle's next pass day; warning and inconclusive days leave it raised."""

    kind: ClassVar[AlarmKind] = AlarmKind.VAPOUR_AL_ALARM


@dataclass(frozen=True, slots=True)
class SlowDispenserEvidence(AlarmEvidence):
    """Raised at the close of a failing day (verdict warning or alarm) when more than half of the judged
    fuellings out of the A/L band were slow: the A/L fails at low liquid flow, which points at the dispenser
    (filter, pump, trigger) rather than the vapour recovery.

    Cleared at the close of the nozzle's next judged day that is a pass day or whose failures were mostly not
    slow."""

    kind: ClassVar[AlarmKind] = AlarmKind.SLOW_DISPENSER
    subject: ClassVar[str] = "the nozzle id"
    day: Annotated[str, Doc("The local date judged, YYYY-MM-DD.")]
    out_of_band: Annotated[int, Doc("Judged fuellings out of the A/L band (judged_fuellings - judged_passed).", 0)]
    slow: Annotated[int, Doc("Of those, the slow ones (judged_slow).", 0)]
    slow_flow_ml_per_min: Annotated[int, Doc("slow_flow_ml_per_min as configured.", 0)]


@dataclass(frozen=True, slots=True)
class TankPressureZeroWarningEvidence(AlarmEvidence):
    """Raised when the sensor's readings have stayed within +-zero_band_pa (default 50 Pa) for longer than
    zero_run_s (default 12 h) by the clock, without a gap of more than max_gap_s (default 60 s): a vent left
    open, a P/V valve stuck open, a sensor line off. Missing readings never count as zero.

    Cleared by the first reading outside the zero band."""

    kind: ClassVar[AlarmKind] = AlarmKind.TANK_PRESSURE_ZERO_WARNING
    subject: ClassVar[str] = "the pressure sensor's device name"
    pressure_pa: Annotated[int, Doc("The reading that decided, Pa.")]
    run_s: Annotated[int, Doc("How long the zero run had lasted, whole seconds (the last run when cleared).", 0)]
    band_pa: Annotated[int, Doc("zero_band_pa as configured.", 0)]
    since: Annotated[str | None, Doc("When the run began (ts format); null if the agent saw none since it started.")]


@dataclass(frozen=True, slots=True)
class TankPressureZeroAlarmEvidence(AlarmEvidence):
    """Raised at the close of the zero_alarm_days-th (default 5th) zero day in a row (see zero_warning_days of
    the tank_pressure day record).

    Cleared at the close of a day with readings that was not a zero day; a day without readings leaves it."""

    kind: ClassVar[AlarmKind] = AlarmKind.TANK_PRESSURE_ZERO_ALARM
    subject: ClassVar[str] = "the pressure sensor's device name"
    day: Annotated[str, Doc("The local date of the day record that decided, YYYY-MM-DD.")]
    zero_run_s: Annotated[int, Doc("That day's zero_run_s.", 0)]
    warning_days: Annotated[int, Doc("Zero days in a row up to that day.", 0)]
    alarm_days: Annotated[int, Doc("zero_alarm_days as configured: the zero days in a row that raise it.", 1)]


@dataclass(frozen=True, slots=True)
class TankPressureOverWarningEvidence(OverPressureEvidence):
    """Raised at the first reading above the P/V valve's opening pressure plus over_margin_pa (default 747 +
    200 Pa): the valve does not open or the vent line is blocked.

    Cleared by the first reading at or below that limit."""

    kind: ClassVar[AlarmKind] = AlarmKind.TANK_PRESSURE_OVER_WARNING


@dataclass(frozen=True, slots=True)
class TankPressureOverAlarmEvidence(OverPressureEvidence):
    """Raised when over-pressure has lasted over_alarm_s (default 300 s) without a reading at or below the
    limit and without a gap of more than max_gap_s.

    Cleared, before the warning, by the first reading at or below the limit."""

    kind: ClassVar[AlarmKind] = AlarmKind.TANK_PRESSURE_OVER_ALARM


@dataclass(frozen=True, slots=True)
class TankPressureBandWarningEvidence(BandDaysEvidence):
    """Raised at the close of a day on which more than band_share_permille (default 250) of the readings lay
    outside band_low_pa..band_high_pa (default -1000..600 Pa).

    Cleared at the close of a day with readings that was not such a day; a day without readings leaves it."""

    kind: ClassVar[AlarmKind] = AlarmKind.TANK_PRESSURE_BAND_WARNING


@dataclass(frozen=True, slots=True)
class TankPressureBandAlarmEvidence(BandDaysEvidence):
    """Raised at the close of the band_alarm_days-th (default 7th) band warning day in a row.

    Cleared with the band warning."""

    kind: ClassVar[AlarmKind] = AlarmKind.TANK_PRESSURE_BAND_ALARM


@dataclass(frozen=True, slots=True)
class OutboxCorruptEvidence(AlarmEvidence):
    """Contract v1.1. Raised when a stored record read for sending is not what was sealed: its bytes do not
    hash to the prev of the record after it, or do not name their own seq. The records are sent as stored (the
    agent cannot know their true bytes and never signs anything again), so the platform sees the bad link or
    signature too, and takes the range as lost by this alarm's word. Raised once per damaged range in a run.

    Not cleared by a record: like the other outbox alarms it is over at the next agent_start."""

    kind: ClassVar[AlarmKind] = AlarmKind.OUTBOX_CORRUPT
    subject: ClassVar[str] = "`outbox`"
    raised_only: ClassVar[bool] = True
    first_seq: Annotated[int, Doc("The first seq of the damaged range.", 1)]
    last_seq: Annotated[int, Doc("The last seq of the damaged range.", 1)]
    check: Annotated[Literal["link", "seq"], Doc("Which check failed.")]
    next_prev: Annotated[
        str,
        Doc(
            "The prev of record last_seq + 1: the digest record last_seq had when it was sealed, which lets a "
            "platform take the range as lost and go on."
        ),
    ]


EVIDENCE: dict[AlarmKind, type[AlarmEvidence]] = {
    cls.kind: cls
    for cls in (
        MeteringDeviationEvidence,
        MeteringBiasEvidence,
        EncoderNoPulsesEvidence,
        TransactionSkippedEvidence,
        TransactionCounterResetEvidence,
        TotalizerDiscontinuityEvidence,
        PulsesAtRestEvidence,
        CalibrationUnverifiedEvidence,
        DeviceSilentEvidence,
        LineErrorsEvidence,
        DeviceValueFaultEvidence,
        RecordUnsealableEvidence,
        TankLeakEvidence,
        UnrecordedSalesEvidence,
        OutboxFullEvidence,
        OutboxFailingEvidence,
        VapourPumpFaultEvidence,
        VapourAlWarningEvidence,
        VapourAlAlarmEvidence,
        SlowDispenserEvidence,
        TankPressureZeroWarningEvidence,
        TankPressureZeroAlarmEvidence,
        TankPressureOverWarningEvidence,
        TankPressureOverAlarmEvidence,
        TankPressureBandWarningEvidence,
        TankPressureBandAlarmEvidence,
        OutboxCorruptEvidence,
    )
}
"""Every alarm kind the agent raises, in the order the contract documents them."""


def evidence_class(kind: AlarmKind, raised: bool) -> type[Evidence]:
    """The class of a raised or cleared alarm's evidence of this kind."""
    cls = EVIDENCE[kind]
    return cls if raised or cls.cleared_by is None else cls.cleared_by
