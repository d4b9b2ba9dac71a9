"""Faults on demand: what can go wrong on a forecourt, and which faults are on right now.

An agent's alarms are only as good as the faults it was tested against, so each thing a market regulator, an
ecology bureau or a tax bureau looks for is a fault *kind* here: a target (a nozzle such as `D01-N1`, a tank
such as `T1`, or a device such as `D01/controller`), typed params, and one of two lifetimes. A sustained
fault holds until it is cleared, and clearing it restores the device (a pulse-injection board is removed,
the original K-factor comes back); a one-shot fault happens once and leaves its mark (a reboot, a totalizer
tamper). A tanker's delivery is no fault, but it is an event on demand with the same shape (one-shot, a
tank, params), so it is one here too.

This module is the catalogue, the validation that turns a request into a `Fault` (or an error naming what
is allowed), and the bookkeeping of one model's faults (`FaultBoard`). What a fault does to the registers is
the models' business (`forecourt`, `pressure`, `tanks`).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from simulators.modbus_slave import SlaveFaults

Number = int | float


class TargetKind(StrEnum):
    """What a fault can be aimed at. Nozzles are named `<dispenser>-N<n>`, devices `<owner>/<kind>`."""

    NOZZLE = "nozzle"
    CONTROLLER = "controller"
    PULSE_COUNTER = "pulse_counter"
    PRESSURE_SENSOR = "pressure_sensor"
    TANK = "tank"
    TANK_GAUGE = "tank_gauge"
    LEVEL_PROBE = "level_probe"


#: Devices with a firmware id register.
FIRMWARE_DEVICES = frozenset({TargetKind.CONTROLLER, TargetKind.PULSE_COUNTER, TargetKind.PRESSURE_SENSOR})
DEVICES = FIRMWARE_DEVICES | {TargetKind.TANK_GAUGE, TargetKind.LEVEL_PROBE}
MODBUS_DEVICES = FIRMWARE_DEVICES | {TargetKind.LEVEL_PROBE}


def nozzle_target(dispenser: str, number: int) -> str:
    return f"{dispenser}-N{number}"


def device_target(owner: str, kind: TargetKind) -> str:
    return f"{owner}/{kind}"


class FaultError(ValueError):
    """A fault request that cannot be carried out; the message names what is allowed instead."""


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a fault kind: its type, bounds (inclusive) and default (None: it must be given)."""

    name: str
    type: type[int] | type[float]
    low: Number
    high: Number
    default: Number | None
    doc: str

    def describe(self) -> str:
        default = "required" if self.default is None else f"default {self.default}"
        return f"{self.name} ({self.type.__name__} {self.low}..{self.high}, {default}): {self.doc}"


@dataclass(frozen=True, slots=True)
class FaultKind:
    name: str
    targets: frozenset[TargetKind]
    one_shot: bool
    doc: str
    params: tuple[Param, ...] = ()

    def to_json(self) -> dict[str, object]:
        """The kind as `station-sim fault kinds` prints it, one JSON line each."""
        return {
            "kind": self.name,
            "lifetime": "one-shot" if self.one_shot else "sustained",
            "targets": sorted(self.targets),
            "doc": self.doc,
            "params": [
                {
                    "name": param.name,
                    "type": param.type.__name__,
                    "low": param.low,
                    "high": param.high,
                    "default": param.default,
                    "doc": param.doc,
                }
                for param in self.params
            ],
        }

    def describe(self) -> str:
        lifetime = "one-shot" if self.one_shot else "sustained"
        targets = ", ".join(sorted(self.targets))
        lines = [f"{self.name} ({lifetime}; targets: {targets}): {self.doc}"]
        lines.extend(f"    {param.describe()}" for param in self.params)
        return "\n".join(lines)


_NOZZLE = frozenset({TargetKind.NOZZLE})
_CONTROLLER = frozenset({TargetKind.CONTROLLER})
_TANK = frozenset({TargetKind.TANK})

#: Every fault the simulators can put on, by name.
CATALOGUE: dict[str, FaultKind] = {
    kind.name: kind
    for kind in (
        FaultKind(
            "pulse_injection",
            _NOZZLE,
            False,
            "the controller reports this much more fuel than the encoder counted (an injection board)",
            (Param("percent", float, -50.0, 100.0, 1.0, "extra volume the controller reports, in percent"),),
        ),
        FaultKind("encoder_failure", _NOZZLE, False, "the nozzle's liquid pulse channel stops counting"),
        FaultKind(
            "ghost_pulses",
            _NOZZLE,
            False,
            "the liquid channel counts while the nozzle hangs up: fuel leaving without a sale",
            (Param("l_per_min", float, 0.01, 100.0, 1.0, "flow the encoder sees at rest"),),
        ),
        FaultKind("vapour_failure", _NOZZLE, False, "no vapour flows back: the vapour channel stops counting"),
        FaultKind(
            "al_ratio",
            _NOZZLE,
            False,
            "the nozzle recovers vapour at this gas/liquid ratio instead of its configured one",
            (Param("value", float, 0.0, 5.0, None, "the A/L ratio, e.g. 0.8"),),
        ),
        FaultKind(
            "totalizer_tamper",
            _NOZZLE,
            True,
            "the nozzle's volume totalizer jumps without a sale",
            (Param("delta_ml", int, -(10**9), 10**9, None, "the jump in mL (negative steps back)"),),
        ),
        FaultKind(
            "skip_transactions",
            _NOZZLE,
            True,
            "the nozzle's next sale number jumps: sales the agent never saw",
            (Param("count", int, 1, 10**6, 1, "how many numbers are skipped"),),
        ),
        FaultKind(
            "controller_reboot",
            _CONTROLLER,
            True,
            "the controller restarts: its transaction numbers and totalizers start again from 0",
        ),
        FaultKind(
            "calibration_change",
            _CONTROLLER,
            False,
            "the controller's K-factor register shows another value (the volumes are unchanged)",
            (Param("k_factor", int, 1, 2**32 - 1, None, "the K-factor, pulses per 100 L"),),
        ),
        FaultKind(
            "firmware_change",
            FIRMWARE_DEVICES,
            False,
            "the device's firmware id register shows another value",
            (Param("firmware_id", int, 0, 0xFFFF, None, "the firmware id"),),
        ),
        FaultKind(
            "tank_pressure",
            frozenset({TargetKind.PRESSURE_SENSOR}),
            False,
            "the tank's vapour-space pressure holds at this value instead of drifting",
            (Param("pa", int, -30_000, 30_000, None, "gauge pressure in Pa"),),
        ),
        FaultKind(
            "leak",
            _TANK,
            False,
            "the tank loses fuel continuously, at the fuel's temperature, with or without sales",
            (Param("l_per_h", float, 0.001, 1000.0, None, "litres an hour, e.g. 0.757 (0.2 gal/h)"),),
        ),
        FaultKind(
            "unrecorded_dispensing",
            _TANK,
            False,
            "fuel leaves the tank through a meter bypass while its nozzles sell: no sale is booked for it",
            (
                Param("fraction", float, 0.0, 1.0, 0.01, "bypass volume per litre the tank's nozzles dispense"),
                Param("l_per_h", float, 0.0, 1000.0, 0.0, "bypass flow while each of the tank's nozzles fuels"),
            ),
        ),
        FaultKind(
            "delivery",
            _TANK,
            True,
            "a tanker drops fuel into the tank (an event, not a fault); the gauge reports it once it settles",
            (
                Param("volume_l", float, 1.0, 100_000.0, None, "litres as the tanker meters them, at its temperature"),
                Param("duration_s", float, 1.0, 86_400.0, 1800.0, "simulated seconds the drop takes"),
                Param("temperature_c", float, -40.0, 60.0, 20.0, "the delivered fuel's temperature"),
            ),
        ),
        FaultKind(
            "stuck_register",
            MODBUS_DEVICES,
            False,
            "one register reads this value whatever the device holds, as a transmitter in fault does: 32704 "
            "(0x7FC0) in an f32's high word reads NaN, 32640 (0x7F80) infinity, 65535 in a u32's high word a "
            "huge number",
            (
                Param("address", int, 0, 0xFFFF, None, "the register's address"),
                Param("value", int, 0, 0xFFFF, 0x7FC0, "what it reads"),
            ),
        ),
        FaultKind("dead", DEVICES, False, "the device never answers"),
        FaultKind(
            "crc_noise",
            DEVICES,
            False,
            "answers are damaged on the way: a bad CRC on RTU and a bad checksum from a tank gauge, garbled bytes "
            "on Modbus TCP",
            (Param("rate", float, 0.0, 1.0, 0.5, "share of answers damaged"),),
        ),
        FaultKind(
            "slow",
            DEVICES,
            False,
            "the device answers late",
            (Param("delay_s", float, 0.0, 60.0, 0.5, "delay of every answer, in real seconds"),),
        ),
    )
}


@dataclass(frozen=True, slots=True)
class Fault:
    """A validated fault: a kind from the catalogue, a target that exists, and every param with its value."""

    kind: str
    target: str
    params: Mapping[str, Number] = field(default_factory=dict)

    @property
    def one_shot(self) -> bool:
        return CATALOGUE[self.kind].one_shot

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "target": self.target, "params": dict(self.params)}


@dataclass(frozen=True, slots=True)
class ScheduledFault:
    """A fault that starts at `at_s` simulated seconds and, if sustained, may stop at `until_s`."""

    fault: Fault
    at_s: float
    until_s: float | None = None

    def __post_init__(self) -> None:
        if self.until_s is not None and self.fault.one_shot:
            raise FaultError(f"{self.fault.kind} is one-shot: it happens at at_s and has no until_s")
        if self.until_s is not None and self.until_s <= self.at_s:
            raise FaultError(f"until_s {self.until_s} must be after at_s {self.at_s}")


@dataclass(frozen=True, slots=True)
class ActiveFault:
    """A sustained fault that is on: since when, and until when if it was scheduled to stop."""

    fault: Fault
    since_s: float
    until_s: float | None = None

    def to_json(self) -> dict[str, object]:
        return self.fault.to_json() | {"since_s": round(self.since_s, 3), "until_s": self.until_s}


def fault_kind(kind: str, target: str, targets: Mapping[str, TargetKind]) -> FaultKind:
    """The catalogue entry of `kind` if it can aim at `target`; FaultError naming the kinds or targets allowed."""
    spec = CATALOGUE.get(kind)
    if spec is None:
        raise FaultError(f"unknown fault kind {kind!r}; kinds: {', '.join(sorted(CATALOGUE))}")
    target_kind = targets.get(target)
    if target_kind not in spec.targets:
        allowed = sorted(name for name, what in targets.items() if what in spec.targets)
        found = "no such target" if target_kind is None else f"a {target_kind}"
        raise FaultError(
            f"{kind} cannot target {target!r} ({found}); it targets a {' or '.join(sorted(spec.targets))}: "
            + (", ".join(allowed) or "none in this station")
        )
    return spec


def make_fault(kind: str, target: str, params: Mapping[str, object], targets: Mapping[str, TargetKind]) -> Fault:
    """Check a fault request against the catalogue and the station's targets; fill in the defaults.

    Param values may be numbers or strings (from a command line). Raises FaultError naming what is allowed.
    """
    spec = fault_kind(kind, target, targets)
    known = {param.name: param for param in spec.params}
    unknown = sorted(set(params) - set(known))
    if unknown:
        offered = "; ".join(param.describe() for param in spec.params) or "none"
        raise FaultError(f"{kind} has no param {', '.join(unknown)}; its params: {offered}")
    values: dict[str, Number] = {}
    for param in spec.params:
        raw = params.get(param.name, param.default)
        if raw is None:
            raise FaultError(f"{kind} needs {param.describe()}")
        values[param.name] = _convert(kind, param, raw)
    return Fault(kind, target, values)


def _convert(kind: str, param: Param, raw: object) -> Number:
    try:
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise TypeError
        value: Number = param.type(raw)
        if param.type is int and isinstance(raw, float) and raw != value:
            raise TypeError
    except (TypeError, ValueError):
        raise FaultError(f"{kind}: {param.name}={raw!r} is not {param.type.__name__}; {param.describe()}") from None
    if not param.low <= value <= param.high:
        raise FaultError(f"{kind}: {param.name}={value} is outside {param.low}..{param.high}; {param.describe()}")
    return value


@dataclass(frozen=True, slots=True)
class Change:
    """A fault starting (or, if one-shot, happening) or stopping at a simulated moment."""

    at_s: float
    fault: Fault
    starting: bool
    until_s: float | None = None


class FaultBoard:
    """The faults of one device model: the sustained ones on now and the scheduled changes still to come.

    Not thread-safe on its own: the model that owns it guards it with its lock. A scheduled stop clears the
    fault on its target however it was set; a stop for a fault that is no longer on is ignored.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[float, int, Change]] = []
        self._order = itertools.count()
        self._active: dict[tuple[str, str], ActiveFault] = {}

    def schedule(self, item: ScheduledFault) -> None:
        self._push(Change(item.at_s, item.fault, True, item.until_s))
        if item.until_s is not None:
            self._push(Change(item.until_s, item.fault, False))

    def pop_due(self, until_s: float) -> Change | None:
        """The earliest scheduled change at or before `until_s`, removed from the schedule; None if none."""
        if self._pending and self._pending[0][0] <= until_s:
            return heapq.heappop(self._pending)[2]
        return None

    def start(self, fault: Fault, since_s: float, until_s: float | None = None) -> None:
        """Put a sustained fault on, replacing the same kind on the same target."""
        self._active[(fault.kind, fault.target)] = ActiveFault(fault, since_s, until_s)

    def stop(self, kind: str, target: str) -> ActiveFault:
        """Take a sustained fault off; FaultError naming the faults that are on if it is not one of them."""
        active = self._active.pop((kind, target), None)
        if active is None:
            listed = ", ".join(f"{k} {t}" for k, t in sorted(self._active)) or "none"
            raise FaultError(f"no {kind} fault is on {target}; on here: {listed}")
        return active

    def discard(self, kind: str, target: str) -> None:
        self._active.pop((kind, target), None)

    def find(self, kind: str, target: str) -> Fault | None:
        active = self._active.get((kind, target))
        return None if active is None else active.fault

    def value(self, kind: str, target: str, param: str) -> Number | None:
        """A param of the sustained fault of this kind on this target, or None when it is off."""
        fault = self.find(kind, target)
        return None if fault is None else fault.params[param]

    def active(self) -> list[ActiveFault]:
        return sorted(self._active.values(), key=lambda a: (a.since_s, a.fault.target, a.fault.kind))

    def _push(self, change: Change) -> None:
        heapq.heappush(self._pending, (change.at_s, next(self._order), change))


def set_link_faults(board: FaultBoard, target: str, link: SlaveFaults, *, has_crc: bool) -> None:
    """Make a device's `SlaveFaults` (what its slave server reads at every request) follow its faults."""
    link.dead = board.find("dead", target) is not None
    link.delay_s = float(board.value("slow", target, "delay_s") or 0.0)
    noise = float(board.value("crc_noise", target, "rate") or 0.0)
    link.corrupt_crc_rate, link.garble_rate = (noise, 0.0) if has_crc else (0.0, noise)
    stuck = board.find("stuck_register", target)
    link.stuck = {} if stuck is None else {int(stuck.params["address"]): int(stuck.params["value"])}
