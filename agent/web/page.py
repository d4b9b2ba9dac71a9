"""The page's HTML from a status snapshot and the config, as pure functions: no I/O, every value escaped.

The snapshot is read as plain JSON, not as the agent's typed `AgentStatus`: this page must keep working
while the document grows (a structured `problems` list, per-nozzle phases, tank levels) and in front of an
agent one version older or newer, so every field is optional here and one it does not know is skipped.
What the snapshot lacks, the config supplies (the forecourt's nozzles and tanks), so a tile is never missing.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.config import AgentConfig
from agent.health import Problem
from agent.status_text import SELLING, SELLING_WORDS, STOP_SELLING, Phrases
from agent.web import words as w
from agent.web.words import Words

REFRESH_S = 3
"""How often the page's script asks for a fresh `/live` fragment."""


@dataclass(frozen=True, slots=True)
class NozzlePlace:
    id: str
    dispenser: str
    grade: str
    tank: str
    controller: str


@dataclass(frozen=True, slots=True)
class TankPlace:
    id: str
    product: str
    capacity_l: int


@dataclass(frozen=True, slots=True)
class Forecourt:
    """What the config says the station has: the tiles the page always shows."""

    station: str
    name: str
    zone: str
    nozzles: tuple[NozzlePlace, ...]
    tanks: tuple[TankPlace, ...]
    hj212: bool

    @classmethod
    def of(cls, config: AgentConfig) -> Forecourt:
        return cls(
            station=config.station.id,
            name=config.station.name,
            zone=config.station.timezone,
            nozzles=tuple(
                NozzlePlace(nozzle.id, dispenser.id, nozzle.grade, nozzle.tank, nozzle.controller)
                for dispenser, nozzle in config.nozzles()
            ),
            tanks=tuple(TankPlace(tank.id, tank.product, tank.capacity_l) for tank in config.tanks),
            hj212=config.hj212 is not None,
        )


def e(value: object) -> str:
    return html.escape(str(value), quote=True)


def document(title: str, body: str, words: Words, *, nav: bool = True) -> str:
    """A whole page: the stylesheet and script are the process's own files (the CSP allows nothing else)."""
    links = (
        f'<nav><a href="/">{e(words(w.CONSOLE))}</a><a href="/sheet">{e(words(w.SHEET))}</a>'
        f'<a href="/selftest">{e(words(w.SELFTEST))}</a>'
        f'<form method="post" action="/logout"><button type="submit">{e(words(w.LOG_OUT))}</button></form></nav>'
        if nav
        else ""
    )
    return (
        f'<!DOCTYPE html><html lang="{e(words.locale.replace("_", "-"))}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{e(title)}</title><link rel="icon" href="/icon.svg"><link rel="stylesheet" href="/style.css">'
        '<script src="/app.js" defer></script></head>'
        f"<body>{links}<main>{body}</main>"
        f"<footer>{e(words(w.READ_ONLY))}</footer></body></html>"
    )


def console(
    snapshot: Mapping[str, Any] | None, problem: str | None, forecourt: Forecourt, words: Words, why: str = ""
) -> str:
    body = f'<div id="live" data-refresh-s="{REFRESH_S}">{live(snapshot, problem, forecourt, words, why)}</div>'
    return document(f"{words(w.TITLE)} {forecourt.station}", body, words)


def live(
    snapshot: Mapping[str, Any] | None, problem: str | None, forecourt: Forecourt, words: Words, why: str = ""
) -> str:
    """The part of the console that the script refreshes; `problem` is why there is no snapshot, `why` (in
    words) why the agent last stopped, when a failed start said so."""
    zone = _zone(_get(snapshot, "clock", "zone") or forecourt.zone)
    head = _headline(snapshot, problem, forecourt, words, zone, why=why)
    if snapshot is None:
        return (
            head
            + _nozzles(forecourt, words, zone, sales={}, states={}, alarmed=set(), stop=set(), flowing={})
            + _tanks({}, forecourt, words)
        )
    sales = {_str(sale.get("nozzle")): sale for sale in _dicts(snapshot.get("last_sales"))}
    phases = {_str(item.get("nozzle")): item for item in _dicts(snapshot.get("nozzles"))}
    controllers = _device_states(snapshot)
    alarmed = {_str(alarm.get("subject")) for alarm in _dicts(snapshot.get("alarms"))}
    stop = {
        _str(alarm.get("subject"))
        for alarm in _dicts(snapshot.get("alarms"))
        if SELLING.get(_str(alarm.get("kind"))) == STOP_SELLING
    }
    states = {
        nozzle.id: _nozzle_state(phases.get(nozzle.id), controllers.get(nozzle.controller))
        for nozzle in forecourt.nozzles
    }
    flowing = {
        nozzle: _int(phase.get("volume_ml")) for nozzle, phase in phases.items() if states.get(nozzle) == "fuelling"
    }
    tanks = {_str(item.get("tank")): item for item in _dicts(snapshot.get("tanks"))}
    return (
        head
        + _nozzles(forecourt, words, zone, sales=sales, states=states, alarmed=alarmed, stop=stop, flowing=flowing)
        + _tanks(tanks, forecourt, words)
        + _alarms(snapshot, words, zone)
        + _uplinks(snapshot, forecourt, words, zone)
        + _lines(snapshot, words)
    )


def _headline(
    snapshot: Mapping[str, Any] | None,
    problem: str | None,
    forecourt: Forecourt,
    words: Words,
    zone: ZoneInfo,
    *,
    why: str,
) -> str:
    health = _str(snapshot.get("health")) if snapshot is not None else "stopped"
    health = health if health in w.HEALTH else "fault"
    line = words(problem) if problem is not None else words(w.HEALTH_LINE[health])
    clock = _str(_get(snapshot, "clock", "local")) or _local(_str(_get(snapshot, "ts")), zone)
    updated = f'<div class="clock">{e(words(w.UPDATED))} {e(clock)} {e(zone.key)}</div>' if clock else ""
    return (
        f'<header class="health health-{e(health)}"><div><span class="station">{e(forecourt.station)}</span>'
        f' <span class="name">{e(forecourt.name)}</span></div>'
        f'<div class="verdict">{e(words(w.HEALTH[health]))}</div><div class="why">{e(line)}</div>'
        + (f'<div class="why stopped">{e(why)}</div>' if why else "")
        + f"{updated}</header>"
    )


def _nozzle_state(phase: Mapping[str, Any] | None, controller: str | None) -> str:
    """The nozzle's phase when the snapshot says it, else what its controller's answering tells."""
    if controller == "offline":
        return "not_answering"
    said = _str((phase or {}).get("phase"))
    if said in w.NOZZLE_STATES:
        return said
    return "answering" if controller == "online" else "unknown"


def _nozzles(
    forecourt: Forecourt,
    words: Words,
    zone: ZoneInfo,
    *,
    sales: Mapping[str, Mapping[str, Any]],
    states: Mapping[str, str],
    alarmed: set[str],
    stop: set[str],
    flowing: Mapping[str, int | None],
) -> str:
    """`flowing`: the volume of each fuelling under way, by nozzle, where the controller says it; `stop`: the
    nozzles whose meter cannot be trusted, whose tile says not to sell from them (the cashier looks there)."""
    tiles = []
    for nozzle in forecourt.nozzles:
        state = states.get(nozzle.id, "unknown")
        tone = "alarm" if nozzle.id in alarmed or nozzle.dispenser in alarmed else state
        volume_ml = flowing.get(nozzle.id)
        now = f' <span class="volume">{e(_litres(volume_ml))}</span>' if volume_ml is not None else ""
        sale = sales.get(nozzle.id)
        if sale is None:
            last = f'<div class="sale none">{e(words(w.NO_SALE))}</div>'
        else:
            last = (
                f'<div class="sale"><span class="label">{e(words(w.LAST_SALE))}</span>'
                f'<span class="volume">{e(_litres(sale.get("volume_ml")))}</span>'
                f'<span class="amount">{e(_yuan(sale.get("amount_fen")))}</span>'
                f'<span class="when">{e(_local(_str(sale.get("end")), zone, "%H:%M:%S"))}</span></div>'
            )
        tiles.append(
            f'<div class="tile nozzle tone-{e(tone)}" data-nozzle="{e(nozzle.id)}"><div class="id">{e(nozzle.id)}</div>'
            f'<div class="grade">{e(words(w.GRADE))} {e(nozzle.grade)}'
            + (f" · {e(words(w.TANK))} {e(nozzle.tank)}" if nozzle.tank else "")
            + f'</div><div class="state">{e(words(w.NOZZLE_STATES[state]))}{now}</div>'
            + (f'<div class="stop">{e(words(SELLING_WORDS[STOP_SELLING]))}</div>' if nozzle.id in stop else "")
            + f"{last}</div>"
        )
    return f'<section><h2>{e(words(w.NOZZLES))}</h2><div class="tiles">{"".join(tiles)}</div></section>'


def _tanks(levels: Mapping[str, Mapping[str, Any]], forecourt: Forecourt, words: Words) -> str:
    known = {tank.id for tank in forecourt.tanks}
    places = list(forecourt.tanks) + [TankPlace(name, "", 0) for name in sorted(levels) if name and name not in known]
    if not places:
        return ""
    tiles = []
    for tank in places:
        level = levels.get(tank.id)
        capacity_ml = tank.capacity_l * 1000
        if level is None or _int(level.get("volume_ml")) is None:
            why = w.LEVEL_UNKNOWN if level is None else w.LEVEL_NOT_YET
            reading = f'<div class="level none">{e(words(why))}</div>'
        else:
            volume_ml = _int(level.get("volume_ml")) or 0
            percent = min(100, max(0, round(100 * volume_ml / capacity_ml))) if capacity_ml else None
            bar = f'<meter min="0" max="100" value="{percent}"></meter>' if percent is not None else ""
            water = _int(level.get("water_um"))
            reading = (
                f'<div class="level"><span class="volume">{e(_litres(volume_ml))}</span>'
                + (f' <span class="percent">{percent} %</span>' if percent is not None else "")
                + f"{bar}"
                + (f'<span class="water">{e(words(w.WATER))} {water / 1000:.0f} mm</span>' if water is not None else "")
                + "</div>"
            )
        capacity = f" · {e(words(w.CAPACITY))} {tank.capacity_l:,} L" if tank.capacity_l else ""
        tiles.append(
            f'<div class="tile tank" data-tank="{e(tank.id)}"><div class="id">{e(tank.id)}</div>'
            f'<div class="grade">{e(_product(tank.product, words))}{capacity}</div>{reading}</div>'
        )
    return f'<section><h2>{e(words(w.TANKS))}</h2><div class="tiles">{"".join(tiles)}</div></section>'


def _product(product: str, words: Words) -> str:
    """The config's product family in words; a name this page does not know (a newer config's) as it is."""
    return words(w.PRODUCTS[product]) if product in w.PRODUCTS else product


def _alarms(snapshot: Mapping[str, Any], words: Words, zone: ZoneInfo) -> str:
    """What is wrong and what to do, in the words `station-agent status` says (agent/status_text.py), one item
    per subject: the structured problems when the snapshot has them, else (an older agent) its alarms and its
    silent devices."""
    structured = _dicts(snapshot.get("problems"))
    problems = [_problem(item) for item in structured]
    if not structured:
        problems += [
            Problem(_str(alarm.get("kind")), "fault", _str(alarm.get("subject")), _str(alarm.get("since")) or None,
                    _str(alarm.get("kind")))
            for alarm in _dicts(snapshot.get("alarms"))
        ]  # fmt: skip
        problems += [
            Problem("device_not_answering", "fault", _str(device.get("name")), None, "device_not_answering")
            for line in _dicts(snapshot.get("lines"))
            for device in _dicts(line.get("devices"))
            if device.get("state") == "offline"
        ]
    dispensers = {_str(item.get("nozzle")): _str(item.get("dispenser")) for item in _dicts(snapshot.get("nozzles"))}
    phrases = Phrases(words.locale)
    since: dict[str, str] = {}
    for problem in problems:
        subject = phrases.subject(problem, dispensers)
        if problem.since and (not since.get(subject) or problem.since < since[subject]):
            since[subject] = problem.since  # the earliest known: one carried over from an earlier run has none
    items = [
        f'<li class="alarm"><div class="what"><b>{e(subject)}</b>'
        + (f" · {e(words(w.SINCE_TIME, time=_local(since[subject], zone)))}" if since.get(subject) else "")
        + f'</div><div class="advice">{e(advice)}</div></li>'
        for subject, advice in phrases.steps(problems, dispensers)
    ]
    if not structured and not items:
        items = [
            f'<li class="problem"><div class="what">{e(text)}</div></li>'
            for text in snapshot.get("problems") or ()
            if isinstance(text, str)
        ]
    listed = "".join(items) if items else f'<li class="none">{e(words(w.NO_ALARMS))}</li>'
    return f'<section><h2>{e(words(w.ALARMS))}</h2><ul class="alarms">{listed}</ul></section>'


def _problem(item: Mapping[str, Any]) -> Problem:
    """A problem of the snapshot's JSON, typed as the assessment made it; a field of the wrong type is left out."""
    severity = item.get("severity")
    return Problem(
        kind=_str(item.get("kind")),
        severity=severity if severity in ("fault", "degraded", "starting") else "fault",
        subject=_str(item.get("subject")),
        since=_str(item.get("since")) or None,
        advice=_str(item.get("advice")) or _str(item.get("kind")),
        size=_int(item.get("size")),
        unit=_str(item.get("unit")) or None,
        members=tuple(_str(member) for member in item.get("members") or () if isinstance(member, str)),
        nozzles=tuple(_str(nozzle) for nozzle in item.get("nozzles") or () if isinstance(nozzle, str)),
    )


@dataclass(frozen=True, slots=True)
class _Link:
    key: str
    title: str
    state: str
    since_ms: object
    where: str
    backlog: int | None
    error: str


def _uplinks(snapshot: Mapping[str, Any], forecourt: Forecourt, words: Words, zone: ZoneInfo) -> str:
    uplink = _dict(snapshot.get("uplink"))
    recorder = _dict(snapshot.get("recorder"))
    backlog = _int(_dict(snapshot.get("backlog")).get("records"))
    if backlog is None and recorder:
        backlog = max(0, (_int(recorder.get("head_seq")) or 0) - (_int(recorder.get("acked_upto")) or 0))
    links = [
        _Link(
            "mqtt",
            words(w.PLATFORM_MQTT),
            _str(uplink.get("state")),
            uplink.get("since_ms"),
            _str(uplink.get("broker")),
            backlog,
            _str(uplink.get("last_error")),
        )
    ]
    ecology = snapshot.get("ecology")
    if isinstance(ecology, dict):
        links.append(
            _Link(
                "hj212",
                words(w.ECOLOGY_HJ212),
                _str(ecology.get("state")),
                ecology.get("since_ms"),
                _str(ecology.get("platform")),
                _int(ecology.get("backlog")),
                _str(ecology.get("last_error")),
            )
        )
    rows = [_link_row(link, words, zone) for link in links]
    if not isinstance(ecology, dict):
        state = words(w.LINK_STATES["unknown"]) if forecourt.hj212 else words(w.NOT_CONFIGURED)
        rows.append(
            f'<div class="link link-none" data-link="hj212"><div class="id">{e(words(w.ECOLOGY_HJ212))}</div>'
            f'<div class="state">{e(state)}</div></div>'
        )
    return f'<section><h2>{e(words(w.UPLINKS))}</h2><div class="links">{"".join(rows)}</div></section>'


def _link_row(link: _Link, words: Words, zone: ZoneInfo) -> str:
    state = link.state if link.state in w.LINK_STATES else "unknown"
    since_ms = link.since_ms
    named = words(w.LINK_STATES[state])
    if isinstance(since_ms, int) and since_ms > 0:
        named = words(w.STATE_SINCE, state=named, time=_local_ms(since_ms, zone))
    waiting = f'<div class="backlog">{e(words.plural(w.RECORDS_WAITING, link.backlog))}</div>' if link.backlog else ""
    detail = (
        f'<details class="detail"><summary>{e(words(w.TECHNICAL))}</summary><div lang="en">{e(link.error)}</div>'
        "</details>"
        if link.error and state != "online"
        else ""
    )
    return (
        f'<div class="link link-{e(state)}" data-link="{e(link.key)}"><div class="id">{e(link.title)}</div>'
        f'<div class="state">{e(named)}</div>'
        f'<div class="where">{e(link.where)}</div>{waiting}{detail}</div>'
    )


def _lines(snapshot: Mapping[str, Any], words: Words) -> str:
    rows = []
    for line in _dicts(snapshot.get("lines")):
        devices = " ".join(
            f'<span class="device device-{e(_str(device.get("state")))}">{e(_str(device.get("name")))}</span>'
            for device in _dicts(line.get("devices"))
        )
        rows.append(f'<li><span class="line">{e(_str(line.get("name")))}</span> {devices}</li>')
    if not rows:
        return ""
    return f'<section><h2>{e(words(w.LINES))}</h2><ul class="lines">{"".join(rows)}</ul></section>'


def _device_states(snapshot: Mapping[str, Any]) -> dict[str, str]:
    return {
        _str(device.get("name")): _str(device.get("state"))
        for line in _dicts(snapshot.get("lines"))
        for device in _dicts(line.get("devices"))
    }


def login(words: Words, message: str = "") -> str:
    said = f'<p class="refused">{e(message)}</p>' if message else ""
    body = (
        f'<form class="login" method="post" action="/login"><h1>{e(words(w.TITLE))}</h1>{said}'
        f'<label for="pin">{e(words(w.PIN))}</label>'
        '<input id="pin" name="pin" type="password" inputmode="numeric" autocomplete="current-password" '
        'maxlength="128" required autofocus>'
        f'<button type="submit">{e(words(w.LOG_IN))}</button></form>'
    )
    return document(words(w.LOG_IN), body, words, nav=False)


def preformatted(title: str, notes: Iterable[str], text: str, words: Words, *, action: str = "") -> str:
    """A page of plain text (the commissioning sheet, the self-test's output) with notes above it."""
    said = "".join(f'<p class="note">{e(note)}</p>' for note in notes)
    return document(title, f"<h1>{e(title)}</h1>{action}{said}<pre>{e(text)}</pre>", words)


def selftest_form(words: Words) -> str:
    return (
        f'<form method="post" action="/selftest"><p class="note">{e(words(w.SELFTEST_HINT))}</p>'
        f'<button type="submit">{e(words(w.RUN_SELFTEST))}</button></form>'
    )


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _local(ts: str, zone: ZoneInfo, pattern: str = "%Y-%m-%d %H:%M:%S") -> str:
    """An RFC 3339 UTC time as the station's clock shows it; the text as given if it is not one, or if it is
    beyond what the calendar can shift into the zone (year 9999 and later)."""
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(zone).strftime(pattern)
    except (ValueError, OverflowError):
        return ts


def _local_ms(ms: int, zone: ZoneInfo) -> str:
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M")
    except (ValueError, OverflowError, OSError):
        return str(ms)


def _litres(volume_ml: object) -> str:
    return f"{volume_ml / 1000:,.2f} L" if isinstance(volume_ml, int) else "?"


def _yuan(amount_fen: object) -> str:
    return f"¥{amount_fen / 100:,.2f}" if isinstance(amount_fen, int) else ""


def _get(snapshot: Mapping[str, Any] | None, *keys: str) -> Any:
    value: Any = snapshot
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
