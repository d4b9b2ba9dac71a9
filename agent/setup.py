"""Everything the agent process needs, checked before it starts: the config, the device profiles, the wiring.

`prepare` runs in the short-lived first stage of `station-agent run` (and in `check-config`), where the
validation library is loaded; the result is a `Setup` of plain frozen values that the agent process proper
receives and uses without validating anything again (see docs/design.md, "Memory").
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from agent.config import AgentConfig, LoadedConfig, NozzleSection, TankSection, load_config
from agent.station.chart import TankChart
from agent.station.nozzle import NozzleBinding, Tap
from agent.station.tank import TankBinding
from drivers.device import DeviceDriver
from drivers.hj212.profile import CityProfile
from drivers.profiles import DeviceKind, Profile, ProfileError, find_profile, shipped_profile_dirs


class SetupError(Exception):
    """The devices cannot be wired as the config says; the message lists every problem."""


@dataclass(frozen=True, slots=True)
class Setup:
    loaded: LoadedConfig
    profiles: dict[str, Profile]
    version: str
    tanks: tuple[TankBinding, ...] = ()
    hj212_profile: CityProfile | None = None


def agent_version() -> str:
    """The installed package's version; looked up here because importlib.metadata costs a megabyte."""
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("station-agent")
    except PackageNotFoundError:
        return "0+unknown"


def prepare(config_path: Path) -> Setup:
    """Validate the config and resolve every device profile; ConfigError or SetupError say what to fix."""
    loaded = load_config(config_path)
    config = loaded.config
    directories = [*config.profile_dirs, *shipped_profile_dirs()]
    profiles: dict[str, Profile] = {}
    problems: list[str] = []
    for name in sorted({device.profile for _, device in config.devices()}):
        try:
            profiles[name] = find_profile(name, directories)
        except ProfileError as exc:
            problems.append(str(exc))
    tanks = tuple(_tank(tank, problems) for tank in config.tanks)
    hj212_profile = _city_profile(config, problems)
    if problems:
        raise SetupError("\n".join(problems))
    setup = Setup(loaded, profiles, agent_version(), tanks, hj212_profile)
    drivers_for(setup)
    return setup


def _city_profile(config: AgentConfig, problems: list[str]) -> CityProfile | None:
    """The HJ 212 city profile (its codes), if the second uplink is on."""
    if config.hj212 is None or not config.hj212.enabled:
        return None
    from drivers.hj212.profile_validation import CityProfileError, load_city_profile  # noqa: PLC0415 - pydantic

    try:
        return load_city_profile(config.hj212.profile)
    except CityProfileError as exc:
        problems.append(f"hj212.profile: {exc}")
        return None


def _tank(tank: TankSection, problems: list[str]) -> TankBinding:
    fuel = tank.fuel()
    chart = None
    rows = tank.chart if tank.chart_file is None else _chart_file(tank, tank.chart_file, problems)
    if rows:
        chart = TankChart([(round(height * 1000), round(volume * 1000)) for height, volume in rows])
    if tank.gauge is not None:
        return TankBinding(tank.id, fuel, tank.capacity_l * 1000, tank.gauge.device, tank.gauge.tank, chart)
    assert tank.probe is not None, "a tank names a gauge or a probe (checked in the config)"
    return TankBinding(tank.id, fuel, tank.capacity_l * 1000, tank.probe, None, chart)


def _chart_file(tank: TankSection, path: Path, problems: list[str]) -> tuple[tuple[float, float], ...]:
    """A strapping table as the calibration certificate's CSV: `height_mm,volume_l` rows, a header allowed."""
    where = f"tank {tank.id}: chart_file {path}"
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            lines = list(csv.reader(handle))
    except OSError as exc:
        problems.append(f"{where}: cannot be read ({exc.strerror}); give the strapping table as height_mm,volume_l")
        return ()
    rows: list[tuple[float, float]] = []
    for number, line in enumerate(lines, start=1):
        cells = [cell.strip() for cell in line]
        if not any(cells) or cells[0].startswith("#"):
            continue
        try:
            height, volume = (float(cell) for cell in cells)
        except ValueError:
            if number == 1:
                continue  # the header
            problems.append(f"{where}, line {number}: {line!r} is not two numbers height_mm,volume_l")
            return ()
        if rows and (height <= rows[-1][0] or volume < rows[-1][1]):
            problems.append(f"{where}, line {number}: heights must rise and volumes must not fall")
            return ()
        rows.append((height, volume))
    if len(rows) < 2:
        problems.append(f"{where}: needs at least two rows height_mm,volume_l")
    return tuple(rows)


def drivers_for(setup: Setup) -> dict[str, DeviceDriver]:
    """A driver per device, reading the nozzles or channels wired to it; SetupError lists every misfit."""
    config = setup.loaded.config
    kinds = {device.name: setup.profiles[device.profile].kind for _, device in config.devices()}
    problems = _wiring_problems(config, kinds)
    drivers: dict[str, DeviceDriver] = {}
    for line, device in config.devices():
        profile = setup.profiles[device.profile]
        try:
            drivers[device.name] = DeviceDriver(profile, _indices(config, device.name, profile))
        except ProfileError as exc:
            problems.append(f"line {line.name}, device {device.name}: {exc}")
    if problems:
        raise SetupError("\n".join(problems))
    return drivers


def _indices(config: AgentConfig, device: str, profile: Profile) -> list[int]:
    if profile.kind == DeviceKind.PUMP_CONTROLLER:
        return [n.controller_nozzle for _, n in config.nozzles() if n.controller == device]
    if profile.kind == DeviceKind.PULSE_COUNTER:
        return [tap.channel for _, n in config.nozzles() for tap in (n.pulse, n.vapour) if tap and tap.device == device]
    return []


def _wiring_problems(config: AgentConfig, kinds: dict[str, DeviceKind]) -> list[str]:
    problems = []

    def expect(where: str, device: str, kind: DeviceKind) -> None:
        if device in kinds and kinds[device] != kind:
            problems.append(f"{where}: device {device!r} is a {kinds[device]} by its profile, not a {kind}")

    for index, tank in enumerate(config.tanks):
        if tank.probe is not None:
            expect(f"tank {tank.id} (#{index}) probe", tank.probe, DeviceKind.LEVEL_PROBE)
    for index, (dispenser, nozzle) in enumerate(config.nozzles()):
        where = f"dispenser {dispenser.id} nozzle {nozzle.id} (#{index})"
        expect(f"{where} controller", nozzle.controller, DeviceKind.PUMP_CONTROLLER)
        for name, tap in (("pulse", nozzle.pulse), ("vapour", nozzle.vapour)):
            if tap is not None:
                expect(f"{where} {name}", tap.device, DeviceKind.PULSE_COUNTER)
    return problems


def bindings_for(config: AgentConfig) -> list[NozzleBinding]:
    return [_binding(dispenser.id, nozzle) for dispenser, nozzle in config.nozzles()]


def _binding(dispenser: str, nozzle: NozzleSection) -> NozzleBinding:
    pulse = None if nozzle.pulse is None else Tap(nozzle.pulse.device, nozzle.pulse.channel, nozzle.pulse.ml_per_pulse)
    vapour = (
        None
        if nozzle.vapour is None
        else Tap(nozzle.vapour.device, nozzle.vapour.channel, nozzle.vapour.ml_per_pulse, nozzle.vapour.meter_factor)
    )
    return NozzleBinding(
        nozzle.id, dispenser, nozzle.grade, nozzle.tank, nozzle.controller, nozzle.controller_nozzle, pulse, vapour
    )
