"""Sub-packets (drivers/hj212/subpackets.py) and the platform's requests (agent/uplink/hj212_requests.py),
without sockets: the cut and the join agree, and whatever a platform sends raises only the codec's errors."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.uplink import hj212_requests as requests
from drivers.hj212.errors import Hj212Error, Hj212FrameError
from drivers.hj212.frame import MAX_DATA_BYTES, encode_frame
from drivers.hj212.packet import Flag, Packet, QnRtn, decode_packet, encode_packet
from drivers.hj212.subpackets import Reassembler, split_packet

ZONE = ZoneInfo("Asia/Shanghai")
MN = "010000A8900016F000169DC0"
STATION = requests.Station("123456", MN)


def packet(cn: str, *cp: tuple[str, str], qn: str = "20240601085857223") -> Packet:
    return Packet(qn, "31", cn, "123456", MN, Flag(2, ack=True), tuple((item,) for item in cp))


class TestSubPackets:
    def test_a_long_packet_is_cut_within_the_limit_and_joined_back(self) -> None:
        """Every piece fits 1,024 bytes, carries PNUM/PNO and the D bit; joined they are the packet again."""
        long = packet("3020", *((f"i4{n:04d}-Info", "1.00") for n in range(150)))
        pieces = split_packet(long)
        assert len(pieces) == 3
        assert all(len(encode_packet(piece)) <= MAX_DATA_BYTES for piece in pieces)
        assert [(p.pnum, p.pno, p.flag.value if p.flag else None) for p in pieces] == [(3, n, 11) for n in (1, 2, 3)]
        joiner = Reassembler()
        joined = [joiner.take(decode_packet(encode_packet(piece))) for piece in reversed(pieces)]
        assert joined[:2] == [None, None] and joined[2] is not None
        assert joined[2].packet == long and joiner.pending == 0

    def test_a_short_packet_is_not_cut(self) -> None:
        """A packet that fits goes as it is, without PNUM/PNO."""
        short = packet("3020", ("DataTime", "20240601085857"))
        assert split_packet(short) == (short,)

    @pytest.mark.parametrize(
        ("header", "message"),
        [
            ("Flag=11;PNUM=3;PNO=4", "PNO runs from 1"),
            ("Flag=9;PNUM=2;PNO=1", "without Flag's D bit"),
            ("Flag=11", "missing"),
        ],
    )
    def test_inconsistent_pieces_are_named(self, header: str, message: str) -> None:
        """A piece whose PNUM, PNO and Flag disagree is refused with the reason."""
        segment = f"QN=20240601085857223;ST=31;CN=3020;PW=1;MN=M;{header};CP=&&&&".encode()
        with pytest.raises(Hj212FrameError, match=message):
            Reassembler().take(decode_packet(segment))

    def test_unfinished_packets_are_bounded(self) -> None:
        """A sender that starts many packets and finishes none holds at most max_pending of them."""
        joiner = Reassembler(max_pending=4)
        for number in range(10):
            first = Packet(f"2024060108585{number:04d}", "31", "3020", "1", "M", Flag(2, subpackaged=True), (), 2, 1)
            assert joiner.take(first) is None
        assert (joiner.pending, joiner.dropped) == (4, 6)


class TestRequests:
    def test_a_time_query_is_answered_with_the_logger_time(self) -> None:
        """1011 gets SystemTime in the station's zone under the request's QN and CN, PolId echoed."""
        request = packet("1011", ("PolId", "w01018"))
        assert isinstance(requests.read_request(request, frozenset({"3020"}), ZONE, 31, STATION), requests.TimeQuery)
        answer = requests.time_answer(request, datetime(2026, 1, 2, 3, 4, 5, tzinfo=ZONE), 2)
        assert (answer.qn, answer.cn, answer.cp_items()) == (
            request.qn,
            "1011",
            {"PolId": "w01018", "SystemTime": "20260102030405"},
        )

    @pytest.mark.parametrize(
        ("cp", "verdict", "reason"),
        [
            ((), QnRtn.REFUSED, "asks for no period"),
            ((("BeginTime", "20260102"), ("EndTime", "20260103000000")), QnRtn.REFUSED, "not YYYYMMDDhhmmss"),
            ((("BeginTime", "20260103000000"), ("EndTime", "20260102000000")), QnRtn.REFUSED, "before"),
            ((("BeginTime", "20260101000000"), ("EndTime", "20260301000000")), QnRtn.REFUSED, "31 days"),
        ],
    )
    def test_an_extract_with_a_bad_period_is_refused_with_the_reason(
        self, cp: tuple[tuple[str, str], ...], verdict: QnRtn, reason: str
    ) -> None:
        """A period that is missing, unreadable, reversed or too long gets QnRtn=2 and says why."""
        read = requests.read_request(packet("3020", *cp), frozenset({"3020"}), ZONE, 31, STATION)
        assert isinstance(read, requests.Refused) and read.verdict == verdict and reason in read.reason

    def test_a_command_the_logger_does_not_take_is_cn_unknown(self) -> None:
        """A CN that is neither time nor one of the profile's data commands gets QnRtn=8."""
        read = requests.read_request(packet("3021", ("x", "1")), frozenset({"3020"}), ZONE, 31, STATION)
        assert isinstance(read, requests.Refused) and read.verdict == QnRtn.BAD_CN

    @pytest.mark.parametrize(
        "segment",
        [
            f"QN=20261207120000008;ST=91;CN=1011;PW=1=2;MN={MN};Flag=9;CP=&&&&",
            f"QN=20261207120000009;ST=91;CN=1011;PW=123456;MN={MN};Flag=9;CP=&&PolId=a&b&&",
            f"QN=20261207120000010;ST=91;CN=1011;PW=123456;MN={MN};Flag=9;CP=&&PolId=a=b&&",
        ],
    )
    def test_a_request_whose_fields_cannot_be_echoed_is_refused_as_malformed(self, segment: str) -> None:
        """A request the codec reads but whose PW or CP holds a separator gets QnRtn=2 under its QN, and the
        refusal (with the station's PW and MN) can be written."""
        read = requests.read_request(decode_packet(segment.encode()), frozenset({"3020"}), ZONE, 31, STATION)
        assert isinstance(read, requests.Refused) and read.verdict == QnRtn.REFUSED and "malformed" in read.reason
        answer = decode_packet(encode_packet(requests.refusal(read, 2)))
        assert (answer.qn, answer.cn, answer.pw, answer.mn) == (segment[3:20], "9011", "123456", MN)
        assert answer.cp_items() == {"QnRtn": "2"}

    def test_a_malformed_request_without_a_qn_is_ignored(self) -> None:
        """Without a QN there is nothing to answer: the request is ignored with the reason."""
        segment = f"ST=91;CN=1011;PW=1=2;MN={MN};Flag=9;CP=&&&&".encode()
        read = requests.read_request(decode_packet(segment), frozenset({"3020"}), ZONE, 31, STATION)
        assert isinstance(read, requests.Ignored) and "malformed" in read.reason

    @pytest.mark.parametrize(
        ("pw", "mn", "verdict"),
        [("999999", MN, QnRtn.BAD_PW), ("123456", "FFFFFFFFFFFFFFFFFFFFFFFF", QnRtn.BAD_MN)],
    )
    def test_a_request_with_another_pw_or_mn_is_refused(self, pw: str, mn: str, verdict: QnRtn) -> None:
        """An extract with a PW or MN not the station's gets QnRtn=3 or 4, not the data."""
        request = Packet(
            "20261207120000030",
            "91",
            "3020",
            pw,
            mn,
            Flag(2),
            ((("BeginTime", "20261207000000"),), (("EndTime", "20261207235959"),)),
        )
        read = requests.read_request(request, frozenset({"3020"}), ZONE, 31, STATION)
        assert isinstance(read, requests.Refused) and read.verdict == verdict
        assert (requests.refusal(read, 2).pw, requests.refusal(read, 2).mn) == ("123456", MN)

    @pytest.mark.parametrize(
        "text", ["2026127000000", "2026120700000 ", "202612070000001", "20261307000000", "\uff120261207000000", ""]
    )
    def test_a_time_not_exactly_fourteen_digits_of_a_real_moment_is_refused(self, text: str) -> None:
        """BeginTime must be YYYYMMDDhhmmss zero-padded: 13 digits, a 15th, a 13th month or a non-ASCII digit
        is refused, where strptime would take `2026127000000` as 2026-12-07."""
        request = packet("3020", ("BeginTime", text), ("EndTime", "20261207235959"))
        read = requests.read_request(request, frozenset({"3020"}), ZONE, 31, STATION)
        assert isinstance(read, requests.Refused) and "not YYYYMMDDhhmmss" in read.reason

    def test_the_period_is_compared_as_times(self) -> None:
        """A DataTime is in the period by its moment, both ends included; an unreadable one is not."""
        request = packet("3020", ("BeginTime", "20261207000000"), ("EndTime", "20261207235959"))
        extract = requests.read_request(request, frozenset({"3020"}), ZONE, 31, STATION)
        assert isinstance(extract, requests.Extract)
        assert extract.begin == datetime(2026, 12, 7) and extract.end == datetime(2026, 12, 7, 23, 59, 59)
        inside = ["20261207000000", "20261207120000", "20261207235959"]
        outside = ["20261206235959", "20261208000000", "2026120712000", "202612071200000", None, "x"]
        assert [requests.in_period(text, extract) for text in inside] == [True] * 3
        assert [requests.in_period(text, extract) for text in outside] == [False] * 6

    @given(st.binary(max_size=1100))
    def test_arbitrary_bytes_raise_only_codec_errors(self, data: bytes) -> None:
        """Whatever a platform sends, framing, decoding, joining and reading it as a request raise only
        Hj212Error (never another exception that could end the uplink's thread)."""
        for segment in (
            data,
            b"QN=20240601085857223;ST=31;CN=1011;PW=1;MN=M;Flag=11;PNUM=2;PNO=1;CP=&&" + data + b"&&",
        ):
            try:
                read = decode_packet(segment)
                joined = Reassembler().take(read)
                if joined is not None:
                    requests.read_request(joined.packet, frozenset({"3020"}), ZONE, 31, STATION)
                encode_frame(segment[:MAX_DATA_BYTES])
            except Hj212Error:
                pass
