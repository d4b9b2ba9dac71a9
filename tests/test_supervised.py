"""The agent under a stand-in for systemd's notify and watchdog protocol, fed poison on every channel it reads
from the platform: it is started once, it keeps pinging, and the records keep reaching the platform."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from notify_socket import NotifySocket
from station_rig import STATION, StationRig
from support.waiting import wait_until

from simulators.broker import MosquittoBroker
from simulators.hostile import poison

pytestmark = pytest.mark.slow

WATCHDOG_S = 2.0
"""The stand-in's WatchdogSec: systemd would kill the agent when two pings are further apart than this."""
WATCHED_S = 10.0
RETAINED = {"ack": "huge-int", "cmd": "deep"}
PASSING = [("ack", "not-json"), ("ack", "float"), ("ack", "deep-object"), ("cmd", "unsigned-cmd"), ("cmd", "array")]


def _publish(broker: MosquittoBroker, channel: str, name: str, *, retain: bool = False) -> None:
    payload = poison.CATALOGUE[name].make(1 << 20)
    poison.publish(broker.host, broker.port, f"fsm/v1/{STATION}/{channel}", payload, retain=retain)


def test_poison_on_every_channel_does_not_restart_a_supervised_agent(rig: StationRig, tmp_path: Path) -> None:
    """Retained poison waiting on ack and cmd before the start, more poison while it runs: READY once, pings never
    further apart than WatchdogSec, no thread dies, one agent_start, and the platform keeps getting records."""
    for channel, name in RETAINED.items():
        _publish(rig.broker, channel, name, retain=True)
    manager = NotifySocket(tmp_path / "notify")
    environment = {**os.environ, "NOTIFY_SOCKET": str(manager.path), "WATCHDOG_USEC": str(int(WATCHDOG_S * 1e6))}
    with rig.log_path.open("ab") as log:
        agent = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", "--config", str(rig.config_path)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env=environment,
        )
    try:
        wait_until(lambda: manager.seen("READY", "1") == 1, 30, "READY=1")
        pings: list[float] = []
        end = time.monotonic() + WATCHED_S
        poisons = iter(PASSING)
        while time.monotonic() < end:
            for message in manager.drain():
                if message.get("WATCHDOG") == "1":
                    pings.append(time.monotonic())
            if (next_poison := next(poisons, None)) is not None:
                _publish(rig.broker, *next_poison)
            assert agent.poll() is None, f"the agent ended: {rig.agent_log()[-2000:]}"
            time.sleep(0.1)  # the pace of watching: the behaviour under test is the pings over WATCHED_S
        rig.wait_platform_caught_up(30)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(30) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(10)
        manager.close()
        for channel in RETAINED:
            _publish(rig.broker, channel, "empty", retain=True)
    gaps = [later - earlier for earlier, later in itertools.pairwise(pings)]
    assert len(pings) >= WATCHED_S / WATCHDOG_S, f"only {len(pings)} pings in {WATCHED_S} s"
    assert max(gaps) < WATCHDOG_S, f"pings {max(gaps):.2f} s apart: systemd would have killed the agent"
    assert "Exception in thread" not in rig.agent_log()
    starts = [r for r in rig.platform_records() if r["type"] == "event" and r["body"]["kind"] == "agent_start"]
    assert len(starts) == 1
    report = rig.platform_report()
    assert report.ok and not report.gaps and not report.forks
