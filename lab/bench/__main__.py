"""`python -m bench [--quick] [--only NAME ...]`: run the benchmarks, print one JSON document on stdout.

Progress goes to stderr. Each figure runs in a temporary directory of its own, removed afterwards, with its
own broker and child processes, all stopped by PID when it ends. A figure that fails is reported with its
error and the others still run; the exit code is 1 if any figure failed to run, else 0 (targets missed are
reported in the JSON, not in the exit code: this is a measurement, not a test).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agent.logs import configure as configure_logs
from bench import (
    agent_process,
    bus,
    disk,
    drain,
    full_path,
    ledger,
    link_cost,
    poll_cost,
    poll_cost_tcp,
    startup,
    station_event,
    suites,
    uplink,
)
from bench.machine import machine_facts
from bench.report import Figure, readable
from bench.scale import FULL, QUICK, Scale

FIGURES: dict[str, Callable[[Scale, Path], Figure]] = {
    "ledger": ledger.run,
    "suites": suites.run,
    "ledger_sm2": ledger.run_sm2,
    "uplink": uplink.run,
    "full_path": full_path.run,
    "full_path_sm2": full_path.run_sm2,
    "drain": drain.run,
    "rss": agent_process.run,
    "disk": disk.run,
    "bus": bus.run,
    "link_cost": link_cost.run,
    "poll_cost": poll_cost.run,
    "poll_cost_tcp": poll_cost_tcp.run,
    "poll_growth": poll_cost_tcp.run_growth,
    "startup": startup.run,
    "station_event": station_event.run,
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller counts and shorter runs, for a smoke run")
    parser.add_argument(
        "--only",
        action="append",
        choices=list(FIGURES),
        metavar="NAME",
        help=f"run only this figure (repeatable): {', '.join(FIGURES)}",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    scale = QUICK if args.quick else FULL
    names = args.only or list(FIGURES)
    configure_logs("warning", "console")
    started = time.monotonic()
    figures: dict[str, Any] = {}
    targets: list[dict[str, Any]] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="station-bench-") as temp:
        root = Path(temp)
        machine = machine_facts(root)
        for name in names:
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            workdir = root / name
            workdir.mkdir()
            begun = time.monotonic()
            try:
                figure = FIGURES[name](scale, workdir)
            except Exception as exc:
                traceback.print_exc(file=sys.stderr)
                figures[name] = {"error": f"{type(exc).__name__}: {exc}"}
                failed.append(name)
                continue
            figures[name] = readable(figure)
            targets.extend(target.to_json() for target in figure.targets())
            print(f"bench: {name} done in {time.monotonic() - begun:.0f} s", file=sys.stderr, flush=True)
    document = {
        "machine": readable(machine),
        "scale": readable(scale),
        "figures": figures,
        "targets": targets,
        "all_targets_pass": bool(targets) and all(target["pass"] for target in targets) and not failed,
        "failed_figures": failed,
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(document, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
