"""Key rotation as the platform sees it: a `key_rotation` event, signed by a key the station already has,
hands trust to the new key it carries. Only the record's verified bytes are read; nothing else is believed.

The event's body: `old_kid` (must be the kid that signed it), `new_kid` and `new_public_key` (the raw key in
standard base64: 32 bytes for Ed25519, the 65-byte uncompressed point for SM2; its kid must be `new_kid`). The
new key may be of the other suite (contract v1.2): its kid says which. The old key stays trusted for what it
signed.
"""

from __future__ import annotations

import base64
import binascii
import json

from cryptography.exceptions import InvalidKey

from simulators.platform.keys import StationPublicKey, key_id, public_key_from_raw
from simulators.platform.sm2 import POINT_LENGTH, Sm2KeyError

_RAW_KEY_BYTES = (32, POINT_LENGTH)


def announced_key(canonical: bytes, signed_by: str | None) -> tuple[str, StationPublicKey] | None:
    """(kid, key) that a verified record signed by `signed_by` hands trust to, or None if it is no such record.

    `signed_by` None: a record read back from the store, whose signer was checked when it was stored."""
    record = json.loads(canonical)
    body = record.get("body") if isinstance(record, dict) else None
    if record.get("type") != "event" or not isinstance(body, dict) or body.get("kind") != "key_rotation":
        return None
    if signed_by not in (None, body.get("old_kid")) or not isinstance(body.get("new_public_key"), str):
        return None
    try:
        raw = base64.b64decode(body["new_public_key"], validate=True)
    except binascii.Error:
        return None
    if len(raw) not in _RAW_KEY_BYTES:
        return None
    try:
        key = public_key_from_raw(raw)
    except (Sm2KeyError, InvalidKey, ValueError):
        return None
    kid = key_id(key)
    return (kid, key) if kid == body.get("new_kid") else None
