"""`station-sim command` (sign a command with the platform key, send it, print the reply) and
`station-sim command-key` (make a platform key pair).

`command` prints the reply as one JSON line on stdout and exits 0 if it says ok, 1 if the station refused
or failed the command or did not answer (then `{"ok": false, "error": ...}`), and 2 if it could not send at
all (a bad key, argument or broker; then `{"error": ...}`). `command-key` prints the two files it wrote
(`key`, `public_key`) as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from simulators.exits import NOT_OK, OK, cannot_run
from simulators.platform.cli import UsageError, parse_broker
from simulators.platform.command import (
    DEFAULT_TTL_S,
    CommandClient,
    CommandError,
    load_platform_key,
    make_platform_key,
    sign_command,
)
from simulators.platform.contract import DEFAULT_PREFIX


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    send = commands.add_parser(
        "command",
        help="sign a command with the platform key, send it to a station and print the reply",
        description="Send one signed command (ping, status, resend, rotate-key) on {prefix}/{station}/cmd and "
        "wait for the reply on .../cmd/reply.",
    )
    send.add_argument("cmd", help="the command, e.g. ping, status, resend, rotate-key")
    send.add_argument("--key", type=Path, required=True, metavar="FILE", help="the platform's private key (PEM)")
    send.add_argument("--station", required=True, metavar="ID", help="the station id")
    send.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE", help="an argument; repeat")
    send.add_argument("--broker", default="127.0.0.1:1883", metavar="HOST:PORT", help="MQTT broker (%(default)s)")
    send.add_argument("--prefix", default=DEFAULT_PREFIX, help="topic prefix (%(default)s)")
    send.add_argument("--ttl", type=float, default=DEFAULT_TTL_S, metavar="S", help="valid for S seconds (%(default)s)")
    send.add_argument(
        "--wait", type=float, default=10.0, metavar="S", help="wait S seconds for the reply (%(default)s)"
    )
    send.set_defaults(handler=run_command)

    keygen = commands.add_parser(
        "command-key",
        help="make a platform key pair for signing commands",
        description="Write a new Ed25519 private key to FILE (mode 0600) and its public key to FILE.pub, which "
        "each station gets as commands.platform_key.",
    )
    keygen.add_argument("file", type=Path, metavar="FILE")
    keygen.set_defaults(handler=run_command_key)


def parse_arg(text: str) -> tuple[str, str | int | bool | None]:
    """NAME=VALUE; VALUE is read as JSON when it is a JSON integer, boolean or null, else kept as text."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise UsageError(f"--arg {text!r} is not NAME=VALUE; give e.g. --arg first=1")
    try:
        parsed = json.loads(value)
    except ValueError:
        return name, value
    return (name, parsed) if parsed is None or isinstance(parsed, bool | int) else (name, value)


def run_command(args: argparse.Namespace) -> int:
    try:
        host, port = parse_broker(args.broker)
        command_args = dict(parse_arg(text) for text in args.arg)
        key = load_platform_key(args.key)
        client = CommandClient(host, port, args.station, args.prefix)
    except (UsageError, CommandError) as error:
        return cannot_run("command", str(error))
    try:
        reply = client.send(sign_command(key, args.station, args.cmd, command_args, ttl_s=args.ttl), args.wait)
    except CommandError as error:
        print(json.dumps({"ok": False, "error": str(error)}), flush=True)
        print(f"station-sim command: {error}", file=sys.stderr)
        return NOT_OK
    finally:
        client.close()
    print(json.dumps(reply, sort_keys=True), flush=True)
    return 0 if reply.get("ok") is True else 1


def run_command_key(args: argparse.Namespace) -> int:
    try:
        public = make_platform_key(args.file)
    except (CommandError, OSError) as error:
        return cannot_run("command-key", str(error))
    print(json.dumps({"key": str(args.file), "public_key": str(public)}), flush=True)
    print(f"platform key {args.file}, public key {public}: give the public key to each station", file=sys.stderr)
    return OK
