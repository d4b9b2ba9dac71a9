"""The platform's public key as provisioned on the box: the only key whose commands the agent obeys."""

from __future__ import annotations

from pathlib import Path

from agent.ledger.suites import PublicKey, PublicKeyError


class PlatformKeyError(Exception):
    """The platform key file cannot be used; the message names it and the fix."""


def load_platform_key(path: Path) -> dict[str, PublicKey]:
    """kid -> key, from a PEM (SubjectPublicKeyInfo) file of either suite, Ed25519 or SM2 (which then verifies
    with the default distinguishing ID); the kid is computed, never taken from a name."""
    try:
        key = PublicKey.from_pem(path.read_bytes())
    except OSError as exc:
        raise PlatformKeyError(
            f"platform key {path} cannot be read ({exc.strerror}); put the platform's public key there "
            "or set commands.platform_key"
        ) from exc
    except PublicKeyError as exc:
        raise PlatformKeyError(
            f"platform key {path} cannot be used: {exc}; commands are signed with Ed25519 or SM2, "
            "give that key as PEM ('-----BEGIN PUBLIC KEY-----')"
        ) from exc
    return {key.kid: key}
