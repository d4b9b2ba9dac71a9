"""The HJ 212 uplink: one thread and one TCP connection that walk the outbox and send the ecology data.

Theory of operation: the thread connects to the platform (jittered exponential backoff between tries),
then walks the outbox in seq order from its own progress, turning every record the city profile maps into
one frame (`hj212_packets`). With Flag's A bit set it sends a frame and waits for the platform's CN=9014
answer with the same QN; without one within `ack_timeout_s` it sends the same bytes again, and after
`retries` resends it drops the connection and connects anew, resuming at the unanswered record. It never
holds up the agent: it reads the outbox through its own read-only connection and `notify` only wakes it.
The thread starts in `start()`; `run()` only waits (the backoff while the link is down; new records, the
platform or a timer while there is nothing to send) around `step(now)`, one turn: a connect when one is due,
else the next batch of records, each frame sent and its answer awaited, or, with none, what the platform sent
and a heartbeat if one is due. A test turns it by hand with a clock of its own.

Progress is one number, "every record up to here is done" (answered, or not for this platform), saved in a
small state file now and then and on stop, not per frame: losing it costs re-sends from an older point, which
a platform drops by QN and DataTime (a re-sent record carries the same ones). Without acknowledgement (A
unset) a frame is done once written to the socket, so frames can be lost with the connection: that is what
A=0 means in HJ 212.

Hostile receiver: answers are cut into frames no longer than HJ 212 allows before they are decoded
(`FrameSplitter`), an answer that is not a frame is counted and logged once a minute with the count (a receiver
that answers garbage would otherwise write a warning per frame), and each connection's walk and each record's
frame run inside the loop's containment boundary (agent.containment): a record the frame maker chokes on is left
out as an `internal_error`, never a dead thread. Reconnects follow agent.uplink.backoff, and the link's state as
staff see it (since when it is down, the last error) is agent.uplink.link_state, as for the MQTT uplink; the
MQTT uplink's delivery rules (acks by `upto`, rewinds, lanes) are not HJ 212's and are not used here.

HJ 212-2025: with `sm4_key_file` the key is read at every connection and the data area of the frames the
standard wants encrypted goes out SM4-sealed (agent.uplink.hj212_packets.Wire); a key file that cannot be
used keeps the link down with the reason in the status. While there is nothing to send the thread waits on
the socket as well (a socket pair wakes it for `notify`), so the platform's requests are read and answered
(agent.uplink.hj212_requests), and after `heartbeat_s` without a frame it sends a heartbeat (CN=9015).
Requests are queued (at most `MAX_QUEUED_REQUESTS`; more are dropped and counted) and answered between
records, never in the middle of one. A malformed request, or one with another PW or MN, is refused (counted,
logged once a minute) and the link stays up. An extract reads the outbox from the first record made
`EXTRACT_MARGIN_S` before its period and stops at the first made that long after it (records' times follow
seq), beating the watchdog pulse at every batch it reads, sent or not.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import socket
import threading
from collections import Counter, deque
from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from pathlib import Path
from zoneinfo import ZoneInfo

from agent.clock import Clock, Instant, now_of
from agent.containment import Boundary
from agent.ledger.outbox import OutboxError, OutboxReader, StoredRecord
from agent.logs import LogTally, get_logger
from agent.pulse import Pulse
from agent.uplink import hj212_requests as requests
from agent.uplink.backoff import Backoff
from agent.uplink.hj212_key import Sm4KeyError, load_sm4_key
from agent.uplink.hj212_packets import FrameMaker, OutgoingFrame, UnsendableRecord, Wire
from agent.uplink.hj212_settings import Hj212Section
from agent.uplink.hj212_status import Hj212Status
from agent.uplink.link_state import LinkLifecycle, LinkState
from drivers.hj212.errors import Hj212Error
from drivers.hj212.frame import FrameSplitter, SealRules, open_frame
from drivers.hj212.packet import (
    CN_DATA_RESPONSE,
    CN_HEARTBEAT,
    CN_REQUEST_RESPONSE,
    Flag,
    Packet,
    QnRtn,
    decode_packet,
    format_data_time,
    format_qn,
)
from drivers.hj212.profile import CityProfile

log = get_logger("agent.uplink.hj212")

BATCH_RECORDS = 64
"""Records read from the outbox at a time: enough to keep the link busy, few enough to hold in memory."""
STOP_JOIN_S = 5.0
MAX_QUEUED_REQUESTS = 8
EXTRACT_MARGIN_S = 2 * 86_400
"""How far a record's making may lie from its DataTime and still be found by an extract: a day's records are
made after the day closes, a backlog is recorded late. Two days covers both; a record made later than that
after its DataTime (or before it, across a clock step) is not sent again by an extract."""
"""Platform requests waiting for an answer; a platform that sends more between two records loses the rest."""
ANSWERS = frozenset({CN_REQUEST_RESPONSE, "9012", "9013", CN_DATA_RESPONSE})
"""Frames from the platform that answer something (never requests to be answered)."""
STATION_REFUSALS = frozenset(str(int(verdict)) for verdict in (QnRtn.BAD_PW, QnRtn.BAD_MN, QnRtn.BAD_ST))
"""Refusals of the station rather than of one record: every record would get them, so they are retried (after a
reconnect) until someone fixes the config, never skipped."""


class LinkLost(Exception):
    """The connection failed or the platform stopped answering; the walk resumes on a new connection."""


class _Answer(Enum):
    ACKED = "acked"
    NONE = "none"
    REFUSED = "refused"


class Hj212Uplink:
    """Sends the profile's records to an HJ 212 platform. `notify`, `status` and `stop` are safe from any thread."""

    def __init__(  # noqa: PLR0917 - the daemon's interface for every uplink: settings, where, when
        self,
        settings: Hj212Section,
        profile: CityProfile,
        outbox_path: Path,
        station_zone: ZoneInfo,
        state_path: Path,
        clock: Clock,
        *,
        boundary: Boundary,
        nozzles: Sequence[tuple[str, str | None]] = (),
    ) -> None:
        """`nozzles`: every nozzle's id and explicit HJ 212 code in the config's order, which numbers the guns
        for the profile's nozzle code (AgentConfig.hj212_nozzles)."""
        self._settings = settings
        self._outbox_path = outbox_path
        self._state_path = state_path
        self._clock = clock
        self._boundary = boundary
        self._link = LinkLifecycle(Backoff(settings.reconnect_min_s, settings.reconnect_max_s), clock.wall_ms())
        self._bad_answers = LogTally()
        self._other_answers = LogTally()
        self._dropped_requests = LogTally()
        self._refused_requests = LogTally()
        self._station = requests.Station(settings.pw, settings.mn)
        self._maker = FrameMaker(settings, profile, station_zone, nozzles)
        self._platform = f"{settings.host}:{settings.port}"
        self._profile = profile
        self._zone = station_zone
        self._rules = SealRules(settings.sm4_length_of, settings.sm4_crc_over)
        self._version = Flag.for_standard(settings.version, ack=False).version
        self._requests: deque[Packet] = deque()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)
        self._last_sent = clock.monotonic()
        self._lock = threading.Condition()
        self._stopping = False
        self._woken = False
        self._connection: socket.socket | None = None
        """The live connection to the platform; set and cleared by the stepping thread, under the lock, so that a
        stop can shut it from another."""
        self._splitter = FrameSplitter()
        self._reader: OutboxReader | None = None
        self._next_connect_s = -math.inf
        self._next_save_s = math.inf
        self._acked_at_connect = 0
        self._done = self._load_progress()
        self._saved = self._done
        self._sent = self._done
        self._head = self._done
        self._pending: OutgoingFrame | None = None
        self._refusal: str | None = None
        self._refused_verdict: str | None = None
        """The platform's last refusal of the frame being delivered, for the error that ends its retries."""
        self._counts: Counter[str] = Counter()
        self.pulse = Pulse()
        """Beaten before every blocking wait with its bound, for the service watchdog (agent/watchdog.py)."""
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="uplink-hj212", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def notify(self, head_seq: int) -> None:
        """The recorder committed records up to `head_seq`; wakes the thread, never waits."""
        with self._lock:
            self._head = max(self._head, head_seq)
            self._woken = True
            self._lock.notify()
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_write.send(b"!")

    def stop(self) -> bool:
        """Ends the thread (a wait for an answer is cut short) and saves the progress; returns whether the thread
        ended."""
        with self._lock:
            self._stopping = True
            self._lock.notify()
        self._wake()
        with self._lock:
            if self._connection is not None:
                with contextlib.suppress(OSError):
                    self._connection.shutdown(socket.SHUT_RDWR)
        if self._thread is None:
            self._release()
        elif self._thread.is_alive():
            self._thread.join(STOP_JOIN_S)
        self._save_progress()
        self._set_state("stopped")
        return not self.alive()

    def status(self) -> Hj212Status:
        boundary = self._boundary.status()
        with self._lock:
            link = self._link.snapshot()
            return Hj212Status(
                state=link.state,
                since_ms=link.since_ms,
                platform=self._platform,
                sent_seq=self._sent,
                done_seq=self._done,
                head_seq=self._head,
                backlog=max(self._head - self._done, 0),
                frames_sent=self._counts["sent"],
                frames_acked=self._counts["acked"],
                resends=self._counts["resends"],
                skipped=self._counts["skipped"],
                connects=link.connects,
                last_error=link.last_error,
                bad_answers=self._bad_answers.total + self._other_answers.total,
                requests_dropped=self._dropped_requests.total,
                requests_refused=self._refused_requests.total,
                internal_errors=boundary.errors,
                failing=boundary.failing,
                heartbeats=self._counts["heartbeats"],
                requests_answered=self._counts["requests"],
                encrypted=self._maker.wire.key is not None,
            )

    def run(self) -> None:
        """The thread: `step` until the stop, waiting between steps while there is nothing to do at once."""
        try:
            while not self._stopping:
                if self.step(now_of(self._clock)) or self._stopping:
                    continue
                if self._connection is None:
                    self._pause_until(self._next_connect_s)
                else:
                    self._idle(self._connection)
        finally:
            self._release()

    def step(self, now: Instant) -> bool:
        """One turn at `now`: while the link is down, a connect if the backoff's wait is over; while it is up, the
        next batch of records (each frame sent and its answer awaited) or, with none, what the platform sent and
        a heartbeat if one is due; then the platform's requests, and the progress saved if due. Whether there is
        more to do at once (False: wait for the backoff, new records, the platform or a timer)."""
        busy = False
        turned = False
        with self._boundary.contain("hj212 connection"):
            busy = self._walk(now) if self._connection is not None else self._connect_if_due(now)
            turned = True
        if not turned:
            self._link_down(backoff=None)
        return busy

    def _connect_if_due(self, now: Instant) -> bool:
        """A connect, if the backoff's wait is over: the key read anew, the walk's state begun; True once online."""
        if now.monotonic_s < self._next_connect_s:
            return False
        self._reader = self._reader or OutboxReader(self._outbox_path)
        try:
            self._read_key()
        except Sm4KeyError as exc:
            self._failed("hj212_key_unusable", str(exc))
            self._link_down(backoff=False)
            return False
        try:
            connection = self._connect()
        except OSError as exc:
            self._failed("hj212_connect_failed", str(exc))
            self._link_down(backoff=False)
            return False
        with self._lock:
            self._connection = connection
            stopping = self._stopping
        if stopping:
            connection.shutdown(socket.SHUT_RDWR)
        self._splitter = FrameSplitter()
        self._next_save_s = self._clock.monotonic() + self._settings.save_interval_s
        self._acked_at_connect = self._counts["acked"]
        return True

    def _link_down(self, *, backoff: bool | None) -> None:
        """The connection (if any) closed and the next connect scheduled after the backoff's wait; `backoff`:
        whether the try counts as steady (True) or failed (False) for the backoff, or neither (an unexpected
        error, which the boundary paces)."""
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
        if backoff is True:
            self._link.backoff.steady()
        elif backoff is False:
            self._link.backoff.failed()
        if not self._stopping:
            self._set_state("offline")
        wait_s = max(self._link.backoff.delay_s(), self._boundary.pause_s())
        self._next_connect_s = self._clock.monotonic() + wait_s

    def _read_key(self) -> None:
        """The SM4 key, read anew for every connection: a key rotated in the file is used from the next one."""
        path = self._settings.sm4_key_file
        self._maker.wire = Wire(None if path is None else load_sm4_key(path), self._rules)

    def _connect(self) -> socket.socket:
        self._set_state("connecting")
        timeout = self._clock.real_s(self._settings.connect_timeout_s)
        self.pulse.beat(timeout)
        connection = socket.create_connection((self._settings.host, self._settings.port), timeout=timeout)
        self._set_state("online")
        log.info("hj212_online", platform=self._platform, done_seq=self._done)
        return connection

    def _release(self) -> None:
        """At the end of the thread (or the stop of an uplink never started): the connection, the outbox reader
        and the wake-up pair closed."""
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
        if self._reader is not None:
            self._reader.close()
        self._wake_read.close()
        self._wake_write.close()

    def _walk(self, now: Instant) -> bool:
        """One batch on the live connection (see `step`); a failing link is closed here, and the backoff counts
        the connection as steady if it got an answer or had nothing waiting for one."""
        connection, reader = self._connection, self._reader
        assert connection is not None and reader is not None
        try:
            busy = self._send_batch(connection, reader, now)
        except (OSError, LinkLost, OutboxError) as exc:
            if not self._stopping:
                self._failed("hj212_link_lost", str(exc))
            self._link_down(backoff=self._counts["acked"] > self._acked_at_connect or self._pending is None)
            return False
        if now.monotonic_s >= self._next_save_s:
            self._save_progress()
            self._next_save_s = self._clock.monotonic() + self._settings.save_interval_s
        return busy

    def _send_batch(self, connection: socket.socket, reader: OutboxReader, now: Instant) -> bool:
        batch = list(reader.read(self._done + 1, self._done + BATCH_RECORDS))
        busy = bool(batch) or self._skip_pruned(reader)
        if not busy:
            self._hear(connection, now)
        for record in batch:
            if self._stopping:
                return False
            self._send_record(connection, self._splitter, record)
            self._serve_requests(connection, reader)
        self._serve_requests(connection, reader)
        return busy

    def _skip_pruned(self, reader: OutboxReader) -> bool:
        """Moves past records pruned from the outbox before they were sent; True if there were any."""
        first = reader.first_seq()
        if first is None or first <= self._done + 1:
            return False
        log.warning("hj212_records_pruned_unsent", first_seq=self._done + 1, last_seq=first - 1)
        self._advance(first - 1)
        return True

    def _hear(self, connection: socket.socket, now: Instant) -> None:
        """With nothing to send: what the platform sent meanwhile, read without waiting (a request is queued),
        and a heartbeat if one is due by `now`."""
        readable, _, _ = select.select([connection], [], [], 0)
        if readable:
            data = connection.recv(4096)
            if not data:
                raise LinkLost("the platform closed the connection")
            for raw in self._splitter.feed(data):
                self._judge(raw, None)
        if self._settings.heartbeat_s and now.monotonic_s - self._last_sent >= self._settings.heartbeat_s:
            self._heartbeat(connection)

    def _idle(self, connection: socket.socket) -> None:
        """Waits until `notify` (or stop), the progress's save or a heartbeat falling due, or a frame from the
        platform (which the next step reads); a notify that came during the step counts."""
        with self._lock:
            if self._woken or self._stopping:
                self._woken = False
                return
        now = self._clock.monotonic()
        wait = self._next_save_s - now
        if self._settings.heartbeat_s:
            wait = min(wait, self._last_sent + self._settings.heartbeat_s - now)
        wait_s = self._clock.real_s(max(wait, 0.0))
        self.pulse.beat(wait_s)
        readable, _, _ = select.select([connection, self._wake_read], [], [], wait_s)
        if self._wake_read in readable:
            with contextlib.suppress(OSError):
                self._wake_read.recv(4096)
        with self._lock:
            self._woken = False

    def _heartbeat(self, connection: socket.socket) -> None:
        """CN=9015 with no answer wanted: it says the link is up while there is nothing to send."""
        now = self._local_now()
        st = self._settings.st or self._profile.st
        flag = Flag(self._version, ack=False)
        self._send(connection, Packet(format_qn(now), st, CN_HEARTBEAT, self._settings.pw, self._settings.mn, flag))
        self._count("heartbeats")

    def _send(self, connection: socket.socket, packet: Packet) -> None:
        frame, _ = self._maker.wire.encode(packet)
        self.pulse.beat(self._clock.real_s(self._settings.connect_timeout_s))  # the socket's timeout bounds it
        connection.sendall(frame)
        self._last_sent = self._clock.monotonic()

    def _local_now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.wall_ms() / 1000, self._zone)

    def _serve_requests(self, connection: socket.socket, reader: OutboxReader) -> None:
        """Answers the platform's queued requests, each as HJ 212 wants: 9011, the answer, 9012."""
        while self._requests and not self._stopping:
            packet = self._requests.popleft()
            request = requests.read_request(
                packet, self._profile.commands, self._zone, self._settings.max_extract_days, self._station
            )
            if isinstance(request, requests.Ignored | requests.Refused):
                if (count := self._refused_requests.note(self._clock.monotonic())) is not None:
                    log.warning("hj212_request_refused", qn=packet.qn, cn=packet.cn, reason=request.reason, count=count)
                if isinstance(request, requests.Refused):
                    self._send(connection, requests.refusal(request, self._version))
                continue
            self._count("requests")
            if isinstance(request, requests.TimeSet):
                log.warning(
                    "hj212_time_set_refused",
                    qn=packet.qn,
                    platform_time=request.platform_time,
                    agent_time=format_data_time(self._local_now()),
                    reason="the box's clock is kept by NTP; check it if the two differ",
                )
                self._send(connection, requests.refusal(requests.Refused(packet, QnRtn.REFUSED, ""), self._version))
            elif isinstance(request, requests.TimeQuery):
                self._send(connection, requests.taken(packet, self._version))
                self._send(connection, requests.time_answer(packet, self._local_now(), self._version))
                self._send(connection, requests.finished(packet, 1, self._version))
            else:
                self._send(connection, requests.taken(packet, self._version))
                answered = self._answer_extract(connection, reader, request)
                log.info(
                    "hj212_extract_answered",
                    qn=packet.qn,
                    begin=format_data_time(request.begin),
                    end=format_data_time(request.end),
                    frames=answered,
                )
                self._send(connection, requests.finished(packet, answered, self._version))

    def _answer_extract(self, connection: socket.socket, reader: OutboxReader, extract: requests.Extract) -> int:
        """Sends the period's records again under the request's QN (no answer wanted); returns how many. Reads
        only the records made within EXTRACT_MARGIN_S of the period, and beats the pulse at every batch."""
        flag = Flag(self._version, ack=False)
        margin_ms = EXTRACT_MARGIN_S * 1000
        first = reader.first_seq() or 1
        with self._lock:
            head = max(self._head, first)
        seq = reader.first_seq_since(self._epoch_ms(extract.begin) - margin_ms, first, head)
        after_ms = self._epoch_ms(extract.end) + margin_ms
        sent = 0
        while sent < self._settings.max_extract_frames and not self._stopping:
            self.pulse.beat(self._clock.real_s(self._settings.connect_timeout_s))  # a batch read, then sends
            batch = list(reader.read(seq, seq + BATCH_RECORDS - 1))
            if not batch:
                return sent
            last_ts_ms = reader.ts_of(batch[-1].seq)
            for record in batch:
                try:
                    packet = self._maker.packet_for(record, flag=flag, qn=extract.request.qn)
                except UnsendableRecord:
                    continue
                if packet is None or packet.cn != extract.request.cn:
                    continue
                if requests.in_period(packet.cp_items().get("DataTime"), extract):
                    self._send(connection, packet)
                    sent += 1
                    if sent >= self._settings.max_extract_frames:
                        break
            if last_ts_ms is not None and last_ts_ms > after_ms:
                return sent
            seq = batch[-1].seq + 1
        return sent

    def _epoch_ms(self, station_time: datetime) -> int:
        return int(station_time.replace(tzinfo=self._zone).timestamp() * 1000)

    def _send_record(self, connection: socket.socket, splitter: FrameSplitter, record: StoredRecord) -> None:
        with self._lock:
            self._head = max(self._head, record.seq)
        outgoing = self._frame_for(record)  # made again on a new connection: the same QN, the current key
        if outgoing is None:
            self._advance(record.seq)
            return
        self._pending = outgoing
        self._deliver(connection, splitter, outgoing)
        self._pending = None
        self._advance(record.seq)

    def _frame_for(self, record: StoredRecord) -> OutgoingFrame | None:
        """The record's frame, or None if it is not for this platform or cannot be made (then it is counted as
        skipped; an unexpected error also becomes an internal_error, and the walk goes on)."""
        made = False
        outgoing: OutgoingFrame | None = None
        with self._boundary.contain(f"hj212 frame for seq {record.seq}"):
            try:
                outgoing = self._maker.frame_for(record)
            except UnsendableRecord as exc:
                log.info("hj212_record_skipped", seq=record.seq, reason=str(exc))
                self._count("skipped")
                return None
            made = True
        if not made:
            self._count("skipped")
        return outgoing

    def _deliver(self, connection: socket.socket, splitter: FrameSplitter, outgoing: OutgoingFrame) -> None:
        """Sends a frame until the platform answers it, at most 1 + retries times; LinkLost if it never does."""
        sends = 1 + self._settings.retries if self._settings.ack else 1
        self._refusal = None
        refusals = 0
        for attempt in range(sends):
            self.pulse.beat(self._clock.real_s(self._settings.connect_timeout_s))  # the socket's timeout bounds it
            connection.sendall(outgoing.frame)
            self._last_sent = self._clock.monotonic()
            with self._lock:
                self._sent = max(self._sent, outgoing.seq)
                self._counts["sent"] += 1
                self._counts["resends"] += attempt > 0
            if not self._settings.ack:
                return
            answer = self._await_answer(connection, splitter, outgoing.qn)
            if answer is _Answer.ACKED:
                self._count("acked")
                return
            refusals += answer is _Answer.REFUSED
        if refusals == sends and self._refused_verdict not in STATION_REFUSALS:
            # Refused every time for what it is: sending it again cannot help, and every later record waits.
            log.error("hj212_record_refused", seq=outgoing.seq, qn=outgoing.qn, reason=self._refusal)
            with self._lock:
                self._counts["skipped"] += 1
                self._link.error(f"seq {outgoing.seq} refused {sends} times and left out: {self._refusal}")
            return
        refused = "" if self._refusal is None else f"; the last answer was a refusal: {self._refusal}"
        raise LinkLost(
            f"no answer to QN={outgoing.qn} (seq {outgoing.seq}) after {sends} sends, "
            f"{self._settings.ack_timeout_s}s each{refused}"
        )

    def _await_answer(self, connection: socket.socket, splitter: FrameSplitter, qn: str) -> _Answer:
        deadline = self._clock.monotonic() + self._settings.ack_timeout_s
        while True:
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                return _Answer.NONE
            self.pulse.beat(self._clock.real_s(remaining))
            connection.settimeout(self._clock.real_s(remaining))
            try:
                data = connection.recv(4096)
            except TimeoutError:
                return _Answer.NONE
            if not data:
                raise LinkLost("the platform closed the connection")
            # Every frame of the chunk is judged: a request that came with the answer must not be lost.
            answers = [self._judge(raw, qn) for raw in splitter.feed(data)]
            answer = next((answer for answer in answers if answer is not _Answer.NONE), None)
            if answer is not None:
                return answer

    def _judge(self, raw: bytes, qn: str | None) -> _Answer:
        """What a frame from the platform says about the frame with `qn`; a request is queued to be answered,
        other frames are logged and ignored."""
        try:
            packet = decode_packet(open_frame(raw, self._maker.wire.key, self._rules).data)
        except Hj212Error as exc:
            if (count := self._bad_answers.note(self._clock.monotonic())) is not None:
                log.warning("hj212_bad_answer", error=str(exc), count=count, platform=self._platform)
            return _Answer.NONE
        if packet.cn not in ANSWERS:
            self._queue_request(packet)
            return _Answer.NONE
        if packet.qn != qn:
            if (count := self._other_answers.note(self._clock.monotonic())) is not None:
                log.info("hj212_other_packet", cn=packet.cn, qn=packet.qn, count=count)
            return _Answer.NONE
        if packet.cn == CN_DATA_RESPONSE:
            return _Answer.ACKED
        verdict = packet.cp_items().get("QnRtn")
        if packet.cn == CN_REQUEST_RESPONSE and verdict is not None and verdict != str(int(QnRtn.READY)):
            self._refusal = f"QnRtn={verdict} ({_refusal(verdict)})"
            self._refused_verdict = verdict
            log.warning("hj212_refused", qn=qn, qn_rtn=verdict, reason=self._refusal)
            return _Answer.REFUSED
        return _Answer.NONE

    def _queue_request(self, packet: Packet) -> None:
        if len(self._requests) >= MAX_QUEUED_REQUESTS:
            if (count := self._dropped_requests.note(self._clock.monotonic())) is not None:
                log.warning("hj212_requests_dropped", cn=packet.cn, qn=packet.qn, count=count)
            return
        self._requests.append(packet)

    def _advance(self, seq: int) -> None:
        with self._lock:
            self._done = max(self._done, seq)
            self._head = max(self._head, seq)

    def _count(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1

    def _set_state(self, state: LinkState, error: str | None = None) -> None:
        with self._lock:
            self._link.enter(state, self._clock.wall_ms(), error)

    def _failed(self, event: str, error: str) -> None:
        log.warning(event, platform=self._platform, error=error)
        self._set_state("offline", error)

    def _pause_until(self, until: float) -> None:
        """The backoff's whole wait, to monotonic `until`: only a stop ends it early. New records notify the same
        condition, and letting them end the pause would turn a backoff into a retry per commit."""
        with self._lock:
            while not self._stopping and (left := until - self._clock.monotonic()) > 0:
                self.pulse.beat(self._clock.real_s(left))
                self._lock.wait(self._clock.real_s(left))

    def _load_progress(self) -> int:
        try:
            return int(json.loads(self._state_path.read_text(encoding="utf-8"))["done_seq"])
        except FileNotFoundError:
            return 0
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("hj212_progress_unreadable", path=str(self._state_path), error=str(exc))
            return 0

    def _save_progress(self) -> None:
        """Writes the progress atomically (a new file renamed over the old), only when it moved."""
        with self._lock:
            done = self._done
        if done == self._saved:
            return
        temporary = self._state_path.with_name(self._state_path.name + ".new")
        try:
            self._state_path.parent.mkdir(parents=True, exist_ok=True)
            with temporary.open("w", encoding="utf-8") as file:
                json.dump({"done_seq": done}, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self._state_path)
        except OSError as exc:
            log.warning("hj212_progress_not_saved", path=str(self._state_path), error=str(exc))
            return
        self._saved = done


_REFUSALS = {
    QnRtn.REFUSED: "refused",
    QnRtn.BAD_PW: "wrong PW",
    QnRtn.BAD_MN: "wrong MN",
    QnRtn.BAD_ST: "wrong ST",
    QnRtn.BAD_FLAG: "wrong Flag",
    QnRtn.BAD_QN: "wrong QN",
    QnRtn.BAD_CN: "wrong CN",
    QnRtn.BAD_CRC: "CRC error",
}


def _refusal(verdict: str) -> str:
    return next((words for code, words in _REFUSALS.items() if str(int(code)) == verdict), "unknown reason")
