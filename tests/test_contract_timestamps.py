"""The contract's timestamps: `parse_ts` reads what `format_ts` writes by its digits, and any other text exactly as
`strptime` reads it (the same value, or the same error)."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.contract.records import format_ts, parse_ts

LAST_MS_OF_9999 = 253_402_300_799_999
WRITTEN = "2026-11-27T08:15:02.113Z"
ODD_CHARACTERS = "0123456789-:.TZtz +\u0661\uff10"
"""Digits, the format's separators, lower-case letters, a space, a sign, an Arabic-Indic and a full-width digit:
what `strptime` may still accept (it ignores case and its `\\d` takes any Unicode digit) or must refuse."""


def strptime_ms(text: str) -> int:
    """The reference: how the contract read timestamps before the digits were read directly."""
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1000 + moment.microsecond // 1000


def outcome(parse: Callable[[str], int], text: str) -> tuple[str, object]:
    try:
        return "value", parse(text)
    except ValueError as exc:
        return "ValueError", str(exc)


@given(st.integers(min_value=0, max_value=LAST_MS_OF_9999))
def test_what_format_ts_writes_reads_back_as_the_same_millisecond(ts_ms: int) -> None:
    """Every millisecond from 1970 to the end of year 9999 survives format_ts then parse_ts, and agrees with the
    calendar module's count of seconds."""
    text = format_ts(ts_ms)
    seconds = calendar.timegm(datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").timetuple())
    assert parse_ts(text) == ts_ms == seconds * 1000 + int(text[20:23])


@given(st.lists(st.tuples(st.integers(0, len(WRITTEN) - 1), st.sampled_from(ODD_CHARACTERS)), max_size=4))
def test_any_text_reads_as_strptime_reads_it(changes: list[tuple[int, str]]) -> None:
    """A timestamp with characters changed (an impossible date, lower case, a foreign digit, a missing field)
    gives strptime's value or strptime's error, word for word."""
    characters = list(WRITTEN)
    for position, character in changes:
        characters[position] = character
    text = "".join(characters)
    assert outcome(parse_ts, text) == outcome(strptime_ms, text)


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-29T00:00:00.000Z",
        "2024-02-30T00:00:00.000Z",
        "2026-11-27T24:00:00.000Z",
        "2026-11-27T23:59:60.000Z",
        "0000-01-01T00:00:00.000Z",
        "2026-11-27T08:15:02.1Z",
        "2026-11-27T08:15:02.113456Z",
        "2026-11-27 08:15:02.113Z",
        "1969-12-31T23:59:59.500Z",
        "",
    ],
)
def test_dates_that_do_not_exist_and_other_shapes_read_as_before(text: str) -> None:
    """Days and times that do not exist are refused with strptime's words; other shapes read as strptime reads
    them, before 1970 included."""
    assert outcome(parse_ts, text) == outcome(strptime_ms, text)
