"""The simulator parts suppliers build on: the pty pair, the register map and the slave servers' set-up.

These are shipped test helpers, so their misuse must fail at once with a message that says what to do, and
their behaviour (which registers exist, what a broken bank answers) must be the documented one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import serial

from drivers.modbus import ModbusExceptionResponse, TcpMaster
from simulators.modbus_slave import (
    IllegalAddress,
    RegisterMap,
    RtuSlaveServer,
    SlaveFaults,
    SlaveServerError,
    TcpSlaveServer,
)
from simulators.serial_line import PtyPair, SerialLineError


class TestPtyPair:
    def test_bytes_cross_both_ways(self, tmp_path: Path) -> None:
        """What one end writes, the other end reads, unchanged, in both directions."""
        with (
            PtyPair(tmp_path / "a", tmp_path / "b") as line,
            serial.Serial(str(line.link_a), timeout=1) as end_a,
            serial.Serial(str(line.link_b), timeout=1) as end_b,
        ):
            end_a.write(b"\x01\x03\x00\xff")
            assert end_b.read(4) == b"\x01\x03\x00\xff"
            end_b.write(b"\x00\x11")
            assert end_a.read(2) == b"\x00\x11"

    def test_links_exist_only_while_running(self, tmp_path: Path) -> None:
        """Both links appear on start and disappear on stop: stopping is unplugging the line."""
        line = PtyPair(tmp_path / "a", tmp_path / "b")
        line.start()
        assert line.running
        assert line.link_a.exists()
        assert line.link_b.exists()
        line.stop()
        assert not line.running
        assert not line.link_a.is_symlink()
        assert not line.link_b.is_symlink()

    def test_missing_socat_names_the_fix(self, tmp_path: Path) -> None:
        """Without socat, making a pair fails with the command that installs it."""
        with pytest.raises(SerialLineError, match="apt-get install socat"):
            PtyPair(tmp_path / "a", tmp_path / "b", executable="socat-not-installed")

    def test_taken_link_path_refused(self, tmp_path: Path) -> None:
        """A link path that already exists is refused rather than silently replaced."""
        (tmp_path / "a").write_text("")
        with pytest.raises(SerialLineError, match=f"{tmp_path / 'a'} already exists"):
            PtyPair(tmp_path / "a", tmp_path / "b").start()


class TestRegisterMap:
    def test_tables_are_separate(self) -> None:
        """Function 0x03 reads the holding table and 0x04 the input table, each with its own addresses."""
        bank = RegisterMap(holding={0: 1, 1: 2}, input_registers={0: 9})
        assert bank.read(0x03, 0, 2) == [1, 2]
        assert bank.read(0x04, 0, 1) == [9]

    def test_missing_register_is_illegal(self) -> None:
        """Reading a register that was never set raises IllegalAddress naming the table and the address."""
        bank = RegisterMap(holding={0: 1})
        with pytest.raises(IllegalAddress, match="holding register 0x0001 does not exist"):
            bank.read(0x03, 0, 2)
        with pytest.raises(IllegalAddress, match="input register 0x0000 does not exist"):
            bank.read(0x04, 0, 1)

    def test_write_is_all_or_nothing(self) -> None:
        """A write running into a missing register raises IllegalAddress and changes nothing."""
        bank = RegisterMap(holding={0: 1, 1: 2})
        with pytest.raises(IllegalAddress):
            bank.write(0, [7, 8, 9])
        assert bank.read(0x03, 0, 2) == [1, 2]

    def test_set_creates_registers_in_either_table(self) -> None:
        """The simulation sets input registers, which a master cannot write, and creates new addresses."""
        bank = RegisterMap()
        bank.set(0x04, 10, [5, 6])
        assert bank.read(0x04, 10, 2) == [5, 6]

    def test_set_checks_values_and_tables(self) -> None:
        """Values outside 16 bits and tables other than 0x03/0x04 raise ValueError."""
        bank = RegisterMap()
        with pytest.raises(ValueError, match="register 0x0001 value 65536 does not fit 16 bits"):
            bank.set(0x03, 0, [0, 65536])
        with pytest.raises(ValueError, match="function 0x01 has no register table"):
            bank.set(0x01, 0, [0])


class BrokenBank:
    """A bank whose firmware has crashed."""

    def read(self, function: int, address: int, count: int) -> list[int]:
        raise RuntimeError("flash read failed")

    def write(self, address: int, values: Sequence[int]) -> None:
        raise RuntimeError("flash write failed")


class TestServerSetUp:
    def test_needs_a_unit(self) -> None:
        """A server with no units refuses to exist."""
        with pytest.raises(ValueError, match="no units to serve"):
            TcpSlaveServer({})

    def test_faults_only_for_served_units(self) -> None:
        """Faults for a unit without a bank are a mistake, named as such."""
        with pytest.raises(ValueError, match=r"faults given for units \[5\] that have no register bank"):
            TcpSlaveServer({1: RegisterMap()}, faults={5: SlaveFaults(dead=True)})

    def test_every_unit_gets_faults(self) -> None:
        """Every served unit has a SlaveFaults to change, healthy unless given otherwise."""
        server = TcpSlaveServer({1: RegisterMap(), 2: RegisterMap()}, faults={2: SlaveFaults(delay_s=0.5)})
        assert server.faults == {1: SlaveFaults(), 2: SlaveFaults(delay_s=0.5)}

    def test_missing_port_fails_at_start(self, tmp_path: Path) -> None:
        """An RTU slave on a port that does not exist fails at start, naming the port."""
        server = RtuSlaveServer(tmp_path / "nowhere", {1: RegisterMap()})
        with pytest.raises(SlaveServerError, match=f"cannot open {tmp_path / 'nowhere'}"):
            server.start()

    def test_taken_tcp_port_fails_at_start(self) -> None:
        """A TCP slave on a port already listened on fails at start, naming host and port."""
        with TcpSlaveServer({1: RegisterMap()}) as first:
            second = TcpSlaveServer({1: RegisterMap()}, port=first.port)
            with pytest.raises(SlaveServerError, match=f"cannot listen on 127.0.0.1:{first.port}"):
                second.start()

    def test_broken_bank_answers_server_device_failure(self) -> None:
        """A bank that raises anything but IllegalAddress makes the unit answer exception 4, and serve on."""
        with TcpSlaveServer({1: BrokenBank(), 2: RegisterMap(holding={0: 3})}) as server:
            master = TcpMaster(*server.address, timeout_s=1.0)
            with pytest.raises(ModbusExceptionResponse, match=r"exception 0x04 \(server device failure\)"):
                master.read_registers(1, 0x03, 0, 1)
            assert master.read_registers(2, 0x03, 0, 1) == (3,)
            master.close()
