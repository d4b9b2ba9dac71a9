"""`station-sim`: the simulated station, its faults and the reference platform receiver, from the command line.

station-sim run --config simulators.toml        the forecourt (and platform receiver) until Ctrl-C
station-sim fault --control sim.sock ACTION     inject / clear / list faults of a running station
station-sim fault kinds                         the fault catalogue
station-sim tank-chart --config FILE TANK       a simulated tank's chart as CSV, for the agent's config
station-sim compare --sim-report F --db F --station ID   what the simulator did vs what the platform got
station-sim platform ... / platform-audit ...   the reference platform receiver (platform/README.md)
station-sim command CMD --key K --station ID    sign a platform command, send it, print the reply
station-sim hj212 --port P --out FILE          the reference HJ 212 platform (ecology uplink)
station-sim hostile PEER ...                    hostile peers: flapping link, rude broker, poison, rude HJ 212

Every command prints one JSON line on stdout as its result (tank-chart: the CSV) and exits 0 when done and
well, 1 when done and what it checked is not (or the station refused), 2 when it could not run, with
`{"error": "..."}` as that line (simulators/exits.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import cast

from simulators import compare_cli, fault_cli, hj212_receiver, tank_cli
from simulators import run as run_cli
from simulators.exits import JsonErrorParser
from simulators.hostile import cli as hostile_cli
from simulators.platform import cli as platform_cli
from simulators.platform import command_cli


def build_parser() -> argparse.ArgumentParser:
    parser = JsonErrorParser(
        prog="station-sim",
        description="Simulated fuel-station devices and tanks, their faults, and the reference platform receiver.",
    )
    commands = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", required=True, metavar="COMMAND"),
    )
    run_cli.register(commands)
    fault_cli.register(commands)
    tank_cli.register(commands)
    compare_cli.register(commands)
    platform_cli.register(commands)
    command_cli.register(commands)
    hj212_receiver.register(commands)
    hostile_cli.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except BrokenPipeError:  # the reader went away (`... | head`): nothing more to say, and no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
