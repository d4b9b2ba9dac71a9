"""The reference HJ 212 platform: a TCP server that checks every frame and answers as an ecology platform does.

Each frame is checked for its length, its CRC (HJ 212's, not Modbus'), its fields, and, given a city
profile, its ST, CN and codes (and PW and MN when given). A frame that passes is accepted: written as one JSON
line to `out` and, when its Flag asks for an answer, answered with CN=9014 echoing its QN. A frame that
fails is counted under its reason; if it can still be read and asks for an answer, it gets CN=9011 with the
QnRtn that says why (9 for a CRC error). A frame seen before (same MN and QN) is answered again, as a
platform must for a sender that missed the answer, but counted as a duplicate and written once.

HJ 212-2025: given the station's SM4 key (`sm4_key`, `--sm4-key-file`) it reads encrypted data areas and
checks the length and CRC under the configured rules, and refuses a data command (CN 2000-2999, 1014, 3020)
that arrives unencrypted; without a key an encrypted frame is rejected as `bad_cipher`. Sub-packets (PNUM/PNO)
are joined before the frame is judged; heartbeats (CN=9015) are counted, not stored. Once a data logger has
sent its first frame, the receiver can ask it for its time (`ask_time`) and for a period's data again
(`extract=(FROM, TO)`), and checks the answers: 9011 then the answer then 9012, every frame under the
request's QN, the extracted frames' DataTimes within the period. The summary's `requests` say what came back.

Python API: `Hj212Receiver(out_path, profile=...)`, `start()`, `port`, `summary()`, `accepted()`, `stop()`;
`answering = False` makes it take frames and keep silent (a platform that does not answer). Command line:
`station-sim hj212 --port P --out FILE [--profile TOML] [--sm4-key-file F] [--ask-time] [--extract FROM TO]`,
which prints the summary as one JSON line when stopped (exit 0; 2 when it cannot start, with a JSON error line).
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, Literal
from zoneinfo import ZoneInfo

from drivers.hj212.errors import Hj212CrcError, Hj212Error
from drivers.hj212.frame import (
    CRC_DIGITS,
    HEAD,
    LENGTH_DIGITS,
    TAIL,
    FrameSplitter,
    SealRules,
    encode_frame,
    open_frame,
)
from drivers.hj212.packet import (
    CN_EXECUTION_RESULT,
    CN_GET_TIME,
    CN_HEARTBEAT,
    CN_REQUEST_RESPONSE,
    Flag,
    Packet,
    QnRtn,
    data_response,
    decode_packet,
    encode_packet,
    format_qn,
    request_response,
)
from drivers.hj212.profile import CityProfile
from drivers.hj212.profile_validation import CityProfileError, load_city_profile
from drivers.hj212.sm4 import Sm4Key, must_encrypt
from drivers.hj212.subpackets import Reassembler
from simulators.exits import OK, cannot_run
from simulators.serving import ServerError, TcpListener, TcpServing

KNOWN_EDITIONS = ("2017", "2025")
REJECTIONS_KEPT = 50
"""Rejected frames whose reasons the summary lists word for word (the counts cover all of them)."""
TIME_FORMAT = "%Y%m%d%H%M%S"


class Hj212ReceiverError(ServerError):
    """The receiver could not listen or stop; the message says why."""


class _Refused(Exception):
    def __init__(self, verdict: QnRtn, reason: str) -> None:
        super().__init__(reason)
        self.verdict = verdict


class Hj212Receiver(TcpServing):
    listening_for = "the HJ 212 receiver"

    def __init__(
        self,
        out_path: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        profile: CityProfile | None = None,
        pw: str | None = None,
        mn: str | None = None,
        sm4_key: Sm4Key | None = None,
        rules: SealRules | None = None,
        ask_time: bool = False,
        extract: tuple[str, str] | None = None,
        extract_cn: str | None = None,
        zone: ZoneInfo | None = None,
    ) -> None:
        """`extract`: a period (FROM, TO as YYYYMMDDhhmmss, station time) to ask for again under `extract_cn`
        (default: the profile's first CN, else 3020); `zone` is the station's (default Asia/Shanghai), for the
        offset of the logger's clock."""
        super().__init__()
        self._listener = TcpListener(host, port)
        self._out_path = out_path
        self._profile = profile
        self._pw = pw
        self._mn = mn
        self.answering = True
        self._lock = threading.Lock()
        self._seen: set[tuple[str, str]] = set()
        self._sender: Packet | None = None
        self._accepted: list[dict[str, Any]] = []
        self._counts: Counter[str] = Counter()
        self._rejected: Counter[str] = Counter()
        self._rejections: list[str] = []
        self._by_cn: Counter[str] = Counter()
        self._by_code: Counter[str] = Counter()
        self._key = sm4_key
        self._rules = rules or SealRules()
        self._reassembler = Reassembler()
        self._zone = zone or ZoneInfo("Asia/Shanghai")
        default_cn = sorted(profile.commands)[0] if profile is not None else "3020"
        self._to_ask: list[tuple[str, str, tuple[tuple[str, str], ...]]] = []
        if ask_time:
            self._to_ask.append(("time", CN_GET_TIME, ()))
        if extract is not None:
            self._to_ask.append(
                ("extract", extract_cn or default_cn, (("BeginTime", extract[0]), ("EndTime", extract[1])))
            )
        self._asked: dict[str, dict[str, Any]] = {}

    def accepted(self) -> list[dict[str, Any]]:
        """Every frame accepted once, in arrival order, as written to `out`."""
        with self._lock:
            return list(self._accepted)

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "frames": self._counts["frames"],
                "accepted": len(self._accepted),
                "duplicates": self._counts["duplicates"],
                "answered": self._counts["answered"],
                "rejected": dict(self._rejected),
                "rejections": list(self._rejections),
                "by_cn": dict(self._by_cn),
                "by_code": dict(self._by_code),
                "discarded_bytes": self._counts["discarded"],
                "encrypted": self._counts["encrypted"],
                "heartbeats": self._counts["heartbeats"],
                "subpackets": {"joined": self._counts["joined"], "pieces": self._counts["pieces"]},
                "requests": [dict(asked) for asked in self._asked.values()],
            }

    def _error(self, message: str) -> Exception:
        return Hj212ReceiverError(message)

    def _serve_connection(self, connection: socket.socket) -> None:
        splitter = FrameSplitter()
        try:
            while not self._stopping.is_set():
                try:
                    chunk = connection.recv(4096)
                except TimeoutError:
                    continue
                frames = splitter.feed(chunk) if chunk else splitter.flush()
                for raw in frames:
                    answer = self.take(raw)
                    if answer is not None and self.answering:
                        connection.sendall(answer)
                        self._count("answered")
                    self._ask(connection)
                if not chunk:
                    return
        except OSError:
            return
        finally:
            with self._lock:
                self._counts["discarded"] += splitter.discarded
            self._listener.hang_up(connection)

    def _ask(self, connection: socket.socket) -> None:
        """Sends the requests not yet sent, once a data logger has shown its MN and PW with a frame."""
        with self._lock:
            sender = self._sender
            if sender is None or not self._to_ask:
                return
            asking, self._to_ask = self._to_ask, []
        for number, (kind, cn, cp) in enumerate(asking):
            now = datetime.now(self._zone)
            qn = format_qn(now.replace(microsecond=(now.microsecond // 1000 + number) % 1000 * 1000))
            request = Packet(
                qn, sender.st, cn, sender.pw, sender.mn, Flag(_version(sender), ack=True), (cp,) if cp else ()
            )
            entry: dict[str, Any] = {"kind": kind, "qn": qn, "cn": cn, "qn_rtn": None, "exe_rtn": None}
            if kind == "extract":
                entry.update(begin=cp[0][1], end=cp[1][1], frames=0, outside_period=0)
            with self._lock:
                self._asked[qn] = entry
            connection.sendall(encode_frame(encode_packet(request)))

    def take(self, raw: bytes) -> bytes | None:
        """Judge one frame as received; the answer to send back, if its Flag asks for one."""
        self._count("frames")
        try:
            opened = open_frame(raw, self._key, self._rules)
            self._count("encrypted", opened.encrypted)
            joined = self._reassembler.take(decode_packet(opened.data))
        except Hj212CrcError as exc:
            self._reject(exc.reason, str(exc))
            return self._refusal_to_unchecked(raw, QnRtn.BAD_CRC)
        except Hj212Error as exc:
            self._reject(exc.reason, str(exc))
            return None
        if joined is None:
            self._count("pieces")
            return None
        packet = joined.packet
        if joined.pieces > 1:
            self._count("joined")
            self._count("pieces", joined.pieces)
        if packet.cn == CN_HEARTBEAT:
            self._count("heartbeats")
            return None
        with self._lock:
            self._sender = self._sender or packet
            asked = self._asked.get(packet.qn or "")
        if asked is not None:
            self._answer_to_request(asked, packet)
            return None
        if self._key is not None and must_encrypt(packet.cn) and not opened.encrypted:
            self._reject("refused", f"QN={packet.qn} CN={packet.cn}: HJ 212-2025 wants this command encrypted")
            return self._answer(packet, request_response(packet, QnRtn.REFUSED, _version(packet)))
        try:
            self._check(packet)
        except _Refused as exc:
            self._reject("refused", f"QN={packet.qn} CN={packet.cn}: {exc}")
            return self._answer(packet, request_response(packet, exc.verdict, _version(packet)))
        self._accept(packet)
        return self._answer(packet, data_response(packet, _version(packet)))

    def _answer_to_request(self, asked: dict[str, Any], packet: Packet) -> None:
        """Notes what the data logger said to one of our requests: 9011, 9012, its time, or extracted data."""
        items = packet.cp_items()
        with self._lock:
            if packet.cn == CN_REQUEST_RESPONSE:
                asked["qn_rtn"] = items.get("QnRtn")
            elif packet.cn == CN_EXECUTION_RESULT:
                asked["exe_rtn"] = items.get("ExeRtn")
            elif asked["kind"] == "time" and packet.cn == CN_GET_TIME:
                asked["system_time"] = items.get("SystemTime")
                asked["offset_s"] = _offset_s(items.get("SystemTime", ""), self._zone)
            elif asked["kind"] == "extract" and packet.cn == asked["cn"]:
                asked["frames"] += 1
                data_time = items.get("DataTime", "")
                asked["outside_period"] += not asked["begin"] <= data_time <= asked["end"]
            else:
                asked.setdefault("unexpected", []).append(packet.cn)

    def _check(self, packet: Packet) -> None:
        if packet.qn is None:
            raise _Refused(QnRtn.BAD_QN, "no QN")
        if packet.flag is None or packet.flag.standard not in KNOWN_EDITIONS:
            found = None if packet.flag is None else packet.flag.value
            raise _Refused(QnRtn.BAD_FLAG, f"Flag {found} names no edition of {', '.join(KNOWN_EDITIONS)}")
        if self._pw is not None and packet.pw != self._pw:
            raise _Refused(QnRtn.BAD_PW, f"PW {packet.pw!r} is not this site's")
        if self._mn is not None and packet.mn != self._mn:
            raise _Refused(QnRtn.BAD_MN, f"MN {packet.mn!r} is not this site's")
        items = packet.cp_items()
        data_time = items.get("DataTime", "")
        if len(data_time) != 14 or not data_time.isdigit():
            raise _Refused(QnRtn.REFUSED, f"DataTime {data_time!r} is not YYYYMMDDhhmmss")
        if self._profile is None:
            return
        if packet.st != self._profile.st:
            raise _Refused(QnRtn.BAD_ST, f"ST {packet.st} is not the profile's {self._profile.st}")
        if packet.cn not in self._profile.commands:
            raise _Refused(QnRtn.BAD_CN, f"CN {packet.cn} is not among {sorted(self._profile.commands)}")
        unknown = sorted(set(items) - self._profile.known_keys(packet.cn))
        if unknown:
            raise _Refused(QnRtn.REFUSED, f"unknown code(s) {', '.join(unknown)} for CN {packet.cn}")

    def _accept(self, packet: Packet) -> None:
        assert packet.qn is not None and packet.flag is not None
        entry: dict[str, Any] = {
            "qn": packet.qn,
            "st": packet.st,
            "cn": packet.cn,
            "mn": packet.mn,
            "flag": packet.flag.value,
            "edition": packet.flag.standard,
            "cp": packet.cp_items(),
        }
        with self._lock:
            if (packet.mn, packet.qn) in self._seen:
                self._counts["duplicates"] += 1
                return
            self._seen.add((packet.mn, packet.qn))
            self._accepted.append(entry)
            self._by_cn[packet.cn] += 1
            self._by_code.update(key for key in entry["cp"] if key != "DataTime")
            with self._out_path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")

    def _refusal_to_unchecked(self, raw: bytes, verdict: QnRtn) -> bytes | None:
        """A 9011 answer to a frame that failed its CRC, if its data segment can still be read for QN."""
        try:
            packet = decode_packet(raw[len(HEAD) + LENGTH_DIGITS : -(CRC_DIGITS + len(TAIL))])
        except Hj212Error:
            return None
        return self._answer(packet, request_response(packet, verdict, _version(packet)))

    def _answer(self, request: Packet, answer: Packet) -> bytes | None:
        return encode_frame(encode_packet(answer)) if request.wants_answer else None

    def _reject(self, reason: str, message: str) -> None:
        with self._lock:
            self._rejected[reason] += 1
            if len(self._rejections) < REJECTIONS_KEPT:
                self._rejections.append(f"{reason}: {message}")

    def _count(self, what: str, by: int = 1) -> None:
        with self._lock:
            self._counts[what] += by


def _offset_s(system_time: str, zone: ZoneInfo) -> float | None:
    """How far the data logger's clock is from ours, in seconds (positive: it is ahead)."""
    try:
        theirs = datetime.strptime(system_time, TIME_FORMAT).replace(tzinfo=zone)
    except ValueError:
        return None
    return round((theirs - datetime.now(zone)).total_seconds(), 1)


def load_key_file(path: Path) -> Sm4Key:
    """The SM4 key from a file of 32 hex digits; ValueError names the file and the problem."""
    try:
        return Sm4Key.from_hex(path.read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc


def _version(packet: Packet) -> int:
    """Answers carry the sender's edition, so that a 2017 logger is answered in 2017 terms."""
    return packet.flag.version if packet.flag is not None else 1


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "hj212",
        help="the reference HJ 212 platform: check frames and CRCs, answer, and print a JSON summary",
        description="Listen for HJ 212 frames, check and answer each, write the accepted ones as JSON lines "
        "and print a JSON summary on stop (Ctrl-C, SIGTERM or --duration).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="TCP port (0 picks a free one, printed on stderr)")
    parser.add_argument("--out", type=Path, required=True, help="JSON-lines file of accepted frames (appended)")
    parser.add_argument("--profile", type=Path, help="a city profile TOML: also check ST, CN and codes")
    parser.add_argument("--pw", help="refuse frames with another PW")
    parser.add_argument("--mn", help="refuse frames with another MN")
    parser.add_argument("--silent", action="store_true", help="take frames but never answer")
    parser.add_argument(
        "--sm4-key-file", type=Path, help="the station's SM4 key (32 hex digits): read encrypted frames"
    )
    parser.add_argument(
        "--sm4-rules",
        choices=("plaintext", "transmitted"),
        default="plaintext",
        help="what an encrypted frame's length and CRC cover (default: plaintext, as the standard's examples)",
    )
    parser.add_argument("--ask-time", action="store_true", help="ask the data logger its time (CN=1011)")
    parser.add_argument(
        "--extract",
        nargs=2,
        metavar=("FROM", "TO"),
        help="ask for a period's data again (YYYYMMDDhhmmss, station time)",
    )
    parser.add_argument("--extract-cn", help="the CN to extract (default: the profile's)")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.set_defaults(handler=run_receiver)


def run_receiver(args: argparse.Namespace) -> int:
    try:
        profile = None if args.profile is None else load_city_profile(args.profile)
    except CityProfileError as exc:
        return cannot_run("hj212", str(exc))
    try:
        key = None if args.sm4_key_file is None else load_key_file(args.sm4_key_file)
    except ValueError as exc:
        return cannot_run("hj212", str(exc))
    rule: Literal["plaintext", "transmitted"] = args.sm4_rules
    receiver = Hj212Receiver(
        args.out,
        host=args.host,
        port=args.port,
        profile=profile,
        pw=args.pw,
        mn=args.mn,
        sm4_key=key,
        rules=SealRules(rule, rule),
        ask_time=args.ask_time,
        extract=None if args.extract is None else (args.extract[0], args.extract[1]),
        extract_cn=args.extract_cn,
    )
    receiver.answering = not args.silent
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        receiver.start()
    except Hj212ReceiverError as exc:
        return cannot_run("hj212", str(exc))
    print(f"station-sim hj212: listening on {args.host}:{receiver.port}", file=sys.stderr, flush=True)
    deadline = None if args.duration is None else time.monotonic() + args.duration
    while not stop.wait(0.2):
        if deadline is not None and time.monotonic() >= deadline:
            break
    receiver.stop()
    print(json.dumps(receiver.summary(), sort_keys=True), flush=True)
    return OK
