"""Sub-packets: one packet whose data segment is longer than HJ 212 allows, sent as several, and joined again.

Theory of operation: a data segment may hold at most 1,024 bytes (HJ 212-2017 and -2025 alike). A longer one
is cut between CP groups (never inside one) into packets that share the QN, each with Flag's D bit set and
PNUM (how many) and PNO (which, from 1) in its header. The receiver keeps the pieces by (MN, QN) until all
PNUM have come, then joins their groups in PNO order. The standard does not say whether the DataTime group
is repeated in every piece; here it is not (each group travels once), so a platform joins before reading.

Untrusted input: a receiver holds at most `max_pending` unfinished packets and accepts PNUM up to
`MAX_PIECES`; a piece that contradicts the others (another PNUM, a PNO out of range) is an error naming it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

from drivers.hj212.errors import Hj212FrameError
from drivers.hj212.frame import MAX_DATA_BYTES
from drivers.hj212.packet import CpGroup, Flag, Packet, encode_packet

MAX_PIECES = 64
"""The most pieces one packet may be cut into (64 KiB of data): more is a sender out of control."""
_WIDEST_NUMBER = 9999


def split_packet(packet: Packet, max_bytes: int = MAX_DATA_BYTES) -> tuple[Packet, ...]:
    """The packet itself if its segment fits, else its pieces; ValueError if one CP group alone is too long."""
    if len(encode_packet(packet)) <= max_bytes:
        return (packet,)
    if packet.flag is None:
        raise ValueError("a packet without Flag cannot be cut into sub-packets: Flag's D bit marks them")
    flag = replace(packet.flag, subpackaged=True)
    probe = replace(packet, flag=flag, pnum=_WIDEST_NUMBER, pno=_WIDEST_NUMBER)
    pieces: list[list[CpGroup]] = [[]]
    for group in packet.cp:
        if pieces[-1] and len(encode_packet(replace(probe, cp=(*pieces[-1], group)))) > max_bytes:
            pieces.append([])
        pieces[-1].append(group)
        if len(encode_packet(replace(probe, cp=tuple(pieces[-1])))) > max_bytes:
            raise ValueError(f"CP group {group[:2]!r}... alone is longer than a data segment of {max_bytes} bytes")
    if len(pieces) > MAX_PIECES:
        raise ValueError(f"the packet would need {len(pieces)} sub-packets; at most {MAX_PIECES} are sent")
    return tuple(
        replace(packet, flag=flag, cp=tuple(groups), pnum=len(pieces), pno=number)
        for number, groups in enumerate(pieces, start=1)
    )


@dataclass(frozen=True, slots=True)
class Joined:
    """A whole packet joined from its pieces (or a packet that came whole)."""

    packet: Packet
    pieces: int


class Reassembler:
    """Joins sub-packets by (MN, QN). `take` returns the whole packet once its last piece arrives, else None."""

    def __init__(self, max_pending: int = 16) -> None:
        self._max_pending = max_pending
        self._pending: OrderedDict[tuple[str, str | None], dict[int, Packet]] = OrderedDict()
        self.dropped = 0
        """Unfinished packets given up because newer ones needed the room."""

    def take(self, packet: Packet) -> Joined | None:
        if packet.flag is None or not packet.flag.subpackaged:
            if packet.pnum is not None or packet.pno is not None:
                raise Hj212FrameError("PNUM/PNO without Flag's D bit: the packet does not say it is a sub-packet")
            return Joined(packet, 1)
        total, number = packet.pnum, packet.pno
        if total is None or number is None:
            raise Hj212FrameError("Flag's D bit is set but PNUM or PNO is missing")
        if not 1 <= total <= MAX_PIECES or not 1 <= number <= total:
            raise Hj212FrameError(f"PNUM={total} PNO={number}: PNO runs from 1 to PNUM, PNUM at most {MAX_PIECES}")
        key = (packet.mn, packet.qn)
        pieces = self._pending.setdefault(key, {})
        if pieces and next(iter(pieces.values())).pnum != total:
            del self._pending[key]
            raise Hj212FrameError(f"QN={packet.qn}: PNUM={total} disagrees with the earlier pieces")
        pieces[number] = packet
        while len(self._pending) > self._max_pending:
            self._pending.popitem(last=False)
            self.dropped += 1
        if len(pieces) < total:
            return None
        del self._pending[key]
        ordered = [pieces[index] for index in range(1, total + 1)]
        first = ordered[0]
        assert first.flag is not None
        whole = replace(
            first,
            flag=Flag(first.flag.version, ack=first.flag.ack),
            cp=tuple(group for piece in ordered for group in piece.cp),
            pnum=None,
            pno=None,
        )
        return Joined(whole, total)

    @property
    def pending(self) -> int:
        return len(self._pending)
