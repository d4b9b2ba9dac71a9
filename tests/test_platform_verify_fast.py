"""The quick way through a records message (a payload already in canonical form) gives the full way's verdict."""

from __future__ import annotations

import base64
import inspect
import json
import sys
from dataclasses import dataclass
from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st
from test_platform_signer import ZEROS, TinySigner, canonical

from agent.contract.framing import build_records_message
from simulators.platform import verify
from simulators.platform.canonical import SAFE_INTEGER
from simulators.platform.keys import StationPublicKey
from simulators.platform.verify import Reason, Verdict, verify_message

STATION = "ST-0001"
SIGNER = TinySigner(STATION)
KEYS: dict[str, StationPublicKey] = {SIGNER.kid: SIGNER.platform_key()}


@dataclass(frozen=True, slots=True)
class Sealed:
    """A record as the outbox keeps it, for the agent's own framing (agent.contract.framing)."""

    seq: int
    kid: str
    canonical: bytes
    sig: bytes


def agent_payload(records: list[dict[str, Any]], signer: TinySigner = SIGNER) -> bytes:
    """The payload the agent publishes: each record's canonical bytes spliced in, signed over them."""
    sealed = [
        Sealed(record["seq"], signer.kid, canonical(record), base64.b64decode(signer.sign(record)))
        for record in records
    ]
    message = build_records_message(sealed, 1024**3)
    assert message is not None
    return message.payload


def both_ways(payload: bytes) -> tuple[Verdict, Verdict]:
    """The verdict as the receiver reaches it, and the one the full way alone reaches."""
    quick = verify_message(payload, STATION, KEYS)
    with mock.patch.object(verify, "_canonical_parts", lambda _payload: None):
        full = verify_message(payload, STATION, KEYS)
    return quick, full


def test_the_agents_framing_takes_the_quick_way_and_every_record_is_accepted() -> None:
    """A chain framed as the agent frames it is taken apart the quick way, with each record's signed bytes."""
    records = SIGNER.chain(5)
    records[2]["body"] = {"note": "油站", "amount_fen": 10**15 - 1, "nested": [{"b": None, "a": [True, -1]}]}
    payload = agent_payload(records)
    parts = verify._canonical_parts(payload)
    assert parts is not None
    assert parts[2] == [canonical(record) for record in records]
    quick, full = both_ways(payload)
    assert quick == full
    assert [record.seq for record in quick.accepted] == [1, 2, 3, 4, 5] and quick.rejections == ()


def station_messages() -> bytes:
    """Three linked records, one with a Chinese note, framed as the agent frames them."""
    records = SIGNER.chain(3)
    records[0]["body"] = {"n": 1, "note": "油站"}
    return agent_payload(records)


def hostile_variants(payload: bytes) -> dict[str, bytes]:
    """Spellings of one message that the quick way must not take at face value."""
    text = payload.decode("utf-8")

    def in_body(member: str) -> bytes:
        """The payload with `member` put first in the first record's body."""
        return text.replace('"body":{', '"body":{' + member + ",", 1).encode()

    return {
        "spaces": json.dumps(json.loads(text)).encode(),
        "escaped": json.dumps(json.loads(text), ensure_ascii=True, separators=(",", ":")).encode(),
        "kid twice": text.replace('{"kid":', '{"kid":"0000000000000000","kid":', 1).encode(),
        "key twice in a record": text.replace('{"body":', '{"body":{},"body":', 1).encode(),
        "key twice in a body": in_body('"n":5'),
        "unsorted": text.replace('"seq":1,"station":"ST-0001"', '"station":"ST-0001","seq":1', 1).encode(),
        "float": in_body('"litres":1.5'),
        "exponent": in_body('"litres":1e3'),
        "NaN": in_body('"litres":NaN'),
        "long integer": in_body(f'"a":{SAFE_INTEGER + 1}'),
        "negative long integer": in_body(f'"a":-{SAFE_INTEGER + 1}'),
        "huge integer": in_body('"a":' + "9" * 5000),
        "minus zero": in_body('"a":-0'),
        "key beyond the BMP": in_body('"\U0001f600":1'),
        "escaped key beyond the BMP": in_body('"\\ud83d\\ude00":1'),
        "lone surrogate": in_body('"a":"\\ud800"'),
        "escaped control": in_body('"a":"\\u0001"'),
        "latin escaped": in_body('"a":"\\u00e9"'),
        "not UTF-8": payload.replace(b'"body":{', b'"body":{"a":"\xff",', 1),
        "BOM": b"\xef\xbb\xbf" + payload,
        "trailing space": payload + b" ",
        "trailing garbage": payload + b"x",
        "deep": in_body('"a":' + "[" * 100_000 + "]" * 100_000),
        "sig a number": text.replace('"sig":"', '"sig":1,"x":"', 1).encode(),
        "string looking like a long integer": in_body('"a":"x:1234567890123456789"'),
        "record not an object": text.replace('{"record":{', '{"record":[{', 1)
        .replace('},"sig"', '}],"sig"', 1)
        .encode(),
        "empty": b"",
    }


def test_every_hostile_spelling_gets_the_full_ways_verdict() -> None:
    """Repeated keys, floats, long integers, escapes, bad UTF-8, depth: same verdict both ways, none mistaken."""
    for name, payload in hostile_variants(station_messages()).items():
        quick, full = both_ways(payload)
        assert quick == full, name


def test_the_quick_way_declines_what_it_cannot_show() -> None:
    """A spelling that is not the canonical form, or holds what the C encoder writes otherwise, goes the full way."""
    taken = {"escaped control"}
    for name, payload in hostile_variants(station_messages()).items():
        assert (verify._canonical_parts(payload) is not None) == (name in taken), name


def test_an_integer_of_sixteen_digits_goes_the_full_way_and_is_taken() -> None:
    """The quick way leaves integers of 16 digits to the full way, which takes those within ±(2**53 - 1)."""
    records = SIGNER.chain(1)
    records[0]["body"] = {"amount_fen": SAFE_INTEGER, "refund_fen": -SAFE_INTEGER}
    payload = agent_payload(records)
    assert verify._canonical_parts(payload) is None
    quick, full = both_ways(payload)
    assert quick == full and [record.seq for record in quick.accepted] == [1]


def deep_payload(depth: int) -> bytes:
    """Record 1 with a body nested `depth` arrays deep, its canonical bytes written out by hand (RFC 8785: keys
    sorted, no whitespace; a list of lists has one spelling), so no recursive encoder is needed to sign it."""
    record = SIGNER.record(1, ZEROS, {})
    text = ",".join(
        [
            '{"body":{"a":' + "[" * depth + "]" * depth + "}",
            f'"prev":"{ZEROS}","seq":1,"station":"{STATION}","ts":"{record["ts"]}","type":"heartbeat","v":1}}',
        ]
    ).encode()
    sealed = Sealed(1, SIGNER.kid, text, SIGNER.key.sign(text))
    message = build_records_message([sealed], 1024**3)
    assert message is not None
    return message.payload


def test_a_body_nested_near_the_interpreters_limit_gets_the_same_verdict_both_ways() -> None:
    """Depths where the C parser runs out of stack on one way and not the other (the full way parses a frame or
    two deeper) get one verdict: the quick way leaves a deeply nested message to the full way."""
    limit = sys.getrecursionlimit()
    for depth in range(limit - 200, limit + 5):
        quick, full = both_ways(deep_payload(depth))
        assert quick == full, depth
    assert verify._canonical_parts(deep_payload(8)) is not None


def test_nesting_is_limited_at_one_depth_whoever_calls() -> None:
    """A message nested MAX_DEPTH deep (a body 5 levels down) is taken and one level deeper refused as not JSON,
    the same at the top of the stack and from a caller already near the interpreter's limit; the audit takes the
    stored record of the deepest message taken."""

    def from_depth(frames: int, payload: bytes) -> Verdict:
        if frames > 0:
            return from_depth(frames - 1, payload)
        return verify.verify_message(payload, STATION, KEYS)

    deepest, too_deep = deep_payload(verify.MAX_DEPTH - 5), deep_payload(verify.MAX_DEPTH - 4)
    stack_left = sys.getrecursionlimit() - len(inspect.stack()) - 100
    for payload in (deepest, too_deep):
        assert from_depth(0, payload) == from_depth(stack_left, payload) == both_ways(payload)[1]
    taken = from_depth(stack_left, deepest).accepted
    assert [record.seq for record in taken] == [1]
    refused = from_depth(stack_left, too_deep).rejections
    assert [(r.reason, r.detail) for r in refused] == [
        (Reason.NOT_JSON, f"payload is not strict UTF-8 JSON: nested more than {verify.MAX_DEPTH} deep")
    ]
    stored = verify.verify_stored(taken[0].canonical, taken[0].sig, SIGNER.kid, STATION, KEYS)
    assert stored == taken[0]


def test_a_repeated_key_is_refused_as_before() -> None:
    """A record with a key twice is not JSON to the platform, however the rest of the message is written."""
    payload = hostile_variants(station_messages())["key twice in a body"]
    quick, _ = both_ways(payload)
    assert quick.accepted == () and quick.rejections[0].reason is Reason.NOT_JSON


def test_forged_and_replayed_records_get_the_same_verdict_both_ways() -> None:
    """A bad signature, a record signed by another key, a forged prev, a repeat: checked alike both ways."""
    records = SIGNER.chain(4)
    forger = TinySigner(STATION)
    payload = agent_payload(records)
    genuine = canonical(records[1])
    forged = dict(records[1], body={"n": 999})
    tampered = payload.replace(genuine, canonical(forged), 1)
    other_key = agent_payload(records[:2], forger).replace(forger.kid.encode(), SIGNER.kid.encode(), 1)
    bad_prev = agent_payload([dict(records[0], prev="f" * 64)])
    for payload in (tampered, other_key, bad_prev, agent_payload(records[2:] + records[:2])):
        quick, full = both_ways(payload)
        assert quick == full
    quick, _ = both_ways(tampered)
    assert [rejection.reason for rejection in quick.rejections] == [Reason.BAD_SIGNATURE]


KEYS_ANY = st.text(st.characters(exclude_categories=("Cs",)), max_size=6)
"""Keys of any character, those beyond the BMP among them (which the quick way must leave alone). Any character
UTF-8 can encode is any but the surrogates: named by their category rather than by `codec="utf-8"`, for which
Hypothesis first encodes all 1.1 million code points (1.8 s in a checkout without its cache)."""
KEYS_BMP = st.text(st.characters(exclude_categories=("Cs",), max_codepoint=0xFFFF), max_size=6)
JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.integers(min_value=-SAFE_INTEGER, max_value=SAFE_INTEGER),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=8),
)
"""No floats here: a body with one is made apart (`float_at`), so that most messages can take the quick way."""
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS_BMP | KEYS_ANY, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None)
@given(
    bodies=st.lists(st.dictionaries(KEYS_BMP, JSON_VALUES, max_size=5), min_size=1, max_size=3),
    float_at=st.none() | st.floats(allow_nan=False, allow_infinity=False),
    type_=st.sampled_from(["transaction", "heartbeat", "chain_reset", "alarm", ""]),
    cut=st.integers(min_value=0, max_value=10_000),
    byte=st.integers(min_value=0, max_value=255),
)
def test_any_body_framed_as_the_agent_frames_it_gets_the_full_ways_verdict(
    bodies: list[dict[str, Any]], float_at: float | None, type_: str, cut: int, byte: int
) -> None:
    """Arbitrary bodies (floats, long integers, keys beyond the BMP) framed by the agent, and one byte changed."""
    if float_at is not None:
        bodies[-1]["litres"] = float_at
    records = []
    prev = ZEROS
    for seq, body in enumerate(bodies, start=1):
        records.append(SIGNER.record(seq, prev, body, type_))
        try:
            prev = verify.chain_digest(SIGNER.kid, canonical(records[-1]))
        except Exception:  # rfc8785 refuses the body (a float it cannot write, a long integer): any prev will do
            prev = ZEROS
    try:
        payload = agent_payload(records)
    except Exception:  # no canonical bytes to sign: send the stdlib's spelling, signed over nothing
        payload = json.dumps(
            {"kid": SIGNER.kid, "records": [{"record": r, "sig": "A" * 86 + "=="} for r in records]}
        ).encode()
    quick, full = both_ways(payload)
    assert quick == full
    changed = bytearray(payload)
    changed[cut % len(changed)] = byte
    quick, full = both_ways(bytes(changed))
    assert quick == full
