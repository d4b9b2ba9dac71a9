"""A whole station for end-to-end tests: simulated devices and platform in this process, the agent as a real
child process (so it can be killed -9), all on a real Mosquitto, real ptys and real SQLite files."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import tomli_w
from support.waiting import wait_until

from agent.ledger.keys import DeviceKey, generate_key_file
from simulators.broker import MosquittoBroker, free_loopback_port
from simulators.config import SimulatorsConfig
from simulators.platform.keys import StationKey, keyring
from simulators.platform.receiver import PlatformReceiver, ReceiverConfig
from simulators.platform.report import StationReport
from simulators.platform.store import Store
from simulators.station import SimulatedStation

STATION = "RIG-0001"
FAST_PATTERN = {
    "idle_s": [5, 20],
    "lift_s": [1, 3],
    "volume_l": [5, 40],
    "flow_l_per_min": [20, 50],
    "hang_up_s": [1, 3],
}


def nozzle(nozzle_id: str, grade: str, controller: str, *, number: int, counter: str) -> dict[str, Any]:
    """A nozzle wired as the simulated forecourt wires it: encoder on channel 2n-1, vapour meter on 2n (the
    simulated forecourt here has no tanks, so the nozzles name none)."""
    return {
        "id": nozzle_id,
        "grade": grade,
        "controller": controller,
        "controller_nozzle": number,
        "pulse": {"device": counter, "channel": 2 * number - 1, "ml_per_pulse": 10},
        "vapour": {"device": counter, "channel": 2 * number, "ml_per_pulse": 10},
    }


class StationRig:
    """Devices on a pty line and on Modbus TCP, the reference platform, and the agent as a process."""

    def __init__(
        self,
        workdir: Path,
        broker: MosquittoBroker,
        *,
        time_scale: float = 50.0,
        pattern: dict[str, list[float]] | None = None,
        agent: dict[str, Any] | None = None,
    ) -> None:
        self.workdir = workdir
        self.broker = broker
        self.key: DeviceKey = generate_key_file(workdir / "keys" / "device.key")
        (workdir / "station.pub").write_text(self.key.public_pem())
        self.tcp_port = free_loopback_port()
        self.config_path = workdir / "agent.toml"
        self.status_path = workdir / "status.json"
        self.log_path = workdir / "agent.log"
        self.agent_settings = self._agent_settings(agent or {})
        self.write_agent_config()
        self.simulated = SimulatedStation(
            SimulatorsConfig.model_validate(
                {
                    "simulation": {"seed": 3, "time_scale": time_scale},
                    "lines": [
                        {
                            "kind": "rtu",
                            "name": "rs485-1",
                            "device_port": str(workdir / "tty" / "rs485-1.device"),
                            "agent_port": str(workdir / "tty" / "rs485-1"),
                        },
                        {"kind": "tcp", "name": "tcp-1", "port": self.tcp_port},
                    ],
                    "dispensers": [
                        {
                            "id": "D01",
                            "line": "rs485-1",
                            "controller_unit": 1,
                            "pulse_counter_unit": 11,
                            "pattern": pattern or FAST_PATTERN,
                            "nozzles": [
                                {"grade": "92", "price_fen_per_l": 770},
                                {"grade": "95", "price_fen_per_l": 820},
                            ],
                        },
                        {
                            "id": "D02",
                            "line": "tcp-1",
                            "controller_unit": 1,
                            "pulse_counter_unit": 11,
                            "pattern": pattern or FAST_PATTERN,
                            "nozzles": [
                                {"grade": "92", "price_fen_per_l": 770},
                                {"grade": "0#", "price_fen_per_l": 735},
                            ],
                        },
                    ],
                }
            )
        )
        self.platform = self.new_platform()
        self.process: subprocess.Popen[bytes] | None = None

    def _agent_settings(self, overrides: dict[str, Any]) -> dict[str, Any]:
        settings: dict[str, Any] = {
            "station": {"id": STATION},
            "keys": {"device_key": "keys/device.key"},
            "outbox": {"path": "outbox.sqlite", "retry_s": 0.5},
            "uplink": {
                "broker": self.broker.address,
                "ack_mode": "platform",
                "ack_timeout_s": 3.0,
                "reconnect_min_s": 0.2,
                "reconnect_max_s": 1.0,
                "max_records_per_message": 50,
            },
            "heartbeat": {"interval_s": 1},
            "logging": {"format": "json", "level": "info"},
            "status": {"path": "status.json", "interval_s": 0.2},
            "lines": [
                {
                    "kind": "rtu",
                    "name": "rs485-1",
                    "port": "tty/rs485-1",
                    "timeout_ms": 200,
                    "devices": [
                        {"name": "pc1", "unit": 1, "profile": "sim-pump-controller", "poll_interval_ms": 100},
                        {"name": "pcm1", "unit": 11, "profile": "sim-pulse-counter", "poll_interval_ms": 100},
                    ],
                },
                {
                    "kind": "tcp",
                    "name": "tcp-1",
                    "host": "127.0.0.1",
                    "port": self.tcp_port,
                    "timeout_ms": 500,
                    "devices": [
                        {"name": "pc2", "unit": 1, "profile": "sim-pump-controller", "poll_interval_ms": 100},
                        {"name": "pcm2", "unit": 11, "profile": "sim-pulse-counter", "poll_interval_ms": 100},
                    ],
                },
            ],
            "dispensers": [
                {
                    "id": "D01",
                    "nozzles": [
                        nozzle("D01-N1", "92", "pc1", number=1, counter="pcm1"),
                        nozzle("D01-N2", "95", "pc1", number=2, counter="pcm1"),
                    ],
                },
                {
                    "id": "D02",
                    "nozzles": [
                        nozzle("D02-N1", "92", "pc2", number=1, counter="pcm2"),
                        nozzle("D02-N2", "0#", "pc2", number=2, counter="pcm2"),
                    ],
                },
            ],
        }
        for section, values in overrides.items():
            if isinstance(values, dict):
                settings.setdefault(section, {}).update(values)
            else:
                settings[section] = values
        return settings

    def write_agent_config(self) -> None:
        self.config_path.write_bytes(tomli_w.dumps(self.agent_settings).encode())

    def new_platform(self) -> PlatformReceiver:
        keys = keyring([StationKey.from_argument(f"{STATION}={self.workdir / 'station.pub'}")])
        return PlatformReceiver(
            ReceiverConfig(
                host=self.broker.host, port=self.broker.port, db_path=self.workdir / "platform.sqlite", keys=keys
            )
        )

    # -- the agent process -----------------------------------------------------------------------------------

    def start_agent(self) -> None:
        assert self.process is None or self.process.poll() is not None, "agent already running"
        self.status_path.unlink(missing_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agent.cli", "run", "--config", str(self.config_path)],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )

    def kill_agent(self) -> None:
        """SIGKILL: no cleanup of any kind, as a power cut would leave it."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop_agent(self, timeout_s: float = 20.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def status(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return {}
        return data

    def head_seq(self) -> int:
        value: int = self.status().get("recorder", {}).get("head_seq", 0)
        return value

    # -- the platform's view ---------------------------------------------------------------------------------

    def platform_report(self) -> StationReport:
        return self.platform.report().station(STATION)

    def platform_records(self) -> list[dict[str, Any]]:
        with Store(self.workdir / "platform.sqlite", read_only=True) as store:
            return [json.loads(canonical) for canonical in store.accepted(STATION)]

    def wait_platform_caught_up(self, timeout_s: float = 30.0) -> None:
        """Until the platform holds, contiguously, everything the agent has made."""
        wait_until(
            lambda: (head := self.head_seq()) > 0 and self.platform_report().upto >= head,
            timeout_s,
            "the platform to hold every record the agent made",
        )

    def __enter__(self) -> StationRig:
        """The simulated devices and the reference platform running; starting the agent is the test's."""
        self.simulated.start()
        self.platform.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.platform.stop()
        self.simulated.stop()

    def agent_log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
