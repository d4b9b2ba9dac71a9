"""The agent as a whole: builds every part from the config, runs them, and stops them in the right order.

Every part is built with what it calls, in an order without cycles (see `Agent._build`); its thread starts only
in `start()`. Start-up order follows the data backwards (outbox, recorder, uplink, station, pollers) so that
nothing produces before its consumer is ready; stop-up order follows it forwards, so that the last readings
become records, the records reach the outbox, and the uplink gets a last chance to deliver them before the box
says offline.
The `running` mark in the outbox is what lets the next start tell a clean stop from a power cut.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from agent.clock import Clock, ScaledClock, SystemClock
from agent.containment import Boundary
from agent.contract.records import format_ts
from agent.field.lines import Field, build_field
from agent.field.poller import LinePoller, stop_all
from agent.health import assess, nozzles_by_controller
from agent.history import alarm_history, replay, station_history
from agent.led import StatusLed
from agent.ledger.anchor import AnchorError, AnchorKeeper, AnchorUnwritable, anchor_path
from agent.ledger.integrity import damage_alarm
from agent.ledger.key_rotation import finish_rotation, new_key_path
from agent.ledger.keys import DeviceKey, KeyFileError, KeySpec, load_key_file
from agent.ledger.opening import Opened, OutboxBusy, OutboxRefused, lock_outbox, open_outbox, recover_hint
from agent.ledger.outbox import Outbox, OutboxError, OutboxReader, OutboxUnusable
from agent.ledger.recorder import Recorder
from agent.ledger.recorder_inbox import ChainPosition, RecorderInbox
from agent.lifecycle import PreviousRun, startup_intents
from agent.locale import language_for_zone
from agent.logs import LogTally, get_logger
from agent.station.station import Station
from agent.station_loop import HeartbeatFacts, StationInbox, StationLoop
from agent.station_view import StationView
from agent.status import AgentStatus, backlog, clock_at, disk_of, status_json, write_status
from agent.status_socket import StatusSocketBusy, StatusSocketServer
from agent.systemd_notify import SystemdNotifier
from agent.uplink.session import Uplink
from agent.watchdog import Loop, ServiceWatchdog, status_line
from agent.wiring import Setup, bindings_for, drivers_for
from drivers.device import DeviceDriver

if TYPE_CHECKING:
    from agent.commands.desk import CommandDesk
    from agent.commands.inbox import CommandInbox
    from agent.uplink.hj212 import Hj212Uplink

POLLERS_STOP_S = 5.0
"""How long a stop waits for all the pollers together: a read hung on a dead line is left to the exit, so a box
with many such lines still stops well within systemd's TimeoutStopSec."""

log = get_logger("agent")


class StartupError(Exception):
    """The agent cannot start; the message says what to fix."""


class StartupFault(Exception):
    """The agent cannot start now for a fault of the box (a full or failing disk, the outbox held by another
    process); the message says which. Unlike a StartupError, trying again later can succeed."""


@dataclass(frozen=True, slots=True)
class _Parts:
    outbox: Outbox
    recorder: Recorder
    uplink: Uplink
    station: StationLoop
    field: Field
    view: StationView
    reader: OutboxReader
    ecology: Hj212Uplink | None
    commands: CommandDesk | None = None


def _both(first: Callable[[int], None], second: Callable[[int], None]) -> Callable[[int], None]:
    def notify(head_seq: int) -> None:
        first(head_seq)
        second(head_seq)

    return notify


class Agent:
    def __init__(self, setup: Setup, clock: Clock | None = None) -> None:
        self.setup = setup
        self.loaded = setup.loaded
        self.config = setup.loaded.config
        self.clock = clock or SystemClock()
        self.version = setup.version
        self._led = StatusLed(self.config.led)
        self._status_socket = StatusSocketServer(self.config.status.socket)
        self._watchdog = ServiceWatchdog(SystemdNotifier.from_environment())
        self._acked_at_start = 0
        """What was acknowledged before this run: ALL WELL needs the platform to confirm a record of this one."""
        self._outbox_lock: int | None = None
        """The outbox's lock (agent/ledger/opening.py), held from opening to the end of the stop."""
        self._last_status: AgentStatus | None = None
        """The status the main thread built last, for the platform's `status` command."""
        self._status_unwritten = LogTally()
        """Failures to write the status file: a full or broken /run fails every turn, and is said once a minute."""
        station = self.config.station
        self._zone = ZoneInfo(station.timezone)
        self._locale = station.locale or language_for_zone(station.timezone)
        self._sales_of = nozzles_by_controller((nozzle.controller, nozzle.id) for _, nozzle in self.config.nozzles())
        """What the status says of the config, worked out once rather than in every second's snapshot."""

    @staticmethod
    def _settled_at_start(parts: _Parts) -> int:
        """The seq up to which nothing is left for this run to deliver: what was acknowledged, or everything below
        the first record the outbox holds (after a chain_reset the outbox starts above the lost range, and the
        uplink counts what lies below it as done). Only an acknowledgement above it is this run's confirmation."""
        first = parts.reader.first_seq()
        acked = parts.recorder.status().acked_upto
        return acked if first is None else max(acked, first - 1)

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set; raises StartupError if the agent cannot start."""
        key = self._load_key()
        drivers = drivers_for(self.setup)
        opened = self._open_outbox(key)
        self._led.show("starting")
        parts = self._build(opened, key, drivers)
        self._acked_at_start = self._settled_at_start(parts)
        self._start(parts, key)
        self._serve_status()
        self._watchdog.ready(status_line(self._publish_status(parts)))
        turn_s = min(self.config.status.interval_s, self._watchdog.ping_every_s or self.config.status.interval_s)
        try:
            while not stop.wait(turn_s):
                self._watchdog.turn(self._loops(parts), status_line(self._publish_status(parts)))
        finally:
            self._watchdog.stopping()
            self._stop(parts, "stopped")
            self._status_socket.stop()
            self._led.show("stopped")

    def _serve_status(self) -> None:
        """Without the socket `station-agent status` cannot ask, but the records are the job: carry on."""
        try:
            self._status_socket.start()
        except (StatusSocketBusy, OSError) as exc:
            log.error("status_socket_not_served", path=str(self.config.status.socket), error=str(exc))

    def _load_key(self) -> DeviceKey:
        """The device key, after completing or undoing a key rotation that a crash interrupted (the outbox
        says which: agent.ledger.key_rotation)."""
        path = self.config.keys.device_key
        try:
            if new_key_path(path).exists():
                outbox = self._outbox_for_rotation()
                try:
                    log.warning("key_rotation_recovered", outcome=finish_rotation(path, outbox.cursors()))
                finally:
                    outbox.close()
            key = load_key_file(path, self.config.keys.sm2_id.encode("ascii"))
        except (KeyFileError, OSError) as exc:
            raise StartupError(str(exc)) from exc
        if key.suite != self.config.keys.suite:
            log.warning("key_suite_differs", kid=key.kid, key_suite=str(key.suite), configured=self.config.keys.suite)
        return key

    def _open_outbox(self, key: DeviceKey) -> Opened:
        """The outbox, checked against the chain anchor beside the key; started again with a chain_reset when it
        cannot be continued (agent/ledger/continuity.py), refused with the way out when it cannot be used."""
        config = self.config
        try:
            self._outbox_lock = lock_outbox(config.outbox.path)
        except OutboxBusy as exc:
            raise StartupFault(f"{exc}; is another agent, or 'station-agent recover', running?") from exc
        except OSError as exc:
            raise StartupFault(f"outbox lock beside {config.outbox.path}: {exc.strerror or exc}") from exc
        try:
            return open_outbox(
                config.outbox.path,
                config.outbox.max_bytes,
                key,
                station=config.station.id,
                anchor_file=anchor_path(config.keys.device_key),
                now_ms=self.clock.wall_ms(),
                config=self.loaded.source,
            )
        except AnchorUnwritable as exc:
            raise StartupFault(str(exc)) from exc
        except (OutboxRefused, AnchorError) as exc:
            raise StartupError(str(exc)) from exc

    def _outbox_for_rotation(self) -> Outbox:
        try:
            return Outbox(self.config.outbox.path, self.config.outbox.max_bytes)
        except OutboxUnusable as exc:
            raise StartupError(f"{exc}; {recover_hint(self.loaded.source)}") from exc

    def _build(self, opened: Opened, key: DeviceKey, drivers: dict[str, DeviceDriver]) -> _Parts:
        """Every part, built after the parts it calls. Three inboxes stand between parts that call each other: the
        recorder's (the uplinks tell it of acks and hand it their events; it tells them of each commit), the
        station's (the pollers post to it and the recorder hands it what it committed; the station loop's
        heartbeat reads how the pollers and the uplink are doing) and the command desk's (the uplink posts the
        platform's commands to it; the desk hands the uplink its replies and resends)."""
        config = self.config
        outbox = opened.outbox
        start = ChainPosition.stored(outbox, key.kid)
        ledger = RecorderInbox(start)
        station_inbox = StationInbox()
        platform_key = config.commands.platform_key if config.commands.enabled else None
        command_inbox = None if platform_key is None else self._command_inbox()
        cursors = outbox.cursors()
        bindings = bindings_for(config)
        view = StationView(
            cursors, tanks=self.setup.tanks, nozzles=bindings, raised_before=alarm_history(outbox, cursors)
        )
        noted = view.watching(ledger.submit)
        uplink = Uplink(
            config.uplink,
            config.station.id,
            outbox.path,
            self.clock,
            on_acked=ledger.note_acked,
            acked_upto=start.acked_upto,
            head_seq=start.head_seq,
            boundary=Boundary("uplink", ledger.submit, self.clock),
            record=ledger.submit,
            birth_fields=partial(self._birth_fields, ledger),
            on_damage=lambda damage: noted(damage_alarm(damage, self.clock.wall_ms())),
            commands=command_inbox,
        )
        ecology = self._ecology_uplink(outbox, ledger)
        recorder = Recorder(
            outbox,
            config.station.id,
            key,
            config.outbox,
            self.clock,
            key_path=config.keys.device_key,
            anchor=AnchorKeeper(anchor_path(config.keys.device_key), opened.anchor),
            inbox=ledger,
            committed=station_inbox.committed,
            on_commit=uplink.notify if ecology is None else _both(uplink.notify, ecology.notify),
            key_spec=KeySpec.of(config.keys.suite, config.keys.sm2_id),
        )
        zone = ZoneInfo(config.station.timezone)
        station_clock: Clock = self.clock
        if config.clock.time_scale != 1:
            log.warning("accelerated_time", time_scale=config.clock.time_scale)
            station_clock = ScaledClock(config.clock.time_scale, self.clock)
        field = build_field(
            config.lines,
            drivers,
            station_clock,
            station_inbox.post_all,
            health_every_s=config.metering.line_error_window_s / 4,
            zone=zone,
            report=ledger.submit,
        )
        station = StationLoop(
            Station(
                bindings,
                cursors,
                config.metering,
                config.verifications,
                tanks=self.setup.tanks,
                tank_rules=config.tank_rules,
                zone=zone,
                leak=config.leak,
                vapour=config.vapour,
                pressure=config.pressure,
                daily=config.daily,
                history=station_history(outbox, config, station_clock.wall_ms()),
            ),
            view.watching(ledger.submit),
            station_clock,
            heartbeat_interval_s=config.heartbeat.interval_s,
            jump_threshold_ms=int(config.clock.jump_threshold_s * 1000),
            facts=partial(self._heartbeat_facts, field.pollers, recorder, uplink),
            boundary=Boundary("station", view.watching(ledger.submit), self.clock),
            inbox=station_inbox,
            nozzles=view.nozzles,
            when_written=ledger.when_written,
        )
        commands = None
        if platform_key is not None and command_inbox is not None:
            commands = self._command_desk(recorder, uplink, outbox, command_inbox, platform_key)
        return _Parts(outbox, recorder, uplink, station, field, view, OutboxReader(outbox.path), ecology, commands)

    def _command_inbox(self) -> CommandInbox:
        """Where the uplink posts the platform's commands, for the desk to take."""
        # imported only when enabled, as the desk is: a station without commands does not load their inbox either
        from agent.commands.inbox import CommandInbox  # noqa: PLC0415

        return CommandInbox(self.config.commands, self.clock)

    def _birth_fields(self, ledger: RecorderInbox) -> dict[str, object]:
        """What the uplink's `online` status message carries besides the state."""
        position = ledger.position()
        return {"kid": position.kid, "version": self.version, "head_seq": position.head_seq}

    def _ecology_uplink(self, outbox: Outbox, ledger: RecorderInbox) -> Hj212Uplink | None:
        """The HJ 212 uplink to an ecology platform, if configured; its progress is kept beside the outbox."""
        settings, profile = self.config.hj212, self.setup.hj212_profile
        if settings is None or not settings.enabled or profile is None:
            return None
        # imported only when configured: a station without an ecology platform does not carry HJ 212 in memory
        from agent.uplink.hj212 import Hj212Uplink  # noqa: PLC0415

        state_path = outbox.path.with_name(f"{outbox.path.stem}-hj212.json")
        zone = ZoneInfo(self.config.station.timezone)
        boundary = Boundary("uplink-hj212", ledger.submit, self.clock)
        return Hj212Uplink(
            settings,
            profile,
            outbox.path,
            zone,
            state_path,
            self.clock,
            boundary=boundary,
            nozzles=self.config.hj212_nozzles(),
        )

    def _command_desk(
        self, recorder: Recorder, uplink: Uplink, outbox: Outbox, inbox: CommandInbox, platform_key: Path
    ) -> CommandDesk:
        """The platform's commands: taken from the inbox the uplink posts to, checked against `platform_key`,
        wired to the recorder, the uplink and the status snapshot."""
        settings = self.config.commands
        # imported only when enabled: a station without commands does not carry their code in memory
        from agent.commands.desk import CommandDesk, CommandPorts  # noqa: PLC0415
        from agent.commands.platform_key import PlatformKeyError, load_platform_key  # noqa: PLC0415
        from agent.commands.replay import ReplayMemory  # noqa: PLC0415
        from agent.commands.replay_file import ReplayFileError, load_replay  # noqa: PLC0415

        try:
            keys = load_platform_key(platform_key)
            replay = ReplayMemory(settings.replay_memory, load_replay(settings.state_path))
        except (PlatformKeyError, ReplayFileError) as exc:
            raise StartupError(str(exc)) from exc
        ports = CommandPorts(
            submit=recorder.submit,
            head_seq=lambda: recorder.head.seq,
            status=self._status_snapshot,
            resend=uplink.resend,
            rotate_key=recorder.rotate_key,
            reply=uplink.reply,
        )
        return CommandDesk(
            settings,
            self.config.station.id,
            platform_keys=keys,
            replay=replay,
            outbox_path=outbox.path,
            ports=ports,
            clock=self.clock,
            boundary=Boundary("commands", recorder.submit, self.clock),
            inbox=inbox,
        )

    def _status_snapshot(self) -> Mapping[str, object] | None:
        """The status the main thread built last, as the status file and socket carry it; None before the first.
        Called on the command desk's thread: the snapshot is frozen, and taking the reference is atomic."""
        status = self._last_status
        return None if status is None else dataclasses.asdict(status)

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
        starting = startup_intents(
            previous,
            self.clock.wall_ms(),
            version=self.version,
            config_sha256=self.loaded.sha256,
            kid=key.kid,
            jump_threshold_ms=int(self.config.clock.jump_threshold_s * 1000),
        )
        parts.station.resume(replay(outbox, parts.station.replay_from_ms()), list(starting))
        parts.recorder.start()
        if parts.ecology is not None:
            parts.ecology.start()
        if parts.commands is not None:
            parts.commands.start()
        parts.uplink.start()
        parts.station.start()
        for thread in parts.field.threads:
            thread.start()
        log.info(
            "agent_started",
            station=self.config.station.id,
            kid=key.kid,
            head_seq=head.seq,
            unclean_previous_stop=previous.was_running,
        )

    def _stop(self, parts: _Parts, reason: str) -> None:
        """Stop the loops in data order; the clean-stop mark is written, by the recorder as its last act, only if
        every loop ended. A loop that did not (a read that hangs, a bug) may still be about to make a record, so
        the stop counts as unclean and the next start says so (`unclean_stop`)."""
        ended = stop_all(parts.field.threads, POLLERS_STOP_S)
        ended["station"] = parts.station.stop(reason)
        if parts.commands is not None:
            ended["commands"] = parts.commands.stop()
        ended["recorder"] = parts.recorder.flush()
        parts.uplink.notify(parts.recorder.head.seq)
        ended["uplink"] = parts.uplink.stop()
        if parts.ecology is not None:
            parts.ecology.notify(parts.recorder.head.seq)
            ended["uplink-hj212"] = parts.ecology.stop()
        stuck = sorted(name for name, done in ended.items() if not done)
        if stuck:
            log.error("loops_not_ended", loops=stuck, consequence="the stop counts as unclean")
        recorder_ended = parts.recorder.stop(
            timeout_s=10.0 if ended["recorder"] else 1.0, mark=None if stuck else {"running": "0"}
        )
        if recorder_ended:
            parts.outbox.close()
        else:
            log.error("loops_not_ended", loops=["recorder"], consequence="the stop counts as unclean")
        self._write_status(parts)
        parts.reader.close()
        if self._outbox_lock is not None:
            os.close(self._outbox_lock)
            self._outbox_lock = None
        stored = parts.recorder.status()
        log.info(
            "agent_stopped",
            head_seq=parts.recorder.head.seq,
            acked_upto=stored.acked_upto,
            records_lost=stored.pending,
            clean=recorder_ended and not stuck and stored.pending == 0,
        )

    @staticmethod
    def _heartbeat_facts(pollers: Sequence[LinePoller], recorder: Recorder, uplink: Uplink) -> HeartbeatFacts:
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
        lines = tuple(poller.status() for poller in parts.field.pollers)
        facts = parts.view.facts()
        ecology = None if parts.ecology is None else parts.ecology.status()
        now_ms = self.clock.wall_ms()
        waiting = backlog(recorder, parts.reader, now_ms)
        uptime_s = parts.station.uptime_s()
        verdict = assess(
            recorder,
            uplink,
            lines,
            facts.alarms,
            backlog_records=waiting.records,
            oldest_waiting_age_s=waiting.oldest_age_s,
            oldest_waiting_ts=waiting.oldest_ts,
            confirmed_this_run=uplink.acked_upto > self._acked_at_start,
            uptime_s=uptime_s,
            confirm_within_s=2 * self.config.uplink.ack_timeout_s,
            ecology=ecology,
            sales_of=self._sales_of,
        )
        return AgentStatus(
            ts=format_ts(now_ms),
            station=self.config.station.id,
            version=self.version,
            uptime_s=uptime_s,
            health=verdict.health,
            problems=verdict.problems,
            recorder=recorder,
            uplink=uplink,
            lines=lines,
            backlog=waiting,
            alarms=facts.alarms,
            last_sales=facts.last_sales,
            disk=disk_of(self.config.outbox.path.parent),
            clock=clock_at(now_ms, self._zone, facts.last_clock_step),
            ecology=ecology,
            locale=self._locale,
            tanks=facts.tanks,
            nozzles=facts.nozzles,
        )

    def _publish_status(self, parts: _Parts) -> AgentStatus:
        status = self._write_status(parts)
        parts.uplink.set_faults(status.health, tuple(dataclasses.asdict(problem) for problem in status.problems))
        return status

    @staticmethod
    def _loops(parts: _Parts) -> dict[str, Loop]:
        """The threads that do the work, for the watchdog: a stuck one must cost the process, not the records."""
        loops: dict[str, Loop] = {"station": parts.station, "recorder": parts.recorder, "uplink": parts.uplink}
        loops.update({thread.name: thread for thread in parts.field.threads})
        if parts.ecology is not None:
            loops["uplink-hj212"] = parts.ecology
        return loops

    def _write_status(self, parts: _Parts) -> AgentStatus:
        status = self.status(parts)
        self._last_status = status
        document = status_json(status)
        try:
            write_status(self.config.status.path, document)
        except OSError as exc:
            count = self._status_unwritten.note(self.clock.monotonic())
            if count is not None:
                log.warning("status_not_written", path=str(self.config.status.path), error=str(exc), count=count)
        self._status_socket.offer(document)
        self._led.show(status.health)
        return status
