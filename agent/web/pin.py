"""The web page's PIN, kept in the config only as a salted scrypt hash (`station-agent web-pin` prints the line).

scrypt is memory-hard, so a stolen config does not give the PIN to a graphics card in seconds; the cost below
takes about 16 MiB and a few tens of milliseconds per try on a small ARM box, and the login throttle
(`agent.web.guard`) keeps tries few. The format names its parameters, so they can be raised later without
breaking the hashes already in configs: `scrypt$<log2 n>$<r>$<p>$<salt b64>$<hash b64>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

LOG2_N, BLOCK_R, PARALLEL_P = 14, 8, 1
SALT_BYTES, HASH_BYTES = 16, 32
MAX_MEMORY_BYTES = 64 * 1024**2
MIN_PIN_CHARS = 6
MAX_PIN_CHARS = 128
PIN_HASH = re.compile(r"scrypt\$(1[0-9]|20)\$([1-9][0-9]?)\$([1-9])\$([A-Za-z0-9+/]{22,}={0,2})\$([A-Za-z0-9+/]{43}=)")
"""What a stored hash looks like (the config's validator uses it too): n from 2^10 to 2^20, r < 100, p < 10."""


class PinError(ValueError):
    """A PIN that cannot be used; the message says why and what to choose instead."""


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    """The line to store; a fresh random salt unless one is given (tests give one to compare)."""
    if not MIN_PIN_CHARS <= len(pin) <= MAX_PIN_CHARS:
        raise PinError(f"a PIN of {len(pin)} characters; choose {MIN_PIN_CHARS} to {MAX_PIN_CHARS}")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = _scrypt(pin, salt, LOG2_N, BLOCK_R, PARALLEL_P)
    return "$".join(("scrypt", str(LOG2_N), str(BLOCK_R), str(PARALLEL_P), _b64(salt), _b64(digest)))


def verify_pin(pin: str, stored: str) -> bool:
    """True if `pin` hashes to `stored`; False for a wrong PIN, an over-long one or a malformed stored line."""
    match = PIN_HASH.fullmatch(stored)
    if match is None or len(pin) > MAX_PIN_CHARS:
        return False
    log2_n, r, p = (int(match.group(i)) for i in (1, 2, 3))
    salt, expected = base64.b64decode(match.group(4)), base64.b64decode(match.group(5))
    try:
        digest = _scrypt(pin, salt, log2_n, r, p)
    except ValueError:  # parameters beyond MAX_MEMORY_BYTES: a hand-edited line, never one web-pin printed
        return False
    return hmac.compare_digest(digest, expected)


def _scrypt(pin: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(pin.encode(), salt=salt, n=2**log2_n, r=r, p=p, maxmem=MAX_MEMORY_BYTES, dklen=HASH_BYTES)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
