"""The reference platform receiver: what a city platform does with station records, and the proof it can.

It knows only the platform contract (version 1) and each station's public key, and with those it checks
everything it receives: every signature, every chain link, every seq from 1 up. Suppliers run it in CI
(`station-sim platform`, `station-sim platform-audit`) and the demo and tests use the Python API:

    config = ReceiverConfig(host, port, db_path, keys=keyring([StationKey("ST-0001", public_key)]))
    with PlatformReceiver(config) as receiver:
        ...
    assert receiver.report().ok

Modules, one job each: `contract` (the page's fixed words), `keys` (station keys and kids), `canonical`
(RFC 8785 bytes), `signatures` (Ed25519 and SM2 checks, on threads if wanted), `sm2` (SM2 through libcrypto),
`verify` (pure checks), `store` (SQLite), `receiver` (MQTT), `report` (what is said and when it is ok), `audit`
(re-check a database), `cli`.
"""

from simulators.platform.audit import audit
from simulators.platform.keys import StationKey, StationKeyError, key_id, keyring, load_public_key
from simulators.platform.receiver import PlatformReceiver, ReceiverConfig, ReceiverError
from simulators.platform.report import PlatformReport, StationReport
from simulators.platform.store import StoreError

__all__ = [
    "PlatformReceiver",
    "PlatformReport",
    "ReceiverConfig",
    "ReceiverError",
    "StationKey",
    "StationKeyError",
    "StationReport",
    "StoreError",
    "audit",
    "key_id",
    "keyring",
    "load_public_key",
]
