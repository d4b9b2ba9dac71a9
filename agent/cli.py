"""`station-agent`: run the agent, and the tools an installer uses around it.

Exit codes: 0 all well; 1 the agent failed while running; 2 something to fix in the config, key, profiles or
outbox, or a part not installed (the message says what; an outbox the agent refuses names `station-agent recover`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from gettext import ngettext
from pathlib import Path

from agent import start_failure
from agent.config import ConfigError, LoadedConfig
from agent.config_summary import summary
from agent.config_validation import load_config
from agent.handover import exec_agent
from agent.ledger.keys import DeviceKey, KeyFileError, KeySpec, generate_key_file, load_key_file
from agent.ledger.suites import Suite
from agent.locale import LANGUAGES, language_for_zone
from agent.setup import agent_version, prepare
from agent.status_settings import StatusSection
from agent.tools import provision_arguments, scan_arguments
from agent.tools.profile_list import list_profiles, profile_listing_text
from agent.wiring import Setup, SetupError
from drivers.profile_validation import load_profile
from drivers.profiles import ProfileError, shipped_profile_dirs

EXIT_OK, EXIT_FAILED, EXIT_FIX_INPUT = 0, 1, 2
DEFAULT_CONFIG = Path("/etc/station-agent/agent.toml")
DEFAULT_KEY = Path("/var/lib/station-agent/keys/device.key")


def _fail(message: str, code: int = EXIT_FIX_INPUT) -> int:
    print(f"station-agent: {message}", file=sys.stderr)
    return code


def _load(path: Path) -> LoadedConfig | int:
    try:
        return load_config(path)
    except ConfigError as exc:
        return _fail(str(exc))


def _prepare(path: Path) -> Setup | int:
    try:
        return prepare(path)
    except ConfigError as exc:
        return _fail(str(exc))
    except SetupError as exc:
        return _fail(f"{path}: devices and profiles:\n{exc}")


def cmd_run(args: argparse.Namespace) -> int:
    try:
        setup = prepare(args.config)
    except ConfigError as exc:
        zone = start_failure.station_words(args.config).zone
        start_failure.record(start_failure.note_directory(None), "config", start_failure.config_detail(exc), zone)
        return _fail(str(exc))
    except SetupError as exc:
        zone = start_failure.station_words(args.config).zone
        start_failure.record(start_failure.note_directory(None), "setup", start_failure.first_line(str(exc)), zone)
        return _fail(f"{args.config}: devices and profiles:\n{exc}")
    exec_agent(setup)
    return EXIT_FAILED


def cmd_check_config(args: argparse.Namespace) -> int:
    setup = _prepare(args.config)
    if isinstance(setup, int):
        return setup
    print(summary(setup.loaded))
    return EXIT_OK


def cmd_keygen(args: argparse.Namespace) -> int:
    path: Path = args.path
    spec = KeySpec(Suite(args.suite or "ed25519"))
    if args.config is not None:
        loaded = _load(args.config)
        if isinstance(loaded, int):
            return loaded
        path = loaded.config.keys.device_key
        spec = KeySpec.of(args.suite or loaded.config.keys.suite, loaded.config.keys.sm2_id)
    try:
        key = generate_key_file(path, spec)
    except (KeyFileError, OSError) as exc:
        return _fail(str(exc))
    if args.public_out is not None:
        args.public_out.write_text(key.public_pem())
    _print_public(key)
    print(f"private key: {path} (mode 0600; keep it on this box)")
    return EXIT_OK


def cmd_key_public(args: argparse.Namespace) -> int:
    """The public half of an existing device key, as keygen printed it, for the platform's registry."""
    path: Path = args.path
    if args.config is not None:
        loaded = _load(args.config)
        if isinstance(loaded, int):
            return loaded
        path = loaded.config.keys.device_key
    try:
        key = load_key_file(path)
    except KeyFileError as exc:
        return _fail(str(exc))
    if args.public_out is not None:
        args.public_out.write_text(key.public_pem())
    _print_public(key)
    return EXIT_OK


def _print_public(key: DeviceKey) -> None:
    """What the platform's registry takes for a key: its public PEM, kid and suite."""
    print(key.public_pem(), end="")
    print(f"kid: {key.kid}")
    print(f"suite: {key.suite}")


def cmd_profile_list(args: argparse.Namespace) -> int:
    """Every profile the agent would find, local ones first, with the words its author gave it."""
    directories = [*args.profile_dir, *_local_profile_dirs(args.config), *shipped_profile_dirs()]
    listing = list_profiles(directories)
    if args.json:
        print(json.dumps([entry.to_json() for entry in listing], indent=2))
    else:
        print(profile_listing_text(listing))
    return EXIT_FIX_INPUT if any(entry.problem for entry in listing) else EXIT_OK


def _local_profile_dirs(config: Path | None) -> list[Path]:
    """The config's profile_dirs; without --config, the default config's when it can be read, else its default."""
    if config is not None:
        loaded = _load(config)
        return [] if isinstance(loaded, int) else list(loaded.config.profile_dirs)
    try:
        return list(load_config(DEFAULT_CONFIG).config.profile_dirs)
    except ConfigError:
        return [Path("/etc/station-agent/profiles")]


def cmd_sheet(args: argparse.Namespace) -> int:
    from agent.tools import provision  # noqa: PLC0415 - the installer's tools load for their commands, not for `run`

    try:
        sheet = provision.reprint(args.config)
    except provision.ProvisionError as exc:
        return _fail(str(exc))
    print(provision.sheet_output(sheet, args.json))
    return EXIT_OK


def cmd_profile_check(args: argparse.Namespace) -> int:
    try:
        profile = load_profile(args.file)
    except ProfileError as exc:
        return _fail(str(exc))
    requests = profile.plan_reads(range(1, profile.capacity + 1))
    points = len(profile.document.points)
    repeated = f" with up to {profile.capacity} {profile.repeated}s" if profile.repeated else ""
    print(
        f"{profile.name}: a {profile.kind}{repeated}, " + ngettext("{n} point", "{n} points", points).format(n=points)
    )
    print(
        ngettext(
            "a poll of all nozzles takes {n} request: ", "a poll of all nozzles takes {n} requests: ", len(requests)
        ).format(n=len(requests))
        + ", ".join(f"fc{r.function} @0x{r.address:04X} x{r.count}" for r in requests)
    )
    return EXIT_OK


LAB_PACKAGES = frozenset({"station_lab", "simulators"})
LAB_INSTALL = "in a checkout of the source, run `make install` (or `.venv/bin/pip install -e ./lab`)"


def cmd_demo(args: argparse.Namespace) -> int:
    """The demo is the lab's (lab/station_lab/demo.py): imported here, when asked for, so that the gateway's
    commands never load the simulators, and a gateway's package, which has no lab, says what is missing."""
    try:
        from station_lab.demo import run_demo  # noqa: PLC0415 - the lab, only for this command
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in LAB_PACKAGES:
            raise
        return _fail(
            "the demo needs the lab (the simulators, a broker and the reference platform), "
            f"which is not installed here: {LAB_INSTALL}"
        )
    return run_demo(args.seconds, args.workdir, args.broker, Suite(args.suite))


STATUS_EXIT = {"ok": 0, "degraded": 1, "fault": 2, "stopped": 3, "starting": 5}
STATUS_NOT_RUNNING, STATUS_UNREADABLE = 3, 4


def cmd_status(args: argparse.Namespace) -> int:
    """Exit codes of its own, for scripts: 0 ok, 1 degraded, 2 fault, 3 agent not running (or stopped), 4 cannot
    tell (a config that cannot be read, an answer that cannot be understood), 5 starting. With --json, stdout
    always holds one JSON document, whatever the exit code."""
    # the snapshot's readers and the socket client, imported by this command only: `station-agent run` needs
    # neither before it execs into the agent process (each import there is paid again after the exec)
    from agent.status import StatusFormatError, no_status_json, read_status  # noqa: PLC0415
    from agent.status_socket import ask  # noqa: PLC0415
    from agent.status_text import STARTING_UP, not_running, render, said  # noqa: PLC0415

    where = _status_socket(args.socket, args.config)
    if where is None:
        return _status_unknown(args.json, "config", "the config cannot be read")
    socket_path, station_language = where
    language = args.lang or station_language
    try:
        document = ask(socket_path)
    except OSError as exc:
        failure = start_failure.read(socket_path.parent)
        reason = str(exc.strerror or exc)
        if failure is not None:
            reason += f"; it last stopped at {failure.when}: {failure.kind}: {failure.detail}"
        if args.json:
            print(no_status_json("stopped", "agent_not_running", str(socket_path), reason).decode())
        else:
            print(not_running(language, socket_path, exc, failure))
        return STATUS_NOT_RUNNING
    if not document:
        print('{"health":"starting","problems":[]}' if args.json else said(STARTING_UP, language))
        return STATUS_EXIT["starting"]
    try:
        status = read_status(document)
    except StatusFormatError as exc:
        return _status_unknown(args.json, str(socket_path), f"the agent at {socket_path} gave {exc}")
    print(document.decode() if args.json else render(status, args.lang))
    return STATUS_EXIT[status.health]


def _status_unknown(as_json: bool, subject: str, reason: str) -> int:
    from agent.status import no_status_json  # noqa: PLC0415 - as in cmd_status

    if as_json:
        print(no_status_json("unknown", "status_unreadable", subject, reason).decode())
    return _fail(reason, STATUS_UNREADABLE)


def _status_socket(socket_path: Path | None, config: Path | None) -> tuple[Path, str] | None:
    """The socket given, or the one the config names, and the station's language; a config given must be read,
    while the default one may be broken (the station's language is then read from it leniently) or unreadable to
    staff outside the agent's group, who then ask at the default socket (in English, until the agent's answer
    says the station's language)."""
    if config is None:
        try:
            station = load_config(DEFAULT_CONFIG).config
        except ConfigError:
            return socket_path or StatusSection().socket, start_failure.station_words(DEFAULT_CONFIG).language or "en"
    else:
        loaded = _load(config)
        if isinstance(loaded, int):
            return None
        station = loaded.config
    language = station.station.locale or language_for_zone(station.station.timezone)
    return socket_path or station.status.socket, language


def cmd_provision(args: argparse.Namespace) -> int:
    from agent.tools import provision  # noqa: PLC0415 - as in cmd_sheet

    try:
        sheet = provision.from_arguments(args, interactive=sys.stdin.isatty())
    except provision.ProvisionError as exc:
        return _fail(str(exc))
    print(provision.sheet_output(sheet, args.json))
    return EXIT_OK


def cmd_scan(args: argparse.Namespace) -> int:
    from agent.tools import scan  # noqa: PLC0415 - as in cmd_sheet

    try:
        report = scan.from_arguments(args)
    except scan.ScanError as exc:
        return _fail(str(exc))
    print(scan.report_output(report, args.json))
    return scan.exit_code(report)


def cmd_selftest(args: argparse.Namespace) -> int:
    from agent.tools import selftest  # noqa: PLC0415 - its broker check loads the MQTT client: not for `run`

    checks = selftest.run_selftest(args.config, broker_timeout_s=args.broker_timeout_s)
    print(selftest.output(checks, args.json))
    return EXIT_FAILED if selftest.failed(checks) else EXIT_OK


def cmd_recover(args: argparse.Namespace) -> int:
    """Set a refused outbox aside and leave word in the chain anchor for the next start's chain_reset; with
    --after-seq, also write a sound anchor where there is none, or a damaged one, so the next chain starts above
    what the platform holds instead of forking it at seq 1."""
    loaded = _load(args.config)
    if isinstance(loaded, int):
        return loaded
    from agent.tools import recover  # noqa: PLC0415 - the outbox's opening and the record types: not for `run`

    try:
        recover.recover(loaded.config, args.after_seq)
    except recover.RecoverError as exc:
        return _fail(str(exc))
    return EXIT_OK


def cmd_web(args: argparse.Namespace) -> int:
    """The local web page, a process of its own beside the agent (agent/web/)."""
    loaded = _load(args.config)
    if isinstance(loaded, int):
        return loaded
    if not loaded.config.web.enabled:
        return _fail(f"{args.config}: the web page is off; set enabled = true under [web] (and a pin_hash) to serve it")
    from agent.web.server import serve  # noqa: PLC0415 - the agent's own commands never load the web page

    try:
        return serve(loaded)
    except OSError as exc:
        return _fail(f"cannot serve the web page on {loaded.config.web.listen}: {exc.strerror or exc}", EXIT_FAILED)


def cmd_web_pin(_args: argparse.Namespace) -> int:
    """Ask for a PIN twice (not echoed) and print the config line with its salted hash, never the PIN."""
    import getpass  # noqa: PLC0415

    from agent.web.pin import PinError, hash_pin  # noqa: PLC0415

    ask_pin = getpass.getpass if sys.stdin.isatty() else lambda _prompt: sys.stdin.readline().rstrip("\n")
    pin = ask_pin("PIN for the web page: ")
    if ask_pin("the same PIN again: ") != pin:
        return _fail("the two PINs differ; nothing printed")
    try:
        line = hash_pin(pin)
    except PinError as exc:
        return _fail(str(exc))
    print(f'pin_hash = "{line}"')
    return EXIT_OK


def cmd_version(_args: argparse.Namespace) -> int:
    print(agent_version())
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="station-agent", description="Fuel-station supervision agent.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the agent (what the systemd unit starts)")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"config file (default {DEFAULT_CONFIG})")
    run.set_defaults(handler=cmd_run)

    check = commands.add_parser("check-config", help="validate a config file and summarise the station")
    check.add_argument("config", type=Path, nargs="?", default=DEFAULT_CONFIG)
    check.set_defaults(handler=cmd_check_config)

    keygen = commands.add_parser("keygen", help="make the device's signing key (never overwrites one)")
    keygen.add_argument("path", type=Path, nargs="?", default=DEFAULT_KEY, help=f"key file (default {DEFAULT_KEY})")
    keygen.add_argument("--config", type=Path, help="take the key path from this config instead")
    keygen.add_argument("--public-out", type=Path, help="also write the public key (PEM) to this file")
    keygen.add_argument(
        "--suite", choices=("ed25519", "sm2"), help="signing suite (default: the config's [keys] suite, or ed25519)"
    )
    keygen.set_defaults(handler=cmd_keygen)

    key = commands.add_parser("key", help="the device key that exists")
    key_commands = key.add_subparsers(dest="key_command", required=True, metavar="COMMAND")
    key_public = key_commands.add_parser("public", help="print an existing key's public PEM and kid (changes nothing)")
    key_public.add_argument("path", type=Path, nargs="?", default=DEFAULT_KEY, help=f"key file (default {DEFAULT_KEY})")
    key_public.add_argument("--config", type=Path, help="take the key path from this config instead")
    key_public.add_argument("--public-out", type=Path, help="also write the public key (PEM) to this file")
    key_public.set_defaults(handler=cmd_key_public)

    profile = commands.add_parser("profile", help="device profiles")
    profile_commands = profile.add_subparsers(dest="profile_command", required=True, metavar="COMMAND")
    profile_check = profile_commands.add_parser("check", help="validate a profile file")
    profile_check.add_argument("file", type=Path)
    profile_check.set_defaults(handler=cmd_profile_check)
    profile_list = profile_commands.add_parser("list", help="the profiles the agent finds, local then shipped")
    profile_list.add_argument(
        "--profile-dir", type=Path, action="append", default=[], help="also list this folder, first; repeat"
    )
    profile_list.add_argument("--config", type=Path, help=f"its profile_dirs (default: those of {DEFAULT_CONFIG})")
    profile_list.add_argument("--json", action="store_true", help="the list as JSON")
    profile_list.set_defaults(handler=cmd_profile_list)

    demo = commands.add_parser("demo", help="a whole simulated station, broker and platform, end to end")
    demo.add_argument("--seconds", type=float, default=60.0, help="how long to run (default 60)")
    demo.add_argument("--workdir", type=Path, default=Path("demo-run"), help="where to put its files")
    demo.add_argument("--broker", help="use this MQTT broker (HOST:PORT) instead of starting one")
    demo.add_argument(
        "--suite", choices=("ed25519", "sm2"), default="ed25519", help="the station's signing suite (ed25519)"
    )
    demo.set_defaults(handler=cmd_demo)

    status = commands.add_parser("status", help="how the running agent is, in plain words (or JSON)")
    where = status.add_mutually_exclusive_group()
    where.add_argument("--config", type=Path, help=f"take the socket from this config (default {DEFAULT_CONFIG})")
    where.add_argument("--socket", type=Path, help="ask the agent at this socket")
    status.add_argument("--json", action="store_true", help="the whole snapshot as JSON, for scripts")
    status.add_argument(
        "--lang", choices=LANGUAGES, help="the language of the words (default: the station's [station] locale)"
    )
    status.set_defaults(handler=cmd_status)

    provisioning = commands.add_parser("provision", help="key, CSR, checked config and commissioning sheet")
    provision_arguments.add_arguments(provisioning, DEFAULT_CONFIG)
    provisioning.set_defaults(handler=cmd_provision)

    sheet = commands.add_parser("sheet", help="print the commissioning sheet again, from the config (writes nothing)")
    sheet.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"config file (default {DEFAULT_CONFIG})")
    sheet.add_argument("--json", action="store_true", help="the sheet as JSON")
    sheet.set_defaults(handler=cmd_sheet)

    scanning = commands.add_parser("scan", help="find the Modbus slaves and a tank gauge on a port, and their profiles")
    scan_arguments.add_arguments(scanning)
    scanning.set_defaults(handler=cmd_scan)

    testing = commands.add_parser("selftest", help="check the box before handing over; exit 1 on a failure")
    testing.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"config file (default {DEFAULT_CONFIG})")
    testing.add_argument("--broker-timeout-s", type=float, default=5.0, help="wait for the broker (default 5)")
    testing.add_argument("--json", action="store_true", help="the checks as JSON")
    testing.set_defaults(handler=cmd_selftest)

    recover = commands.add_parser("recover", help="set aside an outbox the agent refuses, and start anew after it")
    recover.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"config file (default {DEFAULT_CONFIG})")
    recover.add_argument(
        "--after-seq",
        type=int,
        help="start above this seq, the highest the platform holds (needed without a sound anchor: ask the platform)",
    )
    recover.set_defaults(handler=cmd_recover)

    web = commands.add_parser("web", help="serve the read-only local web page for staff and installers")
    web.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"config file (default {DEFAULT_CONFIG})")
    web.set_defaults(handler=cmd_web)

    web_pin = commands.add_parser("web-pin", help="print the [web] pin_hash line for a PIN read from the terminal")
    web_pin.set_defaults(handler=cmd_web_pin)

    ver = commands.add_parser("version", help="print the version")
    ver.set_defaults(handler=cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except BrokenPipeError:  # the reader went away (`... | head`): nothing more to say, and no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
