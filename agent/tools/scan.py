"""`station-agent scan`: what answers on a serial port (or a Modbus TCP endpoint), at which settings, and which
shipped profile each Modbus slave fits.

Before any Modbus request, the scan asks for a Veeder-Root inventory (`i201`) at every setting: a gauge is
alone on its port, so when one answers anywhere the Modbus search is skipped altogether (at a setting the
gauge does not use, it would answer each Modbus request with noise, which reads as a wiring fault). The
settings are tried commonest first (9600 8N1 and 8E1, then 19200 8N1 and 8E1, then the rest: parity O at those
rates, then 38400 and 115200), so a usual line is found early; a setting the port refuses (a pty refuses parity
E) is said at once and skipped, and a progress line with an estimate goes to stderr every few seconds. A stop
signal (SIGTERM, Ctrl-C) ends the scan after the request under way, with what it found printed.

Unless a gauge answered, every unit id is asked for one holding register; any answer, an exception included, means
a slave is there (a device that keeps silent on a register it lacks is missed: scan the units it has with
`--units`). A slave found once is not looked for again at later settings, since a device answers at one baud rate
and parity. Answers that arrive broken (CRC or framing) are reported only for units never found whole: they hint at
a wrong parity or a line without termination.

Every miss costs two timeouts (the master keeps the line quiet one timeout after a silence, so that a late
answer cannot pass for the next unit's): at the default 100 ms, all 247 units take about 50 s per setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import signal
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from gettext import ngettext
from pathlib import Path
from typing import Any, Literal

from agent.tools.identify import Fit, rank
from agent.tools.line_settings import PARITIES, LineSetting
from agent.tools.scan_arguments import LOCAL_PROFILES, SCANNED_BAUD_RATES
from drivers.modbus.errors import (
    ModbusCrcError,
    ModbusError,
    ModbusExceptionResponse,
    ModbusFrameError,
    ModbusLinkError,
)
from drivers.modbus.master import SerialRtuMaster, TcpMaster
from drivers.profile_validation import load_profile
from drivers.profiles import DeviceKind, Profile, ProfileError, shipped_profile_dirs
from drivers.veeder_root.client import TlsClient, TlsSerialClient
from drivers.veeder_root.errors import TlsError
from drivers.veeder_root.reports import INVENTORY, decode_inventory

COMMON_SETTINGS = (LineSetting(9600, "N"), LineSetting(9600, "E"), LineSetting(19200, "N"), LineSetting(19200, "E"))
"""What most field devices ship with (and Chinese dispenser controllers are usually set to), tried first."""
NAME_PREFIX = {
    DeviceKind.PUMP_CONTROLLER: "pc",
    DeviceKind.PULSE_COUNTER: "pcm",
    DeviceKind.PRESSURE_SENSOR: "ps",
    DeviceKind.LEVEL_PROBE: "probe",
}


class ScanError(Exception):
    """The scan could not run: the port cannot be opened, or no profile could be read."""


@dataclass(frozen=True, slots=True)
class Found:
    """Something that answered: a Modbus slave (with the profiles it fits), a gauge, or a broken answer."""

    setting: LineSetting | None
    """None behind Modbus TCP, which has no line settings."""
    kind: Literal["modbus", "tls_gauge", "garbled"]
    unit: int | None = None
    fits: tuple[Fit, ...] = ()
    note: str = ""


_WHAT = {"modbus": "Modbus slave", "tls_gauge": "Veeder-Root TLS gauge", "garbled": "broken answers"}


@dataclass(frozen=True, slots=True)
class ScanReport:
    target: str
    serial: bool
    settings: tuple[LineSetting, ...]
    units: tuple[int, ...]
    elapsed_s: float
    found: tuple[Found, ...] = field(default=())
    refused: tuple[str, ...] = field(default=())
    """Settings the port would not take, and why (a pty refuses some parities; so do some USB adapters)."""
    interrupted: str | None = None
    """The signal that ended the scan early (SIGTERM, SIGINT): what it found until then is all there is."""

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "settings": [asdict(setting) for setting in self.settings],
            "units": _ranges(self.units),
            "elapsed_s": round(self.elapsed_s, 2),
            "found": [asdict(found) for found in self.found],
            "refused_settings": list(self.refused),
            "interrupted": self.interrupted,
        }

    def text(self) -> str:
        out = [
            f"scan of {self.target}: {', '.join(map(str, self.settings)) or 'tcp'}; units {_ranges(self.units)};"
            f" {self.elapsed_s:.1f} s",
        ]
        if self.refused:
            out.append(f"the port refused {', '.join(self.refused)}: those settings were not tried")
        if self.interrupted is not None:
            out.append(
                f"INTERRUPTED by {self.interrupted} after {self.elapsed_s:.1f} s: below is what was found until then;"
                " the rest of the settings and units were not asked"
            )
        if not self.found:
            if self.interrupted is None:
                out.append("nothing answered: check the wiring (A/B swapped?), the settings and the unit range")
            else:
                out.append("nothing had answered yet")
            return "\n".join(out)
        out.append(f"{'SETTING':<10}  {'UNIT':>4}  {'WHAT':<22}  PROFILES (best first) / NOTES")
        for found in self.found:
            unit = "-" if found.unit is None else str(found.unit)
            detail = ", ".join(_fit_text(fit) for fit in found.fits) or found.note
            out.append(f"{found.setting or 'tcp'!s:<10}  {unit:>4}  {_WHAT[found.kind]:<22}  {detail}")
        if any(found.kind == "modbus" for found in self.found):
            out.append(
                "Profiles carry no identity register: the first fits the most registers; check it against the "
                "device's label."
            )
        hint = self.provision_hint()
        if hint:
            out.append(f"for provision: {hint}")
        return "\n".join(out)

    def provision_hint(self) -> str:
        """`provision` flags for a gauge found, or for the Modbus slaves found when they share one setting (a
        line has one)."""
        if not self.serial:
            return ""
        gauges = [found.setting for found in self.found if found.kind == "tls_gauge" and found.setting]
        if gauges:
            return f"--gauge-port {self.target} --gauge-baud {gauges[0].baudrate} --gauge-parity {gauges[0].parity}"
        slaves = [found for found in self.found if found.kind == "modbus" and found.fits]
        settings = {found.setting for found in slaves}
        if len(settings) != 1 or (setting := settings.pop()) is None:
            return ""
        devices = [f"--device {NAME_PREFIX[f.fits[0].kind]}{f.unit}:{f.unit}:{f.fits[0].profile}" for f in slaves]
        return " ".join([f"--port {self.target} --baud {setting.baudrate} --parity {setting.parity}", *devices])


def _fit_text(fit: Fit) -> str:
    if not fit.capacity:
        return fit.profile
    block = "nozzles" if fit.kind == DeviceKind.PUMP_CONTROLLER else "channels"
    return f"{fit.profile} ({fit.blocks} of {fit.capacity} {block} read)"


def _ranges(units: Sequence[int]) -> str:
    """Unit ids as `parse_units` reads them: runs of consecutive ids as LOW-HIGH."""
    parts = []
    for _, run in itertools.groupby(enumerate(sorted(units)), key=lambda pair: pair[1] - pair[0]):
        ids = [unit for _, unit in run]
        parts.append(str(ids[0]) if len(ids) == 1 else f"{ids[0]}-{ids[-1]}")
    return ",".join(parts)


def profiles_in(directories: Iterable[Path]) -> list[Profile]:
    """Every profile in the directories; a name found twice is taken from the first directory, as the agent
    takes it."""
    profiles: dict[str, Profile] = {}
    for directory in directories:
        for path in sorted(directory.glob("*.toml")):
            try:
                profile = load_profile(path)
            except ProfileError as exc:
                raise ScanError(f"{path}: {exc}; fix or remove it, or scan with other --profile-dir") from exc
            profiles.setdefault(profile.name, profile)
    if not profiles:
        raise ScanError("no device profiles found; give a --profile-dir that holds *.toml profiles")
    return list(profiles.values())


def _gauge(client: TlsClient, setting: LineSetting) -> Found | None:
    try:
        report = decode_inventory(client.request(INVENTORY))
    except TlsError:
        return None
    finally:
        client.close()
    tanks = len(report.tanks)
    note = ngettext("{n} tank in its inventory (i201)", "{n} tanks in its inventory (i201)", tanks).format(n=tanks)
    return Found(setting, "tls_gauge", note=note)


class ScanProgress:
    """Says every `every_s` how far the scan is and how long the rest should take, from the pace so far: a full
    scan of a port takes minutes, and a silent one looks hung.

    The pace counts finished requests only, and units not asked again (found at an earlier setting) leave the
    total. The time left it says never grows: the pace wobbles (a slave found costs a few reads, a miss two
    timeouts), and an estimate that goes up reads as a scan going backwards; when the pace slows for good, the
    figure holds until the scan catches up with it."""

    def __init__(
        self,
        total_requests: int,
        units: int,
        say: Callable[[str], None],
        *,
        settings: int = 1,
        every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._total, self._units, self._say, self._every_s, self._clock = total_requests, units, say, every_s, clock
        self._settings = settings
        self._started = self._last = clock()
        self._done = 0
        self._first: int | None = None
        self._position = 1
        self._said_left_s: float | None = None

    def setting_starts(self, position: int = 1) -> None:
        """The scan moves to its `position`-th setting (1-based)."""
        self._first = None
        self._position = position

    def skipped(self, count: int) -> None:
        """`count` requests of the plan will not be made (their units were found at an earlier setting)."""
        self._total = max(self._done, self._total - count)

    def asked(self, setting: LineSetting | None, unit: int) -> None:
        """One unit id asked at `setting`, its answer (or silence) in."""
        self._done += 1
        self._first = unit if self._first is None else self._first
        now = self._clock()
        if now - self._last < self._every_s:
            return
        self._last = now
        left_s = (now - self._started) / self._done * max(0, self._total - self._done)
        if self._said_left_s is not None:
            left_s = min(left_s, self._said_left_s)
        self._said_left_s = left_s
        where = "tcp" if setting is None else f"baud {setting.baudrate} parity {setting.parity}"
        if self._settings > 1:
            where += f" (setting {self._position} of {self._settings})"
        self._say(f"{where}: units {self._first}-{unit} of {self._units}, {_duration(left_s)} left")


def _duration(seconds: float) -> str:
    return f"~{max(1, round(seconds))} s" if seconds < 90 else f"~{round(seconds / 60)} min"


def _slaves(
    master: SerialRtuMaster | TcpMaster,
    setting: LineSetting | None,
    units: Iterable[int],
    profiles: list[Profile],
    found: list[Found],
    *,
    progress: ScanProgress | None,
    stop: threading.Event | None,
) -> None:
    """Ask each unit at `setting`, adding what answers to `found` as it comes, so that a scan stopped halfway
    keeps what it had; returns early once `stop` is set."""
    try:
        for unit in units:
            if stop is not None and stop.is_set():
                return
            try:
                master.read_registers(unit, 3, 0, 1)
            except ModbusExceptionResponse:
                pass
            except (ModbusCrcError, ModbusFrameError) as exc:
                found.append(Found(setting, "garbled", unit, note=str(exc)))
                continue
            except ModbusLinkError as exc:
                raise ScanError(f"{exc} (is the agent running? stop it while you scan)") from exc
            except ModbusError:
                continue
            finally:
                if progress is not None:
                    progress.asked(setting, unit)
            fits, misfits = rank(profiles, master, unit)
            note = "" if fits else "fits no profile: " + "; ".join(f"{m.profile}: {m.reason}" for m in misfits)
            found.append(Found(setting, "modbus", unit, tuple(fits), note))
    finally:
        master.close()


GARBLED_LISTED = 3
"""Broken answers listed one by one at a setting; more are one row: at a wrong baud rate, a device that answers
every unit id (a tank gauge, a chatty device) garbles each of them alike."""


def _keep_whole(found: list[Found]) -> tuple[Found, ...]:
    whole = {item.unit for item in found if item.kind == "modbus"}
    kept = [item for item in found if item.kind != "garbled" or item.unit not in whole]
    garbled: dict[LineSetting | None, list[Found]] = {}
    for item in kept:
        if item.kind == "garbled":
            garbled.setdefault(item.setting, []).append(item)
    crowded = {setting: items for setting, items in garbled.items() if len(items) > GARBLED_LISTED}
    summary = {
        setting: Found(
            setting,
            "garbled",
            note=f"{len(items)} unit ids ({items[0].unit}-{items[-1].unit}) answered broken, e.g. {items[0].note}: "
            "a wrong baud rate or parity, or noise",
        )
        for setting, items in crowded.items()
    }
    rows: list[Found] = []
    for item in kept:
        if item.kind != "garbled" or item.setting not in crowded:
            rows.append(item)
        elif (row := summary.pop(item.setting, None)) is not None:
            rows.append(row)
    return tuple(rows)


def ordered_settings(baud_rates: Sequence[int], parities: Sequence[str]) -> tuple[LineSetting, ...]:
    """Every baud rate with every parity, the common settings first, then the rest in the order given."""
    settings = [LineSetting(baudrate, parity) for baudrate in baud_rates for parity in parities]
    common = [setting for setting in COMMON_SETTINGS if setting in settings]
    return (*common, *(setting for setting in settings if setting not in common))


def scan_serial(
    port: Path,
    profiles: list[Profile],
    *,
    baud_rates: Sequence[int] = SCANNED_BAUD_RATES,
    parities: Sequence[str] = PARITIES,
    units: Sequence[int] = tuple(range(1, 248)),
    timeout_s: float = 0.1,
    gauge_timeout_s: float = 1.0,
    say: Callable[[str], None] | None = None,
    say_every_s: float = 5.0,
    stop: threading.Event | None = None,
) -> ScanReport:
    """Gauges first at every setting, then, if none answered, the Modbus units at each setting in turn; `say`
    hears a progress line every `say_every_s`, and each setting the port refuses as it is refused. Once `stop`
    is set, the scan ends after the request under way and reports what it found until then."""
    started = time.monotonic()
    settings = ordered_settings(baud_rates, parities)
    found: list[Found] = []
    refused: dict[LineSetting, str] = {}
    for setting in reversed(settings):  # ending at the setting the Modbus search starts with: no switch between
        if stop is not None and stop.is_set():
            break
        try:
            gauge = _gauge(TlsSerialClient(port, setting.baudrate, setting.parity, gauge_timeout_s), setting)
        except termios.error as exc:
            refused[setting] = f"{setting} ({exc.args[-1]})"
            continue
        found[:0] = [gauge] if gauge is not None else []
    for setting in settings:
        if setting in refused and say is not None:
            say(f"the port refuses {refused[setting]}: that setting is skipped")
    modbus = [] if found else [setting for setting in settings if setting not in refused]
    progress = (
        None
        if say is None
        else ScanProgress(len(modbus) * len(units), len(units), say, settings=len(modbus), every_s=say_every_s)
    )
    for position, setting in enumerate(modbus, 1):
        if stop is not None and stop.is_set():
            break
        known = {item.unit for item in found if item.kind == "modbus"}
        asked = [unit for unit in units if unit not in known]
        if progress is not None:
            progress.setting_starts(position)
            progress.skipped(len(units) - len(asked))
        master = SerialRtuMaster(port, setting.baudrate, setting.parity, 1, timeout_s)
        try:
            _slaves(master, setting, asked, profiles, found, progress=progress, stop=stop)
        except termios.error as exc:
            refused[setting] = f"{setting} ({exc.args[-1]})"
    return ScanReport(
        str(port),
        True,
        settings,
        tuple(units),
        time.monotonic() - started,
        _keep_whole(found),
        tuple(refused[setting] for setting in settings if setting in refused),
    )


def scan_tcp(
    host: str,
    port: int,
    profiles: list[Profile],
    *,
    units: Sequence[int] = tuple(range(1, 248)),
    timeout_s: float,
    say: Callable[[str], None] | None = None,
    say_every_s: float = 5.0,
    stop: threading.Event | None = None,
) -> ScanReport:
    started = time.monotonic()
    progress = None if say is None else ScanProgress(len(units), len(units), say, every_s=say_every_s)
    found: list[Found] = []
    _slaves(TcpMaster(host, port, timeout_s), None, units, profiles, found, progress=progress, stop=stop)
    return ScanReport(f"tcp {host}:{port}", False, (), tuple(units), time.monotonic() - started, _keep_whole(found))


# -- the command line ---------------------------------------------------------------------------------------


def say(line: str) -> None:
    """A progress line on stderr, so that `--json` leaves stdout to the findings."""
    print(f"scan: {line}", file=sys.stderr, flush=True)


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _StopOnSignal:
    """While in use, SIGTERM and SIGINT (Ctrl-C) set `event` instead of ending the process, so the scan can
    report what it found; `signum` names the one that came."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._before: dict[int, Any] = {}

    def __enter__(self) -> _StopOnSignal:
        self._before = {signum: signal.signal(signum, self._heard) for signum in STOP_SIGNALS}
        return self

    def __exit__(self, *_exc: object) -> None:
        for signum, handler in self._before.items():
            signal.signal(signum, handler)

    def _heard(self, signum: int, _frame: object) -> None:
        self.signum = signum
        self.event.set()


def exit_code(report: ScanReport) -> int:
    """0, or 128 + the signal's number for a scan a signal ended (143 for SIGTERM, 130 for Ctrl-C), as a shell
    reports a command the signal killed: a script sees the scan did not finish, though it printed its findings."""
    return 0 if report.interrupted is None else 128 + signal.Signals[report.interrupted].value


def from_arguments(args: argparse.Namespace) -> ScanReport:
    local = [LOCAL_PROFILES] if LOCAL_PROFILES.is_dir() else []
    profiles = profiles_in([*args.profile_dir, *local, *shipped_profile_dirs()])
    timeout_s, every_s = args.timeout_ms / 1000, args.progress_s
    with _StopOnSignal() as stop:
        if args.tcp is not None:
            host, _, port = args.tcp.rpartition(":")
            if not host or not port.isdigit():
                raise ScanError(f"--tcp {args.tcp!r} is not HOST:PORT, e.g. 192.168.10.20:502")
            report = scan_tcp(
                host, int(port), profiles, units=args.units, timeout_s=timeout_s, say=say, say_every_s=every_s,
                stop=stop.event,
            )  # fmt: skip
        else:
            report = scan_serial(
                args.port,
                profiles,
                baud_rates=args.baud,
                parities=args.parity,
                units=args.units,
                timeout_s=timeout_s,
                gauge_timeout_s=args.gauge_timeout_ms / 1000,
                say=say,
                say_every_s=every_s,
                stop=stop.event,
            )
    if stop.signum is None:
        return report
    return dataclasses.replace(report, interrupted=signal.Signals(stop.signum).name)


def report_output(report: ScanReport, as_json: bool) -> str:
    return json.dumps(report.to_json(), indent=2) if as_json else report.text()
