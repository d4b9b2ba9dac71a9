"""The replay memory on disk: written whole, atomically and durably, before an accepted command is carried out.

A small JSON file beside the outbox rather than rows in it: the outbox's one writing connection belongs to the
recorder thread, and this state is rewritten as a whole (a few kB at most) only when a command is accepted.
An unreadable file must not reopen the replay window, so it is refused loudly rather than taken as empty.
"""

from __future__ import annotations

import json
from pathlib import Path

from agent.commands.replay import ReplayState
from agent.commands.state_file import write_atomically


class ReplayFileError(Exception):
    """The replay memory cannot be read or written; the message names the file and what to do."""


def load_replay(path: Path) -> ReplayState | None:
    """The saved state, or None if there is none yet (a box that never accepted a command)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ReplayState(int(data["floor_ms"]), tuple((str(cid), int(exp)) for cid, exp in data["expiries"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReplayFileError(
            f"command replay memory {path} cannot be read ({exc}); if it is damaged, delete it and wait "
            "commands.max_lifetime_s before enabling commands again, so that no old command can be replayed"
        ) from exc


def save_replay(path: Path, state: ReplayState) -> None:
    """Replace the file in one step (agent.commands.state_file)."""
    text = json.dumps({"floor_ms": state.floor_ms, "expiries": [list(item) for item in state.expiries]})
    try:
        write_atomically(path, text)
    except OSError as exc:
        raise ReplayFileError(f"command replay memory {path} cannot be written: {exc}") from exc
