"""The simulated slaves as an outside master sees them: mbpoll (libmodbus) over a pty pair and over TCP.

Our master and our slaves share one codec, so agreeing with each other proves little; mbpoll is written by
other people against the same specification. mbpoll numbers registers from 1 unless given -0, so reference 1
is register address 0.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.config import load_simulators_config
from simulators.modbus_slave import RegisterMap, RtuSlaveServer, TcpSlaveServer
from simulators.serial_line import PtyPair
from simulators.station import SimulatedStation

MBPOLL = shutil.which("mbpoll")
pytestmark = pytest.mark.skipif(MBPOLL is None, reason="mbpoll not installed: apt-get install mbpoll")

UNIT = 17
HOLDING = {address: 0xFFF0 - 7 * address for address in range(12)}
INPUT = {address: 300 + address for address in range(100, 104)}
VALUE = re.compile(r"^\[(\d+)\]:\s+(\d+)", re.MULTILINE)


@pytest.fixture
def bank() -> RegisterMap:
    return RegisterMap(holding=HOLDING, input_registers=INPUT)


@pytest.fixture(params=["rtu", "tcp"])
def connection(request: pytest.FixtureRequest, bank: RegisterMap, tmp_path: Path) -> Iterator[list[str]]:
    """mbpoll's arguments to reach unit 17 of a running slave, over a pty pair or TCP."""
    if request.param == "rtu":
        with (
            PtyPair(tmp_path / "master", tmp_path / "slave") as line,
            RtuSlaveServer(line.link_b, {UNIT: bank}, baudrate=9600),
        ):
            yield ["-m", "rtu", "-b", "9600", "-P", "none", "-a", str(UNIT), str(line.link_a)]
    else:
        with TcpSlaveServer({UNIT: bank}) as server:
            yield ["-m", "tcp", "-p", str(server.port), "-a", str(UNIT), server.host]


def run_mbpoll(connection: list[str], *options: str, values: tuple[int, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run mbpoll once (-1), quietly (-q), with a 1 s timeout, on the slave behind `connection`."""
    assert MBPOLL is not None
    *settings, target = connection
    return subprocess.run(
        [MBPOLL, *settings, "-1", "-q", "-o", "1", *options, target, *map(str, values)],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


def mbpoll(connection: list[str], *options: str, values: tuple[int, ...] = ()) -> dict[int, int]:
    """Run mbpoll and return {reference: value} from what it printed."""
    result = run_mbpoll(connection, *options, values=values)
    assert result.returncode == 0, f"mbpoll failed: {result.stdout}{result.stderr}"
    return {int(reference): int(value) for reference, value in VALUE.findall(result.stdout)}


def test_reads_holding_registers(connection: list[str]) -> None:
    """mbpoll reads exactly the holding registers set in the bank, reference 1 being address 0."""
    read = mbpoll(connection, "-t", "4", "-r", "1", "-c", "12")
    assert read == {address + 1: value for address, value in HOLDING.items()}


def test_reads_input_registers_zero_based(connection: list[str]) -> None:
    """With -0, mbpoll's references are addresses, and function 0x04 reads the input table."""
    read = mbpoll(connection, "-0", "-t", "3", "-r", "100", "-c", "4")
    assert read == INPUT


def test_writes_reach_the_bank(connection: list[str], bank: RegisterMap) -> None:
    """Values written by mbpoll, one register (0x06) or several (0x10), land in the bank."""
    mbpoll(connection, "-t", "4", "-r", "3", values=(4321,))
    mbpoll(connection, "-t", "4", "-r", "6", values=(11, 12, 13))
    assert bank.read(0x03, 2, 1) == [4321]
    assert bank.read(0x03, 5, 3) == [11, 12, 13]


def test_missing_register_fails_in_mbpoll(connection: list[str]) -> None:
    """mbpoll reports an error for registers the bank does not have, as with a real device."""
    result = run_mbpoll(connection, "-t", "4", "-r", "12", "-c", "2")
    assert result.returncode != 0
    assert "Illegal data address" in result.stdout + result.stderr


STATION_TOML = """
[simulation]
seed = 3

[[lines]]
kind = "rtu"
name = "rs485-1"
device_port = "tty/rs485-1.device"
agent_port = "tty/rs485-1"
baudrate = 9600

[[lines]]
kind = "tcp"
name = "tcp-1"
port = 0

[[dispensers]]
id = "D01"
line = "rs485-1"
controller_unit = 1
pattern = { idle_s = [86400, 86400] }
nozzles = [{ grade = "92", price_fen_per_l = 770, first_txn_no = 41 }, { grade = "95", price_fen_per_l = 820 }]

[[dispensers]]
id = "D02"
line = "tcp-1"
controller_unit = 1
pattern = { idle_s = [86400, 86400] }
nozzles = [{ grade = "0#", price_fen_per_l = 735 }]
"""


@pytest.fixture
def station(tmp_path: Path) -> Iterator[SimulatedStation]:
    """The simulated station of simulators/README.md's mbpoll examples, its TCP line on a free port."""
    path = tmp_path / "simulators.toml"
    path.write_text(STATION_TOML)
    with SimulatedStation(load_simulators_config(path)) as running:
        yield running


def test_readme_mbpoll_commands_read_the_profile_addresses(station: SimulatedStation) -> None:
    """The README's commands: profile address 0x0101 (nozzle 1's price) is `mbpoll -r 258`, or `-0 -r 257`;
    0x0106 (its txn_no, u32 big-endian) is `-r 263 -c 2`; nozzle 2's block is 0x20 further, over a pty or TCP."""
    endpoints: Any = station.endpoints()
    rtu = ["-m", "rtu", "-b", "9600", "-P", "none", "-a", "1", endpoints["lines"]["rs485-1"]["agent_port"]]
    tcp = ["-m", "tcp", "-p", str(endpoints["lines"]["tcp-1"]["port"]), "-a", "1", "127.0.0.1"]
    assert endpoints["lines"]["tcp-1"]["port"] > 0
    assert mbpoll(rtu, "-t", "4", "-r", "258", "-c", "1") == {258: 770}
    assert mbpoll(rtu, "-0", "-t", "4", "-r", "257", "-c", "1") == {257: 770}
    assert mbpoll(rtu, "-t", "4", "-r", "263", "-c", "2") == {263: 0, 264: 41}
    assert mbpoll(rtu, "-t", "4", "-r", str(0x0121 + 1), "-c", "1") == {0x0122: 820}
    assert mbpoll(tcp, "-t", "4", "-r", "258", "-c", "1") == {258: 735}
