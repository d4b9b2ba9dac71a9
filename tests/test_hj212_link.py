"""The HJ 212 uplink against the reference receiver, over real TCP on 127.0.0.1, from a real outbox.

The outbox is made by the agent's own recorder (real SQLite file, sealed and signed records); the uplink
walks it and the receiver (simulators/hj212_receiver.py) checks every frame's length, CRC, fields and
Chongqing codes, answers with CN=9014 and keeps what it accepted.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from raw_body import RawBody
from support.waiting import wait_until

from agent.clock import SystemClock
from agent.containment import Boundary
from agent.contract.records import RecordIntent, RecordType
from agent.ledger.keys import DeviceKey
from agent.ledger.outbox import Outbox, StoredRecord
from agent.ledger.recorder import Recorder
from agent.ledger.settings import OutboxSection
from agent.pulse import Pulse
from agent.uplink import hj212_requests
from agent.uplink.hj212 import Hj212Uplink
from agent.uplink.hj212_settings import Hj212Section
from drivers.hj212.frame import FrameSplitter, encode_frame, open_frame
from drivers.hj212.packet import Packet, data_response, decode_packet, encode_packet
from drivers.hj212.profile_validation import load_city_profile
from drivers.hj212.sm4 import Sm4Key
from simulators.hj212_receiver import Hj212Receiver

CHONGQING = Path(__file__).resolve().parent.parent / "config" / "hj212" / "chongqing.toml"
PROFILE = load_city_profile(CHONGQING)
ZONE = ZoneInfo("Asia/Shanghai")
PW = "123456"
MN = "CQ500113000001"
DEADLINE_S = 8.0
T0_MS = 1_795_766_400_000
"""2026-11-27T08:00:00Z: record k is made when its fuelling ends (08:00:0k), as an extract by time expects."""


@dataclass
class Station:
    """The producing half of the agent (recorder and outbox) and the HJ 212 uplinks a test starts on it."""

    outbox_path: Path
    state_path: Path
    recorder: Recorder
    uplinks: list[Hj212Uplink] = field(default_factory=list)
    made: int = 0

    def record_ecology(self, rounds: int) -> int:
        """Per round: a fuelling with A/L, one without (not sent), a vapour day, a tank-pressure interval, a
        heartbeat (not sent). Waits for the commit; returns how many records the city takes."""
        intents = []
        for _ in range(rounds):
            self.made += 1
            ts = T0_MS + self.made * 1000
            end = f"2026-11-27T08:{self.made // 60:02d}:{self.made % 60:02d}.000Z"
            intents += [
                intent(RecordType.TRANSACTION, ts, nozzle=f"N{self.made}", end=end, al_permille=1000 + self.made),
                intent(RecordType.TRANSACTION, ts + 1, nozzle="N0", end=end, al_permille=None),
                intent(
                    RecordType.VAPOUR,
                    ts + 2,
                    nozzle=f"N{self.made}",
                    day="2026-11-26",
                    al_mean_permille=1100,
                    verdict="pass",
                ),
                intent(RecordType.TANK_PRESSURE, ts + 3, device="P1", period="interval", end=end, mean_pa=self.made),
                intent(RecordType.HEARTBEAT, ts + 4, uptime_s=self.made),
            ]
        target = self.recorder.status().head_seq + len(intents)
        for item in intents:
            self.recorder.submit(item)
        wait_until(lambda: self.recorder.status().head_seq == target, DEADLINE_S, f"{len(intents)} records committed")
        return 3 * rounds

    def uplink(self, settings: Hj212Section, nozzles: Sequence[tuple[str, str | None]] = ()) -> Hj212Uplink:
        uplink = Hj212Uplink(
            settings,
            PROFILE,
            self.outbox_path,
            ZONE,
            self.state_path,
            SystemClock(),
            boundary=Boundary("uplink-hj212", self.recorder.submit, SystemClock()),
            nozzles=nozzles,
        )
        self.uplinks.append(uplink)
        uplink.start()
        uplink.notify(self.recorder.status().head_seq)
        return uplink


def intent(record_type: RecordType, ts_ms: int, **body: object) -> RecordIntent:
    return RecordIntent(record_type, ts_ms, RawBody(dict(body)))  # type: ignore[arg-type]


@pytest.fixture
def station(tmp_path: Path) -> Iterator[Station]:
    path = tmp_path / "outbox.sqlite"
    key = DeviceKey.from_private(Ed25519PrivateKey.generate())
    uplinks: list[Hj212Uplink] = []

    def notify(head_seq: int) -> None:
        for uplink in uplinks:
            uplink.notify(head_seq)

    recorder = Recorder(
        Outbox(path, 64 * 1024**2), "S1", key, OutboxSection(path=path), SystemClock(), on_commit=notify
    )
    running = Station(path, tmp_path / "hj212.state", recorder, uplinks=uplinks)
    recorder.start()
    yield running
    for uplink in running.uplinks:
        uplink.stop()
    recorder.stop()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Hj212Receiver]:
    server = Hj212Receiver(tmp_path / "accepted.jsonl", profile=PROFILE, pw=PW, mn=MN)
    server.start()
    yield server
    if server.running:
        server.stop()


def settings(port: int, **changes: object) -> Hj212Section:
    base = Hj212Section(
        port=port,
        pw=PW,
        mn=MN,
        profile=CHONGQING,
        ack_timeout_s=0.5,
        retries=2,
        reconnect_min_s=0.05,
        reconnect_max_s=0.2,
        save_interval_s=0.2,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def delivered(uplink: Hj212Uplink, station: Station) -> Callable[[], bool]:
    return lambda: uplink.status().done_seq == station.recorder.status().head_seq


def accepted_values(receiver: Hj212Receiver, code: str) -> list[str]:
    return sorted(entry["cp"][code] for entry in receiver.accepted() if code in entry["cp"])


class TestDelivery:
    def test_every_mapped_record_arrives_once_with_a_valid_crc_and_is_acked(
        self, station: Station, receiver: Hj212Receiver
    ) -> None:
        """Records made before and after the link is up each arrive once, pass every check and are answered."""
        expected = station.record_ecology(3)
        uplink = station.uplink(settings(receiver.port))
        wait_until(delivered(uplink, station), DEADLINE_S, "the first records delivered")
        expected += station.record_ecology(2)
        wait_until(delivered(uplink, station), DEADLINE_S, "every record delivered")

        summary = receiver.summary()
        assert (summary["accepted"], summary["duplicates"], summary["rejected"]) == (expected, 0, {})
        assert summary["by_code"] == {"i41019-Info": 10, "i41020-Info": 10, "i41008-Info": 5, "i41028-Info": 5}
        assert accepted_values(receiver, "i41028-Info") == ["1", "2", "3", "4", "5"]
        assert accepted_values(receiver, "i41020-Info")[:5] == ["1.00", "1.00", "1.00", "1.00", "1.00"]
        status = uplink.status()
        assert (status.frames_sent, status.frames_acked, status.resends) == (expected, expected, 0)
        assert (status.skipped, status.backlog, status.state) == (5, 0, "online")
        assert summary["answered"] == expected

    def test_nozzles_go_out_under_the_city_profile_code(self, station: Station, receiver: Hj212Receiver) -> None:
        """Given the config's nozzles, i41019 carries the profile's code (MN + three-digit gun number) or the
        nozzle's own hj212_code, never the agent's nozzle id."""
        station.record_ecology(2)
        uplink = station.uplink(settings(receiver.port), nozzles=[("N1", None), ("N2", "5001120000000207")])
        wait_until(delivered(uplink, station), DEADLINE_S, "every record delivered")
        assert set(accepted_values(receiver, "i41019-Info")) == {f"{MN}001", "5001120000000207"}

    def test_the_2025_edition_goes_out_with_its_flag(self, station: Station, tmp_path: Path) -> None:
        """With version '2025' every frame carries Flag=9 (edition 2, answer wanted), and the receiver accepts it."""
        mn = "0123456789ABCDEF01234567"
        with Hj212Receiver(tmp_path / "2025.jsonl", profile=PROFILE, pw=PW, mn=mn) as server:
            expected = station.record_ecology(1)
            uplink = station.uplink(settings(server.port, version="2025", mn=mn))
            wait_until(delivered(uplink, station), DEADLINE_S, "every record delivered")
            assert [(entry["flag"], entry["edition"]) for entry in server.accepted()] == [(9, "2025")] * expected

    def test_without_ack_frames_go_out_unanswered(self, station: Station, receiver: Hj212Receiver) -> None:
        """With ack off, Flag is 4 (2017, no answer wanted): the receiver keeps quiet and the uplink moves on."""
        expected = station.record_ecology(2)
        uplink = station.uplink(settings(receiver.port, ack=False))
        wait_until(delivered(uplink, station), DEADLINE_S, "every record sent")
        wait_until(lambda: receiver.summary()["accepted"] == expected, DEADLINE_S, "every frame accepted")
        assert {entry["flag"] for entry in receiver.accepted()} == {4}
        assert (receiver.summary()["answered"], uplink.status().frames_acked) == (0, 0)

    def test_progress_is_kept_across_a_restart(self, station: Station, receiver: Hj212Receiver) -> None:
        """A new uplink on the same state file starts where the last one stopped: nothing is sent twice."""
        first = station.record_ecology(2)
        uplink = station.uplink(settings(receiver.port))
        wait_until(delivered(uplink, station), DEADLINE_S, "every record delivered")
        uplink.stop()
        assert json.loads(station.state_path.read_text()) == {"done_seq": station.recorder.status().head_seq}
        again = station.uplink(settings(receiver.port))
        more = station.record_ecology(1)
        wait_until(delivered(again, station), DEADLINE_S, "the new records delivered")
        assert (receiver.summary()["accepted"], receiver.summary()["duplicates"]) == (first + more, 0)
        assert again.status().frames_sent == more


class TestOutages:
    def test_a_platform_down_for_a_while_gets_everything_from_the_outbox(
        self, station: Station, tmp_path: Path
    ) -> None:
        """Down at start, then up, down mid-way and up again: the uplink resends from the outbox, nothing missing."""
        server = Hj212Receiver(tmp_path / "accepted.jsonl", profile=PROFILE, pw=PW, mn=MN)
        server.start()
        port = server.port
        server.stop()
        expected = station.record_ecology(2)
        uplink = station.uplink(settings(port))
        wait_until(
            lambda: uplink.status().state == "offline" and uplink.status().last_error is not None, DEADLINE_S, "refused"
        )
        assert uplink.status().done_seq == 0

        server = Hj212Receiver(tmp_path / "accepted.jsonl", port=port, profile=PROFILE, pw=PW, mn=MN)
        server.start()
        wait_until(delivered(uplink, station), DEADLINE_S, "delivered once the platform is up")
        server.stop()
        expected += station.record_ecology(2)
        wait_until(
            lambda: uplink.status().backlog > 0, DEADLINE_S, "the new records waiting while the platform is down"
        )
        server_again = Hj212Receiver(tmp_path / "again.jsonl", port=port, profile=PROFILE, pw=PW, mn=MN)
        with server_again:
            wait_until(delivered(uplink, station), DEADLINE_S, "delivered after the second outage")
        qns = {entry["qn"] for entry in server.accepted()} | {entry["qn"] for entry in server_again.accepted()}
        assert len(qns) == expected
        assert server.summary()["rejected"] == server_again.summary()["rejected"] == {}
        assert uplink.status().connects >= 2

    def test_a_platform_that_does_not_answer_gets_bounded_retries_then_a_new_connection(
        self, station: Station, receiver: Hj212Receiver
    ) -> None:
        """Without an answer a frame is sent 1 + retries times, then the connection is made anew; once the
        platform answers again, everything is delivered."""
        receiver.answering = False
        station.record_ecology(1)
        uplink = station.uplink(settings(receiver.port, ack_timeout_s=0.2, retries=2))
        wait_until(lambda: uplink.status().connects >= 2, DEADLINE_S, "a second connection")
        status = uplink.status()
        assert status.done_seq == 0 and status.frames_acked == 0
        assert status.last_error is not None and "after 3 sends, 0.2s each" in status.last_error
        assert receiver.summary()["accepted"] == 1 and receiver.summary()["duplicates"] >= 2

        receiver.answering = True
        wait_until(delivered(uplink, station), DEADLINE_S, "delivered once the platform answers")
        assert receiver.summary()["accepted"] == 3

    def test_a_record_refused_every_time_is_left_out_and_the_rest_go_on(self, station: Station, tmp_path: Path) -> None:
        """A platform that does not take the daily verdicts (its profile lacks their code) refuses each one every
        time; the uplink leaves each out after its retries, says so, and delivers everything else."""
        without_verdicts = tmp_path / "no-verdicts.toml"
        text = CHONGQING.read_text(encoding="utf-8")
        start = text.index('[[records]]\nrecord_type = "vapour"')
        end = text.index("[[records]]", start + 1)
        without_verdicts.write_text(text[:start] + text[end:], encoding="utf-8")
        profile = load_city_profile(without_verdicts)
        with Hj212Receiver(tmp_path / "x.jsonl", profile=profile, pw=PW, mn=MN) as server:
            expected = station.record_ecology(2)
            uplink = station.uplink(settings(server.port, ack_timeout_s=0.2, retries=1))
            head = station.recorder.status().head_seq
            wait_until(lambda: uplink.status().done_seq == head, DEADLINE_S, "every record passed")
            status = uplink.status()
            # Skipped: per round, the fuelling without A/L (never sendable) and the refused verdict.
            assert status.skipped == 2 * 2 and "refused 2 times and left out" in (status.last_error or "")
            assert server.summary()["accepted"] == expected - 2

    def test_a_refusal_is_reported_and_retried(self, station: Station, tmp_path: Path) -> None:
        """A platform that knows another PW answers 9011 QnRtn=3; the uplink says so and does not move on."""
        with Hj212Receiver(tmp_path / "x.jsonl", profile=PROFILE, pw="654321", mn=MN) as server:
            station.record_ecology(1)
            uplink = station.uplink(settings(server.port, ack_timeout_s=0.2, retries=1))
            wait_until(
                lambda: "QnRtn=3 (wrong PW)" in (uplink.status().last_error or ""), DEADLINE_S, "the refusal reported"
            )
            assert uplink.status().done_seq == 0
            assert server.summary()["rejected"]["refused"] >= 1


class GarbageReceiver:
    """A TCP peer on 127.0.0.1 that answers every frame with a burst of frames that are not HJ 212 (wrong length,
    no CRC) and noise, as fast as the link takes them."""

    BURST = b"noise" + b"##0010NOT-A-FRAME\r\n" * 200

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(0.2)
                while not self._stop.is_set():
                    try:
                        if not connection.recv(4096):
                            break
                        connection.sendall(self.BURST)
                    except TimeoutError:
                        continue
                    except OSError:
                        break

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()


class TestHostileReceiver:
    def test_a_receiver_answering_garbage_costs_a_log_line_a_minute_not_one_a_frame(
        self, station: Station, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Thousands of frames that are not HJ 212 are counted in the status and said once (with the count),
        the uplink keeps trying without a dead thread, and nothing is marked delivered."""
        garbage = GarbageReceiver()
        try:
            with caplog.at_level(logging.INFO, logger="agent.uplink.hj212"):
                station.record_ecology(2)
                uplink = station.uplink(settings(garbage.port))
                wait_until(lambda: uplink.status().bad_answers >= 1000, 15.0, "a thousand bad answers")
            said = [record for record in caplog.records if record.getMessage() == "hj212_bad_answer"]
            assert len(said) == 1, f"{len(said)} lines for {uplink.status().bad_answers} bad answers"
            assert uplink.alive() and uplink.status().done_seq == 0
        finally:
            garbage.close()


KEY_HEX = "0123456789abcdeffedcba9876543210"
MN_2025 = "0123456789ABCDEF01234567"


def key_file(tmp_path: Path) -> Path:
    """A key file as an installer writes it: 32 hex digits, mode 0600 (the test's own key, not a real one)."""
    path = tmp_path / "hj212-sm4.key"
    path.write_text(KEY_HEX + "\n", encoding="ascii")
    path.chmod(0o600)
    return path


def settings_2025(port: int, tmp_path: Path, **changes: object) -> Hj212Section:
    return settings(port, version="2025", mn=MN_2025, sm4_key_file=key_file(tmp_path), **changes)


def receiver_2025(tmp_path: Path, **options: object) -> Hj212Receiver:
    return Hj212Receiver(
        tmp_path / "2025.jsonl",
        profile=PROFILE,
        pw=PW,
        mn=MN_2025,
        sm4_key=Sm4Key.from_hex(KEY_HEX),
        **options,  # type: ignore[arg-type]
    )


def answered(server: Hj212Receiver, kind: str) -> Callable[[], bool]:
    return lambda: any(asked["kind"] == kind and asked["exe_rtn"] for asked in server.summary()["requests"])


class TestHj2122025:
    def test_encrypted_frames_are_read_and_accepted(self, station: Station, tmp_path: Path) -> None:
        """With a key file every 3020 frame goes out SM4-encrypted; the receiver, holding the key, decrypts,
        checks the CRC over the plain segment and accepts them all, values intact."""
        with receiver_2025(tmp_path) as server:
            expected = station.record_ecology(2)
            uplink = station.uplink(settings_2025(server.port, tmp_path))
            wait_until(delivered(uplink, station), DEADLINE_S, "every record delivered")
            summary = server.summary()
            assert (summary["accepted"], summary["encrypted"], summary["rejected"]) == (expected, expected, {})
            assert accepted_values(server, "i41028-Info") == ["1", "2"]
            assert uplink.status().encrypted

    def test_a_receiver_without_the_key_rejects_encrypted_frames_by_name(
        self, station: Station, receiver: Hj212Receiver, tmp_path: Path
    ) -> None:
        """A platform that lacks the key counts the frames as bad_cipher and accepts none."""
        station.record_ecology(1)
        station.uplink(settings(receiver.port, sm4_key_file=key_file(tmp_path), ack=False))
        wait_until(
            lambda: receiver.summary()["rejected"].get("bad_cipher", 0) >= 3, DEADLINE_S, "three frames rejected"
        )
        assert receiver.summary()["accepted"] == 0

    def test_a_key_file_readable_by_others_keeps_the_link_down(self, station: Station, tmp_path: Path) -> None:
        """A key file with group or other permissions is refused with the fix in the status, and nothing is sent."""
        with receiver_2025(tmp_path) as server:
            path = key_file(tmp_path)
            path.chmod(0o644)
            station.record_ecology(1)
            uplink = station.uplink(settings(server.port, version="2025", mn=MN_2025, sm4_key_file=path))
            wait_until(lambda: "chmod 600" in (uplink.status().last_error or ""), DEADLINE_S, "the refusal reported")
            assert server.summary()["frames"] == 0

    def test_heartbeats_go_out_while_the_link_is_idle(self, station: Station, tmp_path: Path) -> None:
        """With nothing to send, the uplink sends a 9015 heartbeat every heartbeat_s; the receiver counts them."""
        with receiver_2025(tmp_path) as server:
            uplink = station.uplink(settings_2025(server.port, tmp_path, heartbeat_s=0.2))
            wait_until(lambda: server.summary()["heartbeats"] >= 3, DEADLINE_S, "three heartbeats")
            assert uplink.status().heartbeats >= 3 and server.summary()["rejected"] == {}

    def test_the_platform_asks_the_time_and_gets_it(self, station: Station, tmp_path: Path) -> None:
        """CN=1011 from the platform is answered 9011 QnRtn=1, the SystemTime, then 9012 ExeRtn=1."""
        with receiver_2025(tmp_path, ask_time=True) as server:
            station.record_ecology(1)
            station.uplink(settings_2025(server.port, tmp_path))
            wait_until(answered(server, "time"), DEADLINE_S, "the time answered")
            (asked,) = server.summary()["requests"]
            assert (asked["qn_rtn"], asked["exe_rtn"]) == ("1", "1")
            assert abs(asked["offset_s"]) < 5 and "unexpected" not in asked

    def test_the_platform_extracts_a_period_and_gets_exactly_its_records(
        self, station: Station, tmp_path: Path
    ) -> None:
        """An extract of two seconds of fuellings gets those records' frames again, under the request's QN,
        encrypted, between 9011 QnRtn=1 and 9012 ExeRtn=1; nothing from outside the period."""
        # Round k's fuelling and tank interval end at 08:00:0k UTC, 16:00:0k in Chongqing.
        with receiver_2025(tmp_path, extract=("20261127160002", "20261127160003")) as server:
            station.record_ecology(3)
            uplink = station.uplink(settings_2025(server.port, tmp_path))
            wait_until(answered(server, "extract"), DEADLINE_S, "the extract answered")
            (asked,) = server.summary()["requests"]
            assert (asked["qn_rtn"], asked["exe_rtn"], asked["frames"], asked["outside_period"]) == ("1", "1", 4, 0)
            wait_until(delivered(uplink, station), DEADLINE_S, "every record delivered as well")

    def test_a_long_frame_goes_in_sub_packets_and_is_joined(self, station: Station, tmp_path: Path) -> None:
        """A profile whose frame is longer than 1,024 bytes sends it as PNUM/PNO sub-packets, encrypted; the
        receiver joins them and accepts one packet with every item."""
        items = ",\n".join(
            f'  {{ code = "i4{n:04d}", field = "al_permille", scale = 3, decimals = 2 }}' for n in range(90)
        )
        long_profile = tmp_path / "long.toml"
        long_profile.write_text(
            f'name = "long"\nst = "31"\n[[records]]\nrecord_type = "transaction"\ncn = "3020"\ntime_field = "end"\n'
            f"items = [\n{items}\n]\n",
            encoding="utf-8",
        )
        profile = load_city_profile(long_profile)
        with Hj212Receiver(
            tmp_path / "long.jsonl", profile=profile, pw=PW, mn=MN_2025, sm4_key=Sm4Key.from_hex(KEY_HEX)
        ) as server:
            station.record_ecology(2)
            uplink = Hj212Uplink(
                settings_2025(server.port, tmp_path, profile=long_profile),
                profile,
                station.outbox_path,
                ZONE,
                station.state_path,
                SystemClock(),
                boundary=Boundary("uplink-hj212", station.recorder.submit, SystemClock()),
            )
            station.uplinks.append(uplink)
            uplink.start()
            uplink.notify(station.recorder.status().head_seq)
            wait_until(delivered(uplink, station), DEADLINE_S, "every record delivered")
            summary = server.summary()
            assert summary["accepted"] == 2 and summary["rejected"] == {}
            assert summary["subpackets"] == {"joined": 2, "pieces": 2 * 2 + 2}
            assert all(len(entry["cp"]) == 91 for entry in server.accepted())


class HostilePlatform:
    """A platform on 127.0.0.1 that sends its requests as soon as the uplink connects, acknowledges what wants
    an answer, and keeps every packet the uplink sends and how many times it connected."""

    def __init__(self, requests: Sequence[bytes]) -> None:
        self._requests = requests
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        self.connections = 0
        self.packets: list[Packet] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except TimeoutError:
                continue
            with self._lock:
                self.connections += 1
            with connection:
                connection.settimeout(0.2)
                connection.sendall(b"".join(encode_frame(segment) for segment in self._requests))
                self._read(connection)

    def _read(self, connection: socket.socket) -> None:
        splitter = FrameSplitter()
        while not self._stop.is_set():
            try:
                data = connection.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            for raw in splitter.feed(data):
                packet = decode_packet(open_frame(raw, None).data)
                with self._lock:
                    self.packets.append(packet)
                if packet.wants_answer:
                    connection.sendall(encode_frame(encode_packet(data_response(packet, 1))))

    def answers_to(self, qn: str) -> list[Packet]:
        with self._lock:
            return [packet for packet in self.packets if packet.qn == qn]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()


def request(qn: str, cn: str, cp: str, pw: str = PW, mn: str = MN) -> bytes:
    return f"QN={qn};ST=91;CN={cn};PW={pw};MN={mn};Flag=5;CP=&&{cp}&&".encode()


class TestHostileRequests:
    def test_requests_that_cannot_be_echoed_are_refused_and_the_link_stays_up(self, station: Station) -> None:
        """`PW=1=2`, `PolId=a&b` and `PolId=a=b` each get 9011 QnRtn=2 under their QN with the station's PW and
        MN; no internal_error, one connection, and a good time request after them is still answered."""
        platform = HostilePlatform(
            [
                request("20261207120000008", "1011", "", pw="1=2"),
                request("20261207120000009", "1011", "PolId=a&b"),
                request("20261207120000010", "1011", "PolId=a=b"),
                request("20261207120000011", "1011", "PolId=w01018"),
            ]
        )
        try:
            uplink = station.uplink(settings(platform.port, ack=False))
            wait_until(
                lambda: len(platform.answers_to("20261207120000011")) == 3, DEADLINE_S, "the good request answered"
            )
            for qn in ("20261207120000008", "20261207120000009", "20261207120000010"):
                (refusal,) = platform.answers_to(qn)
                assert (refusal.cn, refusal.pw, refusal.mn, refusal.cp_items()) == ("9011", PW, MN, {"QnRtn": "2"})
            status = uplink.status()
            assert (platform.connections, status.connects, status.internal_errors) == (1, 1, 0)
            assert (status.requests_refused, status.requests_answered) == (3, 1) and uplink.alive()
        finally:
            platform.close()

    @pytest.mark.parametrize(("pw", "mn", "verdict"), [("999999", MN, "3"), (PW, "FFFFFFFFFFFFFFFFFFFFFFFF", "4")])
    def test_an_extract_with_another_pw_or_mn_gets_a_refusal_and_no_data(
        self, station: Station, pw: str, mn: str, verdict: str
    ) -> None:
        """An extract of a period that has records, sent with a PW or MN not the station's, gets only 9011 with
        QnRtn=3 (PW) or 4 (MN): not one record goes out under its QN."""
        station.record_ecology(3)
        qn = "20261207120000030"
        platform = HostilePlatform([request(qn, "3020", "BeginTime=20261127000000,EndTime=20261127235959", pw, mn)])
        try:
            uplink = station.uplink(settings(platform.port, ack=False))
            wait_until(lambda: bool(platform.answers_to(qn)), DEADLINE_S, "the refusal")
            wait_until(delivered(uplink, station), DEADLINE_S, "the records delivered as usual")
            (refusal,) = platform.answers_to(qn)
            assert (refusal.cn, refusal.cp_items()) == ("9011", {"QnRtn": verdict})
        finally:
            platform.close()


class CountingPulse(Pulse):
    def __init__(self) -> None:
        super().__init__()
        self.beats = 0

    def beat(self, next_within_s: float) -> None:
        self.beats += 1
        super().beat(next_within_s)


@dataclass
class FakeOutbox:
    """An outbox of `size` records the profile does not send (heartbeats), record n made at `ts_ms(n)`."""

    size: int
    ts_ms: Callable[[int], int]
    read_records: int = 0
    since_asked: list[int] = field(default_factory=list)

    def first_seq(self) -> int:
        return 1

    def first_seq_since(self, ts_ms: int, first: int, last: int) -> int:
        self.since_asked.append(ts_ms)
        return next((seq for seq in range(first, last + 1) if self.ts_ms(seq) >= ts_ms), last + 1)

    def ts_of(self, seq: int) -> int | None:
        return self.ts_ms(seq) if 1 <= seq <= self.size else None

    def read(self, first: int, last: int) -> Iterator[StoredRecord]:
        for seq in range(max(first, 1), min(last, self.size) + 1):
            self.read_records += 1
            canonical = json.dumps({"type": "heartbeat", "ts": "2026-12-07T00:00:00.000Z", "body": {}}).encode()
            yield StoredRecord(seq, "k", canonical, b"")


class TestExtractScan:
    def scan(self, tmp_path: Path, outbox: FakeOutbox, begin: str, end: str) -> tuple[int, CountingPulse]:
        uplink = Hj212Uplink(
            settings(1),
            PROFILE,
            tmp_path / "outbox.sqlite",
            ZONE,
            tmp_path / "hj212.state",
            SystemClock(),
            boundary=Boundary("uplink-hj212", lambda _intent: None, SystemClock()),
        )
        uplink.pulse = pulse = CountingPulse()
        uplink.notify(outbox.size)
        ask = Packet("20261207120000040", "91", "3020", PW, MN, None, ((("BeginTime", begin), ("EndTime", end)),))
        extract = hj212_requests.read_request(ask, PROFILE.commands, ZONE, 31, hj212_requests.Station(PW, MN))
        assert isinstance(extract, hj212_requests.Extract)
        mine, theirs = socket.socketpair()
        with mine, theirs:
            sent = uplink._answer_extract(mine, outbox, extract)  # type: ignore[arg-type]
        assert sent == 0
        return outbox.read_records, pulse

    def test_a_long_scan_with_nothing_to_send_keeps_beating_the_pulse(self, tmp_path: Path) -> None:
        """20,000 records of the period, none sent: the pulse is beaten at least once per 64 records read."""
        day_ms = 86_400_000
        start_ms = int(datetime(2026, 12, 7, tzinfo=ZONE).timestamp() * 1000)
        outbox = FakeOutbox(20_000, lambda seq: start_ms + seq * day_ms // 20_000)
        read, pulse = self.scan(tmp_path, outbox, "20261207000000", "20261207235959")
        assert read == 20_000 and pulse.beats >= 20_000 // 64

    def test_the_scan_starts_and_stops_near_the_period_by_record_time(self, tmp_path: Path) -> None:
        """Records a minute apart for 30 days; an extract of one hour reads only those made within two days of
        it (seeked by time, stopped past its end), not the whole outbox."""
        minute_ms = 60_000
        start_ms = int(datetime(2026, 11, 1, tzinfo=ZONE).timestamp() * 1000)
        outbox = FakeOutbox(30 * 1440, lambda seq: start_ms + seq * minute_ms)
        read, _ = self.scan(tmp_path, outbox, "20261115120000", "20261115130000")
        hour_ms = 3_600_000
        assert outbox.since_asked == [int(datetime(2026, 11, 13, 12, tzinfo=ZONE).timestamp() * 1000)]
        assert 4 * 1440 < read <= 4 * 1440 + 60 + 2 * 64 + hour_ms // minute_ms
