"""`station-agent demo`: a whole station in software, end to end, on this machine.

It writes the configs a real installation would have (`agent.toml`, `simulators.toml`), then starts, each as
its own process exactly as they would run by hand: a Mosquitto on a free loopback port (unless `--broker`
names one), `station-sim run` (the forecourt on a socat pty line and on Modbus TCP, plus the reference
platform receiver) and `station-agent run`. It prints one status line a second and, at the end, a JSON
summary as its last line, checked against what the simulators say really happened. The demo is the only
place that knows both the agent and the simulators, and it knows them only through their command lines and
their files.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent.ledger.keys import KeySpec, generate_key_file
from agent.ledger.suites import Suite
from drivers.hj212.profile import shipped_city_profile
from simulators.broker import MosquittoBroker, free_loopback_port
from simulators.compare import CompareInputError, SalesComparison, compare_files
from simulators.platform.store import Store

STATION_ID = "DEMO-0001"
ZONE = "Asia/Shanghai"
TIME_SCALE = 1200.0
"""Simulated seconds per real second, for the forecourt and the agent's station logic alike: a demo second holds
twenty minutes of a station, so that two and a half minutes hold two days: hourly tank books, a tanker, and two
days' vapour verdicts, daily summaries and HJ 212 frames."""
FIRST_DAY_H = 6
"""The demo's books close about this many simulated hours after it starts (its `[daily] boundary` is set so), and
every 24 hours after: the first day is short but has enough fuellings to be judged."""
INJECTED = "D02-N1"
VAPOUR_FAILING = "D01-N2"
VAPOUR_FAILING_AL = 0.6
"""D01-N2's vacuum pump draws too little all along: A/L 0.6 against the 1.0-1.2 band. Its first day is a warning
day and the second, with the demo's `alarm_warning_days = 2` (5 by default), an alarm."""
INJECTION_FROM_S = 4 * 3600
INJECTION_UNTIL_S = 7 * 3600
DELIVERY_AT_S = 3 * 3600
"""Simulated seconds after the simulators start; the agent starts a few real seconds (an hour or two of
simulated time) later, so the scheduled events come well after it runs, and the injection lasts long enough
for a few of the injected nozzle's sales."""
PROBE_TANK = "T3"
PATTERN = (
    "{ idle_s = [900, 2400], lift_s = [5, 20], volume_l = [5, 60], flow_l_per_min = [20, 50], hang_up_s = [5, 15] }"
)
"""A nozzle's rhythm in simulated seconds: a sale every half hour or so, fifty a day, enough to judge its vapour
recovery every day while the agent, polling as fast as the line allows, still sees every sale on its own."""
HJ212_PW = "123456"
HJ212_MN = "0000000000000000DE5A0001"
"""HJ 212-2025 asks for a 24-hex-digit MN."""
HJ212_KEY = "keys/hj212-sm4.key"
"""The SM4 key the station and the ecology platform share for the data area (HJ 212-2025)."""
STOP_TIMEOUT_S = 20.0
HJ212_RECEIVER = [
    "-m",
    "simulators.cli",
    "hj212",
    "--profile",
    str(shipped_city_profile("chongqing")),
    "--pw",
    HJ212_PW,
    "--mn",
    HJ212_MN,
    "--sm4-key-file",
]
"""The ecology bureau's side: the reference HJ 212 receiver, checking frames, CRCs and Chongqing's codes, and
reading the data areas the station encrypts with their shared SM4 key (followed by the key file's path)."""
_STATE_FILES = (
    "outbox.sqlite",
    "outbox.sqlite-wal",
    "outbox.sqlite-shm",
    "platform.sqlite",
    "platform.sqlite-wal",
    "platform.sqlite-shm",
    "status.json",
    "platform-report.json",
    "sim-report.json",
    "station.pub",
    "t3-chart.csv",
    "hj212.jsonl",
    "outbox-hj212.json",
    "status.sock",
    "keys",
    "tty",
    "broker",
)


def _nozzle(nozzle: str, grade: str, tank: str, controller: str, number: int, counter: str) -> str:  # noqa: PLR0917
    """A nozzle table as the simulated forecourt wires it: encoder on channel 2n-1, vapour meter on 2n."""
    return f"""[[dispensers.nozzles]]
id = "{nozzle}"
grade = "{grade}"
tank = "{tank}"
controller = "{controller}"
controller_nozzle = {number}
pulse = {{ device = "{counter}", channel = {2 * number - 1}, ml_per_pulse = 10 }}
vapour = {{ device = "{counter}", channel = {2 * number}, ml_per_pulse = 10 }}
"""


def agent_config(
    workdir: Path,
    broker: str,
    tcp_port: int,
    *,
    hj212_port: int | None = None,
    boundary: str = "00:00",
    time_scale: float = TIME_SCALE,
    suite: Suite = Suite.ED25519,
) -> str:
    """The agent's config; with `hj212_port`, the second uplink to an HJ 212 platform on that loopback port;
    `suite` the signing suite of the device key."""
    return f"""# The demo station's agent config; the annotated reference is config/station.example.toml.
[station]
id = "{STATION_ID}"
name = "Demo station (simulated forecourt)"
timezone = "{ZONE}"

[clock]
time_scale = {time_scale}   # the simulated forecourt runs this much faster than real time; a station runs at 1

[keys]
device_key = "keys/device.key"
suite = "{suite}"

[outbox]
path = "outbox.sqlite"
max_bytes = 268435456

[uplink]
broker = "{broker}"
ack_mode = "platform"

[heartbeat]
interval_s = 3600

[metering]
pulse_wait_s = 120             # 5 by default; at 1,200x a poll of the RS-485 line takes many station seconds

[daily]
boundary = "{boundary}"        # the demo's day ends a few simulated hours after it starts; a station's at "00:00"

[vapour]
alarm_warning_days = 2         # 5 by default; the demo has two days to show a warning and then an alarm

[pressure]
max_gap_s = 300                # the demo polls the sensor every simulated minute
{"" if hj212_port is None else _hj212_section(hj212_port)}
[logging]
format = "json"

[status]
path = "status.json"
socket = "status.sock"

[[lines]]
kind = "rtu"
name = "rs485-1"
port = "tty/rs485-1"
baudrate = 9600

[[lines.devices]]
name = "pc1"
unit = 1
profile = "sim-pump-controller"
poll_interval_ms = 2000

[[lines.devices]]
name = "pcm1"                  # the pulse counter that counts D01's encoders and vapour meters
unit = 11
profile = "sim-pulse-counter"
poll_interval_ms = 2000

[[lines.devices]]
name = "probe3"                # a magnetostrictive level probe in tank T3
unit = 31
profile = "sim-level-probe"
poll_interval_ms = 10000

[[lines.devices]]
name = "ps1"                   # tank T1's vapour-space pressure sensor
unit = 21
profile = "sim-pressure-sensor"
poll_interval_ms = 60000

[[lines]]
kind = "tls"                   # the tank gauge (Veeder-Root TLS) on its own serial port
name = "gauge"
port = "tty/tls"

[[lines.devices]]
name = "tg1"
poll_interval_ms = 10000

[[lines]]
kind = "tcp"
name = "tcp-1"
host = "127.0.0.1"
port = {tcp_port}

[[lines.devices]]
name = "pc2"
unit = 1
profile = "sim-pump-controller"
poll_interval_ms = 2000

[[lines.devices]]
name = "pcm2"
unit = 11
profile = "sim-pulse-counter"
poll_interval_ms = 2000

# Each nozzle: its controller input, its encoder (100 pulses/L) and its vapour meter on the pulse counter.
[[dispensers]]
id = "D01"
{_nozzle("D01-N1", "92", "T1", "pc1", 1, "pcm1")}
{_nozzle("D01-N2", "95", "T2", "pc1", 2, "pcm1")}
[[dispensers]]
id = "D02"
{_nozzle("D02-N1", "92", "T1", "pc2", 1, "pcm2")}
{_nozzle("D02-N2", "0#", "T3", "pc2", 2, "pcm2")}
# T1 and T2 are measured by the tank gauge (its tanks 1 and 2); T3 by a level probe, through its chart
# (the calibration certificate's strapping table, here printed by `station-sim tank-chart`).
[[tanks]]
id = "T1"
product = "gasoline"
density_15_kg_m3 = 745
capacity_l = 30000
gauge = {{ device = "tg1", tank = 1 }}

[[tanks]]
id = "T2"
product = "gasoline"
density_15_kg_m3 = 750
capacity_l = 30000
gauge = {{ device = "tg1", tank = 2 }}

[[tanks]]
id = "{PROBE_TANK}"
product = "diesel"
density_15_kg_m3 = 835
capacity_l = 30000
probe = "probe3"
chart_file = "t3-chart.csv"
"""


def _hj212_section(port: int) -> str:
    return f"""
[hj212]
enabled = true                 # the ecology bureau's platform takes A/L and tank pressure in HJ 212
host = "127.0.0.1"
port = {port}
pw = "{HJ212_PW}"
mn = "{HJ212_MN}"
profile = "{shipped_city_profile("chongqing")}"
version = "2025"               # HJ 212-2025: data areas encrypted with SM4, heartbeats while idle
sm4_key_file = "{HJ212_KEY}"
heartbeat_s = 60
"""


def _tank(tank: str, product: str, volume_l: int, deliveries: str = "") -> str:
    return f"""[[tanks]]
id = "{tank}"
product = "{product}"
shape = {{ diameter_mm = 2800, length_mm = 5000 }}
volume_l = {volume_l}
deliveries = [{deliveries}]
"""


def simulators_config(broker: str, tcp_port: int, session: str, time_scale: float = TIME_SCALE) -> str:
    """The simulated station, its clocks starting now in the station's time zone (a gauge shows local time)."""
    start = datetime.now(ZoneInfo(ZONE)).replace(tzinfo=None, microsecond=0).isoformat()
    return f"""# The demo's simulated station: what `station-sim run --config` starts.
[simulation]
seed = 7
time_scale = {time_scale}    # simulated seconds per real second: a demo minute is two hours of forecourt
start = {start}   # the gauge's clock, local time
report = "sim-report.json"
control = "sim.sock"          # station-sim fault --control sim.sock inject pulse_injection D01-N1 --set percent=1

[[lines]]
kind = "rtu"
name = "rs485-1"
device_port = "tty/rs485-1.device"
agent_port = "tty/rs485-1"
baudrate = 9600

[[lines]]
kind = "tcp"
name = "tcp-1"
host = "127.0.0.1"
port = {tcp_port}

[[dispensers]]
id = "D01"
line = "rs485-1"
controller_unit = 1
pulse_counter_unit = 11
pattern = {PATTERN}
nozzles = [
    {{ grade = "92", price_fen_per_l = 770, tank = "T1" }},
    {{ grade = "95", price_fen_per_l = 820, tank = "T2" }},
]

[[dispensers]]
id = "D02"
line = "tcp-1"
controller_unit = 1
pulse_counter_unit = 11
pattern = {PATTERN}
nozzles = [
    {{ grade = "92", price_fen_per_l = 770, tank = "T1" }},
    {{ grade = "0#", price_fen_per_l = 735, tank = "{PROBE_TANK}" }},
]

# The tanks under the forecourt; a tanker fills T1 three hours in (simulated).
{_tank("T1", "gasoline", 9000, f"{{ at_s = {DELIVERY_AT_S}, volume_l = 12000, duration_s = 1200 }}")}
{_tank("T2", "gasoline", 17000)}
{_tank(PROBE_TANK, "diesel", 21000)}
[[tank_gauges]]
id = "G1"
tanks = ["T1", "T2"]
device_port = "tty/tls.device"
agent_port = "tty/tls"

[[level_probes]]
tank = "{PROBE_TANK}"
line = "rs485-1"
unit = 31

[[pressure_sensors]]
tank = "T1"
line = "rs485-1"
unit = 21

# A cheat, on schedule: from the 4th to the 7th simulated hour, D02-N1's controller reports 1 % more than
# its encoder counted (a pulse-injection board). The agent must flag each such sale, and nothing else.
[[faults]]
kind = "pulse_injection"
target = "{INJECTED}"
at_s = {INJECTION_FROM_S}
until_s = {INJECTION_UNTIL_S}
params = {{ percent = 1.0 }}

# A vapour-recovery fault for the ecology bureau: D01-N2's vacuum pump draws too little, all along.
[[faults]]
kind = "al_ratio"
target = "{VAPOUR_FAILING}"
at_s = 0
params = {{ value = {VAPOUR_FAILING_AL} }}

[platform]
broker = "{broker}"
client_id = "{session}"   # a session of its own per demo run: nothing queued for an earlier run reaches it
db = "platform.sqlite"
report = "platform-report.json"

[platform.stations]
{STATION_ID} = "station.pub"
"""


def write_probe_chart(workdir: Path) -> Path:
    """The probe tank's chart for the agent, from `simulators.toml` in `workdir`: what an installer copies
    from the tank's calibration certificate, here printed by the simulator whose tank it is."""
    chart = workdir / "t3-chart.csv"
    command = [sys.executable, "-m", "simulators.cli", "tank-chart", "--config", str(workdir / "simulators.toml")]
    with chart.open("w") as out:
        subprocess.run([*command, PROBE_TANK], stdout=out, check=True)
    return chart


def _prepare(workdir: Path, suite: Suite) -> str:
    """Start from a clean slate and a new device key of `suite`; return the key's kid."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name in _STATE_FILES:
        target = workdir / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    key = generate_key_file(workdir / "keys" / "device.key", KeySpec(suite))
    (workdir / "station.pub").write_text(key.public_pem())
    sm4_key = workdir / HJ212_KEY
    sm4_key.write_text(secrets.token_hex(16) + "\n")
    sm4_key.chmod(0o600)
    return key.kid


@contextmanager
def _process(argv: list[str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child in its own session, so Ctrl-C reaches the demo only, which then stops children in order."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield process
    finally:
        _terminate(process)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_for_platform(workdir: Path, simulators: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """Start the agent only once the platform listens: its first report appears after it has subscribed."""
    deadline = time.monotonic() + timeout_s
    while not (workdir / "platform-report.json").exists() and simulators.poll() is None:
        if time.monotonic() > deadline:
            print("demo: the platform receiver is slow to start; starting the agent anyway", flush=True)
            return
        time.sleep(0.1)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data


def _status_line(elapsed: float, agent: dict[str, Any], platform: dict[str, Any]) -> str:
    recorder = agent.get("recorder", {})
    uplink = agent.get("uplink", {})
    devices = [device for line in agent.get("lines", []) for device in line.get("devices", [])]
    online = sum(1 for device in devices if device.get("state") == "online")
    station = platform.get("stations", {}).get(STATION_ID, {})
    by_type = station.get("by_type", {})
    return (
        f"[{elapsed:5.1f}s] agent {agent.get('health', 'starting'):8} uplink {uplink.get('state', '-'):10} "
        f"seq {recorder.get('head_seq', 0):5} acked {recorder.get('acked_upto', 0):5} "
        f"devices {online}/{len(devices)} | platform upto {station.get('upto', 0):5} "
        f"transactions {by_type.get('transaction', 0):3} heartbeats {by_type.get('heartbeat', 0):3} "
        f"gaps {len(station.get('gaps', []))} forks {len(station.get('forks', []))} "
        f"bad sigs {station.get('bad_signatures', 0)}"
    )


def _platform_records(db: Path, after_seq: int = 0) -> list[dict[str, Any]]:
    """The records the platform accepted, in seq order, after `after_seq`."""
    if not db.exists():
        return []
    with Store(db, read_only=True) as store:
        records = [json.loads(canonical) for canonical in store.accepted(STATION_ID)]
    return [record for record in records if record["seq"] > after_seq]


SALES_SHOWN = 30
HOURS_SHOWN = 9
"""The first sales and hourly books are shown one by one; after them only the status line counts them, so that
days, verdicts, deliveries and alarms stand out."""


def _news(record: dict[str, Any], shown: Counter[str]) -> str | None:
    """A line for a record the platform has just accepted, as a regulator would want to see it."""
    body = record["body"]
    kind = record["type"] if record["type"] != "reconciliation" else f"books/{body['period']}"
    shown[kind] += 1
    if (kind == "transaction" and shown[kind] > SALES_SHOWN) or (kind == "books/hour" and shown[kind] > HOURS_SHOWN):
        return None
    if record["type"] == "transaction":
        line = f"    sale   {body['nozzle']} #{body['txn_no']}: {body['volume_ml'] / 1000:6.2f} L by the controller"
        if body["pulse_volume_ml"] is not None:
            line += f", {body['pulse_volume_ml'] / 1000:6.2f} L by the encoder ({body['deviation_ppm']:+} ppm)"
        if body["al_permille"] is not None:
            line += f", vapour {body['vapour_ml'] / 1000:.2f} L (A/L {body['al_permille'] / 1000:.2f})"
        return line
    if record["type"] == "delivery":
        return (
            f"    DELIVERY into {body['tank']} ({body['source']}): {body['delivered_20_ml'] / 1000:,.1f} L at 20 degC, "
            f"{body['start']} to {body['end']}"
        )
    if record["type"] == "reconciliation":
        return (
            f"    books  {body['tank']} {body['period']} from {body['start'][11:16]}: "
            f"{body['opening_volume_20_ml'] / 1000:,.1f} L -> {body['closing_volume_20_ml'] / 1000:,.1f} L, "
            f"delivered {body['delivered_20_ml'] / 1000:,.1f} L, sold {body['sold_20_ml'] / 1000:,.1f} L "
            f"in {body['sales']} sales, variance {body['variance_ml'] / 1000:+.2f} L"
            + ("" if body["complete"] else " (partial: the agent started within it)")
        )
    if record["type"] == "alarm":
        evidence = ", ".join(f"{key} {value}" for key, value in body["evidence"].items())
        return f"    ALARM  {body['kind']} {body['state']} on {body['subject']}: {evidence}"
    if record["type"] == "vapour":
        mean = "-" if body["al_mean_permille"] is None else f"{body['al_mean_permille'] / 1000:.2f}"
        share = "-" if body["pass_share_permille"] is None else f"{body['pass_share_permille'] / 10:.0f} %"
        return (
            f"    VAPOUR {body['nozzle']} day {body['day']}: {body['counted']} fuellings counted, mean A/L {mean}, "
            f"{share} within the band -> {body['verdict'].upper()} (warning days in a row: {body['warning_days']})"
        )
    if record["type"] == "daily_summary":
        sales = sum(nozzle["sales"] for nozzle in body["nozzles"])
        litres = sum(nozzle["volume_ml"] for nozzle in body["nozzles"]) / 1000
        yuan = sum(nozzle["amount_fen"] for nozzle in body["nozzles"]) / 100
        tanks = ", ".join(f"{tank['tank']} {tank['variance_ml'] / 1000:+.1f} L" for tank in body["tanks"]) or "-"
        return (
            f"    DAY    {body['day']} closed ({body['start']} to {body['end']}"
            + ("" if body["complete"] else ", partial")
            + f"): {sales} sales, {litres:,.1f} L, {yuan:,.2f} yuan; tank variances {tanks}; "
            f"agent down {body['agent_down']['seconds']} s, uplink down {body['uplink_down']['seconds']} s"
        )
    return None


EXPECTED_ALARMS = {
    ("metering_deviation", INJECTED),
    ("metering_bias", INJECTED),
    ("vapour_al_warning", VAPOUR_FAILING),
    ("vapour_al_alarm", VAPOUR_FAILING),
}
"""Alarms are expected only where the demo injected a fault."""
TWO_DAYS_S = (FIRST_DAY_H + 25) * 3600
"""A demo that ran this long (simulated) has closed two days: it must show the failing nozzle's warning day, then
its alarm day, and a daily summary of each."""


def _alarm_check(records: list[dict[str, Any]]) -> dict[str, Any]:
    alarms = [(r["body"]["kind"], r["body"]["state"], r["body"]["subject"]) for r in records if r["type"] == "alarm"]
    expected = [a for a in alarms if (a[0], a[2]) in EXPECTED_ALARMS]
    return {
        "expected": [list(a) for a in expected],
        "unexpected": [list(a) for a in alarms if a not in expected],
    }


def cross_check(workdir: Path) -> dict[str, Any]:
    """The sales the simulated controllers booked against the transactions the platform holds, by the
    simulators' own check (`station-sim compare`): every sale between a nozzle's first and last recorded one
    is there, with the controller's volume."""
    try:
        comparison = compare_files(workdir / "sim-report.json", workdir / "platform.sqlite", STATION_ID)
    except CompareInputError:
        comparison = SalesComparison()
    return comparison.to_json()


def installed(command: str) -> str:
    """How to type `command` by hand: the script beside this Python (the virtualenv's `.venv/bin/...`, which
    is not on PATH), relative to the current folder when it lies inside it."""
    script = Path(sys.executable).parent / command
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def run_demo(seconds: float, workdir: Path, broker_address: str | None, suite: Suite = Suite.ED25519) -> int:
    workdir = workdir.resolve()
    kid = _prepare(workdir, suite)
    python = sys.executable
    interrupted = False
    started = time.monotonic()
    with ExitStack() as stack:
        if broker_address is None:
            broker = stack.enter_context(MosquittoBroker(workdir / "broker"))
            broker_address = broker.address
        tcp_port, hj212_port = free_loopback_port(), free_loopback_port()
        boundary = (datetime.now(ZoneInfo(ZONE)) + timedelta(hours=FIRST_DAY_H)).strftime("%H:00")
        (workdir / "agent.toml").write_text(
            agent_config(workdir, broker_address, tcp_port, hj212_port=hj212_port, boundary=boundary, suite=suite)
        )
        sim_config = workdir / "simulators.toml"
        sim_config.write_text(simulators_config(broker_address, tcp_port, f"demo-platform-{kid}"))
        print(f"demo: workdir {workdir}, broker {broker_address}", flush=True)
        print("demo: the same pieces by hand (a new run's history starts where this one's ended):", flush=True)
        print(f"  mosquitto -p {broker_address.rsplit(':', 1)[1]}    # or any broker at {broker_address}", flush=True)
        chart = write_probe_chart(workdir)
        station_sim, station_agent = installed("station-sim"), installed("station-agent")
        print(f"  {station_sim} tank-chart --config {sim_config} {PROBE_TANK} > {chart}", flush=True)
        print(f"  {station_sim} run --config {workdir / 'simulators.toml'}    # and the platform receiver", flush=True)
        hj212 = [
            *HJ212_RECEIVER,
            str(workdir / HJ212_KEY),
            "--port",
            str(hj212_port),
            "--out",
            str(workdir / "hj212.jsonl"),
        ]
        print(f"  {station_sim} {' '.join(hj212[2:])}", flush=True)
        print(f"  {station_agent} run --config {workdir / 'agent.toml'}", flush=True)
        print(f"  {station_sim} fault --control {workdir / 'sim.sock'} list    # faults, while it runs", flush=True)
        print(
            f"  {station_sim} compare --sim-report {workdir / 'sim-report.json'} --db {workdir / 'platform.sqlite'} "
            f"--station {STATION_ID} --key {STATION_ID}={workdir / 'station.pub'}    # sales vs records, at the end",
            flush=True,
        )
        simulators = stack.enter_context(
            _process(
                [python, "-m", "simulators.cli", "run", "--config", str(workdir / "simulators.toml")],
                workdir / "simulators.log",
            )
        )
        _wait_for_platform(workdir, simulators)
        receiver = stack.enter_context(_process([sys.executable, *hj212], workdir / "hj212.log"))
        agent = stack.enter_context(
            _process([python, "-m", "agent.cli", "run", "--config", str(workdir / "agent.toml")], workdir / "agent.log")
        )
        shown, news = 0, Counter[str]()
        try:
            while (elapsed := time.monotonic() - started) < seconds:
                time.sleep(min(1.0, max(0.0, seconds - elapsed)))
                if agent.poll() is not None or simulators.poll() is not None:
                    print("demo: a process ended early; see agent.log and simulators.log", flush=True)
                    break
                status = _read_json(workdir / "status.json")
                print(
                    _status_line(time.monotonic() - started, status, _read_json(workdir / "platform-report.json")),
                    flush=True,
                )
                for record in _platform_records(workdir / "platform.sqlite", shown):
                    shown = record["seq"]
                    if (line := _news(record, news)) is not None:
                        print(line, flush=True)
        except KeyboardInterrupt:
            interrupted = True
            print("\ndemo: stopping (Ctrl-C)", flush=True)
        _terminate(agent)
        time.sleep(1.0)
        _terminate(simulators)
        _terminate(receiver)
    return _summarise(workdir, time.monotonic() - started, interrupted)


def _ecology_check(records: list[dict[str, Any]], workdir: Path) -> dict[str, Any]:
    """The ecology bureau's view: the failing nozzle's daily verdicts, the days closed, and the HJ 212 platform's
    count of frames it accepted and rejected (its summary is the last thing its log holds)."""
    vapour = [r["body"] for r in records if r["type"] == "vapour"]
    verdicts = [body["verdict"] for body in vapour if body["nozzle"] == VAPOUR_FAILING]
    days = [r["body"]["day"] for r in records if r["type"] == "daily_summary"]
    log = (workdir / "hj212.log").read_text(errors="replace") if (workdir / "hj212.log").exists() else ""
    receiver = _json_at_end(log)
    return {
        "vapour_failing": {"nozzle": VAPOUR_FAILING, "verdicts": verdicts},
        "days_closed": days,
        "hj212": {key: receiver.get(key) for key in ("accepted", "duplicates", "rejected", "by_cn", "by_code")},
    }


def _two_days_shown(ecology: dict[str, Any]) -> bool:
    verdicts = ecology["vapour_failing"]["verdicts"]
    return "warning" in verdicts and "alarm" in verdicts and len(ecology["days_closed"]) >= 2


def _json_at_end(text: str) -> dict[str, Any]:
    start = text.rfind("\n{") + 1
    try:
        found: dict[str, Any] = json.loads(text[start:])
    except ValueError:
        return {}
    return found


def _summarise(workdir: Path, elapsed: float, interrupted: bool) -> int:
    status = _read_json(workdir / "status.json")
    platform = _read_json(workdir / "sim-report.json").get("platform", {})
    station = platform.get("stations", {}).get(STATION_ID, {})
    recorder = status.get("recorder", {})
    check = cross_check(workdir)
    records = _platform_records(workdir / "platform.sqlite")
    alarms = _alarm_check(records)
    ecology = _ecology_check(records, workdir)
    head = recorder.get("head_seq", 0)
    ok = (
        bool(platform.get("ok"))
        and head > 0
        and station.get("upto") == head
        and station.get("by_type", {}).get("transaction", 0) > 0
        and not check["missing"]
        and not check["wrong_volume"]
        and not alarms["unexpected"]
        and (elapsed * TIME_SCALE < TWO_DAYS_S or _two_days_shown(ecology))
        and bool(ecology["hj212"]["accepted"])
        and not ecology["hj212"]["rejected"]
    )
    summary = {
        "ok": ok,
        "interrupted": interrupted,
        "seconds": round(elapsed, 1),
        "station": STATION_ID,
        "agent": {"head_seq": head, "acked_upto": recorder.get("acked_upto"), "health": status.get("health")},
        "platform": station,
        "sales_vs_transactions": check,
        "alarms": alarms,
        "ecology": ecology,
        "workdir": str(workdir),
    }
    print(json.dumps(summary, sort_keys=True), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(run_demo(float(os.environ.get("DEMO_SECONDS", "60")), Path("demo-run"), None))
