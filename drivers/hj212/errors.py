"""One error type per way an HJ 212 frame can be wrong, because a platform answers each differently and the
reference receiver counts them apart. Each message names the part, the value found and what was expected."""

from __future__ import annotations


class Hj212Error(ValueError):
    """A frame or data segment that is not valid HJ 212; catch this to treat every kind alike."""

    reason = "malformed"
    """The word the reference receiver counts this kind under."""


class Hj212CrcError(Hj212Error):
    """The frame is whole but its CRC does not match its data segment: corrupted on the way."""

    reason = "bad_crc"


class Hj212LengthError(Hj212Error):
    """The length field does not match the data segment, or is beyond what the standard allows."""

    reason = "bad_length"


class Hj212FrameError(Hj212Error):
    """The envelope or the data segment is malformed: a missing field, a bad Flag, an unreadable CP."""


class Hj212CipherError(Hj212Error):
    """An encrypted data area that cannot be read: malformed ciphertext, or no key to read it with."""

    reason = "bad_cipher"
