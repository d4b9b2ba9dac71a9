"""A test-only fault: one of the agent's loops holds as if it hung, so that a test can watch systemd's watchdog
kill and restart the agent (tests/system).

Off unless the agent's environment names a trigger file in STATION_AGENT_FAULT_HOOK; the shipped unit never
sets it, and the system test sets it through a drop-in under /run, which is gone at the next boot. While the
trigger file holds a loop's name (e.g. `station`), that loop stops at the top of its next turn and stays there,
its thread alive and its promise (agent/pulse.py) running out, which is exactly what a loop stuck in a driver
or a lock looks like to the watchdog. Removing the file (or writing another name) lets it go on. With the
variable unset, the hook is one comparison per turn.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENVIRONMENT_VARIABLE = "STATION_AGENT_FAULT_HOOK"
HOLD_STEP_S = 0.5

_trigger: Path | None = Path(os.environ[ENVIRONMENT_VARIABLE]) if os.environ.get(ENVIRONMENT_VARIABLE) else None


def hold_if_asked(loop: str) -> None:
    """Return at once unless the trigger file names `loop`; then return only once it no longer does."""
    if _trigger is None:
        return
    while _names(_trigger, loop):
        time.sleep(HOLD_STEP_S)


def _names(trigger: Path, loop: str) -> bool:
    try:
        return trigger.read_text().strip() == loop
    except OSError:
        return False
