"""`station-sim hostile ...`: the hostile peers from the command line, each printing one JSON line when it ends.

station-sim hostile link --to HOST:PORT [--port P] [--up-s S --down-s S] [--delay-ms MS] [--duration S]
station-sim hostile broker --mode connack-close|junk|silent [--port P] [--duration S]
station-sim hostile poison KIND --broker HOST:PORT --station ID [--topic ack|cmd] [--retain] [--size BYTES]
station-sim hostile poison list
station-sim hostile hj212 --mode garbage|bad-crc|trickle|silent [--port P] [--duration S]

Servers print `station-sim hostile: listening on HOST:PORT` on stderr once they listen (port 0 picks a free one),
run until SIGTERM, Ctrl-C or `--duration`, then print their counts as one JSON line on stdout. Exit codes: 0 done,
2 a usage or start-up error (with one JSON line `{"error": ...}` on stdout).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from simulators.hostile import poison
from simulators.hostile.link import FlakyLink
from simulators.hostile.rude_broker import MODES as BROKER_MODES
from simulators.hostile.rude_broker import RudeBroker
from simulators.hostile.rude_hj212 import MODES as HJ212_MODES
from simulators.hostile.rude_hj212 import RudeHj212
from simulators.serving import ServerError, TcpServing

DEFAULT_PREFIX = "fsm/v1"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "hostile",
        help="hostile peers: a flapping link, a rude broker, poisoned acks and commands, a rude HJ 212 platform",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = parser.add_subparsers(dest="hostile", required=True, metavar="PEER")

    link = kinds.add_parser("link", help="a TCP relay to the broker that drops on a schedule or never")
    link.add_argument("--to", required=True, metavar="HOST:PORT", help="the real broker")
    link.add_argument("--up-s", type=float, help="seconds up between drops (default: never drops)")
    link.add_argument("--down-s", type=float, default=5.0, help="seconds each drop lasts (default 5)")
    link.add_argument("--delay-ms", type=float, default=0.0, help="hold each chunk this long, both ways")
    _server_arguments(link)
    link.set_defaults(handler=_run_link)

    broker = kinds.add_parser("broker", help="an MQTT listener that CONNACKs and hangs up, sends junk or is silent")
    broker.add_argument("--mode", choices=BROKER_MODES, default="connack-close")
    _server_arguments(broker)
    broker.set_defaults(handler=_run_broker)

    hj212 = kinds.add_parser("hj212", help="an HJ 212 platform that answers garbage, a bad CRC, a trickle or never")
    hj212.add_argument("--mode", choices=HJ212_MODES, default="garbage")
    _server_arguments(hj212)
    hj212.set_defaults(handler=_run_hj212)

    publish = kinds.add_parser("poison", help="publish a poisoned ack or command to a real broker")
    publish.add_argument("kind", help=f"one of: list, {', '.join(poison.CATALOGUE)}")
    publish.add_argument("--broker", metavar="HOST:PORT", help="the broker the station uses")
    publish.add_argument("--station", help="the station id")
    publish.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"topic prefix (default {DEFAULT_PREFIX})")
    publish.add_argument("--topic", choices=("ack", "cmd"), default="ack", help="which channel (default ack)")
    publish.add_argument("--retain", action="store_true", help="publish retained: the station gets it at every start")
    publish.add_argument("--size", type=int, default=poison.DEFAULT_OVERSIZED_BYTES, help="bytes for `oversized`")
    publish.set_defaults(handler=_run_poison)


def _server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0 picks a free one, printed on stderr)")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")


def _fail(message: str) -> int:
    print(json.dumps({"error": message}), flush=True)
    print(f"station-sim hostile: {message}", file=sys.stderr, flush=True)
    return 2


def _address(text: str) -> tuple[str, int] | None:
    host, _, port = text.rpartition(":")
    return (host, int(port)) if host and port.isdigit() else None


def _serve(
    server: TcpServing,
    args: argparse.Namespace,
    counts: Callable[[], dict[str, Any]],
    turn: Callable[[float], None] | None = None,
) -> int:
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server.start()
    except ServerError as exc:
        return _fail(str(exc))
    print(f"station-sim hostile: listening on {server.host}:{server.port}", file=sys.stderr, flush=True)
    started = time.monotonic()
    while not stop.wait(0.1):
        elapsed = time.monotonic() - started
        if args.duration is not None and elapsed >= args.duration:
            break
        if turn is not None:
            turn(elapsed)
    server.stop()
    print(json.dumps({"port": server.port, **counts()}, sort_keys=True), flush=True)
    return 0


def _run_link(args: argparse.Namespace) -> int:
    upstream = _address(args.to)
    if upstream is None:
        return _fail(f"--to {args.to!r} is not HOST:PORT")
    link = FlakyLink(upstream, args.host, args.port, delay_s=args.delay_ms / 1000)
    period = None if args.up_s is None else args.up_s + args.down_s

    def turn(elapsed: float) -> None:
        if period is None:
            return
        should_be_up = elapsed % period < args.up_s
        if should_be_up and not link.up:
            link.restore()
        elif not should_be_up and link.up:
            link.cut()

    return _serve(
        link, args, lambda: {"connections": link.connections, "refused": link.refused, "cuts": link.cuts}, turn
    )


def _run_broker(args: argparse.Namespace) -> int:
    broker = RudeBroker(args.mode, args.host, args.port)
    return _serve(broker, args, lambda: {"mode": broker.mode, "connects": len(broker.connects())})


def _run_hj212(args: argparse.Namespace) -> int:
    peer = RudeHj212(args.mode, args.host, args.port)
    return _serve(
        peer, args, lambda: {"mode": peer.mode, "chunks": peer.chunks_received, "bytes_sent": peer.bytes_sent}
    )


def _run_poison(args: argparse.Namespace) -> int:
    if args.kind == "list":
        for listed in poison.CATALOGUE.values():
            print(json.dumps({"kind": listed.name, "what": listed.what}), flush=True)
        return 0
    entry = poison.CATALOGUE.get(args.kind)
    if entry is None:
        return _fail(f"no poison {args.kind!r}; `station-sim hostile poison list` shows them")
    if args.broker is None or args.station is None:
        return _fail("--broker HOST:PORT and --station ID are required to publish")
    address = _address(args.broker)
    if address is None:
        return _fail(f"--broker {args.broker!r} is not HOST:PORT")
    topic = f"{args.prefix}/{args.station}/{args.topic}"
    payload = entry.make(args.size)
    try:
        poison.publish(*address, topic, payload, retain=args.retain)
    except poison.PoisonError as exc:
        return _fail(str(exc))
    print(json.dumps({"kind": entry.name, "topic": topic, "bytes": len(payload), "retain": args.retain}), flush=True)
    return 0
