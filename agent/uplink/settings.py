"""The `[uplink]` section and its `[uplink.tls]`: the MQTT connection to the platform and how acks count.

Kept apart from the session so that the config can name it without importing paho-mqtt and threads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from drivers.schema import TCP_PORT_AFTER_COLON, Ge, Gt, Le, Matches, doc, settings

Broker = Annotated[
    str,
    Matches("HOST:PORT, e.g. '127.0.0.1:1883'", r"[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}"),
    TCP_PORT_AFTER_COLON,
]
TopicPrefix = Annotated[
    str,
    Matches(
        "topic levels such as 'fsm/v1': no '#', '+', spaces or NUL, no empty level ('//'), no leading or "
        "trailing '/', and no leading '$' (reserved for the broker, e.g. '$SYS')",
        r"[^$#+/\s\x00][^#+/\s\x00]*(/[^#+/\s\x00]+)*",
    ),
]
ClientId = Annotated[
    str,
    Matches(
        "1-64 letters, digits, '_', '.', ':', '-' (the MQTT standard promises 1-23 of letters and digits; "
        "most brokers take more), e.g. 'station-agent-ST-1'",
        r"[A-Za-z0-9_.:-]{1,64}",
    ),
]


@settings
class TlsSection:
    ca_file: Path | None = doc("the CA bundle that signed the broker's certificate", default=None)
    cert_file: Path | None = doc("the device certificate for mutual TLS", default=None)
    key_file: Path | None = doc("the private key of cert_file", default=None)

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            missing = "key_file" if self.key_file is None else "cert_file"
            raise ValueError(f"mutual TLS needs both cert_file and key_file; {missing} is missing")


@settings
class UplinkSection:
    broker: Broker = doc("the MQTT broker as HOST:PORT")
    prefix: TopicPrefix = doc("the topic prefix", default="fsm/v1")
    protocol: Literal["5", "3.1.1"] = doc("the MQTT protocol version: '5' or '3.1.1'", default="5")
    client_id: ClientId | None = doc("the MQTT client id (default station-agent-{station id})", default=None)
    username: str | None = doc("the MQTT user name, if the broker wants one", default=None)
    password: str | None = doc("the MQTT password, if the broker wants one", default=None)
    keepalive_s: Annotated[int, Ge(5), Le(3600)] = doc("MQTT keep-alive in seconds (5..3600)", default=30)
    ack_mode: Literal["platform", "broker"] = doc(
        "'platform': a record is done when the platform acks it on the ack topic; "
        "'broker': when the broker's PUBACK arrives",
        default="platform",
    )
    ack_timeout_s: Annotated[float, Ge(1), Le(3600)] = doc(
        "re-send from the last acked record after this long (1..3600 s: shorter than a round trip to the "
        "platform would re-send the backlog over and over)",
        default=30.0,
    )
    max_message_bytes: Annotated[int, Ge(4096), Le(256 * 1024**2)] = doc(
        "the largest records message, in bytes", default=64 * 1024
    )
    max_ack_bytes: Annotated[int, Ge(64), Le(64 * 1024)] = doc(
        "the largest ack message taken from the platform, in bytes; a larger one is dropped unread", default=1024
    )
    max_records_per_message: Annotated[int, Ge(1), Le(10_000)] = doc("the most records in one message", default=500)
    max_inflight_messages: Annotated[int, Ge(1), Le(1000)] = doc(
        "messages sent and not yet acknowledged by the broker", default=8
    )
    reconnect_min_s: Annotated[float, Gt(0), Le(600)] = doc("the first reconnect backoff, in seconds", default=1.0)
    reconnect_max_s: Annotated[float, Gt(0), Le(3600)] = doc("the longest reconnect backoff, in seconds", default=120.0)
    tls: TlsSection | None = doc("TLS to the broker; leave out for plain MQTT", default=None)

    def __post_init__(self) -> None:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")

    @property
    def host(self) -> str:
        return self.broker.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.broker.rsplit(":", 1)[1])
