"""The `[commands]` section of the station config: whose key may command the box, and how strictly.

Defined beside the commands, as `[leak]` is beside the leak test, so that the settings and the code that reads
them are one place to look; `agent.config` includes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from drivers.schema import Ge, Gt, Le, doc, settings


@settings
class CommandsSection:
    enabled: bool = doc(
        "whether the agent listens to the platform's signed commands on {prefix}/{station}/cmd", default=False
    )
    platform_key: Path | None = doc(
        "the platform's Ed25519 public key (PEM) that commands must be signed with; required when enabled",
        default=None,
    )
    state_path: Path = doc(
        "where the ids of accepted commands are kept until they expire, so a restart cannot replay one",
        default=Path("/var/lib/station-agent/commands.json"),
    )
    max_skew_s: Annotated[int, Ge(0), Le(3600)] = doc(
        "how far in the agent's future a command's issue time may lie, in seconds (clocks differ)", default=30
    )
    max_lifetime_s: Annotated[int, Ge(1), Le(7 * 86_400)] = doc(
        "the longest a command may stay valid (expires minus issued), in seconds; bounds the replay memory",
        default=3600,
    )
    replay_memory: Annotated[int, Ge(16), Le(100_000)] = doc(
        "how many accepted command ids are remembered until they expire; when full, the oldest is forgotten "
        "and every command expiring no later than it is refused",
        default=1024,
    )
    refusals_per_hour: Annotated[int, Ge(1), Le(3600)] = doc(
        "refused commands recorded as events per hour (a burst of this many at once); the rest are counted "
        "in the next one, so a flood cannot fill the outbox",
        default=60,
    )
    resend_max_records: Annotated[int, Ge(1), Le(100_000)] = doc(
        "the most records one resend command publishes again; the reply says what was left out", default=5000
    )
    max_command_bytes: Annotated[int, Ge(1024), Le(1024 * 1024)] = doc(
        "the largest command message read, in bytes; a larger one is refused unread (a genuine command is well "
        "under 1 KiB)",
        default=16 * 1024,
    )
    replies_per_s: Annotated[float, Gt(0), Le(1000)] = doc(
        "command replies published per second at most (a burst of twice as many); the rest are dropped and "
        "counted, and records always go out before replies",
        default=5.0,
    )
    queue_limit: Annotated[int, Ge(1), Le(10_000)] = doc(
        "commands waiting to be checked; a command arriving when this many wait is dropped and counted",
        default=64,
    )

    def __post_init__(self) -> None:
        if self.enabled and self.platform_key is None:
            raise ValueError("commands are enabled but platform_key is missing: give the platform's public key file")
