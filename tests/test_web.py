"""The web page against a running simulated station: HTTP-level rules with urllib and raw sockets, and the page
as a real headless Chromium (Debian's) shows it, driven over the DevTools protocol on a pipe."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from station_rig import STATION, StationRig
from support.waiting import wait_until
from test_web_units import english_words, names_in

from agent.status_socket import ask
from agent.web import server
from agent.web import words as w
from agent.web.pin import hash_pin
from agent.web.words import Words
from simulators.broker import MosquittoBroker, free_loopback_port

pytestmark = pytest.mark.slow

PIN = "731905"
CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'"
)
PROJECT = Path(__file__).resolve().parent.parent
DEADLINE_S = 3.0
"""The page's `request_deadline_s` here (10 s by default): above the trickling clients' 2 s between bytes, so only a
deadline for the whole request, not one per read, cuts them; short, so the tests that wait for it wait little."""
CHINESE = Words("zh_CN")


@dataclass
class Site:
    rig: StationRig
    host: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        source: str = "127.0.0.1",
    ) -> tuple[int, dict[str, str], bytes]:
        """One request; the answer's status, headers (names in lower case) and body. Redirects not followed."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=120, source_address=(source, 0))
        try:
            connection.request(method, path, body=body, headers=headers or {})
            answer = connection.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            connection.close()

    def login(self, pin: str = PIN, source: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
        form = f"pin={pin}".encode()
        kinds = {"Content-Type": "application/x-www-form-urlencoded"}
        return self.request("POST", "/login", body=form, headers=kinds, source=source)

    def session(self) -> str:
        status, headers, _ = self.login()
        assert status == 303, status
        return headers["set-cookie"].split(";")[0]

    def raw(self, data: bytes) -> bytes:
        """Bytes sent as they are; whatever comes back until the server closes."""
        with socket.create_connection((self.host, self.port), timeout=20) as sock:
            sock.sendall(data)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def start_web(config: Path, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "web", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=log.open("wb"),
        stdin=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], 30)
    line = process.stdout.readline().decode() if ready else ""
    assert "serving http://" in line, f"the web page did not start: {line!r}"
    return process


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    workdir = tmp_path_factory.mktemp("web")
    port = free_loopback_port()
    web = {"enabled": True, "listen": f"127.0.0.1:{port}", "pin_hash": hash_pin(PIN), "request_deadline_s": DEADLINE_S}
    station = {"locale": "zh_CN", "timezone": "Asia/Shanghai"}  # the page speaks as the station's staff read
    with MosquittoBroker(workdir / "broker") as broker:
        rig = StationRig(workdir, broker, agent={"station": station, "status": {"socket": "status.sock"}, "web": web})
        rig.simulated.start()
        rig.platform.start()
        process = None
        try:
            rig.start_agent()
            wait_until((workdir / "status.sock").is_socket, 30, "the agent's status socket")
            process = start_web(rig.config_path, workdir / "web.log")
            yield Site(rig, "127.0.0.1", port, process)
        finally:
            if process is not None:
                process.terminate()
                process.wait(10)
            rig.close()
    web_log = (workdir / "web.log").read_text()
    assert "internal_error" not in web_log, "the page's log holds internal errors:\n" + web_log[-3000:]


@dataclass(frozen=True)
class LateBody:
    """What the server answered to a POST whose body stopped short of its Content-Length, and after how long."""

    answer: bytes
    waited_s: float


@pytest.fixture(scope="module")
def late_body(site: Site) -> LateBody:
    """One POST that promises 100 bytes and sends 10, its answer kept: the answer comes only at the request's
    deadline, so the tests of its status, its words and its timing wait for it once between them."""
    started = time.monotonic()
    answer = site.raw(b"POST /login HTTP/1.0\r\nContent-Length: 100\r\n\r\npin=123456")
    return LateBody(answer, time.monotonic() - started)


def _snapshot(site: Site) -> dict[str, Any]:
    document = ask(site.rig.workdir / "status.sock")
    return json.loads(document) if document else {}


class TestAccess:
    def test_without_a_session_pages_lead_to_the_login_and_the_live_part_is_401(self, site: Site) -> None:
        """GET / and the sheet redirect to /login; the script's /live and a POST get 401."""
        for path in ("/", "/sheet", "/selftest", "/no-such-page"):
            status, headers, _ = site.request("GET", path)
            assert (status, headers.get("location")) == (303, "/login"), path
        assert site.request("GET", "/live")[0] == 401
        assert site.request("POST", "/selftest", body=b"", headers={"Content-Length": "0"})[0] == 401
        assert site.request("GET", "/", headers={"Cookie": "station_session=made-up"})[0] == 303

    def test_the_right_pin_gives_a_strict_http_only_session_cookie(self, site: Site) -> None:
        """A login sets an HttpOnly, SameSite=Strict cookie, with which the console is served."""
        status, headers, _ = site.login()
        assert status == 303 and headers["location"] == "/"
        cookie = headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        status, _, body = site.request("GET", "/", headers={"Cookie": cookie.split(";")[0]})
        assert status == 200 and b"D01-N1" in body

    def test_wrong_pins_are_refused_then_throttled_even_for_the_right_one(self, site: Site) -> None:
        """Three wrong PINs from one address get 401; the next try, right PIN or not, gets 429 with
        Retry-After, while another address still logs in."""
        source = "127.0.0.2"
        for wrong in ("000000", "111111", "222222"):
            assert site.login(wrong, source)[0] == 401
        status, headers, body = site.login(PIN, source)
        waited = CHINESE(w.TRY_LATER, seconds=headers["retry-after"])
        assert status == 429 and int(headers["retry-after"]) > 0 and waited in body.decode()
        assert "set-cookie" not in headers
        assert site.login(PIN, "127.0.0.3")[0] == 303

    def test_a_form_posted_from_another_site_is_refused(self, site: Site) -> None:
        """A POST whose Origin is not this page's is refused (403), the login form's too."""
        cookie = site.session()
        evil = {"Origin": "http://evil.example", "Cookie": cookie, "Content-Length": "0"}
        assert site.request("POST", "/selftest", body=b"", headers=evil)[0] == 403
        assert site.request("POST", "/login", body=b"pin=" + PIN.encode(), headers=evil)[0] == 403
        fetched = {"Sec-Fetch-Site": "cross-site", "Cookie": cookie, "Content-Length": "0"}
        assert site.request("POST", "/selftest", body=b"", headers=fetched)[0] == 403

    def test_logging_out_ends_the_session(self, site: Site) -> None:
        """After POST /logout the old cookie no longer opens the console."""
        cookie = site.session()
        assert site.request("POST", "/logout", body=b"", headers={"Cookie": cookie})[0] == 303
        assert site.request("GET", "/", headers={"Cookie": cookie})[0] == 303


class TestHardening:
    def test_every_answer_carries_the_csp_and_the_security_headers(self, site: Site) -> None:
        """200, 303, 401, 404, 413, 431 and the standard library's own 400 and 501 all carry the headers."""
        cookie = {"Cookie": site.session()}
        answers = [
            site.request("GET", "/", headers=cookie),
            site.request("GET", "/style.css"),
            site.request("GET", "/"),
            site.request("GET", "/live"),
            site.request("GET", "/nothing", headers=cookie),
            site.request("POST", "/login", body=b"x" * 5000),
            site.request("GET", "/", headers={"X-Big": "y" * 9000}),
            site.request("BREW", "/"),
        ]
        assert [status for status, _, _ in answers] == [200, 200, 303, 401, 404, 413, 431, 501]
        for _status, headers, _ in answers:
            assert headers["content-security-policy"].startswith(CSP)
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["referrer-policy"] == "no-referrer"
            assert headers["server"] == "station-agent-web"
        bad = site.raw(b"NONSENSE\r\n\r\n")
        assert bad.startswith(b"HTTP/1.0 400") and b"Content-Security-Policy: default-src 'none'" in bad

    def test_oversized_requests_are_refused(self, site: Site) -> None:
        """A head over 8 KiB or with more than 32 headers gets 431; a body over 1 KiB gets 413, unread."""
        many = {f"X-H{i}": "1" for i in range(40)}
        assert site.request("GET", "/login", headers=many)[0] == 431
        assert site.request("GET", "/login", headers={"Cookie": "a" * 20_000})[0] == 431
        assert site.raw(b"GET /" + b"a" * 10_000 + b" HTTP/1.0\r\n\r\n").split(b" ")[1] in (b"400", b"431")
        status, _, _ = site.request("POST", "/login", body=b"pin=" + b"1" * 100_000)
        assert status == 413

    def test_refusals_speak_the_stations_language(self, site: Site, late_body: LateBody) -> None:
        """The server's own refusals (431, 413, 411, 408, and the standard library's 400 and 501) are in the
        station's Chinese, not the standard library's English."""
        status, _, body = site.request("GET", "/", headers={"X-Big": "y" * 9000})
        assert (status, body.decode()) == (431, CHINESE(w.HEAD_TOO_LARGE))
        status, _, body = site.request("POST", "/login", body=b"x" * 5000)
        assert (status, body.decode()) == (413, CHINESE(w.BODY_TOO_LARGE))
        no_length = site.raw(b"POST /login HTTP/1.0\r\nHost: " + site.origin[7:].encode() + b"\r\n\r\n")
        assert no_length.startswith(b"HTTP/1.0 411") and no_length.endswith(CHINESE(w.LENGTH_REQUIRED).encode())
        short = late_body.answer
        assert short.startswith(b"HTTP/1.0 408") and short.endswith(CHINESE(w.BODY_LATE).encode())
        for request, code in ((b"NONSENSE\r\n\r\n", b"400"), (b"BREW / HTTP/1.0\r\n\r\n", b"501")):
            answer = site.raw(request)
            assert answer.startswith(b"HTTP/1.0 " + code) and answer.endswith(CHINESE(w.NOT_UNDERSTOOD).encode())
        assert english_words(CHINESE(w.NOT_UNDERSTOOD), set()) == []

    def test_unknown_paths_are_404_and_no_file_is_served_by_traversal(self, site: Site) -> None:
        """Paths that climb out (plain, encoded, through an asset) are 404, and no file's content comes back."""
        cookie = {"Cookie": site.session()}
        for path in (
            "/../agent.toml",
            "/%2e%2e/%2e%2e/etc/passwd",
            "/style.css/../../agent.toml",
            "//etc/passwd",
            "/static/../../keys/device.key",
            "/agent.toml",
        ):
            status, _, body = site.request("GET", path, headers=cookie)
            assert status == 404, path
            assert b"[station]" not in body and b"root:" not in body and b"PRIVATE KEY" not in body

    def test_many_idle_connections_do_not_make_threads(self, site: Site) -> None:
        """Forty connections that send nothing leave the process with a bounded thread count, and once they
        are gone the page answers again."""

        def threads() -> int:
            status = Path(f"/proc/{site.process.pid}/status").read_text()
            return int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]

        before = threads()
        idle = [socket.create_connection((site.host, site.port), timeout=5) for _ in range(40)]
        try:
            time.sleep(1.0)  # the behaviour under test: no thread appears for them within a second
            assert threads() <= max(before, 1) + server.WORKERS
        finally:
            for sock in idle:
                sock.close()
        wait_until(lambda: _answers(site), 30, "the page to answer again")

    def test_trickling_clients_do_not_lock_the_page(self, site: Site) -> None:
        """Six connections sending a header byte every 2 s are cut at the request deadline: a normal GET /login
        sent among them is answered within the deadline and a few seconds, not after hours."""
        trickling = [socket.create_connection((site.host, site.port), timeout=5) for _ in range(6)]
        try:
            for sock in trickling:
                sock.sendall(b"G")
            time.sleep(0.5)  # the attack under test: the server holds them half a second before the probe comes
            started = time.monotonic()
            with socket.create_connection((site.host, site.port), timeout=60) as probe:
                probe.sendall(b"GET /login HTTP/1.0\r\n\r\n")
                for payload in b"ET / HTTP/1.0\r\nX-A: aaa":  # bounded: 24 bytes, 48 s at most
                    for sock in trickling:
                        with contextlib.suppress(OSError):
                            sock.sendall(bytes([payload]))
                    if select.select([probe], [], [], 2.0)[0]:
                        break
                answer = probe.recv(16)
            waited_s = time.monotonic() - started
        finally:
            for sock in trickling:
                sock.close()
        assert answer.startswith(b"HTTP/1.0 200"), answer
        assert waited_s < DEADLINE_S + 4, waited_s

    def test_a_trickling_client_that_waited_for_a_worker_is_cut_at_the_deadline_from_its_connection(
        self, site: Site
    ) -> None:
        """Twice as many trickling clients as workers, connected together: those that waited for a worker are cut
        at the request deadline counted from their connection, as the ones served at once, not a deadline later."""
        wait_until(lambda: _answers(site), 30, "the page to answer")
        started = time.monotonic()
        trickling = [socket.create_connection((site.host, site.port), timeout=5) for _ in range(2 * server.WORKERS)]
        cut_after_s: dict[int, float] = {}
        try:
            for tick in range(int(3 * DEADLINE_S / 0.25)):  # bounded: three deadlines at most
                if len(cut_after_s) == len(trickling):
                    break
                for index, sock in enumerate(trickling):
                    if index in cut_after_s:
                        continue
                    try:
                        if select.select([sock], [], [], 0)[0]:
                            sock.recv(4096)  # the stdlib's timeout sends nothing: this is the close
                            cut_after_s[index] = time.monotonic() - started
                        elif tick % 4 == 0:
                            sock.sendall(b"GET /" if tick == 0 else b"a")
                    except OSError:
                        cut_after_s[index] = time.monotonic() - started
                time.sleep(0.25)
        finally:
            for sock in trickling:
                sock.close()
        assert len(cut_after_s) == len(trickling), cut_after_s
        assert max(cut_after_s.values()) < DEADLINE_S + 1.5, cut_after_s

    def test_a_refused_client_that_keeps_trickling_is_cut_within_the_deadline(self, site: Site) -> None:
        """A POST refused at once (413: a body over 1 KiB promised) whose client then sends a byte every 0.1 s: its
        answer comes at once, and the connection is closed within the request deadline rather than drained byte
        by byte for as long as the client keeps sending."""
        wait_until(lambda: _answers(site), 30, "the page to answer")
        started = time.monotonic()
        with socket.create_connection((site.host, site.port), timeout=5) as sock:
            sock.sendall(b"POST /login HTTP/1.0\r\nContent-Length: 100000\r\n\r\n")
            answered: bytes = b""
            closed_after_s = None
            for _ in range(int(3 * DEADLINE_S / 0.1)):  # bounded: three deadlines at most
                try:
                    if select.select([sock], [], [], 0)[0]:
                        chunk = sock.recv(4096)
                        if not chunk:
                            closed_after_s = time.monotonic() - started
                            break
                        answered += chunk
                    sock.sendall(b"x")
                except OSError:
                    closed_after_s = time.monotonic() - started
                    break
                time.sleep(0.1)
        assert answered.startswith(b"HTTP/1.0 413"), answered[:40]
        assert closed_after_s is not None and closed_after_s < DEADLINE_S + 1.5, closed_after_s

    def test_a_body_shorter_than_its_length_is_cut_at_the_deadline(self, late_body: LateBody) -> None:
        """A POST that promises 100 bytes and sends 10 gets 408 once the request's deadline has passed."""
        assert late_body.answer.startswith(b"HTTP/1.0 408"), late_body.answer[:40]
        assert late_body.waited_s < DEADLINE_S + 4

    def test_a_host_other_than_the_listen_address_is_refused(self, site: Site) -> None:
        """A request naming another host (DNS rebinding: evil.example resolved to the box) gets 421, the login
        form's POST too; the listen address with its port is served."""
        form = {"Host": "evil.example", "Content-Type": "application/x-www-form-urlencoded"}
        assert site.request("POST", "/login", body=f"pin={PIN}".encode(), headers=form)[0] == 421
        assert site.request("GET", "/login", headers={"Host": f"evil.example:{site.port}"})[0] == 421
        assert site.request("GET", "/login", headers={"Host": f"localhost:{site.port}"})[0] == 421
        assert site.request("GET", "/login", headers={"Host": f"{site.host}:{site.port + 1}"})[0] == 421
        assert site.request("GET", "/login", headers={"Host": f"{site.host}:{site.port}"})[0] == 200

    def test_a_flood_of_bad_forms_and_vanishing_clients_leaves_the_log_quiet(self, site: Site) -> None:
        """200 logins with five form fields get 400 unchecked, and 50 clients that leave before the answer are
        normal: together they add fewer than five lines to the page's log."""
        log = site.rig.workdir / "web.log"
        before = log.read_text().count("\n")
        crowded = b"a=1&b=2&c=3&d=4&pin=000000"
        for _ in range(200):
            assert site.request("POST", "/login", body=crowded)[0] == 400
        for _ in range(50):
            with socket.create_connection((site.host, site.port), timeout=5) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.sendall(b"GET /login HTTP/1.0\r\n\r\n")
        wait_until(lambda: _answers(site), 30, "the page to answer")
        added = log.read_text().count("\n") - before
        assert added < 5, log.read_text()[-3000:]


def _answers(site: Site) -> bool:
    """True once the login page is served; a connection closed because all slots are taken is a no."""
    try:
        return site.request("GET", "/login")[0] == 200
    except (OSError, http.client.HTTPException):
        return False


class TestInstallerPages:
    def test_the_commissioning_sheet_is_printed_from_the_config(self, site: Site) -> None:
        """The sheet shows the station, the key's kid and fingerprint, and the configured lines."""
        status, _, body = site.request("GET", "/sheet", headers={"Cookie": site.session()})
        text = body.decode()
        assert status == 200 and f"COMMISSIONING SHEET  station {STATION}" in text
        assert f"kid          {site.rig.key.kid}" in text and "line      rs485-1: Modbus" in text

    def test_the_self_test_runs_in_a_child_and_its_output_is_shown(self, site: Site) -> None:
        """POST /selftest runs `station-agent selftest` and shows its lines and verdict."""
        cookie = site.session()
        status, _, body = site.request("POST", "/selftest", body=b"", headers={"Cookie": cookie})
        text = body.decode()
        assert status == 200
        assert CHINESE(w.SELFTEST_PASSED) in text or CHINESE(w.SELFTEST_FAILED, code=1) in text
        assert "config" in text and "device key" in text


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class DevTools:
    """Chromium over --remote-debugging-pipe: JSON messages separated by NUL on its fds 3 (in) and 4 (out)."""

    def __init__(self, binary: str, profile: Path) -> None:
        self.log = profile.with_name("chromium.log")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "--window-size=1280,1600",
            "about:blank",
        ]
        self.process = subprocess.Popen(
            ["bash", "-c", f'exec "$@" 3<&{to_browser_r} 4>&{from_browser_w}', "bash", binary, *flags],
            pass_fds=(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._buffer = b""
        self.events: list[dict[str, Any]] = []
        self.session_id: str | None = None

    def call(self, method: str, timeout_s: float = 30.0, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self.session_id is not None:
            message["sessionId"] = self.session_id
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except BrokenPipeError as exc:
            raise AssertionError(f"Chromium has gone; its log {self.log} ends:\n{self._log_tail()}") from exc
        deadline = time.monotonic() + timeout_s
        while True:
            for reply in self._messages(deadline):
                if reply.get("id") == self._next_id:
                    if "error" in reply:
                        raise AssertionError(f"{method}: {reply['error']}")
                    result: dict[str, Any] = reply["result"]
                    return result
                self.events.append(reply)

    def _messages(self, deadline: float) -> list[dict[str, Any]]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_browser], [], [], max(0.0, left))
            if not ready:
                raise AssertionError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise AssertionError("Chromium closed its pipe")
            self._buffer += chunk
        *whole, self._buffer = self._buffer.split(b"\0")
        return [json.loads(part) for part in whole]

    def _log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float, what: str) -> None:
        try:
            wait_until(lambda: self.evaluate(expression), timeout_s, what, every_s=0.2)
        except AssertionError as timed_out:
            seen = self.evaluate("location.href + ' ' + document.body.innerText.slice(0, 300)")
            raise AssertionError(f"{timed_out}; the page: {seen}") from None

    def close(self) -> None:
        os.close(self._to_browser)
        os.close(self._from_browser)
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@pytest.mark.skipif(_chromium() is None, reason="chromium not found: `make install` installs Debian's chromium")
def test_the_console_in_a_real_browser(site: Site, tmp_path: Path) -> None:
    """Headless Chromium logs in through the form, and the console of a Chinese station shows, in Chinese, every
    nozzle, the phase the agent saw it in, last sales whose volumes the platform received for those nozzles, the
    MQTT uplink online and no tank data invented, with no English word but the station's own names; the session
    cookie is invisible to scripts, nothing breaks the CSP, and the live part refreshes itself."""
    rig = site.rig
    wait_until(lambda: rig.platform_report().by_type.get("transaction", 0) >= 4, 90, "four sales at the platform")
    wait_until(lambda: _snapshot(site).get("uplink", {}).get("state") == "online", 30, "the uplink online")
    binary = _chromium()
    assert binary is not None
    browser = DevTools(binary, tmp_path / "profile")
    try:
        target = browser.call("Target.createTarget", url="about:blank")["targetId"]
        browser.session_id = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
            browser.call(domain)
        browser.call("Emulation.setDeviceMetricsOverride", width=1280, height=1600, deviceScaleFactor=1, mobile=False)
        browser.call("Page.navigate", url=f"{site.origin}/")
        browser.wait_for("!!document.querySelector('#pin')", 30, "the login form")
        browser.evaluate(f"document.querySelector('#pin').value = '{PIN}'; document.querySelector('form').submit()")
        browser.wait_for("!!document.querySelector('#live .tile.nozzle')", 30, "the console")
        assert browser.evaluate("document.cookie") == ""
        browser.evaluate("document.querySelector('#live header').setAttribute('data-old', '1')")
        browser.wait_for("!document.querySelector('#live [data-old]')", 15, "the live part to refresh")
        browser.wait_for("document.querySelectorAll('.sale .volume').length >= 2", 30, "two nozzles with a sale")
        dom = browser.evaluate("document.documentElement.outerHTML")
        tiles = browser.evaluate(
            "[...document.querySelectorAll('.tile.nozzle')].map(t => [t.dataset.nozzle, "
            "(t.querySelector('.sale .volume') || {}).textContent || null, t.querySelector('.state').textContent])"
        )
        mqtt = browser.evaluate("document.querySelector('[data-link=mqtt] .state').textContent")
        shot = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
        errors = [
            event["params"]["entry"]
            for event in browser.events
            if event.get("method") == "Log.entryAdded" and event["params"]["entry"]["level"] == "error"
        ]
    finally:
        browser.close()
    (tmp_path / "console.png").write_bytes(shot)
    (tmp_path / "console.html").write_text(dom)
    (PROJECT / "build").mkdir(exist_ok=True)
    (PROJECT / "build" / "web-console.png").write_bytes(shot)
    assert shot.startswith(b"\x89PNG\r\n\x1a\n") and len(shot) > 10_000

    assert [nozzle for nozzle, _, _ in tiles] == ["D01-N1", "D01-N2", "D02-N1", "D02-N2"]
    rig.wait_platform_caught_up()
    sold: dict[str, set[str]] = {}
    for record in rig.platform_records():
        if record["type"] == "transaction":
            body = record["body"]
            sold.setdefault(body["nozzle"], set()).add(f"{body['volume_ml'] / 1000:,.2f} L")
    shown = [(nozzle, volume) for nozzle, volume, _ in tiles if volume is not None]
    assert len(shown) >= 2
    for nozzle, volume in shown:
        assert volume in sold.get(nozzle, set()), f"{nozzle} shows {volume}, the platform has {sold.get(nozzle)}"
    phases = {CHINESE(w.NOZZLE_STATES[phase]) for phase in ("idle", "lifted", "fuelling", "finished")}
    states = {nozzle: re.sub(r" [\d,.]+ L$", "", state) for nozzle, _, state in tiles}
    assert all(state in phases | {CHINESE(w.NOZZLE_STATES["answering"])} for state in states.values()), states
    assert all(states[nozzle] in phases for nozzle, _ in shown), states  # a nozzle that sold was seen in a phase
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d 起在线", mqtt), mqtt
    assert CHINESE(w.ECOLOGY_HJ212) in dom and 'lang="zh-CN"' in dom
    verdict = re.search(r'class="verdict">([^<]+)<', dom)
    assert verdict is not None and verdict.group(1) in {CHINESE(w.HEALTH[key]) for key in ("ok", "fault", "degraded")}
    config_names = set(re.findall(r"[A-Za-z]{2,}", rig.config_path.read_text()))
    assert english_words(dom, names_in(_snapshot(site)) | config_names) == []
    assert errors == [], errors
