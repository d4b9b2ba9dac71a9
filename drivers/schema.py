"""Settings as frozen dataclasses that pydantic can validate at the edge and nothing needs at run time.

Config files and device profiles are untrusted input, so they are validated with pydantic; but pydantic costs
about 20 MB in a process, a third of what the agent may use on a small gateway. The classes that hold the
settings are therefore plain frozen dataclasses: their annotations carry the ranges and lengths
and patterns (`Rule`s, which pydantic reads), `doc` the sentence an installer reads, and `__post_init__` the
rules that tie fields together. The validating code
imports pydantic; the running agent only unpickles these classes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field
from typing import Annotated, Any, TypeVar, dataclass_transform

T = TypeVar("T")

STRICT: Any = {"extra": "forbid"}
"""Unknown keys are errors, so a misspelt key is reported instead of silently taking the default."""


class Rule:
    """A rule a setting must follow, and the words that say what it allows.

    Put in an `Annotated[...]` type; pydantic finds it through `__get_pydantic_core_schema__` and checks it
    with the field's own path, so the installer reads `station.id: found 'x y'; must be ...`. The rules are
    ours rather than `annotated_types`' so that the agent process, which never validates, need not import
    that package (and typing_extensions behind it) just to define its settings classes."""

    __slots__ = ()

    @property
    def allows(self) -> str:
        raise NotImplementedError

    def holds(self, value: Any) -> bool:
        raise NotImplementedError

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema  # noqa: PLC0415 - only ever called while validating

        def check(value: Any) -> Any:
            if not self.holds(value):
                raise ValueError(f"must be {self.allows}")
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))


@dataclass(frozen=True, slots=True)
class Matches(Rule):
    """The whole text matches a regular expression."""

    what: str
    regex: str

    @property
    def allows(self) -> str:
        return self.what

    def holds(self, value: Any) -> bool:
        return isinstance(value, str) and re.fullmatch(self.regex, value) is not None


@dataclass(frozen=True, slots=True)
class Satisfies(Rule):
    """A predicate holds for the value (a time-zone name that exists, a port in range)."""

    what: str
    predicate: Callable[[Any], bool]

    @property
    def allows(self) -> str:
        return self.what

    def holds(self, value: Any) -> bool:
        return self.predicate(value)


@dataclass(frozen=True, slots=True)
class Ge(Rule):
    bound: Any

    @property
    def allows(self) -> str:
        return f">= {self.bound}"

    def holds(self, value: Any) -> bool:
        return bool(value >= self.bound)


@dataclass(frozen=True, slots=True)
class Gt(Rule):
    bound: Any

    @property
    def allows(self) -> str:
        return f"> {self.bound}"

    def holds(self, value: Any) -> bool:
        return bool(value > self.bound)


@dataclass(frozen=True, slots=True)
class Le(Rule):
    bound: Any

    @property
    def allows(self) -> str:
        return f"<= {self.bound}"

    def holds(self, value: Any) -> bool:
        return bool(value <= self.bound)


@dataclass(frozen=True, slots=True)
class MinLen(Rule):
    length: int

    @property
    def allows(self) -> str:
        return f"at least {self.length} long" if self.length > 1 else "given (not empty)"

    def holds(self, value: Any) -> bool:
        return len(value) >= self.length


@dataclass(frozen=True, slots=True)
class MaxLen(Rule):
    length: int

    @property
    def allows(self) -> str:
        return f"at most {self.length} long"

    def holds(self, value: Any) -> bool:
        return len(value) <= self.length


def doc(text: str, *, default: Any = MISSING, factory: Any = MISSING) -> Any:
    """A dataclass field with the sentence an installer reads when its value is wrong."""
    return field(default=default, default_factory=factory, metadata={"doc": text})


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(field, doc))
def settings(cls: type[T]) -> type[T]:
    """A settings class: frozen, keyword-only, slotted, and strict about unknown keys."""
    cls.__pydantic_config__ = STRICT  # type: ignore[attr-defined]
    return dataclass(frozen=True, slots=True, kw_only=True)(cls)


Name = Annotated[str, Matches("1-32 letters, digits, '_', '-', '.'", r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")]
"""The short name of a line, device, tank, dispenser or nozzle, as records and other sections refer to it."""


def _tcp_port_in(address: str) -> bool:
    return 0 < int(address.rpartition(":")[2]) < 65536


TCP_PORT_AFTER_COLON = Satisfies("a TCP port 1..65535 after the colon", _tcp_port_in)
"""For an address written HOST:PORT, once its pattern has matched."""
