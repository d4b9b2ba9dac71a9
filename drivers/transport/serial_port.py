"""A serial port as the field protocols use it: opened on first use, one frame out, an answer read against a
deadline, and the two rules that keep a late or broken answer from passing for the next one.

The rules, for every protocol on a serial line:
- **Hold after a timeout.** A device that did not answer in time may still answer: the line stays its own for one
  more timeout, and the input is dropped before the next frame goes out, so the late answer lands there instead
  of being read as the answer to the next request (which may be to another device).
- **Flush until quiet.** After a broken answer (cut short, bad check, garbled) the rest of it may still be on its
  way: it is read and dropped until the line has been quiet for `quiet_s`.

Reads are bounded by the caller's size as well as its deadline, so a device that talks without end costs at most
what the caller asked for; a write by the timeout and the frame's own time, so a port that takes nothing (a line
nothing drains) fails the exchange instead of holding its thread. The port raises `OSError` / `termios.error` as
pyserial does; `broken` turns one into the protocol's link error, closing the port so the next request opens it
again.
"""

from __future__ import annotations

import os
import select
import termios
import time
from typing import Any

import serial

from drivers.errors import FieldLinkError
from drivers.transport.statistics import LinkCounters
from drivers.transport.wording import LinkWording

USB_SERIAL_LATENCY_S = 0.02
"""Shortest silence taken as "the line is quiet": USB serial adapters hand bytes over in bursts up to 16 ms apart
(the FTDI latency timer), so a shorter pause may be the middle of a frame."""

PORT_FAILURES = (OSError, termios.error)
"""What pyserial raises when a port that was open stops working (an adapter pulled out, a pty closed)."""


class SerialPort:
    """One serial port, opened on first use (exclusively) and reopened after a failure.

    `timeout_s` is the protocol's answer timeout: the hold after a timeout and the longest flush. `silence_s` is
    the protocol's own gap between frames (Modbus RTU's 3.5 characters), the floor of what counts as quiet.
    `wording` is how the protocol's link errors are worded.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        counters: LinkCounters,
        *,
        baudrate: int,
        bytesize: int,
        parity: str,
        stopbits: int,
        timeout_s: float,
        silence_s: float = 0.0,
        wording: LinkWording,
    ) -> None:
        if parity not in ("N", "E", "O"):
            raise ValueError(f"parity {parity!r} is not one of 'N', 'E', 'O'")
        if bytesize not in (7, 8):
            raise ValueError(f"bytesize {bytesize} is not 7 or 8")
        if stopbits not in (1, 2):
            raise ValueError(f"stopbits {stopbits} is not 1 or 2")
        if baudrate <= 0:
            raise ValueError(f"baudrate {baudrate} must be positive")
        self.path = os.fspath(path)
        self.baudrate = baudrate
        self.bytesize = bytesize
        self.parity = parity
        self.stopbits = stopbits
        self.timeout_s = timeout_s
        self.quiet_s = max(silence_s, USB_SERIAL_LATENCY_S)
        self._character_s = (1 + bytesize + (parity != "N") + stopbits) / baudrate
        """One character's time on the line: start bit, data bits, parity bit if any, stop bits."""
        self._counters = counters
        self._wording = wording
        self._serial: Any = None
        self._fd = -1
        self._ready = select.poll()
        """The open port's descriptor, registered for reading once per opening rather than once per read."""
        self._free_at = 0.0

    def send(self, frame: bytes) -> None:
        """Wait until the line is free, drop whatever input is left, write `frame` and wait until it is out.

        The three are the port's own calls (tcflush, write, tcdrain) on its descriptor: pyserial's `write` follows
        each write with a select until the port has taken it, a system call a frame that the drain makes needless."""
        fd = self._open()
        delay_s = self._free_at - time.monotonic()
        if delay_s > 0:
            time.sleep(delay_s)
        termios.tcflush(fd, termios.TCIFLUSH)
        try:
            written = os.write(fd, frame)
        except BlockingIOError:
            written = 0
        if written < len(frame):
            self._write_rest(fd, frame, written)
        termios.tcdrain(fd)
        self._counters.bytes_sent += len(frame)

    def read_exactly(self, size: int, deadline: float) -> bytes:
        """Up to `size` bytes, fewer if the `time.monotonic()` deadline passes first."""
        return self.read_at_least(size, size, deadline)

    def read_at_least(self, least: int, size: int, deadline: float) -> bytes:
        """At least `least` bytes and at most `size`, fewer than `least` if the `time.monotonic()` deadline passes
        first: each read takes all that has come, up to `size`, so an answer that is in whole is one read even when
        its length is known only from its first bytes.

        Waits on the port's descriptor itself rather than through pyserial's `timeout`, whose setter reconfigures
        the port (a lock and a read of its settings) every time: twice a request, more than the read cost."""
        fd, ready = self._fd, self._ready
        received = b""
        while len(received) < least:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0 or not ready.poll(remaining_s * 1000):
                break
            try:
                chunk = os.read(fd, size - len(received))
            except BlockingIOError:
                continue
            if not chunk:
                raise serial.SerialException(f"{self.path}: ready to read but nothing came (device disconnected?)")
            received += chunk
        self._counters.bytes_received += len(received)
        return received

    def read_some(self, timeout_s: float, max_bytes: int) -> bytes:
        """What has arrived, at least one byte and at most `max_bytes`, or b"" after `timeout_s` of silence."""
        port = self._serial
        port.timeout = timeout_s
        chunk: bytes = port.read(min(max(1, port.in_waiting), max_bytes))
        self._counters.bytes_received += len(chunk)
        return chunk

    def rest(self, seconds: float) -> None:
        """The line belongs to the answering device `seconds` more: the next `send` waits (never shortens a
        longer rest already set)."""
        self._free_at = max(self._free_at, time.monotonic() + seconds)

    def hold_after_timeout(self) -> None:
        """The device that did not answer in time may still answer: keep the line for it one more timeout."""
        self.rest(self.timeout_s)

    def flush_until_quiet(self) -> None:
        """Let the rest of a broken answer arrive and drop it, so it cannot pass for the next answer."""
        port = self._serial
        deadline = time.monotonic() + self.timeout_s
        port.timeout = self.quiet_s
        while time.monotonic() < deadline:
            dropped = port.read(max(1, port.in_waiting))
            if not dropped:
                break
            self._counters.bytes_received += len(dropped)
        port.reset_input_buffer()

    def broken(self, context: str, error: OSError | termios.error) -> FieldLinkError:
        """The protocol's link error for a port that failed during `context`; the port is closed and opened again
        on the next exchange."""
        self.close()
        return self._wording.error(
            f"{context}: serial port {self.path} failed ({error}); it is reopened on the next {self._wording.exchange}"
        )

    def close(self) -> None:
        port, self._serial = self._serial, None
        self._fd, self._ready = -1, select.poll()
        if port is not None:
            port.close()

    def _open(self) -> int:
        """The open port's descriptor, the port opened first if it is not."""
        if self._serial is None:
            try:
                self._serial = serial.Serial(
                    port=self.path,
                    baudrate=self.baudrate,
                    bytesize=self.bytesize,
                    parity=self.parity,
                    stopbits=self.stopbits,
                    timeout=0,
                    exclusive=True,
                )
            except (OSError, ValueError) as error:
                raise self._wording.error(
                    f"serial port {self.path}: cannot open ({error}); {self._wording.advice}"
                ) from error
            self._fd = self._serial.fileno()
            self._ready.register(self._fd, select.POLLIN)
        return self._fd

    def _write_rest(self, fd: int, frame: bytes, written: int) -> None:
        """The rest of a frame the port did not take whole (its output buffer was full): written as the port
        takes it, for at most the answer timeout plus the frame's own time on the line. A port that takes nothing
        for that long (flow control held, a line nothing drains) is broken, not slow: waiting on it would hold the
        polling thread for good, so it raises as a failed port does and is reopened on the next exchange."""
        deadline = time.monotonic() + self.timeout_s + len(frame) * self._character_s
        room = select.poll()
        room.register(fd, select.POLLOUT)
        while written < len(frame):
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0 or not room.poll(remaining_s * 1000):
                raise TimeoutError(
                    f"the port took {written} of the frame's {len(frame)} bytes within {self.timeout_s} s: "
                    "nothing drains the line"
                )
            try:
                written += os.write(fd, frame[written:])
            except BlockingIOError:
                continue
