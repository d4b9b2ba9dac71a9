"""The thread of all Modbus TCP lines against hostile peers on real loopback sockets: a relay in front of a simulated
controller that delivers its answers late under an old transaction id, in pieces, glued to more bytes, cut by a
close, or not at all, while a healthy line beside it keeps its interval and the station clock's wall time steps.

Each peer answers with the controller's own registers, so a reading is either the controller's or refused: the
line's counters say which, request by request."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import pytest
from support.waiting import wait_until
from test_tcp_lines import controller_server, line, listening, polling

from agent.clock import SystemClock
from agent.field.events import DeviceReading
from drivers.modbus import tcp

Chunks = list[tuple[float, bytes | None]]
"""How a peer delivers one answer: (wait in seconds, bytes) in turn, None for bytes closing the connection."""
Script = Callable[[int, bytes, bytes], Chunks]
"""The delivery of the n-th answer (from 1), given the answer and the previous one."""


def _read_exactly(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError("closed")
        data += chunk
    return data


def _whole_frame(connection: socket.socket) -> bytes:
    """A request or an answer: its MBAP header, then as many bytes as the header says follow it."""
    head = _read_exactly(connection, tcp.MBAP_BYTES)
    return head + _read_exactly(connection, tcp.decode_header(head).pdu_length)


@contextmanager
def hostile_peer(backend_address: tuple[str, int], script: Script) -> Iterator[int]:
    """A Modbus TCP endpoint that relays each request to `backend_address` and delivers the answer as `script`
    says; its port."""
    done = threading.Event()
    answered = [0]

    def serve_connection(connection: socket.socket) -> None:
        previous = b""
        with connection, socket.create_connection(backend_address, timeout=2) as backend:
            connection.settimeout(0.2)
            while not done.is_set():
                try:
                    request = _whole_frame(connection)
                except TimeoutError:
                    continue
                except OSError:
                    return
                backend.sendall(request)
                answer = _whole_frame(backend)
                answered[0] += 1
                chunks = script(answered[0], answer, previous)
                previous = answer
                for wait_s, data in chunks:
                    time.sleep(wait_s)
                    if data is None:
                        return
                    try:
                        connection.sendall(data)
                    except OSError:
                        return

    def take(connection: socket.socket) -> None:
        threading.Thread(target=serve_connection, args=(connection,), daemon=True).start()

    try:
        with listening(take, "hostile-peer") as port:
            yield port
    finally:
        done.set()


def late_under_an_old_id(n: int, answer: bytes, previous: bytes) -> Chunks:
    """Every fourth answer is preceded by the previous answer again, alone, under its own (now old) transaction id:
    the same registers' bytes but for the id."""
    return [(0.0, previous), (0.02, answer)] if n % 4 == 0 and previous else [(0.0, answer)]


def a_byte_at_a_time(n: int, answer: bytes, previous: bytes) -> Chunks:
    """Every third answer in single bytes, a millisecond apart; the others whole."""
    return [(0.001, answer[i : i + 1]) for i in range(len(answer))] if n % 3 == 0 else [(0.0, answer)]


def split_in_the_header(n: int, answer: bytes, previous: bytes) -> Chunks:
    """Each answer in two parts, cut inside the header or right after it."""
    cut = 3 + n % 6
    return [(0.0, answer[:cut]), (0.002, answer[cut:])]


def glued_to_the_next(n: int, answer: bytes, previous: bytes) -> Chunks:
    """Every fourth answer glued to a copy of itself, as if the next had come with it."""
    return [(0.0, answer + answer)] if n % 4 == 0 else [(0.0, answer)]


def closed_mid_answer(n: int, answer: bytes, previous: bytes) -> Chunks:
    """Every fifth answer cut by the peer's close after its header and function code."""
    return [(0.0, answer[: tcp.MBAP_BYTES + 1]), (0.001, None)] if n % 5 == 0 else [(0.0, answer)]


def silent_now_and_then(n: int, answer: bytes, previous: bytes) -> Chunks:
    """Every fifth answer never sent (the connection kept); then late, after the line gave up on it."""
    return [(0.5, answer)] if n % 5 == 0 else [(0.0, answer)]


class SteppedWallClock(SystemClock):
    """The system clock whose wall time jumps an hour back after `step_after_s` (an NTP correction), its
    monotonic time untouched."""

    def __init__(self, step_after_s: float) -> None:
        self._step_at = time.monotonic() + step_after_s

    def wall_ms(self) -> int:
        stepped = time.monotonic() >= self._step_at
        return super().wall_ms() - (3_600_000 if stepped else 0)


@pytest.mark.parametrize(
    ("script", "refused_as"),
    [
        (late_under_an_old_id, "frame_errors"),
        (a_byte_at_a_time, None),
        (split_in_the_header, None),
        (glued_to_the_next, "frame_errors"),
        (closed_mid_answer, "link_errors"),
        (silent_now_and_then, "timeouts"),
    ],
)
def test_a_hostile_peer_costs_its_own_line_its_answers_and_nothing_else(script: Script, refused_as: str | None) -> None:
    """Answers delivered in pieces are read; a late answer under an old transaction id, bytes glued past an
    answer, a close inside one and silence each fail that request as their kind (never a reading from a wrong
    answer), the line reconnects and reads on, a healthy line beside it fails no poll, and nothing is an
    internal error, across a step of the wall clock."""
    with ExitStack() as stack:
        attacked_server = stack.enter_context(controller_server(1))
        healthy_server = stack.enter_context(controller_server(2))
        port = stack.enter_context(hostile_peer(attacked_server.address, script))
        lines = [line("attacked", port, unit=1), line("healthy", healthy_server.address[1], unit=2)]
        rig = stack.enter_context(polling(lines, SteppedWallClock(step_after_s=0.5)))
        (attacked,) = [poller for poller in rig.field.pollers if poller.line == "attacked"]
        wait_until(lambda: attacked.status().bus.requests >= 30, 20, "30 requests on the attacked line")
        wait_until(lambda: rig.status("healthy")[0] >= 30, 20, "30 polls on the healthy line")
        bus = attacked.status().bus
        failures = {
            kind: getattr(bus, kind) for kind in ("timeouts", "crc_errors", "frame_errors", "refusals", "link_errors")
        }
        if refused_as is None:
            assert sum(failures.values()) == 0 and bus.ok == bus.requests
        else:
            assert failures[refused_as] >= 3, failures
            assert sum(failures.values()) == failures[refused_as], failures
            assert bus.ok >= bus.requests // 2
        assert rig.status("healthy")[1] == 0
        readings = [event.reading for _, event in rig.sink.events if isinstance(event, DeviceReading)]
        assert readings and all(reading is not None for reading in readings)
        assert rig.field.threads[0].alive()
    assert not rig.reports, "no internal error"
