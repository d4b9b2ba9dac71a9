"""Device profiles: validation, read planning, decoding, and the simulated controller's register layout."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.cli import main
from drivers.device import DeviceDriver
from drivers.errors import DeviceValueFault
from drivers.profile_validation import load_profile
from drivers.profiles import (
    ImplausibleValue,
    PointSpec,
    ProfileError,
    decode_point,
    encode_point,
    plausible_range,
    shipped_profile_dirs,
)
from simulators.forecourt import Dispenser, NozzleSpec
from simulators.fuelling import FuellingPattern

PROFILE = Path(__file__).resolve().parents[1] / "config" / "profiles" / "sim-pump-controller.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.toml"
    path.write_text(text)
    return path


class TestValidation:
    def test_shipped_profiles_are_valid(self) -> None:
        """Every profile shipped in config/profiles loads."""
        (directory,) = [d for d in shipped_profile_dirs() if d == PROFILE.parent]
        names = [load_profile(path).name for path in sorted(directory.glob("*.toml"))]
        assert "sim-pump-controller" in names

    def test_problems_name_the_point_and_the_fix(self, tmp_path: Path) -> None:
        """Unknown meanings, missing required meanings and a state without a table are all reported."""
        path = write(
            tmp_path,
            """
[profile]
name = "bad"
kind = "pump_controller"
[blocks.nozzle]
base = 0
stride = 4
count = 2
[[points]]
meaning = "volume_litres"
scope = "nozzle"
address = 0
[[points]]
meaning = "state"
scope = "nozzle"
address = 3
type = "u32"
""",
        )
        with pytest.raises(ProfileError) as caught:
            load_profile(path)
        text = str(caught.value)
        assert "points[0] (volume_litres): unknown nozzle meaning" in text
        assert "points[1] (state): a state point needs 'states'" in text
        assert "points[1] (state): offset 3 runs past the block stride" in text
        assert "missing required meanings: totalizer_volume_ml, txn_amount_fen" in text

    def test_a_profile_nested_past_the_parser_is_refused_as_not_toml(self, tmp_path: Path) -> None:
        """A profile of 100,000 nested arrays is refused naming the file, not a RecursionError out of the parser."""
        path = tmp_path / "deep.toml"
        path.write_text("x = " + "[" * 100_000)
        with pytest.raises(ProfileError, match=r"deep\.toml: not valid TOML"):
            load_profile(path)

    def test_profile_check_command(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`profile check` prints the reads a full poll takes."""
        assert main(["profile", "check", str(PROFILE)]) == 0
        assert "fc3 @0x00FC x118" in capsys.readouterr().out


class TestPlanning:
    def test_two_nozzles_take_one_request(self) -> None:
        """Device registers and two nozzle blocks merge into a single read of 54 registers."""
        profile = load_profile(PROFILE)
        (request,) = profile.plan_reads([1, 2])
        assert (request.function, request.address, request.count) == (3, 0x00FC, 54)

    def test_reads_never_exceed_125_registers(self) -> None:
        """Eight nozzles need more than 125 registers, so the plan splits them."""
        profile = load_profile(PROFILE)
        requests = profile.plan_reads(range(1, 9))
        assert all(r.count <= 125 for r in requests) and len(requests) == 2

    def test_unknown_nozzle_is_refused(self) -> None:
        """A nozzle beyond the profile's nozzle count is a profile error, not an index error."""
        with pytest.raises(ProfileError, match="has no nozzle 9"):
            load_profile(PROFILE).plan_reads([9])


class TestDecoding:
    def test_hand_made_register_image_decodes_to_the_meanings(self) -> None:
        """Registers written by hand at the documented addresses decode to the values, scaled to mL and fen."""
        profile = load_profile(PROFILE)
        driver = DeviceDriver(profile, [1])
        image = dict.fromkeys(((3, a) for a in range(0x00FC, 0x0100 + 0x20)), 0)
        image[(3, 0x00FC)] = 0x0102
        image[(3, 0x00FD)], image[(3, 0x00FE)] = 0x0000, 0x2710
        base = 0x0100
        image[(3, base + 0)] = 3
        image[(3, base + 6)], image[(3, base + 7)] = 0x0001, 0x0002
        image[(3, base + 8)], image[(3, base + 9)] = 0x0000, 4123
        image[(3, base + 10)], image[(3, base + 11)] = 0x0000, 3175
        image[(3, base + 12)] = 770
        image[(3, base + 14)], image[(3, base + 15)] = 0x0001, 0x0000
        values = profile.decode(profile.placements([1]), image)
        reading = driver.reading(values)
        nozzle = reading.nozzles[0]
        assert (reading.firmware_id, reading.k_factor) == (0x0102, 10_000)
        assert nozzle.state == "finished"
        assert nozzle.txn_no == 65538
        assert nozzle.txn_volume_ml == 41_230 and nozzle.txn_amount_fen == 3175 and nozzle.txn_price_fen_per_l == 770
        assert nozzle.totalizer_volume_ml == 65536 * 10

    @given(value=st.integers(0, 2**32 - 1), little=st.booleans())
    def test_u32_round_trips_in_either_word_order(self, value: int, little: bool) -> None:
        """Encoding then decoding a u32 gives it back, whichever word order the device uses."""
        point = PointSpec(meaning="txn_no", address=0, type="u32", word_order="little" if little else "big")
        words = encode_point(point, value, "big")
        assert decode_point(point, words, "big") == value
        assert words == ([value & 0xFFFF, value >> 16] if little else [value >> 16, value & 0xFFFF])

    @given(value=st.integers(-(2**31), 2**31 - 1))
    def test_signed_values(self, value: int) -> None:
        """i32 values keep their sign."""
        point = PointSpec(meaning="txn_no", address=0, type="i32")
        assert decode_point(point, encode_point(point, value, "big"), "big") == value

    def test_float_litres_scale_to_integer_millilitres(self) -> None:
        """An f32 volume in litres with scale 1000 becomes integer mL, rounded to the nearest."""
        point = PointSpec(meaning="txn_volume_ml", address=0, type="f32", scale=Decimal(1000))
        words = encode_point(point, 41_230, "big")
        assert decode_point(point, words, "big") == 41_230


def reference_value(point: PointSpec, words: list[int], default_order: str) -> int | str:
    """The point's value worked out by hand, independently of the driver: the words joined into one unsigned
    number by arithmetic, its sign or IEEE 754 single taken by the formula, then scaled exactly and rounded half
    to even, as the profile format says."""
    ordered = words if (point.word_order or default_order) == "big" else words[::-1]
    unsigned = 0
    for word in ordered:
        unsigned = (unsigned << 16) | word
    bits = 16 * len(words)
    number: int | float
    if point.type == "f32":
        sign = -1.0 if unsigned >> 31 else 1.0
        exponent, fraction = (unsigned >> 23) & 0xFF, unsigned & 0x7FFFFF
        number = sign * (fraction / 2**23 if exponent == 0 else 1 + fraction / 2**23) * 2.0 ** (max(exponent, 1) - 127)
    elif point.type.startswith("i") and unsigned >> (bits - 1):
        number = unsigned - (1 << bits)
    else:
        number = unsigned
    if point.states is not None:
        return point.states.get(str(number), f"unknown:{number}")
    exact = Decimal(number) if isinstance(number, int) else Decimal(repr(number))
    return int((exact * point.scale).to_integral_value(rounding="ROUND_HALF_EVEN"))


@given(
    kind=st.sampled_from(["u16", "i16", "u32", "i32", "u64", "f32"]),
    scale=st.sampled_from([Decimal(1), Decimal(10), Decimal("0.01"), Decimal("2.5"), Decimal("1.0"), Decimal(1000)]),
    order=st.sampled_from(["big", "little"]),
    data=st.data(),
)
def test_a_point_decodes_as_the_hand_worked_reference_says(
    kind: str, scale: Decimal, order: str, data: st.DataObject
) -> None:
    """Every type, word order and scale (whole, fractional, 1.0) decodes to the value an independent, by-hand
    reading of the registers gives, or is refused as implausible exactly where that value is out of bounds."""
    point = PointSpec(meaning="txn_no", address=0, type=kind, scale=scale, word_order=order)  # type: ignore[arg-type]
    words = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=point.width, max_size=point.width))
    if kind == "f32" and ((words[0] if order == "big" else words[1]) >> 7) & 0xFF == 0xFF:
        return  # NaN and infinity: refused, tested on their own below
    expected = reference_value(point, words, "big")
    low, high = point.bounds
    if isinstance(expected, int) and not low <= expected <= high:
        with pytest.raises(ImplausibleValue):
            decode_point(point, words, "big")
    else:
        assert decode_point(point, words, "big") == expected


class TestSimulatedController:
    def test_sale_lands_at_the_documented_addresses(self) -> None:
        """After a simulated sale, the raw registers at the map's addresses hold its number, volume and money."""
        clock = [0.0]
        dispenser = Dispenser(
            "D01",
            [NozzleSpec("92", 770, first_txn_no=141, first_totalizer_ml=1_000_000)],
            load_profile(PROFILE),
            pattern=FuellingPattern(
                idle_s=(1, 1), lift_s=(1, 1), volume_l=(10, 10), flow_l_per_min=(60, 60), hang_up_s=(5, 5)
            ),
            rng=random.Random(1),
        )
        controller = dispenser.controller_bank(lambda: clock[0])
        clock[0] = 12.5
        registers = controller.read(3, 0x0100, 20)
        assert registers[0] == 3
        assert (registers[6] << 16) | registers[7] == 142
        assert (registers[8] << 16) | registers[9] == 1000
        assert (registers[10] << 16) | registers[11] == 7700
        assert registers[12] == 770
        assert (registers[14] << 16) | registers[15] == (1_000_000 + 10_000) // 10
        assert [(sale.txn_no, sale.volume_ml) for sale in dispenser.sales()["D01-N1"]] == [(142, 10_000)]

    def test_reserved_registers_inside_the_map_read_as_zero(self) -> None:
        """Gaps inside the map answer zeros, so the agent's merged reads work; outside the map is an error."""
        dispenser = Dispenser("D01", [NozzleSpec("92", 770), NozzleSpec("95", 820)], load_profile(PROFILE))
        controller = dispenser.controller_bank(lambda: 0.0)
        assert controller.read(3, 0x0100 + 18, 14) == [0] * 14
        with pytest.raises(LookupError):
            controller.read(3, 0x0000, 1)


class TestImplausibleValues:
    @pytest.mark.parametrize(
        ("words", "reason"),
        [
            ([0x7FC0, 0x0000], "not a number (NaN)"),
            ([0x7F80, 0x0000], "inf (infinite)"),
            ([0xFF80, 0x0000], "-inf (infinite)"),
            (
                [0x7F7F, 0xFFFF],
                "340282346638528860000000000000000000000000 is outside the plausible 0..10000000000000 "
                "of txn_volume_ml",
            ),
        ],
    )
    def test_nan_infinity_and_huge_floats_are_refused_with_their_registers(self, words: list[int], reason: str) -> None:
        """An f32 volume reading NaN, infinity or the largest single (3.4e38 L) is an ImplausibleValue that
        carries the registers as hex, never a ValueError or OverflowError from the conversion."""
        point = PointSpec(meaning="txn_volume_ml", address=0, type="f32", scale=Decimal(1000))
        with pytest.raises(ImplausibleValue) as raised:
            decode_point(point, words, "big")
        assert raised.value.reason == reason
        assert raised.value.raw_hex == "".join(f"{word:04X}" for word in words)

    def test_a_u64_beyond_2_to_the_53_is_refused(self) -> None:
        """A u64 counter past what JSON carries exactly is refused, so no record it lands in can be unsealable."""
        point = PointSpec(meaning="txn_no", address=0, type="u64")
        assert decode_point(point, [0x001F, 0xFFFF, 0xFFFF, 0xFFFF], "big") == 2**53 - 1
        with pytest.raises(ImplausibleValue, match="9007199254740992 is outside"):
            decode_point(point, [0x0020, 0x0000, 0x0000, 0x0000], "big")

    def test_min_and_max_of_the_profile_replace_the_unit_default(self) -> None:
        """Profile bounds, inclusive, in the meaning's unit after scaling."""
        point = PointSpec(meaning="pressure_pa", address=0, type="i16", min=-3000, max=3000)
        assert decode_point(point, [3000], "big") == 3000
        with pytest.raises(ImplausibleValue, match=r"3001 is outside the plausible -3000\.\.3000"):
            decode_point(point, [3001], "big")
        assert plausible_range("pressure_pa") == (-100_000, 100_000)

    def test_a_profile_whose_min_is_above_its_max_is_refused(self, tmp_path: Path) -> None:
        """min > max is named with the point, at load time."""
        path = tmp_path / "p.toml"
        path.write_text(
            '[profile]\nname = "p"\nkind = "pressure_sensor"\n'
            '[[points]]\nmeaning = "pressure_pa"\naddress = 0\ntype = "i16"\nmin = 10\nmax = -10\n'
        )
        with pytest.raises(ProfileError, match=r"points\[0\] \(pressure_pa\): min 10 is above max -10"):
            load_profile(path)

    def test_a_poll_with_bad_values_names_every_bad_point(self) -> None:
        """A level probe whose two heights read 0xFFFF.... (65535 mm: more than any tank) raises one
        DeviceValueFault naming both points, their registers and raw words."""
        profile = load_profile(PROFILE.with_name("sim-level-probe.toml"))
        placements = profile.placements([])
        image = {(3, 2): 0xFFFF, (3, 3): 0, (3, 4): 0xFFFF, (3, 5): 1, (3, 6): 320}
        with pytest.raises(DeviceValueFault) as raised:
            profile.decode(placements, image)
        assert [(f.point, f.register, f.raw_hex) for f in raised.value.faults] == [
            ("oil_height_um", 2, "FFFF0000"),
            ("water_height_um", 4, "FFFF0001"),
        ]


COMMERCIAL = ("isma-sfar-1m-4di-m", "keller-series-30", "apg-mpx")


class TestShippedCommercialProfiles:
    @pytest.mark.parametrize("name", COMMERCIAL)
    def test_each_loads_and_profile_check_accepts_it(self, name: str, capsys: pytest.CaptureFixture[str]) -> None:
        """A profile written from a vendor's public register map passes `profile check`, and cites its manual."""
        path = Path(__file__).resolve().parents[1] / "config" / "profiles" / f"{name}.toml"
        assert main(["profile", "check", str(path)]) == 0
        assert capsys.readouterr().out.startswith(f"{name}: a ")
        assert "# Source: " in path.read_text()

    def test_the_reads_sit_where_the_manuals_put_them(self, capsys: pytest.CaptureFixture[str]) -> None:
        """iSMA: four u32 counters from holding register 52; KELLER: P1 and T as i32 from 0x0012; APG: input
        registers 299..301 (30300..30302 in the manual's 1-based numbering)."""
        shipped = Path(__file__).resolve().parents[1] / "config" / "profiles"
        expected = {
            "isma-sfar-1m-4di-m": "fc3 @0x0034 x8",
            "keller-series-30": "fc3 @0x0012 x6",
            "apg-mpx": "fc4 @0x012B x3",
        }
        for name, reads in expected.items():
            assert main(["profile", "check", str(shipped / f"{name}.toml")]) == 0
            assert capsys.readouterr().out.splitlines()[1].endswith(f": {reads}"), name

    def test_one_point_and_one_request_read_in_the_singular(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The iSMA profile has one point read in one request: "1 point", "1 request", never "1 points"."""
        shipped = Path(__file__).resolve().parents[1] / "config" / "profiles"
        assert main(["profile", "check", str(shipped / "isma-sfar-1m-4di-m.toml")]) == 0
        first, second = capsys.readouterr().out.splitlines()[:2]
        assert first.endswith(", 1 point") and second.startswith("a poll of all nozzles takes 1 request: ")
        assert main(["profile", "check", str(shipped / "apg-mpx.toml")]) == 0
        assert capsys.readouterr().out.splitlines()[0].endswith(", 3 points")


class TestProfileList:
    def test_lists_shipped_and_local_profiles_with_their_descriptions(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Local profiles come first and hide a shipped one of the same name; a broken file is listed with why."""
        shipped = Path(__file__).resolve().parents[1] / "config" / "profiles"
        local = tmp_path / "profiles"
        local.mkdir()
        (local / "keller-series-30.toml").write_text((shipped / "keller-series-30.toml").read_text())
        (local / "broken.toml").write_text("[profile]\nname = 'broken'\n")
        assert main(["profile", "list", "--profile-dir", str(local), "--json"]) == 2
        listing = {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)}
        assert {"sim-pump-controller", "sim-pulse-counter", *COMMERCIAL} <= set(listing)
        assert listing["keller-series-30"]["path"] == str(local / "keller-series-30.toml")
        assert listing["keller-series-30"]["hides"] == [str(shipped / "keller-series-30.toml")]
        assert listing["apg-mpx"]["kind"] == "level_probe" and "30300" in listing["apg-mpx"]["description"]
        assert listing["broken"]["problem"]
        assert main(["profile", "list"]) == 0
        text = capsys.readouterr().out
        assert "sim-pump-controller          pump_controller  station-agent simulated controller, map v1" in text
