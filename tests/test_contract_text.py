"""The contract's words match the code: the size limits docs/contract.md states are the config's defaults, and the
generated schemas' descriptions read as sentences (no list left empty)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from agent.contract.records import RecordType
from agent.uplink.settings import UplinkSection
from station_lab import contract_docs

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _default(name: str) -> object:
    return next(field.default for field in dataclasses.fields(UplinkSection) if field.name == name)


def test_contract_states_the_configured_message_limits() -> None:
    """contract.md's "at most N records and K KiB by default" are `[uplink]`'s defaults."""
    text = (DOCS / "contract.md").read_text(encoding="utf-8")
    found = re.search(r"A message holds at most (\d+) records and (\d+) KiB by default", text)
    assert found is not None, "contract.md no longer states the records message limits"
    assert int(found.group(1)) == _default("max_records_per_message")
    assert int(found.group(2)) * 1024 == _default("max_message_bytes")


def test_record_type_description_names_every_type_and_no_empty_list() -> None:
    """The envelope's `type` text in record.json lists each record type and ends in a sentence, not ': .'."""
    schema = json.loads((DOCS / "contract" / "schemas" / "record.json").read_text(encoding="utf-8"))
    description = schema["properties"]["type"]["description"]
    assert ": ." not in description and ", ." not in description
    assert all(str(kind) in description for kind in RecordType)
    assert description.endswith("Receivers store records of types they do not know.")


def test_reserved_types_are_named_only_when_there_are_some() -> None:
    """With reserved types the text names them; without, it says nothing of reserved types."""
    typed = list(RecordType)
    with_reserved = contract_docs._record_type_description(typed[:-1], [str(typed[-1])])
    assert f"reserved in v1, body not yet specified: {typed[-1]}." in with_reserved
    assert "reserved" not in contract_docs._record_type_description(typed, [])
