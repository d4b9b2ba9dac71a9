"""`station-sim platform` (receive, verify, store, ack) and `station-sim platform-audit` (re-verify a database).

Both print the report as one JSON line, the last line on stdout, and exit 0 when it is ok, 1 when it is not,
and 2 when they cannot run at all (a missing key file, a bad PEM, a bad broker address, no broker), with one
JSON line `{"error": ...}` on stdout and a line on stderr naming the thing and the fix. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final, TextIO, cast, get_args

import structlog

from simulators.exits import cannot_run
from simulators.platform.audit import audit
from simulators.platform.contract import DEFAULT_PREFIX, prefix_problem
from simulators.platform.ed25519 import LibsodiumError, require_libsodium
from simulators.platform.keys import Keyring, StationKey, StationKeyError, keyring
from simulators.platform.receiver import (
    DEFAULT_CLIENT_ID,
    MqttVersion,
    PlatformReceiver,
    ReceiverConfig,
    ReceiverError,
)
from simulators.platform.report import PlatformReport
from simulators.platform.store import StoreError

REPORT_INTERVAL_S: Final = 1.0
_MAX_PORT: Final = 65535


class UsageError(ValueError):
    """An argument that cannot be used; the message names it and says what to give instead."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `platform` and `platform-audit` to the `station-sim` command line."""
    run = commands.add_parser(
        "platform",
        help="the reference platform receiver: verify, store and ack station records",
        description="Receive station records over MQTT, verify every signature and the hash chain, store them "
        "in SQLite and ack; runs until SIGINT/SIGTERM or --seconds, then prints the report as one JSON line.",
    )
    run.add_argument("--broker", default="127.0.0.1:1883", metavar="HOST:PORT", help="MQTT broker (%(default)s)")
    _add_common(run, "SQLite file to keep records in (created if missing)")
    run.add_argument("--prefix", default=DEFAULT_PREFIX, help="topic prefix (%(default)s)")
    run.add_argument("--mqtt", choices=get_args(MqttVersion), default="5", help="MQTT version (%(default)s)")
    run.add_argument("--report", type=Path, metavar="FILE", help="rewrite this JSON report about once a second")
    run.add_argument("--seconds", type=_positive_seconds, metavar="N", help="stop after N seconds")
    run.add_argument(
        "--client-id", default=DEFAULT_CLIENT_ID, help="MQTT client id, which names the persistent session"
    )
    run.set_defaults(handler=run_platform)

    check = commands.add_parser(
        "platform-audit",
        help="re-verify every stored record of a platform database",
        description="Check every stored signature and chain link again, from the database and the keys alone, "
        "and print the report as one JSON line.",
    )
    _add_common(check, "SQLite file the platform receiver wrote")
    check.set_defaults(handler=run_audit)


def _add_common(parser: argparse.ArgumentParser, db_help: str) -> None:
    parser.add_argument("--db", type=Path, required=True, metavar="FILE", help=db_help)
    parser.add_argument(
        "--station",
        action="append",
        required=True,
        metavar="ID=PUBKEY.pem",
        help="a station and its public key (PEM, Ed25519 or SM2); repeat for more stations or keys",
    )


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return seconds


def parse_broker(text: str) -> tuple[str, int]:
    """(host, port) of `HOST:PORT`; an IPv6 host goes in brackets, `[::1]:1883`."""
    host, sep, port_text = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) <= _MAX_PORT:
        raise UsageError(f"--broker {text!r} is not HOST:PORT; give e.g. 127.0.0.1:1883")
    return host, int(port_text)


def _keys(arguments: list[str]) -> Keyring:
    """The stations' keys; raises StationKeyError for a bad one, LibsodiumError without libsodium."""
    keys = keyring(StationKey.from_argument(argument) for argument in arguments)
    require_libsodium()
    return keys


def _fail(command: str, error: Exception) -> int:
    return cannot_run(command, str(error))


class _CurrentStderr(io.TextIOBase):
    """`sys.stderr` as it is when a line is written, not as it was when logging was set up: a command run inside
    another program (a test harness, a supplier's CI runner) may find stderr swapped and the old one closed."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def log_to_stderr() -> None:
    """Keep stdout for the report: structlog prints to stdout unless told otherwise."""
    if not structlog.is_configured():
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(cast(TextIO, _CurrentStderr())))


def _finish(report: PlatformReport) -> int:
    print(json.dumps(report.to_json(), sort_keys=True), flush=True)
    return 0 if report.ok else 1


def write_report(path: Path, report: PlatformReport) -> None:
    """Replace `path` with the report in one step, so a reader never sees half a file."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, path)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set `stop` instead of killing the process (main thread only, as Python requires)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    for number in previous:
        signal.signal(number, lambda _number, _frame: stop.set())
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def run_platform(args: argparse.Namespace) -> int:
    """Run the receiver until a signal or `--seconds`, rewriting `--report`; exit 0 if the report is ok."""
    try:
        host, port = parse_broker(args.broker)
        keys = _keys(args.station)
        problem = prefix_problem(args.prefix)
        if problem is not None:
            raise UsageError(f"--prefix {args.prefix!r}: {problem}; give e.g. {DEFAULT_PREFIX}")
        if args.report is not None and not args.report.parent.is_dir():
            raise UsageError(f"--report {str(args.report)!r}: directory does not exist; create it first")
    except (UsageError, StationKeyError, LibsodiumError) as error:
        return _fail("platform", error)
    log_to_stderr()
    config = ReceiverConfig(
        host=host,
        port=port,
        db_path=args.db,
        keys=keys,
        prefix=args.prefix,
        mqtt_version=args.mqtt,
        client_id=args.client_id,
    )
    receiver = PlatformReceiver(config)
    stop = threading.Event()
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    with _stop_on_signals(stop):
        try:
            receiver.start()
        except (ReceiverError, StoreError) as error:
            return _fail("platform", error)
        try:
            while True:
                left = REPORT_INTERVAL_S if deadline is None else min(REPORT_INTERVAL_S, deadline - time.monotonic())
                if left <= 0 or stop.wait(left):
                    break
                if args.report is not None:
                    write_report(args.report, receiver.report())
        finally:
            receiver.stop()
    report = receiver.report()
    if args.report is not None:
        write_report(args.report, report)
    return _finish(report)


def run_audit(args: argparse.Namespace) -> int:
    """Re-verify the database; exit 0 if the report is ok."""
    try:
        keys = _keys(args.station)
    except (StationKeyError, LibsodiumError) as error:
        return _fail("platform-audit", error)
    log_to_stderr()
    try:
        report = audit(args.db, keys)
    except StoreError as error:
        return _fail("platform-audit", error)
    return _finish(report)
