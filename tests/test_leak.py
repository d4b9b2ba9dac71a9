"""Leak and unrecorded-sales detection from hourly tank balances, without I/O.

The months here are synthetic and small on purpose: a 30 kL tank read with 2 L of noise, sales in the day,
quiet nights, a delivery every four days, and the fault under test from the first hour. The realistic
simulator and its statistics are `make bench-detect`'s job; these tests pin the detector's behaviour.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.station.leak import HOUR_MS, LeakDetector, TankBalance
from agent.station.leak_settings import LeakSettings

START_MS = 1_704_038_400_000


def month(
    days: int = 30,
    *,
    leak_ml_per_h: int = 0,
    short_share: float = 0.0,
    onset_h: int = 0,
    noise_ml: float = 2_000.0,
    seed: int = 1,
    hidden_sale_ml: int = 0,
    open_from_h: int = 6,
) -> list[TankBalance]:
    """Hourly balances of a synthetic month, the fault from `onset_h` on; each hour's closing is the next
    hour's opening reading. `hidden_sale_ml`: from the onset, one whole sale of this size a day, at a random
    hour of trade, goes off the books. Sales come from `open_from_h` to midnight."""
    rng = random.Random(seed)
    hidden_at = -1
    volume_ml = 25_000_000.0
    reading = round(volume_ml + rng.gauss(0.0, noise_ml))
    balances = []
    for hour in range(days * 24):
        local = hour % 24
        if local == 0 and hidden_sale_ml:
            hidden_at = rng.randrange(max(open_from_h, 11), 24)
        sold_ml = 0.0 if local < open_from_h else rng.uniform(40_000.0, 300_000.0)
        delivered_ml = 15_000_000 if local == 10 and hour // 24 % 4 == 3 else 0
        faulty = hour >= onset_h
        volume_ml += delivered_ml - sold_ml - (leak_ml_per_h if faulty else 0)
        closing = round(volume_ml + rng.gauss(0.0, noise_ml))
        booked_ml = sold_ml * (1.0 - (short_share if faulty else 0.0)) * (1.0 + rng.uniform(-0.001, 0.001))
        if faulty and hidden_sale_ml and local == hidden_at:
            volume_ml -= hidden_sale_ml
            closing -= hidden_sale_ml
        balances.append(
            TankBalance(
                start_ms=START_MS + hour * HOUR_MS,
                duration_ms=HOUR_MS,
                opening_20_ml=reading,
                closing_20_ml=closing,
                delivered_20_ml=delivered_ml,
                sold_20_ml=round(booked_ml),
                temperature_cC=1_850,
                delivery_in_progress=delivered_ml > 0,
            )
        )
        reading = closing
    return balances


def fed(balances: list[TankBalance], settings: LeakSettings | None = None) -> LeakDetector:
    detector = LeakDetector(settings)
    for balance in balances:
        detector.add(balance)
    return detector


CLEAN = month()


class TestVerdicts:
    def test_a_clean_month_passes(self) -> None:
        """A sound tank passes, and its minimum detectable leak and share meet the targets."""
        verdict = fed(CLEAN).verdict()
        assert verdict.status == "pass"
        assert verdict.cause is None
        assert verdict.min_detectable_leak_ml_per_h is not None
        assert verdict.min_detectable_leak_ml_per_h <= 757
        assert verdict.min_detectable_unrecorded_ppm is not None
        assert verdict.min_detectable_unrecorded_ppm <= 10_000
        assert abs(verdict.leak_ml_per_h) < verdict.leak_threshold_ml_per_h
        assert verdict.span_h == 720

    def test_a_leak_of_2_l_per_h_fails_as_a_leak(self) -> None:
        """A constant loss, sold or not, is named a leak, with its rate."""
        verdict = fed(month(leak_ml_per_h=2_000)).verdict()
        assert (verdict.status, verdict.cause) == ("fail", "leak")
        assert 1_500 < verdict.leak_ml_per_h < 2_500
        assert verdict.leak_ml_per_h > verdict.leak_threshold_ml_per_h

    def test_unrecorded_sales_of_3_percent_fail_as_unrecorded_sales(self) -> None:
        """A loss in proportion to the sales is named unrecorded sales, with its share."""
        verdict = fed(month(short_share=0.03)).verdict()
        assert (verdict.status, verdict.cause) == ("fail", "unrecorded_sales")
        assert 25_000 < verdict.unrecorded_ppm < 35_000
        assert abs(verdict.leak_ml_per_h) < 757

    @pytest.mark.parametrize(
        ("fault", "cause"), [({"leak_ml_per_h": 1_500}, "leak"), ({"short_share": 0.02}, "unrecorded_sales")]
    )
    def test_a_fault_that_starts_mid_month_is_named_right(self, fault: dict[str, float], cause: str) -> None:
        """The span judged starts near the onset: a pooled fit of sound and faulty days would confuse the causes."""
        verdict = fed(month(onset_h=20 * 24, **fault)).verdict()  # type: ignore[arg-type]
        assert (verdict.status, verdict.cause) == ("fail", cause)
        assert verdict.span_h < 12 * 24

    def test_meter_drift_within_the_tolerance_is_no_fault(self) -> None:
        """Meters 0.2 % generous are within the 0.3 % the dispensers are allowed: no alarm."""
        verdict = fed(month(short_share=0.002)).verdict()
        assert verdict.status == "pass"
        assert 0 < verdict.unrecorded_ppm < 3_000

    def test_a_large_leak_is_found_within_two_days(self) -> None:
        """Short spans are judged too: a large leak does not wait for the month."""
        detector = LeakDetector()
        for balance in month(days=2, leak_ml_per_h=10_000):
            detector.add(balance)
        verdict = detector.verdict()
        assert (verdict.status, verdict.cause) == ("fail", "leak")

    def test_too_little_data_is_inconclusive(self) -> None:
        """Half a day is below min_hours: nothing is judged, nothing is promised."""
        verdict = fed(CLEAN[:12]).verdict()
        assert verdict.status == "inconclusive"
        assert verdict.min_detectable_leak_ml_per_h is None
        assert verdict.hours == 0

    def test_nothing_at_all_is_inconclusive(self) -> None:
        verdict = LeakDetector().verdict()
        assert (verdict.status, verdict.end_ms, verdict.span_h) == ("inconclusive", 0, 0)

    def test_a_noisy_gauge_is_inconclusive_not_pass(self) -> None:
        """When the minimum detectable leak exceeds the target, the answer is inconclusive, as SIR's."""
        verdict = fed(month(days=2, noise_ml=20_000.0)).verdict()
        assert verdict.status == "inconclusive"
        assert verdict.min_detectable_leak_ml_per_h is not None
        assert verdict.min_detectable_leak_ml_per_h > 757

    def test_the_noise_floor_keeps_a_quiet_span_honest(self) -> None:
        """Data quieter than the gauge's known noise are judged with the floor, not with their own scatter."""
        quiet = month(noise_ml=100.0)
        assert fed(quiet, LeakSettings(temperature_noise_cC=0)).verdict().noise_ml == 3_000
        assert fed(quiet).verdict().noise_ml > 3_000, "the 20 degC correction's error of 25 m3 adds to the level's"


def first_fail(balances: list[TankBalance], after_h: int) -> tuple[int, str | None] | None:
    """Hours from `after_h` to the first fail when asked every hour, and its cause; None if none came."""
    detector = LeakDetector()
    for hour, balance in enumerate(balances, start=1):
        detector.add(balance)
        verdict = detector.verdict()
        if verdict.status == "fail":
            return hour - after_h, verdict.cause
    return None


class TestWithinAWeek:
    def test_a_leak_of_0_2_gal_per_h_is_found_within_a_week_as_a_leak(self) -> None:
        """757 mL/h starting mid-month on a 2 L gauge fails within 168 h, named a leak, and not before it began."""
        onset = 12 * 24 + 7
        found = first_fail(month(leak_ml_per_h=757, onset_h=onset, seed=3), onset)
        assert found is not None
        after_h, cause = found
        assert 0 < after_h <= 168
        assert cause == "leak"

    @pytest.mark.parametrize("seed", [4, 5])
    def test_whole_sales_off_the_books_are_named_unrecorded_sales(self, seed: int) -> None:
        """One 60 L sale a day off the books is a step in an hour of trade, never in a quiet one: not a leak."""
        onset = 10 * 24
        found = first_fail(month(hidden_sale_ml=60_000, onset_h=onset, seed=seed), onset)
        assert found is not None
        after_h, cause = found
        assert 0 < after_h <= 72
        assert cause == "unrecorded_sales"

    def test_a_quiet_sound_tank_passes_and_never_fails(self) -> None:
        """A sound tank that sells only from 14:00 to midnight, read every hour all month, never fails and passes."""
        detector = LeakDetector()
        for balance in month(open_from_h=14, seed=6):
            detector.add(balance)
            assert detector.verdict().status != "fail"
        verdict = detector.verdict()
        assert verdict.status == "pass"
        assert verdict.quiet_hours > 300


class TestExclusions:
    def test_delivery_hours_and_settling_are_left_out(self) -> None:
        """Deliveries booked 500 L wrong change nothing: their hours and the settle_h after them are not used."""
        wrong = [
            replace(b, delivered_20_ml=b.delivered_20_ml - 500_000) if b.delivery_in_progress else b for b in CLEAN
        ]
        assert fed(wrong).verdict() == fed(CLEAN).verdict()
        deliveries = sum(b.delivery_in_progress for b in CLEAN)
        settle = LeakSettings().settle_h
        assert fed(CLEAN).verdict().hours == len(CLEAN) - deliveries * (1 + settle)

    def test_hours_with_a_delivered_volume_are_left_out_without_the_flag(self) -> None:
        unflagged = [replace(b, delivery_in_progress=False) for b in CLEAN]
        assert fed(unflagged).verdict().hours == fed(CLEAN).verdict().hours

    def test_invalid_hours_are_left_out(self) -> None:
        """A reading the gauge flags is not used, however wrong: both hours around it carry the flag."""
        broken = list(CLEAN)
        for hour in (100, 400):
            wrong = broken[hour].closing_20_ml + 900_000
            broken[hour] = replace(broken[hour], gauge_invalid=True, closing_20_ml=wrong)
            broken[hour + 1] = replace(broken[hour + 1], gauge_invalid=True, opening_20_ml=wrong)
        verdict = fed(broken).verdict()
        assert verdict.status == "pass"
        assert verdict.hours == fed(CLEAN).verdict().hours - 4

    def test_a_temperature_jump_is_settled_like_a_delivery(self) -> None:
        jumped = list(CLEAN)
        jumped[200] = replace(jumped[200], temperature_cC=CLEAN[199].temperature_cC + 80)
        assert fed(jumped).verdict().hours < fed(CLEAN).verdict().hours

    def test_an_hour_that_does_not_follow_on_starts_a_new_run(self) -> None:
        """An opening that is not the previous closing cannot carry the run's cumulative variance."""
        detector = fed(CLEAN[:30])
        runs = detector.verdict().runs
        gap = CLEAN[30]
        detector.add(replace(gap, opening_20_ml=gap.opening_20_ml + 1))
        detector.add(CLEAN[31])
        assert detector.verdict().runs == runs + 1


class TestMemoryAndMisuse:
    def test_memory_stays_bounded(self) -> None:
        """A year of hours, every one its own run (nothing follows on), keeps at most window_h runs."""
        settings = LeakSettings(window_h=240)
        detector = LeakDetector(settings)
        hour_ms = START_MS
        for hour in range(24 * 365):
            detector.add(TankBalance(hour_ms, HOUR_MS, hour, hour + 1, 0, 0, 1_850))
            hour_ms += HOUR_MS
        assert detector.runs_held() <= settings.window_h

    def test_memory_of_a_normal_feed_is_about_one_run_a_day(self) -> None:
        detector = fed(month(days=90))
        assert detector.runs_held() <= 30 + 30 // 4 + 1

    def test_a_balance_from_the_past_is_refused(self) -> None:
        detector = fed(CLEAN[:5])
        with pytest.raises(ValueError, match="starts before the previous one ended"):
            detector.add(CLEAN[3])

    def test_a_balance_without_duration_is_refused(self) -> None:
        with pytest.raises(ValueError, match="duration_ms = 0 must be positive"):
            LeakDetector().add(replace(CLEAN[0], duration_ms=0))

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"window_h": 0}, "window_h = 0 must be positive"),
            ({"leak_threshold_ml_per_h": 900}, "leak_threshold_ml_per_h = 900 must lie between 0"),
            ({"false_alarm_probability": 1.0}, "false_alarm_probability = 1.0 must lie strictly between"),
            ({"min_hours": 800}, "min_hours = 800 exceeds window_h = 720"),
            ({"settle_h": -1}, "settle_h = -1 must not be negative"),
            ({"level_noise_ml": 0}, "level_noise_ml = 0 must be positive"),
        ],
    )
    def test_settings_name_the_wrong_value(self, change: dict[str, float], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            LeakSettings(**change)  # type: ignore[arg-type]


class TestInvariance:
    @settings(max_examples=15, deadline=None)
    @given(offset_ml=st.integers(-20_000_000, 20_000_000), seed=st.integers(0, 2**16))
    def test_a_constant_added_to_every_volume_changes_nothing(self, offset_ml: int, seed: int) -> None:
        """Only differences of volume matter: the tank's level itself is no evidence."""
        balances = month(days=6, leak_ml_per_h=seed % 3 * 1_000, seed=seed)
        shifted = [
            replace(b, opening_20_ml=b.opening_20_ml + offset_ml, closing_20_ml=b.closing_20_ml + offset_ml)
            for b in balances
        ]
        quiet = LeakSettings(temperature_noise_cC=0)
        assert fed(shifted, quiet).verdict() == fed(balances, quiet).verdict()

    @settings(max_examples=15, deadline=None)
    @given(shift_h=st.integers(-10_000, 10_000), seed=st.integers(0, 2**16))
    def test_the_time_origin_changes_nothing_but_the_end(self, shift_h: int, seed: int) -> None:
        balances = month(days=6, short_share=seed % 3 / 100, seed=seed)
        moved = [replace(b, start_ms=b.start_ms + shift_h * HOUR_MS) for b in balances]
        verdict = fed(moved).verdict()
        assert replace(verdict, end_ms=balances[-1].end_ms) == fed(balances).verdict()

    @given(
        opening=st.integers(0, 10**8),
        closing=st.integers(0, 10**8),
        delivered=st.integers(0, 10**8),
        sold=st.integers(0, 10**8),
    )
    def test_the_variance_is_what_the_books_miss(self, opening: int, closing: int, delivered: int, sold: int) -> None:
        balance = TankBalance(START_MS, HOUR_MS, opening, closing, delivered, sold, 0)
        assert balance.variance_ml == opening - closing + delivered - sold
        assert balance.end_ms == START_MS + HOUR_MS
