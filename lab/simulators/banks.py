"""Register banks of simulated devices: a model's values, laid out by the device's profile, read over Modbus.

The registers are encoded by the same profile file the agent decodes with, so the simulated map is the
profile's by construction; the tests check it against hand-written addresses, so a codec bug cannot hide on
both sides. As on real devices, counters wrap at their register's width (the profile's modulus), reserved
registers inside the map and to the end of each block read as zeros, anything outside answers exception 2,
and the registers are read-only. Every read first brings the model up to the present simulated moment, and
the whole image is rebuilt under the model's lock, so a 32-bit value is never torn between two moments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from drivers.profiles import Placement, Profile, ProfileError
from simulators.modbus_slave import IllegalAddress, RegisterMap
from simulators.model import SimulatedModel

#: A device's values by (nozzle or channel, meaning); index 0 is the device itself.
Values = Mapping[tuple[int, str], int | str]


class ProfiledRegisters:
    """The register image of one device: the profile's points for the given nozzles or channels."""

    def __init__(self, profile: Profile, indices: Iterable[int] = ()) -> None:
        self.profile = profile
        self.indices = tuple(sorted(set(indices)))
        self._placements = profile.placements(self.indices)
        self._map = RegisterMap()
        self._reserve()

    def publish(self, values: Values) -> None:
        """Encode every placed point's value; ProfileError if the model has no value for one."""
        for placed in self._placements:
            value = values.get((placed.index, placed.point.meaning))
            if value is None:
                raise ProfileError(
                    f"profile {self.profile.name} maps {placed.point.meaning!r}, which this simulated "
                    f"{self.profile.kind} does not provide; remove the point or use another profile"
                )
            words = self.profile.encode(placed, _wrapped(placed, value))
            self._map.set(placed.point.function, placed.address, words)

    def read(self, function: int, address: int, count: int) -> list[int]:
        return self._map.read(function, address, count)

    def _reserve(self) -> None:
        """Zeros from the first point to the last, and to the end of the last block, per register table."""
        ends: dict[int, tuple[int, int]] = {}
        repeated = self.profile.repeated
        block = None if repeated is None else self.profile.document.blocks.get(repeated)
        for placed in self._placements:
            function: int = placed.point.function
            start = placed.address
            end = start + placed.point.width - 1
            if block is not None and placed.point.scope == repeated:
                end = max(end, block.base + placed.index * block.stride - 1)
            low, high = ends.get(function, (start, end))
            ends[function] = (min(low, start), max(high, end))
        for function, (low, high) in ends.items():
            self._map.set(function, low, [0] * (high - low + 1))


def _wrapped(placed: Placement, value: int | str) -> int | str:
    modulus = placed.point.modulus
    return value % modulus if isinstance(value, int) and modulus is not None else value


class DeviceBank:
    """A `RegisterBank` for a slave server: a read runs the model up to `clock()` and re-encodes its values.

    `target` is the device's name for faults (`D01/controller`).
    """

    def __init__(
        self,
        model: SimulatedModel,
        target: str,
        registers: ProfiledRegisters,
        values: Callable[[], Values],
        clock: Callable[[], float],
    ) -> None:
        self.model = model
        self.target = target
        self.registers = registers
        self._values = values
        self._clock = clock

    @property
    def profile(self) -> Profile:
        return self.registers.profile

    def read(self, function: int, address: int, count: int) -> list[int]:
        with self.model.lock:
            self.model.advance_to(self._clock())
            self.registers.publish(self._values())
            return self.registers.read(function, address, count)

    def write(self, address: int, values: Sequence[int]) -> None:
        raise IllegalAddress(f"register 0x{address:04X} is read-only on a simulated {self.profile.kind}")
