"""The command envelope and its checks, without I/O: bytes, the platform's keys and a time in; a verdict out.

Theory of operation: an envelope is `{"id", "cmd", "args", "issued", "expires", "station", "kid", "sig"}`,
signed by the platform (Ed25519, or SM2 with SM3 since contract v1.2: the kid names the suite) over the RFC
8785 bytes of the envelope without `sig`. The checks run in an order that reads nothing unsigned beyond what
finding the signature needs: shape, then key and signature, and only then what the signed fields say (station,
times). A refusal names one reason, the first check that
failed. Whether the id was seen before is the replay memory's question (agent.commands.replay), and whether
the command and its arguments are known is the handlers' (agent.commands.handlers).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from agent.contract.canonical import NotCanonicalisable, canonical_bytes
from agent.contract.inbound_json import InboundJsonError, JsonLimits, load_json
from agent.contract.records import JsonScalar, JsonValue, parse_ts
from agent.ledger.suites import PublicKey

ENVELOPE_KEYS: Final = frozenset({"id", "cmd", "args", "issued", "expires", "station", "kid", "sig"})
COMMAND_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
COMMAND_NAME: Final = re.compile(r"[a-z][a-z0-9-]{0,31}")
_TS: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_SIG: Final = re.compile(r"[A-Za-z0-9+/]{86}==")
_QUOTE_LIMIT: Final = 60
ENVELOPE_DEPTH: Final = 3
"""The envelope is an object holding `args`, an object of scalars: two levels; one more is refused in `args`
with a clear reason rather than unread."""


class Refusal(StrEnum):
    """Why a command was not carried out; the values are the contract's words (reply `error.reason`)."""

    MALFORMED = "malformed"
    UNSIGNED = "unsigned"
    UNKNOWN_KID = "unknown_kid"
    BAD_SIGNATURE = "bad_signature"
    WRONG_STATION = "wrong_station"
    EXPIRED = "expired"
    ISSUED_IN_FUTURE = "issued_in_future"
    LIFETIME_TOO_LONG = "lifetime_too_long"
    REPLAYED = "replayed"
    UNKNOWN_COMMAND = "unknown_command"
    BAD_ARGS = "bad_args"


@dataclass(frozen=True, slots=True)
class Command:
    """A command whose signature, station and times check out."""

    id: str
    name: str
    args: dict[str, JsonScalar]
    issued_ms: int
    expires_ms: int
    kid: str


@dataclass(frozen=True, slots=True)
class Refused:
    """A refusal. `id` and `name` are echoed only when they have the form of an id and a command name, since
    they go into a record and a reply whatever sent them."""

    reason: Refusal
    detail: str
    id: str | None = None
    name: str | None = None
    authentic: bool = False
    """The refused message carries the platform's valid signature, so its `id` is the platform's own and may
    be echoed in the reply; an unsigned or forged message must not choose the id of the reply it gets."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The clock rules a command must meet (the `[commands]` settings, in milliseconds)."""

    max_skew_ms: int
    max_lifetime_ms: int
    max_bytes: int
    """The largest payload read at all (`max_command_bytes`); checked before a byte is parsed."""


def quote(value: object) -> str:
    """A value from an untrusted message, safe to put into a record: ASCII only, and short."""
    text = ascii(value)
    return text if len(text) <= _QUOTE_LIMIT else text[: _QUOTE_LIMIT - 3] + "..."


def check_envelope(
    payload: bytes, station: str, keys: Mapping[str, PublicKey], now_ms: int, limits: Limits
) -> Command | Refused:
    """Every check of the envelope but replay and the command's own arguments; see the module docstring."""
    try:
        envelope = load_json(payload, JsonLimits(limits.max_bytes, ENVELOPE_DEPTH), object_pairs_hook=_unique_keys)
    except InboundJsonError as exc:
        return Refused(Refusal.MALFORMED, f"refused before reading: {quote(str(exc))}")
    if not isinstance(envelope, dict):
        return Refused(Refusal.MALFORMED, f"want a JSON object, got {type(envelope).__name__}")
    command_id, name = _echo(envelope.get("id"), COMMAND_ID), _echo(envelope.get("cmd"), COMMAND_NAME)
    if envelope.get("sig") in (None, ""):
        return Refused(Refusal.UNSIGNED, "no sig: commands must be signed with the platform's key", command_id, name)
    if envelope.keys() != ENVELOPE_KEYS:
        missing, extra = sorted(ENVELOPE_KEYS - envelope.keys()), sorted(envelope.keys() - ENVELOPE_KEYS)
        detail = f"keys must be exactly {sorted(ENVELOPE_KEYS)}; missing {missing}, extra {quote(extra)}"
        return Refused(Refusal.MALFORMED, detail, command_id, name)
    kid = envelope["kid"]
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        return Refused(
            Refusal.UNKNOWN_KID, f"kid {quote(kid)} is not the platform key this box trusts", command_id, name
        )
    signature = _signature(envelope["sig"])
    if signature is None:
        return Refused(Refusal.BAD_SIGNATURE, "sig is not 64 bytes in standard padded base64", command_id, name)
    try:
        signed = canonical_bytes({k: v for k, v in envelope.items() if k != "sig"})
    except (NotCanonicalisable, UnicodeEncodeError) as exc:
        return Refused(Refusal.MALFORMED, f"no canonical form: {quote(str(exc))}", command_id, name)
    if not key.verify(signature, signed):
        return Refused(Refusal.BAD_SIGNATURE, f"signature does not verify with platform key {kid}", command_id, name)
    checked = _signed_fields(envelope, kid, station=station, now_ms=now_ms, limits=limits)
    return dataclasses.replace(checked, authentic=True) if isinstance(checked, Refused) else checked


def _signed_fields(
    envelope: dict[str, JsonValue], kid: str, *, station: str, now_ms: int, limits: Limits
) -> Command | Refused:
    """The checks of what a genuine platform message says; the platform made these, so a failure here is a
    platform bug or a message meant for another box or time."""
    command_id, name = _echo(envelope["id"], COMMAND_ID), _echo(envelope["cmd"], COMMAND_NAME)
    if command_id is None or name is None:
        return Refused(Refusal.MALFORMED, "id or cmd is not of the documented form", command_id, name)
    args = _scalars(envelope["args"])
    if args is None:
        return Refused(
            Refusal.MALFORMED, "args must be an object of strings, integers, booleans or null", command_id, name
        )
    issued_ms, expires_ms = _time(envelope["issued"]), _time(envelope["expires"])
    if issued_ms is None or expires_ms is None:
        detail = "issued and expires must be RFC 3339 UTC times with milliseconds, e.g. 2026-11-27T08:15:02.113Z"
        return Refused(Refusal.MALFORMED, detail, command_id, name)
    if envelope["station"] != station:
        detail = f"addressed to station {quote(envelope['station'])}, this is {station}"
        return Refused(Refusal.WRONG_STATION, detail, command_id, name)
    if expires_ms <= issued_ms:
        return Refused(Refusal.MALFORMED, "expires is not after issued", command_id, name)
    if expires_ms - issued_ms > limits.max_lifetime_ms:
        lifetime_s, allowed_s = (expires_ms - issued_ms) // 1000, limits.max_lifetime_ms // 1000
        detail = f"valid for {lifetime_s} s, longer than the {allowed_s} s allowed"
        return Refused(Refusal.LIFETIME_TOO_LONG, detail, command_id, name)
    if now_ms >= expires_ms:
        return Refused(
            Refusal.EXPIRED, f"expired {(now_ms - expires_ms) // 1000} s ago by the agent's clock", command_id, name
        )
    if issued_ms > now_ms + limits.max_skew_ms:
        detail = (
            f"issued {(issued_ms - now_ms) // 1000} s in the agent's future, beyond the {limits.max_skew_ms // 1000} s "
            "allowed; check both clocks"
        )
        return Refused(Refusal.ISSUED_IN_FUTURE, detail, command_id, name)
    return Command(command_id, name, args, issued_ms, expires_ms, kid)


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A signed object must read one way only: a repeated key is refused, not resolved."""
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("a key appears twice in one object")
    return result


def _echo(value: object, form: re.Pattern[str]) -> str | None:
    return value if isinstance(value, str) and form.fullmatch(value) else None


def _scalars(value: JsonValue) -> dict[str, JsonScalar] | None:
    """`args` as a flat object of scalars, or None if it is not one."""
    if not isinstance(value, dict):
        return None
    flat: dict[str, JsonScalar] = {}
    for key, item in value.items():
        if not (item is None or isinstance(item, str | int | bool)):
            return None
        flat[key] = item
    return flat


def _signature(value: object) -> bytes | None:
    if not isinstance(value, str) or not _SIG.fullmatch(value):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        return None


def _time(value: object) -> int | None:
    if not isinstance(value, str) or not _TS.fullmatch(value):
        return None
    try:
        return parse_ts(value)
    except ValueError:
        return None
