"""`station-sim fault`: put faults on a running simulated station, take them off, list them.

    station-sim fault --control sim.sock inject pulse_injection D01-N1 --set percent=1.5
    station-sim fault --control sim.sock clear pulse_injection D01-N1
    station-sim fault --control sim.sock list
    station-sim fault kinds

The station's answer is printed as one JSON line; `kinds` prints one JSON line per kind (`--text`: the
catalogue for people). Exit status: 0 done, 1 refused (the error names what is allowed), 2 the station cannot
be reached or the command line is wrong, with one JSON line `{"error": ...}` on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from simulators.control import ControlError, Message, send_request
from simulators.exits import NOT_OK, OK, cannot_run
from simulators.faults import CATALOGUE


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "fault",
        help="inject, clear or list faults of a running simulated station",
        description="Drive the faults of a running `station-sim run` through its control socket "
        "([simulation] control in its config). `kinds` lists every fault kind with its targets and params.",
    )
    parser.add_argument("--control", type=Path, metavar="PATH", help="the station's control socket")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    inject = actions.add_parser("inject", help="put a fault on (a one-shot happens at once)")
    inject.add_argument("kind", help="fault kind, e.g. pulse_injection (see `kinds`)")
    inject.add_argument(
        "target", help="a nozzle (D01-N1) or a device (D01/controller, D01/pulse_counter, T1/pressure_sensor)"
    )
    inject.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a param of the kind; repeat for more"
    )
    clear = actions.add_parser("clear", help="take a sustained fault off")
    clear.add_argument("kind")
    clear.add_argument("target")
    actions.add_parser("list", help="the faults on now")
    kinds = actions.add_parser("kinds", help="every fault kind, its targets and params (no station needed)")
    kinds.add_argument("--text", action="store_true", help="the catalogue as text for people, not JSON lines")
    parser.set_defaults(handler=fault)


def fault(args: argparse.Namespace) -> int:
    if args.action == "kinds":
        if args.text:
            print("\n".join(kind.describe() for kind in CATALOGUE.values()))
        else:
            print("\n".join(json.dumps(kind.to_json(), sort_keys=True) for kind in CATALOGUE.values()))
        return OK
    if args.control is None:
        return cannot_run("fault", "give --control PATH, the [simulation] control socket of the station")
    try:
        request = _request(args)
        reply = send_request(args.control, request)
    except (ValueError, ControlError) as error:
        return cannot_run("fault", str(error))
    print(json.dumps(reply, sort_keys=True))
    if not reply.get("ok"):
        print(f"station-sim fault: {reply.get('error')}", file=sys.stderr)
        return NOT_OK
    return OK


def _request(args: argparse.Namespace) -> Message:
    if args.action == "inject":
        return {"op": "inject", "kind": args.kind, "target": args.target, "params": _params(args.set)}
    if args.action == "clear":
        return {"op": "clear", "kind": args.kind, "target": args.target}
    return {"op": "list"}


def _params(settings: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for setting in settings:
        key, equals, value = setting.partition("=")
        if not equals or not key:
            raise ValueError(f"--set {setting!r}: write KEY=VALUE, e.g. --set percent=1.5")
        params[key] = value
    return params
