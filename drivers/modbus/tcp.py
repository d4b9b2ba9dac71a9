"""Modbus TCP framing: the MBAP header (Modbus Messaging on TCP/IP Implementation Guide V1.0b), without I/O.

TCP already guarantees order and integrity, so the header only delimits frames (a length) and pairs answers
with requests (a transaction id the server copies back); a master that checks both can never take a late answer
to an earlier request for the answer to the current one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from drivers.modbus.errors import ModbusFrameError
from drivers.modbus.pdu import Context

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
