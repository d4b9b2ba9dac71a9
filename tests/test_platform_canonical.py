"""The receiver's canonicaliser: RFC 8785's bytes, by the C encoder where that is proved to agree, else by rfc8785."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.platform import canonical
from simulators.platform.canonical import SAFE_INTEGER, CanonicalizationError, canonical_bytes

SPECIAL = '"\\/\x00\x01\x08\t\n\x0b\x0c\r\x1f\x7f\x80\u2028\u2029\ud7ff\ue000\ufeff\uffff'
"""Characters where a JSON encoder may go wrong: the escaped ones, the edges of the control range, the
surrogate range's neighbours and the top of the Basic Multilingual Plane."""
BEYOND_BMP = "\U00010000\U0001f600\U0010ffff"
SORT_EDGES = "a\ud7ff\ue000\uff01\uffff" + BEYOND_BMP
"""Characters on both sides of where code point order and UTF-16 order part: above U+FFFF a character sorts
after U+E000..U+FFFF by code point but before them by UTF-16 code unit."""

bmp_text = st.text(st.sampled_from(SPECIAL) | st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",)))
any_text = st.text(st.sampled_from(SPECIAL + BEYOND_BMP) | st.characters(exclude_categories=("Cs",)))
safe_integers = st.integers(-SAFE_INTEGER, SAFE_INTEGER)


def json_values(keys: st.SearchStrategy[str], scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=5),
        max_leaves=30,
    )


contract_values = json_values(bmp_text, st.none() | st.booleans() | safe_integers | any_text)
"""What records hold (no floats, integers within ±(2**53 - 1), any string), with object keys in the BMP: the
fast path's whole domain."""
any_values = json_values(any_text, st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text)
"""Everything JSON can carry, floats, integers of any size and keys beyond the BMP included."""


@settings(max_examples=500)
@given(contract_values)
def test_contract_values_take_the_fast_path_and_get_rfc8785_bytes(value: Any) -> None:
    """On the contract's domain the C encoder writes exactly what rfc8785 writes, without falling back."""
    expected = rfc8785.dumps(value)
    with mock.patch.object(canonical.rfc8785, "dumps", side_effect=AssertionError("fell back to rfc8785")):
        assert canonical_bytes(value) == expected


@settings(max_examples=500)
@given(any_values)
def test_any_json_value_gets_rfc8785_bytes_or_its_error(value: Any) -> None:
    """Outside the contract's domain too, the bytes or the refusal are rfc8785's own."""
    try:
        expected = rfc8785.dumps(value)
    except CanonicalizationError as error:
        with pytest.raises(CanonicalizationError) as refused:
            canonical_bytes(value)
        assert str(refused.value) == str(error)
    else:
        assert canonical_bytes(value) == expected


@given(st.dictionaries(st.text(st.sampled_from(SORT_EDGES), max_size=3), safe_integers, min_size=2, max_size=8))
def test_keys_beyond_the_bmp_sort_by_utf16_code_units(value: dict[str, int]) -> None:
    """Objects with keys beyond U+FFFF, where code point and UTF-16 order differ, are sorted as RFC 8785 says."""
    assert canonical_bytes(value) == rfc8785.dumps(value)


def test_rfc8785_sorting_example() -> None:
    """RFC 8785 section 3.2.3: the emoji (a surrogate pair in UTF-16) sorts before U+FB33, not after."""
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    assert (
        canonical_bytes(value)
        == (
            '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",'
            '"\u20ac":"Euro Sign","\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
        ).encode()
    )


def test_rfc8785_string_example() -> None:
    """RFC 8785 section 3.2.4's string: lowercase \\u000f, \\n as a short escape, '/' and '€' as they are."""
    value = {"string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/"}
    assert canonical_bytes(value) == '{"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'.encode()


@pytest.mark.parametrize("number", [SAFE_INTEGER + 1, -SAFE_INTEGER - 1, 2**64])
def test_integers_beyond_the_safe_range_are_refused_as_rfc8785_refuses_them(number: int) -> None:
    """An integer an IEEE 754 double cannot hold exactly has no canonical form; the message names it."""
    with pytest.raises(CanonicalizationError, match=f"^{number} exceeds safe integer domain for JSON floats$"):
        canonical_bytes({"body": {"volume_ml": [1, number]}})


@pytest.mark.parametrize("number", [SAFE_INTEGER, -SAFE_INTEGER])
def test_integers_at_the_edge_of_the_safe_range_are_written(number: int) -> None:
    assert canonical_bytes({"n": number}) == f'{{"n":{number}}}'.encode()


@pytest.mark.parametrize(
    "value",
    [{"\ud800": 1}, {"a": "\udc00"}, {"a": ["ok", "\ud83d"]}, {"\U0001f600": 1, "\udfff": 2}],
    ids=["key", "value", "nested value", "key beside one beyond the BMP"],
)
def test_lone_surrogates_have_no_canonical_form(value: dict[str, Any]) -> None:
    """A string with half a surrogate pair has no UTF-8 form, in a key or a value: refused, never crashed on."""
    with pytest.raises(CanonicalizationError, match="lone surrogate, which has no UTF-8 form"):
        canonical_bytes(value)


def test_nesting_beyond_the_recursion_limit_is_refused() -> None:
    """A value nested deeper than the encoder can go is refused with CanonicalizationError, not RecursionError."""
    value: list[Any] = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(CanonicalizationError, match="nested too deeply"):
        canonical_bytes(value)


@pytest.mark.parametrize("value", [(1, 2), {1: "a"}, {"a": b"x"}], ids=["tuple", "int key", "bytes"])
def test_what_json_does_not_have_is_left_to_rfc8785(value: Any) -> None:
    """Types outside JSON's take rfc8785's path and get its answer, whatever that is."""
    try:
        expected: bytes | str = rfc8785.dumps(value)
    except CanonicalizationError as error:
        expected = str(error)
    try:
        got: bytes | str = canonical_bytes(value)
    except CanonicalizationError as error:
        got = str(error)
    assert got == expected
