"""Everything the agent process needs, checked before it starts: the config, the device profiles, the wiring.

`prepare` runs in the short-lived first stage of `station-agent run` (and in `check-config`, `provision`,
`selftest`), where the validation library is loaded; the result is a `Setup` (`agent.wiring`) of plain frozen
values that the agent process proper receives and uses without validating anything again, and without
importing this module (see docs/design.md, "Memory").
"""

from __future__ import annotations

import csv
from pathlib import Path

from agent.config import AgentConfig
from agent.config_validation import load_config
from agent.station.bindings import TankBinding
from agent.station.chart import TankChart
from agent.station.settings import TankSection
from agent.wiring import Setup, SetupError, drivers_for
from drivers.hj212.profile import CityProfile
from drivers.hj212.profile_validation import CityProfileError, load_city_profile
from drivers.profile_validation import find_profile
from drivers.profiles import Profile, ProfileError, shipped_profile_dirs


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
