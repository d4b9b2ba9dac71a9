"""The raw limit of a Modbus RTU line in software: the agent's request frames sent by bare pyserial, nothing else.

No poller, no driver, no decoding, no accounting: write a request frame made beforehand, read exactly the
answer's length, keep 3.5 characters of silence, send the next. On a pty to the simulator that is the best
any master in Python can do on this machine: the time it takes beyond the theoretical line time belongs to
the simulator, the pty and the interpreter, not to the agent; its CPU time per exchange is the part of a poll
that no master can skip.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import serial

from drivers.modbus import rtu
from drivers.modbus.pdu import ReadRegistersRequest, encode_request
from drivers.profiles import ReadRequest


@dataclass(frozen=True, slots=True)
class Frame:
    """A read request as bytes on the wire, the length of its normal answer and how many registers it reads."""

    adu: bytes
    answer_bytes: int
    registers: int


@dataclass(frozen=True, slots=True)
class Exchange:
    """Requests answered (or not): when the last answer was in (perf_counter), the thread's CPU time then.

    One frame for the bare loop; a poller's poll of a device holds all the reads its driver planned.
    """

    ended_at: float
    cpu_s: float
    frames: tuple[Frame, ...]
    ok: bool


def read_frame(unit: int, request: ReadRequest) -> Frame:
    pdu = encode_request(ReadRegistersRequest(request.function, request.address, request.count))
    answer_bytes = rtu.expected_response_length(request.function, request.count)
    return Frame(rtu.encode_adu(unit, pdu), answer_bytes, request.count)


def exchanges(
    port: Path, frames: Sequence[Frame], baudrate: int, *, seconds: float, max_count: int, timeout_s: float
) -> list[Exchange]:
    """Send `frames` in turn, round and round, for `seconds` or `max_count` exchanges, whichever ends first."""
    silence_s = rtu.silence_s(baudrate)
    done: list[Exchange] = []
    with serial.Serial(str(port), baudrate=baudrate, timeout=timeout_s) as line:
        end = time.perf_counter() + seconds
        free_at = 0.0
        while len(done) < max_count and time.perf_counter() < end:
            frame = frames[len(done) % len(frames)]
            delay_s = free_at - time.perf_counter()
            if delay_s > 0:
                time.sleep(delay_s)
            line.write(frame.adu)
            answer = line.read(frame.answer_bytes)
            now = time.perf_counter()
            free_at = now + silence_s
            done.append(Exchange(now, time.thread_time(), (frame,), len(answer) == frame.answer_bytes))
            if len(answer) != frame.answer_bytes:
                line.reset_input_buffer()
    return done
