"""The fast canonical encoder gives exactly RFC 8785's bytes for every value a record may hold."""

from __future__ import annotations

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.contract.canonical import INT_LIMIT, NotCanonicalisable, canonical_bytes
from agent.contract.records import EventKind

KEYS = st.text(min_size=0, max_size=8)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-INT_LIMIT, INT_LIMIT)
    | st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20)
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500)
@given(value=st.dictionaries(KEYS, VALUES, max_size=6))
def test_same_bytes_as_the_reference(value: dict[str, object]) -> None:
    """For any object of strings, integers in range, booleans, null, arrays and objects (keys in any plane,
    control characters and unicode in strings), the bytes equal the rfc8785 package's."""
    assert canonical_bytes(value) == rfc8785.dumps(value)  # type: ignore[arg-type]


def test_keys_beyond_the_bmp_sort_by_utf16_code_units() -> None:
    """A key with a character beyond U+FFFF sorts before one in U+E000..U+FFFF, as UTF-16 orders them."""
    value = {"\U0001f600": 1, "\ufb01": 2}
    assert canonical_bytes(value) == rfc8785.dumps(value)
    assert canonical_bytes(value).decode().index("\U0001f600") < canonical_bytes(value).decode().index("\ufb01")


def test_str_enum_members_are_written_as_their_value() -> None:
    """Body fields that are StrEnum members serialise as plain strings."""
    assert canonical_bytes({"kind": EventKind.AGENT_START}) == b'{"kind":"agent_start"}'


@pytest.mark.parametrize(
    ("value", "reason"),
    [({"v": 1.5}, "float"), ({"v": 2**53}, "beyond"), ({"v": [-(2**60)]}, "beyond"), ({"v": object()}, "not a JSON")],
)
def test_values_the_contract_forbids_are_refused(value: dict[str, object], reason: str) -> None:
    """Floats, integers JSON cannot carry exactly, and non-JSON objects are refused, never written."""
    with pytest.raises(NotCanonicalisable, match=reason):
        canonical_bytes(value)  # type: ignore[arg-type]
