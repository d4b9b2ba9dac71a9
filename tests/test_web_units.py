"""The web page's pure parts: the PIN's hash, the login throttle and sessions, and the HTML from a snapshot."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from status_sample import (
    COMMON_STATES,
    fault_status,
    fuelling_status,
    offline_status,
    sample_status,
    unplugged_status,
)

from agent import start_failure
from agent.config import ConfigError
from agent.config_validation import load_config
from agent.locale import translations
from agent.status import ActiveAlarm, status_json
from agent.web import guard, page
from agent.web import words as w
from agent.web.app import Console, Request
from agent.web.guard import LoginThrottle, SessionBook
from agent.web.pin import PIN_HASH, PinError, hash_pin, verify_pin
from agent.web.selftest_run import SelftestRunner
from agent.web.words import Words, spoken

FORECOURT = page.Forecourt(
    station="ST-0001",
    name="Riverside",
    zone="Asia/Shanghai",
    nozzles=(
        page.NozzlePlace("D01-N1", "D01", "92", "T1", "pc1"),
        page.NozzlePlace("D01-N2", "D01", "95", "T2", "pc1"),
        page.NozzlePlace("D02-N1", "D02", "92", "T1", "pc2"),
    ),
    tanks=(page.TankPlace("T1", "gasoline", 30_000), page.TankPlace("T2", "gasoline", 20_000)),
    hj212=False,
)
ENGLISH = Words("en")


class TestPin:
    def test_the_stored_line_is_scrypt_of_the_pin_with_its_salt(self) -> None:
        """The hash in the line is what hashlib's scrypt gives for the PIN, the salt and the named parameters."""
        salt = bytes(range(16))
        line = hash_pin("482916", salt)
        name, log2_n, r, p, salt_b64, hash_b64 = line.split("$")
        assert (name, base64.b64decode(salt_b64)) == ("scrypt", salt)
        expected = hashlib.scrypt(b"482916", salt=salt, n=2 ** int(log2_n), r=int(r), p=int(p), dklen=32)
        assert base64.b64decode(hash_b64) == expected
        assert PIN_HASH.fullmatch(line)

    def test_the_right_pin_passes_and_any_other_fails(self) -> None:
        """verify_pin accepts the PIN, refuses a near miss, an over-long PIN and a damaged stored line."""
        line = hash_pin("482916")
        assert verify_pin("482916", line)
        assert not verify_pin("482917", line)
        assert not verify_pin("4" * 10_000, line)
        assert not verify_pin("482916", line[:-6] + "AAAAA=")
        assert not verify_pin("482916", "plain:482916")

    def test_two_hashes_of_one_pin_differ(self) -> None:
        """A fresh salt each time: two stations with the same PIN do not share a hash."""
        assert hash_pin("482916") != hash_pin("482916")

    def test_a_short_pin_is_refused_with_the_rule(self) -> None:
        """Fewer than six characters is refused, and the message says how many are needed."""
        with pytest.raises(PinError, match="choose 6 to 128"):
            hash_pin("1234")


class TestThrottle:
    def test_the_wait_starts_after_three_failures_and_doubles(self) -> None:
        """Three wrong PINs are free; the fourth try waits 30 s, the next failure 60 s."""
        throttle = LoginThrottle()
        for now in (0.0, 1.0, 2.0):
            assert throttle.wait_s("10.0.0.5", now) == 0
            throttle.failed("10.0.0.5", now)
        assert throttle.wait_s("10.0.0.5", 2.0) == pytest.approx(guard.FIRST_LOCK_S)
        assert throttle.wait_s("10.0.0.6", 2.0) == 0
        throttle.failed("10.0.0.5", 40.0)
        assert throttle.wait_s("10.0.0.5", 40.0) == pytest.approx(2 * guard.FIRST_LOCK_S)

    def test_many_addresses_share_one_limit_for_those_that_failed(self) -> None:
        """Ten failures within a minute from ten addresses make any of them, after its first failure, wait
        until the oldest is a minute old; an address that never failed is not held back."""
        throttle = LoginThrottle()
        for i in range(guard.GLOBAL_FAILURES_PER_MIN):
            throttle.failed(f"10.0.1.{i}", float(i))
        assert throttle.wait_s("10.0.1.0", 10.0) == pytest.approx(50.0)
        assert throttle.wait_s("10.0.1.0", 61.0) == 0
        assert throttle.wait_s("10.0.2.1", 10.0) == 0

    def test_strangers_failures_do_not_lock_out_the_staff(self) -> None:
        """An hour of wrong PINs from twenty addresses, ten a minute, never makes the staff's address wait."""
        throttle = LoginThrottle()
        for minute in range(60):
            for i in range(guard.GLOBAL_FAILURES_PER_MIN):
                now = minute * 60.0 + i
                if throttle.wait_s(f"10.0.9.{i % 20}", now) == 0:
                    throttle.failed(f"10.0.9.{i % 20}", now)
            assert throttle.wait_s("10.0.0.5", minute * 60.0 + 30.0) == 0

    def test_an_ipv6_host_counts_by_its_64(self) -> None:
        """Three failures from three addresses of one /64 lock the whole /64, not another /64."""
        throttle = LoginThrottle()
        for i, now in enumerate((0.0, 1.0, 2.0)):
            throttle.failed(f"fd00:1:2:3::{i + 1:x}", now)
        assert throttle.wait_s("fd00:1:2:3:ffff::9", 2.0) == pytest.approx(guard.FIRST_LOCK_S)
        assert throttle.wait_s("fd00:1:2:4::1", 2.0) == 0

    def test_a_success_forgets_the_failures(self) -> None:
        """After a right PIN, the address starts again with three free tries."""
        throttle = LoginThrottle()
        for now in (0.0, 1.0):
            throttle.failed("10.0.0.5", now)
        throttle.succeeded("10.0.0.5")
        throttle.failed("10.0.0.5", 2.0)
        throttle.failed("10.0.0.5", 3.0)
        assert throttle.wait_s("10.0.0.5", 3.0) == 0


class TestSessions:
    def test_a_session_ends_when_idle_or_old(self) -> None:
        """A token is valid while used; idle past IDLE_END_S or older than its lifetime it is gone for good."""
        book = SessionBook(lifetime_s=3600.0)
        token = book.open(0.0)
        assert book.valid(token, 1000.0) and book.valid(token, 2000.0)
        assert not book.valid(token, 2000.0 + guard.IDLE_END_S + 1)
        assert not book.valid(token, 2001.0)
        old = book.open(0.0)
        for now in range(600, 3600, 600):
            assert book.valid(old, float(now))
        assert not book.valid(old, 3601.0)
        assert not book.valid(None, 0.0) and not book.valid("made-up", 0.0)

    def test_the_book_is_bounded(self) -> None:
        """Logging in again and again keeps at most MAX_SESSIONS, the oldest going first."""
        book = SessionBook(lifetime_s=3600.0)
        tokens = [book.open(float(i)) for i in range(guard.MAX_SESSIONS + 4)]
        assert not book.valid(tokens[0], 30.0)
        assert all(book.valid(token, 30.0) for token in tokens[-guard.MAX_SESSIONS :])


class _Text(HTMLParser):
    """The page as a browser would show its text, tag by tag (a check independent of how page.py builds it)."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script" or any(name.startswith("on") for name, _ in attrs):
            self.scripts += 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _shown(html: str) -> tuple[str, int]:
    parser = _Text()
    parser.feed(html)
    return " ".join(" ".join(parser.text).split()), parser.scripts


def _snapshot(status: object) -> dict[str, object]:
    return json.loads(status_json(status))  # type: ignore[arg-type]


class TestPage:
    @pytest.mark.parametrize("said", ["fr", "zh_TW", "../../etc", "", 7, None])
    def test_a_language_without_a_catalogue_is_english(self, said: object) -> None:
        """A snapshot naming an unknown language (or a path) gets an English page, not an error."""
        words = spoken(said, ENGLISH)
        snapshot = {**_snapshot(sample_status()), "locale": said}
        shown, _ = _shown(page.console(snapshot, None, FORECOURT, words))
        assert words.locale == "en" and "ALL WELL" in shown

    def test_a_known_language_is_spoken(self) -> None:
        """zh_CN, which has a catalogue, is used (the check above refuses names, not languages)."""
        assert spoken("zh_CN", ENGLISH).locale == "zh_CN"

    @pytest.mark.parametrize("name", ["fr", "zh_TW", "../../etc", "en/../zh_CN"])
    def test_the_catalogue_loader_refuses_unknown_names(self, name: str) -> None:
        """translations() refuses a name not in LANGUAGES before making a path of it, and names the choices."""
        with pytest.raises(ValueError, match="choose one of zh_CN, en"):
            translations(name)

    def test_a_date_beyond_the_calendar_is_shown_as_given(self) -> None:
        """A snapshot time of 9999-12-31T23:59:59Z (no year 10000 east of UTC) shows as text, not an error."""
        snapshot = {**_snapshot(sample_status()), "ts": "9999-12-31T23:59:59Z"}
        snapshot.pop("clock", None)
        shown, _ = _shown(page.console(snapshot, None, FORECOURT, ENGLISH))
        assert "9999-12-31T23:59:59Z" in shown

    def test_all_well_shows_every_nozzle_its_last_sale_and_the_uplink(self) -> None:
        """Every configured nozzle has a tile; the sold one shows 12.34 L and ¥95.02 at 10:21:40 Shanghai time."""
        shown, scripts = _shown(page.console(_snapshot(sample_status()), None, FORECOURT, ENGLISH))
        assert "ALL WELL" in shown and "D01-N1" in shown and "D01-N2" in shown and "D02-N1" in shown
        assert re.search(r"D01-N1 grade 92 · tank T1 ready last sale 12\.34 L ¥95\.02 10:21:40", shown)
        assert "City platform (MQTT) online since 2026-11-28 08:15" in shown
        assert "Ecology platform (HJ 212) not configured" in shown
        assert "T1 gasoline · capacity 30,000 L level not in the agent's status" in shown
        assert scripts == 1  # the one external /app.js, no inline script or handler

    def test_a_fault_shows_the_silent_device_and_the_alarm_with_advice(self) -> None:
        """A controller that stopped answering turns its nozzles red; an alarm names its advice."""
        html = page.live(_snapshot(fault_status()), None, FORECOURT, ENGLISH)
        shown, _ = _shown(html)
        assert "NEEDS SOMEONE" in shown
        assert "nozzle D01-N2 · since 2026-11-28 10:03:00 STOP selling from it; the pump's meter" in shown
        assert "(+1.00 %): call the metrology institute" in shown and "metering" not in shown
        assert "device pcm2 · since 2026-11-28 08:55:03 does not answer: check its power" in shown
        assert 'data-nozzle="D01-N2"' in html and "tone-alarm" in html

    def test_offline_shows_the_backlog(self) -> None:
        """Offline, the MQTT uplink shows its state and the 300 records waiting on the box."""
        shown, _ = _shown(page.live(_snapshot(offline_status()), None, FORECOURT, ENGLISH))
        assert "OFFLINE, BUFFERING" in shown and "offline since" in shown
        assert "300 records waiting on the box" in shown and "connection refused" in shown

    def test_fields_of_a_newer_agent_are_shown_and_unknown_ones_skipped(self) -> None:
        """Structured problems (kind, subject, since, size), nozzle phases and tank levels are shown when the
        snapshot has them; fields this page does not know change nothing."""
        snapshot = _snapshot(sample_status())
        snapshot |= {
            "health": "degraded",
            "problems": [
                {
                    "kind": "hj212_offline",
                    "subject": "hj212",
                    "since": "2026-11-28T01:25:03.000Z",
                    "size": 376,
                    "unit": "records",
                    "severity": "degraded",
                    "advice": "hj212_offline",
                    "novel": {"x": 1},
                },
            ],
            "nozzles": [{"nozzle": "D01-N1", "phase": "fuelling", "volume_ml": 4000, "pressure": 1}],
            "tanks": [{"tank": "T1", "volume_ml": 18_000_000, "water_um": 12_000, "height_um": 1_500_000}],
            "something_new": [1, 2, 3],
        }
        shown, _ = _shown(page.live(snapshot, None, FORECOURT, ENGLISH))
        assert (
            "ecology platform · since 2026-11-28 09:25:03 the ecology platform (HJ 212) cannot be reached "
            "(376 records waiting): nothing now" in shown
        )
        assert "D01-N1 grade 92 · tank T1 fuelling 4.00 L" in shown
        assert "T1 gasoline · capacity 30,000 L 18,000.00 L 60 % water 12 mm" in shown

    def test_the_agents_tank_levels_and_nozzle_phases_are_shown(self) -> None:
        """From the status the agent writes: T1's level against its capacity and its water, T2 not yet read,
        D01-N1 fuelling with its running volume, D01-N2 idle, D02-N1 (no word yet) as its controller answers."""
        html = page.live(_snapshot(fuelling_status()), None, FORECOURT, ENGLISH)
        shown, _ = _shown(html)
        assert "D01-N1 grade 92 · tank T1 fuelling 4.00 L last sale 12.34 L" in shown
        assert "D01-N2 grade 95 · tank T2 idle no sale since the agent started" in shown
        assert "D02-N1 grade 92 · tank T1 ready" in shown
        assert "T1 gasoline · capacity 30,000 L 18,000.00 L 60 % water 12 mm" in shown
        assert "T2 gasoline · capacity 20,000 L no gauge reading yet" in shown
        assert 'data-nozzle="D01-N1"' in html and "tone-fuelling" in html
        chinese, _ = _shown(page.live(_snapshot(fuelling_status()), None, FORECOURT, Words("zh_CN")))
        assert "加油中 4.00 L" in chinese and "尚无液位读数" in chinese

    def test_no_snapshot_says_why_and_still_shows_the_forecourt(self) -> None:
        """With the agent down, the page says so and keeps the configured tiles."""
        shown, _ = _shown(page.live(None, w.AGENT_NOT_RUNNING, FORECOURT, ENGLISH))
        assert "STOPPED" in shown and "not running" in shown and "D02-N1 grade 92 · tank T1 no word yet" in shown

    def test_what_the_snapshot_says_is_escaped(self) -> None:
        """A device name or error text with markup is shown as text, never run."""
        status = offline_status()
        status = dataclasses.replace(
            status, uplink=dataclasses.replace(status.uplink, last_error="<script>x()</script>")
        )
        html = page.live(_snapshot(status), None, FORECOURT, ENGLISH)
        assert "<script>" not in html and "&lt;script&gt;x()&lt;/script&gt;" in html

    def test_one_record_waiting_is_singular(self) -> None:
        """The uplink's backlog reads "1 record waiting", in English and in Chinese."""
        snapshot = _snapshot(offline_status())
        snapshot["backlog"] = {"records": 1, "oldest_ts": None, "oldest_age_s": None}
        shown, _ = _shown(page.live(snapshot, None, FORECOURT, ENGLISH))
        assert "1 record waiting on the box" in shown and "1 records" not in shown
        chinese, _ = _shown(page.live(snapshot, None, FORECOURT, Words("zh_CN")))
        assert "1 条记录在盒子上待发" in chinese

    def test_an_unplugged_adapter_names_the_dispensers_as_status_does(self) -> None:
        """The page says what `status` says: the dispensers and nozzles behind the line, and to keep selling."""
        shown, _ = _shown(page.live(_snapshot(unplugged_status()), None, FORECOURT, ENGLISH))
        assert "serving dispensers D01, D03 (nozzles D01-N1, D01-N2, D03-N1, D03-N2)" in shown
        assert "you may keep selling from them, but the box records none of their sales" in shown


ENGLISH_WORD = re.compile(r"[A-Za-z]{2,}")
TECHNICAL_WORDS = frozenset(
    {"MQTT", "HJ", "PIN", "USB", "GET", "POST", "mm", "Pa", "GB", "MB", "KB", "sudo", "systemctl", "station",
     "agent", "check", "config", "status", "json", "provision", "selftest", "TLS"}
)  # fmt: skip
"""Words a Chinese page may show in Latin letters: protocols, units, and the commands staff type."""


class _Visible(HTMLParser):
    """The text a reader sees, leaving out what is marked as another language (lang="en": an error as the
    driver said it, inside a closed "technical detail") and preformatted tool output."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self._skipping: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skipping or tag == "pre" or ("lang", "en") in attrs:
            self._skipping.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._skipping and self._skipping[-1] == tag:
            self._skipping.pop()

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.text.append(data)


def english_words(html: str, allowed: set[str]) -> list[str]:
    parser = _Visible()
    parser.feed(html)
    words = ENGLISH_WORD.findall(" ".join(parser.text))
    return sorted({word for word in words if word not in TECHNICAL_WORDS and word not in allowed})


def names_in(snapshot: object) -> set[str]:
    """Every Latin word inside the snapshot's and the forecourt's own values (ids, names, addresses, zones), not
    in its keys nor in its coded values (a state, a kind, a unit), which the page must put in words."""
    return set(ENGLISH_WORD.findall(" ".join([*_names(snapshot), *_names(dataclasses.asdict(FORECOURT))])))


CODED = frozenset({"health", "state", "kind", "advice", "unit", "severity", "phase", "locale", "counter", "product"})


def _names(value: object, key: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for name, item in value.items():
            yield from _names(item, name)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _names(item, key)
    elif isinstance(value, str) and key not in CODED:
        yield value


def _stopped_station_config(folder: Path) -> Path:
    """A Chinese station's config with the page on and no agent behind its status socket."""
    config = folder / "agent.toml"
    config.write_text(
        '[station]\nid = "ST-1"\ntimezone = "Asia/Shanghai"\nallow_empty = true\n'
        '[uplink]\nbroker = "127.0.0.1:1883"\n'
        f'[status]\nsocket = "{folder / "none.sock"}"\n'
        f'[web]\nenabled = true\nlisten = "127.0.0.1:8080"\npin_hash = "{hash_pin("482916")}"\n'
    )
    return config


class TestChineseStation:
    @pytest.mark.parametrize("state", [*COMMON_STATES, "agent stopped"])
    def test_every_staff_facing_word_of_the_console_is_chinese(self, state: str) -> None:
        """Rendered for a Chinese station in every common state, and with the agent stopped, the console shows
        no English word but the station's own names, units and commands: a problem kind, a unit code or an
        untranslated sentence fails here."""
        chinese = Words("zh_CN")
        if state == "agent stopped":
            snapshot, problem = None, w.AGENT_NOT_RUNNING
        else:
            snapshot, problem = _snapshot(COMMON_STATES[state]()), None
        html = page.console(snapshot, problem, FORECOURT, chinese)
        assert english_words(html, names_in(snapshot)) == []

    def test_a_tanks_product_and_a_links_time_read_in_chinese_order(self) -> None:
        """A tank's product is 汽油, not the config's `gasoline`; a link says `<time> 起在线`, as `status` does,
        not the English order `在线 自 <time>`."""
        shown, _ = _shown(page.live(_snapshot(fuelling_status()), None, FORECOURT, Words("zh_CN")))
        assert "T1 汽油 · 容量 30,000 L" in shown and "gasoline" not in shown
        assert re.search(r"\d\d:\d\d 起在线", shown), shown
        assert " 自 " not in shown

    def test_a_nozzle_not_to_sell_from_says_so_on_its_tile(self) -> None:
        """A metering alarm on D01-N2 puts "stop selling" on that nozzle's tile, where the cashier looks, in the
        words `status` says it; the other nozzles' tiles do not say it."""
        html = page.live(_snapshot(fault_status()), None, FORECOURT, Words("zh_CN"))
        tiles = dict(re.findall(r'data-nozzle="([^"]+)">(.*?)</div></div>(?=<div class="tile|</div></section>)', html))
        assert set(tiles) == {"D01-N1", "D01-N2", "D02-N1"}
        assert "暂停使用" in _shown(tiles["D01-N2"])[0]
        assert "暂停使用" not in _shown(tiles["D01-N1"])[0] + _shown(tiles["D02-N1"])[0]

    def test_an_alarm_item_shows_the_earliest_known_start_of_its_subject(self) -> None:
        """Two alarms on one nozzle, the first carried over from an earlier run without its time: the item still
        says when the other began (it was left blank when the first had none)."""
        alarms = (
            ActiveAlarm("metering_bias", "D01-N2", None, {}),
            ActiveAlarm("metering_deviation", "D01-N2", "2026-11-28T02:03:00.000Z", {"deviation_ppm": 10_000}),
        )
        shown, _ = _shown(page.live(_snapshot(sample_status(alarms=alarms)), None, FORECOURT, Words("zh_CN")))
        assert "油枪 D01-N2 · 开始于 2026-11-28 10:03:00" in shown, shown

    def test_the_other_pages_are_chinese_too(self) -> None:
        """The login, the commissioning sheet's and the self-test's pages and their notes are in Chinese."""
        chinese = Words("zh_CN")
        pages = [
            page.login(chinese, chinese(w.WRONG_PIN)),
            page.login(chinese, chinese(w.TRY_LATER, seconds=30)),
            page.preformatted(chinese(w.SHEET), [chinese(w.SHEET_NO_KEY), chinese(w.SHEET_TLS)], "", chinese),
            page.preformatted(
                chinese(w.SELFTEST),
                [chinese(w.SELFTEST_FAILED, code=1), chinese(w.SELFTEST_TIMEOUT, seconds=90)],
                "",
                chinese,
                action=page.selftest_form(chinese),
            ),
        ]
        assert [english_words(html, set()) for html in pages] == [[], [], [], []]

    def test_with_the_agent_stopped_every_page_speaks_the_configs_language(self, tmp_path: Path) -> None:
        """No agent to ask: the console, the sheet, the self-test page and the plain answers are in Chinese for a
        station in Asia/Shanghai, from its config (they were English until the agent's snapshot said otherwise)."""
        config = _stopped_station_config(tmp_path)
        console = Console(load_config(config), selftest=SelftestRunner(config))
        chinese = Words("zh_CN")
        host = {"host": "127.0.0.1:8080"}
        form = {**host, "content-type": "application/x-www-form-urlencoded"}
        signed_in = console.respond(Request("POST", "/login", form, b"pin=482916", "127.0.0.1"))
        assert signed_in.status == 303
        cookie = {**host, "cookie": dict(signed_in.headers)["Set-Cookie"].split(";")[0]}

        def get(path: str, headers: dict[str, str]) -> str:
            return console.respond(Request("GET", path, headers, b"", "127.0.0.1")).body.decode()

        assert chinese(w.AGENT_NOT_RUNNING) in get("/", cookie) and chinese(w.HEALTH["stopped"]) in get("/", cookie)
        assert chinese(w.SHEET_NO_KEY) in get("/sheet", cookie)
        assert chinese(w.RUN_SELFTEST) in get("/selftest", cookie)
        assert get("/nowhere", cookie) == chinese(w.NOT_FOUND)
        assert get("/live", host) == chinese(w.LOG_IN_FIRST)
        assert get("/", {"host": "example.com"}) == chinese(w.WRONG_HOST, listen="127.0.0.1:8080")
        for path in ("/", "/sheet", "/selftest"):
            assert english_words(get(path, cookie), {"ST", "Asia", "Shanghai"}) == [], path

    def test_with_the_agent_stopped_the_console_says_why_its_start_failed(self, tmp_path: Path) -> None:
        """The note a failed start left (agent/start_failure.py) is on the page in Chinese, with the wrong field,
        as `station-agent status` says it; and the page shows no empty time where the agent's clock would be."""
        config = _stopped_station_config(tmp_path)
        moment = datetime(2026, 12, 7, 6, 3, 9, tzinfo=UTC)
        start_failure.record(tmp_path, "config", "heartbeat.interval_s", ZoneInfo("Asia/Shanghai"), moment)
        console = Console(load_config(config), selftest=SelftestRunner(config))
        host = {"host": "127.0.0.1:8080"}
        form = {**host, "content-type": "application/x-www-form-urlencoded"}
        signed_in = console.respond(Request("POST", "/login", form, b"pin=482916", "127.0.0.1"))
        cookie = {**host, "cookie": dict(signed_in.headers)["Set-Cookie"].split(";")[0]}
        shown, _ = _shown(console.respond(Request("GET", "/live", cookie, b"", "127.0.0.1")).body.decode())
        assert "上次在 2026-12-07 14:03 +0800 停止，原因：配置文件有误（heartbeat.interval_s）" in shown, shown
        assert "更新于 Asia/Shanghai" not in shown and "更新于  " not in shown


class TestCommands:
    def test_web_pin_prints_a_line_the_config_takes_and_the_pin_verifies(self, tmp_path: Path) -> None:
        """`station-agent web-pin` reads the PIN twice and prints a pin_hash line that loads under [web]."""
        done = subprocess.run(
            [sys.executable, "-m", "agent.cli", "web-pin"],
            input="482916\n482916\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        line = done.stdout.strip()
        assert line.startswith('pin_hash = "scrypt$') and "482916" not in line
        config = tmp_path / "agent.toml"
        config.write_text(
            '[station]\nid = "ST-1"\nallow_empty = true\n[uplink]\nbroker = "127.0.0.1:1883"\n'
            f'[web]\nenabled = true\nlisten = "127.0.0.1:8080"\n{line}\n'
        )
        stored = load_config(config).config.web.pin_hash
        assert stored is not None and verify_pin("482916", stored)

    def test_the_page_is_off_unless_the_config_turns_it_on(self, tmp_path: Path) -> None:
        """`station-agent web` on a config without [web] exits 2 and says what to set."""
        config = tmp_path / "agent.toml"
        config.write_text('[station]\nid = "ST-1"\nallow_empty = true\n[uplink]\nbroker = "127.0.0.1:1883"\n')
        done = subprocess.run(
            [sys.executable, "-m", "agent.cli", "web", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2 and "set enabled = true under [web]" in done.stderr

    def test_enabled_without_a_pin_is_a_config_error(self, tmp_path: Path) -> None:
        """[web] enabled = true without pin_hash is refused, naming web-pin."""
        config = tmp_path / "agent.toml"
        config.write_text(
            '[station]\nid = "ST-1"\nallow_empty = true\n[uplink]\nbroker = "127.0.0.1:1883"\n[web]\nenabled = true\n'
        )
        with pytest.raises(ConfigError, match="station-agent web-pin"):
            load_config(config)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_the_web_unit_is_hardened() -> None:
    """`systemd-analyze security --offline=true` rates the web page's unit at most 2.0."""
    unit = Path(__file__).resolve().parent.parent / "systemd" / "station-agent-web.service"
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout)
    assert score is not None, done.stdout + done.stderr
    assert float(score.group(1)) <= 2.0
