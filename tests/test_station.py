"""The station logic without I/O: the nozzle table, the metering checks, sales measured twice, and the alarms.

Readings here are built by hand, as a controller and a pulse counter would give them, poll by poll."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from unittest import mock

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from agent.contract.records import ReconciliationBody, RecordIntent, RecordType, format_ts
from agent.field.events import DeviceOffline, DeviceOnline, DeviceReading, LineHealth
from agent.lifecycle import ClockWatch, PreviousRun, startup_intents
from agent.station.bindings import NozzleBinding, TankBinding, Tap
from agent.station.fsm import TRANSITIONS, NozzleFsm, Phase, Step
from agent.station.metering import advance, check_totalizer, judge_volume, sale_number_step, signed
from agent.station.nozzle import NozzleTracker
from agent.station.settings import MeteringSection, VerificationSection
from agent.station.station import Station
from agent.station.vcf import Fuel, Product
from drivers.readings import (
    ChannelCount,
    ControllerCounters,
    NozzleReading,
    PulseCounterReading,
    PumpControllerReading,
    TankGaugeReading,
    TankReading,
)

RULES = MeteringSection()
COUNTERS = ControllerCounters(
    txn_no_modulus=2**32,
    totalizer_volume_modulus_ml=2**32 * 10,
    totalizer_amount_modulus_fen=2**32,
    volume_resolution_ml=10,
)
TAP = Tap("pcm1", 1, Decimal(10))
VAPOUR = Tap("pcm1", 2, Decimal(10))
BINDING = NozzleBinding("D01-N1", "D01", "92", "T1", "pc1", 1, TAP, VAPOUR)
IDLE = NozzleReading(
    nozzle=1,
    state="idle",
    txn_no=57,
    txn_volume_ml=20_000,
    txn_amount_fen=15_400,
    txn_price_fen_per_l=770,
    totalizer_volume_ml=1_000_000,
    totalizer_amount_fen=770_000,
)
SOLD = replace(
    IDLE,
    state="finished",
    txn_no=IDLE.txn_no + 1,
    txn_volume_ml=20_000,
    txn_amount_fen=15_400,
    totalizer_volume_ml=IDLE.totalizer_volume_ml + 20_000,
    totalizer_amount_fen=(IDLE.totalizer_amount_fen or 0) + 15_400,
)
"""IDLE's next sale, booked: 20 L at 7.70 yuan a litre."""


def kinds(intents: list[RecordIntent]) -> list[tuple[str, str | None]]:
    return [(str(i.type), getattr(i.body, "kind", None) if i.type != RecordType.TRANSACTION else None) for i in intents]


def alarms(intents: list[RecordIntent]) -> list[tuple[object, object]]:
    return [(i.body.kind, i.body.state) for i in intents if i.type == RecordType.ALARM]


class Forecourt:
    """One nozzle's controller and its pulse counter, advanced poll by poll, fed to a Station."""

    def __init__(self, station: Station | None = None, pulses: int = 65_000, modulus: int = 65_536) -> None:
        self.station = station or Station([BINDING], {}, RULES)
        self.now = 1_800_000_000_000
        self.nozzle = IDLE
        self.liquid = pulses
        self.vapour = 1000
        self.modulus = modulus
        self.out: list[RecordIntent] = []

    def poll(self, state: str | None = None, *, counter: bool = True) -> list[RecordIntent]:
        """A controller poll, then (100 ms later) a counter poll; returns the intents both made."""
        if state is not None:
            self.nozzle = replace(self.nozzle, state=state)
        self.now += 250
        made = self.station.on_event(
            DeviceReading("pc1", "rs485-1", self.now, PumpControllerReading((self.nozzle,), 10_000, 0x102, COUNTERS))
        )
        if counter:
            self.now += 100
            counts = (ChannelCount(1, self.liquid % self.modulus), ChannelCount(2, self.vapour % self.modulus))
            made += self.station.on_event(
                DeviceReading("pcm1", "rs485-1", self.now, PulseCounterReading(counts, self.modulus))
            )
        made += self.station.tick(self.now)
        self.committed(made)
        closed = self.station.close_days(self.now)
        self.committed(closed)
        self.out += made + closed
        return made + closed

    def committed(self, intents: list[RecordIntent]) -> None:
        """What the recorder does with every record once it is in the outbox: hand it to the day's books."""
        for intent in intents:
            self.station.note(intent)

    def fuel(
        self, real_ml: int, *, reported_ml: int | None = None, al: float = 1.1, skip: int = 0, counted: bool = True
    ) -> list[RecordIntent]:
        """Lift, fuel real_ml through the encoder (the controller books reported_ml), hang up; the booking's intents.
        With `counted` False the booking poll reads no pulse counter, and the nozzle stays hung up unpolled: the
        sale then waits for its pulses."""
        reported = real_ml if reported_ml is None else reported_ml
        self.poll("lifted")
        self.liquid += real_ml // 10
        self.vapour += round(real_ml * al) // 10
        self.poll("fuelling")
        amount = (reported * 770 + 500) // 1000
        self.nozzle = replace(
            self.nozzle,
            state="finished",
            txn_no=self.nozzle.txn_no + 1 + skip,
            txn_volume_ml=reported,
            txn_amount_fen=amount,
            totalizer_volume_ml=self.nozzle.totalizer_volume_ml + reported,
            totalizer_amount_fen=(self.nozzle.totalizer_amount_fen or 0) + amount,
        )
        made = self.poll(counter=counted)
        if counted:
            made += self.poll("idle")
        return made


def started(station: Station | None = None) -> Forecourt:
    """A forecourt whose first polls (baseline, identity, the marks) are done."""
    court = Forecourt(station)
    court.poll()
    court.poll()
    court.poll()
    return court


class TestNozzleTable:
    def test_the_table_covers_every_pair_of_phases(self) -> None:
        """Every (from, to) pair has a row, so a missed phase is never an error."""
        assert set(TRANSITIONS) == {(a, b) for a in Phase for b in Phase}

    def test_leaving_and_returning_to_rest(self) -> None:
        """Lifted starts a fuelling, finished ends it; a fuelling seen only as idle→finished starts nothing."""
        fsm = NozzleFsm()
        assert [fsm.observe(s) for s in ("idle", "lifted", "fuelling", "finished", "idle")] == [
            Step.NONE,
            Step.STARTED,
            Step.NONE,
            Step.ENDED,
            Step.NONE,
        ]
        assert fsm.observe("fault") == Step.NONE and fsm.phase == Phase.IDLE


class TestMeteringArithmetic:
    @given(start=st.integers(0, 65_535), pulses=st.integers(0, 65_535))
    def test_a_16_bit_counter_advances_across_its_wrap(self, start: int, pulses: int) -> None:
        """However the count wraps, the advance is the pulses counted."""
        assert advance((start + pulses) % 65_536, start, 65_536) == pulses

    @given(before=st.integers(0, 2**32 - 1), sold=st.integers(0, 10**6))
    def test_a_totalizer_that_wraps_still_adds_up(self, before: int, sold: int) -> None:
        """A 32-bit totalizer that wraps during a sale is continuous, not a jump."""
        modulus = 2**32
        assert check_totalizer("v", before, (before + sold) % modulus, sold=sold, modulus=modulus, tolerance=0) is None

    def test_totalizer_jump_and_step_back(self) -> None:
        """A totalizer that moved more than the sale jumped; less, it stepped back."""
        jump = check_totalizer("v", 100, 300, sold=100, modulus=None, tolerance=10)
        back = check_totalizer("v", 100, 150, sold=100, modulus=None, tolerance=10)
        assert jump is not None and (jump.form, jump.difference) == ("jump", 100)
        assert back is not None and (back.form, back.difference) == ("step_back", -50)
        assert signed(2**32 - 5, 2**32) == -5

    def test_sale_numbers(self) -> None:
        """Next, skipped (with how many), or backwards, across the counter's wrap."""
        assert sale_number_step(41, 42, None) == ("next", 0)
        assert sale_number_step(41, 45, None) == ("skipped", 3)
        assert sale_number_step(41, 0, None) == ("backwards", 41)
        assert sale_number_step(2**32 - 1, 0, 2**32) == ("next", 0)

    def test_volume_judged_above_the_minimum_with_both_resolutions(self) -> None:
        """0.3 % plus the resolution is within; 1 % of 20 L is not; below the minimum nothing is judged."""
        assert judge_volume(20_000, 19_950, mpe_ppm=3000, min_measured_ml=2000, resolution_ml=21).within
        verdict = judge_volume(20_200, 20_000, mpe_ppm=3000, min_measured_ml=2000, resolution_ml=21)
        assert verdict.judged and not verdict.within and verdict.deviation_ppm == 10_000
        assert not judge_volume(1000, 500, mpe_ppm=3000, min_measured_ml=2000, resolution_ml=21).judged


class TestSales:
    def test_first_sight_is_a_baseline_and_an_identity(self) -> None:
        """The first controller reading notes the counters and the calibration; no sale, no alarm."""
        court = Forecourt()
        made = court.poll()
        assert kinds(made) == [("event", "device_identity"), ("event", "controller_baseline")]

    def test_a_clean_sale_is_measured_twice_with_its_vapour(self) -> None:
        """A sale records the controller's volume, the encoder's, their deviation and the A/L; no alarm."""
        court = started()
        made = court.fuel(30_120)
        (sale,) = [i for i in made if i.type == RecordType.TRANSACTION]
        body = sale.body.as_json()
        assert (body["volume_ml"], body["pulse_volume_ml"], body["deviation_ppm"]) == (30_120, 30_120, 0)
        assert (body["vapour_ml"], body["al_permille"]) == (33_130, 1100)
        assert body["totalizer_volume_ml_before"] == 1_000_000 and body["totalizer_volume_ml_after"] == 1_030_120
        assert alarms(court.out) == []
        assert body["start"] < body["end"] and body["start"] != format_ts(0)

    def test_pulse_injection_of_one_percent_raises_once_and_clears_on_a_clean_sale(self) -> None:
        """The controller reporting 1 % more than the encoder counted is one metering_deviation alarm with
        both volumes (and, by the second sale, a metering_bias); more such sales raise nothing new; a clean sale
        clears both."""
        court = started()
        court.fuel(20_000, reported_ml=20_200)
        court.fuel(25_000, reported_ml=25_250)
        raised = [i for i in court.out if i.type == RecordType.ALARM]
        assert alarms(court.out) == [("metering_deviation", "raised"), ("metering_bias", "raised")]
        assert raised[0].body.evidence["volume_ml"] == 20_200
        assert raised[0].body.evidence["pulse_volume_ml"] == 20_000
        assert raised[0].body.evidence["deviation_ppm"] == 10_000
        court.fuel(18_000)
        assert alarms(court.out) == [
            ("metering_deviation", "raised"),
            ("metering_bias", "raised"),
            ("metering_deviation", "cleared"),
            ("metering_bias", "cleared"),
        ]

    def test_a_small_sale_does_not_clear_a_deviation_its_resolution_would_hide(self) -> None:
        """After a 1 % deviation on 20 L, a 2 L sale within tolerance (its resolution is over 1 %) leaves the
        alarm raised; a 20 L sale within tolerance clears it."""
        court = started()
        court.fuel(20_000, reported_ml=20_200)
        court.fuel(2_000, reported_ml=2_010)
        deviations = [alarm for alarm in alarms(court.out) if alarm[0] == "metering_deviation"]
        assert deviations == [("metering_deviation", "raised")]
        court.fuel(20_000)
        deviations = [alarm for alarm in alarms(court.out) if alarm[0] == "metering_deviation"]
        assert deviations == [("metering_deviation", "raised"), ("metering_deviation", "cleared")]

    def test_a_sale_seen_only_after_the_next_began_is_not_measured(self) -> None:
        """If the controller is seen again only when the next fuelling already flows, the booked sale's pulses
        cannot be told from the next one's: it is recorded unmeasured, and so is the next; no alarm."""
        court = started()
        court.poll("lifted")
        court.liquid += 1000
        court.nozzle = replace(
            court.nozzle,
            state="fuelling",
            txn_no=58,
            txn_volume_ml=10_000,
            txn_amount_fen=7700,
            totalizer_volume_ml=1_010_000,
            totalizer_amount_fen=777_700,
        )
        court.liquid += 300
        made = court.poll()
        court.liquid += 1200
        court.nozzle = replace(
            court.nozzle,
            state="finished",
            txn_no=59,
            txn_volume_ml=15_000,
            txn_amount_fen=11_550,
            totalizer_volume_ml=1_025_000,
            totalizer_amount_fen=789_250,
        )
        made += court.poll()
        sales = [i.body.as_json() for i in made if i.type == RecordType.TRANSACTION]
        assert [(b["txn_no"], b["pulse_volume_ml"]) for b in sales] == [(58, None), (59, None)]
        assert alarms(court.out) == []
        court.poll("idle")
        court.poll()
        court.poll()
        made = court.fuel(12_000)
        (sale,) = [i for i in made if i.type == RecordType.TRANSACTION]
        assert sale.body.pulse_volume_ml == 12_000

    def test_a_dead_encoder_is_its_own_alarm(self) -> None:
        """No pulse at all for a judged sale is encoder_no_pulses, not a deviation; pulses again clear it."""
        court = started()
        court.poll("lifted")
        court.nozzle = replace(
            court.nozzle,
            state="finished",
            txn_no=58,
            txn_volume_ml=10_000,
            txn_amount_fen=7700,
            totalizer_volume_ml=1_010_000,
            totalizer_amount_fen=777_700,
        )
        court.poll()
        court.poll("idle")
        court.fuel(12_000)
        assert alarms(court.out) == [("encoder_no_pulses", "raised"), ("encoder_no_pulses", "cleared")]

    def test_a_sale_across_the_counter_wrap_measures_right(self) -> None:
        """The 16-bit counter wraps in the middle of a sale; the pulse volume is still the sale's."""
        court = started()
        made = court.fuel(40_000)
        (sale,) = [i for i in made if i.type == RecordType.TRANSACTION]
        assert court.liquid > 65_536 and sale.body.pulse_volume_ml == 40_000

    def test_skipped_sale_numbers_are_an_alarm_and_the_sale_is_not_judged(self) -> None:
        """A sale number that jumps raises transaction_skipped with how many are missing; the pulses then
        cover unseen sales, so that sale is recorded unmeasured; the next in sequence clears it."""
        court = started()
        made = court.fuel(10_000, skip=2)
        (sale,) = [i for i in made if i.type == RecordType.TRANSACTION]
        assert sale.body.pulse_volume_ml is None
        evidence = next(i.body.evidence for i in made if i.type == RecordType.ALARM)
        assert evidence == {"expected_txn_no": 58, "txn_no": 60, "missing": 2}
        court.fuel(10_000)
        assert alarms(court.out) == [("transaction_skipped", "raised"), ("transaction_skipped", "cleared")]

    def test_a_controller_reset_is_an_alarm_not_a_sale(self) -> None:
        """Sale number and totalizers back to zero: transaction_counter_reset, no transaction; cleared by the
        next sale in sequence."""
        court = started()
        court.nozzle = replace(court.nozzle, txn_no=0, totalizer_volume_ml=0, totalizer_amount_fen=0)
        made = court.poll()
        assert kinds(made) == [("alarm", "transaction_counter_reset")]
        court.fuel(10_000)
        assert alarms(court.out) == [("transaction_counter_reset", "raised"), ("transaction_counter_reset", "cleared")]
        assert not [i for i in court.out if i.type == RecordType.ALARM and i.body.kind == "totalizer_discontinuity"]

    def test_a_totalizer_moved_at_rest_is_tamper(self) -> None:
        """The volume totalizer moving with no sale raises totalizer_discontinuity at once; a sale that adds
        up clears it."""
        court = started()
        court.nozzle = replace(court.nozzle, totalizer_volume_ml=court.nozzle.totalizer_volume_ml + 50_000)
        made = court.poll()
        (alarm,) = [i for i in made if i.type == RecordType.ALARM]
        assert alarm.body.evidence["at_rest"] is True and alarm.body.evidence["difference"] == 50_000
        court.fuel(10_000)
        assert alarms(court.out) == [("totalizer_discontinuity", "raised"), ("totalizer_discontinuity", "cleared")]

    def test_pulses_at_rest_are_fuel_leaving_without_a_sale(self) -> None:
        """Pulses while the nozzle rests raise pulses_at_rest (once); after a quiet spell it clears."""
        court = started()
        court.liquid += 150
        for _ in range(4):
            court.poll()
        assert alarms(court.out) == [("pulses_at_rest", "raised")]
        evidence = next(i.body.evidence for i in court.out if i.type == RecordType.ALARM)
        assert evidence["pulses"] == 150 and evidence["volume_ml"] == 1500
        court.now += int(RULES.rest_clear_s * 1000)
        court.poll()
        court.poll()
        assert alarms(court.out) == [("pulses_at_rest", "raised"), ("pulses_at_rest", "cleared")]

    def test_a_booking_one_poll_late_is_not_taken_for_theft(self) -> None:
        """A whole sale between two polls, which the controller books only a poll later than its pulses were
        counted, is a sale with its pulses, not pulses at rest."""
        court = started()
        court.liquid += 1000
        court.poll()
        court.poll()
        court.nozzle = replace(
            court.nozzle,
            txn_no=58,
            txn_volume_ml=10_000,
            txn_amount_fen=7700,
            totalizer_volume_ml=1_010_000,
            totalizer_amount_fen=777_700,
        )
        made = court.poll()
        court.poll()
        (sale,) = [i for i in made if i.type == RecordType.TRANSACTION]
        assert sale.body.pulse_volume_ml == 10_000
        assert alarms(court.out) == []

    def test_a_sale_waits_for_pulses_counted_after_it_and_not_longer_than_pulse_wait(self) -> None:
        """With the counter silent, the sale goes out after pulse_wait_s, its independent volume unknown."""
        court = started()
        court.poll("lifted", counter=False)
        court.nozzle = replace(
            court.nozzle,
            state="finished",
            txn_no=58,
            txn_volume_ml=10_000,
            txn_amount_fen=7700,
            totalizer_volume_ml=1_010_000,
            totalizer_amount_fen=777_700,
        )
        assert court.poll(counter=False) == []
        court.now += int(RULES.pulse_wait_s * 1000)
        made = court.poll(counter=False)
        (sale,) = [i for i in made if i.type == RecordType.TRANSACTION]
        assert sale.body.pulse_volume_ml is None and sale.body.deviation_ppm is None

    def test_a_restart_resumes_from_the_cursors(self) -> None:
        """A station built from the cursors of the last records measures the next sale as if nothing happened."""
        court = started()
        court.fuel(10_000)
        cursors: dict[str, int] = {}
        for intent in court.out:
            cursors.update({c.key: c.value for c in intent.cursors})
        again = Forecourt(Station([BINDING], cursors, RULES))
        again.nozzle, again.liquid, again.vapour, again.now = court.nozzle, court.liquid, court.vapour, court.now
        made = again.fuel(15_000)
        (sale,) = [i for i in made if i.type == RecordType.TRANSACTION]
        assert sale.body.txn_no == 59 and sale.body.pulse_volume_ml == 15_000
        assert kinds(again.out)[0] == ("event", "device_identity") or ("event", "device_identity") not in kinds(
            again.out
        )
        assert alarms(again.out) == []


class TestDevices:
    def test_calibration_change_is_an_event_and_unverified_until_restored(self) -> None:
        """A new K-factor is a calibration_change event and a calibration_unverified alarm; the old value
        back clears it."""
        station = Station([BINDING], {}, RULES)

        def read(k: int) -> list[RecordIntent]:
            reading = PumpControllerReading((IDLE,), k, 0x102, COUNTERS)
            return station.on_event(DeviceReading("pc1", "rs485-1", 1000, reading))

        read(10_000)
        changed = read(10_100)
        assert kinds(changed) == [("event", "calibration_change"), ("alarm", "calibration_unverified")]
        assert changed[0].body.verified is False
        restored = read(10_000)
        assert kinds(restored) == [("event", "calibration_change"), ("alarm", "calibration_unverified")]
        assert restored[1].body.state == "cleared"

    def test_calibration_is_judged_against_its_verification_certificate(self) -> None:
        """With a verification in the config, a controller found at another K-factor is unverified at once;
        recalibrated to the certified value, the change is recorded as verified with the certificate and the
        alarm clears."""
        verification = VerificationSection(device="pc1", k_factor=10_100, certificate="JJG443-2026-0042")
        station = Station([BINDING], {}, RULES, (verification,))
        first = station.on_event(DeviceReading("pc1", "l", 1, PumpControllerReading((IDLE,), 10_000, 0x102, COUNTERS)))
        assert alarms(first) == [("calibration_unverified", "raised")]
        made = station.on_event(DeviceReading("pc1", "l", 2, PumpControllerReading((IDLE,), 10_100, 0x102, COUNTERS)))
        assert kinds(made)[0] == ("event", "calibration_change")
        assert made[0].body.verified is True and made[0].body.certificate == "JJG443-2026-0042"
        assert alarms(made) == [("calibration_unverified", "cleared")]

    def test_a_device_silent_for_a_minute_is_an_alarm(self) -> None:
        """Offline is an event at once; still offline after silent_after_s, a device_silent alarm; back online
        clears it."""
        station = Station([], {}, RULES)
        assert kinds(station.on_event(DeviceOffline("pc1", "rs485-1", 0, "ModbusTimeout"))) == [
            ("event", "device_offline")
        ]
        assert station.tick(int(RULES.silent_after_s * 1000) - 1) == []
        assert alarms(station.tick(int(RULES.silent_after_s * 1000))) == [("device_silent", "raised")]
        assert station.tick(int(RULES.silent_after_s * 1000) + 5000) == []
        back = station.on_event(DeviceOnline("pc1", "rs485-1", 90_000))
        assert kinds(back)[0] == ("event", "device_online") and alarms(back) == [("device_silent", "cleared")]

    def test_a_noisy_line_is_an_alarm_and_a_quiet_one_clears_it(self) -> None:
        """Failures over a fifth of the polls of answering devices raise line_errors; under a tenth clear it."""
        station = Station([], {}, RULES)
        station.on_event(LineHealth("rs485-1", 0, 0, 0, 0, 0))
        raised = station.on_event(LineHealth("rs485-1", 10_000, 100, 40, 38, 2))
        assert alarms(raised) == [("line_errors", "raised")]
        assert raised[0].body.evidence["crc_errors"] == 38
        cleared = station.on_event(LineHealth("rs485-1", 80_000, 800, 45, 40, 5))
        assert alarms(cleared) == [("line_errors", "cleared")]


class TestLifecycle:
    def test_first_start_is_just_a_start(self) -> None:
        """A fresh outbox gives only agent_start."""
        intents = startup_intents(
            PreviousRun(False, 0, None, None), 1000, version="1", config_sha256="a", kid="k", jump_threshold_ms=5000
        )
        assert [i.body.kind for i in intents] == ["agent_start"]

    def test_unclean_stop_clock_back_and_config_change(self) -> None:
        """Still marked running, a clock behind the last record, and another config: three findings."""
        previous = PreviousRun(True, 41, 1_000_000, "old")
        intents = startup_intents(previous, 500_000, version="1", config_sha256="new", kid="k", jump_threshold_ms=5000)
        assert [i.body.kind for i in intents] == ["agent_start", "unclean_stop", "clock_jump", "config_change"]
        assert intents[2].body.jump_ms == -500_000 and intents[2].body.across_restart is True

    def test_clock_watch_ignores_slew_and_reports_a_step(self) -> None:
        """Drift within the threshold is silent; a step beyond it is one clock_jump with its size."""
        watch = ClockWatch(threshold_ms=2000, wall_ms=1_000_000, monotonic_s=100.0)
        assert watch.check(1_010_500, 110.0) is None
        jump = watch.check(1_020_500 + 3_600_000, 120.0)
        assert jump is not None and jump.body.jump_ms == 3_600_000


@pytest.mark.parametrize("real_ml", [2_000, 5_000, 20_000, 60_000])
def test_honest_sales_of_any_size_raise_nothing(real_ml: int) -> None:
    """An honest sale, its volume rounded to centilitres by the controller, is within tolerance at any size."""
    court = started()
    court.fuel(real_ml, reported_ml=real_ml // 10 * 10 + 10)
    assert alarms(court.out) == []


def test_a_sale_completed_by_the_clock_still_lowers_its_tank_in_the_books() -> None:
    """A sale recorded when its wait for pulses ran out (the counter was not polled after the booking) is booked
    in its tank's hourly books like any other: the tank's books must not lose the sales that time completes."""
    tank = TankBinding("T1", Fuel(Product.GASOLINE, 745.0), 30_000_000, "tg", gauge_tank=1)
    court = started(Station([BINDING], {}, RULES, tanks=(tank,)))

    def gauge(volume_ml: int) -> list[RecordIntent]:
        level = TankReading(tank=1, volume_ml=volume_ml, height_um=volume_ml // 15, water_um=0, temperature_cC=2000)
        return court.station.on_event(DeviceReading("tg", "gauge", court.now, TankGaugeReading((level,))))

    gauge(20_000_000)
    court.fuel(30_000, counted=False)
    court.now += int(RULES.pulse_wait_s * 1000) + 1
    by_clock = court.station.tick(court.now)
    assert [i.type for i in by_clock] == [RecordType.TRANSACTION]
    court.now += 3_600_000
    books = [i.body.as_json() for i in gauge(19_970_000) if isinstance(i.body, ReconciliationBody)]
    books = [b for b in books if b["period"] == "hour"]
    assert [(b["sales"], b["variance_ml"]) for b in books] == [(1, 0)]


_ACTION = st.one_of(
    st.just(("same", 0)),
    st.tuples(st.just("state"), st.sampled_from(["idle", "lifted", "fuelling", "finished"])),
    st.tuples(st.just("sale"), st.integers(0, 3)),
    st.tuples(st.just("pulses"), st.integers(0, 40)),
    st.tuples(st.just("totalizer"), st.integers(-30, 30)),
    st.tuples(st.just("no_counter"), st.just(0)),
    st.tuples(st.just("wait_s"), st.integers(1, 200)),
    st.tuples(st.just("earlier"), st.integers(1, 6)),
)
_ACTIONS = st.lists(_ACTION, max_size=60)
_ACTIONS_AT_REST = st.lists(
    st.one_of(
        _ACTION,
        st.tuples(st.just("vapour"), st.integers(0, 40)),
        st.tuples(st.just("price"), st.integers(1, 3)),
        st.tuples(st.just("clock_back_s"), st.integers(1, 200)),
        st.tuples(st.just("restart"), st.just(0)),
        st.tuples(st.just("pulses_back"), st.integers(1, 3)),
        st.tuples(st.just("counter_restart"), st.integers(0, 2)),
        st.tuples(st.just("near_wrap"), st.integers(0, 4)),
        st.tuples(st.just("no_wrap"), st.just(0)),
    ),
    max_size=60,
)
"""`_ACTIONS` and what tests a rest shortcut more: the vapour meter counting alone, a reading changed in one
field that judges nothing (the price), station time stepped back, a restart from the cursors recorded, and the
encoder's count moved back (a pulse counted then taken back), started again from zero (the counter restarted) or
set just short of its wrap, and a counter that does not wrap (its count going back proves nothing)."""


def _scripted(actions: list[tuple[str, object]], *, reuse: bool) -> list[RecordIntent]:
    """The station's records for a script of polls; `reuse`: a nozzle whose answer did not change is handed over
    as the very same object, as the drivers do (otherwise as an equal copy every poll); `earlier` hands back the
    object of a poll some polls before (a controller rebooted to older counters, a reading kept by a poller), and a
    pulse counter's unchanged answer the same object likewise; `restart` builds the station again from the cursors
    recorded so far, as the agent does after a restart."""
    station = Station([BINDING], {}, RULES)
    now, nozzle, liquid, vapour, made = 1_800_000_000_000, IDLE, 1000, 500, []
    handed: list[NozzleReading] = []
    last_counts: PulseCounterReading | None = None
    modulus: int | None = 65_536
    for action, value in actions:
        counter = True
        if action == "restart":
            station = Station([BINDING], {c.key: c.value for i in made for c in i.cursors}, RULES)
        elif action == "vapour":
            vapour += int(str(value))
        elif action == "price":
            nozzle = replace(nozzle, price_fen_per_l=(nozzle.price_fen_per_l or 770) + int(str(value)))
        elif action == "clock_back_s":
            now -= int(str(value)) * 1000
        elif action == "earlier":
            nozzle = handed[-int(str(value))] if len(handed) >= int(str(value)) else nozzle
        elif action == "state":
            nozzle = replace(nozzle, state=value)
        elif action == "sale":
            volume = 1_000 * (1 + int(str(value)))
            liquid += volume // 10
            nozzle = replace(
                nozzle,
                txn_no=nozzle.txn_no + 1 + int(str(value)) // 3,
                txn_volume_ml=volume,
                totalizer_volume_ml=nozzle.totalizer_volume_ml + volume,
            )
        elif action == "pulses":
            liquid, vapour = liquid + int(str(value)), vapour + int(str(value)) // 2
        elif action == "pulses_back":
            liquid -= int(str(value))
        elif action == "counter_restart":
            liquid, vapour = int(str(value)), int(str(value))
        elif action == "near_wrap":
            liquid = 65_535 - int(str(value))
        elif action == "no_wrap":
            modulus = None
        elif action == "totalizer":
            nozzle = replace(nozzle, totalizer_volume_ml=nozzle.totalizer_volume_ml + int(str(value)))
        elif action == "no_counter":
            counter = False
        elif action == "wait_s":
            now += int(str(value)) * 1000
        now += 250
        given = nozzle if reuse else replace(nozzle)
        handed.append(nozzle)
        made += station.on_event(
            DeviceReading("pc1", "rs485-1", now, PumpControllerReading((given,), 10_000, 0x102, COUNTERS))
        )
        if counter:
            now += 100
            counts = (ChannelCount(1, liquid % 65_536), ChannelCount(2, vapour % 65_536))
            if (
                not reuse
                or last_counts is None
                or (last_counts.channels, last_counts.count_modulus) != (counts, modulus)
            ):
                last_counts = PulseCounterReading(counts, modulus)
            made += station.on_event(DeviceReading("pcm1", "rs485-1", now, last_counts))
        made += station.tick(now)
    return made


@given(_ACTIONS)
def test_the_same_answer_handed_over_again_makes_the_records_an_equal_one_makes(
    actions: list[tuple[str, object]],
) -> None:
    """An idle nozzle's reading handed over as the very same object poll after poll, or handed back after others,
    is judged as an equal new one would be: the same sales, alarms and cursors, in the same order."""
    assert _scripted(actions, reuse=True) == _scripted(actions, reuse=False)


_PULSES_AT_REST = NozzleTracker._pulses_at_rest


def _pulses_judged_afresh(tracker: NozzleTracker, *args: object) -> object:
    """The pulses at rest judged the long way: with no memory of a quiet judgement before."""
    tracker._rest_quiet = False
    return _PULSES_AT_REST(tracker, *args)  # type: ignore[arg-type]


_QUIET: list[tuple[str, object]] = [("same", 0)]


@given(_ACTIONS_AT_REST, st.booleans())
@example([*_QUIET * 3, ("pulses", 20), *_QUIET * 3, ("restart", 0), *_QUIET * 3, ("wait_s", 61), *_QUIET * 2], True)
@example(
    [
        *[*_QUIET * 3, ("pulses", 1), *_QUIET * 2, ("pulses_back", 1), *_QUIET * 2, ("counter_restart", 0)],
        *[*_QUIET * 2, ("no_wrap", 0), ("pulses", 9), *_QUIET * 2, ("pulses_back", 3), *_QUIET * 3, ("wait_s", 61)],
        *_QUIET * 3,
    ],
    False,
)
def test_pulses_still_at_their_mark_at_rest_are_judged_as_the_long_way_judges_them(
    actions: list[tuple[str, object]], reuse: bool
) -> None:
    """An idle nozzle whose encoder count is still at its mark after a quiet judgement makes the records that
    judging its pulses at rest in full every poll makes: the same alarms, cursors and sales, in order, across
    vapour-only counts, one-field changes, clock steps back, restarts, and counts moved back, restarted from zero
    or wrapped."""
    remembered = _scripted(actions, reuse=reuse)
    with mock.patch.object(NozzleTracker, "_pulses_at_rest", _pulses_judged_afresh):
        assert _scripted(actions, reuse=reuse) == remembered


_JUDGE_AT_REST = NozzleTracker._totalizers_at_rest


def _judged_afresh(tracker: NozzleTracker, *args: object) -> object:
    """The totalizer judged at rest the long way: with no memory of a reading judged still before."""
    tracker._still = None
    return _JUDGE_AT_REST(tracker, *args)  # type: ignore[arg-type]


@given(_ACTIONS)
def test_a_reading_judged_still_at_rest_is_judged_so_again_as_the_long_way_judges_it(
    actions: list[tuple[str, object]],
) -> None:
    """The very same reading, counters and totalizer baseline as the last ones judged still at rest make the
    records that judging the totalizer again every poll makes: the same alarms, cursors and sales, in order."""
    remembered = _scripted(actions, reuse=True)
    with mock.patch.object(NozzleTracker, "_totalizers_at_rest", _judged_afresh):
        assert _scripted(actions, reuse=True) == remembered
