"""One nozzle, watched twice: its controller's sales, and the pulses its encoder sends to an independent counter.

Theory of operation. The controller numbers its sales; a poll that shows a new number is a sale, and its
fields come from that same poll. The encoder's pulses are counted by another device, polled at other moments,
so a sale is measured by the pulses between two points where fuel provably did not flow: the last booking
(taken from a pulse reading made after the controller showed it) or a *confirmed* rest point. A rest point is
confirmed one poll late: pulses read while the nozzle rested count as pulses at rest only if the next poll of
the controller still shows it resting with no new sale, so a controller that books a sale a poll late cannot
make its own fuel look stolen. A sale waits for a pulse reading taken after it was seen, at most
`pulse_wait_s`; without one it is recorded with its independent measurements unknown (null), never guessed.

A sale seen only once the next fuelling had begun (the controller was unreachable for a while) cannot be
separated from it by counts: both are recorded with their independent measurements unknown.

What is checked, each an alarm raised once and cleared once (see agent.station.alarms):
- `metering_deviation`: the controller's volume against the encoder's, beyond the MPE plus both resolutions,
  for sales above the minimum measured quantity; cleared by the next sale within it that is large enough
  to have shown the deviation (a small sale's resolution hides a small deviation). Not judged while
  `pulses_at_rest` is raised, because the encoder then also counts fuel that flows outside any sale.
- `encoder_no_pulses`: a judged sale with no pulse at all (encoder or its wiring dead); cleared by pulses.
- `transaction_skipped`: the sale number jumped (sales the agent never saw); cleared by the next in sequence.
- `transaction_counter_reset`: the sale number went back (controller reset or replaced); cleared likewise.
- `totalizer_discontinuity`: a totalizer moved by other than the sale, or moved at rest; cleared by the next
  sale that adds up.
- `pulses_at_rest`: pulses while the nozzle rests (fuel leaving without a sale); cleared after
  `rest_clear_s` without any.
- `metering_bias`: the sequential test of agent.station.metering_bias, fed every measured sale (small ones
  too) while no pulses at rest are raised, finds a bias beyond `bias_alarm_ppm` either way; cleared by the same
  test turned round. Its state travels as cursors (`nozzle/<id>/bias/...`) with each transaction record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from agent.contract.evidence import (
    JudgedSale,
    MeteringBiasEvidence,
    PulsesAtRestEvidence,
    PulsesStopped,
    SaleInSequence,
    TotalizerDiscontinuityEvidence,
    TransactionCounterResetEvidence,
    TransactionSkippedEvidence,
)
from agent.contract.records import (
    AlarmKind,
    ControllerBaselineBody,
    Cursor,
    RecordIntent,
    TransactionBody,
    format_ts,
)
from agent.station.alarms import AlarmBook
from agent.station.bindings import NozzleBinding, Tap
from agent.station.fsm import NozzleFsm, Phase, Step
from agent.station.metering import (
    Discontinuity,
    VolumeVerdict,
    advance,
    check_totalizer,
    judge_volume,
    millilitres,
    sale_number_step,
)
from agent.station.metering_bias import (
    BiasChange,
    BiasSettings,
    Direction,
    SaleDeviation,
    estimate,
    noise_variance_ml2,
    observe,
    state_of,
    state_values,
)
from agent.station.settings import MeteringSection
from drivers.readings import ControllerCounters, NozzleReading, PulseCounterReading


class Count(NamedTuple):
    """A counter channel's cumulative count as last read, when, and where it wraps.

    A named tuple rather than a frozen dataclass: the station makes one per channel of every pulse counter
    reading, hundreds a second, and a frozen dataclass's `__init__` sets each field through `object.__setattr__`
    (four times the bytecodes of the tuple's `__new__`). Immutable alike."""

    value: int
    ts_ms: int
    modulus: int | None


class PulseBoard:
    """The latest count of every counter channel; the station updates it from pulse-counter readings."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], Count] = {}

    def read(self, device: str, reading: PulseCounterReading, ts_ms: int) -> None:
        """Every channel of a counter's reading, read at `ts_ms`."""
        counts, modulus = self._counts, reading.count_modulus
        for channel in reading.channels:
            counts[(device, channel.channel)] = Count(channel.count, ts_ms, modulus)

    def get(self, tap: Tap | None) -> Count | None:
        return None if tap is None else self._counts.get((tap.device, tap.channel))

    def before(self, channel: tuple[str, int] | None, ts_ms: int) -> Count | None:
        """The channel's (device, channel number) count if it was read before `ts_ms`, else None; None for no
        channel. Asked for each tap of every idle nozzle at each poll of its controller, so keyed ready-made."""
        count = self._counts.get(channel) if channel is not None else None
        return count if count is not None and count.ts_ms < ts_ms else None


@dataclass(slots=True)
class _Sale:
    reading: NozzleReading
    counters: ControllerCounters
    seen_ms: int
    start_ms: int
    end_ms: int
    in_sequence: bool
    missing: int
    settled: bool
    """The nozzle was at rest when the sale was seen: no next fuelling mixes its pulses into this one's."""


class NozzleTracker:
    def __init__(self, binding: NozzleBinding, cursors: dict[str, int], rules: MeteringSection, alarms: AlarmBook):
        self.binding = binding
        self._rules = rules
        self._alarms = alarms
        key = binding.cursor_key
        self._txn_no = cursors.get(key("txn_no"))
        self._totalizer_ml = cursors.get(key("totalizer_volume_ml"))
        self._totalizer_fen = cursors.get(key("totalizer_amount_fen"))
        self._liquid_mark = cursors.get(key("liquid_pulses"))
        self._vapour_mark = cursors.get(key("vapour_pulses"))
        self._liquid_candidate: Count | None = None
        self._vapour_candidate: Count | None = None
        self._liquid_channel = None if binding.pulse is None else (binding.pulse.device, binding.pulse.channel)
        self._vapour_channel = None if binding.vapour is None else (binding.vapour.device, binding.vapour.channel)
        self._rest_quiet = False
        """The last pulses judged at rest were none beyond the tolerance, with no `pulses_at_rest` raised or
        awaiting its clear: a count still at its mark is then judged the same (none, nothing to raise or clear,
        the mark where it is), so it is not judged again. Only `_pulses_at_rest` raises this nozzle's alarm
        and keeps its quiet spell, so nothing else can make it stale."""
        self._fsm = NozzleFsm()
        self._taken: NozzleReading | None = None
        """The reading `on_controller` was last given."""
        self._still: tuple[NozzleReading, ControllerCounters, int] | None = None
        """The reading, counters and totalizer baseline last judged at rest without a move: the very same again
        is judged the same (`check_totalizer` is a function of them alone), so it is not judged again."""
        self._start_ms: int | None = None
        self._end_ms: int | None = None
        self._awaiting_booking_since: int | None = None
        self._sale: _Sale | None = None
        self._last_rest_pulses_ms: int | None = None
        self._deviation_raised_ppm: int | None = None
        prefix = key("bias/")
        self._bias = state_of({k.removeprefix(prefix): v for k, v in cursors.items() if k.startswith(prefix)})
        self._bias_settings = BiasSettings(
            rules.mpe_ppm, rules.bias_alarm_ppm, rules.bias_error_rate, rules.bias_error_rate
        )

    @property
    def taps(self) -> tuple[Tap, ...]:
        return tuple(tap for tap in (self.binding.pulse, self.binding.vapour) if tap is not None)

    @property
    def phase(self) -> Phase | None:
        """As the controller last showed it; None before its first reading."""
        return self._fsm.phase

    # -- the controller's view --------------------------------------------------------------------------------

    def on_controller(
        self, reading: NozzleReading, counters: ControllerCounters, ts_ms: int, board: PulseBoard
    ) -> list[RecordIntent]:
        if reading is not self._taken:
            # The very same reading again (an idle nozzle: drivers/device.py gives the same object for the same
            # answers) leaves the phase where it is, and the sale number is the one it set: only what follows
            # depends on time and the pulses. Not so a nozzle's first phase: the state machine only notes it, and
            # the same state seen again is a step (a first fuelling again is fuel that flowed).
            self._taken = None if self._fsm.phase is None else reading
            step = self._fsm.observe(reading.state)
            if step == Step.STARTED:
                self._start_ms, self._end_ms = ts_ms, None
            elif step == Step.ENDED:
                self._end_ms = ts_ms
                if self._fsm.flowed:
                    self._awaiting_booking_since = ts_ms
            if self._txn_no is None:
                return self._baseline(reading, ts_ms, board)
            if reading.txn_no != self._txn_no:
                return self._new_sale_number(reading, counters, ts_ms, board)
        if self._sale is None and self._awaiting_booking_since is None and self._fsm.at_rest:
            intents = self._totalizers_at_rest(reading, counters, ts_ms)
            rest = self._pulses_at_rest(board, reading.txn_no, ts_ms)
            return intents + rest if rest else intents
        self._liquid_candidate = self._vapour_candidate = None
        return []

    def _baseline(self, reading: NozzleReading, ts_ms: int, board: PulseBoard) -> list[RecordIntent]:
        self._txn_no = reading.txn_no
        self._totalizer_ml, self._totalizer_fen = reading.totalizer_volume_ml, reading.totalizer_amount_fen
        body = ControllerBaselineBody(
            nozzle=self.binding.nozzle,
            controller=self.binding.controller,
            txn_no=reading.txn_no,
            totalizer_volume_ml=reading.totalizer_volume_ml,
            totalizer_amount_fen=reading.totalizer_amount_fen,
        )
        return [body.intent(ts_ms, *self._controller_cursors(reading))]

    def _new_sale_number(
        self, reading: NozzleReading, counters: ControllerCounters, ts_ms: int, board: PulseBoard
    ) -> list[RecordIntent]:
        assert self._txn_no is not None
        step, how_many = sale_number_step(self._txn_no, reading.txn_no, counters.txn_no_modulus)
        self._awaiting_booking_since = None
        self._liquid_candidate = self._vapour_candidate = None
        earlier: list[RecordIntent] = []
        if self._sale is not None:
            # another sale came before this one's pulses: record it unmeasured rather than mix the two
            earlier, self._sale = self._record(self._sale, None, None, ts_ms), None
        if step == "backwards":
            assert self._totalizer_ml is not None  # the controller cursors carry the sale number and totalizer together
            reset = TransactionCounterResetEvidence(
                previous_txn_no=self._txn_no,
                txn_no=reading.txn_no,
                totalizer_volume_ml_before=self._totalizer_ml,
                totalizer_volume_ml_now=reading.totalizer_volume_ml,
            )
            intents = self._alarms.raise_(AlarmKind.TRANSACTION_COUNTER_RESET, self.binding.nozzle, ts_ms, reset)
            if not intents:  # raised already: the new counters still go on record, as a baseline
                self._txn_no = None
                return earlier + self._baseline(reading, ts_ms, board)
            self._txn_no = reading.txn_no
            self._totalizer_ml, self._totalizer_fen = reading.totalizer_volume_ml, reading.totalizer_amount_fen
            return earlier + [_with_cursors(intent, self._controller_cursors(reading)) for intent in intents]
        self._sale = _Sale(
            reading,
            counters,
            ts_ms,
            self._start_ms if self._start_ms is not None else ts_ms,
            self._end_ms if self._end_ms is not None else ts_ms,
            in_sequence=step == "next",
            missing=how_many,
            settled=self._fsm.at_rest,
        )
        self._txn_no = reading.txn_no
        self._start_ms = self._end_ms = None
        return earlier + self._complete(board, ts_ms)

    # -- the counter's view ------------------------------------------------------------------------------------

    def on_pulses(self, board: PulseBoard, ts_ms: int) -> list[RecordIntent]:
        """A pulse counter that one of this nozzle's taps is on was read: a sale waiting for its pulses may be
        complete (an idle nozzle's, most of the day, has none)."""
        return [] if self._sale is None else self._complete(board, ts_ms)

    def tick(self, board: PulseBoard, now_ms: int) -> list[RecordIntent]:
        """Time passes: a sale stops waiting for its pulses, a booking that never came stops being awaited."""
        wait_ms = int(self._rules.pulse_wait_s * 1000)
        since = self._awaiting_booking_since
        if since is not None and now_ms - since > 2 * wait_ms:
            self._awaiting_booking_since = None
        return self._complete(board, now_ms)

    def _fresh(self, tap: Tap | None, board: PulseBoard, seen_ms: int) -> Count | None:
        count = board.get(tap)
        return count if count is not None and count.ts_ms >= seen_ms else None

    def _complete(self, board: PulseBoard, now_ms: int) -> list[RecordIntent]:
        sale = self._sale
        if sale is None:
            return []
        liquid = self._fresh(self.binding.pulse, board, sale.seen_ms)
        vapour = self._fresh(self.binding.vapour, board, sale.seen_ms)
        waiting = (self.binding.pulse is not None and liquid is None) or (
            self.binding.vapour is not None and vapour is None
        )
        if waiting and now_ms - sale.seen_ms < int(self._rules.pulse_wait_s * 1000):
            return []
        self._sale = None
        return self._record(sale, liquid, vapour, now_ms)

    # -- a sale, measured ----------------------------------------------------------------------------------------

    def _record(self, sale: _Sale, liquid: Count | None, vapour: Count | None, ts_ms: int) -> list[RecordIntent]:
        reading = sale.reading
        measurable = sale.in_sequence and sale.settled
        liquid_pulses = _pulses(liquid, self._liquid_mark) if measurable else None
        vapour_pulses = _pulses(vapour, self._vapour_mark) if measurable else None
        pulse_tap, vapour_tap = self.binding.pulse, self.binding.vapour
        pulse_ml = (
            None if liquid_pulses is None or pulse_tap is None else millilitres(liquid_pulses, pulse_tap.ml_per_pulse)
        )
        vapour_ml = (
            None
            if vapour_pulses is None or vapour_tap is None
            else millilitres(vapour_pulses, vapour_tap.ml_per_pulse, vapour_tap.factor)
        )
        resolution = sale.counters.volume_resolution_ml + (int(pulse_tap.ml_per_pulse) + 1 if pulse_tap else 0)
        verdict = (
            None
            if pulse_ml is None
            else judge_volume(
                reading.txn_volume_ml,
                pulse_ml,
                mpe_ppm=self._rules.mpe_ppm,
                min_measured_ml=self._rules.min_measured_ml,
                resolution_ml=resolution,
            )
        )
        body = TransactionBody(
            nozzle=self.binding.nozzle,
            dispenser=self.binding.dispenser,
            grade=self.binding.grade,
            tank=self.binding.tank,
            controller=self.binding.controller,
            txn_no=reading.txn_no,
            start=format_ts(sale.start_ms),
            end=format_ts(sale.end_ms),
            volume_ml=reading.txn_volume_ml,
            amount_fen=reading.txn_amount_fen,
            price_fen_per_l=reading.txn_price_fen_per_l,
            totalizer_volume_ml_before=self._totalizer_ml,
            totalizer_volume_ml_after=reading.totalizer_volume_ml,
            totalizer_amount_fen_before=self._totalizer_fen,
            totalizer_amount_fen_after=reading.totalizer_amount_fen,
            pulse_volume_ml=pulse_ml,
            deviation_ppm=None if verdict is None else verdict.deviation_ppm,
            vapour_ml=vapour_ml,
            al_permille=None
            if vapour_ml is None or reading.txn_volume_ml <= 0
            else round(vapour_ml * 1000 / reading.txn_volume_ml),
        )
        alarms = self._sequence_alarms(sale, ts_ms)
        alarms += self._totalizer_alarms(sale, ts_ms)
        alarms += self._metering_alarms(sale, pulse_ml, verdict, ts_ms)
        bias_alarms, bias_cursors = self._bias_test(sale, pulse_ml, ts_ms)
        self._totalizer_ml, self._totalizer_fen = reading.totalizer_volume_ml, reading.totalizer_amount_fen
        closing = sale.settled and self._fsm.at_rest  # else the next fuelling already flows: no clean mark
        self._liquid_mark = None if liquid is None or not closing else liquid.value
        self._vapour_mark = None if vapour is None or not closing else vapour.value
        cursors = [*self._controller_cursors(reading), *self._mark_cursors(), *bias_cursors]
        return [body.intent(sale.seen_ms, *cursors), *alarms, *bias_alarms]

    def _sequence_alarms(self, sale: _Sale, ts_ms: int) -> list[RecordIntent]:
        subject = self.binding.nozzle
        if sale.in_sequence:
            in_order = SaleInSequence(txn_no=sale.reading.txn_no)
            return [
                *self._alarms.clear(AlarmKind.TRANSACTION_SKIPPED, subject, ts_ms, in_order),
                *self._alarms.clear(AlarmKind.TRANSACTION_COUNTER_RESET, subject, ts_ms, in_order),
            ]
        skipped = TransactionSkippedEvidence(
            expected_txn_no=sale.reading.txn_no - sale.missing, txn_no=sale.reading.txn_no, missing=sale.missing
        )
        return self._alarms.raise_(AlarmKind.TRANSACTION_SKIPPED, subject, ts_ms, skipped)

    def _totalizer_alarms(self, sale: _Sale, ts_ms: int) -> list[RecordIntent]:
        reading, counters = sale.reading, sale.counters
        if not sale.in_sequence or self._totalizer_ml is None:
            return []
        breaks = [
            check_totalizer(
                "volume_ml",
                self._totalizer_ml,
                reading.totalizer_volume_ml,
                sold=reading.txn_volume_ml,
                modulus=counters.totalizer_volume_modulus_ml,
                tolerance=counters.volume_resolution_ml,
            )
        ]
        if self._totalizer_fen is not None and reading.totalizer_amount_fen is not None:
            breaks.append(
                check_totalizer(
                    "amount_fen",
                    self._totalizer_fen,
                    reading.totalizer_amount_fen,
                    sold=reading.txn_amount_fen,
                    modulus=counters.totalizer_amount_modulus_fen,
                    tolerance=1,
                )
            )
        found = next((b for b in breaks if b is not None), None)
        subject = self.binding.nozzle
        if found is None:
            in_order = SaleInSequence(txn_no=reading.txn_no)
            return self._alarms.clear(AlarmKind.TOTALIZER_DISCONTINUITY, subject, ts_ms, in_order)
        evidence = _discontinuity(reading.txn_no, found, at_rest=False)
        return self._alarms.raise_(AlarmKind.TOTALIZER_DISCONTINUITY, subject, ts_ms, evidence)

    def _metering_alarms(
        self, sale: _Sale, pulse_ml: int | None, verdict: VolumeVerdict | None, ts_ms: int
    ) -> list[RecordIntent]:
        if pulse_ml is None or verdict is None or not verdict.judged:
            return []
        subject = self.binding.nozzle
        evidence = JudgedSale(
            txn_no=sale.reading.txn_no,
            volume_ml=sale.reading.txn_volume_ml,
            pulse_volume_ml=pulse_ml,
            deviation_ppm=verdict.deviation_ppm,
            mpe_ppm=self._rules.mpe_ppm,
            allowed_ml=verdict.allowed_ml,
        )
        if pulse_ml == 0:
            return self._alarms.raise_(AlarmKind.ENCODER_NO_PULSES, subject, ts_ms, evidence)
        intents = self._alarms.clear(AlarmKind.ENCODER_NO_PULSES, subject, ts_ms, evidence)
        if self._alarms.active(AlarmKind.PULSES_AT_REST, subject):
            return intents  # the encoder also counts the fuel flowing at rest: its volumes prove nothing now
        if not verdict.within:
            self._deviation_raised_ppm = verdict.deviation_ppm
            return intents + self._alarms.raise_(AlarmKind.METERING_DEVIATION, subject, ts_ms, evidence)
        raised = self._deviation_raised_ppm
        allowed_ppm = verdict.allowed_ml * 1_000_000 // max(1, sale.reading.txn_volume_ml)
        if raised is None or allowed_ppm < abs(raised):
            # only a sale that would have shown the deviation clears it: a small one hides it in its resolution
            self._deviation_raised_ppm = None
            intents += self._alarms.clear(AlarmKind.METERING_DEVIATION, subject, ts_ms, evidence)
        return intents

    def _bias_test(self, sale: _Sale, pulse_ml: int | None, ts_ms: int) -> tuple[list[RecordIntent], list[Cursor]]:
        """Feed the sale to the bias test: its alarm if the test decided, and the test's state as cursors."""
        tap, subject = self.binding.pulse, self.binding.nozzle
        if pulse_ml is None or pulse_ml <= 0 or tap is None or self._alarms.active(AlarmKind.PULSES_AT_REST, subject):
            return [], []
        variance = noise_variance_ml2(float(tap.ml_per_pulse), sale.counters.volume_resolution_ml)
        observed = SaleDeviation(pulse_ml, sale.reading.txn_volume_ml, variance, sale.seen_ms)
        self._bias, change = observe(self._bias, observed, self._bias_settings)
        key = self.binding.cursor_key
        cursors = [Cursor(key(f"bias/{name}"), value) for name, value in state_values(self._bias).items()]
        if change is None:
            return [], cursors
        evidence = self._bias_evidence(change, sale.reading.txn_no)
        if change.raised:
            return self._alarms.raise_(AlarmKind.METERING_BIAS, subject, ts_ms, evidence), cursors
        return self._alarms.clear(AlarmKind.METERING_BIAS, subject, ts_ms, evidence), cursors

    def _bias_evidence(self, change: BiasChange, txn_no: int) -> MeteringBiasEvidence:
        run, found = change.run, estimate(change.run)
        return MeteringBiasEvidence(
            direction="over" if change.direction is Direction.OVER else "under",
            txn_no=txn_no,
            sales=run.sales,
            since=format_ts(run.since_ms),
            bias_ppm=None if found is None else found.bias_ppm,
            bias_low_ppm=None if found is None else found.low_ppm,
            bias_high_ppm=None if found is None else found.high_ppm,
            legal_ppm=self._bias_settings.legal_ppm,
            alarm_ppm=self._bias_settings.alarm_ppm,
            llr_millinats=round(change.llr * 1000),
        )

    # -- at rest -----------------------------------------------------------------------------------------------

    def _totalizers_at_rest(
        self, reading: NozzleReading, counters: ControllerCounters, ts_ms: int
    ) -> list[RecordIntent]:
        if self._totalizer_ml is None:
            return []
        still = self._still
        if still is not None and still[0] is reading and still[1] is counters and still[2] == self._totalizer_ml:
            return []
        moved = check_totalizer(
            "volume_ml",
            self._totalizer_ml,
            reading.totalizer_volume_ml,
            sold=0,
            modulus=counters.totalizer_volume_modulus_ml,
            tolerance=counters.volume_resolution_ml,
        )
        if moved is None:
            self._still = (reading, counters, self._totalizer_ml)
            return []
        if self._alarms.active(AlarmKind.TOTALIZER_DISCONTINUITY, self.binding.nozzle):
            return []  # already raised: the baseline stays the last recorded value, and the next sale judges
        evidence = _discontinuity(reading.txn_no, moved, at_rest=True)
        self._totalizer_ml, self._totalizer_fen = reading.totalizer_volume_ml, reading.totalizer_amount_fen
        intents = self._alarms.raise_(AlarmKind.TOTALIZER_DISCONTINUITY, self.binding.nozzle, ts_ms, evidence)
        return [_with_cursors(intent, self._controller_cursors(reading)) for intent in intents]

    def _pulses_at_rest(self, board: PulseBoard, txn_no: int, ts_ms: int) -> list[RecordIntent]:
        """Judge the pulses read before the previous rest poll: this poll still shows rest and no sale (`txn_no`,
        the nozzle's last)."""
        liquid, self._liquid_candidate = self._liquid_candidate, board.before(self._liquid_channel, ts_ms)
        vapour, self._vapour_candidate = self._vapour_candidate, board.before(self._vapour_channel, ts_ms)
        if vapour is not None:
            self._vapour_mark = vapour.value
        if liquid is not None and self._rest_quiet and liquid.value == self._liquid_mark:
            return []
        self._rest_quiet = False
        intents: list[RecordIntent] = []
        tap = self.binding.pulse
        if liquid is None or tap is None:
            return intents
        if self._liquid_mark is None:
            self._liquid_mark = liquid.value
            return intents
        rest = _pulses(liquid, self._liquid_mark)
        self._liquid_mark = liquid.value
        subject = self.binding.nozzle
        if rest is None:
            return intents
        if self._last_rest_pulses_ms is None and self._alarms.active(AlarmKind.PULSES_AT_REST, subject):
            self._last_rest_pulses_ms = ts_ms  # raised before a restart: the quiet spell counts from now
        if rest > self._rules.rest_pulse_tolerance:
            self._last_rest_pulses_ms = ts_ms
            evidence = PulsesAtRestEvidence(
                pulses=rest,
                volume_ml=millilitres(rest, tap.ml_per_pulse),
                counted_by=f"{tap.device}#{tap.channel}",
                since_txn_no=txn_no,
            )
            intents += self._alarms.raise_(AlarmKind.PULSES_AT_REST, subject, ts_ms, evidence)
        elif self._last_rest_pulses_ms is not None and (
            ts_ms - self._last_rest_pulses_ms >= self._rules.rest_clear_s * 1000
        ):
            self._last_rest_pulses_ms = None
            quiet = PulsesStopped(quiet_s=int(self._rules.rest_clear_s))
            intents += self._alarms.clear(AlarmKind.PULSES_AT_REST, subject, ts_ms, quiet)
        self._rest_quiet = self._last_rest_pulses_ms is None
        return intents

    # -- cursors -------------------------------------------------------------------------------------------------

    def _controller_cursors(self, reading: NozzleReading) -> list[Cursor]:
        key = self.binding.cursor_key
        cursors = [
            Cursor(key("txn_no"), reading.txn_no),
            Cursor(key("totalizer_volume_ml"), reading.totalizer_volume_ml),
        ]
        if reading.totalizer_amount_fen is not None:
            cursors.append(Cursor(key("totalizer_amount_fen"), reading.totalizer_amount_fen))
        return cursors

    def _mark_cursors(self) -> list[Cursor]:
        key = self.binding.cursor_key
        marks = (("liquid_pulses", self._liquid_mark), ("vapour_pulses", self._vapour_mark))
        return [Cursor(key(name), value) for name, value in marks if value is not None]


def _pulses(count: Count | None, mark: int | None) -> int | None:
    """Pulses counted since the mark; None if unknown, or if a counter that does not wrap went back (it was
    reset or replaced, so the count proves nothing)."""
    if count is None or mark is None:
        return None
    pulses = advance(count.value, mark, count.modulus)
    return pulses if pulses >= 0 else None


def _discontinuity(txn_no: int, found: Discontinuity, *, at_rest: bool) -> TotalizerDiscontinuityEvidence:
    return TotalizerDiscontinuityEvidence(
        txn_no=txn_no,
        counter=found.counter,
        form=found.form,
        before=found.before,
        after=found.after,
        expected=found.expected,
        difference=found.difference,
        at_rest=at_rest,
    )


def _with_cursors(intent: RecordIntent, cursors: list[Cursor]) -> RecordIntent:
    return RecordIntent(intent.type, intent.ts_ms, intent.body, (*intent.cursors, *cursors))
