"""The pure verifier: bytes and a station in, a verdict out, with the precise reason for each rejection."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_platform_signer import RFC8032_SECRET, ZEROS, TinySigner, canonical, sha256_hex

from simulators.platform.canonical import SAFE_INTEGER, canonical_bytes
from simulators.platform.keys import chain_digest, key_id
from simulators.platform.signatures import ThreadedVerifier
from simulators.platform.verify import (
    Reason,
    Rejection,
    SignedRecord,
    links,
    verify_message,
    verify_status,
    verify_stored,
)

STATION = "ST-0001"


@pytest.fixture
def signer() -> TinySigner:
    return TinySigner(STATION)


def keys_of(signer: TinySigner) -> dict[str, Any]:
    return {signer.kid: signer.platform_key()}


def only_rejection(payload: bytes, signer: TinySigner) -> Rejection:
    verdict = verify_message(payload, STATION, keys_of(signer))
    assert verdict.accepted == ()
    assert len(verdict.rejections) == 1, verdict.rejections
    return verdict.rejections[0]


def test_hand_worked_record_has_the_canonical_bytes_and_prev_written_out() -> None:
    """For a fixed record, canonical_bytes and digest give the literal bytes and the hash `sha256sum` gave."""
    record = {
        "v": 1,
        "station": "ST-0001",
        "seq": 1,
        "ts": "2026-11-27T08:15:02.113Z",
        "type": "heartbeat",
        "body": {"uptime_s": 60, "note": "油站", "interval_s": 60},
        "prev": ZEROS,
    }
    literal = (
        b'{"body":{"interval_s":60,"note":"\xe6\xb2\xb9\xe7\xab\x99","uptime_s":60},'
        b'"prev":"0000000000000000000000000000000000000000000000000000000000000000",'
        b'"seq":1,"station":"ST-0001","ts":"2026-11-27T08:15:02.113Z","type":"heartbeat","v":1}'
    )
    assert canonical_bytes(record) == literal
    assert (
        chain_digest("21fe31dfa154a261", literal) == "b3777dcb2a8bf857e818d4331b5655e7aa0ed8316665e719d924d4e074918a65"
    )


def test_key_id_of_the_rfc8032_key() -> None:
    """kid is the first 8 bytes of SHA-256 of the raw public key, worked out by hand for RFC 8032's key."""
    assert key_id(TinySigner(secret=RFC8032_SECRET).platform_key()) == "21fe31dfa154a261"


def test_valid_chain_is_accepted_with_its_digests(signer: TinySigner) -> None:
    """Every record of a valid message is accepted, carrying its canonical bytes, digest, kid and sig."""
    records = signer.chain(3)
    verdict = verify_message(signer.message(records), STATION, keys_of(signer))
    assert verdict.rejections == ()
    assert [r.seq for r in verdict.accepted] == [1, 2, 3]
    first = verdict.accepted[0]
    assert first == SignedRecord(
        seq=1,
        type="heartbeat",
        prev=ZEROS,
        digest=sha256_hex(canonical(records[0])),
        canonical=canonical(records[0]),
        sig=signer.sign(records[0]),
        kid=signer.kid,
    )
    assert verdict.accepted[1].prev == first.digest


def test_unknown_record_type_is_accepted(signer: TinySigner) -> None:
    """The type list is open: a non-empty type the platform does not know still verifies."""
    record = signer.record(1, ZEROS, type_="pressure")
    verdict = verify_message(signer.message([record]), STATION, keys_of(signer))
    assert [r.type for r in verdict.accepted] == ["pressure"]


def test_leap_second_is_a_valid_time(signer: TinySigner) -> None:
    """RFC 3339 allows second 60."""
    record = signer.record(1, ZEROS) | {"ts": "2026-12-31T23:59:60.000Z"}
    assert verify_message(signer.message([record]), STATION, keys_of(signer)).rejections == ()


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda record: record.__setitem__(key, value)


RECORD_DEFECTS: list[tuple[str, Callable[[dict[str, Any]], None], Reason]] = [
    ("extra key", _set("extra", 1), Reason.RECORD_KEYS),
    ("missing key", lambda record: record.pop("ts"), Reason.RECORD_KEYS),
    ("version 2", _set("v", 2), Reason.VERSION),
    ("version true", _set("v", True), Reason.VERSION),
    ("version float", _set("v", 1.0), Reason.VERSION),
    ("other station", _set("station", "ST-0002"), Reason.STATION_MISMATCH),
    ("ts without millis", _set("ts", "2026-11-27T08:15:02Z"), Reason.TS_FORMAT),
    ("ts with offset", _set("ts", "2026-11-27T08:15:02.113+08:00"), Reason.TS_FORMAT),
    ("ts not a date", _set("ts", "2026-02-30T08:15:02.113Z"), Reason.TS_FORMAT),
    ("ts second 61", _set("ts", "2026-11-27T08:15:61.113Z"), Reason.TS_FORMAT),
    ("ts lowercase z", _set("ts", "2026-11-27t08:15:02.113z"), Reason.TS_FORMAT),
    ("ts number", _set("ts", 1764231302113), Reason.TS_FORMAT),
    ("type empty", _set("type", ""), Reason.TYPE_INVALID),
    ("type number", _set("type", 3), Reason.TYPE_INVALID),
    ("body list", _set("body", [1]), Reason.BODY_NOT_OBJECT),
    ("float in body", _set("body", {"volume_ml": 1.5}), Reason.FLOAT_IN_BODY),
    ("float deep in body", _set("body", {"a": [{"b": [2, 0.0]}]}), Reason.FLOAT_IN_BODY),
    ("prev uppercase", _set("prev", "A" * 64), Reason.PREV_FORMAT),
    ("prev short", _set("prev", "0" * 63), Reason.PREV_FORMAT),
]


@pytest.mark.parametrize(("defect", "damage", "reason"), RECORD_DEFECTS, ids=[d[0] for d in RECORD_DEFECTS])
def test_record_defect_is_rejected_with_its_reason(
    signer: TinySigner, defect: str, damage: Callable[[dict[str, Any]], None], reason: Reason
) -> None:
    """A validly signed record that breaks one rule of the contract is rejected for that rule, by seq."""
    good, bad = signer.chain(2)
    damage(bad)
    verdict = verify_message(signer.message([good, bad]), STATION, keys_of(signer))
    assert [r.seq for r in verdict.accepted] == [1]
    assert [(r.reason, r.seq) for r in verdict.rejections] == [(reason, 2)]


def test_record_signed_then_altered_is_a_bad_signature(signer: TinySigner) -> None:
    """Changing a signed record, even keeping it valid, breaks its signature."""
    record = signer.chain(1)[0]
    item = signer.item(record)
    item["record"] = record | {"body": {"n": 2}}
    payload = json.dumps({"kid": signer.kid, "records": [item]}).encode()
    rejection = only_rejection(payload, signer)
    assert (rejection.reason, rejection.seq) == (Reason.BAD_SIGNATURE, 1)


def test_integer_beyond_the_safe_range_has_no_canonical_form(signer: TinySigner) -> None:
    """RFC 8785 has no form for integers beyond 2**53 - 1, so nobody could have signed one."""
    record = signer.record(1, ZEROS, body={"n": 2**53})
    payload = json.dumps({"kid": signer.kid, "records": [{"record": record, "sig": "A" * 86 + "=="}]}).encode()
    rejection = only_rejection(payload, signer)
    assert (rejection.reason, rejection.seq) == (Reason.NOT_CANONICAL, 1)


def test_seq_beyond_the_safe_range_has_no_canonical_form(signer: TinySigner) -> None:
    """A seq is an integer like any other: beyond 2**53 - 1 the record cannot have been signed."""
    record = signer.record(SAFE_INTEGER + 1, "ab" * 32)
    payload = json.dumps({"kid": signer.kid, "records": [{"record": record, "sig": "A" * 86 + "=="}]}).encode()
    rejection = only_rejection(payload, signer)
    assert (rejection.reason, rejection.seq) == (Reason.NOT_CANONICAL, SAFE_INTEGER + 1)
    assert (
        rejection.detail
        == f"record has no RFC 8785 form: {SAFE_INTEGER + 1} exceeds safe integer domain for JSON floats"
    )


@pytest.mark.parametrize("where", ['{"\\ud800": 1}', '{"a": ["\\udc00"]}'], ids=["key", "value"])
def test_lone_surrogate_in_a_body_is_not_canonical(signer: TinySigner, where: str) -> None:
    """JSON can spell half a surrogate pair, UTF-8 cannot: the record is refused, the message is not crashed on."""
    record = signer.record(1, ZEROS)
    item = {"record": record, "sig": "A" * 86 + "=="}
    payload = json.dumps({"kid": signer.kid, "records": [item]}).replace('{"n": 1}', where).encode()
    rejection = only_rejection(payload, signer)
    assert (rejection.reason, rejection.seq) == (Reason.NOT_CANONICAL, 1)
    assert "lone surrogate" in rejection.detail


def test_float_rejection_names_the_path_to_the_float(signer: TinySigner) -> None:
    """The detail says where in the body the float is, so the supplier can find the field."""
    record = signer.record(1, ZEROS, body={"a": [{"b": [2, 0.5]}], "c": "x"})
    rejection = only_rejection(signer.message([record]), signer)
    assert rejection.reason == Reason.FLOAT_IN_BODY
    assert rejection.detail.startswith("body.a[0].b[1] is 0.5: quantities are integers")


def _buried(leaf: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A body holding `leaf` at some depth, in lists and objects beside ordinary fields."""
    return st.tuples(leaf, st.lists(st.sampled_from(["list", "object"]), max_size=4)).map(
        lambda drawn: {"volume_ml": 30120, "grade": "92", "deep": _wrap(*drawn)}
    )


def _wrap(value: Any, wrappers: list[str]) -> Any:
    for kind in wrappers:
        value = [1, "x", value] if kind == "list" else {"a": 1, "k": value}
    return value


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_buried(st.floats(allow_nan=False, allow_infinity=False)))
def test_a_float_anywhere_in_the_body_is_float_in_body(signer: TinySigner, body: dict[str, Any]) -> None:
    """Wherever a float hides in a signed body, the record is rejected for it, as the contract says."""
    record = signer.record(1, ZEROS, body=body)
    rejection = only_rejection(signer.message([record]), signer)
    assert (rejection.reason, rejection.seq) == (Reason.FLOAT_IN_BODY, 1)


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_buried(st.integers(SAFE_INTEGER + 1) | st.integers(max_value=-SAFE_INTEGER - 1)))
def test_an_integer_beyond_the_safe_range_anywhere_in_the_body_is_not_canonical(
    signer: TinySigner, body: dict[str, Any]
) -> None:
    """Wherever an integer beyond ±(2**53 - 1) hides, the record has no canonical form and is refused for that."""
    record = signer.record(1, ZEROS, body=body)
    payload = json.dumps({"kid": signer.kid, "records": [{"record": record, "sig": "A" * 86 + "=="}]}).encode()
    rejection = only_rejection(payload, signer)
    assert (rejection.reason, rejection.seq) == (Reason.NOT_CANONICAL, 1)
    assert rejection.detail.endswith("exceeds safe integer domain for JSON floats")


def test_threaded_verifier_gives_the_verdict_of_the_serial_one(signer: TinySigner) -> None:
    """Signatures checked side by side on threads: the same records accepted, the same rejected, in order."""
    records = signer.chain(9)
    forger = TinySigner(STATION)
    items = [forger.item(record) if record["seq"] in (2, 7) else signer.item(record) for record in records]
    items[4]["sig"] = "not base64"
    payload = json.dumps({"kid": signer.kid, "records": items}).encode()
    serial = verify_message(payload, STATION, keys_of(signer))
    with ThreadedVerifier(3) as threaded:
        assert verify_message(payload, STATION, keys_of(signer), threaded) == serial
    assert [(r.reason, r.seq) for r in serial.rejections] == [
        (Reason.BAD_SIGNATURE, 2),
        (Reason.SIG_FORMAT, 5),
        (Reason.BAD_SIGNATURE, 7),
    ]
    assert [r.seq for r in serial.accepted] == [1, 3, 4, 6, 8, 9]


def test_signature_by_another_key_under_this_kid_is_a_bad_signature(signer: TinySigner) -> None:
    """A record signed by someone else but sent under the station's kid does not verify."""
    forger = TinySigner(STATION)
    record = signer.chain(1)[0]
    payload = json.dumps({"kid": signer.kid, "records": [forger.item(record)]}).encode()
    assert only_rejection(payload, signer).reason == Reason.BAD_SIGNATURE


@pytest.mark.parametrize(
    "sig",
    ["", "not base64!", "AAAA", "A" * 86 + "==" + "\n", "A" * 88, "A" * 85 + "B==", 64],
    ids=["empty", "alphabet", "short", "newline", "no padding", "nonzero pad bits", "number"],
)
def test_signature_not_in_standard_padded_base64_of_64_bytes_is_a_sig_format_error(
    signer: TinySigner, sig: object
) -> None:
    """Only standard base64 with padding, 64 bytes, in its one canonical spelling."""
    record = signer.chain(1)[0]
    payload = json.dumps({"kid": signer.kid, "records": [{"record": record, "sig": sig}]}).encode()
    assert only_rejection(payload, signer).reason == Reason.SIG_FORMAT


MESSAGE_DEFECTS: list[tuple[str, bytes, Reason]] = [
    ("not json", b"records!", Reason.NOT_JSON),
    ("not utf-8", b'{"kid": "\xff"}', Reason.NOT_JSON),
    ("nan", b'{"kid": NaN, "records": []}', Reason.NOT_JSON),
    ("duplicate key", b'{"kid": "a", "kid": "b", "records": []}', Reason.NOT_JSON),
    ("list", b"[]", Reason.MESSAGE_SHAPE),
    ("extra top-level key", b'{"kid": "a", "records": [], "x": 1}', Reason.MESSAGE_SHAPE),
    ("no records", b'{"kid": "a", "records": []}', Reason.MESSAGE_SHAPE),
    ("kid not a string", b'{"kid": 1, "records": [{"record": {}, "sig": ""}]}', Reason.MESSAGE_SHAPE),
    ("item without sig", b'{"kid": "a", "records": [{"record": {}}]}', Reason.MESSAGE_SHAPE),
    ("record not an object", b'{"kid": "a", "records": [{"record": [], "sig": ""}]}', Reason.MESSAGE_SHAPE),
]


@pytest.mark.parametrize(("defect", "payload", "reason"), MESSAGE_DEFECTS, ids=[d[0] for d in MESSAGE_DEFECTS])
def test_malformed_message_is_rejected_whole(signer: TinySigner, defect: str, payload: bytes, reason: Reason) -> None:
    """A payload that is not strict JSON of the records shape is rejected as one, with no seq."""
    rejection = only_rejection(payload, signer)
    assert (rejection.reason, rejection.seq) == (reason, None)


def test_unknown_kid_rejects_the_whole_message(signer: TinySigner) -> None:
    """Records under a kid the platform does not know for this station are not looked at."""
    stranger = TinySigner(STATION)
    rejection = only_rejection(stranger.message(stranger.chain(2)), signer)
    assert rejection.reason == Reason.UNKNOWN_KID
    assert stranger.kid in rejection.detail


@pytest.mark.parametrize(
    ("seqs", "reason"),
    [
        ([1, 3], Reason.SEQ_NOT_CONTIGUOUS),
        ([2, 1], Reason.SEQ_NOT_CONTIGUOUS),
        ([1, 1], Reason.SEQ_NOT_CONTIGUOUS),
        ([1, True], Reason.SEQ_INVALID),
        ([0, 1], Reason.SEQ_INVALID),
        ([1, "2"], Reason.SEQ_INVALID),
    ],
)
def test_message_seqs_must_be_positive_ascending_and_contiguous(
    signer: TinySigner, seqs: list[Any], reason: Reason
) -> None:
    """The message is rejected whole: its records are signed fine, the message breaks the contract."""
    records = [signer.record(1, ZEROS) | {"seq": seq} for seq in seqs]
    assert only_rejection(signer.message(records), signer).reason == reason


def test_links_follow_the_contract() -> None:
    """Seq 1 links to 64 zeros; seq k links to record k-1's digest, and is not checkable without it."""
    assert links(1, ZEROS, None)
    assert not links(1, "1" * 64, None)
    assert links(5, "ab" * 32, "ab" * 32)
    assert not links(5, "ab" * 32, "cd" * 32)
    assert not links(5, "ab" * 32, None)


def test_stored_bytes_are_reverified_and_must_be_canonical(signer: TinySigner) -> None:
    """An audit re-checks stored bytes: they must verify and be the record's RFC 8785 form exactly."""
    record = signer.chain(1)[0]
    good = canonical(record)
    keys = keys_of(signer)
    sig = signer.sign(record)
    assert isinstance(verify_stored(good, sig, signer.kid, STATION, keys), SignedRecord)
    spaced = json.dumps(record, indent=1).encode()
    assert verify_stored(spaced, signer.sign(json.loads(spaced)), signer.kid, STATION, keys) == Rejection(
        Reason.NOT_CANONICAL, 1, "stored bytes are not the record's RFC 8785 form"
    )
    tampered = good.replace(b'"n":1', b'"n":2')
    rejection = verify_stored(tampered, sig, signer.kid, STATION, keys)
    assert isinstance(rejection, Rejection)
    assert rejection.reason == Reason.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("payload", "ok"),
    [
        (b'{"state": "online", "agent": "0.1.0"}', True),
        (b'{"state": "offline"}', True),
        (b'{"state": "asleep"}', False),
        (b"", False),
        (b"online", False),
    ],
)
def test_status_must_be_online_or_offline(payload: bytes, ok: bool) -> None:
    """A status payload is kept only if it is an object whose state is online or offline."""
    outcome = verify_status(payload)
    assert isinstance(outcome, dict) == ok
    if not ok:
        assert isinstance(outcome, Rejection)
        assert outcome.reason == Reason.STATUS_INVALID
