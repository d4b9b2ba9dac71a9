"""`python -m bench.soak` (`make soak`): the agent killed again and again on a bad day, then the books checked.

A simulated forecourt sells fuel (the demo's station, at `TIME_SCALE`), the reference platform receiver takes the
records from a real Mosquitto, and the agent reaches that broker through a link that drops (simulators/hostile).
The agent is started, left to run a random moment after its start-up records are stored, and killed with
SIGKILL, `--kills` times over. Along the way the broker is restarted, the link flaps, poisoned acks and commands
are published (some retained, so that every later start meets them), and from a quarter to half of the kills
the level probe's height register is stuck at a value no tank can hold (a device value fault, raised and
cleared). Then the agent is started once more on a calm link and left to deliver everything.

What it prints (one JSON document): the kills and disturbances made; from the platform's records, the agent's
starts (`agent_start` events: must equal kills + 1, or something restarted the agent that was not a kill) and
unclean stops; the receiver's and the audit's verdicts (gaps, forks, duplicates, bad signatures); and every sale
the simulated controllers booked against the transactions the platform holds. `ok` is true only when all of it
holds. Exit code 0 if ok, 1 if not, 2 if the soak could not run.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from agent.ledger.keys import generate_key_file
from bench.processes import Child, ChildError, python_module
from simulators.broker import MosquittoBroker, free_loopback_port
from simulators.compare import compare_files
from simulators.hostile import poison
from simulators.hostile.link import FlakyLink
from simulators.platform.store import Store
from station_lab.demo import STATION_ID, agent_config, simulators_config, write_probe_chart

TIME_SCALE = 60.0
"""Simulated seconds per real second: a sale every few real seconds per nozzle, hours of books in a soak."""
START_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 180.0
MAX_LIFE_S = 4.0
"""An agent lives up to this long after its start-up records are stored, then is killed."""
BROKER_RESTART_EVERY = 9
POISON_EVERY = 7
STUCK_PROBE = ("stuck_register", "T3/level_probe")
"""The probe's oil height, high word 0xFFFF: a height of kilometres, as a probe in fault may read."""
STUCK_PROBE_PARAMS = ("--set", "address=2", "--set", "value=65535")
FLAP_UP_S = (2.0, 12.0)
FLAP_DOWN_S = (0.5, 4.0)

RETAINED_POISONS = ("huge-int", "deep", "nan", "wrong-type")
PASSING_POISONS = ("not-json", "deep-object", "float", "negative", "array", "unsigned-cmd", "forged-future-ack")


class SoakError(RuntimeError):
    """The soak could not be set up or finished; the message says where to look."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--kills", type=int, default=100, help="SIGKILLs of the agent (default 100)")
    parser.add_argument("--seed", type=int, default=20261207, help="seed of the disturbances' timing")
    parser.add_argument("--workdir", type=Path, default=Path("build/soak"), help="where the run's files go")
    return parser.parse_args(argv)


class _Status:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Any]:
        try:
            found: dict[str, Any] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return found

    def head_seq(self) -> int:
        head: int = self.read().get("recorder", {}).get("head_seq", 0)
        return head


class _Flapper:
    """Drops the agent's link at random moments on a thread of its own while `calm` is not set."""

    def __init__(self, link: FlakyLink, rng: random.Random) -> None:
        self._link = link
        self._rng = rng
        self._stop = threading.Event()
        self.calm = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flapper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._link.restore()

    def _run(self) -> None:
        while not self._stop.wait(self._rng.uniform(*FLAP_UP_S)):
            if self.calm.is_set():
                continue
            self._link.cut()
            self._stop.wait(self._rng.uniform(*FLAP_DOWN_S))
            self._link.restore()


@contextmanager
def _child(name: str, argv: list[str], log: Path) -> Iterator[Child]:
    running = Child(name, argv, log)
    try:
        yield running
    finally:
        running.stop()


def _agent(workdir: Path) -> Child:
    return Child(
        "station-agent",
        python_module("agent.cli", "run", "--config", str(workdir / "agent.toml")),
        workdir / "agent.log",
    )


def _wait_started(agent: Child, status: _Status, after_head: int) -> int:
    """Wait until this agent has written its status and stored records past `after_head` (its start-up records);
    its head then."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not agent.alive():
            raise SoakError(f"the agent ended by itself (exit {agent.process.returncode}); see {agent.log_path}")
        head = status.head_seq()
        if status.path.exists() and head > after_head:
            return head
        time.sleep(0.05)
    raise SoakError(f"the agent did not store its start-up records within {START_TIMEOUT_S:g} s; see {agent.log_path}")


def _publish(broker: MosquittoBroker, channel: str, name: str, retain: bool) -> None:
    topic = f"fsm/v1/{STATION_ID}/{channel}"
    poison.publish(broker.host, broker.port, topic, poison.CATALOGUE[name].make(1 << 20), retain=retain)


def _fault(workdir: Path, action: str) -> None:
    """Put the stuck probe register on (`inject`) or take it off (`clear`) through the simulator's control socket."""
    extra = STUCK_PROBE_PARAMS if action == "inject" else ()
    argv = python_module(
        "simulators.cli", "fault", "--control", str(workdir / "sim.sock"), action, *STUCK_PROBE, *extra
    )
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    if done.returncode != 0:
        raise SoakError(f"station-sim fault {action} {' '.join(STUCK_PROBE)} failed: {done.stdout}{done.stderr}")


def _platform_records(db: Path) -> list[dict[str, Any]]:
    with Store(db, read_only=True) as store:
        return [json.loads(canonical) for canonical in store.accepted(STATION_ID)]


def _audit(workdir: Path) -> dict[str, Any]:
    done = subprocess.run(
        python_module(
            "simulators.cli",
            "platform-audit",
            "--db",
            str(workdir / "platform.sqlite"),
            "--station",
            f"{STATION_ID}={workdir / 'station.pub'}",
        ),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    try:
        report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"the audit printed no report (exit {done.returncode}): {done.stderr[-400:]}"}
    return report


def run_soak(kills: int, seed: int, workdir: Path) -> dict[str, Any]:
    rng = random.Random(seed)
    workdir = workdir.resolve()
    if workdir.exists():
        subprocess.run(["rm", "-rf", str(workdir)], check=True)
    workdir.mkdir(parents=True)
    key = generate_key_file(workdir / "keys" / "device.key")
    (workdir / "station.pub").write_text(key.public_pem())
    status = _Status(workdir / "status.json")
    made: Counter[str] = Counter()
    started = time.monotonic()
    with ExitStack() as stack:
        broker = stack.enter_context(MosquittoBroker(workdir / "broker"))
        link = stack.enter_context(FlakyLink((broker.host, broker.port)))
        tcp_port = free_loopback_port()
        (workdir / "agent.toml").write_text(
            agent_config(workdir, f"127.0.0.1:{link.port}", tcp_port, time_scale=TIME_SCALE)
        )
        (workdir / "simulators.toml").write_text(
            simulators_config(broker.address, tcp_port, f"soak-{key.kid}", TIME_SCALE)
        )
        write_probe_chart(workdir)
        simulators = stack.enter_context(
            _child(
                "station-sim",
                python_module("simulators.cli", "run", "--config", str(workdir / "simulators.toml")),
                workdir / "simulators.log",
            )
        )
        simulators.wait_for_output("station-sim: running", START_TIMEOUT_S)
        flapper = _Flapper(link, random.Random(seed + 1))
        flapper.start()
        stack.callback(flapper.stop)
        retained: set[str] = set()
        head = 0
        for kill in range(kills):
            if kill == kills // 4:
                _fault(workdir, "inject")
                made["stuck_probe_on"] += 1
            if kill == kills // 2:
                _fault(workdir, "clear")
                made["stuck_probe_off"] += 1
            status.path.unlink(missing_ok=True)
            agent = _agent(workdir)
            try:
                head = _wait_started(agent, status, head)
                if kill % BROKER_RESTART_EVERY == BROKER_RESTART_EVERY - 1:
                    broker.stop()
                    time.sleep(rng.uniform(0.2, 2.0))
                    broker.start()
                    made["broker_restarts"] += 1
                if kill % POISON_EVERY == POISON_EVERY - 1:
                    name = rng.choice(RETAINED_POISONS)
                    channel = rng.choice(("ack", "cmd"))
                    _publish(broker, channel, name, retain=True)
                    retained.add(channel)
                    made[f"poison_retained_{channel}"] += 1
                    _publish(broker, rng.choice(("ack", "cmd")), rng.choice(PASSING_POISONS), retain=False)
                    made["poison"] += 1
                time.sleep(rng.uniform(0.0, MAX_LIFE_S))
                if not agent.alive():
                    raise SoakError(
                        f"the agent ended by itself (exit {agent.process.returncode}); see {agent.log_path}"
                    )
                head = max(head, status.head_seq())
            finally:
                if agent.alive():
                    agent.process.send_signal(signal.SIGKILL)
                    agent.process.wait(30)
                    made["kills"] += 1
        flapper.calm.set()
        link.restore()
        for channel in retained:
            _publish(broker, channel, "empty", retain=True)
        agent = _agent(workdir)
        stack.callback(agent.stop)
        head = _wait_started(agent, status, head)
        drained = _wait_drained(workdir, status, agent)
        stop_code = agent.stop()
        simulators.stop()
    records = _platform_records(workdir / "platform.sqlite")
    events = Counter(r["body"].get("kind") for r in records if r["type"] == "event")
    report = json.loads((workdir / "sim-report.json").read_text()).get("platform", {})
    station = report.get("stations", {}).get(STATION_ID, {})
    sales = compare_files(workdir / "sim-report.json", workdir / "platform.sqlite", STATION_ID).to_json()
    audit = _audit(workdir)
    agent_starts = events["agent_start"]
    thread_deaths = _thread_deaths(workdir)
    checks = {
        "drained": drained,
        "clean_last_stop": stop_code == 0,
        "starts_equal_kills_plus_one": agent_starts == made["kills"] + 1,
        "no_thread_died": not thread_deaths,
        "platform_ok": bool(report.get("ok")),
        "audit_ok": bool(audit.get("ok")),
        "no_gaps": not station.get("gaps"),
        "no_forks": not station.get("forks"),
        "no_bad_signatures": not station.get("bad_signatures"),
        "every_sale_recorded": bool(sales["matched"]) and not sales["missing"] and not sales["wrong_volume"],
        "value_fault_raised_and_cleared": made["stuck_probe_on"] == 0
        or {"raised", "cleared"} <= set(_alarm_states(records, "device_value_fault")),
    }
    return {
        "ok": all(checks.values()),
        "checks": checks,
        "seconds": round(time.monotonic() - started, 1),
        "made": dict(made),
        "thread_deaths": thread_deaths[:20],
        "link": {"cuts": link.cuts, "refused": link.refused, "connections": link.connections},
        "records": {
            "at_platform": len(records),
            "agent_starts": agent_starts,
            "unclean_stops": events["unclean_stop"],
            "internal_errors": events["internal_error"],
            "value_faults": _alarm_states(records, "device_value_fault"),
            "by_type": dict(Counter(r["type"] for r in records)),
        },
        "platform": {key: station.get(key) for key in ("upto", "gaps", "forks", "duplicates", "bad_signatures")},
        "audit": {"ok": audit.get("ok"), "error": audit.get("error")}
        | {
            key: audit.get("stations", {}).get(STATION_ID, {}).get(key)
            for key in ("upto", "gaps", "forks", "bad_signatures")
        },
        "sales": {
            "matched": sales["matched"],
            "missing": sales["missing"][:20],
            "wrong_volume": sales["wrong_volume"][:20],
        },
    }


def _alarm_states(records: list[dict[str, Any]], kind: str) -> dict[str, int]:
    return dict(Counter(r["body"]["state"] for r in records if r["type"] == "alarm" and r["body"]["kind"] == kind))


def _thread_deaths(workdir: Path) -> list[str]:
    """The agent's threads that ended on an exception, as Python's threading reports them on stderr: a loop
    that died stops the watchdog's pings, and under systemd that is a restart the soak would not have made."""
    text = "".join(path.read_text(errors="replace") for path in sorted(workdir.glob("agent*.log")))
    return [line.strip() for line in text.splitlines() if line.startswith("Exception in thread")]


def _wait_drained(workdir: Path, status: _Status, agent: Child) -> bool:
    """True once the platform holds every record the agent has stored."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline and agent.alive():
        platform = _read(workdir / "platform-report.json").get("stations", {}).get(STATION_ID, {})
        head = status.head_seq()
        if head and platform.get("upto") == head:
            return True
        time.sleep(0.5)
    return False


def _read(path: Path) -> dict[str, Any]:
    try:
        found: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = run_soak(args.kills, args.seed, args.workdir)
    except (SoakError, ChildError) as exc:
        print(json.dumps({"ok": False, "error": str(exc)}), flush=True)
        return 2
    print(json.dumps(result, indent=2, sort_keys=True), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
