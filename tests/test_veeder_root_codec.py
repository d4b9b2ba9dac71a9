"""The Veeder-Root TLS codec against frames built by hand from the serial interface manual's layouts.

Every frame here is written out field by field as the manual draws it, its checksum worked out in the test
(`seal`: the 16-bit two's complement of the byte sum, SOH and `&&` included), never by the codec; the float
fields are IEEE-754 singles written as hex with their value beside them. The simulated gauge encodes with the
same codec, so these hand-made frames are what keeps a shared bug from hiding on both sides.
"""

from __future__ import annotations

import struct
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import DeviceValueFault, FieldCorrupt, FieldFrameError, FieldLinkError, FieldRefused, FieldTimeout
from drivers.readings import DeliveryReport, TankGaugeReading, TankReading
from drivers.veeder_root import (
    ERROR_ANSWER,
    Command,
    TlsChecksumError,
    TlsCommandRefused,
    TlsError,
    TlsFrameError,
    TlsLinkError,
    TlsTimeout,
)
from drivers.veeder_root.client import TlsClient
from drivers.veeder_root.fields import FieldReader, encode_float
from drivers.veeder_root.frame import (
    checksum,
    command_length,
    decode_command,
    decode_response,
    encode_command,
    encode_response,
)
from drivers.veeder_root.reports import (
    ALARMS,
    DELIVERIES,
    INVENTORY,
    AlarmReport,
    DeliveryHistory,
    InventoryReport,
    TankAlarm,
    TankInventory,
    TankStatus,
    decode_alarms,
    decode_deliveries,
    decode_inventory,
    encode_inventory,
)
from drivers.veeder_root.units import delivery_reports, gauge_reading, tank_reading

SOH, ETX = "\x01", "\x03"
NOW = "2603011415"  # 2026-03-01 14:15
I201 = Command("i201")


def seal(body: str) -> bytes:
    """`body` (from SOH through `&&`) with its checksum and ETX, the checksum worked out here."""
    total = sum(body.encode("ascii"))
    return (body + f"{(0x10000 - total % 0x10000) % 0x10000:04X}" + ETX).encode("ascii")


# Floats as the manual writes them: eight hex digits of an IEEE-754 single, most significant first.
F_15000 = "466A6000"  # 15000.0
F_14936 = "46696000"  # 14936.0
F_14000 = "465AC000"  # 14000.0
F_1234_5 = "449A5000"  # 1234.5
F_20 = "41A00000"  # 20.0
F_16_5 = "41840000"  # 16.5
F_60 = "42700000"  # 60.0
F_12000 = "463B8000"  # 12000.0
F_11950 = "463AB800"  # 11950.0
F_20500 = "46A02800"  # 20500.0
F_20400 = "469F6000"  # 20400.0
F_18_25 = "41920000"  # 18.25
F_21_5 = "41AC0000"  # 21.5
F_980 = "44750000"  # 980.0
F_1500 = "44BB8000"  # 1500.0
F_25 = "41C80000"  # 25.0

TANK_1 = "01" + "1" + "0001" + "07" + F_15000 + F_14936 + F_14000 + F_1234_5 + F_20 + F_16_5 + F_60


class TestEnvelope:
    def test_checksum_worked_by_hand(self) -> None:
        """SOH (1) + "i20100" (348) + "2603011415" (503) + "&&" (76) = 928 = 0x03A0; 0x10000 - 0x03A0 = 0xFC60."""
        body = b"\x01i201002603011415&&"
        assert sum(body) == 0x03A0
        assert checksum(body) == 0xFC60
        assert decode_response(body + b"FC60\x03", I201) == b"2603011415"

    def test_sum_and_checksum_are_zero_modulo_65536(self) -> None:
        """The manual's integrity check: the characters plus the checksum add up to 0 (mod 65536)."""
        frame = seal(SOH + "i20100" + NOW + TANK_1 + "&&")
        assert (sum(frame[:-5]) + int(frame[-5:-1], 16)) % 0x10000 == 0

    def test_the_error_answer_is_the_manuals(self) -> None:
        """An unknown command is answered <SOH>9999FF1B<ETX>: FF1B is the checksum of SOH 9999 (229 = 0xE5)."""
        assert ERROR_ANSWER == b"\x019999FF1B\x03"
        with pytest.raises(TlsCommandRefused, match=r"'i20100' \(answered 9999\)"):
            decode_response(b"\x019999FF1B\x03", Command("i201", 0))

    def test_a_damaged_error_answer_is_a_checksum_error(self) -> None:
        with pytest.raises(TlsChecksumError, match="FF1C != computed FF1B"):
            decode_response(b"\x019999FF1C\x03", I201)

    def test_commands(self) -> None:
        """SOH, the six-character security code if the gauge has one, function code and two-digit tank."""
        assert encode_command(Command("i201", 0)) == b"\x01i20100"
        assert encode_command(Command("i202", 3)) == b"\x01i20203"
        assert encode_command(Command("i205", 12), "ABC123") == b"\x01ABC123i20512"
        assert command_length() == 7
        assert command_length("ABC123") == 13

    @pytest.mark.parametrize(
        ("function", "tank", "message"),
        [
            ("I201", 0, "computer-format function code"),
            ("i20", 0, "computer-format function code"),
            ("i201", 100, "outside 0..99"),
        ],
    )
    def test_bad_commands_are_refused_with_the_fix(self, function: str, tank: int, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            Command(function, tank)

    def test_security_code_must_be_six_printable_characters(self) -> None:
        with pytest.raises(ValueError, match="exactly 6 printable"):
            encode_command(I201, "12345")

    def test_a_gauge_reads_commands(self) -> None:
        """The gauge's side: a wrong or missing security code means silence (None), per the manual."""
        assert decode_command(b"\x01i20507") == Command("i205", 7)
        assert decode_command(b"\x01SECRETi20100", "SECRET") == Command("i201", 0)
        assert decode_command(b"\x01WRONG!i20100", "SECRET") is None
        with pytest.raises(TlsFrameError, match="expected SOH and 6 characters"):
            decode_command(b"\x01i201")

    def test_parity_bits_are_cleared_before_the_checksum(self) -> None:
        """A 7-bit gauge with parity read through an 8-bit port: bit 7 of each character is dropped."""
        frame = seal(SOH + "i20100" + NOW + "&&")
        with_parity = bytes(byte | 0x80 if index % 2 else byte for index, byte in enumerate(frame))
        assert decode_response(with_parity, I201) == NOW.encode()


class TestErrorKinds:
    @pytest.mark.parametrize(
        ("error", "kind"),
        [
            (TlsTimeout, FieldTimeout),
            (TlsChecksumError, FieldCorrupt),
            (TlsFrameError, FieldFrameError),
            (TlsLinkError, FieldLinkError),
            (TlsCommandRefused, FieldRefused),
        ],
    )
    def test_each_error_is_its_field_kind(self, error: type[TlsError], kind: type[Exception]) -> None:
        """A poller counts gauge failures as it counts Modbus ones: by the protocol-neutral kind."""
        assert issubclass(error, TlsError)
        assert issubclass(error, kind)


class TestBrokenAnswers:
    FRAME = seal(SOH + "i20100" + NOW + TANK_1 + "&&")

    def test_a_changed_character_is_a_checksum_error(self) -> None:
        damaged = self.FRAME[:20] + b"7" + self.FRAME[21:]
        assert damaged != self.FRAME
        with pytest.raises(TlsChecksumError, match="i20100: checksum"):
            decode_response(damaged, I201)

    @pytest.mark.parametrize("cut", [1, 3, 6, 40])
    def test_a_truncated_answer_is_a_frame_error(self, cut: int) -> None:
        with pytest.raises(TlsFrameError):
            decode_response(self.FRAME[:-cut], I201)

    def test_a_garbled_trailer_is_a_frame_error(self) -> None:
        garbled = self.FRAME.replace(b"&&", b"&#")
        with pytest.raises(TlsFrameError, match="not '&&', four hex digits and ETX"):
            decode_response(garbled, I201)

    def test_an_answer_to_another_command_is_a_frame_error(self) -> None:
        with pytest.raises(TlsFrameError, match="the answer is to 'i20100'"):
            decode_response(self.FRAME, Command("i201", 1))

    def test_data_cut_inside_a_float_names_the_field(self) -> None:
        """A whole frame (checksum right) whose data ends inside a field: cut short, with the field's name."""
        frame = seal(SOH + "i20100" + NOW + TANK_1[:-3] + "&&")
        with pytest.raises(TlsFrameError, match=r"tank 1 inventory field 7.*cut short"):
            decode_inventory(decode_response(frame, I201))

    def test_a_float_that_is_not_hex_names_the_field(self) -> None:
        data = (NOW + TANK_1.replace(F_1234_5, "449A50ZZ")).encode()
        with pytest.raises(TlsFrameError, match="tank 1 inventory field 4 is '449A50ZZ'"):
            decode_inventory(data)

    def test_a_bad_date_is_a_frame_error(self) -> None:
        with pytest.raises(TlsFrameError, match="date and time is '2613011415'"):
            decode_inventory(b"2613011415")


class TestInventory:
    def test_one_tank(self) -> None:
        """i201: TT p ssss NN and seven floats: volume, TC volume, ullage, height, water, temperature, water
        volume; litres, mm and degC become mL, micrometres and 0.01 degC."""
        report = decode_inventory(decode_response(seal(SOH + "i20100" + NOW + TANK_1 + "&&"), I201))
        assert report.at == datetime(2026, 3, 1, 14, 15)
        assert tank_reading(report.tanks[0]) == TankReading(
            tank=1,
            volume_ml=15_000_000,
            height_um=1_234_500,
            water_um=20_000,
            temperature_cC=1650,
            ullage_ml=14_000_000,
            tc_volume_ml=14_936_000,
            water_volume_ml=60_000,
            delivery_in_progress=True,
        )

    def test_status_bits(self) -> None:
        """Bit 1 (LSB) delivery in progress, bit 2 leak test in progress, bit 3 invalid fuel height."""
        data = (NOW + TANK_1.replace("10001", "10006", 1)).encode()
        reading = tank_reading(decode_inventory(data).tanks[0])
        assert (reading.delivery_in_progress, reading.leak_test_in_progress, reading.invalid_height) == (
            False,
            True,
            True,
        )

    def test_older_consoles_send_six_fields(self) -> None:
        tank = "02" + "2" + "0000" + "06" + F_12000 + F_11950 + F_20500 + F_980 + F_20 + F_18_25
        (reading,) = decode_inventory((NOW + tank).encode()).tanks
        assert (reading.tank, reading.product, reading.volume, reading.water_volume) == (2, "2", 12000.0, None)

    def test_question_marks_mean_no_valid_data(self) -> None:
        """A tank the gauge has no data for is filled with '?': listed as unavailable, not as zeros."""
        dead_tank = "03" + "1" + "0000" + "07" + "?" * 56
        report = decode_inventory((NOW + TANK_1 + dead_tank).encode())
        assert [tank.tank for tank in report.tanks] == [1]
        assert report.unavailable == (3,)
        assert [tank.tank for tank in gauge_reading(report).tanks] == [1]

    def test_too_few_fields_is_a_frame_error(self) -> None:
        with pytest.raises(TlsFrameError, match="field count is 5, the layout has at least 6"):
            decode_inventory((NOW + "01" + "1" + "0000" + "05" + F_20 * 5).encode())

    def test_only_the_tanks_asked_for(self) -> None:
        tank_2 = "02" + "2" + "0000" + "06" + F_12000 + F_11950 + F_20500 + F_980 + F_20 + F_18_25
        reading = gauge_reading(decode_inventory((NOW + TANK_1 + tank_2).encode()), tanks={2})
        assert [tank.tank for tank in reading.tanks] == [2]


class TestDeliveries:
    DELIVERY = (
        "2603011405"  # start 2026-03-01 14:05
        + "2603011450"  # end 14:50
        + "0A"  # ten floats follow
        + F_12000  # start volume
        + F_11950  # start TC volume
        + F_20  # start water
        + F_16_5  # start temperature
        + F_20500  # end volume
        + F_20400  # end TC volume
        + F_20  # end water
        + F_18_25  # end temperature
        + F_980  # start height
        + F_1500  # end height
    )

    def test_one_delivery(self) -> None:
        """i202: TT p dd, then per delivery start, end, NN and ten floats."""
        frame = seal(SOH + "i20200" + NOW + "01" + "1" + "01" + self.DELIVERY + "02" + "2" + "00" + "&&")
        history = decode_deliveries(decode_response(frame, Command("i202")))
        assert [len(tank.deliveries) for tank in history.tanks] == [1, 0]
        assert delivery_reports(history) == (
            DeliveryReport(
                tank=1,
                start_ts="2026-03-01T14:05:00.000Z",
                end_ts="2026-03-01T14:50:00.000Z",
                start_volume_ml=12_000_000,
                end_volume_ml=20_500_000,
                start_temperature_cC=1650,
                end_temperature_cC=1825,
                start_height_um=980_000,
                end_height_um=1_500_000,
                start_water_um=20_000,
                end_water_um=20_000,
            ),
        )

    def test_times_in_the_gauges_zone_become_utc(self) -> None:
        """A gauge set to Beijing time reports 14:05; the contract's time is 06:05 UTC."""
        history = decode_deliveries((NOW + "01" + "1" + "01" + self.DELIVERY).encode())
        (report,) = delivery_reports(history, ZoneInfo("Asia/Shanghai"))
        assert (report.start_ts, report.end_ts) == ("2026-03-01T06:05:00.000Z", "2026-03-01T06:50:00.000Z")

    def test_a_delivery_count_beyond_the_data_is_a_frame_error(self) -> None:
        with pytest.raises(TlsFrameError, match=r"tank 1 delivery start.*cut short"):
            decode_deliveries((NOW + "01" + "1" + "02" + self.DELIVERY).encode())


class TestAlarms:
    def test_active_alarms(self) -> None:
        """i205: TT nn (hex count) and nn two-digit alarm types; 03 high water, 04 overfill."""
        frame = seal(SOH + "i20500" + NOW + "01" + "02" + "03" + "04" + "02" + "00" + "&&")
        report = decode_alarms(decode_response(frame, Command("i205")))
        assert report == AlarmReport(datetime(2026, 3, 1, 14, 15), (TankAlarm(1, 3), TankAlarm(1, 4)), (1, 2))
        inventory = InventoryReport(report.at, ())
        assert gauge_reading(inventory, alarms=report).alarms == (
            "tank 1: high water alarm (03)",
            "tank 1: overfill alarm (04)",
        )


float32s = st.floats(width=32, allow_nan=False, allow_infinity=False)


class TestRoundTrips:
    @given(float32s)
    def test_float_fields(self, value: float) -> None:
        """Every finite single survives eight hex digits, bit for bit (signed zero included)."""
        text = encode_float(value)
        assert len(text) == 8
        decoded = FieldReader(text.encode(), "test").single("value")
        assert decoded is not None
        assert struct.pack(">f", decoded) == struct.pack(">f", value)

    @given(st.binary(max_size=300).map(lambda raw: bytes(0x20 + byte % 0x5F for byte in raw).replace(b"&", b"+")))
    def test_any_printable_data_survives_the_envelope(self, data: bytes) -> None:
        frame = encode_response(I201, data)
        assert (sum(frame[:-5]) + int(frame[-5:-1], 16)) % 0x10000 == 0
        assert decode_response(frame, I201) == data

    @given(
        st.lists(
            st.tuples(st.integers(1, 99), st.integers(0, 7), st.lists(float32s, min_size=7, max_size=7)),
            max_size=5,
            unique_by=lambda tank: tank[0],
        )
    )
    def test_inventories(self, tanks: list[tuple[int, int, list[float]]]) -> None:
        report = InventoryReport(
            datetime(2026, 3, 1, 14, 15),
            tuple(TankInventory(number, "1", TankStatus(bits), *values) for number, bits, values in tanks),
        )
        assert decode_inventory(encode_inventory(report)) == report


class TestImplausibleGaugeValues:
    @pytest.mark.parametrize(
        ("field", "reason"),
        [("7FC00000", "not a number (NaN)"), ("7F800000", "infinite"), ("7F7FFFFF", "is outside the plausible")],
    )
    def test_a_tank_with_nan_infinity_or_a_huge_volume_is_a_value_fault_and_the_other_tank_goes_on(
        self, field: str, reason: str
    ) -> None:
        """A probe in fault on tank 2 (its volume field NaN, infinity or 3.4e38 L): tank 1 is read as usual and
        carried as `partial`; the fault names tank 2's volume and the field's eight hex digits."""
        broken = "02" + "1" + "0000" + "07" + field + F_14936 + F_14000 + F_1234_5 + F_20 + F_16_5 + F_60
        with pytest.raises(DeviceValueFault) as raised:
            gauge_reading(decode_inventory((NOW + TANK_1 + broken).encode()))
        (fault,) = raised.value.faults
        assert (fault.point, fault.register, fault.raw_hex) == ("tank 2 volume", None, field)
        assert reason in fault.reason
        partial = raised.value.partial
        assert isinstance(partial, TankGaugeReading) and [tank.tank for tank in partial.tanks] == [1]

    def test_a_delivery_with_a_nan_field_is_left_out_and_named(self) -> None:
        """An i202 delivery whose end volume is NaN is not booked; the fault says which."""
        floats = [F_1500, F_1500, F_20, F_16_5, "7FC00000", F_12000, F_20, F_18_25, F_980, F_1234_5]
        delivery = "2603011200" + "2603011230" + "0A" + "".join(floats)
        history = decode_deliveries((NOW + "01" + "1" + "01" + delivery).encode())
        with pytest.raises(DeviceValueFault) as raised:
            gauge_reading(decode_inventory((NOW + TANK_1).encode()), history)
        (fault,) = raised.value.faults
        assert fault.point == "tank 1 delivery 2603011200 end volume" and fault.raw_hex == "7FC00000"
        assert isinstance(raised.value.partial, TankGaugeReading) and raised.value.partial.deliveries == ()


class TestHostileAnswers:
    @given(st.binary(max_size=600))
    def test_arbitrary_bytes_raise_only_tls_errors(self, frame: bytes) -> None:
        """Whatever a gauge sends as an answer, the codec, the report decoders and the unit conversion raise only
        their own error types (a TlsError, or DeviceValueFault for values that cannot be true)."""
        for function, decode in (
            (INVENTORY, decode_inventory),
            (DELIVERIES, decode_deliveries),
            (ALARMS, decode_alarms),
        ):
            try:
                data = decode_response(frame, Command(function))
                report = decode(data)
                if isinstance(report, InventoryReport):
                    gauge_reading(report)
            except (TlsError, DeviceValueFault):
                pass

    @given(st.text(alphabet="0123456789ABCDEF?", max_size=400))
    def test_arbitrary_report_data_raises_only_tls_errors(self, body: str) -> None:
        """Report data that passes the envelope (any hex-looking text after a good date) never raises anything
        but TlsFrameError or DeviceValueFault."""
        for decode in (decode_inventory, decode_deliveries, decode_alarms):
            try:
                report = decode((NOW + body).encode())
                if isinstance(report, InventoryReport):
                    gauge_reading(report)
                elif isinstance(report, DeliveryHistory):
                    gauge_reading(decode_inventory(NOW.encode()), report)
            except (TlsFrameError, DeviceValueFault):
                pass

    def test_an_answer_longer_than_the_cap_is_refused_before_it_grows(self) -> None:
        """A gauge that sends without end (no ETX) is cut off at max_answer_bytes, not read into memory forever."""

        class Endless(TlsClient):
            sent = 0

            def _exchange(self, frame: bytes, command: Command) -> bytes:
                def read(_timeout_s: float) -> bytes:
                    self.sent += 4096
                    return b"A" * 4096

                return self._read_answer(read, command)

            def _disconnect(self) -> None:
                pass

        client = Endless(1.0, max_answer_bytes=10_000)
        with pytest.raises(TlsFrameError, match="longer than 10000 bytes"):
            client.request(INVENTORY)
        assert client.sent <= 10_000 + 4096
