"""`station-sim compare`: what the simulated forecourt did against what the platform received, as one JSON line.

    station-sim compare --sim-report sim-report.json --db platform.sqlite --station ID [--key ID=PUB.pem ...]

Exit 0 when every comparable sale is at the platform with the controller's volume (and, with --key, the
database's audit is ok), 1 when not, 2 when the files or keys cannot be used.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from simulators.compare import (
    CompareInputError,
    compare_sales,
    read_platform,
    read_simulated_sales,
    simulated_counts,
)
from simulators.exits import NOT_OK, OK, cannot_run
from simulators.platform.cli import log_to_stderr
from simulators.platform.keys import StationKey, StationKeyError, keyring


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "compare",
        help="what the simulator did vs what the platform received (every sale, its volume; records by type)",
        description="Check that every sale the simulated controllers booked between a nozzle's first and last "
        "recorded transaction is in the platform database with the controller's volume; print one JSON line.",
    )
    parser.add_argument("--sim-report", type=Path, required=True, metavar="FILE", help="`station-sim run`'s report")
    parser.add_argument("--db", type=Path, required=True, metavar="FILE", help="the platform receiver's database")
    parser.add_argument("--station", required=True, metavar="ID", help="the station id whose records to compare")
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="ID=PUB.pem",
        help="a station's public key: also re-verify every stored signature and link (as platform-audit); repeat",
    )
    parser.set_defaults(handler=compare)


def compare(args: argparse.Namespace) -> int:
    log_to_stderr()
    try:
        keys = keyring(StationKey.from_argument(argument) for argument in args.key) if args.key else None
        simulated = read_simulated_sales(args.sim_report)
        platform = read_platform(args.db, args.station, keys)
    except (StationKeyError, CompareInputError) as error:
        return cannot_run("compare", str(error))
    sales = compare_sales(simulated, platform.transactions)
    outcome: dict[str, Any] = {
        "ok": sales.ok and platform.audit_ok,
        "station": args.station,
        "sales": sales.to_json(),
        "simulated": simulated_counts(simulated),
        "platform": {"by_type": dict(sorted(platform.by_type.items()))},
    }
    if platform.audit is not None:
        outcome["audit"] = platform.audit
    print(json.dumps(outcome, sort_keys=True), flush=True)
    return OK if outcome["ok"] else NOT_OK
