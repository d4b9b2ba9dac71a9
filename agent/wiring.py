"""The setup the agent process receives, checked, and what it is wired into: a driver per device, a binding
per nozzle.

`agent.setup` builds the `Setup` in the short-lived first stage of `station-agent run` (where the validation
library is loaded); the agent process proper unpickles it and wires it here, without validating again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.config import AgentConfig, LoadedConfig
from agent.station.bindings import NozzleBinding, TankBinding, Tap
from agent.station.settings import NozzleSection
from drivers.device import DeviceDriver
from drivers.profiles import DeviceKind, Profile, ProfileError

if TYPE_CHECKING:
    # only a field's type: a setup that holds a city profile imports its module when it is unpickled
    from drivers.hj212.profile import CityProfile


class SetupError(Exception):
    """The devices cannot be wired as the config says; the message lists every problem."""


@dataclass(frozen=True, slots=True)
class Setup:
    loaded: LoadedConfig
    profiles: dict[str, Profile]
    version: str
    tanks: tuple[TankBinding, ...] = ()
    hj212_profile: CityProfile | None = None


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
