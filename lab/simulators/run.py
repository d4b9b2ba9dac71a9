"""`station-sim run --config simulators.toml`: the simulated station until Ctrl-C (or --seconds).

It rewrites the report the config names (`[simulation] report`) about once a second and prints the report as
one JSON line on stdout when it stops; while it runs, `station-sim fault` changes its faults through the
control socket (`[simulation] control`). With `--ready-file F`, once every line and server is up it writes F
(write, then rename) with the ports bound and the pty paths: a CI waits for F instead of guessing. Exit status
0 after a stop, 2 when it cannot start (a JSON line `{"error": ...}` on stdout, the same on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from drivers.profiles import ProfileError
from simulators.config import SimulatorsConfigError, load_simulators_config
from simulators.control import ControlError
from simulators.exits import OK, cannot_run
from simulators.modbus_slave import SlaveServerError
from simulators.platform.keys import StationKeyError
from simulators.platform.receiver import ReceiverError
from simulators.serial_line import SerialLineError
from simulators.station import SimulatedStation

REPORT_INTERVAL_S = 1.0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "run",
        help="run the simulated station (devices on pty/TCP lines, optionally the platform receiver)",
        description="Run the dispensers, pulse counters and tank sensors of a simulators config on their pty "
        "and TCP lines until SIGINT/SIGTERM or --seconds; then print the report as one JSON line.",
    )
    parser.add_argument("--config", type=Path, required=True, help="simulators.toml")
    parser.add_argument("--seconds", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    parser.add_argument(
        "--ready-file",
        type=Path,
        metavar="FILE",
        help="once everything is up, write the bound ports, pty paths, control socket and pid here as JSON",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_simulators_config(args.config.absolute())  # its paths absolute, in the ready file too
    except SimulatorsConfigError as exc:
        return cannot_run("run", str(exc))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: _stop_once(stop))
    try:
        station = SimulatedStation(config)
        station.start()
    except (
        ProfileError,
        SerialLineError,
        SlaveServerError,
        ControlError,
        StationKeyError,
        ReceiverError,
        OSError,
    ) as exc:
        return cannot_run("run", f"cannot start: {exc}")
    if args.ready_file is not None:
        try:
            write_ready_file(args.ready_file, station)
        except OSError as exc:
            station.stop()
            return cannot_run("run", f"cannot write --ready-file {str(args.ready_file)!r}: {exc.strerror}")
    print(f"station-sim: running {station.device_count} device(s); Ctrl-C stops", file=sys.stderr, flush=True)
    try:
        remaining = args.seconds
        while not stop.wait(REPORT_INTERVAL_S if remaining is None else min(REPORT_INTERVAL_S, remaining)):
            if remaining is not None:
                remaining -= REPORT_INTERVAL_S
                if remaining <= 0:
                    break
            station.write_reports()
    finally:
        station.stop()
    station.write_reports()
    print(json.dumps(station.report(), sort_keys=True), flush=True)
    return OK


def _stop_once(stop: threading.Event) -> None:
    """Ignore further stop signals before setting `stop`: a second signal inside `Event.set` would run this
    handler again in the same thread and wait forever for the lock the first one holds."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)
    stop.set()


def write_ready_file(path: Path, station: SimulatedStation) -> None:
    """The station's endpoints and this process's pid, as JSON in one step: a reader that sees the file sees
    all of it, and only once everything listens."""
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(json.dumps({"pid": os.getpid(), **station.endpoints()}, sort_keys=True) + "\n")
    os.replace(temporary, path)
