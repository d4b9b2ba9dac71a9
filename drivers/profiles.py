"""Device profiles: a device model's Modbus register map, as data an installer can write.

A profile says, for each value the agent understands (its *meaning*, e.g. `txn_volume_ml`), where it lives
(function code, address, per-nozzle offset), how it is encoded (type, word and byte order) and how to scale it
into the meaning's unit. The agent then plans as few requests as possible: the points a poll needs are merged
into contiguous reads of at most 125 registers, bridging small gaps, because on a 9600-baud line every request
costs a turnaround and the frame overhead. Decoding and encoding are pure, so the same profile drives the agent
(decode) and the simulators (encode), and both are tested against hand-made register images.

Decoding judges every value before it is believed: NaN and infinity (how many transmitters say "sensor fault"),
and anything outside the point's plausible range (`min`/`max` in the profile, else a default by the unit in
the meaning's name, `PLAUSIBLE_BY_UNIT`) are a `DeviceValueFault` naming the point, its register and the raw
words. No value beyond 2^53 ever passes, so every reading can be sealed into a record (RFC 8785 refuses more).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from drivers.errors import DeviceValueFault
from drivers.readings import ValueFault
from drivers.schema import Ge, Gt, Le, Matches, MinLen, doc, settings
from drivers.shipped import shipped_dirs

MAX_READ_REGISTERS = 125
JSON_SAFE_INT = 2**53 - 1
"""The largest integer every JSON reader keeps exactly (RFC 8785, I-JSON): no decoded value may exceed it."""
_WIDTH = {"u16": 1, "i16": 1, "u32": 2, "i32": 2, "u64": 4, "f32": 2}


class DeviceKind(StrEnum):
    PUMP_CONTROLLER = "pump_controller"
    PULSE_COUNTER = "pulse_counter"
    PRESSURE_SENSOR = "pressure_sensor"
    LEVEL_PROBE = "level_probe"


class Scope(StrEnum):
    """Where a point lives: once per device, or repeated per nozzle or per counter channel in a block."""

    DEVICE = "device"
    NOZZLE = "nozzle"
    CHANNEL = "channel"


#: The repeated scope of each kind: what `placements(indices)` counts.
REPEATED: dict[DeviceKind, Scope | None] = {
    DeviceKind.PUMP_CONTROLLER: Scope.NOZZLE,
    DeviceKind.PULSE_COUNTER: Scope.CHANNEL,
    DeviceKind.PRESSURE_SENSOR: None,
    DeviceKind.LEVEL_PROBE: None,
}


#: The meanings a profile may map, per device kind and scope. A meaning's unit is in its name.
MEANINGS: dict[DeviceKind, dict[Scope, frozenset[str]]] = {
    DeviceKind.PUMP_CONTROLLER: {
        Scope.DEVICE: frozenset({"k_factor", "firmware_id"}),
        Scope.NOZZLE: frozenset(
            {
                "state",
                "current_volume_ml",
                "current_amount_fen",
                "price_fen_per_l",
                "txn_no",
                "txn_volume_ml",
                "txn_amount_fen",
                "txn_price_fen_per_l",
                "totalizer_volume_ml",
                "totalizer_amount_fen",
            }
        ),
    },
    DeviceKind.PULSE_COUNTER: {
        Scope.DEVICE: frozenset({"firmware_id"}),
        Scope.CHANNEL: frozenset({"count"}),
    },
    DeviceKind.PRESSURE_SENSOR: {
        Scope.DEVICE: frozenset({"pressure_pa", "temperature_cC", "firmware_id"}),
    },
    DeviceKind.LEVEL_PROBE: {
        Scope.DEVICE: frozenset({"oil_height_um", "water_height_um", "temperature_cC"}),
    },
}

#: The nozzle states a profile's `states` table may name.
NOZZLE_STATES = frozenset({"idle", "authorised", "lifted", "fuelling", "finished", "fault"})

#: Meanings every profile of a kind must map, or the agent cannot do its job with the device.
REQUIRED: dict[DeviceKind, frozenset[str]] = {
    DeviceKind.PUMP_CONTROLLER: frozenset(
        {"state", "txn_no", "txn_volume_ml", "txn_amount_fen", "txn_price_fen_per_l", "totalizer_volume_ml"}
    ),
    DeviceKind.PULSE_COUNTER: frozenset({"count"}),
    DeviceKind.PRESSURE_SENSOR: frozenset({"pressure_pa"}),
    DeviceKind.LEVEL_PROBE: frozenset({"oil_height_um", "water_height_um", "temperature_cC"}),
}


#: Plausible values, in the meaning's unit, by the unit's suffix: for points whose profile sets no `min`/`max`.
#: Wide enough for any real station (a lifetime's totalizer, a 50 m tank, -50..100 degC, +-1 bar); a value
#: outside is a broken sensor or a wrong register map. Meanings without a unit (counts, numbers, ids) are only
#: held to what JSON carries exactly.
PLAUSIBLE_BY_UNIT: dict[str, tuple[int, int]] = {
    "_fen_per_l": (0, 100_000),
    "_ml": (0, 10**13),
    "_fen": (0, 10**13),
    "_um": (0, 50_000_000),
    "_cC": (-5_000, 10_000),
    "_pa": (-100_000, 100_000),
}


def plausible_range(meaning: str) -> tuple[int, int]:
    """The default (min, max) of a meaning, from the unit in its name."""
    for suffix, bounds in PLAUSIBLE_BY_UNIT.items():
        if meaning.endswith(suffix):
            return bounds
    return (-JSON_SAFE_INT, JSON_SAFE_INT)


class ProfileError(Exception):
    """A profile that cannot be used, with every problem in it."""


ProfileName = Annotated[str, Matches("lowercase letters, digits, '.', '_', '-'", r"[a-z0-9][a-z0-9._-]{0,63}")]


@settings
class PointSpec:
    meaning: Annotated[str, MinLen(1)] = doc("what the value is, from the device kind's vocabulary")
    scope: Scope = doc("'device' (once), or 'nozzle' / 'channel' (repeated in that block)", default=Scope.DEVICE)
    function: Literal[3, 4] = doc("3 = holding registers, 4 = input registers", default=3)
    address: Annotated[int, Ge(0), Le(0xFFFF)] = doc(
        "register address (0-based); for a repeated scope, the offset in the block"
    )
    type: Literal["u16", "i16", "u32", "i32", "u64", "f32"] = doc("how the registers encode the value", default="u16")
    scale: Annotated[Decimal, Gt(0)] = doc("raw value x scale = value in the meaning's unit", default=Decimal(1))
    word_order: Literal["big", "little"] | None = doc("overrides the profile's word order", default=None)
    states: dict[str, str] | None = doc("raw value -> state name, for 'state'", default=None)
    min: Annotated[int, Ge(-JSON_SAFE_INT), Le(JSON_SAFE_INT)] | None = doc(
        "lowest plausible value, in the meaning's unit (default: by the unit, e.g. 0 for mL)", default=None
    )
    max: Annotated[int, Ge(-JSON_SAFE_INT), Le(JSON_SAFE_INT)] | None = doc(
        "highest plausible value, in the meaning's unit (default: by the unit, e.g. 10^13 for mL)", default=None
    )

    @property
    def width(self) -> int:
        return _WIDTH[self.type]

    @property
    def bounds(self) -> tuple[int, int]:
        """(min, max) of the values this point may decode to; others are a device fault."""
        low, high = plausible_range(self.meaning)
        return (low if self.min is None else self.min, high if self.max is None else self.max)

    @property
    def modulus(self) -> int | None:
        """Where an unsigned counter wraps, in the meaning's unit; None for signed and float values."""
        if self.type not in ("u16", "u32", "u64"):
            return None
        return int(Decimal(1 << (16 * self.width)) * self.scale)


@settings
class Block:
    base: Annotated[int, Ge(0), Le(0xFFFF)] = doc("address of the first block (nozzle 1, channel 1)")
    stride: Annotated[int, Ge(1), Le(0x1000)] = doc("registers from one block to the next")
    count: Annotated[int, Ge(1), Le(64)] = doc("how many blocks (nozzles, channels) the device can have")


@settings
class ProfileHeader:
    name: ProfileName = doc("the profile's name, which is also its file name without .toml")
    kind: DeviceKind = doc("pump_controller, pulse_counter, pressure_sensor or level_probe")
    vendor: str = doc("who makes the device", default="")
    model: str = doc("the device model", default="")
    description: str = doc("what the map covers", default="")
    word_order: Literal["big", "little"] = doc(
        "for 32/64-bit values: 'big' if the high word comes first", default="big"
    )
    max_gap: Annotated[int, Ge(0), Le(100)] = doc("unused registers a merged read may bridge", default=8)


@settings
class ProfileDocument:
    profile: ProfileHeader = doc("the [profile] table")
    blocks: dict[Scope, Block] = doc("[blocks.nozzle] or [blocks.channel]", factory=dict)
    points: Annotated[tuple[PointSpec, ...], MinLen(1)] = doc("the [[points]]")

    def __post_init__(self) -> None:
        problems = _inconsistencies(self)
        if problems:
            raise ValueError("; ".join(problems))


def _inconsistencies(document: ProfileDocument) -> list[str]:
    """What no single field shows: meanings the kind does not know, missing ones, blocks, state tables."""
    problems: list[str] = []
    kind = document.profile.kind
    vocabulary = MEANINGS[kind]
    repeated = REPEATED[kind]
    for scope in document.blocks:
        if scope != repeated:
            problems.append(
                f"blocks.{scope}: a {kind} has no {scope} block" + (f" (it has {repeated})" if repeated else "")
            )
    seen: set[tuple[Scope, str]] = set()
    for index, point in enumerate(document.points):
        where = f"points[{index}] ({point.meaning})"
        if point.scope not in vocabulary:
            problems.append(f"{where}: a {kind} has no {point.scope} scope; use {' or '.join(vocabulary)}")
            continue
        if point.meaning not in vocabulary[point.scope]:
            known = ", ".join(sorted(vocabulary[point.scope]))
            problems.append(f"{where}: unknown {point.scope} meaning; known: {known}")
        if (point.scope, point.meaning) in seen:
            problems.append(f"{where}: mapped twice")
        seen.add((point.scope, point.meaning))
        if point.min is not None and point.max is not None and point.min > point.max:
            problems.append(f"{where}: min {point.min} is above max {point.max}")
        if point.meaning == "state" and not point.states:
            problems.append(f'{where}: a state point needs \'states\', e.g. {{ "0" = "idle" }}')
        block = document.blocks.get(point.scope)
        if block is not None and point.address + point.width > block.stride:
            problems.append(f"{where}: offset {point.address} runs past the block stride")
        unknown_states = set((point.states or {}).values()) - NOZZLE_STATES
        if unknown_states:
            problems.append(
                f"{where}: unknown state name(s) {', '.join(sorted(unknown_states))}; "
                f"known: {', '.join(sorted(NOZZLE_STATES))}"
            )
    for scope in {p.scope for p in document.points} - {Scope.DEVICE} - set(document.blocks):
        problems.append(f"{scope} points need a [blocks.{scope}] with base, stride and count")
    missing = REQUIRED[kind] - {meaning for _, meaning in seen}
    if missing:
        problems.append(f"missing required meanings: {', '.join(sorted(missing))}")
    return problems


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One Modbus read: function, first address, number of registers."""

    function: int
    address: int
    count: int


@dataclass(frozen=True, slots=True)
class Placement:
    """A point placed at an absolute address, for one nozzle or channel (or the device: index 0)."""

    point: PointSpec
    index: int
    address: int


@dataclass(frozen=True, slots=True)
class Profile:
    """A validated profile, ready to plan reads, decode and encode."""

    document: ProfileDocument
    source: Path | None

    @property
    def name(self) -> str:
        return self.document.profile.name

    @property
    def kind(self) -> DeviceKind:
        return self.document.profile.kind

    @property
    def repeated(self) -> Scope | None:
        """The scope a device of this kind repeats (nozzles of a controller, channels of a counter)."""
        return REPEATED[self.kind]

    @property
    def capacity(self) -> int:
        """How many nozzles or channels the model has (0 if it repeats nothing)."""
        block = self.document.blocks.get(self.repeated) if self.repeated is not None else None
        return 0 if block is None else block.count

    def point(self, meaning: str) -> PointSpec | None:
        return next((p for p in self.document.points if p.meaning == meaning), None)

    def placements(self, indices: Iterable[int]) -> list[Placement]:
        """Every point at its absolute address: the device's, and those of each given nozzle or channel."""
        placed = [Placement(p, 0, p.address) for p in self.document.points if p.scope == Scope.DEVICE]
        scope = self.repeated
        block = self.document.blocks.get(scope) if scope is not None else None
        for index in sorted(set(indices)):
            if scope is None or block is None or not 1 <= index <= block.count:
                what = scope or "nozzle or channel"
                raise ProfileError(f"profile {self.name} has no {what} {index} (it has {self.capacity})")
            start = block.base + (index - 1) * block.stride
            placed.extend(Placement(p, index, start + p.address) for p in self.document.points if p.scope == scope)
        return placed

    def plan_reads(self, indices: Iterable[int]) -> list[ReadRequest]:
        return plan_reads(self.placements(indices), self.document.profile.max_gap)

    def decode(
        self, placements: Sequence[Placement], image: Mapping[tuple[int, int], int]
    ) -> dict[int, dict[str, int | str]]:
        """Values by nozzle or channel (0 = the device) and meaning, from a register image.

        Raises DeviceValueFault naming every point whose value cannot be true: one bad value spoils the poll,
        since a sale's fields are only worth booking together."""
        return self.decoding(placements).decode(image)

    def decoding(self, placements: Sequence[Placement]) -> ImageDecoder:
        """`decode` for these placements, with what does not change from poll to poll worked out once."""
        order = self.document.profile.word_order
        return ImageDecoder(
            tuple(
                _PlacedDecoder(
                    placed.index,
                    placed.point.meaning,
                    self._point_name(placed),
                    placed.address,
                    tuple((placed.point.function, placed.address + i) for i in range(placed.point.width)),
                    PointDecoder(placed.point, order),
                )
                for placed in placements
            )
        )

    def _point_name(self, placed: Placement) -> str:
        scope = placed.point.scope
        return placed.point.meaning if scope == Scope.DEVICE else f"{scope} {placed.index} {placed.point.meaning}"

    def encode(self, placed: Placement, value: int | str) -> list[int]:
        return encode_point(placed.point, value, self.document.profile.word_order)


def plan_reads(placements: Iterable[Placement], max_gap: int) -> list[ReadRequest]:
    """Merge points into as few reads as possible: sorted by (function, address), joined while the gap is
    at most max_gap and the read stays within 125 registers."""
    spans = sorted({(p.point.function, p.address, p.address + p.point.width) for p in placements})
    requests: list[ReadRequest] = []
    current: list[int] | None = None
    for function, start, end in spans:
        if (
            current is not None
            and current[0] == function
            and start - current[2] <= max_gap
            and max(end, current[2]) - current[1] <= MAX_READ_REGISTERS
        ):
            current[2] = max(current[2], end)
            continue
        if current is not None:
            requests.append(ReadRequest(current[0], current[1], current[2] - current[1]))
        current = [function, start, end]
    if current is not None:
        requests.append(ReadRequest(current[0], current[1], current[2] - current[1]))
    return requests


class ImplausibleValue(ValueError):
    """A point's registers hold a value that cannot be true; `raw_hex` is the registers in address order."""

    def __init__(self, words: Sequence[int], reason: str) -> None:
        self.raw_hex = "".join(f"{word:04X}" for word in words)
        self.reason = reason
        super().__init__(f"registers {self.raw_hex}: {reason}")


class PointDecoder:
    """A point's registers to its value in its meaning's unit (or its state name), with the point's word order,
    types, scale and bounds worked out once: a controller's poll decodes a dozen points, many times a second.
    Raises ImplausibleValue for NaN, infinity and values outside `point.bounds`."""

    __slots__ = ("_as_words", "_bounds", "_integer_scale", "_meaning", "_reversed", "_scale", "_states", "_to_number")

    def __init__(self, point: PointSpec, default_order: str) -> None:
        self._reversed = (point.word_order or default_order) != "big"
        self._as_words = struct.Struct(">" + "H" * point.width)
        self._to_number = struct.Struct(_STRUCT[point.type])
        self._states = point.states
        self._scale = point.scale
        whole = point.scale == point.scale.to_integral_value()
        self._integer_scale = int(point.scale) if whole else None
        """An integer scale times an integer raw value is exact without Decimal."""
        self._bounds = point.bounds
        self._meaning = point.meaning

    def __call__(self, words: Sequence[int]) -> int | str:
        ordered = words[::-1] if self._reversed else words
        raw: int | float = self._to_number.unpack(self._as_words.pack(*ordered))[0]
        if isinstance(raw, float) and not math.isfinite(raw):
            raise ImplausibleValue(words, "not a number (NaN)" if math.isnan(raw) else f"{raw} (infinite)")
        if self._states is not None:
            return self._states.get(str(raw), f"unknown:{raw}")
        if isinstance(raw, int) and self._integer_scale is not None:
            value = raw * self._integer_scale
        else:
            scaled = Decimal(raw) * self._scale if isinstance(raw, int) else Decimal(repr(raw)) * self._scale
            value = int(scaled.to_integral_value(ROUND_HALF_EVEN))
        low, high = self._bounds
        if not low <= value <= high:
            raise ImplausibleValue(words, f"{value} is outside the plausible {low}..{high} of {self._meaning}")
        return value


def decode_point(point: PointSpec, words: Sequence[int], default_order: str) -> int | str:
    """The point's value in its meaning's unit (or its state name); see `PointDecoder`."""
    return PointDecoder(point, default_order)(words)


@dataclass(frozen=True, slots=True)
class _PlacedDecoder:
    index: int
    meaning: str
    name: str
    address: int
    registers: tuple[tuple[int, int], ...]
    decode: PointDecoder


@dataclass(frozen=True, slots=True)
class ImageDecoder:
    """Placed points decoded from a register image (`Profile.decoding`)."""

    points: tuple[_PlacedDecoder, ...]

    def decode(self, image: Mapping[tuple[int, int], int]) -> dict[int, dict[str, int | str]]:
        return self.decode_words([image[register] for register in placed.registers] for placed in self.points)

    def decode_words(self, words_of_points: Iterable[Sequence[int]]) -> dict[int, dict[str, int | str]]:
        """From each point's registers, in the order of `points`."""
        values: dict[int, dict[str, int | str]] = {}
        faults: list[ValueFault] = []
        for placed, words in zip(self.points, words_of_points, strict=True):
            try:
                value = placed.decode(words)
            except ImplausibleValue as exc:
                faults.append(ValueFault(placed.name, placed.address, exc.raw_hex, exc.reason))
                continue
            values.setdefault(placed.index, {})[placed.meaning] = value
        if faults:
            raise DeviceValueFault(tuple(faults))
        return values


def encode_point(point: PointSpec, value: int | str, default_order: str) -> list[int]:
    if point.states is not None:
        reverse = {name: int(raw) for raw, name in point.states.items()}
        raw: int | float = reverse[str(value)]
    else:
        exact = Decimal(int(value)) / point.scale
        raw = float(exact) if point.type == "f32" else int(exact.to_integral_value(ROUND_HALF_EVEN))
    return _number_to_words(point, raw, point.word_order or default_order)


_STRUCT = {"u16": ">H", "i16": ">h", "u32": ">I", "i32": ">i", "u64": ">Q", "f32": ">f"}


def _number_to_words(point: PointSpec, raw: int | float, word_order: str) -> list[int]:
    data = struct.pack(_STRUCT[point.type], raw)
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return words if word_order == "big" else list(reversed(words))


def shipped_profile_dirs() -> list[Path]:
    """Where the device profiles that ship with station-agent are."""
    return shipped_dirs("profiles")
