"""The paho client the uplink uses for one connection: how it is made, how it sends CONNECT, what a failed
TLS connect means.

A fresh client per connection keeps paho from re-sending on its own behind the delivery core's back
(agent.uplink.delivery re-sends everything unacknowledged itself). Its last will says offline on the retained
status topic; its in-flight window holds the records' messages, two status messages and the replies' slot; its
own queue is capped. On MQTT 5 the CONNECT asks for a persistent session and tells the broker the largest packet
this client takes (Maximum Packet Size), so a broker that honours it (Mosquitto does) drops a larger ack or
command instead of sending it.
"""

from __future__ import annotations

import ssl
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.contract.framing import status_payload
from agent.uplink.delivery import REPLY_SLOTS
from agent.uplink.settings import TlsSection, UplinkSection

SESSION_EXPIRY_S = 7 * 86_400
MAX_QUEUED_MESSAGES = 256
"""paho's own queue, behind its in-flight window: only a resend command's burst ever waits there."""
INBOUND_OVERHEAD_BYTES = 1024
"""Room for the topic and properties around the largest payload, for MQTT 5's Maximum Packet Size."""
STATUS_SLOTS = 2
"""paho in-flight slots for the status messages, on top of the records' and the replies'."""


def tls_advice(tls: TlsSection | None, error: BaseException | None) -> str:
    """The setting to check after a failed TLS connect, since OpenSSL's words do not name one; "" if none fits.

    `error` is what connect raised, or None when the broker closed the session before CONNACK. Under TLS 1.3 a
    broker that demands a client certificate completes the handshake and only then hangs up, so without
    cert_file that close (an EOF, or the alert if it arrives first) is the sign of a missing device certificate.
    """
    if tls is None:
        return ""
    if isinstance(error, ssl.SSLCertVerificationError):
        ca = tls.ca_file or "the system CA store"
        return (
            f"; check that uplink.tls.ca_file ({ca}) holds the CA that signed the broker's certificate"
            " and that the certificate names the host in uplink.broker"
        )
    hung_up = error is None or isinstance(error, ssl.SSLEOFError) or "CERTIFICATE_REQUIRED" in str(error)
    if tls.cert_file is None and hung_up:
        return "; a broker that requires a client certificate does this: set uplink.tls.cert_file and key_file"
    return ""


def new_client(settings: UplinkSection, client_id: str, status_topic: str) -> mqtt.Client:
    """A client for one connection, its callbacks still to be set."""
    protocol = MQTTProtocolVersion.MQTTv5 if settings.protocol == "5" else MQTTProtocolVersion.MQTTv311
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=None if protocol == MQTTProtocolVersion.MQTTv5 else False,
        protocol=protocol,
        reconnect_on_failure=False,
    )
    client.max_inflight_messages_set(settings.max_inflight_messages + STATUS_SLOTS + REPLY_SLOTS)
    client.max_queued_messages_set(MAX_QUEUED_MESSAGES)
    client.will_set(
        status_topic,
        status_payload("offline", reason="connection_lost", client_id=client_id),
        qos=1,
        retain=True,
    )
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls is not None:
        client.tls_set(
            ca_certs=str(settings.tls.ca_file) if settings.tls.ca_file else None,
            certfile=str(settings.tls.cert_file) if settings.tls.cert_file else None,
            keyfile=str(settings.tls.key_file) if settings.tls.key_file else None,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    return client


def send_connect(client: mqtt.Client, settings: UplinkSection, max_inbound_payload_bytes: int) -> None:
    """Open the connection and send CONNECT (the answer comes on paho's thread); raises what the socket or TLS
    raised. `max_inbound_payload_bytes`: the largest ack or command this client takes."""
    if settings.protocol != "5":
        client.connect(settings.host, settings.port, settings.keepalive_s)
        return
    properties: Any = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = SESSION_EXPIRY_S
    properties.MaximumPacketSize = max_inbound_payload_bytes + INBOUND_OVERHEAD_BYTES
    client.connect(settings.host, settings.port, settings.keepalive_s, clean_start=False, properties=properties)
