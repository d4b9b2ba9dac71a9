"""The contract as types: every body and every alarm's evidence comes back from its sealed bytes as it was made."""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from enum import Enum
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.contract.canonical import INT_LIMIT
from agent.contract.decode import ContractDecodeError, alarm_evidence, decode_body, decode_record
from agent.contract.evidence import EVIDENCE, Evidence, OutboxRecovered, evidence_class
from agent.contract.records import BODY_TYPES, AlarmBody, AlarmKind, AlarmState, Body, RecordType
from agent.ledger.chain import ChainHead, seal
from agent.ledger.keys import DeviceKey

KEY = DeviceKey.from_private(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)


def strategy(hint: Any) -> st.SearchStrategy[Any]:
    """Values of a body field's declared type, within what the contract carries (no floats, |int| < 2^53)."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Annotated:
        return strategy(args[0])
    if origin is Union or origin is UnionType:
        return st.one_of(*(strategy(option) for option in args))
    if origin is Literal:
        return st.sampled_from(args)
    if origin is tuple:
        return st.lists(strategy(args[0]), max_size=3).map(tuple)
    if origin is dict:
        return st.dictionaries(TEXT, strategy(args[1]), max_size=3)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return st.sampled_from(list(hint))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        fields = {field.name: strategy(hints[field.name]) for field in dataclasses.fields(hint) if field.init}
        return st.builds(hint, **fields)
    if hint is int:
        return st.integers(-INT_LIMIT, INT_LIMIT)
    return {str: TEXT, bool: st.booleans(), type(None): st.none()}[hint]


def sealed_bytes(body: Body) -> bytes:
    records, _ = seal([body.intent(1_764_000_000_123)], ChainHead.genesis(), "S-1", KEY)
    return records[0].canonical


@pytest.mark.parametrize("cls", BODY_TYPES, ids=lambda cls: cls.__name__)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_body_comes_back_from_its_sealed_bytes(cls: type[Body], data: st.DataObject) -> None:
    """decode(canonical(body)) == body for every body class, with the record's seq, time and type."""
    body = data.draw(strategy(cls))
    decoded = decode_record(sealed_bytes(body))
    assert decoded.body == body
    assert type(decoded.body) is cls
    assert (decoded.seq, decoded.ts_ms, decoded.type, decoded.station) == (1, 1_764_000_000_123, cls.record_type, "S-1")


@pytest.mark.parametrize(("kind", "raised"), [(kind, raised) for kind in EVIDENCE for raised in (True, False)], ids=str)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_every_evidence_comes_back_from_its_alarm(kind: AlarmKind, raised: bool, data: st.DataObject) -> None:
    """An alarm's typed evidence, sealed as JSON keys and read back from the stored bytes, is the evidence made."""
    cls = evidence_class(kind, raised)
    evidence: Evidence = data.draw(strategy(cls))
    state = AlarmState.RAISED if raised else AlarmState.CLEARED
    alarm = AlarmBody(kind=kind, state=state, subject="N1", evidence=evidence.as_json())
    stored = decode_record(sealed_bytes(alarm)).body
    assert isinstance(stored, AlarmBody)
    assert alarm_evidence(stored) == evidence


def test_dropped_records_travel_as_one_key_per_type() -> None:
    """A cleared outbox alarm names what was not made as dropped_<type> keys, as the contract's pattern says."""
    recovered = OutboxRecovered(duration_s=120, dropped=3, dropped_by_type={"transaction": 1, "heartbeat": 2})
    assert json.dumps(recovered.as_json()) == (
        '{"duration_s": 120, "dropped": 3, "dropped_heartbeat": 2, "dropped_transaction": 1}'
    )


def test_an_alarm_of_a_kind_not_raised_here_has_no_typed_evidence() -> None:
    """v1 allows new alarm kinds: one this agent does not raise keeps its evidence as JSON, typed as None."""
    alarm = AlarmBody(kind="tank_water_high", state=AlarmState.RAISED, subject="T1", evidence={"water_ml": 41_000})
    assert alarm_evidence(alarm) is None


@pytest.mark.parametrize(
    ("record_type", "body", "named"),
    [
        (RecordType.HEARTBEAT, {"interval_s": "60"}, "heartbeat.interval_s"),
        (RecordType.EVENT, {"kind": "no_such_event"}, "no_such_event"),
        (RecordType.HEARTBEAT, [1], "not an object"),
    ],
)
def test_a_body_that_does_not_fit_its_type_is_refused_naming_the_field(
    record_type: RecordType, body: object, named: str
) -> None:
    """Bytes that are not what the agent writes are refused with the field or kind named, never handed on."""
    with pytest.raises(ContractDecodeError, match=re.escape(named)):
        decode_body(record_type, body)


def test_a_boolean_is_not_an_integer_nor_a_float_a_count() -> None:
    """JSON true where an integer belongs, or 60.0, is refused: the decoder checks exact types, not truthiness."""
    good = {"interval_s": 60, "uptime_s": 1, "uplink": "online", "unacked": 0, "devices_online": 1}
    for bad in (True, 60.0):
        with pytest.raises(ContractDecodeError, match=r"heartbeat\.devices_total"):
            decode_body(RecordType.HEARTBEAT, {**good, "devices_total": bad})
    with pytest.raises(ContractDecodeError, match=r"heartbeat\.uplink"):
        decode_body(RecordType.HEARTBEAT, {**good, "devices_total": 1, "uplink": "sideways"})
