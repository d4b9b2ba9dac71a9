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

from drivers.hj212.errors import Hj212CrcError, Hj212FrameError, Hj212LengthError

HEAD = b"##"
TAIL = b"\r\n"
LENGTH_DIGITS = 4
CRC_DIGITS = 4
MAX_DATA_BYTES = 1024
"""The longest data segment the standard allows; longer data goes out in several packets."""
ENVELOPE_BYTES = len(HEAD) + LENGTH_DIGITS + CRC_DIGITS + len(TAIL)
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
    if not frame.startswith(HEAD) or not frame.endswith(TAIL):
        raise Hj212FrameError(f"frame {frame[:24]!r}...{frame[-8:]!r} does not run from '##' to CR LF")
    length_text = frame[len(HEAD) : len(HEAD) + LENGTH_DIGITS]
    if not length_text.isdigit() or len(length_text) != LENGTH_DIGITS:
        raise Hj212LengthError(f"length field {length_text!r} is not four decimal digits")
    declared = int(length_text)
    actual = len(frame) - ENVELOPE_BYTES
    if declared > MAX_DATA_BYTES:
        raise Hj212LengthError(f"length field says {declared} bytes; HJ 212 allows at most {MAX_DATA_BYTES}")
    if declared != actual:
        raise Hj212LengthError(
            f"length field says {declared} bytes but {actual} lie between it and the CRC (frame {frame[:24]!r}...)"
        )
    data = frame[len(HEAD) + LENGTH_DIGITS : -(CRC_DIGITS + len(TAIL))]
    crc_text = frame[-(CRC_DIGITS + len(TAIL)) : -len(TAIL)]
    if not set(crc_text) <= _HEX:
        raise Hj212CrcError(f"CRC field {crc_text!r} is not four hex digits")
    received, computed = int(crc_text, 16), crc16(data)
    if received != computed:
        raise Hj212CrcError(f"CRC {received:04X} does not match the data segment's {computed:04X}")
    return data


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
        longest = MAX_DATA_BYTES + ENVELOPE_BYTES
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
