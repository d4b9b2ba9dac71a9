"""The platform's requests a filling station's data logger answers, decided without I/O.

Theory of operation: HJ 212 requests run request -> 9011 (QnRtn: 1 taken, else why not) -> the answer's
frames -> 9012 (ExeRtn), every frame carrying the request's QN. Three kinds apply to a filling station:
- 1011, the logger's time: answered with `SystemTime` (the agent's clock, in the station's zone);
- 1012, set the logger's time: refused (QnRtn=2). The box's clock belongs to NTP and systemd; a platform
  that steps it would break the records' time order, so the agent says no and logs the platform's time
  and the difference, for the staff to check NTP;
- a data command of the city profile with `BeginTime` and `EndTime`: the records of that period again,
  taken from the outbox by DataTime, then ExeRtn=1 (or 100 when there were none).
Anything else is not for this logger and gets QnRtn=8 (CN unknown). A request whose period is unreadable,
reversed or longer than allowed gets QnRtn=2, with the reason in the log.

Checked first, before any of that: a request whose PW, MN or CP could not be written back (a `;`, `,`, `=` or `&`
inside a value: `PW=1=2`, `PolId=a&b`) is malformed and gets QnRtn=2 (or, without a QN to answer, nothing),
since every answer echoes its fields; one with another PW or MN gets QnRtn=3 or 4 and nothing of the station's.
Refusals carry the station's own PW and MN, never the request's, so that they can always be written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from drivers.hj212.packet import (
    CN_GET_TIME,
    CN_SET_TIME,
    ExeRtn,
    Flag,
    Packet,
    QnRtn,
    encode_packet,
    execution_result,
    format_data_time,
    request_response,
)

DATA_TIME = re.compile(r"[0-9]{14}")
"""YYYYMMDDhhmmss with every field zero-padded: `2026127000000` (13 digits) is not a time, whatever strptime says."""


@dataclass(frozen=True, slots=True)
class TimeQuery:
    request: Packet


@dataclass(frozen=True, slots=True)
class TimeSet:
    request: Packet
    platform_time: str


@dataclass(frozen=True, slots=True)
class Extract:
    """The records of one CN whose DataTime lies in [begin, end] (station time, naive)."""

    request: Packet
    begin: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Refused:
    request: Packet
    verdict: QnRtn
    reason: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """A malformed request without a QN: there is nothing an answer could name."""

    request: Packet
    reason: str


Request = TimeQuery | TimeSet | Extract | Refused | Ignored


@dataclass(frozen=True, slots=True)
class Station:
    """The data logger's own PW and MN: a request must carry them, and refusals are signed with them."""

    pw: str
    mn: str


def read_request(packet: Packet, data_cns: frozenset[str], zone: ZoneInfo, max_days: int, station: Station) -> Request:
    """What a frame from the platform asks of the data logger (it is not an answer to one of our frames)."""
    own = replace(packet, pw=station.pw, mn=station.mn, cp=(), pnum=None, pno=None)
    try:
        encode_packet(packet)
    except ValueError as exc:
        if packet.qn is None:
            return Ignored(packet, f"malformed request without QN: {exc}")
        return Refused(own, QnRtn.REFUSED, f"malformed request: {exc}")
    if packet.pw != station.pw:
        return Refused(own, QnRtn.BAD_PW, f"PW={packet.pw!r} is not this data logger's password")
    if packet.mn != station.mn:
        return Refused(own, QnRtn.BAD_MN, f"MN={packet.mn!r} is not this data logger's MN {station.mn}")
    items = packet.cp_items()
    if packet.cn == CN_GET_TIME:
        return TimeQuery(packet)
    if packet.cn == CN_SET_TIME:
        return TimeSet(packet, items.get("SystemTime", ""))
    if packet.cn not in data_cns:
        return Refused(packet, QnRtn.BAD_CN, f"CN={packet.cn} is not a command this data logger takes")
    begin, end = items.get("BeginTime"), items.get("EndTime")
    if begin is None or end is None:
        return Refused(packet, QnRtn.REFUSED, f"CN={packet.cn} without BeginTime and EndTime asks for no period")
    start, stop = parse_data_time(begin), parse_data_time(end)
    if start is None or stop is None:
        return Refused(packet, QnRtn.REFUSED, f"BeginTime={begin!r} or EndTime={end!r} is not YYYYMMDDhhmmss")
    if stop < start:
        return Refused(packet, QnRtn.REFUSED, f"EndTime {end} is before BeginTime {begin}")
    if stop.replace(tzinfo=zone) - start.replace(tzinfo=zone) > timedelta(days=max_days):
        return Refused(packet, QnRtn.REFUSED, f"{begin}..{end} is longer than the {max_days} days one request may ask")
    return Extract(packet, start, stop)


def parse_data_time(text: str | None) -> datetime | None:
    """A DataTime as a naive station-time datetime; None unless exactly 14 digits naming a real moment."""
    if text is None or not DATA_TIME.fullmatch(text):
        return None
    try:
        return datetime(
            int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]), int(text[12:14])
        )
    except ValueError:
        return None


def taken(request: Packet, version: int) -> Packet:
    """9011 QnRtn=1: the request is taken, its answer follows."""
    return request_response(request, QnRtn.READY, version)


def refusal(refused: Refused, version: int) -> Packet:
    return request_response(refused.request, refused.verdict, version)


def time_answer(request: Packet, now: datetime, version: int) -> Packet:
    """The data logger's time, in a packet of the request's CN and QN (PolId echoed when it was given)."""
    items = request.cp_items()
    group = (("PolId", items["PolId"]),) if "PolId" in items else ()
    cp = ((*group, ("SystemTime", format_data_time(now))),)
    return Packet(request.qn, request.st, request.cn, request.pw, request.mn, Flag(version), cp)


def finished(request: Packet, answered: int, version: int) -> Packet:
    """9012 at the end of an extract: done, or 100 (no data) when the period had no records."""
    return execution_result(request, ExeRtn.SUCCESS if answered else ExeRtn.NO_DATA, version)


def in_period(data_time: str | None, extract: Extract) -> bool:
    """Whether a DataTime lies within the extract's period, compared as times (an unreadable one does not)."""
    moment = parse_data_time(data_time)
    return moment is not None and extract.begin <= moment <= extract.end
