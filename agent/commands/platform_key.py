"""The platform's public key as provisioned on the box: the only key whose commands the agent obeys."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.ledger.keys import kid_of


class PlatformKeyError(Exception):
    """The platform key file cannot be used; the message names it and the fix."""


def load_platform_key(path: Path) -> dict[str, Ed25519PublicKey]:
    """kid -> key, from a PEM (SubjectPublicKeyInfo) file; the kid is computed, never taken from a name."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise PlatformKeyError(
            f"platform key {path} cannot be read ({exc.strerror}); put the platform's public key there "
            "or set commands.platform_key"
        ) from exc
    except ValueError as exc:
        raise PlatformKeyError(f"platform key {path} is not a PEM public key ('-----BEGIN PUBLIC KEY-----')") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise PlatformKeyError(f"platform key {path} is a {type(key).__name__}; commands are signed with Ed25519")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {kid_of(raw): key}
