"""The ledger's sections: `[keys]` (the device key that signs the chain) and `[outbox]` (where records wait)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from drivers.schema import Ge, Gt, Le, Matches, doc, settings


@settings
class KeysSection:
    device_key: Path = doc(
        "the device's private key (PEM), made by 'station-agent keygen'",
        default=Path("/var/lib/station-agent/keys/device.key"),
    )
    suite: Literal["ed25519", "sm2"] = doc(
        "the signing suite of the keys 'keygen', 'provision' and 'rotate-key' make: 'ed25519' (Ed25519, SHA-256) "
        "or 'sm2' (SM2 with SM3, GB/T 32918); an existing key signs on in its own suite until a rotation",
        default="ed25519",
    )
    sm2_id: Annotated[str, Matches("1-64 printable ASCII characters", r"[!-~]{1,64}")] = doc(
        "the SM2 distinguishing ID the key signs with; the platform must verify with the same one",
        default="1234567812345678",
    )


@settings
class OutboxSection:
    path: Path = doc("the SQLite outbox file", default=Path("/var/lib/station-agent/outbox.sqlite"))
    max_bytes: Annotated[int, Ge(1024**2)] = doc(
        "the most the outbox may occupy on disk, in bytes (>= 1 MiB); when reached, new records stop with an "
        "alarm until acknowledged records can be pruned",
        default=2 * 1024**3,
    )
    retention_days: Annotated[float, Ge(0)] = doc(
        "how long acknowledged records stay for re-sends, in days", default=30.0
    )
    retention_bytes: Annotated[int, Ge(0)] = doc(
        "the most bytes of acknowledged records kept for re-sends", default=512 * 1024**2
    )
    pending_limit: Annotated[int, Ge(100)] = doc(
        "how many records wait in memory while the outbox cannot be written (>= 100)", default=10_000
    )
    retry_s: Annotated[float, Gt(0), Le(300)] = doc(
        "how often a full or failing outbox is tried again, in seconds", default=5.0
    )
    reserve_bytes: Annotated[int, Ge(0)] = doc(
        "room set aside beside the outbox (a file '<path>.reserve', allocated once) for a file system that "
        "something else fills: given back so that acknowledged records can be pruned and recording goes on, and "
        "made again once twice as much is free; 0: none",
        default=8 * 1024**2,
    )
