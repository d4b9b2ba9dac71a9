"""The station's settings, as the running agent uses them: frozen dataclasses, no validation library.

The config file is checked by `agent.config_validation` (pydantic, at the edge), which builds these classes;
the agent process itself then runs without pydantic (see drivers/schema.py). The rules a value must follow
live here, next to the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.commands.settings import CommandsSection
from agent.station.daybooks import DaySettings
from agent.station.leak import LeakSettings
from agent.station.pressure import PressureSettings
from agent.station.vapour import VapourSettings
from agent.station.vcf import Fuel, Product
from agent.uplink.hj212_settings import Hj212Section
from drivers.schema import Ge, Gt, Le, Matches, MaxLen, MinLen, Satisfies, doc, settings


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _tcp_port_in(address: str) -> bool:
    return 0 < int(address.rpartition(":")[2]) < 65536


STATION_ID = Matches("1-64 letters, digits, '_', '-', '.'", r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
Name = Annotated[str, Matches("1-32 letters, digits, '_', '-', '.'", r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")]
StationId = Annotated[str, STATION_ID]
Broker = Annotated[
    str,
    Matches("HOST:PORT, e.g. '127.0.0.1:1883'", r"[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}"),
    Satisfies("a TCP port 1..65535 after the colon", _tcp_port_in),
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
TimeZone = Annotated[str, Satisfies("an IANA time zone name such as 'Asia/Shanghai'", _known_zone)]


@settings
class StationSection:
    id: StationId = doc("the station id the platform registered")
    name: Annotated[str, MaxLen(200)] = doc("a human-readable station name", default="")
    timezone: TimeZone = doc("the station's local time zone", default="UTC")
    locale: Literal["zh_CN", "en"] | None = doc(
        "the language `station-agent status` speaks to staff: 'zh_CN' or 'en' (default: zh_CN for a station in "
        "China's time zones, en elsewhere)",
        default=None,
    )
    allow_empty: bool = doc(
        "run with no [[dispensers]] and no [[tanks]] (a box that only relays, or one still being set up); "
        "otherwise such a config is refused, since a station with nothing to watch records nothing",
        default=False,
    )


@settings
class KeysSection:
    device_key: Path = doc(
        "the device's private key (PEM), made by 'station-agent keygen'",
        default=Path("/var/lib/station-agent/keys/device.key"),
    )
    suite: Literal["ed25519", "sm2"] = doc(
        "the signing suite of the keys 'keygen', 'provision' and 'rotate-key' make: 'ed25519' (Ed25519, SHA-256) "
        "or 'sm2' (SM2 with SM3, GB/T 32918); an existing key signs on in its own suite until a rotation",
        default="ed25519",
    )
    sm2_id: Annotated[str, Matches("1-64 printable ASCII characters", r"[!-~]{1,64}")] = doc(
        "the SM2 distinguishing ID the key signs with; the platform must verify with the same one",
        default="1234567812345678",
    )


@settings
class OutboxSection:
    path: Path = doc("the SQLite outbox file", default=Path("/var/lib/station-agent/outbox.sqlite"))
    max_bytes: Annotated[int, Ge(1024**2)] = doc(
        "the most the outbox may occupy on disk, in bytes (>= 1 MiB); when reached, new records stop with an "
        "alarm until acknowledged records can be pruned",
        default=2 * 1024**3,
    )
    retention_days: Annotated[float, Ge(0)] = doc(
        "how long acknowledged records stay for re-sends, in days", default=30.0
    )
    retention_bytes: Annotated[int, Ge(0)] = doc(
        "the most bytes of acknowledged records kept for re-sends", default=512 * 1024**2
    )
    pending_limit: Annotated[int, Ge(100)] = doc(
        "how many records wait in memory while the outbox cannot be written (>= 100)", default=10_000
    )
    retry_s: Annotated[float, Gt(0), Le(300)] = doc(
        "how often a full or failing outbox is tried again, in seconds", default=5.0
    )


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


@settings
class HeartbeatSection:
    interval_s: Annotated[int, Ge(1), Le(86_400)] = doc("seconds between heartbeat records", default=60)


@settings
class ClockSection:
    jump_threshold_s: Annotated[float, Gt(0)] = doc(
        "a wall-clock step larger than this, in seconds, is a clock_jump event", default=5.0
    )
    time_scale: Annotated[float, Ge(1), Le(10_000)] = doc(
        "station seconds per real second: above 1 only against a simulated station whose time runs as fast "
        "(demonstrations, suppliers' CI); records then carry the accelerated time. A real station runs at 1",
        default=1.0,
    )


@settings
class LoggingSection:
    level: Literal["debug", "info", "warning", "error"] = doc("the least important log events written", default="info")
    format: Literal["json", "console"] = doc("'json' for journald, 'console' for people", default="json")


@settings
class StatusSection:
    path: Path = doc("where the status snapshot is written (tmpfs)", default=Path("/run/station-agent/status.json"))
    interval_s: Annotated[float, Gt(0), Le(60)] = doc(
        "how often the status snapshot is written, in seconds", default=1.0
    )
    socket: Path = doc(
        "the Unix socket 'station-agent status' asks (mode 0660)", default=Path("/run/station-agent/status.sock")
    )


LedName = Annotated[str, Matches("a sysfs LED name such as 'status:green'", r"[A-Za-z0-9][A-Za-z0-9_:.+-]{0,63}")]


@settings
class LedSection:
    """The box's status LED, driven through Linux sysfs: a green and a red LED, or one bicolour LED."""

    enabled: bool = doc("drive the status LED", default=False)
    green: LedName | None = doc("the green LED's name under leds_dir", default=None)
    red: LedName | None = doc("the red LED's name under leds_dir", default=None)
    bicolour: LedName | None = doc(
        "a multicolour LED whose multi_index names red and green, instead of green and red", default=None
    )
    leds_dir: Path = doc("where the kernel lists its LEDs", default=Path("/sys/class/leds"))
    blink_on_ms: Annotated[int, Ge(50), Le(5000)] | None = doc(
        "how long a blink is lit, in ms; unset: the kernel's 500 ms, and delay_on need not be writable", default=None
    )
    blink_off_ms: Annotated[int, Ge(50), Le(5000)] | None = doc(
        "how long a blink is dark, in ms; unset: the kernel's 500 ms, and delay_off need not be writable",
        default=None,
    )

    def __post_init__(self) -> None:
        if self.enabled and self.bicolour is None and self.green is None:
            raise ValueError("an enabled LED needs green (and red) or bicolour")
        if self.bicolour is not None and (self.green is not None or self.red is not None):
            raise ValueError("give either bicolour or green/red, not both")


@settings
class DeviceSection:
    name: Name = doc("a short name for the device, used in records and status")
    unit: Annotated[int, Ge(1), Le(247)] = doc("the Modbus slave address, 1..247")
    profile: Annotated[str, MinLen(1)] = doc("the name of the device's profile in the profile directories")
    poll_interval_ms: Annotated[int, Ge(50), Le(3_600_000)] = doc("poll period in ms (50..3600000)", default=500)


@settings
class RtuLineSection:
    kind: Literal["rtu"] = doc("'rtu' for an RS-485 port")
    name: Name = doc("a short name for the line")
    port: Path = doc("the serial device, e.g. '/dev/ttyS1' or '/dev/serial/by-id/...'")
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = doc("the line's baud rate", default=9600)
    parity: Literal["N", "E", "O"] = doc("parity: N, E or O", default="N")
    stopbits: Literal[1, 2] = doc("stop bits: 1 or 2", default=1)
    timeout_ms: Annotated[int, Ge(10), Le(10_000)] = doc(
        "how long a device has to start its answer, in ms", default=300
    )
    devices: Annotated[tuple[DeviceSection, ...], MinLen(1)] = doc("the devices on this line")


@settings
class TcpLineSection:
    kind: Literal["tcp"] = doc("'tcp' for a Modbus TCP endpoint")
    name: Name = doc("a short name for the line")
    host: Annotated[str, MinLen(1)] = doc("the host of the Modbus TCP endpoint")
    port: Annotated[int, Ge(1), Le(65535)] = doc("the TCP port", default=502)
    timeout_ms: Annotated[int, Ge(10), Le(30_000)] = doc("how long a device has to answer, in ms", default=1000)
    devices: Annotated[tuple[DeviceSection, ...], MinLen(1)] = doc("the devices behind this endpoint")


@settings
class TankGaugeSection:
    """A tank gauge that speaks the Veeder-Root TLS serial protocol (most gauges in the field do)."""

    name: Name = doc("a short name for the gauge, used by [[tanks]] and in records")
    security_code: Annotated[str, MaxLen(6)] = doc("the gauge's security code, if one is set", default="")
    poll_interval_ms: Annotated[int, Ge(1000), Le(3_600_000)] = doc("poll period in ms", default=10_000)
    deliveries_every_s: Annotated[int, Ge(10), Le(86_400)] = doc(
        "how often to read the gauge's delivery history (i202, long on a slow line); also after a delivery ends",
        default=300,
    )


@settings
class TlsLineSection:
    kind: Literal["tls"] = doc("'tls' for a tank gauge on a serial port")
    name: Name = doc("a short name for the line")
    port: Path = doc("the serial device the gauge is on")
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = doc("the line's baud rate", default=9600)
    parity: Literal["N", "E", "O"] = doc("parity: N, E or O", default="N")
    stopbits: Literal[1, 2] = doc("stop bits: 1 or 2", default=1)
    timeout_ms: Annotated[int, Ge(100), Le(30_000)] = doc("how long the gauge has to answer, in ms", default=2000)
    devices: Annotated[tuple[TankGaugeSection, ...], MinLen(1), MaxLen(1)] = doc("the gauge on this port")


@settings
class TlsTcpLineSection:
    kind: Literal["tls_tcp"] = doc("'tls_tcp' for a tank gauge on the network")
    name: Name = doc("a short name for the line")
    host: Annotated[str, MinLen(1)] = doc("the gauge's host")
    port: Annotated[int, Ge(1), Le(65535)] = doc("the gauge's TCP port", default=10001)
    timeout_ms: Annotated[int, Ge(100), Le(30_000)] = doc("how long the gauge has to answer, in ms", default=2000)
    devices: Annotated[tuple[TankGaugeSection, ...], MinLen(1), MaxLen(1)] = doc("the gauge behind this endpoint")


LineSection = RtuLineSection | TcpLineSection | TlsLineSection | TlsTcpLineSection


@settings
class PulseTap:
    """Where a nozzle's encoder pulses are counted, independently of its controller."""

    device: Name = doc("the name of the pulse-counter device")
    channel: Annotated[int, Ge(1), Le(64)] = doc("the counter channel, 1..64")
    ml_per_pulse: Annotated[Decimal, Gt(0), Le(1000)] = doc(
        "the pulse equivalent (脉冲当量) in mL per pulse, e.g. 10 for 100 pulses/L"
    )


@settings
class VapourTap:
    """Where a nozzle's vapour flow meter pulses are counted."""

    device: Name = doc("the name of the pulse-counter device")
    channel: Annotated[int, Ge(1), Le(64)] = doc("the counter channel, 1..64")
    ml_per_pulse: Annotated[Decimal, Gt(0), Le(1000)] = doc("vapour mL per pulse of the meter")
    meter_factor: Annotated[Decimal, Gt(0), Le(10)] = doc(
        "the vapour meter's calibration factor (1 = as counted)", default=Decimal(1)
    )


@settings
class NozzleSection:
    id: Name = doc("the nozzle's id, used in records")
    grade: Annotated[str, MinLen(1), MaxLen(32)] = doc("the fuel grade, e.g. '92', '95', '0#'")
    tank: Annotated[str, MaxLen(32)] = doc("the tank this nozzle draws from", default="")
    controller: Name = doc("the name of the pump-controller device that reports this nozzle")
    controller_nozzle: Annotated[int, Ge(1), Le(32)] = doc("the nozzle's number on its controller, 1..32")
    pulse: PulseTap | None = doc("the nozzle's encoder on a pulse counter", default=None)
    vapour: VapourTap | None = doc("the nozzle's vapour flow meter on a pulse counter", default=None)
    hj212_code: Annotated[str, Matches("1-32 characters without ; , = & or spaces", r"[^;,=&\s]{1,32}")] | None = doc(
        "the nozzle's code on the ecology platform (HJ 212 i41019), if not the city profile's format", default=None
    )


@settings
class DispenserSection:
    id: Name = doc("the dispenser's id")
    nozzles: Annotated[tuple[NozzleSection, ...], MinLen(1)] = doc("the dispenser's nozzles")


@settings
class MeteringSection:
    """Thresholds of the metering checks (JJG 443 defaults); every one is the installer's to set."""

    mpe_ppm: Annotated[int, Ge(100), Le(50_000)] = doc(
        "maximum permissible error in ppm of volume (3000 = 0.3 %)", default=3000
    )
    min_measured_ml: Annotated[int, Ge(0)] = doc(
        "fuellings below this volume (mL) are not judged for accuracy", default=2000
    )
    rest_pulse_tolerance: Annotated[int, Ge(0)] = doc(
        "encoder pulses at rest (nozzle hung up) ignored as noise", default=2
    )
    rest_clear_s: Annotated[float, Gt(0)] = doc(
        "pulses at rest must stay away this long before their alarm clears", default=60.0
    )
    silent_after_s: Annotated[float, Gt(0)] = doc(
        "a device offline this long raises a device_silent alarm", default=60.0
    )
    line_error_ratio: Annotated[float, Gt(0), Le(1)] = doc(
        "failed share of requests to answering devices that is a storm", default=0.2
    )
    line_error_window_s: Annotated[float, Ge(5)] = doc(
        "the window the failed share is taken over, in seconds", default=60.0
    )
    line_error_min_requests: Annotated[int, Ge(1)] = doc("fewer requests in a window prove nothing", default=20)
    pulse_wait_s: Annotated[float, Gt(0)] = doc(
        "how long a sale waits for a pulse count taken after it ended", default=5.0
    )
    bias_alarm_ppm: Annotated[int, Ge(100), Le(50_000)] = doc(
        "the metering bias the sequential test is built to find, ppm; between mpe_ppm and this it may wait",
        default=3600,
    )
    bias_error_rate: Annotated[float, Gt(0), Le(0.01)] = doc(
        "one sequential bias test's chance of a wrong verdict, either way (Wald's alpha = beta)", default=1e-6
    )

    def __post_init__(self) -> None:
        if self.bias_alarm_ppm <= self.mpe_ppm:
            raise ValueError(
                f"bias_alarm_ppm ({self.bias_alarm_ppm}) must be above mpe_ppm ({self.mpe_ppm}): the bias test tells "
                "a legal meter from one beyond the alarm level; set it a little above the MPE, e.g. mpe_ppm + 600"
            )


@settings
class GaugeTapSection:
    device: Name = doc("the name of the tank gauge")
    tank: Annotated[int, Ge(1), Le(99)] = doc("the tank's number on the gauge, 1..99")


@settings
class TankSection:
    """A tank: its product, its size, what measures it, and for a level probe the chart that turns heights
    into volumes (heights in mm, volumes in L, from the tank's calibration certificate)."""

    id: Name = doc("the tank's id, as the nozzles' `tank` names it")
    product: Literal["gasoline", "diesel"] = doc("the product family, as the records name it")
    density_20_kg_m3: Annotated[float, Ge(649), Le(1071)] | None = doc(
        "the product's standard density at 20 degC (标准密度 on the delivery note), kg/m3", default=None
    )
    density_15_kg_m3: Annotated[float, Ge(653), Le(1075)] | None = doc(
        "or: its density at 15 degC, kg/m3; the density picks the thermal expansion (API 11.1 Table 54B)",
        default=None,
    )
    capacity_l: Annotated[int, Ge(100), Le(1_000_000)] = doc("the tank's nominal capacity in litres")
    gauge: GaugeTapSection | None = doc("the tank gauge and the tank's number on it", default=None)
    probe: Name | None = doc("or: the name of the Modbus level probe in the tank", default=None)
    chart: tuple[tuple[float, float], ...] = doc("(height mm, volume L) rows, heights rising", default=())
    chart_file: Path | None = doc("or: a CSV file of height_mm,volume_l rows", default=None)

    def __post_init__(self) -> None:
        if (self.density_20_kg_m3 is None) == (self.density_15_kg_m3 is None):
            raise ValueError(
                f"tank {self.id}: give one density, density_20_kg_m3 (the standard density at 20 degC that the "
                "delivery note gives) or density_15_kg_m3, "
                + ("not both" if self.density_20_kg_m3 is not None else "not neither")
            )
        if (self.gauge is None) == (self.probe is None):
            raise ValueError(f"tank {self.id}: give either a gauge or a probe")
        if self.probe is not None and not self.chart and self.chart_file is None:
            raise ValueError(f"tank {self.id}: a level probe needs the tank's chart (chart or chart_file)")
        heights = [height for height, _ in self.chart]
        volumes = [volume for _, volume in self.chart]
        if any(b <= a for a, b in pairwise(heights)) or any(b < a for a, b in pairwise(volumes)):
            raise ValueError(f"tank {self.id}: chart heights must rise and volumes must not fall")

    def fuel(self) -> Fuel:
        """The product with the density the installer gave, which picks its band of thermal expansion."""
        product = Product(self.product)
        if self.density_20_kg_m3 is not None:
            return Fuel.from_density_20(product, self.density_20_kg_m3)
        assert self.density_15_kg_m3 is not None, "a tank has one density (checked above)"
        return Fuel(product, self.density_15_kg_m3)


@settings
class TankRulesSection:
    """When tank records are made (defaults suit a station that sells a few thousand litres a day)."""

    inventory_interval_s: Annotated[int, Ge(10), Le(86_400)] = doc(
        "a tank_inventory record at least this often", default=600
    )
    inventory_change_ml: Annotated[int, Ge(1000)] = doc(
        "... and whenever the volume at 20 degC moved this much", default=200_000
    )
    inventory_water_change_um: Annotated[int, Ge(100)] = doc("... or the water level this much", default=2000)
    inventory_temperature_change_cC: Annotated[int, Ge(10)] = doc("... or the temperature this much", default=100)
    delivery_min_ml: Annotated[int, Ge(10_000)] = doc(
        "a rise in the tank, net of sales, this large is a delivery", default=500_000
    )
    delivery_settle_s: Annotated[int, Ge(10)] = doc(
        "a delivery has ended when the level stopped rising this long", default=600
    )
    delivery_report_wait_s: Annotated[int, Ge(0), Le(86_400)] = doc(
        "how long to wait for a gauge's own report of a rise before recording it as detected", default=3600
    )


@settings
class VerificationSection:
    """A device's calibration as verified (强制检定): changes to other values raise an alarm."""

    device: Name = doc("the name of the verified device")
    k_factor: int | None = doc("the verified calibration parameter", default=None)
    firmware_id: int | None = doc("the verified firmware id", default=None)
    certificate: Annotated[str, MinLen(1)] = doc("the verification certificate's number")


ListenAddress = Annotated[
    str,
    Matches(
        "IPv4:PORT or [IPv6]:PORT of this box, e.g. '192.168.1.10:8080'", r"([0-9.]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}"
    ),
    Satisfies("a TCP port 1..65535 after the colon", _tcp_port_in),
]
PinHash = Annotated[
    str,
    Matches(
        "a line printed by 'station-agent web-pin' (scrypt$14$8$1$salt$hash)",
        r"scrypt\$[0-9]{2}\$[0-9]{1,2}\$[0-9]\$[A-Za-z0-9+/=]{16,}\$[A-Za-z0-9+/=]{44}",
    ),
]


@settings
class WebSection:
    """The local web page for staff and installers (`station-agent web`, its own process): read-only, off."""

    enabled: bool = doc("serve the page", default=False)
    listen: ListenAddress = doc(
        "the box's LAN address and port to serve on (never 0.0.0.0 on a box with a public link)",
        default="192.168.1.10:8080",
    )
    pin_hash: PinHash | None = doc("the PIN's salted hash, as 'station-agent web-pin' prints it", default=None)
    session_minutes: Annotated[int, Ge(1), Le(24 * 60)] = doc("how long a login lasts, in minutes", default=480)

    def __post_init__(self) -> None:
        if self.enabled and self.pin_hash is None:
            raise ValueError(
                "web: the page is enabled without a PIN; run 'station-agent web-pin' and put the line it prints "
                "under [web] as pin_hash"
            )


@settings
class AgentConfig:
    station: StationSection = doc("the station")
    uplink: UplinkSection = doc("the MQTT uplink to the platform")
    keys: KeysSection = doc("the device key", factory=KeysSection)
    outbox: OutboxSection = doc("the outbox", factory=OutboxSection)
    heartbeat: HeartbeatSection = doc("heartbeat records", factory=HeartbeatSection)
    clock: ClockSection = doc("clock checks", factory=ClockSection)
    logging: LoggingSection = doc("logs", factory=LoggingSection)
    status: StatusSection = doc("the status snapshot", factory=StatusSection)
    led: LedSection = doc("the status LED", factory=LedSection)
    profile_dirs: tuple[Path, ...] = doc(
        "directories searched for device profiles before the shipped ones",
        default=(Path("/etc/station-agent/profiles"),),
    )
    lines: tuple[LineSection, ...] = doc("the field-bus lines", default=())
    dispensers: tuple[DispenserSection, ...] = doc("the forecourt's dispensers", default=())
    metering: MeteringSection = doc("metering checks", factory=MeteringSection)
    verifications: tuple[VerificationSection, ...] = doc("verified calibrations", default=())
    tanks: tuple[TankSection, ...] = doc("the station's tanks", default=())
    tank_rules: TankRulesSection = doc("when tank records are made", factory=TankRulesSection)
    leak: LeakSettings = doc("the tanks' leak and unrecorded-sales test", factory=LeakSettings)
    vapour: VapourSettings = doc("the nozzles' vapour-recovery (A/L) evaluation", factory=VapourSettings)
    pressure: PressureSettings = doc("the tanks' vapour-space pressure rules", factory=PressureSettings)
    daily: DaySettings = doc("when the day's books close", factory=DaySettings)
    commands: CommandsSection = doc("signed commands from the platform", factory=CommandsSection)
    hj212: Hj212Section | None = doc("a second uplink, to an ecology platform that takes HJ 212", default=None)
    web: WebSection = doc("the local web page for staff and installers", factory=WebSection)

    def devices(self) -> list[tuple[LineSection, DeviceSection]]:
        """The Modbus devices, by line."""
        return [(line, device) for line in self.lines for device in line.devices if isinstance(device, DeviceSection)]

    def gauges(self) -> list[tuple[TlsLineSection | TlsTcpLineSection, TankGaugeSection]]:
        """The tank gauges, by line."""
        return [
            (line, device)
            for line in self.lines
            if isinstance(line, TlsLineSection | TlsTcpLineSection)
            for device in line.devices
        ]

    def hj212_nozzles(self) -> list[tuple[str, str | None]]:
        """Every nozzle's id and explicit HJ 212 code, in the config's order, which numbers the guns."""
        return [(nozzle.id, nozzle.hj212_code) for _, nozzle in self.nozzles()]

    def nozzles(self) -> list[tuple[DispenserSection, NozzleSection]]:
        return [(dispenser, nozzle) for dispenser in self.dispensers for nozzle in dispenser.nozzles]


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a config file, said so that an installer can fix it without reading code."""

    path: str
    found: str
    allowed: str

    def __str__(self) -> str:
        return f"{self.path}: found {self.found}; {self.allowed}" if self.found else f"{self.path}: {self.allowed}"


class ConfigError(Exception):
    """A config file that cannot be used, with every problem in it."""

    def __init__(self, source: Path, problems: list[ConfigProblem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"{source}: {len(problems)} problem(s):\n{lines}")


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A validated config and the digest of its bytes, which the agent records when it changes."""

    config: AgentConfig
    source: Path
    sha256: str


def load_config(source: Path) -> LoadedConfig:
    """Read, parse and validate a config file; raise ConfigError listing every problem.

    The validator (pydantic) is imported here, not at module level: the agent process proper never loads it."""
    from agent.config_validation import validate_config  # noqa: PLC0415 - keeps pydantic out of the agent

    return validate_config(source)


def _density(tank: TankSection) -> str:
    fuel = tank.fuel()
    given = (tank.density_20_kg_m3, "20") if tank.density_20_kg_m3 is not None else (fuel.density_15_kg_m3, "15")
    return f"{given[0]:g} kg/m3 at {given[1]} degC ({fuel.band.value} band of API 11.1)"


def _tls_mode(tls: TlsSection | None) -> str:
    if tls is None:
        return "off"
    return "mutual" if tls.cert_file is not None else "on"


def summary(loaded: LoadedConfig) -> str:
    """A one-screen picture of the station, for an installer checking a config before handing over."""
    config = loaded.config
    out = [
        f"station   {config.station.id}  {config.station.name}  ({config.station.timezone})",
        f"config    {loaded.source}  sha256 {loaded.sha256[:16]}",
        f"uplink    mqtt{' ' + config.uplink.protocol} {config.uplink.broker}  prefix {config.uplink.prefix}"
        f"  tls {_tls_mode(config.uplink.tls)}"
        f"  acks from the {config.uplink.ack_mode}",
        f"outbox    {config.outbox.path}  cap {config.outbox.max_bytes // 1024**2} MiB"
        f"  keeps acked records {config.outbox.retention_days:g} days / {config.outbox.retention_bytes // 1024**2} MiB",
        f"key       {config.keys.device_key}",
        f"heartbeat every {config.heartbeat.interval_s} s",
    ]
    for line in config.lines:
        where = (
            f"{line.port} {line.baudrate} {line.parity}{line.stopbits}"
            if isinstance(line, RtuLineSection | TlsLineSection)
            else f"tcp {line.host}:{line.port}"
        )
        protocol = "Veeder-Root TLS" if isinstance(line, TlsLineSection | TlsTcpLineSection) else "Modbus"
        out.append(f"line      {line.name}: {protocol} {where}")
        out.extend(f"  device  {_device_summary(device)}" for device in line.devices)
    for tank in config.tanks:
        measured = f"gauge {tank.gauge.device}#{tank.gauge.tank}" if tank.gauge else f"probe {tank.probe} with chart"
        out.append(f"tank      {tank.id}: {tank.product} at {_density(tank)}, {tank.capacity_l} L, {measured}")
    if config.tanks:
        leak = config.leak
        out.append(
            f"tank test a leak of {leak.target_leak_ml_per_h} mL/h and {leak.target_unrecorded_ppm / 10_000:g} % of "
            f"sales unrecorded, over {leak.window_h} h of hourly books"
        )
    for dispenser in config.dispensers:
        out.append(f"dispenser {dispenser.id}")
        out.extend(f"  nozzle  {_nozzle_summary(nozzle)}" for nozzle in dispenser.nozzles)
    metering = config.metering
    verified = ", ".join(f"{v.device} ({v.certificate})" for v in config.verifications) or "none"
    out.append(
        f"metering  MPE {metering.mpe_ppm / 10_000:g} %, judged from {metering.min_measured_ml / 1000:g} L;"
        f" verified calibrations: {verified}"
    )
    return "\n".join(out)


def _device_summary(device: DeviceSection | TankGaugeSection) -> str:
    if isinstance(device, TankGaugeSection):
        return f"{device.name}: tank gauge, every {device.poll_interval_ms} ms"
    return f"{device.name}: unit {device.unit}, profile {device.profile}, every {device.poll_interval_ms} ms"


def _nozzle_summary(nozzle: NozzleSection) -> str:
    text = f"{nozzle.id}: {nozzle.grade}, tank {nozzle.tank or '-'}"
    text += f", controller {nozzle.controller}#{nozzle.controller_nozzle}"
    if nozzle.pulse is not None:
        text += f", encoder {nozzle.pulse.device}#{nozzle.pulse.channel} ({nozzle.pulse.ml_per_pulse} mL/pulse)"
    if nozzle.vapour is not None:
        text += f", vapour {nozzle.vapour.device}#{nozzle.vapour.channel}"
    return text
