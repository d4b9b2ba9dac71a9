"""Modbus TCP framing: the MBAP header (Modbus Messaging on TCP/IP Implementation Guide V1.0b), without I/O.

TCP already guarantees order and integrity, so the header only delimits frames (a length) and pairs answers
with requests (a transaction id the server copies back); a master that checks both can never take a late answer
to an earlier request for the answer to the current one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from drivers.modbus.errors import ModbusError, ModbusFrameError, ModbusTimeout, cut_short
from drivers.modbus.pdu import Context, ReadRegistersRequest, encode_request

MBAP_BYTES = 7
MODBUS_PROTOCOL_ID = 0
MAX_PDU_BYTES = 253
MAX_ADU_BYTES = MBAP_BYTES + MAX_PDU_BYTES
"""260: the MBAP header's length field is checked against it before a byte of the PDU is read."""

_MBAP_LAYOUT = ">HHHB"


@dataclass(frozen=True, slots=True)
class MbapHeader:
    """A decoded MBAP header; `pdu_length` is the number of PDU bytes that follow it."""

    transaction_id: int
    unit: int
    pdu_length: int


def encode_adu(transaction_id: int, unit: int, pdu: bytes) -> bytes:
    """MBAP header (transaction id, protocol 0, length of unit and PDU, unit) followed by the PDU."""
    if not 0 <= transaction_id <= 0xFFFF:
        raise ValueError(f"transaction id {transaction_id} does not fit 16 bits (0..65535)")
    if not 0 <= unit <= 0xFF:
        raise ValueError(f"unit {unit} does not fit one byte (0..255)")
    if not 1 <= len(pdu) <= MAX_PDU_BYTES:
        raise ValueError(f"PDU of {len(pdu)} bytes is outside 1..{MAX_PDU_BYTES}")
    return struct.pack(_MBAP_LAYOUT, transaction_id, MODBUS_PROTOCOL_ID, len(pdu) + 1, unit) + pdu


def decode_header(header: bytes, context: Context = "MBAP header") -> MbapHeader:
    """The MBAP header in the first 7 bytes of a frame.

    Raises ModbusFrameError for a header of the wrong size, a protocol id other than 0 or a length that cannot
    hold a PDU; `context` prefixes the message.
    """
    if len(header) != MBAP_BYTES:
        raise ModbusFrameError(f"{context}: {len(header)} bytes, an MBAP header has {MBAP_BYTES}")
    transaction_id, protocol_id, length, unit = struct.unpack(_MBAP_LAYOUT, header)
    if protocol_id != MODBUS_PROTOCOL_ID:
        raise ModbusFrameError(f"{context}: protocol id {protocol_id}, Modbus is {MODBUS_PROTOCOL_ID}")
    if not 2 <= length <= MAX_PDU_BYTES + 1:
        raise ModbusFrameError(f"{context}: length {length} is outside 2..{MAX_PDU_BYTES + 1}")
    return MbapHeader(transaction_id, unit, length - 1)


class Answer:
    """The answer to one request, taken as its bytes arrive: the header is checked as soon as it is whole (the
    transaction id and unit of the request, a length that fits), and only then is the PDU's length known.

    Without I/O, so that a master that waits for one socket and one that waits for many read answers alike.
    """

    def __init__(self, transaction_id: int, unit: int, context: Context) -> None:
        self._transaction_id = transaction_id
        self._unit = unit
        self._context = context
        self._received = b""
        self._pdu_length: int | None = None

    def missing(self) -> int:
        """How many bytes the answer still lacks: 0 once it is whole."""
        if self._pdu_length is None:
            return MBAP_BYTES - len(self._received)
        return MBAP_BYTES + self._pdu_length - len(self._received)

    def received(self) -> int:
        """How many bytes of it have arrived."""
        return len(self._received)

    def feed(self, data: bytes) -> None:
        """Take bytes that arrived; raises ModbusFrameError for a header that is not the answer to this request,
        or bytes past the end its header gives (with one request in flight, nothing else may follow it)."""
        self._received += data
        if self._pdu_length is None and len(self._received) >= MBAP_BYTES:
            header = decode_header(self._received[:MBAP_BYTES], self._context)
            if header.transaction_id != self._transaction_id:
                raise ModbusFrameError(
                    f"{self._context}: answer has transaction id {header.transaction_id}, "
                    f"expected {self._transaction_id}"
                )
            if header.unit != self._unit:
                raise ModbusFrameError(f"{self._context}: answer comes from unit {header.unit}")
            self._pdu_length = header.pdu_length
        if self.missing() < 0:
            raise ModbusFrameError(
                f"{self._context}: {-self.missing()} bytes more than the answer's header says "
                f"({self._received.hex(' ')})"
            )

    def pdu(self) -> bytes:
        """The PDU of a whole answer."""
        return self._received[MBAP_BYTES:]

    def overdue(self, timeout_s: float) -> ModbusError:
        """What it means that the answer was not whole within `timeout_s`: no answer, or one cut short."""
        if not self._received:
            return ModbusTimeout(f"{self._context}: no answer within {timeout_s} s")
        return cut_short(self._context, self._received, MBAP_BYTES + (self._pdu_length or 0), timeout_s)


class PreparedRead:
    """One register read of one unit as Modbus TCP bytes, worked out once for a read asked again and again (a
    device's planned read, every poll): its request frame but for the transaction id, and the bytes a whole,
    well-formed answer to it starts with.

    An answer that arrives whole and starts with those bytes (the transaction id, protocol 0, the length, the
    unit, the function and the byte count of this read) is exactly one that `Answer` and
    `drivers.modbus.pdu.decode_read_response` take, so its registers are read without them; the same registers'
    bytes as the last answer's are the same tuple, not unpacked again (an idle dispenser answers the same all
    day); that is tested first, the whole answer but its first two bytes compared at once. Every other answer
    goes through `Answer` and the decoder, which say what is wrong with it.
    """

    __slots__ = (
        "_answer_bytes",
        "_answer_head",
        "_last_answer_tail",
        "_last_registers",
        "_registers",
        "_request_tail",
        "request",
        "unit",
    )

    def __init__(self, unit: int, request: ReadRegistersRequest) -> None:
        self.unit = unit
        self.request = request
        self._request_tail = encode_adu(0, unit, encode_request(request))[2:]
        byte_count = 2 * request.count
        self._answer_head = struct.pack(
            ">HHBBB", MODBUS_PROTOCOL_ID, 3 + byte_count, unit, request.function, byte_count
        )
        self._registers = struct.Struct(f">{request.count}H")
        self._answer_bytes = MBAP_BYTES + 2 + byte_count
        self._last_answer_tail: bytes | None = None
        """The last answer taken but for its transaction id: the header past it, the registers' bytes."""
        self._last_registers: tuple[int, ...] = ()

    def frame(self, transaction_id: int) -> bytes:
        """The request's ADU under `transaction_id` (0..65535)."""
        return transaction_id.to_bytes(2, "big") + self._request_tail

    def registers(self, transaction_id: int, answer: bytes) -> tuple[int, ...] | None:
        """The registers if `answer` is the whole, well-formed answer to this read under `transaction_id`; None
        for anything else (a part of one, an exception, a header or a length that does not fit)."""
        if answer[2:] == self._last_answer_tail:  # the last answer taken again, but for its transaction id
            return self._last_registers if int.from_bytes(answer[:2], "big") == transaction_id else None
        if len(answer) != self._answer_bytes or answer[2:9] != self._answer_head:
            return None
        if int.from_bytes(answer[:2], "big") != transaction_id:
            return None
        self._last_answer_tail, self._last_registers = answer[2:], self._registers.unpack_from(answer, 9)
        return self._last_registers
