"""The signing suites side by side: signatures made and checked per second, and the chain hash per record, for
Ed25519 (with SHA-256) and SM2 (with SM3), on the same records.

Signing is the agent's (agent.ledger.keys, the key a station signs with); checking is the reference receiver's
(simulators.platform, what a platform does once per record), one thread, then as many threads as cores, as the
receiver verifies a message. Both suites sign the records' canonical bytes of one transaction burst.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from agent.contract.records import RecordIntent
from agent.ledger.suites import Suite, digest_hex
from bench import parts
from bench.report import Target
from bench.scale import Scale
from bench.workload import new_key, sealed, transactions
from simulators.platform.keys import public_key_from_pem
from simulators.platform.signatures import ThreadedVerifier

SAMPLE = 2_000
"""Records per suite: SM2 checks about a thousand a second here, so this keeps the figure to seconds."""


@dataclass(frozen=True, slots=True)
class SuiteRates:
    suite: str
    signatures_per_s: float
    verifications_per_s: float
    verifications_per_s_threaded: float
    threads: int
    chain_hash_us: float


@dataclass(frozen=True, slots=True)
class SuitesFigure:
    records: int
    record_bytes_mean: float
    suites: tuple[SuiteRates, ...]
    sm2_to_ed25519_sign: float
    sm2_to_ed25519_verify: float

    def targets(self) -> tuple[Target, ...]:
        return ()


def run(scale: Scale, workdir: Path) -> SuitesFigure:
    del workdir  # nothing is written: the parts are timed in memory
    intents = transactions(min(SAMPLE, scale.ledger_records), time.time_ns() // 1_000_000)
    rates = tuple(_rates(suite, intents) for suite in Suite)
    by_suite = {rate.suite: rate for rate in rates}
    ed25519, sm2 = by_suite[Suite.ED25519], by_suite[Suite.SM2]
    canonical = sealed(intents, new_key())
    return SuitesFigure(
        records=len(intents),
        record_bytes_mean=sum(len(record.canonical) for record in canonical) / len(canonical),
        suites=rates,
        sm2_to_ed25519_sign=sm2.signatures_per_s / ed25519.signatures_per_s,
        sm2_to_ed25519_verify=sm2.verifications_per_s / ed25519.verifications_per_s,
    )


def _rates(suite: Suite, intents: list[RecordIntent]) -> SuiteRates:
    key = new_key(suite)
    records = sealed(intents, key)
    sign_us = parts.sign_us(key, records)
    verify_us = parts.verify_us(key, records)
    public = public_key_from_pem(key.public_pem().encode())
    checks = [(record.sig, record.canonical) for record in records]
    threads = os.cpu_count() or 1

    def hash_all() -> None:
        for record in records:
            digest_hex(suite, record.canonical)

    with ThreadedVerifier(threads) as verifier:

        def verify_all() -> None:
            verifier(public, checks)

        threaded_us = parts.best_us_each(verify_all, len(checks))
    hash_us = parts.best_us_each(hash_all, len(records))
    return SuiteRates(
        suite=str(suite),
        signatures_per_s=1e6 / sign_us,
        verifications_per_s=1e6 / verify_us,
        verifications_per_s_threaded=1e6 / threaded_us,
        threads=threads,
        chain_hash_us=hash_us,
    )
