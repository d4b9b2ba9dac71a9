"""The HJ 212 codec (drivers/hj212) and the record-to-frame mapping, without sockets.

The codec is shared by the agent's client and the reference receiver, so a bug in it would hide on both sides:
its CRC is pinned here by a checksum worked out by hand and by frames published outside this project.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.ledger.outbox import StoredRecord
from agent.uplink.hj212_packets import FrameMaker, UnsendableRecord
from agent.uplink.hj212_settings import Hj212Section
from drivers.hj212.errors import Hj212CrcError, Hj212Error, Hj212FrameError, Hj212LengthError
from drivers.hj212.frame import FrameSplitter, crc16, decode_frame, encode_frame
from drivers.hj212.packet import (
    Flag,
    Packet,
    QnRtn,
    data_response,
    decode_packet,
    encode_packet,
    request_response,
)
from drivers.hj212.profile_validation import CityProfileError, load_city_profile

CHONGQING = Path(__file__).resolve().parent.parent / "config" / "hj212" / "chongqing.toml"
SHANGHAI = ZoneInfo("Asia/Shanghai")

# The standard's own example (HJ 212-2017, annex of communication examples: CN=1062, "set the real-time data
# interval"), as quoted verbatim in many independent HJ 212 implementations.
STANDARD_EXAMPLE = (
    b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;"
    b"CP=&&RtdInterval=30&&1C80\r\n"
)
# A frame captured from an air-quality data logger's debug log (CN=2011 real-time data), published in that
# logger's source repository: another implementation's CRC over a data CP.
LOGGER_FRAME = (
    b"##0116QN=20220814021304000;ST=22;CN=2011;PW=123456;MN=;Flag=5;"
    b"CP=&&DataTime=20220814021304;a50001-Rtd=0.00,a50001-Flag=B&&06C0\r\n"
)


class TestCrc:
    def test_a_checksum_worked_out_by_hand(self) -> None:
        """The CRC of 'AB', worked bit by bit below, is 0xD581, and the frame around 'AB' carries it."""
        # start 0xFFFF; 'A' = 0x41: crc = 0xFFFF >> 8 ^ 0x41 = 0x00FF ^ 0x41 = 0x00BE
        # eight rounds (shift right; if the bit shifted out was 1, XOR 0xA001):
        #   0x00BE -0-> 0x005F -1-> 0xA02E -0-> 0x5017 -1-> 0x880A -0-> 0x4405 -1-> 0x8203 -1-> 0xE100 -0-> 0x7080
        # 'B' = 0x42: crc = 0x7080 >> 8 ^ 0x42 = 0x0070 ^ 0x42 = 0x0032
        #   0x0032 -0-> 0x0019 -1-> 0xA00D -1-> 0xF007 -1-> 0xD802 -0-> 0x6C01 -1-> 0x9601 -1-> 0xEB01 -1-> 0xD581
        assert crc16(b"AB") == 0xD581
        assert encode_frame(b"AB") == b"##0002ABD581\r\n"

    def test_it_is_not_the_modbus_crc(self) -> None:
        """Modbus XORs each byte into the low byte of the register (0xFFFF ^ 0x41 = 0xFFBE): another checksum."""
        modbus = 0xFFFF
        for byte in b"AB":
            modbus ^= byte
            for _ in range(8):
                modbus = (modbus >> 1) ^ 0xA001 if modbus & 1 else modbus >> 1
        assert modbus != crc16(b"AB")

    @pytest.mark.parametrize("frame", [STANDARD_EXAMPLE, LOGGER_FRAME], ids=["standard", "logger"])
    def test_published_frames_check_out(self, frame: bytes) -> None:
        """Frames made by others decode, and encoding their data segment gives back the very same bytes."""
        data = decode_frame(frame)
        assert encode_frame(data) == frame

    def test_the_standard_example_decodes_field_by_field(self) -> None:
        packet = decode_packet(decode_frame(STANDARD_EXAMPLE))
        assert packet == Packet(
            qn="20160801085857223",
            st="32",
            cn="1062",
            pw="100000",
            mn="010000A8900016F000169DC0",
            flag=Flag(version=1, ack=True),
            cp=((("RtdInterval", "30"),),),
        )
        assert packet.flag is not None and packet.flag.standard == "2017"

    def test_lowercase_crc_digits_are_accepted(self) -> None:
        assert decode_frame(STANDARD_EXAMPLE.replace(b"1C80", b"1c80")) == decode_frame(STANDARD_EXAMPLE)


class TestFlag:
    @pytest.mark.parametrize(
        ("standard", "ack", "value"),
        [("2017", False, 4), ("2017", True, 5), ("2025", False, 8), ("2025", True, 9)],
    )
    def test_editions_and_the_ack_bit(self, standard: str, ack: bool, value: int) -> None:
        """V5..V0 hold the edition (2017 = 1, 2025 = 2), bit 0 (A) asks for an answer, bit 1 (D) is subpackaging."""
        flag = Flag.for_standard(standard, ack=ack)
        assert flag.value == value
        assert Flag.from_value(value) == flag
        assert flag.standard == standard

    def test_the_subpackage_bit(self) -> None:
        assert Flag.from_value(0b00000111) == Flag(version=1, subpackaged=True, ack=True)

    def test_an_unknown_edition_is_refused(self) -> None:
        with pytest.raises(ValueError, match=r"unknown HJ 212 edition '2019'; known: 2005, 2017, 2025"):
            Flag.for_standard("2019", ack=True)


class TestMalformedFrames:
    def test_a_changed_byte_fails_the_crc(self) -> None:
        damaged = STANDARD_EXAMPLE.replace(b"RtdInterval=30", b"RtdInterval=31")
        with pytest.raises(Hj212CrcError, match=r"CRC 1C80 does not match the data segment's [0-9A-F]{4}"):
            decode_frame(damaged)

    def test_a_length_that_disagrees(self) -> None:
        with pytest.raises(Hj212LengthError, match=r"length field says 100 bytes but 101 lie between"):
            decode_frame(STANDARD_EXAMPLE.replace(b"##0101", b"##0100"))

    def test_a_length_beyond_the_standard(self) -> None:
        data = b"x" * 1025
        frame = b"##1025" + data + b"%04X" % crc16(data) + b"\r\n"
        with pytest.raises(Hj212LengthError, match=r"length field says 1025 bytes; HJ 212 allows at most 1024"):
            decode_frame(frame)
        with pytest.raises(ValueError, match=r"data segment of 1025 bytes is longer than HJ 212's 1024"):
            encode_frame(data)

    def test_a_length_that_is_not_digits(self) -> None:
        with pytest.raises(Hj212LengthError, match=r"length field b'01a1' is not four decimal digits"):
            decode_frame(STANDARD_EXAMPLE.replace(b"##0101", b"##01a1"))

    def test_a_frame_without_crlf(self) -> None:
        with pytest.raises(Hj212FrameError, match=r"does not run from '##' to CR LF"):
            decode_frame(STANDARD_EXAMPLE[:-2])

    @pytest.mark.parametrize(
        ("segment", "message"),
        [
            (b"QN=20160801085857223;ST=32;CN=1062;PW=100000;Flag=5;CP=&&&&", r"data segment lacks MN"),
            (b"QN=20160801085857223;ST=32;PW=100000;MN=1;Flag=5;CP=&&&&", r"data segment lacks CN"),
            (b"QN=2016080108585722;ST=32;CN=1062;PW=1;MN=1;Flag=5;CP=&&&&", r"QN='2016080108585722' is not 17 digits"),
            (b"QN=20160801085857223;ST=32;CN=10622;PW=1;MN=1;Flag=5;CP=&&&&", r"CN='10622' is not four digits"),
            (b"QN=20160801085857223;ST=32;CN=1062;PW=1;MN=1;Flag=x;CP=&&&&", r"Flag='x' is not a decimal number"),
            (b"QN=20160801085857223;ST=32;CN=1062;PW=1;MN=1;Flag=256;CP=&&&&", r"Flag 256 is not a byte"),
            (b"QN=20160801085857223;ST=32;CN=1062;PW=1;MN=1;Flag=5", r"has no CP=&&...&& at its end"),
            (b"QN=20160801085857223;ST=32;CN=1062;PW=1;MN=1;Flag=5;CP=&&a=1;b&&", r"CP item 'b' is not key=value"),
            (b"QN=20160801085857223;ST=32;CN=1062;XY=1;PW=1;MN=1;CP=&&&&", r"unknown header field 'XY'"),
            (b"ST=32;ST=32;CN=1062;PW=1;MN=1;CP=&&&&", r"header field ST appears twice"),
        ],
    )
    def test_a_malformed_data_segment(self, segment: bytes, message: str) -> None:
        """Each field that is missing or malformed is named in the error, inside a frame whose CRC is right."""
        with pytest.raises(Hj212FrameError, match=message):
            decode_packet(decode_frame(encode_frame(segment)))

    def test_every_error_is_an_hj212_error_with_a_reason(self) -> None:
        assert {Hj212CrcError.reason, Hj212LengthError.reason, Hj212FrameError.reason} == {
            "bad_crc",
            "bad_length",
            "malformed",
        }
        assert issubclass(Hj212CrcError, Hj212Error)


class TestPackets:
    def test_a_packet_round_trips(self) -> None:
        packet = Packet(
            "20261127161502113",
            "31",
            "3020",
            "123456",
            "MN01",
            Flag.for_standard("2025", ack=True),
            ((("DataTime", "20261127161502"),), (("i41020-Info", "1.05"),)),
        )
        data = encode_packet(packet)
        assert data == (
            b"QN=20261127161502113;ST=31;CN=3020;PW=123456;MN=MN01;Flag=9;"
            b"CP=&&DataTime=20261127161502;i41020-Info=1.05&&"
        )
        assert decode_packet(data) == packet

    def test_separators_in_values_are_refused(self) -> None:
        packet = Packet(None, "31", "3020", "1", "1", None, ((("i41019-Info", "A;B"),),))
        with pytest.raises(ValueError, match=r"keys and values may not hold ; , = &"):
            encode_packet(packet)

    def test_the_platform_answers(self) -> None:
        """9014 echoes the upload's QN with ST=91 and no answer wanted; 9011 carries the QnRtn verdict."""
        upload = decode_packet(decode_frame(STANDARD_EXAMPLE))
        assert encode_packet(data_response(upload, 1)) == (
            b"QN=20160801085857223;ST=91;CN=9014;PW=100000;MN=010000A8900016F000169DC0;Flag=4;CP=&&&&"
        )
        refusal = decode_packet(encode_packet(request_response(upload, QnRtn.BAD_CRC, 2)))
        assert (refusal.cn, refusal.cp_items(), refusal.flag) == ("9011", {"QnRtn": "9"}, Flag(2))

    @given(
        st.lists(
            st.lists(
                st.tuples(
                    st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=12),
                    st.text(string.ascii_letters + string.digits + ".-", max_size=12),
                ),
                min_size=1,
                max_size=3,
            ).map(tuple),
            max_size=6,
        ).map(tuple)
    )
    def test_any_cp_round_trips_through_a_frame(self, cp: tuple[tuple[tuple[str, str], ...], ...]) -> None:
        packet = Packet("20260101000000000", "31", "3020", "123456", "1", Flag(1, ack=True), cp)
        assert decode_packet(decode_frame(encode_frame(encode_packet(packet)))) == packet


class TestSplitter:
    def test_frames_cut_from_a_stream_byte_by_byte(self) -> None:
        splitter = FrameSplitter()
        stream = b"noise" + STANDARD_EXAMPLE + LOGGER_FRAME
        frames = [frame for byte in stream for frame in splitter.feed(bytes([byte]))]
        assert frames == [STANDARD_EXAMPLE, LOGGER_FRAME]
        assert splitter.discarded == len(b"noise")

    def test_a_frame_with_a_lying_length_does_not_take_the_next_one_down(self) -> None:
        """Cut at its own CR LF, the liar is rejected for its length and the next frame still decodes."""
        liar = STANDARD_EXAMPLE.replace(b"##0101", b"##0150")
        frames = FrameSplitter().feed(liar + LOGGER_FRAME)
        assert frames == [liar, LOGGER_FRAME]
        with pytest.raises(Hj212LengthError):
            decode_frame(frames[0])
        decode_frame(frames[1])

    def test_garbage_without_an_end_is_handed_out_bounded(self) -> None:
        splitter = FrameSplitter()
        frames = splitter.feed(b"##01" + b"z" * 7000)
        # The bound is the longest encrypted segment as sent (SM4 writes each byte as 0xNN,), six times 1,024.
        assert len(frames) == 1 and len(frames[0]) == len("##0000") + 6 * 1024 + len("CRC4\r\n")
        with pytest.raises(Hj212Error):
            decode_frame(frames[0])


def record(seq: int, record_type: str, ts: str, body: dict[str, object]) -> StoredRecord:
    document = {"v": 1, "station": "S1", "seq": seq, "ts": ts, "type": record_type, "body": body, "prev": "0" * 64}
    return StoredRecord(seq, "kid", json.dumps(document, sort_keys=True).encode(), b"sig")


def maker(version: str = "2017") -> FrameMaker:
    mn = "0123456789ABCDEF01234567" if version == "2025" else "CQ0001"
    settings = Hj212Section(port=1, pw="123456", mn=mn, profile=CHONGQING, version=version)
    return FrameMaker(settings, load_city_profile(CHONGQING), SHANGHAI)


def cp_of(frame: bytes) -> dict[str, str]:
    return decode_packet(decode_frame(frame)).cp_items()


class TestRecordFrames:
    def test_a_fuelling_becomes_its_a_l_in_local_time(self) -> None:
        """Chongqing: CN=3020, the fuelling's end in Beijing time, nozzle and A/L (1050 per-mille -> 1.05)."""
        out = maker().frame_for(
            record(
                7,
                "transaction",
                "2026-11-27T08:15:02.113Z",
                {"nozzle": "N3", "end": "2026-11-27T08:15:01.000Z", "al_permille": 1050},
            )
        )
        assert out is not None
        packet = decode_packet(decode_frame(out.frame))
        assert (out.seq, out.qn, packet.st, packet.cn, packet.flag) == (
            7,
            "20261127161502007",  # the record's second in Beijing time, its seq as the milliseconds
            "31",
            "3020",
            Flag(1, ack=True),
        )
        assert packet.cp_items() == {"DataTime": "20261127161501", "i41019-Info": "N3", "i41020-Info": "1.05"}

    @pytest.mark.parametrize(("permille", "text"), [(1045, "1.04"), (1055, "1.06"), (998, "1.00"), (0, "0.00")])
    def test_a_l_is_rounded_half_even(self, permille: int, text: str) -> None:
        body = {"nozzle": "N1", "end": "2026-11-27T00:00:00.000Z", "al_permille": permille}
        out = maker().frame_for(record(1, "transaction", "2026-11-27T00:00:00.000Z", body))
        assert out is not None and cp_of(out.frame)["i41020-Info"] == text

    def test_a_vapour_day_goes_out_at_local_midnight_with_its_verdict(self) -> None:
        body = {"nozzle": "N1", "day": "2026-11-26", "al_mean_permille": 1103, "verdict": "warning"}
        out = maker("2025").frame_for(record(3, "vapour", "2026-11-26T16:00:00.500Z", body))
        assert out is not None
        packet = decode_packet(decode_frame(out.frame))
        assert packet.flag == Flag(2, ack=True) and packet.mn == "0123456789ABCDEF01234567"
        assert packet.cp_items() == {
            "DataTime": "20261126000000",
            "i41019-Info": "N1",
            "i41020-Info": "1.10",
            "i41008-Info": "1",
        }

    def test_a_day_without_fuellings_says_n_and_leaves_the_a_l_out(self) -> None:
        body = {"nozzle": "N1", "day": "2026-11-26", "al_mean_permille": None, "verdict": "inconclusive"}
        out = maker().frame_for(record(3, "vapour", "2026-11-26T16:00:00.500Z", body))
        assert out is not None
        assert cp_of(out.frame) == {"DataTime": "20261126000000", "i41019-Info": "N1", "i41008-Info": "N"}

    def test_tank_pressure_intervals_go_out_and_day_summaries_do_not(self) -> None:
        interval = {"device": "P1", "period": "interval", "end": "2026-11-27T02:00:00.000Z", "mean_pa": -120}
        out = maker().frame_for(record(4, "tank_pressure", "2026-11-27T02:00:00.010Z", interval))
        assert out is not None and cp_of(out.frame) == {"DataTime": "20261127100000", "i41028-Info": "-120"}
        day = {**interval, "period": "day"}
        assert maker().frame_for(record(5, "tank_pressure", "2026-11-27T02:00:00.010Z", day)) is None

    def test_records_the_city_does_not_take_make_no_frame(self) -> None:
        assert maker().frame_for(record(1, "heartbeat", "2026-11-27T02:00:00.010Z", {"uptime_s": 1})) is None

    def test_a_fuelling_without_a_l_is_unsendable(self) -> None:
        body = {"nozzle": "N1", "end": "2026-11-27T00:00:00.000Z", "al_permille": None}
        with pytest.raises(
            UnsendableRecord, match=r"transaction: al_permille is missing or null, and i41020-Info needs it"
        ):
            maker().frame_for(record(1, "transaction", "2026-11-27T00:00:00.000Z", body))

    def test_a_verdict_without_a_code_is_unsendable(self) -> None:
        body = {"nozzle": "N1", "day": "2026-11-26", "al_mean_permille": 1000, "verdict": "maybe"}
        with pytest.raises(UnsendableRecord, match=r"verdict='maybe' has no code in the profile's values"):
            maker().frame_for(record(1, "vapour", "2026-11-26T16:00:00.000Z", body))

    def test_records_of_one_millisecond_get_distinct_qns_and_keep_them_across_a_restart(self) -> None:
        """Records made in the same millisecond get distinct QNs, and a re-send by a fresh frame maker (after a
        restart, resuming in the middle of the group) gives each the QN it had: a platform dropping duplicates by
        QN loses none of them."""
        body = {"device": "P1", "period": "interval", "end": "2026-11-27T02:00:00.000Z", "mean_pa": 5}

        def qns(seqs: tuple[int, ...]) -> list[str]:
            frames = maker()
            made = [frames.frame_for(record(seq, "tank_pressure", "2026-11-27T02:00:00.010Z", body)) for seq in seqs]
            return [out.qn for out in made if out]

        assert qns((41, 42, 43)) == ["20261127100000041", "20261127100000042", "20261127100000043"]
        assert qns((42, 43)) == qns((41, 42, 43))[1:]


class TestProfile:
    def test_the_chongqing_profile_names_its_codes(self) -> None:
        profile = load_city_profile(CHONGQING)
        assert (profile.st, profile.commands) == ("31", frozenset({"3020"}))
        assert profile.known_keys("3020") == {"DataTime", "i41019-Info", "i41020-Info", "i41008-Info", "i41028-Info"}

    def test_a_record_type_mapped_twice_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "city.toml"
        item = '[[records]]\nrecord_type = "vapour"\ncn = "3020"\nitems = [{ code = "i41020", field = "x" }]\n'
        path.write_text('name = "X"\nst = "31"\n' + item + item)
        with pytest.raises(CityProfileError, match=r"record type\(s\) vapour mapped more than once"):
            load_city_profile(path)

    def test_a_bad_code_is_refused_with_its_place(self, tmp_path: Path) -> None:
        path = tmp_path / "city.toml"
        path.write_text(
            'name = "X"\nst = "31"\n[[records]]\nrecord_type = "vapour"\ncn = "30"\n'
            'items = [{ code = "4;1", field = "x" }]\n'
        )
        with pytest.raises(
            CityProfileError,
            match=r"2 problem\(s\):\n  records\.0\.cn: must be four digits\n  records\.0\.items\.0\.code",
        ):
            load_city_profile(path)
