"""The contract documentation: the schemas are as generated, the agent's records pass them, the example is true."""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import itertools
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jsonschema import Draft7Validator, Draft202012Validator
from jsonschema.protocols import Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from agent import contract_docs
from agent.ledger.chain import ChainHead, SealedRecord, seal
from agent.ledger.keys import DeviceKey, kid_of
from agent.ledger.outbox import StoredRecord
from agent.records import (
    BODY_TYPES,
    AgentStartBody,
    AgentStopBody,
    AlarmBody,
    AlarmState,
    Body,
    ClockJumpBody,
    ConfigChangeBody,
    ControllerBaselineBody,
    DeviceOfflineBody,
    DeviceOnlineBody,
    EventKind,
    HeartbeatBody,
    RecordIntent,
    RecordType,
    TransactionBody,
    UncleanStopBody,
    parse_ts,
)
from agent.uplink.messages import Topics, build_records_message, status_payload

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
SCHEMAS = DOCS / "contract" / "schemas"
CONTRACT_MD = DOCS / "contract.md"
STATION = "CQ-YB-0001"
RFC8032_TEST1_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
"""RFC 8032 section 7.1, TEST 1: a published secret key, used only to reproduce the worked example."""

Json = dict[str, Any]


def _schemas() -> dict[str, Json]:
    return {path.name: json.loads(path.read_text(encoding="utf-8")) for path in sorted(SCHEMAS.glob("*.json"))}


def _draft7(schema: Json) -> Json:
    """The schema as a draft-07 reader (an AsyncAPI 3.0 tool) sees it."""
    return {key: value for key, value in schema.items() if key != "$schema"}


def _validators(name: str) -> list[Validator]:
    """A validator for schema file `name` in draft 2020-12 and one reading it as draft-07."""
    schemas = _schemas()
    modern = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas.values())
    old = Registry().with_resources((s["$id"], DRAFT7.create_resource(_draft7(s))) for s in schemas.values())
    return [
        Draft202012Validator(schemas[name], registry=modern),
        Draft7Validator(_draft7(schemas[name]), registry=old),
    ]


def _field_names(cls: type[Body]) -> list[str]:
    return [field.name for field in dataclasses.fields(cls)]  # type: ignore[arg-type]


def _walk(node: object) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


# -- the schema files ------------------------------------------------------------------------------------------


def test_committed_schemas_are_what_the_generator_writes() -> None:
    """`python -m agent.contract_docs --check` passes on the committed files."""
    result = subprocess.run(
        [sys.executable, "-m", "agent.contract_docs", "--check"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_check_names_each_file_that_is_not_as_generated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--check exits 1 and names a changed file, a missing one and one the generator does not make."""
    assert contract_docs.main(["--dir", str(tmp_path)]) == 0
    (tmp_path / "ack.json").write_text("{}\n")
    (tmp_path / "alarm.json").unlink()
    (tmp_path / "old.json").write_text("{}\n")
    capsys.readouterr()
    assert contract_docs.main(["--check", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'ack.json'}: differs" in err
    assert f"{tmp_path / 'alarm.json'}: missing" in err
    assert f"{tmp_path / 'old.json'}: not generated" in err


def test_output_is_deterministic() -> None:
    """Two runs render the same bytes: sorted keys, 2-space indent, one trailing newline."""
    first = {name: contract_docs.render(schema) for name, schema in contract_docs.schemas().items()}
    second = {name: contract_docs.render(schema) for name, schema in contract_docs.schemas().items()}
    assert first == second
    for text in first.values():
        assert text.endswith("}\n") and not text.endswith("\n\n")
        assert text.startswith('{\n  "')


def test_every_schema_names_and_describes_itself() -> None:
    """Each file has $schema 2020-12, an $id ending in its own name, a title and a description."""
    schemas = _schemas()
    assert set(schemas) == {
        "record.json",
        "records-message.json",
        "ack.json",
        "status.json",
        "transaction.json",
        "event.json",
        "alarm.json",
        "heartbeat.json",
    }
    for name, schema in schemas.items():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == contract_docs.BASE_ID + name
        assert schema["title"] and schema["description"]
        Draft202012Validator.check_schema(schema)
        Draft7Validator.check_schema(_draft7(schema))


def test_numbers_are_integers_only() -> None:
    """No schema anywhere allows a JSON number that is not an integer."""
    for name, schema in _schemas().items():
        for node in _walk(schema):
            types = node.get("type")
            assert types != "number" and not (isinstance(types, list) and "number" in types), name


def test_envelope_is_exactly_the_seven_keys() -> None:
    record = _schemas()["record.json"]
    assert record["additionalProperties"] is False
    assert set(record["required"]) == set(record["properties"]) == {"v", "station", "seq", "ts", "type", "body", "prev"}


def test_body_schema_wants_every_field_of_its_dataclass() -> None:
    """The agent writes every field of a body, so every field is required."""
    for cls in BODY_TYPES:
        schema = contract_docs.body_schema(cls)
        assert schema["required"] == _field_names(cls)


# -- records the agent makes -----------------------------------------------------------------------------------

_SHA = hashlib.sha256(b"config").hexdigest()
SAMPLES: list[Body] = [
    HeartbeatBody(interval_s=60, uptime_s=0, uplink="offline", unacked=0, devices_online=0, devices_total=3),
    AgentStartBody(version="0.1.0", config_sha256=_SHA, kid="0123456789abcdef"),
    AgentStopBody(reason="stopped", uptime_s=86_400),
    UncleanStopBody(last_record_seq=0, last_record_ts=None),
    UncleanStopBody(last_record_seq=41, last_record_ts="2026-11-27T08:14:41.250Z"),
    ClockJumpBody(
        from_ts="2026-11-27T08:00:00.000Z", to_ts="2026-11-27T07:00:00.000Z", jump_ms=-3_600_000, across_restart=True
    ),
    ConfigChangeBody(old_sha256=_SHA, new_sha256=hashlib.sha256(b"new").hexdigest()),
    DeviceOnlineBody(device="pc1", line="rs485-1"),
    DeviceOfflineBody(device="pc1", line="rs485-1", reason="ModbusTimeout: no answer within 300 ms"),
    ControllerBaselineBody(
        nozzle="D01-N1", controller="pc1", txn_no=18230, totalizer_volume_ml=912345670, totalizer_amount_fen=0
    ),
    AlarmBody(
        kind="outbox_full",
        state=AlarmState.RAISED,
        subject="outbox",
        evidence={"problem": "outbox is full", "max_bytes": 2**31, "used_bytes": -1, "acked_upto": 0, "head_seq": 7},
    ),
    AlarmBody(
        kind="outbox_full",
        state=AlarmState.CLEARED,
        subject="outbox",
        evidence={"duration_s": 120, "dropped": 0, "flag": True, "none": None},
    ),
    TransactionBody(
        nozzle="D01-N1",
        dispenser="D01",
        grade="0#",
        tank="T3",
        controller="pc1",
        txn_no=18231,
        start="2026-11-27T08:13:09.517Z",
        end="2026-11-27T08:14:58.902Z",
        volume_ml=30120,
        amount_fen=23132,
        price_fen_per_l=768,
        totalizer_volume_ml_before=None,
        totalizer_volume_ml_after=2**53 - 1,
        totalizer_amount_fen_before=None,
        totalizer_amount_fen_after=0,
    ),
]


@pytest.fixture(scope="module")
def sealed() -> list[SealedRecord]:
    key = DeviceKey.from_private(Ed25519PrivateKey.generate())
    start = parse_ts("2026-11-27T08:00:00.000Z")
    intents = [body.intent(start + 1000 * index) for index, body in enumerate(SAMPLES)]
    records, _ = seal(intents, ChainHead.genesis(), STATION, key)
    return records


def _record(record: SealedRecord) -> Json:
    parsed: Json = json.loads(record.canonical)
    return parsed


def test_samples_cover_every_body_type() -> None:
    """Adding a body class to agent.records without a sample here fails."""
    assert {type(body) for body in SAMPLES} == set(BODY_TYPES)


def test_records_the_agent_seals_are_valid(sealed: list[SealedRecord]) -> None:
    """Every sealed sample passes record.json, read as 2020-12 and as draft-07."""
    for validator in _validators("record.json"):
        for record in sealed:
            validator.validate(_record(record))


def test_each_body_schema_stands_alone(sealed: list[SealedRecord]) -> None:
    """A body validates against its type's schema file loaded on its own, without a registry."""
    schemas = _schemas()
    for record in map(_record, sealed):
        Draft202012Validator(schemas[f"{record['type']}.json"]).validate(record["body"])


def test_records_messages_the_agent_builds_are_valid(sealed: list[SealedRecord]) -> None:
    stored = [StoredRecord(record.seq, record.kid, record.canonical, record.sig) for record in sealed]
    message = build_records_message(stored, 1 << 20)
    assert message is not None and (message.first, message.last) == (1, len(sealed))
    for validator in _validators("records-message.json"):
        validator.validate(json.loads(message.payload))


def test_status_payloads_the_agent_publishes_are_valid() -> None:
    """Birth, goodbye and will, shaped as the uplink sends them."""
    birth = {"faults": [], "ts": "2026-11-27T08:14:20.517Z", "kid": "21fe31dfa154a261", "version": "0.1.0"}
    payloads = [
        status_payload("online", **birth, head_seq=40),
        status_payload("offline", **birth, head_seq=40, reason="stopped"),
        status_payload("offline", reason="connection_lost", client_id=f"station-agent-{STATION}"),
    ]
    for validator in _validators("status.json"):
        for payload in payloads:
            validator.validate(json.loads(payload))
        assert not validator.is_valid({"state": "away"})


def test_ack_schema() -> None:
    for validator in _validators("ack.json"):
        assert validator.is_valid({"upto": 0}) and validator.is_valid({"upto": 42})
        assert not validator.is_valid({"upto": -1})
        assert not validator.is_valid({"upto": 4.5})
        assert not validator.is_valid({})


def _transaction(sealed: list[SealedRecord]) -> Json:
    return next(record for record in map(_record, sealed) if record["type"] == "transaction")


def _event(sealed: list[SealedRecord], kind: str) -> Json:
    return next(record for record in map(_record, sealed) if record["body"].get("kind") == kind)


def _set(path: str, value: object) -> Callable[[Json], None]:
    def change(record: Json) -> None:
        *parents, last = path.split(".")
        node = record
        for part in parents:
            node = node[part]
        node[last] = value

    return change


def _delete(path: str) -> Callable[[Json], None]:
    def change(record: Json) -> None:
        *parents, last = path.split(".")
        node = record
        for part in parents:
            node = node[part]
        del node[last]

    return change


BAD_TRANSACTIONS: dict[str, Callable[[Json], None]] = {
    "float in body": _set("body.volume_ml", 30120.5),
    "float in an added body field": _set("body.temperature", 15.5),
    "float nested in an added body field": _set("body.extra", {"list": [1, 2.5]}),
    "string for an integer": _set("body.amount_fen", "23132"),
    "boolean for an integer": _set("body.price_fen_per_l", True),
    "integer beyond 2**53 - 1": _set("body.totalizer_volume_ml_after", 2**53),
    "body field missing": _delete("body.tank"),
    "body time without milliseconds": _set("body.start", "2026-11-27T08:13:09Z"),
    "extra envelope key": _set("note", "hello"),
    "envelope key missing": _delete("prev"),
    "ts without milliseconds": _set("ts", "2026-11-27T08:15:02Z"),
    "ts with an offset": _set("ts", "2026-11-27T08:15:02.113+00:00"),
    "ts with microseconds": _set("ts", "2026-11-27T08:15:02.113000Z"),
    "seq 0": _set("seq", 0),
    "seq as a string": _set("seq", "1"),
    "v 2": _set("v", 2),
    "prev in upper case": _set("prev", "A" * 64),
    "prev too short": _set("prev", "0" * 63),
    "station with a slash": _set("station", "CQ/YB"),
    "body not an object": _set("body", [1, 2]),
    "empty type": _set("type", ""),
}


@pytest.mark.parametrize("change", BAD_TRANSACTIONS.values(), ids=BAD_TRANSACTIONS.keys())
def test_bad_records_are_rejected(sealed: list[SealedRecord], change: Callable[[Json], None]) -> None:
    record = copy.deepcopy(_transaction(sealed))
    change(record)
    for validator in _validators("record.json"):
        assert not validator.is_valid(record)


BAD_EVENTS: dict[str, tuple[str, Callable[[Json], None]]] = {
    "unknown event kind": ("device_online", _set("body.kind", "device_lost")),
    "kind of another body": ("device_online", _set("body.kind", "device_offline")),
    "no kind": ("agent_stop", _delete("body.kind")),
    "config hash in upper case": ("agent_start", _set("body.config_sha256", _SHA.upper())),
    "kid too long": ("agent_start", _set("body.kid", "0" * 32)),
}


@pytest.mark.parametrize(("kind", "change"), BAD_EVENTS.values(), ids=BAD_EVENTS.keys())
def test_bad_events_are_rejected(sealed: list[SealedRecord], kind: str, change: Callable[[Json], None]) -> None:
    record = copy.deepcopy(_event(sealed, kind))
    change(record)
    for validator in _validators("record.json"):
        assert not validator.is_valid(record)


def test_bad_alarm_state_is_rejected(sealed: list[SealedRecord]) -> None:
    record = copy.deepcopy(next(r for r in map(_record, sealed) if r["type"] == "alarm"))
    record["body"]["state"] = "active"
    for validator in _validators("record.json"):
        assert not validator.is_valid(record)


def test_documented_additions_stay_valid(sealed: list[SealedRecord]) -> None:
    """A new optional body field without floats, and a record of a reserved type, pass the v1 schemas."""
    added = copy.deepcopy(_transaction(sealed))
    added["body"]["pump_temp_cC"] = 1525
    added["body"]["detail"] = {"readings": [1, "two", None, True]}
    reserved = copy.deepcopy(_transaction(sealed))
    reserved["type"] = str(RecordType.TANK_INVENTORY)
    reserved["body"] = {"tank": "T1", "volume_ml": 12_000_000, "temp_cC": 1525}
    for validator in _validators("record.json"):
        validator.validate(added)
        validator.validate(reserved)


BAD_MESSAGES: dict[str, Callable[[Json], None]] = {
    "kid in upper case": lambda m: m.update(kid=m["kid"].upper()),
    "kid too short": lambda m: m.update(kid=m["kid"][:15]),
    "no records": lambda m: m.update(records=[]),
    "extra message key": lambda m: m.update(station=STATION),
    "signature one character short": lambda m: m["records"][0].update(sig=m["records"][0]["sig"][1:]),
    "signature without padding": lambda m: m["records"][0].update(sig=m["records"][0]["sig"].rstrip("=")),
    "signature in base64url": lambda m: m["records"][0].update(sig="-_" + m["records"][0]["sig"][2:]),
    "signature with unused bits set": lambda m: m["records"][0].update(sig=m["records"][0]["sig"][:85] + "B=="),
    "extra item key": lambda m: m["records"][0].update(kid=m["kid"]),
    "bad record inside": lambda m: m["records"][0]["record"].update(seq=0),
}


@pytest.mark.parametrize("change", BAD_MESSAGES.values(), ids=BAD_MESSAGES.keys())
def test_bad_records_messages_are_rejected(sealed: list[SealedRecord], change: Callable[[Json], None]) -> None:
    stored = [StoredRecord(record.seq, record.kid, record.canonical, record.sig) for record in sealed[:3]]
    message = build_records_message(stored, 1 << 20)
    assert message is not None
    payload = json.loads(message.payload)
    for validator in _validators("records-message.json"):
        assert validator.is_valid(payload)
    change(payload)
    for validator in _validators("records-message.json"):
        assert not validator.is_valid(payload)


# -- the worked example ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example() -> Json:
    loaded: Json = json.loads((DOCS / "contract" / "example.json").read_text(encoding="utf-8"))
    return loaded


def test_example_canonical_bytes_and_hashes_hold(example: Json) -> None:
    """Each example record's canonical bytes are its RFC 8785 form, and its SHA-256 is the next record's prev."""
    items = example["records"]
    for item in items:
        assert rfc8785.dumps(item["record"]) == item["canonical"].encode()
        assert hashlib.sha256(item["canonical"].encode()).hexdigest() == item["sha256"]
    for before, after in itertools.pairwise(items):
        assert after["record"]["prev"] == before["sha256"]
        assert after["record"]["seq"] == before["record"]["seq"] + 1


def test_example_signatures_verify_with_the_published_key(example: Json) -> None:
    key = example["key"]
    public = Ed25519PrivateKey.from_private_bytes(RFC8032_TEST1_SECRET).public_key()
    assert public.public_bytes_raw().hex() == key["public_raw_hex"]
    assert (
        DeviceKey.from_private(Ed25519PrivateKey.from_private_bytes(RFC8032_TEST1_SECRET)).public_pem()
        == (key["public_pem"])
    )
    assert kid_of(bytes.fromhex(key["public_raw_hex"])) == key["kid"]
    for item in example["records"]:
        public.verify(base64.b64decode(item["sig"], validate=True), item["canonical"].encode())


def test_example_is_what_the_agent_makes(example: Json) -> None:
    """Sealing the example's intents with the same key gives the same bytes, signatures and message."""
    key = DeviceKey.from_private(Ed25519PrivateKey.from_private_bytes(RFC8032_TEST1_SECRET))
    records = [item["record"] for item in example["records"]]
    intents = [RecordIntent(RecordType(r["type"]), parse_ts(r["ts"]), r["body"]) for r in records]
    head = ChainHead(records[0]["seq"] - 1, records[0]["prev"], None)
    resealed, _ = seal(intents, head, records[0]["station"], key)
    for record, item in zip(resealed, example["records"], strict=True):
        assert record.canonical.decode() == item["canonical"]
        assert base64.b64encode(record.sig).decode() == item["sig"]
    stored = [StoredRecord(record.seq, record.kid, record.canonical, record.sig) for record in resealed]
    message = build_records_message(stored, 1 << 20)
    assert message is not None and message.payload.decode() == example["payload"]
    for validator in _validators("records-message.json"):
        validator.validate(json.loads(example["payload"]))


def _fenced(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", CONTRACT_MD.read_text(encoding="utf-8"), re.M | re.S)


def test_markdown_quotes_the_example(example: Json) -> None:
    """The record, its canonical bytes, hash and signature in contract.md are those of example.json."""
    text = CONTRACT_MD.read_text(encoding="utf-8")
    shown = example["records"][-1]
    assert [json.loads(block) for block in _fenced("json")] == [shown["record"]]
    plain = [block.strip() for block in _fenced("text")]
    for item in example["records"]:
        assert item["canonical"] in plain
    assert shown["sha256"] in plain and shown["sig"] in plain
    assert f"{len(shown['canonical'].encode())} bytes" in text
    assert example["key"]["public_raw_hex"] in text and example["key"]["kid"] in text


def test_markdown_python_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The Python on the page runs as printed, from the docs folder, and prints the example record's hash."""
    monkeypatch.chdir(DOCS)
    blocks = _fenced("python")
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, str(CONTRACT_MD), "exec"), {})
    assert capsys.readouterr().out.split() == ["59d69b59d1c2962d637455328cd0349a96860f22ba462ff88342305d9e97f73f"]


def test_markdown_names_every_body_field_and_event_kind() -> None:
    text = CONTRACT_MD.read_text(encoding="utf-8")
    for cls in BODY_TYPES:
        for field in _field_names(cls):
            assert f"`{field}`" in text, f"{cls.__name__}.{field} is not in docs/contract.md"
    for kind in EventKind:
        assert f"`{kind}`" in text
    for record_type in RecordType:
        assert f"`{record_type}`" in text


def test_asyncapi_names_the_five_topics_and_existing_schemas() -> None:
    text = (DOCS / "contract" / "asyncapi.yaml").read_text(encoding="utf-8")
    addresses = set(re.findall(r"^    address: '(.*)'$", text, re.M))
    topics = Topics.for_station("{prefix}", "{station}")
    assert addresses == {topics.records, topics.status, topics.ack, topics.cmd, topics.cmd_reply}
    referenced = set(re.findall(r"\$ref: '\./schemas/([\w-]+\.json)'", text))
    assert referenced == {"records-message.json", "status.json", "ack.json"}
    assert all((SCHEMAS / name).exists() for name in referenced)
