"""Modbus RTU and TCP for the station's devices: sans-I/O codecs plus a thin master for each transport.

The codecs (`pdu`, `rtu`, `tcp`) turn bytes into values and back and never touch a port, so the simulators
use them for the slave side and the tests feed them frames from the specification. `master` holds the only
code here that does I/O.
"""

from drivers.modbus.errors import (
    ExceptionCode,
    ModbusCrcError,
    ModbusError,
    ModbusExceptionResponse,
    ModbusFrameError,
    ModbusLinkError,
    ModbusTimeout,
)
from drivers.modbus.master import ModbusMaster, SerialRtuMaster, TcpMaster
from drivers.modbus.pdu import FunctionCode

__all__ = [
    "ExceptionCode",
    "FunctionCode",
    "ModbusCrcError",
    "ModbusError",
    "ModbusExceptionResponse",
    "ModbusFrameError",
    "ModbusLinkError",
    "ModbusMaster",
    "ModbusTimeout",
    "SerialRtuMaster",
    "TcpMaster",
]
