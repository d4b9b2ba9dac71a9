"""The agent as a whole: builds every part from the config, runs them, and stops them in the right order.

Start-up order follows the data backwards (outbox, recorder, uplink, station, pollers) so that nothing produces
before its consumer is ready; stop-up order follows it forwards, so that the last readings become records,
the records reach the outbox, and the uplink gets a last chance to deliver them before the box says offline.
The `running` mark in the outbox is what lets the next start tell a clean stop from a power cut.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from agent.clock import Clock, ScaledClock, SystemClock
from agent.field.lines import build_poller
from agent.field.poller import LinePoller
from agent.ledger.keys import DeviceKey, KeyFileError, load_key_file
from agent.ledger.outbox import Outbox, OutboxError
from agent.ledger.recorder import Recorder
from agent.lifecycle import PreviousRun, startup_intents
from agent.logs import get_logger
from agent.records import RecordType, format_ts
from agent.setup import Setup, bindings_for, drivers_for
from agent.station.leak_watch import hourly_books
from agent.station.station import Station
from agent.station_loop import HeartbeatFacts, StationLoop
from agent.status import AgentStatus, assess, write_status
from agent.uplink.session import Uplink
from drivers.device import DeviceDriver

log = get_logger("agent")


class StartupError(Exception):
    """The agent cannot start; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class _Parts:
    outbox: Outbox
    recorder: Recorder
    uplink: Uplink
    station: StationLoop
    pollers: tuple[LinePoller, ...]


class Agent:
    def __init__(self, setup: Setup, clock: Clock | None = None) -> None:
        self.setup = setup
        self.loaded = setup.loaded
        self.config = setup.loaded.config
        self.clock = clock or SystemClock()
        self.version = setup.version

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set; raises StartupError if the agent cannot start."""
        key = self._load_key()
        drivers = drivers_for(self.setup)
        outbox = Outbox(self.config.outbox.path, self.config.outbox.max_bytes)
        parts = self._build(outbox, key, drivers)
        self._start(parts, key)
        try:
            while not stop.wait(self.config.status.interval_s):
                self._publish_status(parts)
        finally:
            self._stop(parts, "stopped")

    def _load_key(self) -> DeviceKey:
        try:
            return load_key_file(self.config.keys.device_key)
        except KeyFileError as exc:
            raise StartupError(str(exc)) from exc

    def _build(self, outbox: Outbox, key: DeviceKey, drivers: dict[str, DeviceDriver]) -> _Parts:
        config = self.config
        recorder = Recorder(outbox, config.station.id, key, config.outbox, self.clock)
        uplink = Uplink(
            config.uplink,
            config.station.id,
            outbox.path,
            self.clock,
            on_acked=recorder.note_acked,
            acked_upto=recorder.status().acked_upto,
            head_seq=recorder.head.seq,
            birth_fields=lambda: {"kid": key.kid, "version": self.version, "head_seq": recorder.head.seq},
        )
        recorder.on_commit = uplink.notify
        zone = ZoneInfo(config.station.timezone)
        since_ms = self.clock.wall_ms() - config.leak.window_h * 3_600_000
        history = hourly_books(outbox.canonical_since(RecordType.RECONCILIATION, since_ms))
        station_clock: Clock = self.clock
        if config.clock.time_scale != 1:
            log.warning("accelerated_time", time_scale=config.clock.time_scale)
            station_clock = ScaledClock(config.clock.time_scale, self.clock)
        station = StationLoop(
            Station(
                bindings_for(config),
                outbox.cursors(),
                config.metering,
                config.verifications,
                tanks=self.setup.tanks,
                tank_rules=config.tank_rules,
                zone=zone,
                leak=config.leak,
                tank_history=history,
            ),
            recorder.submit,
            station_clock,
            heartbeat_interval_s=config.heartbeat.interval_s,
            jump_threshold_ms=int(config.clock.jump_threshold_s * 1000),
            facts=lambda: self._heartbeat_facts(pollers, recorder, uplink),
        )
        pollers = [
            build_poller(
                line,
                drivers,
                station_clock,
                station.post,
                health_every_s=config.metering.line_error_window_s / 4,
                zone=zone,
            )
            for line in config.lines
        ]
        return _Parts(outbox, recorder, uplink, station, tuple(pollers))

    def _start(self, parts: _Parts, key: DeviceKey) -> None:
        outbox = parts.outbox
        head = parts.recorder.head
        previous = PreviousRun(
            was_running=outbox.meta("running") == "1",
            last_seq=head.seq,
            last_ts_ms=head.ts_ms,
            config_sha256=outbox.meta("config_sha256"),
        )
        try:
            outbox.set_meta({"running": "1", "config_sha256": self.loaded.sha256})
        except OutboxError as exc:
            log.error("running_mark_not_saved", problem=str(exc))
        for intent in startup_intents(
            previous,
            self.clock.wall_ms(),
            version=self.version,
            config_sha256=self.loaded.sha256,
            kid=key.kid,
            jump_threshold_ms=int(self.config.clock.jump_threshold_s * 1000),
        ):
            parts.recorder.submit(intent)
        parts.recorder.start()
        parts.uplink.start()
        parts.station.start()
        for poller in parts.pollers:
            poller.start()
        log.info(
            "agent_started",
            station=self.config.station.id,
            kid=key.kid,
            head_seq=head.seq,
            unclean_previous_stop=previous.was_running,
        )

    def _stop(self, parts: _Parts, reason: str) -> None:
        for poller in parts.pollers:
            poller.stop()
        parts.station.stop(reason)
        parts.recorder.stop()
        parts.uplink.notify(parts.recorder.head.seq)
        parts.uplink.stop()
        acked = parts.uplink.status().acked_upto
        try:
            parts.outbox.set_meta({"running": "0", "acked_upto": str(acked)})
            parts.outbox.checkpoint()
        except OutboxError as exc:
            log.error("clean_stop_not_saved", problem=str(exc))
        parts.outbox.close()
        self._write_status(parts)
        log.info("agent_stopped", head_seq=parts.recorder.head.seq, acked_upto=acked)

    @staticmethod
    def _heartbeat_facts(pollers: list[LinePoller], recorder: Recorder, uplink: Uplink) -> HeartbeatFacts:
        stored = recorder.status()
        devices = [device for poller in pollers for device in poller.status().devices]
        return HeartbeatFacts(
            uplink_online=uplink.status().state == "online",
            unacked=stored.head_seq - stored.acked_upto,
            devices_online=sum(1 for device in devices if device.state == "online"),
            devices_total=len(devices),
        )

    def status(self, parts: _Parts) -> AgentStatus:
        recorder = parts.recorder.status()
        uplink = parts.uplink.status()
        lines = tuple(poller.status() for poller in parts.pollers)
        health, problems = assess(recorder, uplink, lines)
        return AgentStatus(
            ts=format_ts(self.clock.wall_ms()),
            station=self.config.station.id,
            version=self.version,
            uptime_s=parts.station.uptime_s(),
            health=health,
            problems=problems,
            recorder=recorder,
            uplink=uplink,
            lines=lines,
        )

    def _publish_status(self, parts: _Parts) -> None:
        status = self._write_status(parts)
        parts.uplink.set_faults(tuple(problem for problem in status.problems if status.health == "fault"))

    def _write_status(self, parts: _Parts) -> AgentStatus:
        status = self.status(parts)
        try:
            write_status(self.config.status.path, status)
        except OSError as exc:
            log.warning("status_not_written", path=str(self.config.status.path), error=str(exc))
        return status
