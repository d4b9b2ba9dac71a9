"""The agent's status in one snapshot: what `station-agent status`, the LED and the demo read.

Each long-lived part keeps its own frozen status; this module puts them together and says, in plain words,
what needs attention. The snapshot is written to a file on tmpfs (`/run`), atomically, about once a second:
readers never see half a file, and the flash card never sees the writes.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from agent.field.poller import LineStatus
from agent.ledger.recorder import RecorderStatus
from agent.uplink.session import UplinkStatus

Health = Literal["ok", "degraded", "fault", "stopped"]


@dataclass(frozen=True, slots=True)
class AgentStatus:
    ts: str
    station: str
    version: str
    uptime_s: int
    health: Health
    problems: tuple[str, ...]
    recorder: RecorderStatus
    uplink: UplinkStatus
    lines: tuple[LineStatus, ...]


def assess(
    recorder: RecorderStatus, uplink: UplinkStatus, lines: tuple[LineStatus, ...]
) -> tuple[Health, tuple[str, ...]]:
    """`fault` needs someone on site; `degraded` is offline but buffering; `ok` is all well; `stopped` is the
    last snapshot of a run that ended."""
    if uplink.state == "stopped":
        return "stopped", ()
    faults: list[str] = []
    if recorder.state != "ok":
        faults.append(f"records cannot be stored ({recorder.state}): {recorder.problem}")
    faults.extend(
        f"device {device.name} on line {line.name} is not answering: {device.last_error}"
        for line in lines
        for device in line.devices
        if device.state == "offline"
    )
    if faults:
        return "fault", tuple(faults)
    if uplink.state != "online":
        detail = f": {uplink.last_error}" if uplink.last_error else ""
        return "degraded", (f"platform not reachable, records are kept on the box{detail}",)
    return "ok", ()


def write_status(path: Path, status: AgentStatus) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(dataclasses.asdict(status), separators=(",", ":")))
    os.replace(temporary, path)
