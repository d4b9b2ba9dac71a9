"""The `[status]` section: where the snapshot is written and the socket `station-agent status` asks.

Kept apart from `agent.status`, which imports most of the agent, so that the config can name it cheaply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from drivers.schema import Gt, Le, doc, settings

RUNTIME_DIRECTORY = Path("/run/station-agent")
"""The unit's `RuntimeDirectory=` (systemd/station-agent.service): systemd makes it, owned by the agent, each
time the agent starts, so before the first start it is rightly missing."""


@settings
class StatusSection:
    path: Path = doc("where the status snapshot is written (tmpfs)", default=RUNTIME_DIRECTORY / "status.json")
    interval_s: Annotated[float, Gt(0), Le(60)] = doc(
        "how often the status snapshot is written, in seconds", default=1.0
    )
    socket: Path = doc(
        "the Unix socket 'station-agent status' asks (mode 0660)", default=RUNTIME_DIRECTORY / "status.sock"
    )
