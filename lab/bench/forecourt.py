"""The forecourts of the bus benchmarks: dispensers of two nozzles on RS-485 lines, as config text.

Each dispenser has a pump controller and a pulse counter of the shipped simulated models, as the demo's do:
the controller reports both nozzles (one read of 54 registers: the controller's data and both nozzle blocks),
the counter counts each nozzle's encoder (channel 2n - 1) and vapour meter (2n) (one read of 16 registers:
the counts and the firmware id). Dispenser k of a line has controller unit k and pulse counter unit 10 + k.
Customers come and go in real time (time scale 1) with the demo's pattern, so controllers and counters
change under the poller as they do on a forecourt.

`simulators_toml` is what `station-sim run` reads; `agent_toml` completes the demo's agent config (station,
keys, outbox, uplink and the rest, unchanged) with these lines, devices and dispensers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from drivers.device import DeviceDriver
from drivers.profile_validation import find_profile
from drivers.profiles import shipped_profile_dirs
from station_lab.demo import agent_config

CONTROLLER_PROFILE = "sim-pump-controller"
COUNTER_PROFILE = "sim-pulse-counter"
NOZZLES = (("92", 770), ("95", 820))
"""Grade and price in fen per litre of nozzle 1 and 2 of every dispenser (the forecourt has no tanks)."""
PATTERN = "{ idle_s = [10, 60], lift_s = [2, 6], volume_l = [5, 60], flow_l_per_min = [20, 50], hang_up_s = [2, 5] }"
STATUS_LINE = 'path = "status.json"'


@dataclass(frozen=True, slots=True)
class PolledUnit:
    """One Modbus device as the agent polls it: its name, unit and driver (which plans its reads)."""

    name: str
    unit: int
    driver: DeviceDriver


@dataclass(frozen=True, slots=True)
class Forecourt:
    """`lines` RS-485 lines, `dispensers_per_line` dispensers of two nozzles on each, all at `baudrate`."""

    lines: int
    dispensers_per_line: int
    baudrate: int = 9600
    emulate_line_timing: bool = True
    tcp_ports: tuple[int, ...] = ()
    """With one loopback port per line, the lines are Modbus TCP endpoints (a dispenser's Modbus TCP gateway)
    instead of RS-485 pty pairs."""

    def __post_init__(self) -> None:
        if self.tcp_ports and len(self.tcp_ports) != self.lines:
            raise ValueError(f"{self.lines} lines need {self.lines} TCP ports, got {len(self.tcp_ports)}")

    def line_names(self) -> list[str]:
        kind = "tcp" if self.tcp_ports else "rs485"
        return [f"{kind}-{number}" for number in range(1, self.lines + 1)]

    def agent_port(self, workdir: Path, line: str) -> Path:
        """The agent's end of `line`'s pty pair, once `station-sim run` has made it."""
        return workdir / "tty" / line

    def dispensers(self, line: str) -> list[tuple[str, int]]:
        """(dispenser id, its number on the line) for each dispenser on `line`, numbered across the station."""
        first = self.line_names().index(line) * self.dispensers_per_line
        return [(f"D{first + k:02d}", k) for k in range(1, self.dispensers_per_line + 1)]

    def polled_units(self, line: str) -> list[PolledUnit]:
        """The devices of `line` in the agent's order (controller, then its pulse counter), with their drivers."""
        directories = shipped_profile_dirs()
        controller = find_profile(CONTROLLER_PROFILE, directories)
        counter = find_profile(COUNTER_PROFILE, directories)
        units = []
        for dispenser, number in self.dispensers(line):
            units.append(PolledUnit(f"pc{dispenser[1:]}", number, DeviceDriver(controller, range(1, len(NOZZLES) + 1))))
            channels = range(1, 2 * len(NOZZLES) + 1)
            units.append(PolledUnit(f"pcm{dispenser[1:]}", 10 + number, DeviceDriver(counter, channels)))
        return units

    def simulators_toml(self, platform: str = "") -> str:
        """`station-sim run`'s config: the lines as pty pairs, the dispensers, then `platform` (may be empty)."""
        parts = ["[simulation]\nseed = 7\ntime_scale = 1.0\n"]
        for line, port in zip(self.line_names(), self.tcp_ports, strict=False):
            parts.append(f'[[lines]]\nkind = "tcp"\nname = "{line}"\nhost = "127.0.0.1"\nport = {port}\n')
        for line in self.line_names() if not self.tcp_ports else []:
            parts.append(
                f"""[[lines]]
kind = "rtu"
name = "{line}"
device_port = "tty/{line}.device"
agent_port = "tty/{line}"
baudrate = {self.baudrate}
emulate_line_timing = {str(self.emulate_line_timing).lower()}
"""
            )
        for line in self.line_names():
            for dispenser, number in self.dispensers(line):
                nozzles = ", ".join(f'{{ grade = "{grade}", price_fen_per_l = {price} }}' for grade, price in NOZZLES)
                parts.append(
                    f"""[[dispensers]]
id = "{dispenser}"
line = "{line}"
controller_unit = {number}
pulse_counter_unit = {10 + number}
pattern = {PATTERN}
nozzles = [{nozzles}]
"""
                )
        parts.append(platform)
        return "\n".join(parts)

    def agent_toml(self, workdir: Path, broker: str, status_path: Path, poll_interval_ms: int) -> str:
        """The demo's agent config with its status file at `status_path` and this forecourt's lines instead."""
        demo = agent_config(workdir, broker, 0, time_scale=1.0)
        head = demo[: demo.index("[[lines]]")]
        if head.count(STATUS_LINE) != 1:
            raise RuntimeError(f"the demo's agent config no longer has one '{STATUS_LINE}' line to move to tmpfs")
        parts = [head.replace(STATUS_LINE, f'path = "{status_path}"')]
        for number, line in enumerate(self.line_names()):
            if self.tcp_ports:
                parts.append(
                    f'[[lines]]\nkind = "tcp"\nname = "{line}"\nhost = "127.0.0.1"\nport = {self.tcp_ports[number]}\n'
                )
            else:
                parts.append(
                    f'[[lines]]\nkind = "rtu"\nname = "{line}"\nport = "tty/{line}"\nbaudrate = {self.baudrate}\n'
                )
            for unit in self.polled_units(line):
                parts.append(
                    f'[[lines.devices]]\nname = "{unit.name}"\nunit = {unit.unit}\n'
                    f'profile = "{unit.driver.profile.name}"\npoll_interval_ms = {poll_interval_ms}\n'
                )
        for line in self.line_names():
            for dispenser, _ in self.dispensers(line):
                parts.append(f'[[dispensers]]\nid = "{dispenser}"\n')
                parts.extend(_nozzle(dispenser, number) for number in range(1, len(NOZZLES) + 1))
        return "\n".join(parts)


def _nozzle(dispenser: str, number: int) -> str:
    grade, _ = NOZZLES[number - 1]
    controller, counter = f"pc{dispenser[1:]}", f"pcm{dispenser[1:]}"
    return f"""[[dispensers.nozzles]]
id = "{dispenser}-N{number}"
grade = "{grade}"
controller = "{controller}"
controller_nozzle = {number}
pulse = {{ device = "{counter}", channel = {2 * number - 1}, ml_per_pulse = 10 }}
vapour = {{ device = "{counter}", channel = {2 * number}, ml_per_pulse = 10 }}
"""
