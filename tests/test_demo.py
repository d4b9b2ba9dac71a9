"""The demo, as a user runs it: against an outside broker, its records pass a verifier that knows only the
contract and the station's public key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from outside_verifier import independent_verify
from support.mqtt import Wiretap
from support.waiting import wait_until

from simulators.broker import MosquittoBroker

pytestmark = pytest.mark.slow


def test_demo_against_an_outside_broker(tmp_path: Path, private_broker: MosquittoBroker) -> None:
    """`station-agent demo --broker` ends with ok, leaves station.pub and the configs, and what went over the
    broker is seq 1..N with transactions and heartbeats, every signature and link valid."""
    workdir = tmp_path / "demo"
    tap = Wiretap(private_broker, "DEMO-0001")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "demo",
            "--seconds",
            "15",
            "--workdir",
            str(workdir),
            "--broker",
            private_broker.address,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert result.returncode == 0 and summary["ok"], result.stdout + result.stderr
    try:
        wait_until(lambda: tap.has_seqs(summary["agent"]["head_seq"]), 10, "every record the demo made on the wiretap")
    finally:
        tap.close()
    assert any(line.startswith("[") and "uplink online" in line for line in lines), "a status line a second"
    assert f"station-agent run --config {workdir / 'agent.toml'}" in result.stdout
    assert f"station-sim run --config {workdir / 'simulators.toml'}" in result.stdout
    for name in ("station.pub", "agent.toml", "simulators.toml"):
        assert (workdir / name).is_file()
    records = tap.records()
    independent_verify("DEMO-0001", records, tap.signatures(), (workdir / "station.pub").read_bytes())
    types = {record["type"] for record in records}
    assert {"transaction", "heartbeat", "event"} <= types
    assert len(records) == summary["agent"]["head_seq"]
