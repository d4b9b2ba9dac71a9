"""Canonical bytes of a record: RFC 8785 (JSON Canonicalization Scheme), fast for the values records hold.

Records hold objects with string keys, arrays, strings, integers within ±(2^53 - 1), booleans and null;
never floats (the contract keeps metrological quantities in integers). For exactly that domain, RFC 8785 is
what the standard library's JSON encoder writes with sorted keys, no spaces and UTF-8 as is — provided no
object key holds a character beyond the Basic Multilingual Plane, because JCS sorts keys by UTF-16 code
units and Python by code points, and the two orders agree only on the BMP. The `rfc8785` package is the
reference: a key beyond the BMP goes to it, and a property test holds the two to the same bytes. The fast
path costs about a quarter of the package's, which is most of the price of a record on a small gateway.

A record's envelope (`v`, `station`, `seq`, `ts`, `type`, `prev` around its `body`) has the same keys every
time, so `record_bytes` writes it around the body's canonical bytes instead of walking and encoding it again for
every record: the keys in RFC 8785's order, the strings as the encoder writes them. A property test holds it to
`canonical_bytes` of the whole record, and that to the package.
"""

from __future__ import annotations

import json

from agent.contract.records import JsonValue

INT_LIMIT = 2**53 - 1
_encode = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode
_string = json.encoder.encode_basestring
"""A JSON string as `_encode` writes one (its escapes, UTF-8 as is): RFC 8785's form of a string."""


class NotCanonicalisable(ValueError):
    """A value outside the contract's domain: a float, an integer beyond ±(2^53 - 1), or not JSON at all."""


def canonical_bytes(value: JsonValue) -> bytes:
    """RFC 8785 canonical bytes (UTF-8) of a record; NotCanonicalisable for values the contract forbids."""
    if _bmp_keys_only(value):
        return _encode(value).encode()
    import rfc8785  # noqa: PLC0415 - the reference is needed only for keys beyond the BMP, which records never have

    data: bytes = rfc8785.dumps(value)
    return data


def record_bytes(
    body: JsonValue, *, version: int, station: str, seq: int, ts: str, record_type: str, prev: str
) -> bytes:
    """The canonical bytes of the record `{"v", "station", "seq", "ts", "type", "body", "prev"}`: exactly
    `canonical_bytes` of that object, written around the body's canonical bytes (see the module docstring)."""
    for number in (version, seq):
        if type(number) is not int or not -INT_LIMIT <= number <= INT_LIMIT:
            raise NotCanonicalisable(f"{number!r} is not an integer within ±(2^53 - 1)")
    envelope = f',"prev":{_string(prev)},"seq":{seq},"station":{_string(station)},"ts":{_string(ts)},'
    tail = f'"type":{_string(record_type)},"v":{version}}}'
    return b'{"body":' + canonical_bytes(body) + (envelope + tail).encode()


def _bmp_keys_only(value: object) -> bool:
    """Walk the value once: raise for what the contract forbids, say whether every key is in the BMP.

    Leaves are checked inline by exact type, because this runs for every field of every record; an object's
    keys are looked at together, joined into one string, rather than one by one."""
    kind = type(value)
    if kind is dict:
        fast = _keys_in_bmp(value)  # type: ignore[arg-type]
        for item in value.values():  # type: ignore[attr-defined]
            leaf = type(item)
            if leaf is str or leaf is bool or item is None:
                continue
            if leaf is int:
                if not -INT_LIMIT <= item <= INT_LIMIT:
                    raise NotCanonicalisable(f"integer {item} is beyond ±(2^53 - 1), which JSON cannot carry exactly")
                continue
            if not _bmp_keys_only(item):
                fast = False
        return fast
    if kind is list or kind is tuple:
        fast = True
        for item in value:  # type: ignore[attr-defined]
            if not _bmp_keys_only(item):
                fast = False
        return fast
    if isinstance(value, str) or value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        if -INT_LIMIT <= value <= INT_LIMIT:
            return True
        raise NotCanonicalisable(f"integer {value} is beyond ±(2^53 - 1), which JSON cannot carry exactly")
    if isinstance(value, dict):
        return _bmp_keys_only(dict(value))
    if isinstance(value, list | tuple):
        return _bmp_keys_only(list(value))
    if isinstance(value, float):
        raise NotCanonicalisable(f"float {value!r}: records carry integers in small units (mL, fen)")
    raise NotCanonicalisable(f"{type(value).__name__} {value!r} is not a JSON value")


def _keys_in_bmp(mapping: dict[object, object]) -> bool:
    """Whether every key of an object is in the BMP; NotCanonicalisable for a key that is not a string."""
    try:
        keys = "".join(mapping)  # type: ignore[arg-type]
    except TypeError:
        key = next(key for key in mapping if not isinstance(key, str))
        raise NotCanonicalisable(f"object key {key!r} is not a string") from None
    return keys.isascii() or max(keys) <= "\uffff"
