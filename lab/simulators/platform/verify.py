"""Verification of what a station sends, without I/O: bytes and the topic's station in, a verdict out.

Theory of operation: a records message is first checked as a whole (strict JSON, its shape, a kid known for
the station, seqs ascending and contiguous); if any of that fails, nothing in it is taken. Then each record is
checked on its own (exact keys, field formats, no floats in the body, canonical form, the form of its
signature), and last the signatures of all that got that far, together, so that they can be verified side by
side; the records that pass are accepted and each one that fails is rejected with a single reason, without
stopping the others.
Whether a record fits the chain is not decided here: that depends on what arrived before, which is the
store's business (`links`, below, is the rule it applies).

A message as the agent writes it is itself in canonical form: each record's signed bytes spliced in between
fixed framing. Such a message is taken apart the quick way (`_canonical_parts`): parsed without the
duplicate-key hook and re-written by the C encoder, and when that gives back the payload byte for byte, the
payload has shown that it holds no repeated key, no float and no character beyond the Basic Multilingual
Plane, and which text is each record's canonical form; so the walks that look for those are not needed, and
every other check runs as it does for any message. Anything else goes the full way. The verdict is the same
either way (tests/test_platform_verify_fast.py holds the two to it).
"""

from __future__ import annotations

import binascii
import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Final, NamedTuple, TypeGuard

from simulators.platform.canonical import CanonicalizationError, canonical_bytes, sorted_text
from simulators.platform.contract import CHAIN_RESET, CONTRACT_VERSION, GENESIS_PREV, RECORD_KEYS, STATUS_STATES
from simulators.platform.keys import StationPublicKey, chain_digest
from simulators.platform.signatures import SignatureCheck, Verifier, verifies, verify_each


class Reason(StrEnum):
    """Why something a station sent was not taken. The values appear in reports and logs."""

    NOT_JSON = "not_json"
    MESSAGE_SHAPE = "message_shape"
    UNKNOWN_KID = "unknown_kid"
    SEQ_INVALID = "seq_invalid"
    SEQ_NOT_CONTIGUOUS = "seq_not_contiguous"
    RECORD_KEYS = "record_keys"
    VERSION = "version"
    STATION_MISMATCH = "station_mismatch"
    TS_FORMAT = "ts_format"
    TYPE_INVALID = "type_invalid"
    BODY_NOT_OBJECT = "body_not_object"
    FLOAT_IN_BODY = "float_in_body"
    PREV_FORMAT = "prev_format"
    NOT_CANONICAL = "not_canonical"
    SIG_FORMAT = "sig_format"
    BAD_SIGNATURE = "bad_signature"
    STATUS_INVALID = "status_invalid"
    RESET_INVALID = "reset_invalid"


@dataclass(frozen=True, slots=True)
class Rejection:
    """One thing not taken: a whole message (seq None) or one record of it."""

    reason: Reason
    seq: int | None
    detail: str


class SignedRecord(NamedTuple):
    """A record that passed every check it can pass on its own, with what the chain and the store need.

    A named tuple rather than a frozen dataclass: one is made for every record a platform takes, and a frozen
    dataclass's `__init__` (a guarded `setattr` per field) costs several times as much to make.
    """

    seq: int
    type: str
    prev: str
    digest: str
    canonical: bytes
    sig: str
    kid: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """What became of one records message."""

    accepted: tuple[SignedRecord, ...] = ()
    rejections: tuple[Rejection, ...] = ()


_TS: Final = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})T(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)\.[0-9]{3}Z")
"""The ts format, with the hour, minute and second in range (second 60 for a leap second); the date is checked
apart, because whether a day exists depends on its month and year."""
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
_SIG: Final = re.compile(r"[A-Za-z0-9+/]{86}==")


@dataclass(frozen=True, slots=True)
class DeclaredLoss:
    """What a chain_reset (v1.1) says: records `lost_first` .. `seq - 1` may be lost, and its `prev` names
    record `known_seq` (0: none, and `prev` is 64 zeros)."""

    seq: int
    reason: str
    lost_first: int
    known_seq: int

    @property
    def lost_last(self) -> int:
        return self.seq - 1


def declared_loss(record_type: str, canonical: bytes) -> DeclaredLoss | None:
    """The loss a verified record declares, or None if it is not a chain_reset."""
    if record_type != CHAIN_RESET:
        return None
    record = json.loads(canonical)
    body = record["body"]
    return DeclaredLoss(record["seq"], str(body["reason"]), body["lost_first"], body["known_seq"])


@dataclass(frozen=True, slots=True)
class DeclaredDamage:
    """What an `outbox_corrupt` alarm (v1.1) says: records `first_seq` .. `last_seq` were damaged on the
    station, and `next_prev` is the digest record `last_seq` had when it was sealed (the `prev` of the record
    after it). The range is lost, explained; the chain goes on at `last_seq + 1` if that record links to it."""

    first_seq: int
    last_seq: int
    next_prev: str


def declared_damage(record_type: str, canonical: bytes) -> DeclaredDamage | None:
    """The damage a verified record declares, or None if it is not an `outbox_corrupt` alarm that names a range
    below itself and the digest after it (an alarm without `next_prev`, from before it was added, declares none)."""
    if record_type != "alarm" or b'"outbox_corrupt"' not in canonical:
        return None
    record = json.loads(canonical)
    body = record["body"]
    evidence = body.get("evidence") if isinstance(body, dict) and body.get("kind") == "outbox_corrupt" else None
    if not isinstance(evidence, dict):
        return None
    first, last, next_prev = evidence.get("first_seq"), evidence.get("last_seq"), evidence.get("next_prev")
    if not (_is_seq(first) and _is_seq(last) and isinstance(next_prev, str) and _HEX64.fullmatch(next_prev)):
        return None
    if not 1 <= first <= last < record["seq"] - 1:
        return None
    return DeclaredDamage(first, last, next_prev)


def predecessor(record: SignedRecord) -> int:
    """The seq whose digest this record's `prev` must be: `seq - 1`, or `known_seq` for a chain_reset."""
    loss = declared_loss(record.type, record.canonical)
    return record.seq - 1 if loss is None else loss.known_seq


def links(seq: int, prev: str, digest_before: str | None) -> bool:
    """Whether record `seq` with `prev` follows the record before it (None: not known, so not checkable).

    Record 1 follows nothing and must carry 64 zeros, so its link is always checkable.
    """
    if seq == 1:
        return prev == GENESIS_PREV
    return digest_before is not None and prev == digest_before


MAX_DEPTH: Final = 64
"""The deepest nesting of arrays and objects in any JSON the platform parses; a records message of the agent's
is 6 or 7 deep. Checked before parsing, so that the receiver and the audit refuse the same messages: where the
recursive parser would run out of stack depends on how deep its caller already is."""
_JSON_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def parse_json(data: bytes) -> object:
    """Strict JSON: UTF-8, at most MAX_DEPTH deep, no duplicate keys, no NaN or Infinity. Raises ValueError
    saying what is wrong."""
    if b"()" in _peel(_brackets(_JSON_STRING.sub(b'""', data)), MAX_DEPTH):
        raise ValueError(f"nested more than {MAX_DEPTH} deep")
    try:
        return json.loads(data.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except RecursionError as error:
        raise ValueError("nested too deeply") from error


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """The object of `pairs`, built in C; only when a key was lost to a repeat is the repeat looked for."""
    result = dict(pairs)
    if len(result) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"key {key!r} appears twice in one object")
            seen.add(key)
    return result


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _is_seq(value: object) -> TypeGuard[int]:
    return type(value) is int and value >= 1


def _keys_problem(record: Mapping[str, object], station: str) -> str | None:
    if record.keys() == RECORD_KEYS:
        return None
    missing, extra = sorted(RECORD_KEYS - record.keys()), sorted(record.keys() - RECORD_KEYS)
    return f"record keys must be exactly {sorted(RECORD_KEYS)}; missing {missing}, extra {extra}"


def _version_problem(record: Mapping[str, object], station: str) -> str | None:
    v = record["v"]
    if type(v) is int and v == CONTRACT_VERSION:
        return None
    return f"v is {v!r}, this receiver knows contract version {CONTRACT_VERSION} only"


def _station_problem(record: Mapping[str, object], station: str) -> str | None:
    if record["station"] == station:
        return None
    return f"station is {record['station']!r} but the record came on the topic of station {station!r}"


def _seq_problem(record: Mapping[str, object], station: str) -> str | None:
    if _is_seq(record["seq"]):
        return None
    return f"seq is {record['seq']!r}, want a positive integer"


def _is_utc_ms_time(ts: str) -> bool:
    """RFC 3339 UTC with milliseconds, naming a time that exists (second 60 allowed for a leap second)."""
    match = _TS.fullmatch(ts)
    return match is not None and _is_real_date(match[1])


@functools.lru_cache(maxsize=1024)
def _is_real_date(text: str) -> bool:
    """Whether YYYY-MM-DD names a day of the calendar; cached, since a station's records share few days."""
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _ts_problem(record: Mapping[str, object], station: str) -> str | None:
    ts = record["ts"]
    if isinstance(ts, str) and _is_utc_ms_time(ts):
        return None
    return f"ts is {ts!r}, want a real RFC 3339 UTC time with milliseconds, e.g. 2026-11-27T08:15:02.113Z"


def _type_problem(record: Mapping[str, object], station: str) -> str | None:
    if isinstance(record["type"], str) and record["type"]:
        return None
    return f"type is {record['type']!r}, want a non-empty string"


def _body_problem(record: Mapping[str, object], station: str) -> str | None:
    if isinstance(record["body"], dict):
        return None
    return f"body is {type(record['body']).__name__}, want an object"


def _float_problem(record: Mapping[str, object], station: str) -> str | None:
    found = _first_float("body", record["body"])
    if found is None:
        return None
    path, value = found
    return f"{path} is {value!r}: quantities are integers in small units (mL, fen, 0.01 °C), never floats"


def _first_float(path: str, container: object) -> tuple[str, float] | None:
    """Where a float is in `container` (a dict or list at `path`) and what it is, or None if there is none.

    A path is spelt out only for what is pushed or returned (containers and the float), not for every value,
    and the strings and integers that bodies are made of are passed over before any isinstance.
    """
    pending: list[tuple[str, object]] = [(path, container)]
    while pending:
        path, container = pending.pop()
        entries = container.items() if isinstance(container, dict) else enumerate(container)  # type: ignore[arg-type]
        for key, child in entries:
            if type(child) is str or type(child) is int:
                continue
            if isinstance(child, float):
                return _child_path(path, key), child
            if isinstance(child, (dict, list)):
                pending.append((_child_path(path, key), child))
    return None


def _child_path(path: str, key: object) -> str:
    return f"{path}[{key}]" if type(key) is int else f"{path}.{key}"


def _prev_problem(record: Mapping[str, object], station: str) -> str | None:
    prev = record["prev"]
    if isinstance(prev, str) and _HEX64.fullmatch(prev):
        return None
    return f"prev is {prev!r}, want 64 lowercase hex digits"


def _reset_problem(record: Mapping[str, object], station: str) -> str | None:
    """A chain_reset's body must declare a loss that ends just below it and link to a record before it."""
    if record["type"] != CHAIN_RESET:
        return None
    body, seq = record["body"], record["seq"]
    assert isinstance(body, dict) and _is_seq(seq)
    numbers = {name: body.get(name) for name in ("lost_first", "lost_last", "known_seq")}
    if not all(type(value) is int for value in numbers.values()):
        return f"chain_reset body needs integers lost_first, lost_last and known_seq; has {numbers!r}"
    first, last, known = (int(value) for value in numbers.values())  # type: ignore[arg-type]
    if last != seq - 1 or not 1 <= first <= seq or not 0 <= known < seq:
        return (
            f"chain_reset {seq} declares lost {first}..{last} after known {known}: want lost_last = seq - 1, "
            "1 <= lost_first <= seq and 0 <= known_seq < seq"
        )
    if known == 0 and record["prev"] != GENESIS_PREV:
        return "chain_reset with known_seq 0 must carry prev of 64 zeros"
    return None


_RECORD_CHECKS: Final[tuple[tuple[Reason, Callable[[Mapping[str, object], str], str | None]], ...]] = (
    (Reason.RECORD_KEYS, _keys_problem),
    (Reason.VERSION, _version_problem),
    (Reason.STATION_MISMATCH, _station_problem),
    (Reason.SEQ_INVALID, _seq_problem),
    (Reason.TS_FORMAT, _ts_problem),
    (Reason.TYPE_INVALID, _type_problem),
    (Reason.BODY_NOT_OBJECT, _body_problem),
    (Reason.FLOAT_IN_BODY, _float_problem),
    (Reason.PREV_FORMAT, _prev_problem),
    (Reason.RESET_INVALID, _reset_problem),
)
"""The record's own checks, in order; the first that finds a problem names the reason. Order matters only in
that each check may rely on the ones above it (all keys present before any field is read)."""
_CHECKS_BUT_FLOATS: Final = tuple(check for check in _RECORD_CHECKS if check[0] is not Reason.FLOAT_IN_BODY)
"""The same, for a record whose message has shown that it holds no float."""


def decode_signature(sig: object) -> bytes | None:
    """The 64 signature bytes of standard padded base64 text, or None if `sig` is not exactly that.

    The pattern admits only 88 characters of the standard alphabet ending in "==", which always decode to 64
    bytes; re-encoding then refuses the spellings whose unused low bits are not zero, so that each signature
    has one text.
    """
    if not isinstance(sig, str) or not _SIG.fullmatch(sig):
        return None
    raw = binascii.a2b_base64(sig)
    return raw if binascii.b2a_base64(raw, newline=False) == sig.encode("ascii") else None


class _Candidate(NamedTuple):
    """A record that passed every check of its own but the signature: what it becomes if that verifies."""

    record: SignedRecord
    signature: bytes


def _examine(
    record: Mapping[str, object], sig: object, station: str, kid: str, shown: bytes | None = None
) -> _Candidate | Rejection:
    """Every check of one record but the signature itself: fields, canonical form, the form of `sig`.

    `shown`: the record's canonical bytes, when its message has shown them and that it holds no float
    (`_canonical_parts`); then neither is looked for again.
    """
    seq = record.get("seq")
    named_seq = seq if _is_seq(seq) else None
    for reason, problem_of in _RECORD_CHECKS if shown is None else _CHECKS_BUT_FLOATS:
        problem = problem_of(record, station)
        if problem is not None:
            return Rejection(reason, named_seq, problem)
    assert named_seq is not None, "the seq check above let a bad seq through"
    if shown is not None:
        canonical = shown
    else:
        try:
            canonical = canonical_bytes(record)
        except CanonicalizationError as error:
            return Rejection(Reason.NOT_CANONICAL, named_seq, f"record has no RFC 8785 form: {error}")
    signature = decode_signature(sig)
    if signature is None:
        return Rejection(Reason.SIG_FORMAT, named_seq, f"sig is {sig!r}, want 64 bytes in standard base64 with padding")
    signed = SignedRecord(
        seq=named_seq,
        type=str(record["type"]),
        prev=str(record["prev"]),
        digest=chain_digest(kid, canonical),
        canonical=canonical,
        sig=str(sig),
        kid=kid,
    )
    return _Candidate(signed, signature)


def _settle(candidate: _Candidate, verified: bool) -> SignedRecord | Rejection:
    if verified:
        return candidate.record
    return Rejection(
        Reason.BAD_SIGNATURE,
        candidate.record.seq,
        f"signature does not verify with key {candidate.record.kid} over the canonical bytes",
    )


def verify_record(
    record: Mapping[str, object], sig: object, station: str, kid: str, key: StationPublicKey
) -> SignedRecord | Rejection:
    """Every check one record can pass on its own: fields, canonical form, signature by `key`."""
    examined = _examine(record, sig, station, kid)
    if isinstance(examined, Rejection):
        return examined
    return _settle(examined, verifies(key, examined.signature, examined.record.canonical))


def _items(message: object) -> tuple[str, list[tuple[dict[str, object], object]]] | str:
    """(kid, [(record, sig), ...]) of a records message, or what is wrong with its shape."""
    if not isinstance(message, dict) or message.keys() != {"kid", "records"}:
        return 'want an object with exactly the keys "kid" and "records"'
    kid, items = message["kid"], message["records"]
    if not isinstance(kid, str):
        return f"kid is {kid!r}, want a string"
    if not isinstance(items, list) or not items:
        return "records must be a non-empty list"
    pairs: list[tuple[dict[str, object], object]] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or item.keys() != {"record", "sig"}:
            return f'records[{index}] must be an object with exactly the keys "record" and "sig"'
        if not isinstance(item["record"], dict):
            return f"records[{index}].record must be an object"
        pairs.append((item["record"], item["sig"]))
    return kid, pairs


class _NotShown(ValueError):
    """A number the quick way does not take (a float, NaN, Infinity): the message goes the full way."""


def _refuse_number(text: str) -> object:
    raise _NotShown(text)


_PLAIN_JSON: Final = json.JSONDecoder(parse_float=_refuse_number, parse_constant=_refuse_number)
"""The C parser as is (a repeated key keeps its last value), refusing any number that is not an integer."""
_NUMBER_SHAPES: Final = bytes(
    ord("9") if byte in b"0123456789" else ord(":") if byte in b":,[" else ord("-") if byte == ord("-") else 32
    for byte in range(256)
)
"""Digits to 9, the bytes a value can follow to a colon, a minus kept, all else a space: an integer of 16 digits
or more (beyond ±(2**53 - 1) or close to it) then shows as one of `_LONG_INTEGERS`. A string can show one
too (`"a:1234567890123456"`); that only sends its message the full way."""
_LONG_INTEGERS: Final = (b":" + b"9" * 16, b":-" + b"9" * 16)
QUICK_DEPTH: Final = 32
"""The deepest nesting the quick way takes; a message of the agent's is 6 or 7 deep. The C parser and encoder
recurse, and where they run out of stack depends on how deep their caller already is, which differs between the
two ways: near that depth one way could parse a message the other cannot. Far below it, neither runs out."""
_BRACKET_SHAPES: Final = bytes(
    ord("(") if byte in b"[{" else ord(")") if byte in b"]}" else byte for byte in range(256)
)
_NOT_BRACKETS: Final = bytes(byte for byte in range(256) if byte not in b"[]{}")


def _brackets(text: bytes) -> bytes:
    """The text's brackets alone, "(" for an opening one and ")" for a closing one."""
    return text.translate(_BRACKET_SHAPES, _NOT_BRACKETS)


def _peel(brackets: bytes, depth: int) -> bytes:
    """What is left of `_brackets` once the innermost pairs are taken away `depth` times (one level of a
    balanced nesting each), or sooner, when no pair is left to take: empty if they nest at most `depth` deep."""
    for _ in range(depth):
        inner_gone = brackets.replace(b"()", b"")
        if len(inner_gone) == len(brackets):
            break
        brackets = inner_gone
    return brackets


def _nested_at_most(payload: bytes, depth: int) -> bool:
    """Whether the payload's arrays and objects nest at most `depth` deep, brackets in strings counted too (they
    can only make it say no)."""
    return not _peel(_brackets(payload), depth)


def _canonical_parts(payload: bytes) -> tuple[str, list[tuple[dict[str, object], object]], list[bytes]] | None:
    """(kid, [(record, sig), ...], [canonical bytes, ...]) of a message written in canonical form; else None.

    The payload is parsed plainly and written again: the kid, and each record by the C encoder (its RFC 8785
    text for the values the payload is now known to hold: no float, integers of at most 15 digits, no
    character beyond U+FFFF), in the agent's framing. Equal bytes show that the plain parse is the strict
    one (a repeated key would have made the payload longer than its rewriting) and that each record's text
    is its canonical form. Any doubt (not UTF-8, another spelling, a repeated key, a float, a long integer, a
    shape `_items` refuses, nested beyond QUICK_DEPTH) returns None, and the message goes the full way, which says
    what is wrong.
    """
    if payload.isascii():
        text = payload.decode("ascii")
    else:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if max(text) > "\uffff":
            return None
    shapes = payload.translate(_NUMBER_SHAPES)
    if any(long in shapes for long in _LONG_INTEGERS) or not _nested_at_most(payload, QUICK_DEPTH):
        return None
    try:
        message = _PLAIN_JSON.decode(text)
        shape = _items(message)
        if isinstance(shape, str):
            return None
        kid, pairs = shape
        records = [sorted_text(record) for record, _ in pairs]
        sigs = [sorted_text(sig) for _, sig in pairs]
        rewritten = "".join(
            (
                '{"kid":',
                sorted_text(kid),
                ',"records":[',
                ",".join([f'{{"record":{record},"sig":{sig}}}' for record, sig in zip(records, sigs, strict=True)]),
                "]}",
            )
        ).encode("utf-8")
    except (ValueError, RecursionError):
        return None
    if rewritten != payload:
        return None
    return kid, pairs, [record.encode("utf-8") for record in records]


@dataclass(frozen=True, slots=True)
class ExaminedMessage:
    """A records message checked in everything but its records' signatures, which decide the rest.

    Apart from `Verdict` so that a receiver can have the signatures checked on other threads while it takes up
    the next message: `checks()` are the signature checks still to make, `settle()` the verdict once they are
    made. A message refused as a whole has no checks left and settles to that refusal.
    """

    key: StationPublicKey | None
    outcomes: tuple[_Candidate | Rejection, ...]

    def checks(self) -> list[SignatureCheck]:
        return [
            (outcome.signature, outcome.record.canonical) for outcome in self.outcomes if type(outcome) is _Candidate
        ]

    def settle(self, verified: Sequence[bool]) -> Verdict:
        """The verdict, given whether each of `checks()` verified, in that order."""
        results = iter(verified)
        outcomes = [
            outcome if isinstance(outcome, Rejection) else _settle(outcome, next(results)) for outcome in self.outcomes
        ]
        return Verdict(
            accepted=tuple(outcome for outcome in outcomes if isinstance(outcome, SignedRecord)),
            rejections=tuple(outcome for outcome in outcomes if isinstance(outcome, Rejection)),
        )

    def announces_key(self) -> bool:
        """Whether a record here may hand trust to a new key (a key_rotation event): the next message may be
        signed by it, so its verdict is wanted before the next message is examined."""
        return any(
            type(outcome) is _Candidate
            and outcome.record.type == "event"
            and b'"key_rotation"' in outcome.record.canonical
            for outcome in self.outcomes
        )


def _refused(reason: Reason, detail: str) -> ExaminedMessage:
    return ExaminedMessage(None, (Rejection(reason, None, detail),))


def examine_message(payload: bytes, station: str, keys: Mapping[str, StationPublicKey]) -> ExaminedMessage:
    """Check one `{prefix}/{station}/records` payload against `keys` (kid -> key of that station), all but
    the signatures (`ExaminedMessage`)."""
    canonicals: list[bytes] | list[None]
    shown = _canonical_parts(payload)
    if shown is not None:
        kid, pairs, canonicals = shown
    else:
        try:
            message = parse_json(payload)
        except ValueError as error:
            return _refused(Reason.NOT_JSON, f"payload is not strict UTF-8 JSON: {error}")
        shape = _items(message)
        if isinstance(shape, str):
            return _refused(Reason.MESSAGE_SHAPE, shape)
        kid, pairs = shape
        canonicals = [None] * len(pairs)
    key = keys.get(kid)
    if key is None:
        return _refused(Reason.UNKNOWN_KID, f"kid {kid!r} is not a key of station {station!r}; known: {sorted(keys)}")
    seqs = [record.get("seq") for record, _ in pairs]
    numbers = [seq for seq in seqs if _is_seq(seq)]
    if len(numbers) != len(seqs):
        return _refused(Reason.SEQ_INVALID, f"seqs are {seqs!r}, want positive integers")
    if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        return _refused(Reason.SEQ_NOT_CONTIGUOUS, f"seqs are {seqs!r}, want ascending by one")
    return ExaminedMessage(
        key,
        tuple(
            _examine(record, sig, station, kid, canonical)
            for (record, sig), canonical in zip(pairs, canonicals, strict=True)
        ),
    )


def verify_message(
    payload: bytes, station: str, keys: Mapping[str, StationPublicKey], verifier: Verifier = verify_each
) -> Verdict:
    """Check one `{prefix}/{station}/records` payload against `keys` (kid -> key of that station).

    The records' signatures are checked together, by `verifier`, once every other check is done: a
    ThreadedVerifier spreads them over cores, and the verdict is the same either way.
    """
    examined = examine_message(payload, station, keys)
    if examined.key is None:
        return examined.settle(())
    return examined.settle(verifier(examined.key, examined.checks()))


def verify_stored(
    canonical: bytes, sig: str, kid: str, station: str, keys: Mapping[str, StationPublicKey]
) -> SignedRecord | Rejection:
    """Check a record as kept by the store, trusting nothing the store says about it but its bytes."""
    key = keys.get(kid)
    if key is None:
        return Rejection(Reason.UNKNOWN_KID, None, f"kid {kid!r} is not a key of station {station!r}")
    try:
        record = parse_json(canonical)
    except ValueError as error:
        return Rejection(Reason.NOT_JSON, None, f"stored bytes are not strict UTF-8 JSON: {error}")
    if not isinstance(record, dict):
        return Rejection(Reason.MESSAGE_SHAPE, None, "stored bytes are not a JSON object")
    outcome = verify_record(record, sig, station, kid, key)
    if isinstance(outcome, SignedRecord) and outcome.canonical != canonical:
        return Rejection(Reason.NOT_CANONICAL, outcome.seq, "stored bytes are not the record's RFC 8785 form")
    return outcome


def verify_status(payload: bytes) -> dict[str, object] | Rejection:
    """A `{prefix}/{station}/status` payload: an object whose "state" is "online" or "offline"."""
    try:
        status = parse_json(payload)
    except ValueError as error:
        return Rejection(Reason.STATUS_INVALID, None, f"status is not strict UTF-8 JSON: {error}")
    if not isinstance(status, dict) or status.get("state") not in STATUS_STATES:
        return Rejection(
            Reason.STATUS_INVALID, None, f'status is {payload[:200]!r}, want {{"state": "online" | "offline", ...}}'
        )
    return status
