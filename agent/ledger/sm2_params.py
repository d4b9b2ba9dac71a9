"""SM2's fixed values that the suite and key code need without loading the libcrypto binding (agent.ledger.sm2):
an Ed25519 station never loads ctypes and the binding, and still knows an SM2 key when it sees one."""

from __future__ import annotations

from typing import Final

DEFAULT_ID: Final = b"1234567812345678"
"""The distinguishing ID that GB/T 35276 (GM/T 0009) sets when the parties have agreed no other."""
POINT_BYTES: Final = 65
"""An uncompressed public point: 0x04, then x and y, 32 bytes each."""
SPKI_PREFIX: Final = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200")
"""DER of a SubjectPublicKeyInfo up to its point: id-ecPublicKey, the curve sm2p256v1 (1.2.156.10197.1.301), a
66-byte BIT STRING. Every SM2 public key has exactly this head, so a point and its SPKI convert by concatenation."""
