"""The self-test's check of the uplink: the broker takes a connection with the configured TLS and credentials,
and in platform ack mode grants the subscription to the station's ack topic.

It connects under a client id of its own (the agent's id with `-selftest`) and a clean session, so that a
running agent's session is neither taken over nor left with the test's subscription.
"""

from __future__ import annotations

import contextlib
import queue
import ssl
import time
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from agent.contract.framing import Topics
from agent.tools.checks import Check, fail, ok
from agent.uplink.mqtt_client import tls_advice
from agent.uplink.settings import UplinkSection


def check_broker(uplink: UplinkSection, station: str, timeout_s: float) -> Iterator[Check]:
    """Connect as the agent would (TLS, credentials), under a client id of its own so that a running agent's
    session is not taken over; in platform ack mode, subscribe to the ack topic."""
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    protocol = MQTTProtocolVersion.MQTTv5 if uplink.protocol == "5" else MQTTProtocolVersion.MQTTv311
    client_id = f"{uplink.client_id or f'station-agent-{station}'}-selftest"
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    client.on_connect = lambda _c, _u, _f, reason, _p: events.put(("connect", reason))
    client.on_subscribe = lambda _c, _u, _m, reasons, _p: events.put(("subscribe", reasons))
    client.on_disconnect = lambda _c, _u, _f, reason, _p: events.put(("disconnect", reason))
    if uplink.username is not None:
        client.username_pw_set(uplink.username, uplink.password)
    tls = uplink.tls
    try:
        if tls is not None:
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        client.connect(uplink.host, uplink.port, keepalive=max(5, int(timeout_s) + 5))
    except (OSError, ssl.SSLError, ValueError) as exc:
        yield fail("broker", f"{uplink.broker}: {exc}", _broker_fix(uplink, exc))
        return
    client.loop_start()
    try:
        yield from _session_checks(client, events, uplink, station, timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()


def _broker_fix(uplink: UplinkSection, error: BaseException | None) -> str:
    advice = tls_advice(uplink.tls, error).removeprefix("; ")
    return advice or f"check uplink.broker ({uplink.broker}), the network and the firewall"


def _next(events: queue.Queue[tuple[str, Any]], deadline: float) -> tuple[str, Any]:
    with contextlib.suppress(queue.Empty):
        return events.get(timeout=max(0.0, deadline - time.monotonic()))
    return "timeout", None


def _session_checks(
    client: mqtt.Client, events: queue.Queue[tuple[str, Any]], uplink: UplinkSection, station: str, timeout_s: float
) -> Iterator[Check]:
    deadline = time.monotonic() + timeout_s
    kind, detail = _next(events, deadline)
    if kind == "timeout":
        yield fail("broker", f"{uplink.broker}: no CONNACK within {timeout_s:g} s", _broker_fix(uplink, TimeoutError()))
        return
    if kind == "disconnect":
        yield fail("broker", f"{uplink.broker}: hung up before CONNACK ({detail})", _broker_fix(uplink, None))
        return
    if detail.is_failure:
        yield fail(
            "broker",
            f"{uplink.broker}: refused the connection ({detail})",
            "check uplink.username and password, the device certificate, and the station's ACL on the broker",
        )
        return
    yield ok("broker", f"{uplink.broker}: connected ({'TLS' if uplink.tls else 'plain MQTT'})")
    if uplink.ack_mode != "platform":
        return
    ack_topic = Topics.for_station(uplink.prefix, station).ack
    client.subscribe(ack_topic, qos=1)
    kind, reasons = _next(events, time.monotonic() + timeout_s)
    if kind != "subscribe" or any(reason.is_failure for reason in reasons):
        yield fail(
            "platform acks",
            f"the broker did not grant the subscription to {ack_topic} ({reasons or kind})",
            "the platform's ACL must let this station read its ack topic",
        )
        return
    yield ok(
        "platform acks", f"subscribed to {ack_topic}; no test record is made (it would join the signed chain for good)"
    )
