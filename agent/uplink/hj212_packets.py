"""Outbox records to HJ 212 frames, under a city profile: pure, no socket, no clock.

One record makes one frame. HJ 212 gives a packet one DataTime, and our records each have their own moment
(a fuelling's end, a nozzle's day), so several records in one packet would need several DataTimes, which
platforms do not read. One record a frame also makes the platform's answer name exactly one record (by QN),
so progress through the outbox is never ambiguous.

QN is the record's own time in the station's zone, to the millisecond, so a re-sent record carries the QN
and DataTime it had the first time and the platform can drop the duplicate. Two records made in the same
millisecond would share a QN; the second is moved on by a millisecond (records go out in seq order, so the
same walk always gives the same QNs).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

from agent.ledger.outbox import StoredRecord
from agent.uplink.hj212_settings import Hj212Section
from drivers.hj212.frame import STANDARD_EXAMPLE_RULES, SealRules, encode_frame, seal_frame
from drivers.hj212.packet import CpGroup, Flag, Packet, encode_packet, format_data_time, format_qn
from drivers.hj212.profile import CityProfile, ItemMapping, RecordMapping
from drivers.hj212.sm4 import Sm4Key, must_encrypt
from drivers.hj212.subpackets import split_packet


class UnsendableRecord(ValueError):
    """A mapped record that cannot become a frame (a required value missing, a time unreadable); it is skipped."""


@dataclass(frozen=True, slots=True)
class OutgoingFrame:
    seq: int
    qn: str
    cn: str
    frame: bytes
    """The bytes on the wire: one frame, or one per sub-packet when the data segment was too long."""
    pieces: int = 1


@dataclass(frozen=True, slots=True)
class Wire:
    """How packets become bytes on this link: cut into sub-packets when too long, and with `key`, the data
    area of every command the standard wants encrypted sealed with SM4 under `rules`."""

    key: Sm4Key | None = None
    rules: SealRules = STANDARD_EXAMPLE_RULES

    def encode(self, packet: Packet) -> tuple[bytes, int]:
        """The frames of a packet, joined, and how many there are; ValueError if it cannot be sent."""
        pieces = split_packet(packet)
        return b"".join(self._frame(piece) for piece in pieces), len(pieces)

    def _frame(self, packet: Packet) -> bytes:
        data = encode_packet(packet)
        if self.key is not None and must_encrypt(packet.cn):
            return seal_frame(data, self.key, self.rules)
        return encode_frame(data)


def nozzle_codes(profile: CityProfile, station_code: str, nozzles: Sequence[tuple[str, str | None]]) -> dict[str, str]:
    """What each nozzle is called on the wire: its explicit code if it has one, else the profile's format with
    its gun number (its 1-based place in `nozzles`, the station config's order), else its id.

    `nozzles` are (id, explicit code or None) pairs in the config's order."""
    codes: dict[str, str] = {}
    for gun, (nozzle, explicit) in enumerate(nozzles, start=1):
        codes[nozzle] = explicit or profile.code_of_nozzle(station_code, gun) or nozzle
    return codes


class FrameMaker:
    """Makes the frame for each record the profile maps; the same record always gets the same frame.

    `nozzles` (see `nozzle_codes`) turn the records' nozzle ids into the city's nozzle codes; without them a
    nozzle goes out under its id. `wire` says how the frames are encoded; the uplink replaces it when it reads
    the key anew."""

    def __init__(
        self,
        settings: Hj212Section,
        profile: CityProfile,
        zone: ZoneInfo,
        nozzles: Sequence[tuple[str, str | None]] = (),
    ) -> None:
        self._profile = profile
        self._nozzle_codes = nozzle_codes(profile, settings.mn, nozzles)
        self._zone = zone
        self._st = settings.st or profile.st
        self._pw = settings.pw
        self._mn = settings.mn
        self._flag = Flag.for_standard(settings.version, ack=settings.ack)
        self.wire = Wire()

    def frame_for(self, record: StoredRecord) -> OutgoingFrame | None:
        """The frame for a record, or None if the profile does not send it; UnsendableRecord if it cannot be
        sent."""
        packet = self.packet_for(record)
        if packet is None:
            return None
        assert packet.qn is not None
        try:
            frame, pieces = self.wire.encode(packet)
        except ValueError as exc:
            raise UnsendableRecord(f"{packet.cn} seq {record.seq}: {exc}") from exc
        return OutgoingFrame(record.seq, packet.qn, packet.cn, frame, pieces)

    def packet_for(self, record: StoredRecord, *, flag: Flag | None = None, qn: str | None = None) -> Packet | None:
        """The packet for a record (with another Flag or QN when it answers a request), or None if the profile
        does not send it; UnsendableRecord if a value it needs is missing."""
        document = json.loads(record.canonical)
        mapping = self._profile.mapping_for(document["type"])
        body = document["body"]
        if mapping is None or not mapping.selects(body):
            return None
        data_time = self._moment(body.get(mapping.time_field) if mapping.time_field else document["ts"], mapping)
        cp: list[CpGroup] = [(("DataTime", format_data_time(data_time)),)]
        for item in mapping.items:
            value = _item_text(item, self._wire_value(item, body.get(item.field)), mapping)
            if value is not None:
                cp.append(((item.key, value),))
        qn = qn or format_qn(self._qn_moment(document["ts"], record.seq))
        return Packet(qn, self._st, mapping.cn, self._pw, self._mn, flag or self._flag, tuple(cp))

    def _wire_value(self, item: ItemMapping, value: object) -> object:
        """A nozzle's id becomes its code; every other value goes as it is."""
        if item.field == "nozzle" and isinstance(value, str):
            return self._nozzle_codes.get(value, value)
        return value

    def _moment(self, text: object, mapping: RecordMapping) -> datetime:
        """A record time (RFC 3339) or day (YYYY-MM-DD, meaning local midnight) in the station's zone."""
        if not isinstance(text, str):
            raise UnsendableRecord(f"{mapping.record_type}: time field {mapping.time_field!r} is {text!r}, not text")
        try:
            if len(text) == len("YYYY-MM-DD"):
                return datetime.combine(date.fromisoformat(text), datetime.min.time(), self._zone)
            return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(self._zone)
        except ValueError as exc:
            raise UnsendableRecord(f"{mapping.record_type}: time {text!r} is not RFC 3339 or YYYY-MM-DD") from exc

    def _qn_moment(self, ts: str, seq: int) -> datetime:
        """The record's second, with its seq (modulo 1,000) as the milliseconds. A platform drops duplicates by
        QN, so a QN must name one record, and a re-send (after any restart) must carry the same one: records made
        in the same millisecond (a day's verdicts, one per nozzle) still differ, and no state is needed. Two
        records share a QN only if the agent made more than a thousand records within one second."""
        moment = datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(self._zone)
        return moment.replace(microsecond=0) + timedelta(milliseconds=seq % 1000)


def _item_text(item: ItemMapping, value: object, mapping: RecordMapping) -> str | None:
    """The text on the wire for one item, None to leave an optional item out; UnsendableRecord if required."""
    if value is None:
        if item.required:
            raise UnsendableRecord(f"{mapping.record_type}: {item.field} is missing or null, and {item.key} needs it")
        return None
    if item.values is not None:
        text = item.values.get(str(value))
        if text is None:
            raise UnsendableRecord(
                f"{mapping.record_type}: {item.field}={value!r} has no code in the profile's values for {item.key}"
            )
        return text
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise UnsendableRecord(f"{mapping.record_type}: {item.field}={value!r} is not a number or text")
    if isinstance(value, str):
        return value
    number = Decimal(value if isinstance(value, int) else str(value)).scaleb(-item.scale)
    decimals = item.scale if item.decimals is None else item.decimals
    return f"{number.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN):f}"
