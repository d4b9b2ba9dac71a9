"""The status in plain words, for station staff, in their language: how the box is, what to do now, the facts.

Staff read this on a shop PC or a phone, not a manual: the first line says how things are, then one step per
thing that is wrong, with its size and what to do now (keep selling from a nozzle or not, whom to call), then a
few facts in the station's own time, litres and yuan. It fits 80 columns and 20 lines; a wide (CJK) character
counts as two columns. The facts are the snapshot's (agent/status.py) and the problems the one assessment
(agent/health.py); only the wording is here. Every sentence is a gettext msgid, marked `N_` in the tables and
`_` where said, so that tests/test_status_text.py finds any left untranslated in the catalogues (agent/locale).
"""

from __future__ import annotations

import errno
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from agent.contract.records import AlarmKind, parse_ts
from agent.health import Health, Problem
from agent.locale import LANGUAGES, translations
from agent.start_failure import StartFailure
from agent.status import AgentStatus

WIDTH = 80
MAX_LINES = 20
LATEST_SALES = 2


def N_(message: str) -> str:
    """Marks a msgid said later, through the catalogue, so that extraction finds it."""
    return message


HEADLINES: dict[Health, str] = {
    "ok": N_("ALL WELL: sales are recorded and confirmed by the platform."),
    "starting": N_("STARTING: sales are recorded, not yet confirmed by the platform."),
    "degraded": N_("BUFFERING: sales are recorded and kept on the box."),
    "fault": N_("NEEDS SOMEONE: see what to do below."),
    "stopped": N_("STOPPED: the agent is not running; nothing is being recorded."),
}

ADVICE: dict[str, tuple[str, str]] = {
    "storage_failing": (N_("the box cannot store records"), N_("call support now")),
    AlarmKind.OUTBOX_FULL: (N_("the box's storage is full"), N_("call support now")),
    AlarmKind.OUTBOX_FAILING: (N_("the box cannot store records"), N_("call support now")),
    AlarmKind.OUTBOX_CORRUPT: (N_("records stored on the box are damaged"), N_("call support")),
    "port_cannot_open": (
        N_("its adapter cannot be opened (unplugged?)"),
        N_("check that the USB adapter is plugged in; if it still fails, call the installer"),
    ),
    "line_silent": (
        N_("no device on it answers"),
        N_("check the cable and the devices' power; if it still fails, call the installer"),
    ),
    "device_not_answering": (
        N_("does not answer"),
        N_("check its power and its cable to the box; then call the maintenance company"),
    ),
    AlarmKind.DEVICE_SILENT: (
        N_("does not answer"),
        N_("check its power and its cable to the box; then call the maintenance company"),
    ),
    "platform_offline": (
        N_("the platform cannot be reached"),
        N_(
            "nothing now: records wait on the box and go out when the link is back; if it lasts for hours, "
            "check the router, then call support"
        ),
    ),
    "platform_unconfirmed": (
        N_("the platform does not confirm records"),
        N_("nothing now: records are kept on the box; if it lasts an hour, call support"),
    ),
    "platform_awaiting": (
        N_("waiting for the platform's first confirmation"),
        N_("nothing: ask again in a minute"),
    ),
    "hj212_offline": (
        N_("the ecology platform (HJ 212) cannot be reached"),
        N_("nothing now: its data wait on the box; if it lasts for hours, call support"),
    ),
    AlarmKind.METERING_DEVIATION: (
        N_("the pump's meter and its pulse encoder disagree"),
        N_("call the metrology institute to check the dispenser"),
    ),
    AlarmKind.METERING_BIAS: (
        N_("its pump meter reads high or low sale after sale"),
        N_("call the metrology institute to check the dispenser"),
    ),
    AlarmKind.DEVICE_VALUE_FAULT: (
        N_("it reports values no device can have (a sensor fault)"),
        N_("call the maintenance company to check the device"),
    ),
    AlarmKind.RECORD_UNSEALABLE: (
        N_("the box could not record some readings"),
        N_("call support"),
    ),
    AlarmKind.ENCODER_NO_PULSES: (
        N_("it sold fuel but its encoder gave no pulses"),
        N_("have the pulse cable and pulse counter checked"),
    ),
    AlarmKind.TRANSACTION_SKIPPED: (
        N_("sale numbers jumped, sales may be missing"),
        N_("write down the time and call support"),
    ),
    AlarmKind.TRANSACTION_COUNTER_RESET: (
        N_("the controller restarted its sale numbers"),
        N_("write down whether it was serviced, then call support"),
    ),
    AlarmKind.TOTALIZER_DISCONTINUITY: (N_("the totaliser jumped"), N_("call the maintenance company")),
    AlarmKind.PULSES_AT_REST: (
        N_("the encoder counts while the nozzle hangs up"),
        N_("check the dispenser for a leak and call the maintenance company"),
    ),
    AlarmKind.CALIBRATION_UNVERIFIED: (
        N_("its calibration or firmware changed without verification"),
        N_("call the metrology institute"),
    ),
    AlarmKind.LINE_ERRORS: (
        N_("many messages on it are garbled"),
        N_("have the installer check its cable, termination and earthing"),
    ),
    AlarmKind.TANK_LEAK: (
        N_("the tank's books point to a leak"),
        N_("follow the station's leak procedure now and call the maintenance company"),
    ),
    AlarmKind.UNRECORDED_SALES: (
        N_("fuel leaves the tank without recorded sales"),
        N_("check the pumps on this tank and call support"),
    ),
    AlarmKind.VAPOUR_PUMP_FAULT: (N_("no vapour flows back"), N_("have its vacuum pump checked")),
    AlarmKind.VAPOUR_AL_WARNING: (
        N_("vapour recovery is out of range (warning)"),
        N_("have its vapour pump and nozzle checked soon"),
    ),
    AlarmKind.VAPOUR_AL_ALARM: (
        N_("vapour recovery has failed for days (alarm)"),
        N_("have it repaired and report to the ecology bureau as the permit says"),
    ),
    AlarmKind.SLOW_DISPENSER: (N_("it dispenses slowly"), N_("have its filter and pump checked")),
    AlarmKind.TANK_PRESSURE_ZERO_WARNING: (
        N_("the tank holds no vapour pressure"),
        N_("check for a cap or valve left open"),
    ),
    AlarmKind.TANK_PRESSURE_ZERO_ALARM: (
        N_("the tank has held no pressure for days"),
        N_("have the tank's tightness checked now"),
    ),
    AlarmKind.TANK_PRESSURE_OVER_WARNING: (
        N_("the tank pressure is above its valve's setting"),
        N_("check the P/V valve and the vent line"),
    ),
    AlarmKind.TANK_PRESSURE_OVER_ALARM: (
        N_("the tank pressure stays above its valve's setting"),
        N_("call the maintenance company now"),
    ),
    AlarmKind.TANK_PRESSURE_BAND_WARNING: (
        N_("the tank pressure is often out of range"),
        N_("have the vapour recovery checked"),
    ),
    AlarmKind.TANK_PRESSURE_BAND_ALARM: (
        N_("the tank pressure has been out of range for days"),
        N_("have the vapour recovery repaired"),
    ),
}
"""(what is wrong, what to do now) per advice key; a key not listed gets UNKNOWN_ADVICE."""

UNKNOWN_ADVICE = (N_("alarm {kind}"), N_("call support"))

STOP_SELLING = 3
KEEP_SELLING = 2
UNRECORDED = 1
SELLING: dict[str, int] = {
    AlarmKind.METERING_DEVIATION: STOP_SELLING,
    AlarmKind.METERING_BIAS: STOP_SELLING,
    AlarmKind.PULSES_AT_REST: STOP_SELLING,
    AlarmKind.CALIBRATION_UNVERIFIED: STOP_SELLING,
    AlarmKind.ENCODER_NO_PULSES: KEEP_SELLING,
    AlarmKind.TRANSACTION_SKIPPED: KEEP_SELLING,
    AlarmKind.TRANSACTION_COUNTER_RESET: KEEP_SELLING,
    AlarmKind.TOTALIZER_DISCONTINUITY: KEEP_SELLING,
    AlarmKind.VAPOUR_PUMP_FAULT: KEEP_SELLING,
    AlarmKind.VAPOUR_AL_WARNING: KEEP_SELLING,
    AlarmKind.VAPOUR_AL_ALARM: KEEP_SELLING,
    AlarmKind.SLOW_DISPENSER: KEEP_SELLING,
}
"""Whether a nozzle may go on selling: a meter that cannot be trusted may not; vapour or bookkeeping trouble
does not stop a sale. For one subject the strongest wins, so a warning never contradicts an alarm. A device or
line that is down says UNRECORDED for the nozzles it serves: the dispensers still sell and count (their own meters
and the cash desk are not the box), so selling goes on, but the box records none of those sales meanwhile."""

SELLING_WORDS = {
    STOP_SELLING: N_("STOP selling from it"),
    KEEP_SELLING: N_("you may keep selling from it"),
    UNRECORDED: N_("you may keep selling from them, but the box records none of their sales until this is fixed"),
}

SUBJECTS: dict[str, str] = {
    "line_down": N_("line {name}"),
    "device_not_answering": N_("device {name}"),
    AlarmKind.DEVICE_SILENT: N_("device {name}"),
    AlarmKind.LINE_ERRORS: N_("line {name}"),
    AlarmKind.CALIBRATION_UNVERIFIED: N_("controller {name}"),
    AlarmKind.DEVICE_VALUE_FAULT: N_("device {name}"),
    AlarmKind.RECORD_UNSEALABLE: N_("storage"),
    AlarmKind.TANK_LEAK: N_("tank {name}"),
    AlarmKind.UNRECORDED_SALES: N_("tank {name}"),
    "storage_failing": N_("storage"),
    AlarmKind.OUTBOX_FULL: N_("storage"),
    AlarmKind.OUTBOX_FAILING: N_("storage"),
    AlarmKind.OUTBOX_CORRUPT: N_("storage"),
    "platform_offline": N_("platform"),
    "platform_unconfirmed": N_("platform"),
    "platform_awaiting": N_("platform"),
    "hj212_offline": N_("ecology platform"),
}
"""How a subject is named; nozzle alarms say `nozzle`, pressure alarms `sensor` (see _subject)."""

STATES = {
    "online": N_("online"),
    "connecting": N_("connecting"),
    "offline": N_("offline"),
    "stopped": N_("stopped"),
}

NOT_RUNNING = N_("The station agent is not running: no sales are being recorded.")
START_IT = N_("Start it: `sudo systemctl start station-agent`; if it stops again, call the installer or support.")
STOPPED_BECAUSE = N_("It last stopped at {when}, because {reason}.")
NOT_ASKED = N_("You may not ask the station agent: ask as a member of the station-agent group, or with `sudo`.")
TECHNICAL = N_("Technical: no answer at {socket} ({error}).")
STARTING_UP = N_("The station agent is starting; ask again in a few seconds.")

FAILURE_REASONS: dict[str, str] = {
    "config": N_("its configuration has a mistake ({detail}); the installer fixes it (station-agent check-config)"),
    "setup": N_(
        "a device or profile in its configuration is wrong; the installer fixes it (station-agent check-config)"
    ),
    "outbox": N_("its record store cannot be used; call support"),
    "fault": N_("the box has a fault (disk full or failing?); call support"),
    "startup": N_("it cannot start with what it found; call the installer"),
}
"""The kinds of agent/start_failure.py, in words; the technical detail stays in the journal."""


class Phrases:
    """One language's words for the problems of the one assessment: the plain status and the web page say the
    same, from here."""

    def __init__(self, language: str) -> None:
        # a newer agent's snapshot may name a language this command has no catalogue for: English then
        translation = translations(language if language in LANGUAGES else "en")
        self._: Callable[[str], str] = translation.gettext
        self._n: Callable[[str, str, int], str] = translation.ngettext

    def steps(self, problems: Iterable[Problem], dispensers: Mapping[str, str]) -> list[tuple[str, str]]:
        """(who or what, what to do) per subject, in the problems' order; `dispensers`: each nozzle's dispenser,
        as far as known."""
        groups: dict[str, list[Problem]] = {}
        for problem in problems:
            groups.setdefault(self.subject(problem, dispensers), []).append(problem)
        return [(subject, self.advice(grouped)) for subject, grouped in groups.items()]

    def advice(self, problems: list[Problem]) -> str:
        """One subject's advice: the strongest selling verdict once, then each problem with its size, and each
        next step once, after the problems it is the step for."""
        _ = self._
        sentences = []
        verdict = max(SELLING.get(problem.advice, UNRECORDED if problem.nozzles else 0) for problem in problems)
        if verdict:
            sentences.append(_(SELLING_WORDS[verdict]))
        steps: dict[str, list[str]] = {}
        for problem in problems:
            what, todo = ADVICE.get(problem.advice, UNKNOWN_ADVICE)
            said = _(what).format(kind=problem.kind.replace("_", " "))
            size = self.size(problem)
            if size:
                said = _("{what} ({size})").format(what=said, size=size)
            steps.setdefault(todo, []).append(said)
        for todo, problems_said in steps.items():
            sentences.append(_("{what}: {todo}").format(what=_(", ").join(problems_said), todo=_(todo)))
        return _("; ").join(sentences) + _(".")

    def subject(self, problem: Problem, dispensers: Mapping[str, str]) -> str:
        _ = self._
        if problem.kind.startswith("tank_pressure_"):
            name = _("sensor {name}").format(name=problem.subject)
        elif problem.kind in SELLING:
            name = _("nozzle {name}").format(name=problem.subject)
        else:
            name = _(SUBJECTS.get(problem.kind, N_("{name}"))).format(name=problem.subject)
        if problem.members:
            count = len(problem.members)
            name = self._n("{name} ({count} device: {devices})", "{name} ({count} devices: {devices})", count).format(
                name=name, count=count, devices=_(", ").join(problem.members)
            )
        if problem.nozzles:
            name = _("{name}, serving {what}").format(name=name, what=self._served(problem.nozzles, dispensers))
        return name

    def _served(self, nozzles: tuple[str, ...], dispensers: Mapping[str, str]) -> str:
        listed = self._(", ").join(nozzles)
        known = list(dict.fromkeys(dispensers[nozzle] for nozzle in nozzles if nozzle in dispensers))
        if not known:
            return self._n("nozzle {nozzles}", "nozzles {nozzles}", len(nozzles)).format(nozzles=listed)
        return self._n(
            "dispenser {dispensers} (nozzles {nozzles})", "dispensers {dispensers} (nozzles {nozzles})", len(known)
        ).format(dispensers=self._(", ").join(known), nozzles=listed)

    def size(self, problem: Problem) -> str:
        """The size in the words of its unit; empty when unknown or said elsewhere."""
        _, n_ = self._, self._n
        size, unit = problem.size, problem.unit
        if size is None or unit in (None, "devices"):
            return ""
        sizes: dict[str, Callable[[int], str]] = {
            "ppm": lambda value: _("{percent} %").format(percent=f"{value / 10_000:+.2f}"),
            "permille": lambda value: _("{percent} %").format(percent=f"{value / 10:.1f}"),
            "permille_passed": lambda value: _("{percent} % passed").format(percent=f"{value / 10:.1f}"),
            "ml": lambda value: _("{litres} L").format(litres=f"{value / 1000:.2f}"),
            "fen": lambda value: _("{yuan} yuan").format(yuan=f"{value / 100:.2f}"),
            "ml_per_h": lambda value: _("{litres} L/h").format(litres=f"{value / 1000:.2f}"),
            "ml_per_min": lambda value: _("{litres} L/min").format(litres=f"{value / 1000:.2f}"),
            "pa": lambda value: _("{pa} Pa").format(pa=value),
            "s": lambda value: self.duration(value * 1000),
            "days": lambda value: n_("{count} day", "{count} days", value).format(count=value),
            "sales": lambda value: n_("{count} sale", "{count} sales", value).format(count=value),
            "fuellings": lambda value: n_("{count} fuelling", "{count} fuellings", value).format(count=value),
            "records": self.records_waiting,
            "bytes": self.bytes,
        }
        say = sizes.get(unit)
        return "" if say is None or (unit == "records" and size == 0) else say(size)

    def records_waiting(self, count: int) -> str:
        return self._n("{count} record waiting", "{count} records waiting", count).format(count=count)

    def duration(self, ms: int) -> str:
        _ = self._
        seconds = max(0, ms) // 1000
        if seconds < 60:
            return _("{seconds} s").format(seconds=seconds)
        minutes = seconds // 60
        if minutes < 60:
            return _("{minutes} min").format(minutes=minutes)
        hours, minutes = divmod(minutes, 60)
        if hours < 48:
            return _("{hours} h {minutes} min").format(hours=hours, minutes=minutes)
        days, hours = divmod(hours, 24)
        return _("{days} days {hours} h").format(days=days, hours=hours)

    def bytes(self, count: int) -> str:
        value = float(count)
        for unit in ("bytes", "KB", "MB", "GB"):
            if value < 1000:
                return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
            value /= 1000
        return f"{value:.1f} TB"


class Page(Phrases):
    """One language's words for one snapshot; `render` is the whole page."""

    def __init__(self, status: AgentStatus, language: str | None = None) -> None:
        super().__init__(language or status.locale)
        self.status = status
        self.zone = ZoneInfo(status.clock.zone)

    def render(self) -> str:
        status = self.status
        head = self._("{headline}  (station {station})").format(
            headline=self._(HEADLINES[status.health]), station=status.station
        )
        details = self._details()
        room = MAX_LINES - len(details) - 4
        lines = [*wrap(head, WIDTH), "", self._("What to do:"), *self._steps(room), "", *details]
        return "\n".join(lines)

    # -- what to do ------------------------------------------------------------------------------------------

    def _steps(self, room: int) -> list[str]:
        _ = self._
        if self.status.health == "stopped":
            return wrap(
                _("start it with `sudo systemctl start station-agent`; if it stops again, call support"),
                WIDTH,
                "  - ",
                "    ",
            )
        dispensers = {nozzle.nozzle: nozzle.dispenser for nozzle in self.status.nozzles}
        steps = self.steps(self.status.problems, dispensers)
        if not steps:
            return ["  - " + _("nothing")]
        bullets = [
            wrap(_("{subject}: {advice}").format(subject=subject, advice=advice), WIDTH, "  - ", "    ")
            for subject, advice in steps
        ]
        lines: list[str] = []
        for shown, bullet in enumerate(bullets):
            if len(lines) + len(bullet) > room - 1 and shown < len(bullets) - 1:
                more = _("{count} more: see `station-agent status --json`").format(count=len(bullets) - shown)
                return [*lines, "  - " + more]
            lines += bullet
        return lines

    # -- the facts -------------------------------------------------------------------------------------------

    def _details(self) -> list[str]:
        _ = self._
        status = self.status
        rows = [
            (_("Platform"), self._link(status.uplink.state, status.uplink.since_ms)),
            (_("Waiting"), self._waiting()),
        ]
        if status.ecology is not None:
            ecology = status.ecology
            waiting = self.records_waiting(ecology.backlog)
            rows.append(
                (
                    _("HJ 212"),
                    _("{link}; {waiting}").format(link=self._link(ecology.state, ecology.since_ms), waiting=waiting),
                )
            )
        rows.append((_("Devices"), self._devices()))
        sales = sorted(status.last_sales, key=lambda sale: sale.end, reverse=True)[:LATEST_SALES]
        rows += [
            (_("Last sale"), self._sale(sale.nozzle, sale.grade, sale.volume_ml, sale.amount_fen, sale.end))
            for sale in sales
        ] or [(_("Last sale"), _("none since the agent started"))]
        rows += [(_("Storage"), self._disk()), (_("Clock"), self._clock()), (_("Agent"), self._agent())]
        label_width = max(display_width(label) for label, _text in rows) + 2
        lines = []
        for label, text in rows:
            pad = " " * (label_width - display_width(label))
            lines += wrap(f"{label}{pad}{text}", WIDTH, "", " " * label_width)
        return lines

    def _link(self, state: str, since_ms: int) -> str:
        now_ms = parse_ts(self.status.ts)
        return self._("{state} since {since} ({duration})").format(
            state=self._(STATES.get(state, state)),
            since=self._local(since_ms),
            duration=self.duration(now_ms - since_ms),
        )

    def _waiting(self) -> str:
        _ = self._
        backlog = self.status.backlog
        if backlog.records == 0:
            return _("nothing, the platform has every record")
        said = self.records_waiting(backlog.records)
        if backlog.oldest_ts is None or backlog.oldest_age_s is None:
            return said
        return _("{waiting}, the oldest from {when} ({age} ago)").format(
            waiting=said, when=self._local(parse_ts(backlog.oldest_ts)), age=self.duration(backlog.oldest_age_s * 1000)
        )

    def _devices(self) -> str:
        _ = self._
        devices = [device for line in self.status.lines for device in line.devices]
        answering = sum(1 for device in devices if device.state == "online")
        said = _("{answering} of {total} answering").format(answering=answering, total=len(devices))
        waiting = sum(1 for device in devices if device.state == "unknown")
        if waiting:
            said = _("{said}, {count} not polled yet").format(said=said, count=waiting)
        return said

    def _sale(self, nozzle: str, grade: str, volume_ml: int, amount_fen: int, end: str) -> str:
        return self._("{nozzle} ({grade}) {litres} L, {yuan} yuan at {when}").format(
            nozzle=nozzle,
            grade=grade,
            litres=f"{volume_ml / 1000:.2f}",
            yuan=f"{amount_fen / 100:.2f}",
            when=self._local(parse_ts(end)),
        )

    def _disk(self) -> str:
        _ = self._
        status = self.status
        stored = _("records use {size}").format(size=self.bytes(status.recorder.used_bytes))
        if status.disk is None:
            return _("free space unknown; {stored}").format(stored=stored)
        return _("{free} free of {total}; {stored}").format(
            free=self.bytes(status.disk.free_bytes), total=self.bytes(status.disk.total_bytes), stored=stored
        )

    def _clock(self) -> str:
        _ = self._
        clock = self.status.clock
        text = _("{local} ({zone}); compare with a clock you trust").format(local=clock.local, zone=clock.zone)
        step = clock.last_step
        if step is None:
            return text
        moved = _("set {duration} forward at {when}") if step.jump_ms > 0 else _("set {duration} back at {when}")
        said = moved.format(duration=self.duration(abs(step.jump_ms)), when=self._local(parse_ts(step.to_ts)))
        return _("{clock}; {step}").format(clock=text, step=said)

    def _agent(self) -> str:
        status = self.status
        return self._("version {version}, running for {duration}").format(
            version=status.version, duration=self.duration(status.uptime_s * 1000)
        )

    def _local(self, ts_ms: int) -> str:
        """Today's times as the clock on the wall says them; other days with their date."""
        moment = datetime.fromtimestamp(ts_ms / 1000, UTC).astimezone(self.zone)
        today = datetime.fromtimestamp(parse_ts(self.status.ts) / 1000, UTC).astimezone(self.zone).date()
        return moment.strftime("%H:%M:%S" if moment.date() == today else "%Y-%m-%d %H:%M")


def render(status: AgentStatus, language: str | None = None) -> str:
    """The page in `language` (`zh_CN` or `en`), or in the station's own (`status.locale`)."""
    return Page(status, language).render()


def said(message: str, language: str, **values: object) -> str:
    """One of this module's messages (STARTING_UP) in `language`."""
    return translations(language).gettext(message).format(**values)


def not_running(language: str, socket: Path, error: OSError, failure: StartFailure | None) -> str:
    """What `status` says when the agent does not answer: that no sales are recorded, why it stopped (the note a
    failed start left, agent/start_failure.py), what to do and whom to call; the socket and the error's code
    only on a last, technical line. A socket staff may not open is not a stopped agent: they are told how to ask."""
    _ = translations(language if language in LANGUAGES else "en").gettext
    if isinstance(error, PermissionError):
        sentences = [_(NOT_ASKED)]
    else:
        sentences = [_(NOT_RUNNING)]
        if failure is not None:
            sentences.append(stopped_because(language, failure))
        sentences.append(_(START_IT))
    code = errno.errorcode.get(error.errno or 0, type(error).__name__)
    lines = [line for sentence in sentences for line in wrap(sentence, WIDTH, "", "  ")]
    return "\n".join([*lines, _(TECHNICAL).format(socket=socket, error=code)])  # a path is not broken


def stopped_because(language: str, failure: StartFailure) -> str:
    """When and why the agent last failed to start, in `language`: what `status` and the web page say of it."""
    _ = translations(language if language in LANGUAGES else "en").gettext
    reason = _(FAILURE_REASONS[failure.kind]).format(detail=failure.detail)
    when = failure.when[:16] + failure.when[19:]
    return _(STOPPED_BECAUSE).format(when=when, reason=reason)


def display_width(text: str) -> int:
    """Columns on a terminal: East Asian wide and fullwidth characters take two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


_TOKENS = re.compile(r"[\x21-\x7e]*\d (?:%|L/h|L/min|L|Pa|yuan)(?![A-Za-z])[\x21-\x7e]*|[\x21-\x7e]+|\s+|.", re.DOTALL)
"""Latin words, and a number with its unit (`(+1.48 %):`, `12.34 L,`) as one word: a size is never cut in two."""
_NO_LINE_START = frozenset("\uff0c\u3002\u3001\uff1b\uff1a\uff01\uff1f\uff09\u300d\u300f\u300b")
"""Fullwidth closing punctuation, which Chinese typesetting keeps off the start of a line."""


def wrap(text: str, width: int, first: str = "", rest: str = "") -> list[str]:
    """Fill `text` to `width` display columns: Latin words stay whole, CJK text breaks between characters, and
    no line starts with closing punctuation (it stays with the character before it)."""
    lines: list[str] = []
    line, used = first, display_width(first)
    for token in _TOKENS.findall(text):
        size = display_width(token)
        if used + size <= width or used == display_width(rest if lines else first):
            line, used = line + token, used + size
            continue
        if token.isspace():
            lines.append(line.rstrip())
            line, used = rest, display_width(rest)
            continue
        carried = ""
        if token in _NO_LINE_START and len(line.rstrip()) > len(rest):
            carried, line = line[-1], line[:-1]
        lines.append(line.rstrip())
        line = rest + carried + token
        used = display_width(line)
    lines.append(line.rstrip())
    return lines
