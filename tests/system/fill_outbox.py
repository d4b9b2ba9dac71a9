"""Appends N heartbeat records to a stopped agent's outbox, sealed and signed after its head with its own key,
so that the system test can watch the agent drain a large backlog without waiting hours for one to build up.

Run in the box by the package's Python (its `agent` package, not the checkout's), as the service user:
    /opt/station-agent/bin/python fill_outbox.py CONFIG COUNT
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from agent.config_validation import load_config
from agent.contract.records import HeartbeatBody
from agent.ledger.chain import Signer, seal
from agent.ledger.keys import load_key_file
from agent.ledger.outbox import Outbox

BATCH = 2000


def main(config_path: str, count: int) -> None:
    config = load_config(Path(config_path)).config
    key = load_key_file(config.keys.device_key)
    outbox = Outbox(config.outbox.path, config.outbox.max_bytes)
    signer = Signer(key, workers=2)
    head = outbox.head()
    start_ms = max(head.ts_ms, int(time.time() * 1000) - count)
    made = 0
    while made < count:
        size = min(BATCH, count - made)
        intents = [
            HeartbeatBody(
                interval_s=2, uptime_s=0, uplink="offline", unacked=made + i, devices_online=0, devices_total=2
            ).intent(start_ms + made + i)
            for i in range(size)
        ]
        records, head = seal(intents, head, config.station.id, key, signer)
        outbox.append(records)
        made += size
    signer.close()
    outbox.close()
    print(head.seq)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
