"""The figures as a table for people, printed beside the JSON: each scenario, each goal met or not, and the
physical limit the simulated gauges set."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bench.detect.bound import Gauge
from bench.detect.score import ScenarioSummary, Share, SoundTime
from bench.report import Target


def _share(value: Share | None) -> str:
    return "—" if value is None else f"{100 * value.share:.1f} % ({100 * value.low_95:.1f}-{100 * value.high_95:.1f})"


def _hours(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} h"


def render(
    summaries: Mapping[str, ScenarioSummary], sound: SoundTime, goals: Sequence[Target], bounds: Sequence[Gauge]
) -> str:
    lines = [
        "",
        f"{'scenario':<32} {'found':<22} {'right cause':<22} {'median':>7} {'p90':>7} {'false alarms':<22}",
    ]
    for name, summary in summaries.items():
        lines.append(
            f"{name:<32} {_share(summary.detection):<22} {_share(summary.right_cause):<22} "
            f"{_hours(summary.median_hours_to_detection):>7} {_hours(summary.p90_hours_to_detection):>7} "
            f"{_share(summary.false_alarms):<22}"
        )
    lines.append(
        f"all sound time: {sound.false_alarms} false alarms in {sound.sound_tank_months:.1f} tank-months "
        f"({100 * sound.per_tank_month:.2f} % per tank-month)"
    )
    lines += ["", "goals:"]
    for goal in goals:
        verdict = "met" if goal.passed else "NOT MET"
        lines.append(f"  {goal.name:<58} {goal.measured:>9.4g}  {goal.to_json()['rule']:<22} {verdict}")
    lines += [
        "",
        "physical limit: smallest leak (mL/h) any test finds with 99 % at the bench's false-alarm rate, after so "
        "many days of one unbroken run, onset known:",
    ]
    days = [d for d, _ in bounds[0].min_detectable_ml_per_h] if bounds else []
    lines.append(f"  {'gauge on the largest tank':<44}" + "".join(f"{f'{d} d':>8}" for d in days) + "  set by")
    for gauge in bounds:
        label = (
            f"{gauge.name} {gauge.gauge_noise_mm:.2f} mm ({gauge.level_noise_l:.1f} L level, "
            f"{gauge.temperature_noise_l:.1f} L temp.)"
        )
        row = "".join(f"{value:>8.0f}" for _, value in gauge.min_detectable_ml_per_h)
        lines.append(f"  {label:<44}{row}  {gauge.set_by} noise")
    return "\n".join(lines)
