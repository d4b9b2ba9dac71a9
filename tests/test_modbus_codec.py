"""The Modbus codecs against the specification and against pymodbus, never only against themselves.

Master and simulated slaves share these codecs, so a bug here would hide on both sides of every link test.
The expected bytes below come from the examples in the Modbus Application Protocol specification V1.1b3, from
CRC arithmetic worked by hand, or from pymodbus's own encoders as an independent implementation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.framer import FramerRTU, FramerSocket
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersRequest,
    ReadInputRegistersResponse,
    WriteMultipleRegistersRequest,
    WriteSingleRegisterRequest,
)

from drivers.modbus import rtu, tcp
from drivers.modbus.errors import (
    ExceptionCode,
    ModbusCrcError,
    ModbusError,
    ModbusExceptionResponse,
    ModbusFrameError,
    exception_name,
)
from drivers.modbus.pdu import (
    ReadRegistersRequest,
    Request,
    WriteMultipleRequest,
    WriteSingleRequest,
    check_write_response,
    decode_read_response,
    decode_request,
    encode_exception_response,
    encode_read_response,
    encode_request,
    encode_write_response,
)

READ_HOLDING_0_X10 = bytes.fromhex("01 03 00 00 00 0A C5 CD")

pymodbus_client = FramerRTU(DecodePDU(is_server=False))
pymodbus_server = FramerRTU(DecodePDU(is_server=True))

units = st.integers(1, 247)
registers = st.integers(0, 0xFFFF)


@st.composite
def read_requests(draw: st.DrawFn) -> ReadRegistersRequest:
    count = draw(st.integers(1, 125))
    return ReadRegistersRequest(draw(st.sampled_from([3, 4])), draw(st.integers(0, 0x10000 - count)), count)


@st.composite
def write_multiple_requests(draw: st.DrawFn) -> WriteMultipleRequest:
    values = tuple(draw(st.lists(registers, min_size=1, max_size=123)))
    return WriteMultipleRequest(draw(st.integers(0, 0x10000 - len(values))), values)


def pymodbus_request(request: Request, unit: int) -> ModbusPDU:
    """The same request built with pymodbus's classes."""
    match request:
        case ReadRegistersRequest(3, address, count):
            return ReadHoldingRegistersRequest(address=address, count=count, dev_id=unit)
        case ReadRegistersRequest(4, address, count):
            return ReadInputRegistersRequest(address=address, count=count, dev_id=unit)
        case WriteSingleRequest(address, value):
            return WriteSingleRegisterRequest(address=address, registers=[value], dev_id=unit)
        case WriteMultipleRequest(address, values):
            return WriteMultipleRegistersRequest(address=address, registers=list(values), dev_id=unit)
    raise AssertionError(request)


class TestCrc:
    def test_spec_read_holding_frame(self) -> None:
        """Read holding registers, unit 1, address 0, count 10 is 01 03 00 00 00 0A C5 CD on the wire."""
        assert rtu.encode_adu(1, encode_request(ReadRegistersRequest(3, 0, 10))) == READ_HOLDING_0_X10

    def test_hand_worked_crc(self) -> None:
        """CRC-16/MODBUS of 02 07 is 0x1241, sent low byte first as 41 12."""
        # Start 0xFFFF; xor each byte into the low byte, then 8 times: shift right, and xor 0xA001 when the bit
        # shifted out was 1.
        #   FFFF ^ 02 = FFFD
        #     FFFD >> 1 = 7FFE, out 1 -> DFFF;  >> 1 = 6FFF, out 1 -> CFFE;  >> 1 = 67FF, out 0
        #     67FF >> 1 = 33FF, out 1 -> 93FE;  >> 1 = 49FF, out 0;  >> 1 = 24FF, out 1 -> 84FE
        #     84FE >> 1 = 427F, out 0;  >> 1 = 213F, out 1 -> 813E
        #   813E ^ 07 = 8139
        #     8139 >> 1 = 409C, out 1 -> E09D;  >> 1 = 704E, out 1 -> D04F;  >> 1 = 6827, out 1 -> C826
        #     C826 >> 1 = 6413, out 0;  >> 1 = 3209, out 1 -> 9208;  >> 1 = 4904, out 0
        #     4904 >> 1 = 2482, out 0;  >> 1 = 1241, out 0
        assert rtu.crc16(b"\x02") == 0x813E
        assert rtu.crc16(b"\x02\x07") == 0x1241
        assert rtu.encode_adu(2, b"\x07") == bytes.fromhex("02 07 41 12")

    @given(st.binary(max_size=256))
    def test_crc_matches_pymodbus(self, data: bytes) -> None:
        """Our CRC, low byte first, equals pymodbus's CRC, which it keeps byte-swapped."""
        assert rtu.crc16(data).to_bytes(2, "little") == FramerRTU.compute_CRC(data).to_bytes(2, "big")

    @given(st.binary(min_size=1, max_size=256))
    def test_crc_over_frame_and_crc_is_zero(self, data: bytes) -> None:
        """A whole frame, CRC appended low byte first, has CRC residue 0: the check a receiver can make."""
        assert rtu.crc16(data + rtu.crc16(data).to_bytes(2, "little")) == 0


class TestSpecPdus:
    @pytest.mark.parametrize(
        ("request_", "pdu"),
        [
            (ReadRegistersRequest(3, 0x006B, 3), "03 00 6B 00 03"),
            (ReadRegistersRequest(4, 0x0008, 1), "04 00 08 00 01"),
            (WriteSingleRequest(0x0001, 0x0003), "06 00 01 00 03"),
            (WriteMultipleRequest(0x0001, (0x000A, 0x0102)), "10 00 01 00 02 04 00 0A 01 02"),
        ],
    )
    def test_request_pdus(self, request_: Request, pdu: str) -> None:
        """The specification's example requests encode to its bytes and decode back to the same request."""
        assert encode_request(request_) == bytes.fromhex(pdu)
        assert decode_request(bytes.fromhex(pdu)) == request_

    def test_read_holding_response(self) -> None:
        """The specification's answer 03 06 02 2B 00 00 00 64 holds registers 555, 0, 100."""
        pdu = bytes.fromhex("03 06 02 2B 00 00 00 64")
        assert decode_read_response(ReadRegistersRequest(3, 0x006B, 3), pdu) == (555, 0, 100)
        assert encode_read_response(3, (555, 0, 100)) == pdu

    def test_read_input_response(self) -> None:
        """The specification's answer 04 02 00 0A holds input register value 10."""
        pdu = bytes.fromhex("04 02 00 0A")
        assert decode_read_response(ReadRegistersRequest(4, 0x0008, 1), pdu) == (10,)
        assert encode_read_response(4, (10,)) == pdu

    @pytest.mark.parametrize(
        ("request_", "response"),
        [
            (WriteSingleRequest(0x0001, 0x0003), "06 00 01 00 03"),
            (WriteMultipleRequest(0x0001, (0x000A, 0x0102)), "10 00 01 00 02"),
        ],
    )
    def test_write_responses(self, request_: WriteSingleRequest | WriteMultipleRequest, response: str) -> None:
        """A write is confirmed by the specification's echo: the whole request for 0x06, address and count for 0x10."""
        assert encode_write_response(request_) == bytes.fromhex(response)
        check_write_response(request_, bytes.fromhex(response))

    def test_exception_response(self) -> None:
        """An answer 83 02 raises ModbusExceptionResponse naming the exchange, the code and its name."""
        request = ReadRegistersRequest(3, 0x0100, 10)
        with pytest.raises(ModbusExceptionResponse) as raised:
            decode_read_response(request, bytes.fromhex("83 02"), "unit 3 function 0x03 @ 0x0100 x10")
        assert (raised.value.function, raised.value.code, raised.value.name) == (3, 2, "illegal data address")
        assert str(raised.value) == (
            "unit 3 function 0x03 @ 0x0100 x10: exception 0x02 (illegal data address) to function 0x03"
        )
        assert encode_exception_response(3, 2) == bytes.fromhex("83 02")

    @pytest.mark.parametrize(
        ("code", "name"),
        [
            (1, "illegal function"),
            (2, "illegal data address"),
            (3, "illegal data value"),
            (4, "server device failure"),
            (5, "acknowledge"),
            (6, "server device busy"),
            (0x0A, "gateway path unavailable"),
            (0x0B, "gateway target failed"),
            (0x42, "unknown exception"),
        ],
    )
    def test_exception_names(self, code: int, name: str) -> None:
        """Every standard exception code has its standard name; others are called unknown."""
        assert exception_name(code) == name


class TestRequestChecks:
    @pytest.mark.parametrize(
        ("make", "message"),
        [
            (
                lambda: ReadRegistersRequest(3, 0, 126),
                "count 126 is outside 1..125: larger blocks take several requests",
            ),
            (lambda: ReadRegistersRequest(3, 0, 0), "count 0 is outside 1..125"),
            (lambda: ReadRegistersRequest(5, 0, 1), "function 0x05 does not read registers"),
            (lambda: ReadRegistersRequest(3, 0xFFFF, 2), "address 0xFFFF with count 2 runs outside"),
            (lambda: WriteSingleRequest(0, 0x10000), "register value 65536 does not fit 16 bits"),
            (lambda: WriteMultipleRequest(0, (0,) * 124), "count 124 is outside 1..123"),
        ],
    )
    def test_out_of_range_requests_refused(self, make: Callable[[], object], message: str) -> None:
        """A request that cannot go on the wire fails at construction, saying which value and why."""
        with pytest.raises(ValueError, match=message):
            make()

    @pytest.mark.parametrize(
        ("pdu", "code"),
        [
            ("01 00 00 00 0A", ExceptionCode.ILLEGAL_FUNCTION),
            ("2B 0E 01 00", ExceptionCode.ILLEGAL_FUNCTION),
            ("03 00 00 00 00", ExceptionCode.ILLEGAL_DATA_VALUE),
            ("03 00 00 00 7E", ExceptionCode.ILLEGAL_DATA_VALUE),
            ("04 00 00 00", ExceptionCode.ILLEGAL_DATA_VALUE),
            ("03 FF FF 00 02", ExceptionCode.ILLEGAL_DATA_ADDRESS),
            ("06 00 01 00", ExceptionCode.ILLEGAL_DATA_VALUE),
            ("10 00 01 00 02 03 00 0A 01", ExceptionCode.ILLEGAL_DATA_VALUE),
            ("10 00 01 00 02 04 00 0A 01", ExceptionCode.ILLEGAL_DATA_VALUE),
            ("10 00 01 00 00 00", ExceptionCode.ILLEGAL_DATA_VALUE),
        ],
    )
    def test_server_decode_names_the_exception_to_answer(self, pdu: str, code: ExceptionCode) -> None:
        """Malformed or unsupported requests raise the exception a slave answers: 1, 2 or 3 as the spec says."""
        with pytest.raises(ModbusExceptionResponse) as raised:
            decode_request(bytes.fromhex(pdu))
        assert raised.value.code == code
        assert raised.value.function == bytes.fromhex(pdu)[0]

    def test_empty_request_is_a_frame_error(self) -> None:
        """An empty PDU has no function to answer to: a frame error, not an exception answer."""
        with pytest.raises(ModbusFrameError, match="empty request PDU"):
            decode_request(b"")


class TestResponseChecks:
    request = ReadRegistersRequest(3, 0x0100, 2)

    @pytest.mark.parametrize(
        ("pdu", "message"),
        [
            ("", "empty response PDU"),
            ("04 04 00 01 00 02", "answer has function 0x04"),
            ("03 02 00 01", "byte count 2, expected 4"),
            ("03", "byte count missing, expected 4"),
            ("03 04 00 01 00", "response PDU of 5 bytes, expected 6"),
            ("83 02 00", "exception response of 3 bytes, expected 2"),
        ],
    )
    def test_read_answers_that_do_not_fit(self, pdu: str, message: str) -> None:
        """A read answer with the wrong function, byte count or length is a ModbusFrameError saying which."""
        with pytest.raises(ModbusFrameError, match=f"^function 0x03 @ 0x0100 x2: {message}"):
            decode_read_response(self.request, bytes.fromhex(pdu))

    def test_write_echo_mismatch(self) -> None:
        """A write echo with another value is a ModbusFrameError showing both echoes."""
        with pytest.raises(ModbusFrameError, match="echo 06 00 01 00 04 differs from 06 00 01 00 03"):
            check_write_response(WriteSingleRequest(1, 3), bytes.fromhex("06 00 01 00 04"))


class TestRtuFrames:
    context = "unit 1 function 0x03 @ 0x0000 x10"

    def test_truncated_frame(self) -> None:
        """A frame shorter than unit, function and CRC is a ModbusFrameError."""
        with pytest.raises(ModbusFrameError, match="3 bytes \\(01 03 00\\) is shorter than a frame"):
            rtu.decode_adu(READ_HOLDING_0_X10[:3])

    def test_corrupted_frame(self) -> None:
        """One flipped bit gives ModbusCrcError with the received and the computed CRC."""
        corrupted = bytes.fromhex("01 03 00 01 00 0A C5 CD")
        with pytest.raises(ModbusCrcError) as raised:
            rtu.decode_adu(corrupted, self.context)
        computed = rtu.crc16(corrupted[:-2])
        assert str(raised.value) == f"{self.context}: CRC 0xCDC5 != computed 0x{computed:04X}"

    def test_answer_from_another_unit(self) -> None:
        """A sound frame from another unit than the one asked is a ModbusFrameError."""
        with pytest.raises(ModbusFrameError, match=r"answer comes from unit 1$"):
            rtu.decode_response_adu(READ_HOLDING_0_X10, 2, self.context)

    @given(st.binary(min_size=2, max_size=64), st.data())
    def test_any_single_bit_flip_is_a_crc_error(self, payload: bytes, data: st.DataObject) -> None:
        """CRC-16 catches every single-bit error, so a flipped bit anywhere is always ModbusCrcError."""
        frame = bytearray(rtu.encode_adu(payload[0], payload[1:]))
        bit = data.draw(st.integers(0, 8 * len(frame) - 1))
        frame[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(ModbusCrcError):
            rtu.decode_adu(bytes(frame))

    @pytest.mark.parametrize(
        ("function", "count", "length"), [(3, 10, 25), (4, 1, 7), (3, 125, 255), (6, 1, 8), (0x10, 123, 8)]
    )
    def test_expected_response_length(self, function: int, count: int, length: int) -> None:
        """A master expects 5 + 2 x count bytes for a read and 8 for a write."""
        assert rtu.expected_response_length(function, count) == length

    def test_exception_answer_is_five_bytes(self) -> None:
        """Once the function byte has its high bit set, the answer is 5 bytes whatever was expected."""
        assert rtu.response_length(0x83, 25) == 5
        assert rtu.response_length(0x03, 25) == 25

    @pytest.mark.parametrize(
        ("head", "length"),
        [
            ("01 03", 8),
            ("01 06 00", 8),
            ("01 10 00 01 00 02", None),
            ("01 10 00 01 00 02 04", 13),
            ("01 2B 0E", None),
            ("01", None),
        ],
    )
    def test_request_length_from_the_head(self, head: str, length: int | None) -> None:
        """A slave knows a request's length from its function (0x10: from its byte count), else None."""
        assert rtu.request_adu_length(bytes.fromhex(head)) == length


class TestLineTiming:
    def test_character_time_at_9600(self) -> None:
        """A character is 11 bits: about 1.146 ms at 9600 baud."""
        assert rtu.character_time_s(9600) == pytest.approx(0.0011458, abs=1e-7)
        assert rtu.frame_time_s(8, 9600) == pytest.approx(8 * 11 / 9600)

    @pytest.mark.parametrize(
        ("baudrate", "silence_s"), [(9600, 3.5 * 11 / 9600), (19200, 3.5 * 11 / 19200), (38400, 0.00175)]
    )
    def test_inter_frame_silence(self, baudrate: int, silence_s: float) -> None:
        """The silence between frames is 3.5 characters up to 19200 baud and 1.75 ms above."""
        assert rtu.silence_s(baudrate) == pytest.approx(silence_s)


class TestAgainstPymodbus:
    @given(read_requests(), units)
    def test_read_request_frames(self, request: ReadRegistersRequest, unit: int) -> None:
        """Read request frames are byte for byte pymodbus's."""
        ours = rtu.encode_adu(unit, encode_request(request))
        assert ours == pymodbus_client.buildFrame(pymodbus_request(request, unit))

    @given(write_multiple_requests(), units)
    def test_write_multiple_request_frames(self, request: WriteMultipleRequest, unit: int) -> None:
        """Write-multiple request frames are byte for byte pymodbus's, and our slave decodes pymodbus's."""
        frame = pymodbus_client.buildFrame(pymodbus_request(request, unit))
        assert rtu.encode_adu(unit, encode_request(request)) == frame
        assert decode_request(rtu.decode_adu(frame)[1]) == request

    @given(st.integers(0, 0xFFFF), registers, units)
    def test_write_single_request_frames(self, address: int, value: int, unit: int) -> None:
        """Write-single request frames are byte for byte pymodbus's."""
        request = WriteSingleRequest(address, value)
        assert rtu.encode_adu(unit, encode_request(request)) == pymodbus_client.buildFrame(
            pymodbus_request(request, unit)
        )

    @given(read_requests(), units, st.data())
    def test_read_response_frames(self, request: ReadRegistersRequest, unit: int, data: st.DataObject) -> None:
        """pymodbus's read answers decode to their registers, and ours are byte for byte the same."""
        values = data.draw(st.lists(registers, min_size=request.count, max_size=request.count))
        response_class = ReadHoldingRegistersResponse if request.function == 3 else ReadInputRegistersResponse
        frame = pymodbus_server.buildFrame(response_class(registers=values, dev_id=unit))
        context = f"unit {unit}"
        assert decode_read_response(request, rtu.decode_response_adu(frame, unit, context), context) == tuple(values)
        assert rtu.encode_adu(unit, encode_read_response(request.function, tuple(values))) == frame

    @given(st.sampled_from([3, 4, 6, 0x10]), st.sampled_from(list(ExceptionCode)), units)
    def test_exception_frames(self, function: int, code: ExceptionCode, unit: int) -> None:
        """Exception answer frames are byte for byte pymodbus's."""
        frame = pymodbus_server.buildFrame(ExceptionResponse(function, code, device_id=unit))
        assert rtu.encode_adu(unit, encode_exception_response(function, code)) == frame

    @given(read_requests(), st.integers(0, 0xFFFF), st.integers(0, 255))
    def test_mbap_frames(self, request: ReadRegistersRequest, transaction_id: int, unit: int) -> None:
        """Modbus TCP frames are byte for byte pymodbus's, and their headers decode back."""
        message = pymodbus_request(request, unit)
        message.transaction_id = transaction_id
        frame = FramerSocket(DecodePDU(is_server=False)).buildFrame(message)
        pdu = encode_request(request)
        assert tcp.encode_adu(transaction_id, unit, pdu) == frame
        assert tcp.decode_header(frame[: tcp.MBAP_BYTES]) == tcp.MbapHeader(transaction_id, unit, len(pdu))


class TestMbap:
    def test_hand_built_header(self) -> None:
        """Transaction 1, protocol 0, length 6 (unit and a 5-byte PDU), unit 1, then the PDU."""
        frame = bytes.fromhex("00 01 00 00 00 06 01 03 00 00 00 0A")
        assert tcp.encode_adu(1, 1, encode_request(ReadRegistersRequest(3, 0, 10))) == frame
        assert tcp.decode_header(frame[:7]) == tcp.MbapHeader(transaction_id=1, unit=1, pdu_length=5)

    @pytest.mark.parametrize(
        ("header", "message"),
        [
            ("00 01 00 01 00 06 01", "protocol id 1, Modbus is 0"),
            ("00 01 00 00 00 01 01", "length 1 is outside 2..254"),
            ("00 01 00 00 01 00 01", "length 256 is outside 2..254"),
            ("00 01 00 00 00 06", "6 bytes, an MBAP header has 7"),
        ],
    )
    def test_bad_headers(self, header: str, message: str) -> None:
        """A header with another protocol id, an impossible length or the wrong size is a ModbusFrameError."""
        with pytest.raises(ModbusFrameError, match=message):
            tcp.decode_header(bytes.fromhex(header))


def answer_by_the_full_decoder(
    request: ReadRegistersRequest, unit: int, transaction_id: int, adu: bytes
) -> tuple[int, ...] | None:
    """The registers `tcp.Answer` and `decode_read_response` take from `adu` as a whole answer; None otherwise."""
    answer = tcp.Answer(transaction_id, unit, "test")
    try:
        answer.feed(adu)
        return None if answer.missing() > 0 else decode_read_response(request, answer.pdu(), "test")
    except ModbusError:
        return None


@st.composite
def damaged_answers(draw: st.DrawFn) -> tuple[ReadRegistersRequest, int, int, bytes]:
    """A read, its unit and transaction id, and an answer to it: whole, or with a byte changed, cut or added to."""
    request, unit, transaction_id = draw(read_requests()), draw(st.integers(0, 255)), draw(st.integers(0, 0xFFFF))
    values = draw(st.lists(registers, min_size=request.count, max_size=request.count))
    adu = bytearray(tcp.encode_adu(transaction_id, unit, encode_read_response(request.function, tuple(values))))
    return (
        request,
        unit,
        transaction_id,
        damaged(draw, adu, draw(st.sampled_from(["none", "head", "byte", "cut", "more"]))),
    )


def damaged(draw: st.DrawFn, adu: bytearray, damage: str) -> bytes:
    """`adu` with a byte of its header, function or byte count changed (`head`), or any byte (`byte`), cut short
    (`cut`) or added to (`more`); as it is for any other `damage`."""
    if damage in ("head", "byte"):
        adu[draw(st.integers(0, 8 if damage == "head" else len(adu) - 1))] = draw(st.integers(0, 255))
    elif damage == "cut":
        del adu[draw(st.integers(0, len(adu) - 1)) :]
    elif damage == "more":
        adu += draw(st.binary(min_size=1, max_size=4))
    return bytes(adu)


@st.composite
def answer_sequences(draw: st.DrawFn) -> tuple[ReadRegistersRequest, int, list[tuple[int, bytes]]]:
    """A read, its unit and the transaction ids and answers of its polls in turn: the same few register values
    again and again (an idle device), each answer whole, under the previous poll's transaction id, or damaged."""
    request, unit = draw(read_requests()), draw(st.integers(0, 255))
    pool = draw(st.lists(st.lists(registers, min_size=request.count, max_size=request.count), min_size=1, max_size=3))
    answers = []
    for transaction_id in range(draw(st.integers(0, 0xFFFF)), 0x10000)[: draw(st.integers(1, 12))]:
        values = draw(st.sampled_from(pool))
        damage = draw(st.sampled_from(["none", "none", "late", "head", "byte", "cut", "more"]))
        answered_id = (transaction_id - 1) & 0xFFFF if damage == "late" else transaction_id
        adu = bytearray(tcp.encode_adu(answered_id, unit, encode_read_response(request.function, tuple(values))))
        answers.append((transaction_id, damaged(draw, adu, damage)))
    return request, unit, answers


class TestPreparedRead:
    @given(read_requests(), st.integers(0, 0xFFFF), st.integers(0, 255))
    def test_prepared_frames_are_pymodbus_frames(
        self, request: ReadRegistersRequest, transaction_id: int, unit: int
    ) -> None:
        """A prepared read's frame under any transaction id is byte for byte pymodbus's."""
        message = pymodbus_request(request, unit)
        message.transaction_id = transaction_id
        frame = FramerSocket(DecodePDU(is_server=False)).buildFrame(message)
        assert tcp.PreparedRead(unit, request).frame(transaction_id) == frame

    @given(read_requests(), st.integers(0, 0xFFFF), st.integers(0, 255), st.data())
    def test_pymodbus_answers_are_read_as_prepared(
        self, request: ReadRegistersRequest, transaction_id: int, unit: int, data: st.DataObject
    ) -> None:
        """pymodbus's answer to a prepared read gives its registers without the full decoder."""
        values = data.draw(st.lists(registers, min_size=request.count, max_size=request.count))
        response_class = ReadHoldingRegistersResponse if request.function == 3 else ReadInputRegistersResponse
        message = response_class(registers=values, dev_id=unit)
        message.transaction_id = transaction_id
        frame = FramerSocket(DecodePDU(is_server=True)).buildFrame(message)
        assert tcp.PreparedRead(unit, request).registers(transaction_id, frame) == tuple(values)

    @settings(max_examples=500)
    @given(damaged_answers())
    def test_a_prepared_read_takes_exactly_what_the_full_decoder_takes(
        self, case: tuple[ReadRegistersRequest, int, int, bytes]
    ) -> None:
        """Whole or damaged, an answer gives the same registers read as prepared as through `Answer` and the
        decoder, and is refused (None) by the one exactly when the other refuses it or finds it unfinished."""
        request, unit, transaction_id, adu = case
        expected = answer_by_the_full_decoder(request, unit, transaction_id, adu)
        assert tcp.PreparedRead(unit, request).registers(transaction_id, adu) == expected

    @settings(max_examples=300)
    @given(answer_sequences())
    def test_a_prepared_read_asked_again_and_again_takes_what_the_full_decoder_takes(
        self, case: tuple[ReadRegistersRequest, int, list[tuple[int, bytes]]]
    ) -> None:
        """Asked poll after poll, one prepared read takes every answer (the last one's bytes again under another
        or the same transaction id, an old transaction id's, damaged ones) exactly as `Answer` and the decoder
        would, whatever it took before."""
        request, unit, answers = case
        prepared = tcp.PreparedRead(unit, request)
        for transaction_id, adu in answers:
            expected = answer_by_the_full_decoder(request, unit, transaction_id, adu)
            assert prepared.registers(transaction_id, adu) == expected

    def test_the_same_answer_again_is_the_same_registers_not_unpacked_again(self) -> None:
        """Answers word for word the last one's give the very tuple the last one gave; another answer its own."""
        prepared = tcp.PreparedRead(1, ReadRegistersRequest(3, 0, 2))
        first = prepared.registers(7, bytes.fromhex("0007 0000 0007 01 03 04 002A 0001"))
        again = prepared.registers(8, bytes.fromhex("0008 0000 0007 01 03 04 002A 0001"))
        other = prepared.registers(9, bytes.fromhex("0009 0000 0007 01 03 04 002A 0002"))
        assert first == (42, 1) and again is first
        assert other == (42, 2)


class TestHostileAnswers:
    @given(st.binary(max_size=300), st.integers(1, 125), st.sampled_from([3, 4]), st.integers(1, 247))
    def test_arbitrary_bytes_as_an_rtu_answer_raise_only_modbus_errors(
        self, adu: bytes, count: int, function: int, unit: int
    ) -> None:
        """Whatever bytes come back as an RTU answer, the frame and the PDU decoders raise only ModbusError."""
        request = ReadRegistersRequest(function, 0, count)
        with contextlib.suppress(ModbusError):
            decode_read_response(request, rtu.decode_response_adu(adu, unit, "fuzz"))

    @given(st.binary(max_size=300), st.integers(1, 125))
    def test_arbitrary_bytes_as_a_tcp_answer_raise_only_modbus_errors(self, adu: bytes, count: int) -> None:
        """Whatever bytes come back over TCP, the MBAP header and the PDU decoders raise only ModbusError."""
        with contextlib.suppress(ModbusError):
            header = tcp.decode_header(adu[: tcp.MBAP_BYTES])
            assert header.pdu_length + tcp.MBAP_BYTES <= tcp.MAX_ADU_BYTES
            pdu = adu[tcp.MBAP_BYTES : tcp.MBAP_BYTES + header.pdu_length]
            decode_read_response(ReadRegistersRequest(3, 0, count), pdu)

    def test_an_rtu_frame_longer_than_256_bytes_is_refused_before_its_crc_is_computed(self) -> None:
        """A 257-byte frame, even with a good CRC, is not a Modbus RTU frame."""
        body = bytes(255)
        with pytest.raises(ModbusFrameError, match="257 bytes is longer than an RTU frame"):
            rtu.decode_adu(body + rtu.crc16(body).to_bytes(2, "little"))

    def test_an_mbap_length_beyond_260_bytes_is_refused_before_the_pdu_is_read(self) -> None:
        """A header announcing 255 bytes after it (unit + 254 of PDU) is refused on the header alone."""
        with pytest.raises(ModbusFrameError, match=r"length 255 is outside 2\.\.254"):
            tcp.decode_header(bytes.fromhex("0001 0000 00FF 01"))
