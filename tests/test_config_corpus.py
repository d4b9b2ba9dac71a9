"""The broken-config corpus: each mistake an installer makes, and the exact words check-config answers with.

Every case is the good station below with one mistake (or two, where the point is that both come back in
one pass), and the full list of problems it must get: the field's path, the value as the file has it, and what
is allowed or how to write it. A change of wording is a change to what installers read, so it shows here.
"""

# ruff: noqa: E501 - each pinned message is one line, as check-config prints it

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import ConfigError
from agent.config_validation import load_config

GOOD = """
[station]
id = "ST-1"
timezone = "Asia/Shanghai"

[uplink]
broker = "127.0.0.1:1883"

[[lines]]
kind = "rtu"
name = "rs485-1"
port = "/dev/ttyS1"

[[lines.devices]]
name = "pc1"
unit = 1
profile = "sim-pump-controller"

[[lines.devices]]
name = "pcm1"
unit = 11
profile = "sim-pulse-counter"

[[lines]]
kind = "tls"
name = "gauge"
port = "/dev/ttyS2"

[[lines.devices]]
name = "tg1"

[[dispensers]]
id = "D1"

[[dispensers.nozzles]]
id = "D1-N1"
grade = "92"
tank = "T1"
controller = "pc1"
controller_nozzle = 1
pulse = { device = "pcm1", channel = 1, ml_per_pulse = 10 }

[[tanks]]
id = "T1"
product = "gasoline"
density_20_kg_m3 = 737
capacity_l = 30000
gauge = { device = "tg1", tank = 1 }

"""
WITHOUT_TANKS = GOOD[: GOOD.index("[[tanks]]")]
EMPTY = GOOD[: GOOD.index("[[dispensers]]")]
TWICE = GOOD.replace(
    "[[tanks]]",
    '[[dispensers.nozzles]]\nid = "D1-N1"\ngrade = "95"\ntank = "T1"\ncontroller = "pc1"\ncontroller_nozzle = 1\n\n'
    "[[tanks]]",
)
WITH_TWO_MISTAKES = GOOD.replace('tank = "T1"\n', 'tank = "T2"\n').replace(
    'id = "ST-1"', 'id = "ST-1"\ntimezon = "Asia/Shanghai"'
)


def edited(*changes: tuple[str, str]) -> str:
    """GOOD with each (old, new) replaced once; the old text must be there."""
    text = GOOD
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


CORPUS: list[tuple[str, str, list[str]]] = [
    (
        "unit as text",
        edited(("unit = 11", 'unit = "11"')),
        [
            "lines[0].devices[1].unit: found '11'; must be a number, without quotes: unit = 11 (the Modbus slave address, 1..247)",
        ],
    ),
    (
        "unit as float",
        edited(("unit = 11", "unit = 11.0")),
        [
            "lines[0].devices[1].unit: found 11.0; must be a whole number, without a decimal point: unit = 11 (the Modbus slave address, 1..247)",
        ],
    ),
    (
        "unit as fraction",
        edited(("unit = 11", "unit = 11.5")),
        [
            "lines[0].devices[1].unit: found 11.5; must be a whole number, not a fraction (the Modbus slave address, 1..247)",
        ],
    ),
    (
        "unit as bool",
        edited(("unit = 11", "unit = true")),
        [
            "lines[0].devices[1].unit: found true; must be a whole number, not true or false (the Modbus slave address, 1..247)",
        ],
    ),
    (
        "unit out of range",
        edited(("unit = 11", "unit = 0")),
        [
            "lines[0].devices[1].unit: found 0; must be >= 1 (the Modbus slave address, 1..247)",
        ],
    ),
    (
        "duplicate unit",
        edited(("unit = 11", "unit = 1")),
        [
            "lines[0].devices[1].unit: found 1; each unit on line 'rs485-1' must be unique; this one is repeated",
        ],
    ),
    (
        "baud as text",
        edited(('port = "/dev/ttyS1"', 'port = "/dev/ttyS1"\nbaudrate = "9600"')),
        [
            "lines[0].baudrate: found '9600'; must be 1200, 2400, 4800, 9600, 19200, 38400, 57600 or 115200; without quotes: baudrate = 9600 (the line's baud rate)",
        ],
    ),
    (
        "odd baud",
        edited(('port = "/dev/ttyS1"', 'port = "/dev/ttyS1"\nbaudrate = 9601')),
        [
            "lines[0].baudrate: found 9601; must be 1200, 2400, 4800, 9600, 19200, 38400, 57600 or 115200 (the line's baud rate)",
        ],
    ),
    (
        "parity lower case",
        edited(('port = "/dev/ttyS1"', 'port = "/dev/ttyS1"\nparity = "e"')),
        [
            "lines[0].parity: found 'e'; must be 'N', 'E' or 'O' (parity: N, E or O)",
        ],
    ),
    (
        "poll interval as float",
        edited(('profile = "sim-pump-controller"', 'profile = "sim-pump-controller"\npoll_interval_ms = 500.0')),
        [
            "lines[0].devices[0].poll_interval_ms: found 500.0; must be a whole number, without a decimal point: poll_interval_ms = 500 (poll period in ms (50..3600000))",
        ],
    ),
    (
        "misspelt key",
        edited(('profile = "sim-pump-controller"', 'profle = "sim-pump-controller"')),
        [
            "lines[0].devices[0].profile: found nothing; must be given (the name of the device's profile in the profile directories)",
            "lines[0].devices[0].profle: found 'sim-pump-controller'; unknown field; did you mean 'profile'? known fields here: name, unit, profile, poll_interval_ms",
        ],
    ),
    (
        "typo and bad tank in one pass",
        WITH_TWO_MISTAKES,
        [
            "station.timezon: found 'Asia/Shanghai'; unknown field; did you mean 'timezone'? known fields here: id, name, timezone, locale, allow_empty",
            "dispensers[0].nozzles[0].tank: found 'T2'; must name a tank under [[tanks]]: T1",
        ],
    ),
    (
        "nozzle tank with no tanks at all",
        WITHOUT_TANKS,
        [
            "dispensers[0].nozzles[0].tank: found 'T1'; must name a tank under [[tanks]], and there are none: add the [[tanks]], or leave tank out",
        ],
    ),
    (
        "unknown controller",
        edited(('controller = "pc1"', 'controller = "pc2"')),
        [
            "dispensers[0].nozzles[0].controller: found 'pc2'; must name a Modbus device under [[lines]]; known: pc1, pcm1",
        ],
    ),
    (
        "unknown pulse device",
        edited(('device = "pcm1"', 'device = "pcm9"')),
        [
            "dispensers[0].nozzles[0].pulse.device: found 'pcm9'; must name a Modbus device under [[lines]]; known: pc1, pcm1",
        ],
    ),
    (
        "pulse channel as text",
        edited(("channel = 1,", 'channel = "1",')),
        [
            "dispensers[0].nozzles[0].pulse.channel: found '1'; must be a number, without quotes: channel = 1 (the counter channel, 1..64)",
        ],
    ),
    (
        "controller nozzle as bool",
        edited(("controller_nozzle = 1", "controller_nozzle = true")),
        [
            "dispensers[0].nozzles[0].controller_nozzle: found true; must be a whole number, not true or false (the nozzle's number on its controller, 1..32)",
        ],
    ),
    (
        "unknown gauge",
        edited(('gauge = { device = "tg1"', 'gauge = { device = "tg2"')),
        [
            "tanks[0].gauge.device: found 'tg2'; must name a tank gauge on a 'tls' or 'tls_tcp' line; known: tg1",
        ],
    ),
    (
        "gauge tank as float",
        edited(("tank = 1 }", "tank = 1.0 }")),
        [
            "tanks[0].gauge.tank: found 1.0; must be a whole number, without a decimal point: tank = 1 (the tank's number on the gauge, 1..99)",
        ],
    ),
    (
        "tank probe is unknown",
        edited(('gauge = { device = "tg1", tank = 1 }', 'probe = "lp1"\nchart = [[0, 0], [2000, 30000]]')),
        [
            "tanks[0].probe: found 'lp1'; must name a Modbus device under [[lines]]; known: pc1, pcm1",
        ],
    ),
    (
        "tank with two densities",
        edited(("density_20_kg_m3 = 737", "density_20_kg_m3 = 737\ndensity_15_kg_m3 = 741")),
        [
            "tanks[0]: tank T1: give one density, density_20_kg_m3 (the standard density at 20 degC that the delivery note gives) or density_15_kg_m3, not both",
        ],
    ),
    (
        "tank capacity as text",
        edited(("capacity_l = 30000", 'capacity_l = "30000"')),
        [
            "tanks[0].capacity_l: found '30000'; must be a number, without quotes: capacity_l = 30000 (the tank's nominal capacity in litres)",
        ],
    ),
    (
        "product unknown",
        edited(('product = "gasoline"', 'product = "petrol"')),
        [
            "tanks[0].product: found 'petrol'; must be 'gasoline' or 'diesel' (the product family, as the records name it)",
        ],
    ),
    (
        "station id with a space",
        edited(('id = "ST-1"', 'id = "ST 1"')),
        [
            "station.id: found 'ST 1'; must be 1-64 letters, digits, '_', '-', '.' (the station id the platform registered)",
        ],
    ),
    (
        "station id as number",
        edited(('id = "ST-1"', "id = 1")),
        [
            'station.id: found 1; must be text in quotes, e.g. id = "1" (the station id the platform registered)',
        ],
    ),
    (
        "unknown zone",
        edited(('timezone = "Asia/Shanghai"', 'timezone = "China"')),
        [
            "station.timezone: found 'China'; must be an IANA time zone name such as 'Asia/Shanghai' (the station's local time zone)",
        ],
    ),
    (
        "broker without port",
        edited(('broker = "127.0.0.1:1883"', 'broker = "127.0.0.1"')),
        [
            "uplink.broker: found '127.0.0.1'; must be HOST:PORT, e.g. '127.0.0.1:1883' (the MQTT broker as HOST:PORT)",
        ],
    ),
    (
        "keepalive as text",
        edited(('broker = "127.0.0.1:1883"', 'broker = "127.0.0.1:1883"\nkeepalive_s = "30"')),
        [
            "uplink.keepalive_s: found '30'; must be a number, without quotes: keepalive_s = 30 (MQTT keep-alive in seconds (5..3600))",
        ],
    ),
    (
        "led enabled as text",
        edited(("[uplink]", '[led]\nenabled = "yes"\n\n[uplink]')),
        [
            "led.enabled: found 'yes'; must be true or false, without quotes: enabled = true (drive the status LED)",
        ],
    ),
    (
        "retention days as text",
        edited(("[uplink]", '[outbox]\nretention_days = "30"\n\n[uplink]')),
        [
            "outbox.retention_days: found '30'; must be a number, without quotes: retention_days = 30 (how long acknowledged records stay for re-sends, in days)",
        ],
    ),
    (
        "bare time of day",
        edited(("[uplink]", "[daily]\nboundary = 06:00:00\n\n[uplink]")),
        [
            "daily.boundary: found '06:00:00'; must be a local time of day as HH:MM, 00:00 to 23:59 (the local time of day at which one day's books end and the next day's begin; a time that a daylight saving change skips is read with the offset before the change (02:30 becomes 03:30))",
        ],
    ),
    (
        "duplicate nozzle",
        TWICE,
        [
            "dispensers[0].nozzles[1].id: found 'D1-N1'; each nozzle id must be unique; this one is repeated",
            "dispensers[0].nozzles[1].controller_nozzle: found 'pc1#1'; each controller nozzle must be unique; this one is repeated",
        ],
    ),
    (
        "empty station",
        EMPTY,
        [
            "station: found no [[dispensers]] and no [[tanks]]; a station with nothing to watch records nothing: add the forecourt (station-agent scan finds the devices), or set allow_empty = true under [station] for a box that is still being set up",
        ],
    ),
    (
        "duplicate device name",
        edited(('name = "pcm1"', 'name = "pc1"')),
        [
            "lines[0].devices[1].name: found 'pc1'; each device name must be unique; this one is repeated",
            "dispensers[0].nozzles[0].pulse.device: found 'pcm1'; must name a Modbus device under [[lines]]; known: pc1",
        ],
    ),
    (
        "verification of unknown device",
        edited(("[uplink]", '[[verifications]]\ndevice = "pc9"\ncertificate = "JD-1"\n\n[uplink]')),
        [
            "verifications[0].device: found 'pc9'; must name a device under [[lines]]; known: pc1, pcm1, tg1",
        ],
    ),
    (
        "date where text is meant",
        edited(('id = "ST-1"', 'id = "ST-1"\nname = 2026-01-01')),
        [
            'station.name: found the TOML date/time 2026-01-01; write it in quotes: "2026-01-01"',
        ],
    ),
]


def test_the_good_station_loads(tmp_path: Path) -> None:
    """The corpus's starting point is itself a valid config, so each case shows only its own mistake."""
    path = tmp_path / "agent.toml"
    path.write_text(GOOD)
    assert load_config(path).config.station.id == "ST-1"


def test_the_corpus_is_large_enough() -> None:
    """At least thirty distinct mistakes are pinned."""
    assert len({name for name, _, _ in CORPUS}) == len(CORPUS) >= 30


@pytest.mark.parametrize(
    ("text", "expected"), [(text, expected) for _, text, expected in CORPUS], ids=[c[0] for c in CORPUS]
)
def test_each_mistake_gets_its_exact_message(tmp_path: Path, text: str, expected: list[str]) -> None:
    """check-config reports every problem of the file in one pass, each in the words pinned here."""
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert [str(problem) for problem in caught.value.problems] == expected
