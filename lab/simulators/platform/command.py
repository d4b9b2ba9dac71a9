"""The platform's side of signed commands: a platform key, a signed envelope, and a client that sends one
command and waits for its reply. `station-sim command` is the reference the platform team builds against.

An envelope is `{"id", "cmd", "args", "issued", "expires", "station", "kid", "sig"}`: `sig` is the Ed25519
signature, standard base64 with padding, over the RFC 8785 bytes of the other seven keys; `kid` names the
platform key as the contract names station keys (first 8 bytes of SHA-256 of the raw key, hex). The station
answers on `{prefix}/{station}/cmd/reply` with `{"id", "ok", "result"}` or `{"id", "ok": false, "error"}`.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import paho.mqtt.client as mqtt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from simulators.platform.canonical import canonical_bytes
from simulators.platform.contract import DEFAULT_PREFIX
from simulators.platform.keys import ed25519_key_id

Json = dict[str, Any]
DEFAULT_TTL_S: Final = 60


class CommandError(RuntimeError):
    """A command could not be sent or answered; the message says what and what to check."""


def make_platform_key(path: Path) -> Path:
    """A new platform key: the private key at `path` (mode 0600, never overwritten) and its public key, which
    goes on every station (commands.platform_key), at `path` + `.pub`. Returns the public key's path."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as error:
        raise CommandError(f"{path} exists; a platform key is never overwritten, choose another path") from error
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private)
    public = path.with_name(path.name + ".pub")
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return public


def load_platform_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as error:
        raise CommandError(f"cannot read platform key {path}: {error.strerror}") from error
    except ValueError as error:
        raise CommandError(f"{path} is not an unencrypted PEM private key") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise CommandError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def utc_ms(ts_ms: int) -> str:
    """RFC 3339 UTC with milliseconds, as the contract writes every time."""
    seconds, millis = divmod(ts_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def sign_command(
    key: Ed25519PrivateKey,
    station: str,
    cmd: str,
    args: Json | None = None,
    *,
    command_id: str | None = None,
    issued_ms: int | None = None,
    ttl_s: float = DEFAULT_TTL_S,
) -> Json:
    """A signed envelope (a dict; `json.dumps` it to send). Defaults: a fresh UUID id, issued now."""
    issued = int(time.time() * 1000) if issued_ms is None else issued_ms
    envelope: Json = {
        "id": command_id or str(uuid.uuid4()),
        "cmd": cmd,
        "args": args or {},
        "issued": utc_ms(issued),
        "expires": utc_ms(issued + int(ttl_s * 1000)),
        "station": station,
        "kid": ed25519_key_id(key.public_key().public_bytes_raw()),
    }
    envelope["sig"] = base64.b64encode(key.sign(canonical_bytes(envelope))).decode("ascii")
    return envelope


@dataclass(frozen=True, slots=True)
class CommandTopics:
    cmd: str
    reply: str

    @classmethod
    def of(cls, station: str, prefix: str = DEFAULT_PREFIX) -> CommandTopics:
        return cls(f"{prefix}/{station}/cmd", f"{prefix}/{station}/cmd/reply")


class CommandClient:
    """Publishes commands to one station and collects its replies by id; safe to use from one thread."""

    def __init__(self, host: str, port: int, station: str, prefix: str = DEFAULT_PREFIX) -> None:
        self._topics = CommandTopics.of(station, prefix)
        self._replies: dict[str, Json] = {}
        self._arrived = threading.Condition()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"station-sim-command-{uuid.uuid4().hex[:8]}")
        self._client.on_connect = lambda client, *_: client.subscribe(self._topics.reply, qos=1)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message
        try:
            self._client.connect(host, port)
        except OSError as error:
            raise CommandError(
                f"no MQTT broker at {host}:{port} ({error}); give the right --broker HOST:PORT"
            ) from error
        self._client.loop_start()
        if not self._subscribed.wait(10):
            self.close()
            raise CommandError(f"the broker at {host}:{port} did not take the subscription to {self._topics.reply}")

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            reply = json.loads(message.payload)
        except ValueError:
            return
        if isinstance(reply, dict):
            with self._arrived:
                self._replies[str(reply.get("id"))] = reply
                self._arrived.notify_all()

    def publish(self, payload: bytes) -> None:
        """Send raw bytes on the command topic (QoS 1), signed or not: for tests of what a station refuses."""
        self._client.publish(self._topics.cmd, payload, qos=1).wait_for_publish(10)

    def reply(self, command_id: str | None, timeout_s: float) -> Json:
        """The reply to `command_id` (None: to a message whose id the station could not read)."""
        deadline = time.monotonic() + timeout_s
        with self._arrived:
            while str(command_id) not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CommandError(f"no reply to command {command_id} within {timeout_s:g} s; is the agent online?")
                self._arrived.wait(left)
            return self._replies.pop(str(command_id))

    def send(self, envelope: Json, timeout_s: float = 10.0) -> Json:
        """Publish a signed envelope and wait for its reply."""
        self.publish(json.dumps(envelope).encode())
        return self.reply(envelope.get("id"), timeout_s)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
