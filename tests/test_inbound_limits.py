"""What arrives from the broker is judged before it is parsed: the ack and command parsers under poison and
fuzzing, the reconnect backoff, the command desk's size cut, containment and refusal bucket across a restart,
and the config rules for the topic prefix and the client id. Pure logic and files; no broker."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.clock import FakeClock

from agent.commands.desk import CommandDesk, CommandPorts, refusals_path
from agent.commands.envelope import Limits, Refusal, Refused, check_envelope
from agent.commands.refusals import GateState, RefusalGate
from agent.commands.replay import ReplayMemory
from agent.commands.settings import CommandsSection
from agent.config import ConfigError
from agent.config_validation import load_config
from agent.containment import Boundary
from agent.contract.framing import AckError, parse_ack
from agent.contract.inbound_json import InboundJsonError, JsonLimits, load_json, nesting_depth
from agent.contract.records import RecordIntent
from agent.uplink.backoff import Backoff
from agent.uplink.delivery import ack_refusal

NOW_MS = 1_800_000_000_000
LIMITS = Limits(max_skew_ms=30_000, max_lifetime_ms=3_600_000, max_bytes=16 * 1024)
JSONISH = st.text(alphabet='[]{}"\\:,0123456789-+.eE tnrufalsNIiy\u00e9\x00', max_size=300)


class TestPoisonAcks:
    @pytest.mark.parametrize(
        ("payload", "words"),
        [
            (b'{"upto": 1' + b"0" * 5000 + b"}", "integer of 5001 characters"),
            (b"[" * 100_000, "longer than the 65536 bytes allowed"),
            (b"[" * 1000, "nested 1000 deep"),
            (b'{"upto": NaN}', "NaN is not JSON"),
            (b'{"upto": 1e999}', "out of range"),
            (b'{"upto": 4, "upto": 5}', None),
        ],
    )
    def test_each_poison_is_an_ack_error_naming_the_limit(self, payload: bytes, words: str | None) -> None:
        """The known poison acks raise AckError (never ValueError, RecursionError or a hang) and say why."""
        if words is None:
            assert parse_ack(payload, 64 * 1024) == 5, "a repeated key in an ack is harmless: the last one counts"
            return
        with pytest.raises(AckError, match=words):
            parse_ack(payload, 64 * 1024)

    def test_the_largest_seq_still_parses(self) -> None:
        """The number limit leaves room for any seq a station can reach: 2^63 - 1 has 19 digits."""
        assert parse_ack(json.dumps({"upto": 2**63 - 1}).encode(), 1024) == 2**63 - 1

    def test_depth_is_counted_outside_strings_only(self) -> None:
        """Brackets inside strings (escaped quotes included) are text, not nesting."""
        assert nesting_depth(b'{"a": "[[[\\"[[", "b": [[1]]}') == 3
        assert nesting_depth(b"") == 0

    def test_size_and_depth_are_judged_before_json_is_parsed(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A payload over the byte or depth limit never reaches json.loads: the limits are what stops it."""

        def never(*_args: Any, **_kwargs: Any) -> object:
            raise AssertionError("json.loads was called")

        monkeypatch.setattr(json, "loads", never)
        with pytest.raises(InboundJsonError, match="longer than the 16 bytes allowed"):
            load_json(b'{"upto": 1234567890}', JsonLimits(16))
        with pytest.raises(InboundJsonError, match="nested"):
            load_json(b"[[[[[[[[[1]]]]]]]]]", JsonLimits(1024, max_depth=8))
        oversized = check_envelope(b"{" + b" " * 40 * 1024**2 + b"}", "ST-1", {}, NOW_MS, LIMITS)
        assert isinstance(oversized, Refused) and oversized.reason is Refusal.MALFORMED
        assert "longer than the 16384 bytes allowed" in oversized.detail

    @settings(max_examples=300, deadline=None)
    @given(st.one_of(st.binary(max_size=400), JSONISH.map(lambda text: text.encode("utf-8", "surrogatepass"))))
    def test_any_bytes_give_an_upto_or_an_ack_error(self, payload: bytes) -> None:
        """Arbitrary bytes into the ack parser raise nothing but AckError."""
        try:
            upto = parse_ack(payload, 256)
        except AckError:
            return
        assert isinstance(upto, int) and upto >= 0

    @settings(max_examples=300, deadline=None)
    @given(st.one_of(st.binary(max_size=400), JSONISH.map(lambda text: text.encode("utf-8", "surrogatepass"))))
    def test_any_bytes_give_a_command_or_a_refusal(self, payload: bytes) -> None:
        """Arbitrary bytes into the command envelope check return a Refused and never raise."""
        assert isinstance(check_envelope(payload, "ST-1", {}, NOW_MS, LIMITS), Refused)

    def test_python_alone_would_have_raised(self) -> None:
        """The reference the limits are measured against: plain json.loads fails on the same poison with the
        interpreter's own errors (which, uncaught, ended the uplink thread)."""
        if hasattr(sys, "get_int_max_str_digits") and sys.get_int_max_str_digits() > 0:
            with pytest.raises(ValueError, match="digits"):
                json.loads(b'{"upto": 1' + b"0" * 5000 + b"}")
        with pytest.raises(RecursionError):
            json.loads(b"[" * 100_000)


class TestBackoff:
    def test_the_wait_grows_with_failures_and_falls_back_after_a_steady_session(self) -> None:
        """Ceilings double from min_s to max_s; the floor is min_s / 2, so no reconnect is immediate."""
        backoff = Backoff(1.0, 8.0, draw=lambda low, high: high)
        floors = Backoff(1.0, 8.0, draw=lambda low, high: low)
        ceilings = []
        for _ in range(5):
            ceilings.append(backoff.delay_s())
            backoff.failed()
            floors.failed()
            assert floors.delay_s() == 0.5
        assert ceilings == [1.0, 2.0, 4.0, 8.0, 8.0]
        backoff.steady()
        assert backoff.delay_s() == 1.0


class FakePorts:
    def __init__(self, *, failing_replies: int = 0) -> None:
        self.intents: list[RecordIntent] = []
        self.replies: list[bytes] = []
        self._failing_replies = failing_replies

    def ports(self) -> CommandPorts:
        def reply(payload: bytes) -> None:
            if self._failing_replies:
                self._failing_replies -= 1
                raise RuntimeError("a bug met while replying")
            self.replies.append(payload)

        def unused(*_args: Any) -> Any:
            raise AssertionError("not used here")

        return CommandPorts(
            submit=self.intents.append,
            head_seq=lambda: 7,
            status=lambda: {"health": "ok"},
            resend=unused,
            rotate_key=unused,
            reply=reply,
        )

    def refused(self) -> list[dict[str, Any]]:
        return [
            intent.body.as_json() for intent in self.intents if getattr(intent.body, "kind", None) == "command_refused"
        ]


def desk(tmp_path: Path, fake: FakePorts, clock: FakeClock, **changes: Any) -> CommandDesk:
    (tmp_path / "outbox.sqlite").touch()
    section = CommandsSection(
        enabled=True, platform_key=tmp_path / "unused.pem", state_path=tmp_path / "commands.json", **changes
    )
    return CommandDesk(
        section,
        "ST-1",
        platform_keys={},
        replay=ReplayMemory(section.replay_memory, None),
        outbox_path=tmp_path / "outbox.sqlite",
        ports=fake.ports(),
        clock=clock,
        boundary=Boundary("commands", fake.intents.append, clock),
    )


UNSIGNED = json.dumps({"id": "chosen-by-anyone", "cmd": "ping", "args": {}}).encode()


class TestDesk:
    def test_an_oversized_command_is_refused_unread_and_counted(self, tmp_path: Path) -> None:
        """A 36 MB command posted from the network thread is refused as malformed for its size, with no id
        in the reply, counted, and recorded as a refusal."""
        fake = FakePorts()
        commands = desk(tmp_path, fake, FakeClock(NOW_MS))
        commands.post(b'{"id": "big", "pad": "' + b"x" * 36 * 1024**2 + b'"}')
        commands.start()
        commands.stop()
        (reply,) = [json.loads(reply) for reply in fake.replies]
        assert reply["id"] is None and reply["error"]["reason"] == "malformed"
        assert "longer than the 16384 bytes allowed" in reply["error"]["detail"]
        assert commands.status().oversized == 1
        assert fake.refused()[0]["reason"] == "malformed"

    def test_an_unsigned_command_cannot_choose_its_replys_id(self, tmp_path: Path) -> None:
        """The reply to an unsigned message carries id null, whatever id the message claimed."""
        fake = FakePorts()
        commands = desk(tmp_path, fake, FakeClock(NOW_MS))
        reply = json.loads(commands.handle(UNSIGNED))
        commands.stop()
        assert (reply["id"], reply["error"]["reason"]) == (None, "unsigned")

    def test_an_unexpected_error_is_contained_and_the_desk_answers_the_next(self, tmp_path: Path) -> None:
        """A message whose handling raises becomes an internal_error record; the thread answers what follows."""
        fake = FakePorts(failing_replies=1)
        commands = desk(tmp_path, fake, FakeClock(NOW_MS))
        commands.post(UNSIGNED)
        commands.post(UNSIGNED)
        commands.start()
        commands.stop()
        errors = [
            intent.body.as_json() for intent in fake.intents if getattr(intent.body, "kind", None) == "internal_error"
        ]
        assert [(e["loop"], e["error"]) for e in errors] == [("commands", "RuntimeError")]
        assert len(fake.replies) == 1, "the message after the failing one was answered"

    def test_replies_are_rate_limited(self, tmp_path: Path) -> None:
        """A flood of junk gets a burst of replies and then replies_per_s; the rest are counted, not sent."""
        fake = FakePorts()
        commands = desk(tmp_path, fake, FakeClock(NOW_MS), replies_per_s=2.0, queue_limit=1000)
        for _ in range(100):
            commands.post(UNSIGNED)
        commands.start()
        commands.stop()
        assert len(fake.replies) == 4, "a burst of twice replies_per_s, no time passing"
        assert commands.status().replies_dropped == 96

    def test_the_refusal_bucket_survives_a_restart(self, tmp_path: Path) -> None:
        """A restarted desk does not buy a fresh burst of refusal records: the bucket is kept beside the replay
        memory and read back, suppressed counts included."""
        clock = FakeClock(NOW_MS)
        first_ports = FakePorts()
        first = desk(tmp_path, first_ports, clock, refusals_per_hour=3)
        for _ in range(5):
            first.handle(UNSIGNED)
        first.stop()
        assert len(first_ports.refused()) == 3
        saved = json.loads(refusals_path(tmp_path / "commands.json").read_text())
        assert saved["suppressed"] == {"unsigned": 2} and saved["tokens"] < 1

        clock.advance(1.0)
        again_ports = FakePorts()
        again = desk(tmp_path, again_ports, clock, refusals_per_hour=3)
        again.handle(UNSIGNED)
        assert again_ports.refused() == [], "no token after a restart one second later"
        clock.advance(20 * 60)
        again.handle(UNSIGNED)
        again.stop()
        (recorded,) = again_ports.refused()
        assert recorded["suppressed"] == 3 and recorded["suppressed_by_reason"] == {"unsigned": 3}

    def test_a_damaged_bucket_file_starts_a_full_bucket(self, tmp_path: Path) -> None:
        """An unreadable bucket file is not a reason to refuse to start: it is said and replaced."""
        refusals_path(tmp_path / "commands.json").write_text("{")
        fake = FakePorts()
        commands = desk(tmp_path, fake, FakeClock(NOW_MS), refusals_per_hour=3)
        commands.handle(UNSIGNED)
        commands.stop()
        assert len(fake.refused()) == 1
        assert GateState.from_json(json.loads(refusals_path(tmp_path / "commands.json").read_text())).tokens == 2

    def test_a_clock_stepping_back_does_not_empty_the_bucket(self) -> None:
        gate = RefusalGate(2, NOW_MS, GateState(1.0, NOW_MS + 3_600_000))
        assert gate.admit("unsigned", NOW_MS) == {}
        assert gate.admit("unsigned", NOW_MS) is None


MINIMAL = '[station]\nid = "ST-1"\nallow_empty = true\n[uplink]\nbroker = "127.0.0.1:1883"\n'


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    return [str(problem) for problem in raised.value.problems]


class TestTopicsAndClientId:
    @pytest.mark.parametrize(
        "prefix", ["fsm\\u0000v1", "fsm//v1", "$SYS/fsm", "/fsm/v1", "fsm/v1/", "fsm/+/v1", "fsm/#", ""]
    )
    def test_a_bad_prefix_is_refused_naming_the_field_and_the_rule(self, tmp_path: Path, prefix: str) -> None:
        """NUL, empty levels, a leading '$', a leading or trailing '/', wildcards and the empty prefix."""
        (problem,) = problems(tmp_path, MINIMAL + f'prefix = "{prefix}"\n')
        assert problem.startswith("uplink.prefix: found ") and "no empty level" in problem and "'$SYS'" in problem

    @pytest.mark.parametrize("client_id", ["", "a" * 65, "box 1", "box/1", "box#1", "caf\u00e9"])
    def test_a_bad_client_id_is_refused_with_the_safe_set(self, tmp_path: Path, client_id: str) -> None:
        (problem,) = problems(tmp_path, MINIMAL + f'client_id = "{client_id}"\n')
        assert problem.startswith("uplink.client_id: found ") and "1-64 letters, digits" in problem

    def test_good_prefixes_and_client_ids_load(self, tmp_path: Path) -> None:
        path = tmp_path / "agent.toml"
        path.write_text(MINIMAL + 'prefix = "city-a/fsm/v1"\nclient_id = "station-agent-ST-1:a.b_c"\n')
        config = load_config(path).config
        assert (config.uplink.prefix, config.uplink.client_id) == ("city-a/fsm/v1", "station-agent-ST-1:a.b_c")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"upto": 1}' + b" " * 2000, "too_large"),
        (b"[" * 50, "too_deep"),
        (b'{"upto": 1' + b"0" * 500 + b"}", "bad_number"),
        (b'{"upto": NaN}', "bad_number"),
        (b'{"upto": -Infinity}', "bad_number"),
        (b'{"upto": 1e999}', "bad_number"),
        (b'{"upto": \xff}', "not_json"),
        (b'{"upto": ', "not_json"),
        (b'{"upto": -1}', "not_an_ack"),
        (b'{"upto": "7"}', "not_an_ack"),
        (b"[1]", "not_an_ack"),
    ],
)
def test_a_refused_ack_gets_the_reason_code_of_the_limit_it_broke(payload: bytes, reason: str) -> None:
    """The ack_refused record's reason names the limit parse_ack enforced: size, depth, number, JSON or shape."""
    with pytest.raises(AckError) as refused:
        parse_ack(payload, 1024)
    assert ack_refusal(refused.value) == reason
