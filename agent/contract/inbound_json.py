"""JSON from the broker (acks, commands), parsed only after its size and shape are known to be small.

Theory of operation: anyone who can publish on a station's topics can hand the agent any bytes, and a retained
message is handed again at every connect. Python's `json.loads` trusts its input in three ways that cost a
thread or the box: it recurses once per `[` or `{` (100,000 of them raise RecursionError), it turns any run of
digits into an int (5,000 digits raise ValueError past `sys.int_max_str_digits`, and fewer still cost quadratic
time), and it takes as much memory as the payload asks. So the payload's length is checked first, then one
linear pass over the bytes counts the nesting depth (skipping strings), and only then is it parsed, with hooks
that refuse long integers, long or non-finite floats and NaN/Infinity. Every refusal is an `InboundJsonError`
that says which limit was met, never the payload itself.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

MAX_NUMBER_CHARS: Final = 20
"""Longest integer or float text taken: 2^64 has 20 digits; no field of the contract needs more."""
_QUOTE: Final = ord('"')
_BACKSLASH: Final = ord("\\")
_OPENERS: Final = frozenset(b"[{")
_CLOSERS: Final = frozenset(b"]}")


class InboundJsonError(ValueError):
    """A payload refused before or while parsing; the message names the limit it broke."""


@dataclass(frozen=True, slots=True)
class JsonLimits:
    max_bytes: int
    max_depth: int = 8


def nesting_depth(payload: bytes) -> int:
    """The deepest nesting of arrays and objects, counted in one pass without parsing (strings skipped).

    Only an upper bound of what a parser would see in malformed input, which is all a limit needs."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in payload:
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPENERS:
            depth += 1
            deepest = max(deepest, depth)
        elif byte in _CLOSERS:
            depth -= 1
    return deepest


def load_json(
    payload: bytes,
    limits: JsonLimits,
    *,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> object:
    """Parse `payload` as strict UTF-8 JSON within `limits`; InboundJsonError for anything else."""
    if len(payload) > limits.max_bytes:
        raise InboundJsonError(f"longer than the {limits.max_bytes} bytes allowed")
    depth = nesting_depth(payload)
    if depth > limits.max_depth:
        raise InboundJsonError(f"nested {depth} deep, more than the {limits.max_depth} allowed")
    try:
        text = payload.decode("utf-8")
        return json.loads(
            text,
            parse_int=_bounded_int,
            parse_float=_bounded_float,
            parse_constant=_no_constant,
            object_pairs_hook=object_pairs_hook,
        )
    except InboundJsonError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InboundJsonError(f"not strict UTF-8 JSON: {_short(exc)}") from exc


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_CHARS:
        raise InboundJsonError(f"an integer of {len(text)} characters, more than the {MAX_NUMBER_CHARS} allowed")
    return int(text)


def _bounded_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS + 8:
        raise InboundJsonError(f"a number of {len(text)} characters, more than the {MAX_NUMBER_CHARS + 8} allowed")
    value = float(text)
    if not math.isfinite(value):
        raise InboundJsonError(f"a number out of range: {text}")
    return value


def _no_constant(name: str) -> object:
    raise InboundJsonError(f"{name} is not JSON")


def _short(exc: BaseException) -> str:
    text = ascii(str(exc))[1:-1]
    return text if len(text) <= 80 else text[:77] + "..."
