"""A serial line's settings as the installer's tools try and write them: baud rate and parity (8 data bits,
1 stop bit), with the values the config allows taken from the config's own annotation."""

from __future__ import annotations

import typing
from dataclasses import dataclass

from drivers.line_settings import RtuLineSection

BAUD_RATES: tuple[int, ...] = typing.get_args(typing.get_type_hints(RtuLineSection)["baudrate"])
PARITIES: tuple[str, ...] = typing.get_args(typing.get_type_hints(RtuLineSection)["parity"])


@dataclass(frozen=True, slots=True)
class LineSetting:
    baudrate: int
    parity: str

    def __str__(self) -> str:
        return f"{self.baudrate} 8{self.parity}1"
