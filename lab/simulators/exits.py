"""What every `station-sim` command does at its end: its exit code, and one JSON line on stdout even when it
cannot run, so that a CI reads every outcome the same way (`json.loads` of the last line of stdout).

Exit codes: 0 done and, for a checking command, all is well; 1 done, and what it checked is not (or the
station refused); 2 it could not run: a usage error, a bad config, a file or peer it needs is missing. On 2,
stdout holds `{"error": "..."}` and stderr the same message for people.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Final, NoReturn

OK: Final = 0
NOT_OK: Final = 1
CANNOT_RUN: Final = 2


def cannot_run(command: str, message: str) -> int:
    """Say why `station-sim COMMAND` could not run, as a JSON line and a line for people; CANNOT_RUN."""
    print(json.dumps({"error": message}), flush=True)
    print(f"station-sim {command}: {message}", file=sys.stderr, flush=True)
    return CANNOT_RUN


class JsonErrorParser(argparse.ArgumentParser):
    """argparse with its usage errors also as a JSON line on stdout (exit 2, as argparse does)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(json.dumps({"error": f"{self.prog}: {message}"}), flush=True)
        self.exit(CANNOT_RUN, f"{self.prog}: error: {message}\n")
