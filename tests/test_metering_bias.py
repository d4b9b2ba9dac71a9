"""The metering-bias test without I/O: biased streams found, legal ones left alone, under-reads, clearing, its
state as cursors, and the simulator's meter noise against its analytic variance."""

from __future__ import annotations

import math
import random
import statistics

from hypothesis import given, settings
from hypothesis import strategies as st
from test_station import BINDING, RULES, Forecourt, alarms, started

from agent.station.metering_bias import (
    BiasSettings,
    BiasState,
    Direction,
    Run,
    SaleDeviation,
    estimate,
    noise_variance_ml2,
    observe,
    state_of,
    state_values,
)
from agent.station.station import Station
from simulators.meter import Encoder, MeterNoise

SETTINGS = BiasSettings()
VARIANCE_10 = noise_variance_ml2(10, 10)


def stream(
    bias: float, litres: list[float], *, seed: int, resolution_ml: int = 10, noise: MeterNoise | None = None
) -> list[SaleDeviation]:
    """Sales through the simulator's meter, the controller calibrated `bias` (a fraction) too generous."""
    rng = random.Random(seed)
    encoder = Encoder(noise or MeterNoise(), 10, turned_ul=rng.uniform(0, 1e9))
    sales = []
    for index, volume_l in enumerate(litres):
        shown, pulses = encoder.sale(volume_l * 1e6, 1 + bias, resolution_ml, rng)
        sales.append(SaleDeviation(pulses * 10, shown, noise_variance_ml2(10, resolution_ml), index))
    return sales


def first_change(sales: list[SaleDeviation], state: BiasState | None = None) -> tuple[int | None, BiasState]:
    """The index of the sale whose test changed the alarm, and the state after it (or after all)."""
    state = state or BiasState()
    for index, sale in enumerate(sales):
        state, change = observe(state, sale, SETTINGS)
        if change is not None:
            return index, state
    return None, state


def wald_asn_at(bias: float, litres: float) -> float:
    """Wald's ASN of the test's SPRT for sales all of one size far above the alarm level: ln A / E[z]."""
    weight = (litres * 1000) ** 2 / VARIANCE_10
    return SETTINGS.threshold / (SETTINGS.step * (bias - SETTINGS.middle) * weight)


class TestDetection:
    @settings(max_examples=20, deadline=None)
    @given(st.integers(0, 2**32))
    def test_an_over_read_of_half_a_percent_is_found_in_a_few_sales(self, seed: int) -> None:
        """+0.5 % on 20 L sales is raised as an over-read within three times Wald's expected sample number."""
        found, state = first_change(stream(0.005, [20.0] * 60, seed=seed))
        assert found is not None and state.raised is Direction.OVER
        assert found + 1 <= 3 * wald_asn_at(0.005, 20) + 1

    @settings(max_examples=20, deadline=None)
    @given(st.integers(0, 2**32))
    def test_an_under_read_is_found_the_other_way(self, seed: int) -> None:
        """-0.5 % is raised as an under-read, never as an over-read."""
        found, state = first_change(stream(-0.005, [20.0] * 60, seed=seed))
        assert found is not None and state.raised is Direction.UNDER

    @settings(max_examples=10, deadline=None)
    @given(st.integers(0, 2**32), st.sampled_from([10, 1]))
    def test_a_legal_meter_is_left_alone(self, seed: int, resolution_ml: int) -> None:
        """A meter at exactly the MPE, +0.30 %, or an honest one, gives no alarm in 1,500 mixed sales: at
        these noise levels the test's drift is steeply towards H0, and each restart errs with at most alpha."""
        rng = random.Random(seed)
        litres = [rng.choice((rng.uniform(0.5, 8), rng.uniform(15, 80))) for _ in range(1500)]
        for bias in (0.003, 0.0, -0.003):
            found, _ = first_change(stream(bias, litres, seed=seed, resolution_ml=resolution_ml))
            assert found is None, f"bias {bias} accused at sale {found}"

    def test_sales_below_the_minimum_measured_quantity_count(self) -> None:
        """1 L top-ups alone, 1 % over, are found: each weighs little, many prove it."""
        found, state = first_change(stream(0.01, [1.0] * 2000, seed=3, resolution_ml=1))
        assert found is not None and state.raised is Direction.OVER and found > 5

    def test_clearing_by_the_same_test_turned_round(self) -> None:
        """Raised by +1 %, the alarm stays while the bias stays and clears after honest sales, with the run that
        cleared it as evidence."""
        _, raised = first_change(stream(0.01, [30.0] * 5, seed=1))
        assert raised.raised is Direction.OVER
        still, kept = first_change(stream(0.01, [30.0] * 50, seed=2), raised)
        assert still is None and kept.raised is Direction.OVER
        state, changes = kept, []
        for sale in stream(0.0, [30.0] * 20, seed=4):
            state, change = observe(state, sale, SETTINGS)
            changes += [change] if change is not None else []
        assert [c.raised for c in changes] == [False] and state == BiasState()
        found = estimate(changes[0].run)
        assert found is not None and found.low_ppm <= 0 <= found.high_ppm

    def test_a_sale_without_pulses_is_not_evidence(self) -> None:
        """A sale the encoder did not see (no pulses) leaves the test as it was."""
        state = BiasState(over=Run(2, 5, 100, 200))
        assert observe(state, SaleDeviation(0, 20_000, VARIANCE_10, 9), SETTINGS) == (state, None)


class TestEstimate:
    @settings(max_examples=20, deadline=None)
    @given(st.integers(0, 2**32), st.sampled_from([-0.004, 0.0, 0.003]))
    def test_the_interval_covers_the_bias(self, seed: int, bias: float) -> None:
        """The weighted slope of 200 mixed sales lies within a few of its own standard errors of the bias, and
        its 95 % interval is the slope +- 1.96 of them (checked against a direct least-squares fit)."""
        rng = random.Random(seed)
        sales = stream(bias, [rng.uniform(2, 80) for _ in range(200)], seed=seed)
        run = Run()
        for sale in sales:
            run = run.add(sale)
        found = estimate(run)
        assert found is not None
        xs = [s.pulse_volume_ml for s in sales]
        ds = [s.volume_ml - s.pulse_volume_ml for s in sales]
        slope = sum(x * d for x, d in zip(xs, ds, strict=True)) / sum(x * x for x in xs)
        standard_error = math.sqrt(VARIANCE_10 / sum(x * x for x in xs))
        assert abs(found.bias_ppm - slope * 1e6) <= 2
        assert abs((found.high_ppm - found.low_ppm) / 2 - 1.959964 * standard_error * 1e6) <= 2
        assert abs(slope - bias) <= 5 * standard_error


class TestState:
    @given(
        st.builds(
            BiasState,
            over=st.builds(Run, st.integers(0, 10**6), st.integers(0, 2**41), st.integers(-(2**50), 2**50)),
            under=st.builds(Run, st.integers(0, 10**6), st.integers(0, 2**41), st.integers(-(2**50), 2**50)),
            raised=st.sampled_from([None, Direction.OVER, Direction.UNDER]),
            clearing=st.builds(Run, st.integers(0, 10**6), st.integers(0, 2**41), st.integers(-(2**50), 2**50)),
        )
    )
    def test_the_state_survives_as_integers(self, state: BiasState) -> None:
        """Every state comes back the same from its cursor values; no values at all is a fresh test."""
        assert state_of(state_values(state)) == state
        assert state_of({}) == BiasState()


def fuel_biased(court: Forecourt, real_ml: int, bias: float) -> None:
    court.fuel(real_ml, reported_ml=round(real_ml * (1 + bias) / 10) * 10)


class TestStation:
    def test_an_over_read_of_0_4_percent_on_20_litre_sales_is_found(self) -> None:
        """A nozzle over-reading 0.4 % on 20 L sales, which no single sale shows (80 mL is within the 81 mL
        a sale is allowed), raises metering_bias within about Wald's expected number of sales."""
        court = started()
        limit = math.ceil(2 * wald_asn_at(0.004, 20)) + 1
        for index in range(limit):
            fuel_biased(court, 20_000 + 10 * index, 0.004)
            if alarms(court.out):
                break
        assert alarms(court.out) == [("metering_bias", "raised")]
        (raised,) = [i.body.as_json() for i in court.out if getattr(i.body, "kind", None) == "metering_bias"]
        evidence = raised["evidence"]
        assert evidence["direction"] == "over" and evidence["sales"] <= limit
        assert evidence["bias_low_ppm"] <= 4000 <= evidence["bias_high_ppm"]

    def test_a_clean_nozzle_raises_nothing(self) -> None:
        """200 honest sales of every size, rounded by the controller to centilitres, raise nothing."""
        court = started()
        rng = random.Random(5)
        for _ in range(200):
            fuel_biased(court, rng.randrange(1_000, 80_000), 0.0)
        assert alarms(court.out) == []

    def test_a_restart_resumes_the_test_from_its_cursors(self) -> None:
        """Stopped after a few biased sales and started again from the cursors its records carried, the station
        raises at the same sale as one that never stopped."""
        sizes = [20_000 + 37 * index for index in range(12)]
        steady = started()
        for size in sizes:
            fuel_biased(steady, size, 0.0038)
        raised_at = [i.body.evidence["txn_no"] for i in steady.out if getattr(i.body, "kind", None) == "metering_bias"]
        first = started()
        for size in sizes[:2]:
            fuel_biased(first, size, 0.0038)
        cursors = {cursor.key: cursor.value for intent in first.out for cursor in intent.cursors}
        assert any(key.startswith("nozzle/D01-N1/bias/") for key in cursors)
        second = Forecourt(Station([BINDING], cursors, RULES))
        second.nozzle, second.liquid, second.now = first.nozzle, first.liquid, first.now
        second.poll()
        second.poll()
        for size in sizes[2:]:
            fuel_biased(second, size, 0.0038)
        again = [i.body.evidence["txn_no"] for i in second.out if getattr(i.body, "kind", None) == "metering_bias"]
        assert raised_at and again == raised_at


class TestSimulatedMeter:
    def test_the_deviation_variance_is_the_quantisations(self) -> None:
        """An honest controller with 1 mL pulses and a 10 mL display against a 10 mL encoder: the deviation's
        mean and variance are those of its parts, computed apart: the controller's pulse phase (1/6 mL²), its
        half-up rounding of whole mL to 10 (uniform on -4..5: mean 0.5, variance 99/12), the counter's phase
        (100/6) and a pulse of jitter with probability p (mean -10p, variance 100p(1-p))."""
        p = 0.05
        noise = MeterNoise(controller_ml_per_pulse=1.0, stop_jitter_probability=p)
        rng = random.Random(11)
        sales = stream(0.0, [rng.uniform(2, 80) for _ in range(20_000)], seed=11, noise=noise)
        deviations = [s.volume_ml - s.pulse_volume_ml for s in sales]
        variance = 1 / 6 + 99 / 12 + 100 / 6 + 100 * p * (1 - p)
        assert abs(statistics.fmean(deviations) - (0.5 - 10 * p)) < 0.15
        assert abs(statistics.variance(deviations) / variance - 1) < 0.06

    def test_exact_meters_agree_and_real_ones_do_not(self) -> None:
        """With every quantisation off, whole-centilitre sales from a shaft at rest on an edge agree to the mL;
        by default they do not."""
        rng = random.Random(1)
        litres = [round(rng.uniform(2, 60), 2) for _ in range(200)]
        encoder = Encoder(MeterNoise(controller_phase=False, stop_jitter_probability=0.0), 10)
        for volume_l in litres:
            shown, pulses = encoder.sale(volume_l * 1e6, 1.0, 10, rng)
            assert shown == pulses * 10 == round(volume_l * 1000)
        rude = stream(0.0, litres, seed=1)
        assert len({s.volume_ml - s.pulse_volume_ml for s in rude}) >= 2
