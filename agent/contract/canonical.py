"""Canonical bytes of a record: RFC 8785 (JSON Canonicalization Scheme), fast for the values records hold.

Records hold objects with string keys, arrays, strings, integers within ±(2^53 - 1), booleans and null;
never floats (the contract keeps metrological quantities in integers). For exactly that domain, RFC 8785 is
what the standard library's JSON encoder writes with sorted keys, no spaces and UTF-8 as is — provided no
object key holds a character beyond the Basic Multilingual Plane, because JCS sorts keys by UTF-16 code
units and Python by code points, and the two orders agree only on the BMP. The `rfc8785` package is the
reference: a key beyond the BMP goes to it, and a property test holds the two to the same bytes. The fast
path costs about a quarter of the package's, which is most of the price of a record on a small gateway.
"""

from __future__ import annotations

import json

from agent.contract.records import JsonValue

INT_LIMIT = 2**53 - 1
_encode = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode


class NotCanonicalisable(ValueError):
    """A value outside the contract's domain: a float, an integer beyond ±(2^53 - 1), or not JSON at all."""


def canonical_bytes(value: JsonValue) -> bytes:
    """RFC 8785 canonical bytes (UTF-8) of a record; NotCanonicalisable for values the contract forbids."""
    if _bmp_keys_only(value):
        return _encode(value).encode()
    import rfc8785  # noqa: PLC0415 - the reference is needed only for keys beyond the BMP, which records never have

    data: bytes = rfc8785.dumps(value)
    return data


def _bmp_keys_only(value: object) -> bool:
    """Walk the value once: raise for what the contract forbids, say whether every key is in the BMP.

    Leaves are checked inline by exact type, because this runs for every field of every record."""
    kind = type(value)
    if kind is dict:
        fast = True
        for key, item in value.items():  # type: ignore[attr-defined]
            if type(key) is not str and not isinstance(key, str):
                raise NotCanonicalisable(f"object key {key!r} is not a string")
            if not key.isascii() and max(key) > "\uffff":
                fast = False
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
