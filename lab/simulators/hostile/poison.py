"""Poisoned payloads for the platform's channels to a station (ack and cmd), and a way to publish them.

Each entry of `CATALOGUE` is a payload a careless or hostile platform, a misconfigured bridge or an attacker
with publish rights could put on `{prefix}/{station}/ack` or `.../cmd`. A station must refuse every one without
losing a record, a thread or its memory; a retained one must be seen once per start at most, never end it.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

DEFAULT_OVERSIZED_BYTES = 36 * 1024 * 1024
"""The size of the `oversized` payload: a command that once took a station from 46 MB to 624 MB of memory."""


@dataclass(frozen=True, slots=True)
class Poison:
    name: str
    what: str
    make: Callable[[int], bytes]
    """The payload, given the size asked for (used by `oversized` only)."""


def _oversized(size: int) -> bytes:
    head, tail = b'{"upto": 1, "pad": "', b'"}'
    return head + b"x" * max(0, size - len(head) - len(tail)) + tail


CATALOGUE: dict[str, Poison] = {
    poison.name: poison
    for poison in (
        Poison("huge-int", "an ack whose upto has 5,000 digits", lambda _: b'{"upto": 1' + b"0" * 5000 + b"}"),
        Poison("deep", "100,000 opening brackets", lambda _: b"[" * 100_000),
        Poison("deep-object", "objects nested 10,000 deep", lambda _: b'{"a":' * 10_000 + b"1" + b"}" * 10_000),
        Poison("oversized", "a JSON object of --size bytes (36 MB by default)", _oversized),
        Poison("not-json", "random bytes", lambda _: random.Random(212).randbytes(256)),
        Poison("not-utf8", "invalid UTF-8 inside a string", lambda _: b'{"upto": "\xff\xfe"}'),
        Poison("wrong-type", "upto as a string", lambda _: b'{"upto": "12"}'),
        Poison("negative", "a negative upto", lambda _: b'{"upto": -5}'),
        Poison("float", "upto as a float beyond any integer", lambda _: b'{"upto": 1e400}'),
        Poison("nan", "upto as NaN (not JSON, but Python's json reads it)", lambda _: b'{"upto": NaN}'),
        Poison("bool", "upto as true", lambda _: b'{"upto": true}'),
        Poison("array", "a list instead of an object", lambda _: b"[1, 2, 3]"),
        Poison("empty", "an empty payload (on a retained topic: clears the retained message)", lambda _: b""),
        Poison(
            "unsigned-cmd",
            "a command without a signature that asks for a reply id of its own choosing",
            lambda _: b'{"id": "chosen-by-attacker", "cmd": "ping", "args": {}}',
        ),
        Poison(
            "forged-future-ack",
            "an ack beyond anything the station has made",
            lambda _: b'{"upto": 9007199254740991}',
        ),
    )
}


class PoisonError(RuntimeError):
    """The poison could not be published; the message says why."""


def publish(host: str, port: int, topic: str, payload: bytes, *, retain: bool = False, timeout_s: float = 30.0) -> None:
    """Publish `payload` on `topic` at QoS 1 and wait for the broker's PUBACK."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"station-sim-poison-{random.getrandbits(32):08x}")
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    try:
        client.connect(host, port)
    except OSError as error:
        raise PoisonError(f"no MQTT broker at {host}:{port} ({error}); give the right --broker HOST:PORT") from error
    client.loop_start()
    try:
        if not connected.wait(timeout_s):
            raise PoisonError(f"the broker at {host}:{port} did not accept the connection within {timeout_s:g} s")
        info = client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout_s)
        if not info.is_published():
            raise PoisonError(f"the broker at {host}:{port} did not confirm the publish on {topic} (too large?)")
    finally:
        client.disconnect()
        client.loop_stop()
