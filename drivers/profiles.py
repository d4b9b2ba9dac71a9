"""Device profiles: a device model's Modbus register map, as data an installer can write.

A profile says, for each value the agent understands (its *meaning*, e.g. `txn_volume_ml`), where it lives
(function code, address, per-nozzle offset), how it is encoded (type, word and byte order) and how to scale it
into the meaning's unit. The agent then plans as few requests as possible: the points a poll needs are merged
into contiguous reads of at most 125 registers, bridging small gaps, because on a 9600-baud line every request
costs a turnaround and the frame overhead. Decoding and encoding are pure, so the same profile drives the agent
(decode) and the simulators (encode), and both are tested against hand-made register images.
"""

from __future__ import annotations

import struct
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MAX_READ_REGISTERS = 125
_WIDTH = {"u16": 1, "i16": 1, "u32": 2, "i32": 2, "u64": 4, "f32": 2}


class DeviceKind(StrEnum):
    PUMP_CONTROLLER = "pump_controller"


class Scope(StrEnum):
    DEVICE = "device"
    NOZZLE = "nozzle"


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
}

#: The nozzle states a profile's `states` table may name.
NOZZLE_STATES = frozenset({"idle", "authorised", "lifted", "fuelling", "finished", "fault"})

#: Meanings every profile of a kind must map, or the agent cannot do its job with the device.
REQUIRED: dict[DeviceKind, frozenset[str]] = {
    DeviceKind.PUMP_CONTROLLER: frozenset(
        {"state", "txn_no", "txn_volume_ml", "txn_amount_fen", "txn_price_fen_per_l", "totalizer_volume_ml"}
    ),
}


class ProfileError(Exception):
    """A profile that cannot be used, with every problem in it."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PointSpec(_Strict):
    meaning: str = Field(min_length=1, description="what the value is, from the device kind's vocabulary")
    scope: Scope = Field(default=Scope.NOZZLE, description="'device' (once) or 'nozzle' (repeated per nozzle)")
    function: Literal[3, 4] = Field(default=3, description="3 = holding registers, 4 = input registers")
    address: int = Field(
        ge=0, le=0xFFFF, description="register address (0-based); for nozzle scope, the offset in the block"
    )
    type: Literal["u16", "i16", "u32", "i32", "u64", "f32"] = "u16"
    scale: Decimal = Field(default=Decimal(1), gt=0, description="raw value x scale = value in the meaning's unit")
    word_order: Literal["big", "little"] | None = Field(default=None, description="overrides the profile's")
    states: dict[str, str] | None = Field(default=None, description="raw value -> state name, for 'state'")

    @property
    def width(self) -> int:
        return _WIDTH[self.type]


class NozzleBlock(_Strict):
    base: int = Field(ge=0, le=0xFFFF, description="address of nozzle 1's block")
    stride: int = Field(ge=1, le=0x1000, description="registers from one nozzle's block to the next")
    max_nozzles: int = Field(ge=1, le=32, description="how many nozzles the device can have")


class ProfileHeader(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="lowercase, digits, '.', '_', '-'")
    kind: DeviceKind
    vendor: str = ""
    model: str = ""
    description: str = ""
    word_order: Literal["big", "little"] = Field(default="big", description="for 32/64-bit values: high word first?")
    max_gap: int = Field(default=8, ge=0, le=100, description="unused registers a merged read may bridge")


class ProfileDocument(_Strict):
    profile: ProfileHeader
    nozzle_block: NozzleBlock | None = None
    points: list[PointSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> ProfileDocument:
        problems: list[str] = []
        vocabulary = MEANINGS[self.profile.kind]
        seen: set[tuple[Scope, str]] = set()
        for index, point in enumerate(self.points):
            where = f"points[{index}] ({point.meaning})"
            if point.meaning not in vocabulary[point.scope]:
                known = ", ".join(sorted(vocabulary[point.scope]))
                problems.append(f"{where}: unknown {point.scope} meaning; known: {known}")
            if (point.scope, point.meaning) in seen:
                problems.append(f"{where}: mapped twice")
            seen.add((point.scope, point.meaning))
            if point.meaning == "state" and not point.states:
                problems.append(f'{where}: a state point needs \'states\', e.g. {{ "0" = "idle" }}')
            block = self.nozzle_block
            if point.scope == Scope.NOZZLE and block is not None and point.address + point.width > block.stride:
                problems.append(f"{where}: offset {point.address} runs past the block stride")
            unknown_states = set((point.states or {}).values()) - NOZZLE_STATES
            if unknown_states:
                problems.append(
                    f"{where}: unknown state name(s) {', '.join(sorted(unknown_states))}; "
                    f"known: {', '.join(sorted(NOZZLE_STATES))}"
                )
        if any(p.scope == Scope.NOZZLE for p in self.points) and self.nozzle_block is None:
            problems.append("nozzle points need a [nozzle_block] with base, stride and max_nozzles")
        missing = REQUIRED[self.profile.kind] - {meaning for _, meaning in seen}
        if missing:
            problems.append(f"missing required meanings: {', '.join(sorted(missing))}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One Modbus read: function, first address, number of registers."""

    function: int
    address: int
    count: int


@dataclass(frozen=True, slots=True)
class Placement:
    """A point placed at an absolute address, for one nozzle (or the device, nozzle=0)."""

    point: PointSpec
    nozzle: int
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
    def max_nozzles(self) -> int:
        block = self.document.nozzle_block
        return 0 if block is None else block.max_nozzles

    def placements(self, nozzles: Iterable[int]) -> list[Placement]:
        """Every point at its absolute address, for the device and for each of the given nozzles."""
        placed = [Placement(p, 0, p.address) for p in self.document.points if p.scope == Scope.DEVICE]
        block = self.document.nozzle_block
        for nozzle in sorted(set(nozzles)):
            if block is None or not 1 <= nozzle <= block.max_nozzles:
                raise ProfileError(f"profile {self.name} has no nozzle {nozzle} (it has 1..{self.max_nozzles})")
            start = block.base + (nozzle - 1) * block.stride
            placed.extend(
                Placement(p, nozzle, start + p.address) for p in self.document.points if p.scope == Scope.NOZZLE
            )
        return placed

    def plan_reads(self, nozzles: Iterable[int]) -> list[ReadRequest]:
        return plan_reads(self.placements(nozzles), self.document.profile.max_gap)

    def decode(
        self, placements: Sequence[Placement], image: Mapping[tuple[int, int], int]
    ) -> dict[int, dict[str, int | str]]:
        """Values by nozzle (0 = device) and meaning, from a register image {(function, address): raw}."""
        values: dict[int, dict[str, int | str]] = {}
        for placed in placements:
            words = [image[(placed.point.function, placed.address + i)] for i in range(placed.point.width)]
            values.setdefault(placed.nozzle, {})[placed.point.meaning] = decode_point(
                placed.point, words, self.document.profile.word_order
            )
        return values

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


def decode_point(point: PointSpec, words: Sequence[int], default_order: str) -> int | str:
    raw = _words_to_number(point, words, point.word_order or default_order)
    if point.states is not None:
        return point.states.get(str(raw), f"unknown:{raw}")
    scaled = Decimal(raw) * point.scale if isinstance(raw, int) else Decimal(repr(raw)) * point.scale
    return int(scaled.to_integral_value(ROUND_HALF_EVEN))


def encode_point(point: PointSpec, value: int | str, default_order: str) -> list[int]:
    if point.states is not None:
        reverse = {name: int(raw) for raw, name in point.states.items()}
        raw: int | float = reverse[str(value)]
    else:
        exact = Decimal(int(value)) / point.scale
        raw = float(exact) if point.type == "f32" else int(exact.to_integral_value(ROUND_HALF_EVEN))
    return _number_to_words(point, raw, point.word_order or default_order)


_STRUCT = {"u16": ">H", "i16": ">h", "u32": ">I", "i32": ">i", "u64": ">Q", "f32": ">f"}


def _words_to_number(point: PointSpec, words: Sequence[int], word_order: str) -> int | float:
    ordered = list(words) if word_order == "big" else list(reversed(words))
    data = b"".join(word.to_bytes(2, "big") for word in ordered)
    number: int | float = struct.unpack(_STRUCT[point.type], data)[0]
    return number


def _number_to_words(point: PointSpec, raw: int | float, word_order: str) -> list[int]:
    data = struct.pack(_STRUCT[point.type], raw)
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return words if word_order == "big" else list(reversed(words))


def load_profile(path: Path) -> Profile:
    """Read and validate one profile file; ProfileError lists every problem with its place."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"{path}: cannot be read: {exc.strerror}") from exc
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return Profile(ProfileDocument.model_validate(document), path)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False):
            where = ".".join(str(part) for part in error["loc"]) or "(top level)"
            lines.append(f"  {where}: {error['msg'].removeprefix('Value error, ')} (found {error.get('input')!r:.60})")
        raise ProfileError(f"{path}: {len(lines)} problem(s):\n" + "\n".join(lines)) from exc


def find_profile(name: str, directories: Sequence[Path]) -> Profile:
    """The profile called `name`, from the first directory that has `<name>.toml`."""
    for directory in directories:
        candidate = directory / f"{name}.toml"
        if candidate.is_file():
            profile = load_profile(candidate)
            if profile.name != name:
                raise ProfileError(f"{candidate}: file is named {name!r} but its [profile] name is {profile.name!r}")
            return profile
    searched = ", ".join(str(d) for d in directories) or "(none)"
    raise ProfileError(f"no profile {name!r}: looked for {name}.toml in {searched}")


def shipped_profile_dirs() -> list[Path]:
    """Where the profiles that ship with station-agent are: a source checkout's `config/profiles`, then the
    copy a package installs under `<prefix>/share/station-agent/profiles`."""
    checkout = Path(__file__).resolve().parent.parent / "config" / "profiles"
    installed = Path(sys.prefix) / "share" / "station-agent" / "profiles"
    return [directory for directory in (checkout, installed) if directory.is_dir()]
