"""SM4 encryption of an HJ 212-2025 data area (CP), as the standard's §6.4 and Appendix A.2 show it.

Theory of operation: the text between `CP=&&` and the closing `&&` is cut into 16-byte groups; every whole
group is encrypted with SM4 (GB/T 32907-2016, 128-bit key) in ECB mode without padding, and a tail shorter
than 16 bytes stays as it is, in plain text. On the wire the ciphertext is written as the standard prints it,
`{0xE4,0x3E,...,0x41}` (upper-case hex bytes, comma-separated, in braces), followed by the plain tail:
`CP=&&{0xE4,...,0xA4}g=N&&`. A data area shorter than 16 bytes therefore goes out as it is.

Nothing in Flag says a frame is encrypted (the standard's examples use Flag 8 to 11 either way): a data
area that opens with `{0x` is the sign. What the length field and the CRC are taken over is a question the
standard's examples answer one way (the plain data segment) and a literal reading of its Table 2 another
(the segment as sent), so `frame.SealRules` makes both a setting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from drivers.hj212.errors import Hj212CipherError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

KEY_BYTES = 16
BLOCK_BYTES = 16
_OPEN, _CLOSE = b"{", b"}"
_BYTE = re.compile(rb"0[xX][0-9A-Fa-f]{2}")


@dataclass(frozen=True, slots=True, repr=False)
class Sm4Key:
    """A 128-bit SM4 key. Its repr never shows the key."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise ValueError(f"an SM4 key is {KEY_BYTES} bytes (128 bits), not {len(self.secret)}")

    @classmethod
    def from_hex(cls, text: str) -> Sm4Key:
        """A key from 32 hex digits (surrounding white space ignored); ValueError says what is wrong."""
        digits = text.strip()
        if len(digits) != 2 * KEY_BYTES or not all(c in "0123456789abcdefABCDEF" for c in digits):
            raise ValueError(
                f"an SM4 key is written as {2 * KEY_BYTES} hex digits (128 bits); found {len(digits)} characters"
                + ("" if len(digits) != 2 * KEY_BYTES else " that are not all hex digits")
            )
        return cls(bytes.fromhex(digits))

    def __repr__(self) -> str:
        return "Sm4Key(<hidden>)"


def encrypt_blocks(plain: bytes, key: Sm4Key) -> bytes:
    """SM4-ECB of whole 16-byte blocks; ValueError for a length that is not a multiple of 16."""
    if len(plain) % BLOCK_BYTES:
        raise ValueError(f"SM4 without padding takes whole {BLOCK_BYTES}-byte blocks, not {len(plain)} bytes")
    encryptor = _ecb(key).encryptor()
    return encryptor.update(plain) + encryptor.finalize()


def decrypt_blocks(cipher: bytes, key: Sm4Key) -> bytes:
    if len(cipher) % BLOCK_BYTES:
        raise ValueError(f"SM4 without padding takes whole {BLOCK_BYTES}-byte blocks, not {len(cipher)} bytes")
    decryptor = _ecb(key).decryptor()
    return decryptor.update(cipher) + decryptor.finalize()


def _ecb(key: Sm4Key) -> Cipher[modes.ECB]:
    """SM4-ECB from `cryptography`, imported at the first use: `cryptography` brings an OpenSSL of its own (about
    10 MB resident), which a station pays for only when its HJ 212 uplink encrypts (docs/design.md, "Memory")."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: PLC0415 - see above

    return Cipher(algorithms.SM4(key.secret), modes.ECB())


def encrypt_cp(plain: bytes, key: Sm4Key) -> bytes:
    """The data area as sent: whole blocks encrypted and written `{0x..,...}`, the short tail left plain."""
    whole = len(plain) - len(plain) % BLOCK_BYTES
    if not whole:
        return plain
    cipher = encrypt_blocks(plain[:whole], key)
    return _OPEN + b",".join(b"0x%02X" % byte for byte in cipher) + _CLOSE + plain[whole:]


def is_encrypted_cp(wire: bytes) -> bool:
    """Whether a data area as received is written the encrypted way (opens with `{0x`)."""
    return wire[:3].lower() == b"{0x"


def decrypt_cp(wire: bytes, key: Sm4Key) -> bytes:
    """The plain data area from one as sent; Hj212CipherError names what is malformed.

    A data area that does not open with `{` was sent plain and is returned as it is."""
    if not wire.startswith(_OPEN):
        return wire
    close = wire.find(_CLOSE)
    if close < 0:
        raise Hj212CipherError(f"encrypted data area {wire[:24]!r}... has no closing '}}'")
    items = wire[1:close].split(b",")
    if not all(_BYTE.fullmatch(item) for item in items):
        bad = next(item for item in items if not _BYTE.fullmatch(item))
        raise Hj212CipherError(f"encrypted data area holds {bad[:8]!r}, not a byte written 0xNN")
    cipher = bytes(int(item[2:], 16) for item in items)
    if len(cipher) % BLOCK_BYTES:
        raise Hj212CipherError(
            f"encrypted data area holds {len(cipher)} bytes, not whole {BLOCK_BYTES}-byte SM4 blocks"
        )
    tail = wire[close + 1 :]
    if len(tail) >= BLOCK_BYTES:
        raise Hj212CipherError(f"{len(tail)} plain bytes follow the ciphertext; the standard leaves fewer than 16")
    return decrypt_blocks(cipher, key) + tail


def must_encrypt(cn: str) -> bool:
    """Whether HJ 212-2025 §6.4.4 wants a command's data area encrypted: the data uploads (CN 2000-2999), the
    key exchange (1014) and the site-device information (3020)."""
    return (cn.isdigit() and 2000 <= int(cn) <= 2999) or cn in {"1014", "3020"}
