"""The magnetostrictive level probe: its profile against registers written by hand, and the simulated probe.

The map (function 0x03 from 0x0002): product height u32 and water height u32 in 1/65536 mm, high word
first, then the temperature i16 in 1/16 degC. 1234.5 mm is 1234.5 x 65536 = 80,904,192 = 0x04D2_8000;
20.25 mm is 1,327,104 = 0x0014_4000; 16.5 degC is 264 = 0x0108 and -5.25 degC is -84 = 0xFFAC.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from drivers.device import DeviceDriver
from drivers.profile_validation import find_profile, load_profile
from drivers.profiles import DeviceKind, ProfileError, ReadRequest, shipped_profile_dirs
from drivers.readings import LevelProbeReading
from simulators.fuel import Fuel, Product
from simulators.level_probe import LevelProbe
from simulators.tank_chart import TankChart
from simulators.tanks import Tank, TankSpec

PROFILE = find_profile("sim-level-probe", shipped_profile_dirs())


class Registers:
    """A register reader over a hand-made holding-register image."""

    def __init__(self, image: dict[int, int]) -> None:
        self.image = image

    def read_registers(self, unit: int, function: int, address: int, count: int) -> tuple[int, ...]:
        assert (unit, function) == (1, 3)
        return tuple(self.image[address + offset] for offset in range(count))


class TestProfile:
    def test_one_read_of_the_documented_registers(self) -> None:
        assert PROFILE.kind == DeviceKind.LEVEL_PROBE
        assert DeviceDriver(PROFILE).requests == (ReadRequest(3, 0x0002, 5),)

    def test_hand_made_registers(self) -> None:
        """Heights to micrometres (x 1000 / 65536), temperature to 0.01 degC (x 100 / 16)."""
        image = {2: 0x04D2, 3: 0x8000, 4: 0x0014, 5: 0x4000, 6: 0x0108}
        assert DeviceDriver(PROFILE).read(Registers(image), 1) == LevelProbeReading(1_234_500, 20_250, 1650)

    def test_below_zero(self) -> None:
        image = {2: 0x0000, 3: 0x0000, 4: 0x0000, 5: 0x0000, 6: 0xFFAC}
        assert DeviceDriver(PROFILE).read(Registers(image), 1) == LevelProbeReading(0, 0, -525)

    def test_a_probe_profile_needs_all_three(self, tmp_path: Path) -> None:
        path = tmp_path / "p.toml"
        path.write_text(
            '[profile]\nname = "p"\nkind = "level_probe"\n'
            '[[points]]\nmeaning = "oil_height_um"\naddress = 0\ntype = "u32"\n'
        )
        with pytest.raises(ProfileError, match="missing required meanings: temperature_cC, water_height_um"):
            load_profile(path)


class TestSimulatedProbe:
    def quiet_tank(self) -> Tank:
        spec = TankSpec(
            fuel=Fuel(Product.DIESEL, 835.0),
            chart=TankChart.horizontal_cylinder(2500, 6000),
            volume_l=10_000.0,
            water_mm=35.0,
            temperature_c=12.5,
            daily_swing_c=0.0,
            height_noise_mm=0.0,
            water_noise_mm=0.0,
            temperature_noise_c=0.0,
        )
        return Tank("T2", spec, start=datetime(2026, 3, 1))

    def test_registers_at_the_documented_addresses(self) -> None:
        """The simulated probe's registers, read at hand-written addresses and decoded by hand."""
        tank = self.quiet_tank()
        bank = LevelProbe(tank, PROFILE).bank(lambda: 0.0)
        words = bank.read(3, 0x0002, 5)
        height_mm = ((words[0] << 16) | words[1]) / 65536
        water_mm = ((words[2] << 16) | words[3]) / 65536
        temperature_c = (words[4] - 0x10000 if words[4] & 0x8000 else words[4]) / 16
        state = tank.state(0.0)
        assert height_mm == pytest.approx(state.height_mm, abs=0.05 + 1e-4)
        assert water_mm == pytest.approx(35.0, abs=1e-4)
        assert temperature_c == 12.5

    def test_the_driver_reads_a_level_probe_reading(self) -> None:
        tank = self.quiet_tank()
        bank = LevelProbe(tank, PROFILE).bank(lambda: 0.0)

        class BankReader:
            def read_registers(self, unit: int, function: int, address: int, count: int) -> tuple[int, ...]:
                return tuple(bank.read(function, address, count))

        reading = DeviceDriver(PROFILE).read(BankReader(), 1)
        assert isinstance(reading, LevelProbeReading)
        assert reading.oil_height_um == pytest.approx(tank.state(0.0).height_mm * 1000, abs=51)
        assert (reading.water_height_um, reading.temperature_cC) == (35_000, 1250)

    def test_another_kind_of_profile_is_refused(self) -> None:
        with pytest.raises(ProfileError, match="is a pressure_sensor, not a level_probe"):
            LevelProbe(self.quiet_tank(), find_profile("sim-pressure-sensor", shipped_profile_dirs()))
