"""The HJ 212 data segment: `QN=...;ST=...;CN=...;PW=...;MN=...;Flag=...;CP=&&...&&`, and the replies to it.

Theory of operation: QN names one exchange (the time it began, `YYYYMMDDhhmmsszzz`), ST the system (31 =
air pollution source), CN the command (2011 real-time data, 3020 site-device information, 9011 request
response, 9014 data response), PW and MN the site's password and device number. Flag's bits are V5..V0 (the
standard's version: 1 = HJ 212-2017, 2 = HJ 212-2025), D (the packet is one of several, and PNUM/PNO
follow) and A (the sender wants an answer). An upload with A set is answered by the platform with CN=9014
echoing its QN; a request the platform refuses is answered with CN=9011 and a QnRtn code. CP holds groups
separated by `;`, items within a group by `,`, each `code-Suffix=value` (`i41020-Info=1.05`,
`a34004-Rtd=12.1`, `DataTime=20260127081502`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from drivers.hj212.errors import Hj212FrameError

STANDARD_VERSIONS = {"2005": 0, "2017": 1, "2025": 2}
"""Flag's V5..V0 for each edition of the standard (HJ/T 212-2005 had no Flag, hence 0)."""
SYSTEM_ST = "91"
"""ST of the system-interaction commands, the platform's replies among them."""
CN_REQUEST_RESPONSE = "9011"
CN_EXECUTION_RESULT = "9012"
CN_DATA_RESPONSE = "9014"
CN_HEARTBEAT = "9015"
"""HJ 212-2025 Table 12: a heartbeat, sent to show the link is up."""
CN_GET_TIME = "1011"
"""The platform asks for the data logger's time (answered with SystemTime)."""
CN_SET_TIME = "1012"
"""The platform sets the data logger's time (SystemTime in its CP)."""
CP_OPEN = "CP=&&"
CP_CLOSE = "&&"
_RESERVED = re.compile(r"[;,=&\r\n]")
_QN = re.compile(r"[0-9]{17}")
_ST = re.compile(r"[0-9]{2}")
_CN = re.compile(r"[0-9]{4}")
_HEADER_KEYS = ("QN", "ST", "CN", "PW", "MN", "Flag", "RF", "PNUM", "PNO")
"""RF (HJ 2025 Table 3: "1" marks data sent late, absent otherwise) is read and left alone."""
_REQUIRED_KEYS = ("ST", "CN", "PW", "MN")


class QnRtn(IntEnum):
    """The platform's verdict on a request in a 9011 request response."""

    READY = 1
    REFUSED = 2
    BAD_PW = 3
    BAD_MN = 4
    BAD_ST = 5
    BAD_FLAG = 6
    BAD_QN = 7
    BAD_CN = 8
    BAD_CRC = 9
    UNKNOWN = 100


class ExeRtn(IntEnum):
    """The data logger's result in a 9012 execution result, after it took a request with QnRtn=1."""

    SUCCESS = 1
    FAILED = 2
    BAD_CONDITION = 3
    NO_DATA = 100


@dataclass(frozen=True, slots=True)
class Flag:
    """Flag's three parts; `value` is the number on the wire."""

    version: int
    subpackaged: bool = False
    ack: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.version <= 63:
            raise ValueError(f"Flag version {self.version} does not fit the six bits V5..V0 (0..63)")

    @classmethod
    def for_standard(cls, standard: str, *, ack: bool) -> Flag:
        """The Flag of a single packet under an edition of the standard ("2017" or "2025")."""
        if standard not in STANDARD_VERSIONS:
            raise ValueError(f"unknown HJ 212 edition {standard!r}; known: {', '.join(STANDARD_VERSIONS)}")
        return cls(STANDARD_VERSIONS[standard], ack=ack)

    @classmethod
    def from_value(cls, value: int) -> Flag:
        if not 0 <= value <= 255:
            raise ValueError(f"Flag {value} is not a byte (0..255)")
        return cls(value >> 2, subpackaged=bool(value & 0b10), ack=bool(value & 0b01))

    @property
    def value(self) -> int:
        return self.version << 2 | self.subpackaged << 1 | self.ack

    @property
    def standard(self) -> str | None:
        """The edition this Flag names, or None for a version number no edition has."""
        return next((name for name, bits in STANDARD_VERSIONS.items() if bits == self.version), None)


CpGroup = tuple[tuple[str, str], ...]
"""One `;`-separated group of CP: its `key=value` items in order."""


@dataclass(frozen=True, slots=True)
class Packet:
    """A data segment. `qn` and `flag` are None only in packets from senders that omit them (HJ/T 212-2005)."""

    qn: str | None
    st: str
    cn: str
    pw: str
    mn: str
    flag: Flag | None
    cp: tuple[CpGroup, ...] = ()
    pnum: int | None = None
    pno: int | None = None

    @property
    def wants_answer(self) -> bool:
        return self.flag is not None and self.flag.ack

    def cp_items(self) -> dict[str, str]:
        """Every CP item by key, across groups (a key repeated in a later group wins)."""
        return {key: value for group in self.cp for key, value in group}


def format_qn(moment: datetime) -> str:
    """QN for a moment: local time to the millisecond, `YYYYMMDDhhmmsszzz`."""
    return moment.strftime("%Y%m%d%H%M%S") + f"{moment.microsecond // 1000:03d}"


def format_data_time(moment: datetime) -> str:
    """CP's DataTime for a moment: local time to the second, `YYYYMMDDhhmmss`."""
    return moment.strftime("%Y%m%d%H%M%S")


def encode_cp(groups: tuple[CpGroup, ...]) -> str:
    """CP's content, between `CP=&&` and `&&`; ValueError for a key or value holding a separator."""
    for group in groups:
        for key, value in group:
            if not key or _RESERVED.search(key) or _RESERVED.search(value):
                raise ValueError(f"CP item {key!r}={value!r}: keys and values may not hold ; , = & or line breaks")
    return ";".join(",".join(f"{key}={value}" for key, value in group) for group in groups)


def decode_cp(text: str) -> tuple[CpGroup, ...]:
    """The groups of a CP's content; Hj212FrameError for an item without `=`."""
    if not text:
        return ()
    groups = []
    for group_text in text.split(";"):
        items = []
        for item in group_text.split(","):
            key, equals, value = item.partition("=")
            if not equals or not key:
                raise Hj212FrameError(f"CP item {item!r} is not key=value")
            items.append((key, value))
        groups.append(tuple(items))
    return tuple(groups)


def encode_packet(packet: Packet) -> bytes:
    """The data segment of a packet, UTF-8; ValueError for a field that would break the segment's syntax."""
    header = [("QN", packet.qn), ("ST", packet.st), ("CN", packet.cn), ("PW", packet.pw), ("MN", packet.mn)]
    if packet.flag is not None:
        header.append(("Flag", str(packet.flag.value)))
    if packet.pnum is not None or packet.pno is not None:
        header += [("PNUM", str(packet.pnum)), ("PNO", str(packet.pno))]
    fields = []
    for key, value in header:
        if value is None:
            continue
        if _RESERVED.search(value):
            raise ValueError(f"{key}={value!r}: header fields may not hold ; , = & or line breaks")
        fields.append(f"{key}={value}")
    return (";".join(fields) + f";{CP_OPEN}{encode_cp(packet.cp)}{CP_CLOSE}").encode("utf-8")


def decode_packet(data: bytes) -> Packet:
    """The packet in a data segment; Hj212FrameError naming the field that is missing or malformed."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Hj212FrameError(f"data segment is not UTF-8 text: {exc}") from exc
    cp_at = text.find(CP_OPEN)
    if cp_at < 0 or not text.endswith(CP_CLOSE) or len(text) < cp_at + len(CP_OPEN) + len(CP_CLOSE):
        raise Hj212FrameError(f"data segment {text[:60]!r} has no CP=&&...&& at its end")
    if cp_at and text[cp_at - 1] != ";":
        raise Hj212FrameError(f"CP must follow a ';' in {text[: cp_at + 5]!r}")
    header = _header_fields(text[: max(cp_at - 1, 0)])
    missing = [key for key in _REQUIRED_KEYS if key not in header]
    if missing:
        raise Hj212FrameError(f"data segment lacks {', '.join(missing)}: {text[:80]!r}")
    _check("QN", header.get("QN"), _QN, "17 digits, YYYYMMDDhhmmsszzz")
    _check("ST", header["ST"], _ST, "two digits")
    _check("CN", header["CN"], _CN, "four digits")
    return Packet(
        qn=header.get("QN"),
        st=header["ST"],
        cn=header["CN"],
        pw=header["PW"],
        mn=header["MN"],
        flag=None if "Flag" not in header else _flag(header["Flag"]),
        cp=decode_cp(text[cp_at + len(CP_OPEN) : -len(CP_CLOSE)]),
        pnum=_number("PNUM", header.get("PNUM")),
        pno=_number("PNO", header.get("PNO")),
    )


def _header_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for field in text.split(";") if text else []:
        key, equals, value = field.partition("=")
        if not equals:
            raise Hj212FrameError(f"header field {field!r} is not key=value")
        if key not in _HEADER_KEYS:
            raise Hj212FrameError(f"unknown header field {key!r}; HJ 212 has {', '.join(_HEADER_KEYS)}")
        if key in fields:
            raise Hj212FrameError(f"header field {key} appears twice")
        fields[key] = value
    return fields


def _check(key: str, value: str | None, pattern: re.Pattern[str], expected: str) -> None:
    if value is not None and not pattern.fullmatch(value):
        raise Hj212FrameError(f"{key}={value!r} is not {expected}")


def _flag(text: str) -> Flag:
    if not text.isdigit():
        raise Hj212FrameError(f"Flag={text!r} is not a decimal number")
    try:
        return Flag.from_value(int(text))
    except ValueError as exc:
        raise Hj212FrameError(str(exc)) from exc


def _number(key: str, text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit():
        raise Hj212FrameError(f"{key}={text!r} is not a decimal number")
    return int(text)


def data_response(request: Packet, version: int) -> Packet:
    """The platform's CN=9014 answer to an upload: the upload's QN, PW and MN echoed, no answer wanted."""
    return Packet(request.qn, SYSTEM_ST, CN_DATA_RESPONSE, request.pw, request.mn, Flag(version), ())


def request_response(request: Packet, verdict: QnRtn, version: int) -> Packet:
    """The CN=9011 answer with a QnRtn verdict: the platform's on a refused upload, the data logger's on the
    platform's request (1 = taken, to be followed by the result)."""
    cp = ((("QnRtn", str(int(verdict))),),)
    return Packet(request.qn, SYSTEM_ST, CN_REQUEST_RESPONSE, request.pw, request.mn, Flag(version), cp)


def execution_result(request: Packet, result: ExeRtn, version: int) -> Packet:
    """The data logger's CN=9012 answer that ends the exchange a request began."""
    cp = ((("ExeRtn", str(int(result))),),)
    return Packet(request.qn, SYSTEM_ST, CN_EXECUTION_RESULT, request.pw, request.mn, Flag(version), cp)
