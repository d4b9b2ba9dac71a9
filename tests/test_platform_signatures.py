"""Signature checks one by one or on threads: the same answers, in the order asked."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from simulators.platform.keys import public_key_from_raw
from simulators.platform.signatures import SignatureCheck, ThreadedVerifier, verifies, verify_each

SIGNER = Ed25519PrivateKey.generate()
KEY = public_key_from_raw(SIGNER.public_key().public_bytes_raw())


def checks(count: int, bad: set[int]) -> list[SignatureCheck]:
    """`count` checks of distinct data; those at the indices in `bad` carry the signature of other data."""
    return [(SIGNER.sign(b"other" if index in bad else bytes([index])), bytes([index])) for index in range(count)]


def test_verifies_tells_a_good_signature_from_a_bad_one() -> None:
    """True for the key's signature of the data, False for anything else, never an exception."""
    good, wrong = checks(2, {1})
    assert verifies(KEY, *good)
    assert not verifies(KEY, *wrong)
    assert not verifies(public_key_from_raw(Ed25519PrivateKey.generate().public_key().public_bytes_raw()), *good)


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
@pytest.mark.parametrize("count", [0, 1, 2, 5, 17])
def test_threaded_answers_are_the_serial_ones_in_order(threads: int, count: int) -> None:
    """However the checks are split among threads, answer i is about check i."""
    given = checks(count, {index for index in range(count) if index % 3 == 1})
    with ThreadedVerifier(threads) as threaded:
        assert threaded(KEY, given) == verify_each(KEY, given) == [index % 3 != 1 for index in range(count)]


def test_one_verifier_serves_several_calls_at_once() -> None:
    """Calls from several threads share the pool and each gets its own answers."""
    batches = [checks(9, {index}) for index in range(6)]
    with ThreadedVerifier(2) as threaded, ThreadPoolExecutor(3) as callers:
        answers = list(callers.map(lambda batch: threaded(KEY, batch), batches))
    assert answers == [[position != index for position in range(9)] for index in range(6)]


def test_fewer_than_one_thread_is_refused() -> None:
    """The calling thread always takes part, so zero threads is a mistake, said at once."""
    with pytest.raises(ValueError, match="threads is 0, want at least 1"):
        ThreadedVerifier(0)
