"""The uplink over TLS against a real Mosquitto: server-authenticated, mutual, and the ways it must fail.

Each test makes its own throw-away CA and certificates in tmp_path (`simulators.certificates`) and its own TLS
broker (`simulators.broker.BrokerTls`), so no key is ever committed and no test leans on another's broker.
A refused connection must leave every record in the outbox: the tests check that a correct uplink then
delivers them all.
"""

from __future__ import annotations

import ipaddress
import json
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from support.uplink_station import UplinkStation, uplink_station
from support.waiting import wait_until

from agent.config import ConfigError
from agent.config_validation import load_config
from agent.uplink.session import Uplink
from agent.uplink.settings import TlsSection, UplinkSection
from agent.uplink.uplink_status import UplinkStatus
from simulators.broker import BrokerTls, MosquittoBroker
from simulators.certificates import CertificateFiles, Pki, issue_certificate, make_ca, make_pki

STATION = "S1"
RECORDS_TOPIC = f"fsm/v1/{STATION}/records"
COUNT = 5
DEADLINE_S = 8.0


class RecordsListener:
    """A TLS subscriber on the records topic, standing in for the platform: it keeps every seq it receives."""

    def __init__(self, broker: MosquittoBroker, ca: CertificateFiles, client: CertificateFiles | None) -> None:
        self._broker = broker
        self._lock = threading.Lock()
        self._seqs: list[int] = []
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="platform-listener", protocol=MQTTProtocolVersion.MQTTv5
        )
        self._client.tls_set(
            ca_certs=str(ca.cert_file),
            certfile=str(client.cert_file) if client else None,
            keyfile=str(client.key_file) if client else None,
        )
        self._client.on_connect = lambda c, _u, _f, _r, _p: c.subscribe(RECORDS_TOPIC, qos=1)
        self._client.on_subscribe = lambda _c, _u, _m, _r, _p: self._subscribed.set()
        self._client.on_message = self._on_message

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        seqs = [item["record"]["seq"] for item in json.loads(message.payload)["records"]]
        with self._lock:
            self._seqs.extend(seqs)

    @property
    def seqs(self) -> list[int]:
        with self._lock:
            return sorted(set(self._seqs))

    def __enter__(self) -> RecordsListener:
        self._client.connect(self._broker.host, self._broker.port)
        self._client.loop_start()
        if not self._subscribed.wait(DEADLINE_S):
            raise AssertionError(f"listener not subscribed on {self._broker.address}; see {self._broker.log_path}")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki", STATION)


@pytest.fixture
def station(tmp_path: Path) -> Iterator[UplinkStation]:
    with uplink_station(tmp_path, STATION, outbox_bytes=256 * 1024**2, deadline_s=DEADLINE_S) as running:
        yield running


@contextmanager
def tls_broker(directory: Path, server: Pki, *, mutual: bool) -> Iterator[MosquittoBroker]:
    tls = BrokerTls(server.ca.cert_file, server.server.cert_file, server.server.key_file, require_certificate=mutual)
    with MosquittoBroker(directory, tls=tls) as broker:
        yield broker


def settings(broker: MosquittoBroker, tls: TlsSection) -> UplinkSection:
    return UplinkSection(broker=broker.address, ack_mode="broker", reconnect_min_s=0.05, reconnect_max_s=0.2, tls=tls)


def refused(uplink: Uplink, words: str) -> UplinkStatus:
    """Wait until the uplink's last error contains `words`, then return its status at that moment."""
    wait_until(lambda: words in (uplink.status().last_error or ""), DEADLINE_S, f"an uplink error naming {words!r}")
    return uplink.status()


class TestServerAuthenticated:
    def test_records_go_out_over_tls_and_are_acked(self, tmp_path: Path, pki: Pki, station: UplinkStation) -> None:
        """With the broker's CA in ca_file, records sent before and after going online all arrive and are acked."""
        station.record(COUNT)
        with (
            tls_broker(tmp_path / "broker", pki, mutual=False) as broker,
            RecordsListener(broker, pki.ca, client=None) as listener,
        ):
            uplink = station.uplink(settings(broker, TlsSection(ca_file=pki.ca.cert_file)))
            wait_until(lambda: uplink.status().state == "online", DEADLINE_S, "uplink online")
            station.record(COUNT)
            wait_until(lambda: uplink.status().acked_upto == 2 * COUNT, DEADLINE_S, f"acked_upto {2 * COUNT}")
            wait_until(lambda: len(listener.seqs) == 2 * COUNT, DEADLINE_S, "the listener has every record")
            uplink.stop()
        assert listener.seqs == list(range(1, 2 * COUNT + 1))
        assert station.recorder.status().acked_upto == 2 * COUNT

    def test_a_broker_signed_by_another_ca_is_refused(self, tmp_path: Path, pki: Pki, station: UplinkStation) -> None:
        """A broker certificate from a CA other than ca_file fails verification; the records stay in the outbox."""
        other_ca = make_ca(tmp_path / "other", common_name="another throw-away CA")
        station.record(COUNT)
        with tls_broker(tmp_path / "broker", pki, mutual=False) as broker:
            uplink = station.uplink(settings(broker, TlsSection(ca_file=other_ca.cert_file)))
            status = refused(uplink, "certificate verify failed")
        assert status.state != "online"
        assert (status.connects, status.acked_upto) == (0, 0)
        assert status.last_error is not None and "uplink.tls.ca_file" in status.last_error
        assert station.stored_seqs() == list(range(1, COUNT + 1))

    def test_a_broker_certificate_for_another_host_is_refused(
        self, tmp_path: Path, pki: Pki, station: UplinkStation
    ) -> None:
        """The host name is checked: a certificate that does not name 127.0.0.1 fails, even from the right CA."""
        elsewhere = issue_certificate(pki.ca, tmp_path / "pki", "elsewhere", "elsewhere", role="server", hosts=["a.b"])
        wrong_host = Pki(ca=pki.ca, server=elsewhere, client=pki.client)
        with tls_broker(tmp_path / "broker", wrong_host, mutual=False) as broker:
            uplink = station.uplink(settings(broker, TlsSection(ca_file=pki.ca.cert_file)))
            status = refused(uplink, "certificate verify failed: IP address mismatch")
        assert status.state != "online"


class TestMutual:
    def test_without_a_client_certificate_nothing_goes_and_nothing_is_lost(
        self, tmp_path: Path, pki: Pki, station: UplinkStation
    ) -> None:
        """The broker turns away an uplink without cert_file, naming the fix; a correct one then sends everything."""
        platform = issue_certificate(pki.ca, tmp_path / "pki", "platform", "platform", role="client")
        station.record(COUNT)
        with (
            tls_broker(tmp_path / "broker", pki, mutual=True) as broker,
            RecordsListener(broker, pki.ca, client=platform) as listener,
        ):
            anonymous = station.uplink(settings(broker, TlsSection(ca_file=pki.ca.cert_file)))
            status = refused(anonymous, "uplink.tls.cert_file")
            anonymous.stop()
            assert status.state != "online"
            assert (status.connects, status.acked_upto) == (0, 0)
            assert station.stored_seqs() == list(range(1, COUNT + 1))
            assert listener.seqs == []

            mutual = TlsSection(ca_file=pki.ca.cert_file, cert_file=pki.client.cert_file, key_file=pki.client.key_file)
            uplink = station.uplink(settings(broker, mutual))
            wait_until(lambda: uplink.status().acked_upto == COUNT, DEADLINE_S, f"acked_upto {COUNT}")
            wait_until(lambda: len(listener.seqs) == COUNT, DEADLINE_S, "the listener has every record")
            assert uplink.status().last_error is None
            uplink.stop()
        assert listener.seqs == list(range(1, COUNT + 1))


class TestCertificates:
    def test_private_keys_are_owner_only_and_the_broker_is_named_by_ip_and_dns(self, pki: Pki) -> None:
        """Every key file is 0600 from the start; the broker certificate names 127.0.0.1 and localhost."""
        for files in (pki.ca, pki.server, pki.client):
            assert stat.S_IMODE(files.key_file.stat().st_mode) == 0o600
        names = (
            x509.load_pem_x509_certificate(pki.server.cert_file.read_bytes())
            .extensions.get_extension_for_class(x509.SubjectAlternativeName)
            .value
        )
        assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
        assert names.get_values_for_type(x509.DNSName) == ["localhost"]

    def test_a_server_certificate_needs_a_host(self, pki: Pki, tmp_path: Path) -> None:
        """A server certificate with no subjectAltName could never be verified, so it is not made."""
        with pytest.raises(ValueError, match="server certificate 'lost' has no hosts"):
            issue_certificate(pki.ca, tmp_path, "lost", "lost", role="server")


class TestConfig:
    def test_a_client_certificate_without_its_key_is_refused(self) -> None:
        """cert_file without key_file (or the reverse) is refused, naming the one that is missing."""
        with pytest.raises(ValueError, match="mutual TLS needs both cert_file and key_file; key_file is missing"):
            TlsSection(cert_file=Path("device.crt"))
        with pytest.raises(ValueError, match="mutual TLS needs both cert_file and key_file; cert_file is missing"):
            TlsSection(key_file=Path("device.key"))

    def test_the_installer_sees_where_the_key_is_missing(self, tmp_path: Path) -> None:
        """In a config file, the problem is reported at uplink.tls with the rule to follow."""
        source = tmp_path / "station.toml"
        source.write_text(
            '[station]\nid = "S1"\nallow_empty = true\n'
            '[uplink]\nbroker = "127.0.0.1:8883"\n[uplink.tls]\ncert_file = "device.crt"\n'
        )
        with pytest.raises(ConfigError) as caught:
            load_config(source)
        assert [(p.path, p.allowed) for p in caught.value.problems] == [
            ("uplink.tls", "mutual TLS needs both cert_file and key_file; key_file is missing")
        ]
