"""`station-agent provision`: from a blank box to a checked config, a device key, a CSR and a commissioning sheet.

The config is written to a provisional file beside its place, validated there by the very code behind
`check-config`, and only then moved into place: a config that would not load never lands, and no key is made
for one. An existing device key is kept, never replaced (it signed this station's history; `keygen` explains
the same); an existing config is replaced only with `--force`. The sheet is what the platform's registry needs
to accept the box: station id, the key's kid and public key, the fingerprint, the broker and what the box
polls.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import pwd
import sys
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.config import ConfigError, LoadedConfig
from agent.config_summary import summary
from agent.ledger.keys import DeviceKey, KeyFileError, KeySpec, generate_key_file, load_key_file
from agent.setup import agent_version, prepare
from agent.tools.dialogue import Answers, DialogueError, complete, system_timezone
from agent.tools.line_settings import LineSetting
from agent.tools.provision_arguments import LineDraft
from agent.tools.station_toml import (
    DevicePlan,
    ModbusLinePlan,
    SerialPlan,
    StationPlan,
    TcpPlan,
    TlsPlan,
    render,
)
from agent.tools.tls_request import TlsRequest, TlsRequestError, make_tls_request, read_tls_request
from agent.wiring import SetupError
from drivers.line_settings import DeviceSection, LineSection, RtuLineSection, TlsLineSection


class ProvisionError(Exception):
    """Provisioning stopped before it changed anything it should not; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Layout:
    """Where a provisioned box keeps its files: the config's folder, the state folder and the run folder."""

    config: Path
    state_dir: Path
    run_dir: Path

    @property
    def device_key(self) -> Path:
        return self.state_dir / "keys" / "device.key"

    @property
    def tls_key(self) -> Path:
        return self.state_dir / "keys" / "tls.key"

    @property
    def csr(self) -> Path:
        return self.config.parent / "tls" / "device.csr"

    @property
    def certificate(self) -> Path:
        return self.config.parent / "tls" / "device.crt"

    @property
    def platform_ca(self) -> Path:
        return self.config.parent / "tls" / "platform-ca.pem"


@dataclass(frozen=True, slots=True)
class CommissioningSheet:
    """What the installer hands to the platform's registry, and keeps with the station's papers."""

    loaded: LoadedConfig
    key: DeviceKey
    key_created: bool
    tls: TlsRequest | None
    layout: Layout
    provisioned_at: str
    owner: str

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the raw public key (Ed25519's 32 bytes, SM2's 65-byte point); for Ed25519 the kid is its
        first 16 hex digits."""
        return hashlib.sha256(self.key.public_raw).hexdigest()

    def to_json(self) -> dict[str, Any]:
        config = self.loaded.config
        tls_files = config.uplink.tls
        return {
            "station": config.station.id,
            "name": config.station.name,
            "timezone": config.station.timezone,
            "kid": self.key.kid,
            "suite": str(self.key.suite),
            "public_key_pem": self.key.public_pem(),
            "public_key_sha256": self.fingerprint,
            "key_file": str(config.keys.device_key),
            "key_created": self.key_created,
            "keys_owner": self.owner,
            "broker": config.uplink.broker,
            "prefix": config.uplink.prefix,
            "ack_mode": config.uplink.ack_mode,
            "tls": None
            if self.tls is None or tls_files is None
            else {
                "csr_file": str(self.layout.csr),
                "csr_pem": self.tls.csr_pem,
                "key_spki_sha256": self.tls.key_sha256,
                "cert_file": str(tls_files.cert_file),
                "ca_file": str(tls_files.ca_file),
            },
            "config_file": str(self.loaded.source),
            "config_sha256": self.loaded.sha256,
            "lines": [_line_json(line) for line in config.lines],
            "agent_version": agent_version(),
            "provisioned_at": self.provisioned_at,
        }

    def text(self) -> str:
        config = self.loaded.config
        made = "made now" if self.key_created else "kept: it was already there"
        out = [
            f"COMMISSIONING SHEET  station {config.station.id}  {config.station.name}  "
            f"{station_time(self.provisioned_at, config.station.timezone)}",
            f"device key   {config.keys.device_key} ({made}; owner {self.owner})",
            f"kid          {self.key.kid}",
            f"suite        {self.key.suite}",
            f"fingerprint  sha256:{self.fingerprint}  (of the raw public key)",
            "public key",
            self.key.public_pem().rstrip("\n"),
            f"broker       {config.uplink.broker}  acks from the {config.uplink.ack_mode}",
        ]
        tls_files = config.uplink.tls
        if self.tls is not None and tls_files is not None:
            out += [
                f"TLS request  {self.layout.csr}  (P-256 key {'made now' if self.tls.key_created else 'kept'},"
                f" sha256:{self.tls.key_sha256})",
                f"             send it to the platform; install the signed certificate as {tls_files.cert_file}",
                f"             and the platform's CA as {tls_files.ca_file}",
            ]
        else:
            out.append("TLS          off: plain MQTT, for a private network only")
        out += ["configured", *(f"  {row}" for row in summary(self.loaded).splitlines())]
        out.append("next         station-agent scan --port ...; edit the forecourt; station-agent selftest")
        return "\n".join(out)


def station_time(moment: str, zone: str) -> str:
    """A sheet's UTC time (`provisioned_at`) as the station's clock shows it, its zone named: the printed sheet is
    filed with papers in local time. A value that is no such time is given as it is."""
    try:
        local = datetime.fromisoformat(moment.replace("Z", "+00:00")).astimezone(ZoneInfo(zone))
    except (ValueError, ZoneInfoNotFoundError):
        return moment
    return f"{local:%Y-%m-%d %H:%M} {zone}"


def _line_json(line: LineSection) -> dict[str, Any]:
    where = (
        {"port": str(line.port), "baudrate": line.baudrate, "parity": line.parity}
        if isinstance(line, RtuLineSection | TlsLineSection)
        else {"host": line.host, "port": line.port}
    )
    devices = [
        {"name": device.name, "unit": device.unit, "profile": device.profile}
        if isinstance(device, DeviceSection)
        else {"name": device.name, "kind": "tank_gauge"}
        for device in line.devices
    ]
    return {"name": line.name, "kind": line.kind, **where, "devices": devices}


def provision(plan: StationPlan, layout: Layout, *, force: bool = False, service_user: str = "") -> CommissioningSheet:
    """Write and check the config, make or keep the device key, make the TLS key and CSR; ProvisionError says
    why it stopped (nothing is left half-written). Run as root with `service_user` set, the keys and the state
    folder are given to that user and the config made readable to its group only (see `_give_to`)."""
    if layout.config.exists() and not force:
        raise ProvisionError(
            f"{layout.config} already exists; give --force to replace it (the device key is kept either way)"
        )
    layout.config.parent.mkdir(parents=True, exist_ok=True)
    provisional = layout.config.with_name(f".{layout.config.name}.provisional")
    provisional.write_text(render(plan), encoding="utf-8")
    try:
        loaded = _validated(provisional)
        key, created = _device_key(plan.device_key, KeySpec.of(loaded.config.keys.suite, loaded.config.keys.sm2_id))
        request = _tls_request(plan, layout.csr)
    except BaseException:
        provisional.unlink(missing_ok=True)
        raise
    os.replace(provisional, layout.config)
    owner = _give_to(service_user, layout, plan)
    return CommissioningSheet(
        loaded=dataclasses.replace(loaded, source=layout.config),
        key=key,
        key_created=created,
        tls=request,
        layout=layout,
        provisioned_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        owner=owner,
    )


def _give_to(user: str, layout: Layout, plan: StationPlan) -> str:
    """The installer provisions as root, but the agent runs as its service user and must read its keys and
    write its state: hand those over, and let only the user's group read the config (it may hold an MQTT
    password). Not root, or no such user: nothing changes hands, and the sheet says who owns the files."""
    if os.geteuid() != 0 or not user:
        return pwd.getpwuid(os.geteuid()).pw_name
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        return "root"
    keys = [plan.device_key, *([plan.tls.key_file] if plan.tls else [])]
    for path in {layout.state_dir, *(key.parent for key in keys), *keys}:
        os.chown(path, account.pw_uid, account.pw_gid)
    os.chown(layout.config, 0, account.pw_gid)
    layout.config.chmod(0o640)
    return user


def _validated(path: Path, what: str = "the config these answers make") -> LoadedConfig:
    try:
        return prepare(path).loaded
    except ConfigError as exc:
        raise ProvisionError(f"{what} is not valid, so nothing was written:\n{exc}") from exc
    except SetupError as exc:
        raise ProvisionError(f"the devices cannot be set up, so nothing was written:\n{exc}") from exc


def _tls_request(plan: StationPlan, csr: Path) -> TlsRequest | None:
    if plan.tls is None:
        return None
    try:
        return make_tls_request(plan.tls.key_file, csr, plan.station_id)
    except (TlsRequestError, OSError) as exc:
        raise ProvisionError(str(exc)) from exc


def _device_key(path: Path, spec: KeySpec) -> tuple[DeviceKey, bool]:
    """The key at `path` if there is one (whatever its suite: a key is never replaced here, `rotate-key` moves a
    station to another suite), else a new one of `spec`."""
    try:
        if path.exists():
            return load_key_file(path, spec.sm2_id), False
        return generate_key_file(path, spec), True
    except (KeyFileError, OSError) as exc:
        raise ProvisionError(str(exc)) from exc


def reprint(config_path: Path) -> CommissioningSheet:
    """The commissioning sheet of a provisioned box, from its config, key and CSR as they are now: nothing is
    written, so the installer's edits to the config stay (provision --force would overwrite them)."""
    loaded = _validated(config_path, "the config")
    config = loaded.config
    try:
        key = load_key_file(config.keys.device_key)
    except KeyFileError as exc:
        raise ProvisionError(str(exc)) from exc
    layout = Layout(config_path.absolute(), config.keys.device_key.parent.parent, config.status.path.parent)
    request = None
    if config.uplink.tls is not None and config.uplink.tls.cert_file is not None:
        try:
            request = read_tls_request(layout.csr)
        except TlsRequestError as exc:
            raise ProvisionError(str(exc)) from exc
    owner = config.keys.device_key.stat().st_uid
    return CommissioningSheet(
        loaded=loaded,
        key=key,
        key_created=False,
        tls=request,
        layout=layout,
        provisioned_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        owner=_user_name(owner),
    )


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


# -- the command line ---------------------------------------------------------------------------------------


def _modbus_lines(drafts: list[LineDraft], lines_file: Path | None) -> tuple[ModbusLinePlan, ...]:
    plans = []
    for draft in drafts:
        if not draft.devices:
            raise ProvisionError(
                f"no --device after {draft.where}: give each line's devices as NAME:UNIT:PROFILE after its --port "
                "or --tcp (station-agent scan finds them)"
            )
        where: SerialPlan | TcpPlan
        if isinstance(draft.where, Path):
            where = SerialPlan(draft.where.absolute(), LineSetting(draft.baud, draft.parity))
        else:
            where = _tcp(draft.where)
        plans.append(ModbusLinePlan(where, tuple(draft.devices)))
    if lines_file is not None:
        plans += _lines_from_file(lines_file)
    return tuple(plans)


def _tcp(text: str) -> TcpPlan:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ProvisionError(f"--tcp {text!r} is not HOST:PORT, e.g. 192.168.10.20:502")
    return TcpPlan(host, int(port))


def _lines_from_file(path: Path) -> list[ModbusLinePlan]:
    """[[lines]] as the config writes them; each value is checked again with the whole config."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
        raise ProvisionError(f"--lines-file {path}: {exc}") from exc
    plans = []
    for index, line in enumerate(document.get("lines", [])):
        where = f"--lines-file {path}: lines[{index}]"
        try:
            devices = tuple(DevicePlan(d["name"], int(d["unit"]), d["profile"]) for d in line.get("devices", []))
            if line["kind"] == "rtu":
                setting = LineSetting(int(line.get("baudrate", 9600)), str(line.get("parity", "N")))
                plans.append(ModbusLinePlan(SerialPlan(path.parent / line["port"], setting), devices))
            elif line["kind"] == "tcp":
                plans.append(ModbusLinePlan(TcpPlan(str(line["host"]), int(line.get("port", 502))), devices))
            else:
                raise ProvisionError(f"{where}: kind {line['kind']!r}; give 'rtu' or 'tcp' (a gauge: --gauge-port)")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProvisionError(f"{where}: {exc!r} is missing or wrong; see config/station.example.toml") from exc
    if not plans:
        raise ProvisionError(f"--lines-file {path} has no [[lines]]")
    return plans


def _ask(prompt: str) -> str:
    """A question on the terminal; it goes to stderr, so that `--json` leaves stdout to the sheet."""
    _tell(prompt, end="")
    answer = sys.stdin.readline()
    if not answer:
        raise EOFError("the dialogue ended without an answer")
    return answer.rstrip("\n")


def _tell(text: str, end: str = "\n") -> None:
    print(text, end=end, file=sys.stderr, flush=True)


def from_arguments(args: argparse.Namespace, *, interactive: bool) -> CommissioningSheet:
    """Provision from parsed arguments; on a terminal (`interactive`), a dialogue completes missing answers."""
    given = Answers(args.station_id, args.name, args.timezone, args.broker)
    if interactive:
        try:
            given = complete(given, _ask, _tell, system_timezone())
        except (DialogueError, EOFError) as exc:
            raise ProvisionError(str(exc) or "the dialogue ended without answers") from exc
    missing = [flag for flag, value in (("--station-id", given.station_id), ("--broker", given.broker)) if not value]
    if missing:
        raise ProvisionError(f"give {' and '.join(missing)} (or run on a terminal for the guided dialogue)")
    lines = _modbus_lines(args.lines or [], args.lines_file)
    layout = Layout(args.config.absolute(), args.state_dir.absolute(), args.run_dir.absolute())
    ca_file = layout.platform_ca if args.ca_file is None else args.ca_file.absolute()
    tls = None if args.no_tls else TlsPlan(ca_file, layout.certificate, layout.tls_key)
    plan = StationPlan(
        station_id=given.station_id,
        name=given.name or given.station_id,
        timezone=given.timezone or system_timezone(),
        broker=given.broker,
        device_key=layout.device_key,
        outbox=layout.state_dir / "outbox.sqlite",
        status=layout.run_dir / "status.json",
        status_socket=layout.run_dir / "status.sock",
        tls=tls,
        lines=lines,
        gauge=None
        if args.gauge_port is None
        else SerialPlan(args.gauge_port.absolute(), LineSetting(args.gauge_baud, args.gauge_parity)),
        suite=args.suite,
    )
    return provision(plan, layout, force=args.force, service_user=args.service_user)


def sheet_output(sheet: CommissioningSheet, as_json: bool) -> str:
    return json.dumps(sheet.to_json(), indent=2) if as_json else sheet.text()
