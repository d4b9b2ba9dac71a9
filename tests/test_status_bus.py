"""`station-agent status --json` carries each line's bus counters as its links counted them, in one shape for a
Modbus line and a tank-gauge line, and `status` reads them back typed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from status_sample import device, sample_status

from agent.field.poller import LineStatus
from agent.status import read_status, status_json
from drivers.modbus import ModbusLinkError, SerialRtuMaster
from drivers.veeder_root import TlsLinkError, TlsTcpClient
from simulators.broker import free_loopback_port

UNPLUGGED = {
    "requests": 1,
    "ok": 0,
    "timeouts": 0,
    "crc_errors": 0,
    "frame_errors": 0,
    "refusals": 0,
    "link_errors": 1,
    "bytes_sent": 0,
    "bytes_received": 0,
}
"""The keys docs/contract/status-command.json names for a line's `bus`, as a script reads them."""


def test_a_modbus_line_and_a_gauge_line_show_their_bus_counters_in_one_shape(tmp_path: Path) -> None:
    """An unplugged RTU adapter and a refused gauge connection each show one request and one link error under
    the same keys in the JSON, and the snapshot reads back equal."""
    master = SerialRtuMaster(tmp_path / "ttyUSB9", timeout_s=0.05)
    with pytest.raises(ModbusLinkError):
        master.read_registers(1, 0x03, 0, 1)
    gauge = TlsTcpClient("127.0.0.1", free_loopback_port(), timeout_s=0.5)
    with pytest.raises(TlsLinkError):
        gauge.request("i201")
    lines = (
        LineStatus("rs485-1", (device("pc1", "offline"),), master.statistics()),
        LineStatus("gauge-1", (device("tg1", "offline"),), gauge.statistics()),
    )
    status = sample_status(lines=lines)
    document = status_json(status)
    assert [line["bus"] for line in json.loads(document)["lines"]] == [UNPLUGGED, UNPLUGGED]
    assert read_status(document) == status
