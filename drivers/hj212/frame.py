"""The HJ 212 envelope: `##`, the data segment's length, the data segment, its CRC, CRLF.

Theory of operation: a frame is `##`, four decimal digits giving the data segment's length in bytes, the data
segment (ASCII text, UTF-8 in HJ 212-2025), four hex digits of CRC over the data segment only, and CR LF. The
CRC is not the Modbus one although it shares the polynomial 0xA001: from 0xFFFF, each byte is XORed into
the *high* byte of the register (`crc = (crc >> 8) ^ byte`), then eight shift rounds with 0xA001; so a
Modbus CRC routine gives a different answer for the same text, and a platform rejects the frame.

TCP carries a byte stream, so `FrameSplitter` cuts it into candidate frames first and `decode_frame` judges
each: a frame whose length field lies is cut at its own CR LF, so that it is rejected for its length rather
than taking the next frame down with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from drivers.hj212.errors import Hj212CipherError, Hj212CrcError, Hj212FrameError, Hj212LengthError
from drivers.hj212.sm4 import Sm4Key, decrypt_cp, encrypt_cp, is_encrypted_cp

HEAD = b"##"
TAIL = b"\r\n"
LENGTH_DIGITS = 4
CRC_DIGITS = 4
MAX_DATA_BYTES = 1024
"""The longest data segment the standard allows; longer data goes out in several packets."""
MAX_WIRE_DATA_BYTES = 6 * MAX_DATA_BYTES
"""The longest data segment as sent: SM4 writes each byte of a whole block as `0xNN,` (five bytes for one)."""
ENVELOPE_BYTES = len(HEAD) + LENGTH_DIGITS + CRC_DIGITS + len(TAIL)
CP_OPEN = b"CP=&&"
CP_CLOSE = b"&&"
_HEX = frozenset(b"0123456789ABCDEFabcdef")


def crc16(data: bytes) -> int:
    """The HJ 212 CRC of a data segment (see the module docstring for how it differs from Modbus)."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def encode_frame(data: bytes) -> bytes:
    """The whole frame around a data segment; ValueError if the segment is longer than the standard allows."""
    if len(data) > MAX_DATA_BYTES:
        raise ValueError(
            f"data segment of {len(data)} bytes is longer than HJ 212's {MAX_DATA_BYTES}; send fewer items a packet"
        )
    return HEAD + b"%04d" % len(data) + data + b"%04X" % crc16(data) + TAIL


def decode_frame(frame: bytes) -> bytes:
    """The data segment of a whole frame, once its length and CRC check out.

    Raises Hj212LengthError when the length field is not four digits, exceeds 1024 or disagrees with the
    bytes between it and the CRC; Hj212CrcError when the CRC does not match; Hj212FrameError for a frame
    that does not start with `##` or end with CR LF.
    """
    _check_envelope(frame)
    declared = int(frame[len(HEAD) : len(HEAD) + LENGTH_DIGITS])
    actual = len(frame) - ENVELOPE_BYTES
    if declared > MAX_DATA_BYTES:
        raise Hj212LengthError(f"length field says {declared} bytes; HJ 212 allows at most {MAX_DATA_BYTES}")
    if declared != actual:
        raise Hj212LengthError(
            f"length field says {declared} bytes but {actual} lie between it and the CRC (frame {frame[:24]!r}...)"
        )
    data = frame[len(HEAD) + LENGTH_DIGITS : -(CRC_DIGITS + len(TAIL))]
    _check_crc(frame, data)
    return data


@dataclass(frozen=True, slots=True)
class SealRules:
    """What the length field counts and the CRC covers in an encrypted frame.

    HJ 212-2025's Appendix A.2 examples give the plain data segment's length (`##0295` for a segment sent as
    1,128 bytes) and its CRC (the same `2200` before and after encryption): that is `plaintext`, the default.
    `transmitted` counts and checks the segment as sent, the literal reading of Table 2. Plain frames agree
    under both."""

    length_of: Literal["plaintext", "transmitted"] = "plaintext"
    crc_over: Literal["plaintext", "transmitted"] = "plaintext"


STANDARD_EXAMPLE_RULES = SealRules()


@dataclass(frozen=True, slots=True)
class OpenedFrame:
    """A frame's plain data segment, and whether it came encrypted."""

    data: bytes
    encrypted: bool


def seal_frame(data: bytes, key: Sm4Key, rules: SealRules = STANDARD_EXAMPLE_RULES) -> bytes:
    """The frame around a plain data segment whose CP goes out SM4-encrypted (see drivers.hj212.sm4); ValueError
    if the plain segment is longer than the standard allows or has no CP at its end."""
    if len(data) > MAX_DATA_BYTES:
        raise ValueError(
            f"data segment of {len(data)} bytes is longer than HJ 212's {MAX_DATA_BYTES}; send it in several packets"
        )
    head, cp = _split_cp(data)
    if cp is None:
        raise ValueError(f"data segment {data[:40]!r}... has no CP=&&...&& to encrypt")
    sent = head + encrypt_cp(cp, key) + CP_CLOSE
    length = len(data) if rules.length_of == "plaintext" else len(sent)
    crc = crc16(data if rules.crc_over == "plaintext" else sent)
    return HEAD + b"%04d" % length + sent + b"%04X" % crc + TAIL


def open_frame(frame: bytes, key: Sm4Key | None, rules: SealRules = STANDARD_EXAMPLE_RULES) -> OpenedFrame:
    """The plain data segment of a frame, encrypted or not, once its length and CRC check out (under `rules`
    for an encrypted one).

    Raises what `decode_frame` raises, and Hj212CipherError for an encrypted CP that is malformed or arrives
    without a key."""
    _check_envelope(frame)
    sent = frame[len(HEAD) + LENGTH_DIGITS : -(CRC_DIGITS + len(TAIL))]
    head, cp = _split_cp(sent)
    if cp is None or not is_encrypted_cp(cp):
        return OpenedFrame(decode_frame(frame), encrypted=False)
    if key is None:
        raise Hj212CipherError("the data area is SM4-encrypted and no key is configured to read it")
    if len(sent) > MAX_WIRE_DATA_BYTES:
        raise Hj212LengthError(f"encrypted data segment of {len(sent)} bytes is beyond {MAX_WIRE_DATA_BYTES}")
    data = head + decrypt_cp(cp, key) + CP_CLOSE
    declared = int(frame[len(HEAD) : len(HEAD) + LENGTH_DIGITS])
    counted = data if rules.length_of == "plaintext" else sent
    if len(data) > MAX_DATA_BYTES:
        raise Hj212LengthError(f"decrypted data segment is {len(data)} bytes; HJ 212 allows at most {MAX_DATA_BYTES}")
    if declared != len(counted):
        raise Hj212LengthError(
            f"length field says {declared} bytes but the {rules.length_of} data segment has {len(counted)}"
        )
    _check_crc(frame, data if rules.crc_over == "plaintext" else sent)
    return OpenedFrame(data, encrypted=True)


def _split_cp(data: bytes) -> tuple[bytes, bytes | None]:
    """The segment up to and with `CP=&&`, and the CP's content (None if the segment does not end in a CP)."""
    at = data.find(CP_OPEN)
    if at < 0 or not data.endswith(CP_CLOSE) or len(data) < at + len(CP_OPEN) + len(CP_CLOSE):
        return data, None
    return data[: at + len(CP_OPEN)], data[at + len(CP_OPEN) : -len(CP_CLOSE)]


def _check_envelope(frame: bytes) -> None:
    if not frame.startswith(HEAD) or not frame.endswith(TAIL):
        raise Hj212FrameError(f"frame {frame[:24]!r}...{frame[-8:]!r} does not run from '##' to CR LF")
    length_text = frame[len(HEAD) : len(HEAD) + LENGTH_DIGITS]
    if not length_text.isdigit() or len(length_text) != LENGTH_DIGITS:
        raise Hj212LengthError(f"length field {length_text!r} is not four decimal digits")
    if len(frame) < ENVELOPE_BYTES:
        raise Hj212LengthError(f"frame of {len(frame)} bytes is shorter than the envelope alone")


def _check_crc(frame: bytes, covered: bytes) -> None:
    crc_text = frame[-(CRC_DIGITS + len(TAIL)) : -len(TAIL)]
    if not set(crc_text) <= _HEX:
        raise Hj212CrcError(f"CRC field {crc_text!r} is not four hex digits")
    received, computed = int(crc_text, 16), crc16(covered)
    if received != computed:
        raise Hj212CrcError(f"CRC {received:04X} does not match the data segment's {computed:04X}")


class FrameSplitter:
    """Cuts a TCP byte stream into candidate frames, each from `##` to CR LF, for `decode_frame` to judge.

    Bytes before a `##` are noise and dropped (counted in `discarded`). A candidate is cut where its length
    field says it ends when CR LF stands there, else at the first CR LF after `##`; with no CR LF within the
    longest possible frame, the bytes so far are handed out as a candidate (to be rejected) so that a
    stream of garbage cannot grow the buffer without bound.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.discarded = 0

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames: list[bytes] = []
        while True:
            start = self._buffer.find(HEAD)
            if start < 0:
                keep = 1 if self._buffer.endswith(HEAD[:1]) else 0
                self.discarded += len(self._buffer) - keep
                del self._buffer[: len(self._buffer) - keep]
                return frames
            self.discarded += start
            del self._buffer[:start]
            end = self._candidate_end()
            if end is None:
                return frames
            frames.append(bytes(self._buffer[:end]))
            del self._buffer[:end]

    def flush(self) -> list[bytes]:
        """What is left when the connection closes: a last candidate (to be judged), if it began with `##`."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        if rest.startswith(HEAD):
            return [rest]
        self.discarded += len(rest)
        return []

    def _candidate_end(self) -> int | None:
        """Where the candidate at the start of the buffer ends, or None until more bytes arrive."""
        longest = MAX_WIRE_DATA_BYTES + ENVELOPE_BYTES
        length_text = bytes(self._buffer[len(HEAD) : len(HEAD) + LENGTH_DIGITS])
        if len(length_text) == LENGTH_DIGITS and length_text.isdigit():
            declared_end = int(length_text) + ENVELOPE_BYTES
            if self._buffer[declared_end - len(TAIL) : declared_end] == TAIL:
                return declared_end
            if len(self._buffer) < declared_end <= longest:
                return None
        tail = self._buffer.find(TAIL, len(HEAD))
        if tail >= 0:
            return tail + len(TAIL)
        return min(len(self._buffer), longest) if len(self._buffer) >= longest else None
