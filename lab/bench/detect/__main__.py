"""`python -m bench.detect [--quick] [--workers N] [--seed S]`: detection quality on simulated tank-months and
nozzle-months (the metering table, also printed to stderr), JSON.

Progress goes to stderr, one JSON document to stdout. The exit code is 0 when the run completed: targets
missed are reported in the JSON, not in the exit code, as `make bench` does.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from typing import Any

from agent.station.leak_settings import LeakSettings
from agent.station.metering_bias import BiasSettings
from bench.detect import metering
from bench.detect.bound import gauges
from bench.detect.month import Physics
from bench.detect.score import (
    EPA_DETECTION,
    EPA_FALSE_ALARMS,
    ScenarioSummary,
    goals,
    sound_time,
    summarise,
    targets,
)
from bench.detect.table import render
from bench.detect.trial import LEAD_IN_H, MONTH_H, Outcome, Scenario, run
from bench.report import readable
from simulators.meter import MeterNoise

SCENARIOS = (
    Scenario("no_leak", "none"),
    Scenario("leak_0.2_gal_per_h", "leak", leak_l_per_h=0.757),
    Scenario("unrecorded_1pct_booked_short", "unrecorded_sales", unrecorded_share=0.01),
    Scenario("unrecorded_1pct_whole_sales", "unrecorded_sales", unrecorded_share=0.01, whole_sales=True),
)
FULL_MONTHS = 200
QUICK_MONTHS = 30
BASE_SEED = 20_240_601


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.detect", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_MONTHS} tank-months per scenario, not {FULL_MONTHS}"
    )
    parser.add_argument(
        "--workers", type=int, default=len(os.sched_getaffinity(0)), help="processes (default: usable CPUs)"
    )
    parser.add_argument("--seed", type=int, default=BASE_SEED, help=f"base seed (default {BASE_SEED})")
    return parser.parse_args(argv)


def _trial(job: tuple[Scenario, int, int, LeakSettings, Physics]) -> Outcome:
    return run(*job)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    months = QUICK_MONTHS if args.quick else FULL_MONTHS
    settings, physics = LeakSettings(), Physics()
    started = time.monotonic()
    results: dict[str, Any] = {}
    summaries: dict[str, ScenarioSummary] = {}
    every: list[Outcome] = []
    with ProcessPoolExecutor(max_workers=max(args.workers, 1)) as pool:
        for scenario in SCENARIOS:
            begun = time.monotonic()
            jobs = [(scenario, index, args.seed, settings, physics) for index in range(months)]
            outcomes = list(pool.map(_trial, jobs, chunksize=4))
            every += outcomes
            summaries[scenario.name] = summary = summarise(scenario, outcomes, physics.gauge_noise_mm)
            results[scenario.name] = readable(summary)
            print(
                f"bench-detect: {scenario.name}: {months} tank-months in {time.monotonic() - begun:.0f} s",
                file=sys.stderr,
                flush=True,
            )
        begun = time.monotonic()
        bias = metering.run(pool, quick=args.quick, seed=args.seed, settings=BiasSettings(), noise=MeterNoise())
        print(metering.table(bias), file=sys.stderr)
        print(f"bench-detect: metering bias in {time.monotonic() - begun:.0f} s", file=sys.stderr, flush=True)
    sound = sound_time(every)
    checks = [target.to_json() for target in targets(summaries, sound)]
    goal_checks = goals(summaries, sound)
    bounds = gauges(physics, settings.z_alarm, 0.99)
    print(render(summaries, sound, goal_checks, bounds), file=sys.stderr, flush=True)
    document = {
        "machine": {
            "cpus_usable": len(os.sched_getaffinity(0)),
            "workers": args.workers,
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "months_per_scenario": months,
        "protocol": {
            "lead_in_h": LEAD_IN_H,
            "month_h": MONTH_H,
            "look_every_h": 1,
            "fault_onset": "uniform over the scored month's hours; found if a fail comes within month_h of it",
            "false_alarm": "a fail while the tank is sound: in a no_leak month, or before a fault's onset",
            "epa_bar": {"detection_at_least": EPA_DETECTION, "false_alarms_at_most": EPA_FALSE_ALARMS},
        },
        "seeds": {"base": args.seed, "trial": "random.Random(f'{base}/{scenario}/{index}')"},
        "settings": readable(asdict(settings)),
        "physics": readable(asdict(physics)),
        "scenarios": results,
        "all_sound_time": readable(sound),
        "targets": checks,
        "all_targets_pass": all(check["pass"] for check in checks),
        "metering": bias,
        "goals": [target.to_json() for target in goal_checks],
        "physical_limit": readable(bounds),
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
