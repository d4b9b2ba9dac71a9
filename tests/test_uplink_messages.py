"""Payloads on the wire: records messages spliced from stored bytes, status, and acks."""

from __future__ import annotations

import base64
import json

import pytest

from agent.contract.framing import AckError, Topics, build_records_message, parse_ack, status_payload
from agent.ledger.outbox import StoredRecord


def stored(seq: int, kid: str = "00112233aabbccdd", pad: int = 0) -> StoredRecord:
    canonical = json.dumps({"seq": seq, "pad": "x" * pad}, separators=(",", ":")).encode()
    return StoredRecord(seq, kid, canonical, bytes([seq % 256]) * 64)


class TestRecordsMessage:
    def test_records_are_the_stored_bytes_with_base64_signatures(self) -> None:
        """Each item's record is the stored canonical JSON unchanged and sig is standard base64 with padding."""
        message = build_records_message([stored(1), stored(2)], 10_000)
        assert message is not None and (message.first, message.last) == (1, 2)
        payload = json.loads(message.payload)
        assert payload["kid"] == "00112233aabbccdd"
        assert [item["record"]["seq"] for item in payload["records"]] == [1, 2]
        assert base64.b64decode(payload["records"][1]["sig"]) == bytes([2]) * 64
        assert b'{"record":{"seq":1,"pad":""},"sig":"' in message.payload

    def test_size_limit_cuts_the_message_but_never_below_one_record(self) -> None:
        """A message stays within max_bytes; a single record larger than that still goes alone."""
        records = [stored(i, pad=300) for i in range(1, 11)]
        message = build_records_message(records, 1200)
        assert message is not None and len(message.payload) <= 1200 and message.last < 10
        huge = build_records_message([stored(1, pad=5000)], 1200)
        assert huge is not None and huge.last == 1

    def test_a_change_of_key_ends_the_message(self) -> None:
        """Records signed by another key go in the next message, since a message carries one kid."""
        message = build_records_message([stored(1), stored(2, kid="ffffffffffffffff")], 10_000)
        assert message is not None and message.last == 1

    def test_a_hole_in_seq_ends_the_message(self) -> None:
        """Messages are contiguous runs."""
        message = build_records_message([stored(1), stored(3)], 10_000)
        assert message is not None and message.last == 1


class TestAckAndStatus:
    def test_ack_parses_upto(self) -> None:
        """{"upto": N} gives N."""
        assert parse_ack(b'{"upto": 42}', 1024) == 42

    @pytest.mark.parametrize("payload", [b"42", b'{"upto": -1}', b'{"upto": true}', b'{"upto": "4"}', b"\xff"])
    def test_bad_acks_are_refused(self, payload: bytes) -> None:
        """Anything but a non-negative integer upto is an AckError, never an ack."""
        with pytest.raises(AckError):
            parse_ack(payload, 1024)

    def test_topics_follow_the_contract(self) -> None:
        """Topics are {prefix}/{station}/records, /status, /ack, /cmd, /cmd/reply."""
        topics = Topics.for_station("fsm/v1", "ST-1")
        assert (topics.records, topics.status, topics.ack, topics.cmd, topics.cmd_reply) == (
            "fsm/v1/ST-1/records",
            "fsm/v1/ST-1/status",
            "fsm/v1/ST-1/ack",
            "fsm/v1/ST-1/cmd",
            "fsm/v1/ST-1/cmd/reply",
        )

    def test_status_payload(self) -> None:
        """The status payload carries the state and the given fields."""
        assert json.loads(status_payload("offline", reason="stopped")) == {"state": "offline", "reason": "stopped"}
