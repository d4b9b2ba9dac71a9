"""RFC 8785 (JSON Canonicalization Scheme) bytes of a parsed record, without the cost of a pure-Python encoder.

The receiver computes the canonical bytes of every record it takes, and `rfc8785.dumps` spends about 50 µs on a
transaction record. The standard library's C encoder, sorted and compact, writes the same bytes in a fraction
of that for every value the contract allows, for these reasons (RFC 8785 section by section):

- 3.2.2.2 strings: both write `"` and `\\` escaped, the control characters U+0000..U+001F as `\\b \\t \\n \\f \\r`
  or else `\\u00xx` in lowercase hex, and every other character as itself, in UTF-8;
- 3.2.2.3 numbers: an integer within ±(2**53 - 1) is its plain decimal in both; there is no float in a record;
- 3.2.3 sorting: RFC 8785 orders keys by UTF-16 code units, Python by code points, and the two orders agree as
  long as no key holds a character above U+FFFF (one that UTF-16 writes as a surrogate pair);
- true, false, null, arrays and the absence of whitespace are the same in both.

So one walk over the value decides: inside that domain the C encoder writes the bytes; outside it (a float, an
integer beyond the safe range, a key beyond the Basic Multilingual Plane, a type JSON does not have) `rfc8785`
does, and raises the same errors it always has. A string holding a lone surrogate has no UTF-8 form and so no
canonical bytes either way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Final

import rfc8785
from rfc8785 import CanonicalizationError

__all__ = ["CanonicalizationError", "canonical_bytes", "sorted_text"]

SAFE_INTEGER: Final = 2**53 - 1
"""The largest integer RFC 8785 writes exactly (as IEEE 754 doubles hold it); its negation is the smallest."""
_LAST_BMP: Final = "\uffff"
_ENCODER: Final = json.JSONEncoder(
    ensure_ascii=False, check_circular=False, allow_nan=False, sort_keys=True, separators=(",", ":")
)
sorted_text: Final = _ENCODER.encode
"""The C encoder's text of a value, keys sorted, compact: the RFC 8785 text of every value in the domain above
(`canonical_bytes` checks the domain; a caller that has shown it some other way may call this directly)."""


def canonical_bytes(value: object) -> bytes:
    """The RFC 8785 bytes of `value`; raises CanonicalizationError if there are none.

    A value nested too deeply for the interpreter's recursion limit is refused the same way, rather than
    letting RecursionError escape to a caller that expects only a verdict.
    """
    try:
        if _in_fast_domain(value):
            return sorted_text(value).encode("utf-8")
        return bytes(rfc8785.dumps(value))  # type: ignore[arg-type]  # it refuses what JSON cannot hold
    except UnicodeEncodeError as error:
        bad = error.object[error.start : error.end]
        raise CanonicalizationError(f"a string holds {bad!r}, a lone surrogate, which has no UTF-8 form") from error
    except RecursionError as error:
        raise CanonicalizationError("the value is nested too deeply to serialise") from error


def _in_fast_domain(value: object) -> bool:
    """Whether the C encoder writes the RFC 8785 bytes of `value` (see the module docstring).

    Only the exact JSON types count (no subclasses, no tuples), so that the encoder and RFC 8785 cannot read
    one value two ways. Iterative, so that depth costs no recursion.
    """
    pending: list[Iterable[object]] = [(value,)]
    while pending:
        for child in pending.pop():
            if type(child) is str or type(child) is bool or child is None:
                continue
            if type(child) is int:
                if not -SAFE_INTEGER <= child <= SAFE_INTEGER:
                    return False
            elif type(child) is dict:
                if not _keys_sort_alike(child):
                    return False
                pending.append(child.values())
            elif type(child) is list:
                pending.append(child)
            else:
                return False
    return True


def _keys_sort_alike(mapping: dict[object, object]) -> bool:
    """Whether every key is a string without characters above U+FFFF, where code points sort as UTF-16 does."""
    try:
        keys = "".join(mapping)  # type: ignore[arg-type]
    except TypeError:
        return False
    return keys.isascii() or max(keys) <= _LAST_BMP
