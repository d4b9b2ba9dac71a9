"""The RTU master against a hostile line over a real pty pair (socat): a port that stops taking the frame, answers
that pass for the last good one, and a line that vanishes mid-exchange.

Whatever the line does, each request ends within its bound (the answer timeout plus the frames' own time on the
line), and no answer is taken for a request it does not answer.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial
from pymodbus.framer import FramerRTU

from drivers.modbus import ModbusError, ModbusFrameError, ModbusLinkError, SerialRtuMaster
from simulators.serial_line import PtyPair

TIMEOUT_S = 0.2
BAUDRATE = 115200
REGISTERS_PER_WRITE = 120
"""A long write (253 bytes on the line), so that a port nobody reads fills within a few requests."""
WRITE_BOUND_S = TIMEOUT_S + 2 * 253 * 11 / BAUDRATE + 0.5
"""Longest a request may take while the port takes nothing: the timeout, the frame's time, and slack for a busy box."""


def with_crc(frame: str) -> bytes:
    """An RTU frame with its CRC appended by pymodbus, an implementation independent of ours."""
    data = bytes.fromhex(frame)
    return data + FramerRTU.compute_CRC(data).to_bytes(2, "big")


@pytest.fixture
def line(tmp_path: Path) -> Iterator[PtyPair]:
    with PtyPair(tmp_path / "master", tmp_path / "device") as pair:
        yield pair


def fill_line(path: Path) -> None:
    """Write to the line until it has taken nothing for a while (socat moves what it can as room appears), so that
    the next writer finds no room."""
    with serial.Serial(str(path), timeout=0) as port:
        fd = port.fileno()
        for _ in range(50):
            for _ in range(10_000):
                try:
                    os.write(fd, bytes(256))
                except BlockingIOError:
                    break
            time.sleep(0.3)
            try:
                os.write(fd, bytes(1))
            except BlockingIOError:
                return
    pytest.fail("the line kept taking what was written to it")


def test_a_port_that_takes_nothing_fails_the_request_within_its_timeout(line: PtyPair) -> None:
    """A device end that never reads (the pty's buffer fills) ends each request within the timeout plus the frame's
    time as a link error naming the stuck write, rather than holding the polling thread for good."""
    master = SerialRtuMaster(line.link_a, baudrate=BAUDRATE, timeout_s=TIMEOUT_S)
    link_errors: list[tuple[float, ModbusLinkError]] = []

    def poll() -> None:
        for _ in range(200):
            started = time.monotonic()
            try:
                master.write_registers(1, 0, range(REGISTERS_PER_WRITE))
            except ModbusLinkError as error:
                link_errors.append((time.monotonic() - started, error))
                if len(link_errors) == 3:
                    return
            except ModbusError:
                pass  # no answer from a device that does not read: a timeout, until its port stops taking frames

    with serial.Serial(str(line.link_b), timeout=0):  # the device's end, opened and never read
        fill_line(line.link_a)
        polling = threading.Thread(target=poll, daemon=True)
        polling.start()
        polling.join(15.0)
        assert not polling.is_alive(), "a request is still writing a frame the port does not take"
    assert len(link_errors) == 3
    for took_s, error in link_errors:
        assert took_s < WRITE_BOUND_S
        assert "the port took" in str(error) and "it is reopened on the next request" in str(error)
    master.close()


def test_an_answer_like_the_last_good_one_is_refused_for_another_request(line: PtyPair) -> None:
    """The unit's last good answer sent again byte for byte to another request of the same unit (more registers,
    another function) is refused for that request, not taken because it passed before."""
    master = SerialRtuMaster(line.link_a, baudrate=BAUDRATE, timeout_s=TIMEOUT_S)
    last_good = with_crc("010302002A")

    def device() -> None:
        with serial.Serial(str(line.link_b), timeout=2.0) as port:
            for _ in range(3):
                port.read(8)
                port.write(last_good)

    thread = threading.Thread(target=device, daemon=True)
    thread.start()
    time.sleep(0.25)
    assert master.read_registers(1, 0x03, 0, 1) == (42,)
    with pytest.raises(ModbusFrameError, match=r"x2: answer cut short, 7 of 9 bytes"):
        master.read_registers(1, 0x03, 0, 2)
    with pytest.raises(ModbusFrameError, match=r"function 0x04 @ 0x0000 x1: answer has function 0x03$"):
        master.read_registers(1, 0x04, 0, 1)
    thread.join(5.0)
    master.close()


def test_a_line_gone_mid_read_fails_at_once_and_the_reopened_port_reads_its_answers(line: PtyPair) -> None:
    """The line vanishing while an answer is awaited (socat killed) is a link error at once, not at the timeout;
    once it is back the port is reopened on another descriptor (the old number held by another file) and the
    answers that come on it after the master waits are read."""
    master = SerialRtuMaster(line.link_a, baudrate=BAUDRATE, timeout_s=2.0)
    unplug = threading.Timer(0.3, line.stop)
    unplug.start()
    started = time.monotonic()
    with pytest.raises(ModbusLinkError, match=r"it is reopened on the next request$"):
        master.read_registers(1, 0x03, 0, 1)
    assert time.monotonic() - started < 1.5
    unplug.join()
    old_number = os.open(os.devnull, os.O_RDONLY)  # the freed descriptor number, so the reopen gets another one
    line.start()
    answers = [with_crc("010302002A"), with_crc("010302002B")]

    def device() -> None:
        with serial.Serial(str(line.link_b), timeout=2.0) as port:
            for answer in answers:
                port.read(8)
                time.sleep(0.05)  # after the master is waiting on its descriptor
                port.write(answer)

    thread = threading.Thread(target=device, daemon=True)
    thread.start()
    time.sleep(0.25)
    try:
        assert master.read_registers(1, 0x03, 0, 1) == (42,)
        assert master.read_registers(1, 0x03, 0, 1) == (43,)
    finally:
        os.close(old_number)
    thread.join(5.0)
    master.close()
