"""The Veeder-Root TLS serial protocol in "computer format", which most tank gauges in the field speak
(TLS-300/350/450, TLS2 and many Chinese consoles), as a sans-I/O codec plus a thin client per transport.

- `frame`: the envelope (SOH, command, data, `&&`, checksum, ETX), the checksum and the error answer;
- `fields`: fixed-width fields, ASCII-hex IEEE-754 floats and `YYMMDDHHmm` dates;
- `reports`: the i201 (inventory), i202 (deliveries) and i205 (active alarms) reports, both ways;
- `units`: the reports as the station's typed readings, in mL, micrometres and 0.01 degC (metric gauges),
  delivery times in UTC from the zone the gauge's clock is set to;
- `client`: `TlsSerialClient` and `TlsTcpClient`, the only code here that does I/O;
- `errors`: one error type per kind of failure.

What the layouts rest on: the Veeder-Root serial interface manuals (TLS-300/350 no. 576013-635, TLS2 no.
577013-767, TLS-450 no. 577013-950): sections 5 (command format: SOH, optional six-character security
code, six-character function code; an unknown command answers `<SOH>9999FF1B<ETX>`), 6.1 (computer
format and its checksum), 6.3 (ASCII hex IEEE floats) and the function pages 201, 202 and 205. The
simulated gauge (`simulators.tank_gauge`) answers with these same encoders, so the tests check the codec
against frames built by hand from those pages, never only against its own frames.
"""

from drivers.veeder_root.client import TlsClient, TlsSerialClient, TlsTcpClient
from drivers.veeder_root.errors import (
    TlsChecksumError,
    TlsCommandRefused,
    TlsError,
    TlsFrameError,
    TlsLinkError,
    TlsTimeout,
)
from drivers.veeder_root.frame import ERROR_ANSWER, Command

__all__ = [
    "ERROR_ANSWER",
    "Command",
    "TlsChecksumError",
    "TlsClient",
    "TlsCommandRefused",
    "TlsError",
    "TlsFrameError",
    "TlsLinkError",
    "TlsSerialClient",
    "TlsTcpClient",
    "TlsTimeout",
]
