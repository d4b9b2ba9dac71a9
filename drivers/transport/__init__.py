"""The links under the field protocols: a serial port and a TCP connection, and the one set of counters they keep.

Modbus RTU, Modbus TCP and the Veeder-Root TLS client differ in their frames, not in how bytes cross a line: each
opens its port or connects on first use, sends one frame, reads its answer against a deadline and within a size
limit, and after a failure makes sure a late or broken answer cannot pass for the next one. That part is here,
once; the protocols (`drivers.modbus.master`, `drivers.veeder_root.client`) keep what their frames need.

- `statistics`: `LinkStatistics`, the frozen counters the status shows per line, and `LinkCounters`, the live ones;
- `serial_port`: `SerialPort`, with the hold after a timeout and the flush until quiet;
- `tcp_connection`: `TcpConnection`, dropped after any failure;
- `wording`: `LinkWording`, how each protocol words its link's failures.
"""

from drivers.transport.serial_port import SerialPort
from drivers.transport.statistics import LinkCounters, LinkStatistics
from drivers.transport.tcp_connection import TcpConnection
from drivers.transport.wording import LinkWording

__all__ = ["LinkCounters", "LinkStatistics", "LinkWording", "SerialPort", "TcpConnection"]
