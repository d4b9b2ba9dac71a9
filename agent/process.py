"""The agent process proper: started by `station-agent run` with a checked setup, runs until told to stop.

`station-agent run` validates the config and profiles, then replaces itself (exec, same PID, so systemd
sees one service process) with `python -m agent.process`, handing the setup over in an anonymous memory file
(agent/handover.py). The new image never imports the validation library, so the long-running process stays
small.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from agent import start_failure
from agent.daemon import Agent, StartupError, StartupFault
from agent.handover import read_setup
from agent.ledger.outbox import OutboxError
from agent.logs import configure as configure_logs

EXIT_OK, EXIT_FAILED, EXIT_FIX_INPUT = 0, 1, 2


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _stop_once(stop: threading.Event) -> None:
    """The stop signals' handler. It ignores further stop signals before it sets `stop`: `Event.set` takes a
    lock, and a second signal arriving inside it would run this handler again in the same thread, which would
    wait forever for the lock it holds (a burst of SIGTERMs, or `timeout` signalling the child and its group,
    hung the agent that way). One stop is all the agent needs; systemd's SIGKILL after TimeoutStopSec remains."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    stop.set()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agent.process", description="internal: use 'station-agent run'")
    parser.add_argument("--setup-fd", type=int, required=True)
    args = parser.parse_args(argv)
    setup = read_setup(args.setup_fd)
    logging = setup.loaded.config.logging
    configure_logs(logging.level, logging.format)
    stop = threading.Event()
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: _stop_once(stop))
    notes = start_failure.note_directory(setup.loaded.config.status.socket)
    zone = ZoneInfo(setup.loaded.config.station.timezone)
    start_failure.clear(notes)
    try:
        Agent(setup).run(stop)
    except StartupError as exc:
        print(f"station-agent: {exc}", file=sys.stderr)
        start_failure.record(notes, "startup", start_failure.first_line(str(exc)), zone)
        return EXIT_FIX_INPUT
    except (OutboxError, StartupFault) as exc:
        print(f"station-agent: {exc}", file=sys.stderr)
        kind: start_failure.Kind = "outbox" if isinstance(exc, OutboxError) else "fault"
        start_failure.record(notes, kind, start_failure.first_line(str(exc)), zone)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
