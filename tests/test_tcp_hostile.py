"""A Modbus TCP read asked without waiting (`TcpMaster.send_read` of a read prepared once, as the thread of all TCP
lines asks it), against a real endpoint on the loopback: what a prepared read takes for its answer is what the
blocking master reads."""

from __future__ import annotations

import selectors
import time

from drivers.modbus.master import PendingRead, TcpMaster
from simulators.modbus_slave import RegisterMap, TcpSlaveServer

TIMEOUT_S = 2.0


def waited_for(pending: PendingRead) -> tuple[int, ...]:
    """The registers of a read in flight, its socket waited for as the thread of all TCP lines waits for it."""
    with selectors.DefaultSelector() as selector:
        for _ in range(100):  # a connect, then the answer, within a few wake-ups
            events = selectors.EVENT_WRITE if pending.writing else selectors.EVENT_READ
            selector.register(pending.socket, events)
            ready = selector.select(max(0.0, pending.deadline - time.monotonic()))
            selector.unregister(pending.socket)
            if not ready:
                raise pending.overdue()
            registers = pending.ready()
            if registers is not None:
                return registers
    raise AssertionError("no answer within 100 wake-ups")


def test_two_reads_of_one_unit_of_the_same_length_each_get_their_own_registers() -> None:
    """Two reads of one unit, four registers each at other addresses, asked in turn: each is given its own
    registers (those the blocking master reads), the same answer again is the same tuple for that read only, and
    a change in one read's registers shows in that read and not in the other."""
    bank = RegisterMap(holding={address: 1000 + address for address in range(20)})
    with TcpSlaveServer({1: bank}) as server:
        waiting, blocking = TcpMaster(*server.address, timeout_s=TIMEOUT_S), TcpMaster(*server.address, TIMEOUT_S)
        try:
            reads = {address: waiting.prepare(1, 3, address, 4) for address in (0, 10)}
            first, second = (waited_for(waiting.send_read(reads[address])) for address in (0, 10))
            assert first == blocking.read_registers(1, 3, 0, 4) == (1000, 1001, 1002, 1003)
            assert second == blocking.read_registers(1, 3, 10, 4) == (1010, 1011, 1012, 1013)
            assert waited_for(waiting.send_read(reads[0])) is first
            assert waited_for(waiting.send_read(reads[10])) is second
            bank.set(3, 11, [7])
            assert waited_for(waiting.send_read(reads[0])) is first
            changed = waited_for(waiting.send_read(reads[10]))
            assert changed == blocking.read_registers(1, 3, 10, 4) == (1010, 7, 1012, 1013)
            assert waited_for(waiting.send_read(reads[0])) is first
            assert waiting.statistics().ok == 7 and waiting.statistics().requests == 7
        finally:
            waiting.close()
            blocking.close()
