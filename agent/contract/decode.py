"""The one way back from stored bytes to types: a record's canonical JSON becomes its typed body again.

The agent's memory across a restart is its own records (agent/history.py), and the station reads the records it
has just committed the same way, so this is the only place that turns contract JSON into bodies. It reads the
types the bodies declare (ints, strings, enums, literals, nested frozen dataclasses, tuples, scalar maps) and
checks every value against them: a stored record that does not fit its type is a bug or a damaged outbox, and
is said so, naming the field, rather than handed on as a dict for some later `body["x"]` to trip over.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from agent.contract.evidence import EVIDENCE, Evidence, evidence_class
from agent.contract.records import (
    BODY_TYPES,
    AlarmBody,
    AlarmKind,
    AlarmState,
    Body,
    JsonScalar,
    RecordType,
    parse_ts,
)

BodyT = TypeVar("BodyT", bound=Body)
T = TypeVar("T")


class ContractDecodeError(ValueError):
    """Stored bytes that are not a record of the contract as this agent writes it; the message names the field."""


@dataclass(frozen=True, slots=True)
class DecodedRecord:
    """A stored record: its place in the chain and its typed body."""

    station: str
    seq: int
    ts_ms: int
    type: RecordType
    body: Body
    prev: str


def decode_record(canonical: bytes) -> DecodedRecord:
    """A record from its canonical bytes; ContractDecodeError if they are not one."""
    try:
        record = json.loads(canonical)
    except ValueError as exc:
        raise ContractDecodeError(f"stored bytes are not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise ContractDecodeError("a stored record is not a JSON object")
    try:
        record_type = RecordType(record["type"])
        station, seq, prev = record["station"], record["seq"], record["prev"]
        ts_ms = parse_ts(record["ts"])
        body = decode_body(record_type, record["body"])
    except (KeyError, ValueError, TypeError) as exc:
        if isinstance(exc, ContractDecodeError):
            raise
        raise ContractDecodeError(f"stored record: {exc!r}") from None
    if not isinstance(station, str) or not isinstance(prev, str) or type(seq) is not int:
        raise ContractDecodeError(f"stored record: station {station!r}, seq {seq!r} or prev {prev!r} of another type")
    return DecodedRecord(station, seq, ts_ms, record_type, body, prev)


def decode_body(record_type: RecordType, body: object) -> Body:
    """The typed body of a record of this type from its JSON object (an event's class is chosen by its kind)."""
    if not isinstance(body, dict):
        raise ContractDecodeError(f"{record_type} body is {type(body).__name__}, not an object")
    if record_type is RecordType.EVENT:
        kind = body.get("kind")
        cls = _EVENT_CLASSES.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise ContractDecodeError(f"event kind {kind!r} is none this agent makes")
    else:
        found = _CLASS_OF_TYPE.get(record_type)
        if found is None:
            raise ContractDecodeError(f"record type {record_type} has no body class")
        cls = found
    return _dataclass(cls, body, str(record_type))


def decode_as(cls: type[BodyT], body: object) -> BodyT:
    """A body known to be of class `cls` (the records of one type read back for one purpose)."""
    if not isinstance(body, dict):
        raise ContractDecodeError(f"{cls.__name__} is {type(body).__name__}, not an object")
    return _dataclass(cls, body, cls.__name__)


def bodies_of(cls: type[BodyT], canonical_records: typing.Iterable[bytes]) -> list[BodyT]:
    """The bodies of stored records that are all of class `cls` (one record type read back from the outbox)."""
    out: list[BodyT] = []
    for canonical in canonical_records:
        body = decode_record(canonical).body
        if not isinstance(body, cls):
            raise ContractDecodeError(f"expected a {cls.__name__}, found a {type(body).__name__}")
        out.append(body)
    return out


def alarm_evidence(alarm: AlarmBody) -> Evidence | None:
    """An alarm's evidence as its kind's typed class; None for a kind this agent does not raise."""
    if alarm.kind not in EVIDENCE:
        return None
    cls = evidence_class(AlarmKind(alarm.kind), alarm.state is AlarmState.RAISED)
    where = f"alarm {alarm.kind} evidence"
    named = {field.name: alarm.evidence[field.name] for field in _shape(cls) if field.name in alarm.evidence}
    return _dataclass(cls, {**named, **cls.pattern_fields(alarm.evidence)}, where)


_EVENT_CLASSES: dict[str, type[Body]] = {}
_CLASS_OF_TYPE: dict[RecordType, type[Body]] = {}
for _cls in BODY_TYPES:
    if _cls.record_type is RecordType.EVENT:
        _EVENT_CLASSES[str(next(f.default for f in dataclasses.fields(_cls) if f.name == "kind"))] = _cls  # type: ignore[arg-type]
    else:
        _CLASS_OF_TYPE[_cls.record_type] = _cls


_SCALARS = frozenset({int, str, bool, type(None)})


@dataclass(frozen=True, slots=True)
class _Field:
    """A dataclass field as the decoder reads it. `scalars` are the exact JSON types it takes when its type is a
    plain scalar or a union of them (most fields): those are checked inline, the rest by `_value`."""

    name: str
    hint: Any
    scalars: frozenset[type] | None
    optional: bool


_SHAPES: dict[type, tuple[_Field, ...]] = {}


def _shape(cls: type) -> tuple[_Field, ...]:
    """A dataclass's fields with their resolved types, worked out once per class."""
    shape = _SHAPES.get(cls)
    if shape is None:
        hints = typing.get_type_hints(cls)
        shape = _SHAPES[cls] = tuple(
            _Field(
                field.name,
                hints[field.name],
                _scalars(hints[field.name]),
                field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING,
            )
            for field in dataclasses.fields(cls)
        )
    return shape


def _scalars(hint: Any) -> frozenset[type] | None:
    options = get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)
    return frozenset(options) if all(option in _SCALARS for option in options) else None


def _dataclass(cls: type[T], value: dict[str, Any], where: str) -> T:
    arguments: dict[str, Any] = {}
    added_later: dict[str, JsonScalar] = getattr(cls, "added_later", {})
    for field in _shape(cls):
        name = field.name
        if name not in value:
            if name in added_later:
                arguments[name] = added_later[name]
            elif not field.optional:
                raise ContractDecodeError(f"{where}: field {name!r} is missing")
            continue
        item = value[name]
        if field.scalars is None:
            arguments[name] = _value(field.hint, item, f"{where}.{name}")
        elif type(item) in field.scalars:
            arguments[name] = item
        else:
            expected = " or ".join(sorted("null" if t is type(None) else t.__name__ for t in field.scalars))
            raise ContractDecodeError(f"{where}.{name}: expected {expected}, found {item!r}")
    return cls(**arguments)


def _value(hint: Any, value: Any, where: str) -> Any:
    origin = get_origin(hint)
    if origin is Annotated:
        return _value(get_args(hint)[0], value, where)
    if origin is Union or origin is types.UnionType:
        return _union(get_args(hint), value, where)
    if origin is Literal:
        for option in get_args(hint):
            if isinstance(value, str) and value == option:
                return option
        raise ContractDecodeError(f"{where}: {value!r} is none of {list(get_args(hint))}")
    if origin is tuple:
        item = get_args(hint)[0]
        if not isinstance(value, list):
            raise ContractDecodeError(f"{where}: expected an array, found {value!r}")
        return tuple(_value(item, element, f"{where}[{index}]") for index, element in enumerate(value))
    if origin is dict:
        item = get_args(hint)[1]
        if not isinstance(value, dict):
            raise ContractDecodeError(f"{where}: expected an object, found {value!r}")
        return {key: _value(item, element, f"{where}.{key}") for key, element in value.items()}
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(value)
        except ValueError:
            raise ContractDecodeError(f"{where}: {value!r} is not a {hint.__name__}") from None
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ContractDecodeError(f"{where}: expected an object, found {value!r}")
        return _dataclass(hint, value, where)
    if hint is int:
        if type(value) is not int:
            raise ContractDecodeError(f"{where}: expected an integer, found {value!r}")
        return value
    if hint is str or hint is bool:
        if type(value) is not hint:
            raise ContractDecodeError(f"{where}: expected a {hint.__name__}, found {value!r}")
        return value
    if hint is type(None):
        if value is not None:
            raise ContractDecodeError(f"{where}: expected null, found {value!r}")
        return None
    raise ContractDecodeError(f"{where}: the decoder has no rule for {hint!r}")


def _union(options: tuple[Any, ...], value: Any, where: str) -> Any:
    """The first option the value fits: unions in bodies are `X | None` and the JSON scalar union."""
    for option in options:
        try:
            return _value(option, value, where)
        except ContractDecodeError:
            continue
    raise ContractDecodeError(f"{where}: {value!r} fits none of {[getattr(o, '__name__', o) for o in options]}")
