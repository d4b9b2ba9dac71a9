"""The fast canonical encoder gives exactly RFC 8785's bytes for every value a record may hold."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.contract.canonical import INT_LIMIT, NotCanonicalisable, canonical_bytes, record_bytes
from agent.contract.records import EventKind

KEYS = st.text(st.characters(exclude_categories=("Cs",)), min_size=0, max_size=8)
"""Keys of any character but the surrogates, as `st.text()` draws them by default, named by category: the default's
`codec="utf-8"` has Hypothesis encode all 1.1 million code points first (1.8 s in a checkout without its cache)."""
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


TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20)


ENVELOPES = st.fixed_dictionaries(
    {
        "version": st.integers(0, 9),
        "station": TEXT,
        "seq": st.integers(-INT_LIMIT, INT_LIMIT),
        "ts": TEXT,
        "record_type": TEXT,
        "prev": TEXT,
    }
)


@settings(max_examples=500)
@given(envelope=ENVELOPES, body=st.dictionaries(KEYS, VALUES, max_size=6))
def test_a_record_written_around_its_body_has_the_bytes_of_the_whole(
    envelope: dict[str, Any], body: dict[str, object]
) -> None:
    """The envelope written around the body's bytes (any strings, any seq in range, bodies with keys in any
    plane) gives the bytes of the whole record object, by this module's encoder and by the rfc8785 package."""
    e = envelope
    whole = {"v": e["version"], "station": e["station"], "seq": e["seq"], "ts": e["ts"], "type": e["record_type"]}
    whole |= {"body": body, "prev": e["prev"]}
    written = record_bytes(body, **envelope)  # type: ignore[arg-type]
    assert written == canonical_bytes(whole) == rfc8785.dumps(whole)  # type: ignore[arg-type]


@pytest.mark.parametrize(("seq", "body"), [(2**53, {}), (1, {"v": 0.5}), (1, {"v": -(2**53)})])
def test_a_record_the_contract_cannot_carry_is_refused_whole(seq: int, body: dict[str, object]) -> None:
    """A seq beyond ±(2^53 - 1), or a body with a float or an oversized integer, is refused, never written."""
    with pytest.raises(NotCanonicalisable):
        envelope = {"station": "S1", "ts": "2026-01-01T00:00:00.000Z", "record_type": "event", "prev": "0" * 64}
        record_bytes(body, version=1, seq=seq, **envelope)  # type: ignore[arg-type]
