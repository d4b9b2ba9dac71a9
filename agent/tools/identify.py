"""Which shipped profile a Modbus slave is: read what each profile maps, and rank those that fit.

The profiles carry no identity register (no vendor or model id a device reports about itself), so a device
cannot be named for certain. A profile *fits* a slave when every point it maps for the device and for its
first nozzle or channel is readable with the profile's function codes, and each decoded value is one the
meaning can take (a state the profile's table names, a temperature a forecourt can have, a height a tank can
have). Fitting profiles are ranked by how many registers of the device they explain, most first: a pulse
counter's sixteen input registers also read as a pressure sensor's two, but only its own profile explains
all sixteen.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.device import RegisterReader
from drivers.errors import DeviceValueFault
from drivers.modbus.errors import ModbusError
from drivers.profiles import DeviceKind, Profile

PLAUSIBLE: dict[str, tuple[int, int]] = {
    "temperature_cC": (-4_000, 10_000),
    "oil_height_um": (0, 10_000_000),
    "water_height_um": (0, 10_000_000),
}
"""What a meaning's value can physically be, in its unit (-40..100 degC, heights up to 10 m): limits for
telling one device from another, not thresholds of the station's checks (those are settings)."""


@dataclass(frozen=True, slots=True)
class Fit:
    """A profile that fits a slave: the registers it explains and how many of its nozzles or channels read."""

    profile: str
    kind: DeviceKind
    registers: int
    blocks: int
    capacity: int


@dataclass(frozen=True, slots=True)
class Misfit:
    profile: str
    reason: str


def _implausible(values: dict[int, dict[str, int | str]]) -> str | None:
    for index, meanings in values.items():
        for meaning, value in meanings.items():
            if isinstance(value, str) and value.startswith("unknown:"):
                return f"{meaning} {value.removeprefix('unknown:')} is not in the profile's state table"
            low, high = PLAUSIBLE.get(meaning, (None, None))
            if isinstance(value, int) and low is not None and high is not None and not low <= value <= high:
                where = f" (#{index})" if index else ""
                return f"{meaning}{where} = {value} is outside {low}..{high}"
    return None


def _problem(profile: Profile, master: RegisterReader, unit: int, indices: list[int]) -> str | None:
    """Why the points for these indices cannot be read, or decode to values they cannot have; None if fine."""
    image: dict[tuple[int, int], int] = {}
    for request in profile.plan_reads(indices):
        try:
            answer = master.read_registers(unit, request.function, request.address, request.count)
        except ModbusError as exc:
            return str(exc)
        image.update(((request.function, request.address + i), value) for i, value in enumerate(answer))
    try:
        values = profile.decode(profile.placements(indices), image)
    except ArithmeticError as exc:
        return f"a value does not decode as this profile's number ({exc!r})"
    except DeviceValueFault as exc:
        return f"a value cannot be true for this profile: {exc}"
    return _implausible(values)


def try_profile(profile: Profile, master: RegisterReader, unit: int) -> Fit | Misfit:
    """Read the device's points and the first block's; if they fit, count the blocks that read as well."""
    first = [1] if profile.capacity else []
    problem = _problem(profile, master, unit, first)
    if problem is not None:
        return Misfit(profile.name, problem)
    blocks = len(first)
    while blocks < profile.capacity and _problem(profile, master, unit, [blocks + 1]) is None:
        blocks += 1
    registers = sum(request.count for request in profile.plan_reads(range(1, blocks + 1)))
    return Fit(profile.name, profile.kind, registers, blocks, profile.capacity)


def rank(profiles: list[Profile], master: RegisterReader, unit: int) -> tuple[list[Fit], list[Misfit]]:
    """Fitting profiles, best first, and why each other one does not fit."""
    fits: list[Fit] = []
    misfits: list[Misfit] = []
    for profile in profiles:
        outcome = try_profile(profile, master, unit)
        if isinstance(outcome, Fit):
            fits.append(outcome)
        else:
            misfits.append(outcome)
    fits.sort(key=lambda fit: (-fit.registers, fit.profile))
    return fits, misfits
