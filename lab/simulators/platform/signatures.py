"""Signature checks of a message's records (Ed25519 or SM2): one by one, or side by side on threads.

Verification is most of what the receiver spends on a record: one verification costs more than parsing,
checking, canonicalising and storing the record together. The bindings (libsodium for Ed25519, OpenSSL for SM2,
both through ctypes) release the GIL while they verify, so threads verify side by side on as many cores as are
free (on a 2-core box, two threads get through 1.6 to 1.9 times as many as one). The checks of one call are
split into a slice per thread rather than interleaved with other work, because a thread that leaves the library
while another runs Python waits for the GIL for up to the interpreter's switch interval. Either way every
signature is checked on its own, with the message's key, over its record's canonical bytes: threads change
when the checks run, not what they are.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

from cryptography.exceptions import InvalidSignature

from simulators.platform.keys import StationPublicKey

SignatureCheck = tuple[bytes, bytes]
"""(signature, signed bytes): one record's check."""

Verifier = Callable[[StationPublicKey, Sequence[SignatureCheck]], list[bool]]
"""Whether each check verifies with the key, in the order given."""


def verifies(key: StationPublicKey, signature: bytes, data: bytes) -> bool:
    """Whether `signature` is `key`'s signature of `data` (Ed25519, or SM2 with SM3 and the key's ID)."""
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def verify_each(key: StationPublicKey, checks: Sequence[SignatureCheck]) -> list[bool]:
    """The checks one after the other, in the calling thread: the Verifier for one-off and sequential work."""
    return [verifies(key, signature, data) for signature, data in checks]


class PendingChecks:
    """Signature checks started on a ThreadedVerifier's threads; `results()` waits for them."""

    __slots__ = ("_parts",)

    def __init__(self, parts: list[Future[list[bool]]]) -> None:
        self._parts = parts

    def results(self) -> list[bool]:
        """Whether each check verified, in the order given; waits until every part is done."""
        return [verified for part in self._parts for verified in part.result()]


class ThreadedVerifier:
    """A Verifier that splits the checks of one call into a slice per thread, the caller's thread included;
    or, with `start`, into a slice per thread of its own while the caller goes on.

    One thread (the default on a single core) means no pool at all: everything is checked in the caller's
    thread. A call returns once every slice is done, so nothing is checked after it returns. Several callers
    may share one instance.
    """

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads if threads is not None else os.cpu_count() or 1
        if self.threads < 1:
            raise ValueError(f"threads is {self.threads}, want at least 1 (the calling thread)")
        self._pool = (
            ThreadPoolExecutor(self.threads, thread_name_prefix="platform-verify") if self.threads > 1 else None
        )

    def __call__(self, key: StationPublicKey, checks: Sequence[SignatureCheck]) -> list[bool]:
        if self._pool is None or len(checks) < 2:
            return verify_each(key, checks)
        slices = self._slices(checks)
        others = [self._pool.submit(verify_each, key, part) for part in slices[1:]]
        results = verify_each(key, slices[0])
        for other in others:
            results.extend(other.result())
        return results

    def start(self, key: StationPublicKey, checks: Sequence[SignatureCheck]) -> PendingChecks:
        """The checks started on the pool's threads (made here and now without a pool)."""
        if self._pool is None:
            done: Future[list[bool]] = Future()
            done.set_result(verify_each(key, checks))
            return PendingChecks([done])
        return PendingChecks([self._pool.submit(verify_each, key, part) for part in self._slices(checks)])

    def _slices(self, checks: Sequence[SignatureCheck]) -> list[Sequence[SignatureCheck]]:
        size = max(1, -(-len(checks) // self.threads))
        return [checks[start : start + size] for start in range(0, len(checks), size)]

    def close(self) -> None:
        """Stop the pool's threads, once the calls in progress are done."""
        if self._pool is not None:
            self._pool.shutdown()

    def __enter__(self) -> ThreadedVerifier:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
