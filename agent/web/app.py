"""What the web page answers, request by request: routing, login and sessions, security headers.

The HTTP shell (`agent.web.server`) hands each parsed request here as a `Request` and writes the `Response`
back; nothing here touches a socket except `ask` on the agent's status socket, the self-test's child process
and the config file the sheet is read from. Every response, an error too, carries the same security headers.
"""

from __future__ import annotations

import ipaddress
import json
import pwd
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent import start_failure
from agent.config import ConfigError, LoadedConfig
from agent.config_summary import summary
from agent.config_validation import load_config
from agent.ledger.keys import KeyFileError, load_key_file
from agent.locale import language_for_zone
from agent.status_socket import ask
from agent.status_text import stopped_because
from agent.tools.provision import CommissioningSheet, Layout
from agent.web import page
from agent.web import words as w
from agent.web.assets import ASSETS
from agent.web.guard import LoginThrottle, SessionBook
from agent.web.pin import verify_pin
from agent.web.selftest_run import SelftestRunner
from agent.web.words import Words

SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cache-Control", "no-store"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)
SESSION_COOKIE = "station_session"
HTML = "text/html; charset=utf-8"
STATUS_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]
    """Header names in lower case."""
    body: bytes
    client: str


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = HTML
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def all_headers(self) -> list[tuple[str, str]]:
        return [
            ("Content-Type", self.content_type),
            ("Content-Length", str(len(self.body))),
            *SECURITY_HEADERS,
            *self.headers,
        ]


def plain(status: int, text: str) -> Response:
    return Response(status, text.encode(), "text/plain; charset=utf-8")


class Console:
    """The page for one station: its config, its PIN's hash, its sessions and its self-test runner."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        selftest: SelftestRunner,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        config = loaded.config
        assert config.web.pin_hash is not None, "the config's validation requires a PIN hash when the page is on"
        self._config_path = loaded.source
        self._pin_hash = config.web.pin_hash
        self._socket = config.status.socket
        self._forecourt = page.Forecourt.of(config)
        self._clock = clock
        self._sessions = SessionBook(config.web.session_minutes * 60.0)
        self._throttle = LoginThrottle()
        self._selftest = selftest
        self._hosts = _HostCheck(config.web.listen)
        self._lock = threading.Lock()
        """Held for the books (sessions, throttle) and the PIN check: one scrypt at a time bounds memory."""
        self._pin_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="web-pin")
        """scrypt's 16 MiB buffer is malloc'd in the calling thread's arena and kept there; checking every PIN on
        this one thread keeps one such buffer, not one per worker."""
        self.words = Words(config.station.locale or language_for_zone(config.station.timezone))
        """The station's language as its config says it (`[station] locale`, else by its time zone), as the agent
        chooses it: the page speaks it with the agent stopped too, and on the installer's pages."""

    def respond(self, request: Request) -> Response:
        host = request.headers.get("host")
        if host is not None and not self._hosts(host):
            return plain(421, self.words(w.WRONG_HOST, listen=self._hosts.listen))
        path = urllib.parse.urlsplit(request.path).path
        if request.method == "GET" and path in ASSETS:
            content_type, body = ASSETS[path]
            return Response(200, body, content_type)
        if path == "/login":
            return self._login(request)
        token = _cookie(request.headers.get("cookie", ""), SESSION_COOKIE)
        with self._lock:
            signed_in = self._sessions.valid(token, self._clock())
        routes: dict[tuple[str, str], Callable[[Request], Response]] = {
            ("GET", "/"): self._console,
            ("GET", "/live"): self._live,
            ("GET", "/sheet"): self._sheet,
            ("GET", "/selftest"): self._selftest_page,
            ("POST", "/selftest"): self._selftest_run,
            ("POST", "/logout"): self._logout,
        }
        handler = routes.get((request.method, path))
        if handler is None:
            return plain(404, self.words(w.NOT_FOUND)) if signed_in else self._to_login(request)
        if not signed_in:
            return self._to_login(request)
        if request.method == "POST" and not _same_origin(request):
            return plain(403, self.words(w.CROSS_ORIGIN))
        return handler(request)

    # -- login -----------------------------------------------------------------------------------------------

    def _login(self, request: Request) -> Response:
        words = self._words_for(self._snapshot()[0])
        if request.method == "GET":
            return Response(200, page.login(words).encode())
        if request.method != "POST":
            return plain(405, words(w.GET_OR_POST))
        if not _same_origin(request):
            return plain(403, words(w.CROSS_ORIGIN))
        try:
            form = urllib.parse.parse_qs(request.body.decode("utf-8", "replace"), max_num_fields=4)
        except ValueError:
            return plain(400, words(w.LOGIN_FORM))
        pin = form.get("pin", [""])[0]
        with self._lock:
            now = self._clock()
            wait_s = self._throttle.wait_s(request.client, now)
            if wait_s > 0:
                seconds = str(int(wait_s) + 1)
                refused = page.login(words, words(w.TRY_LATER, seconds=seconds)).encode()
                return Response(429, refused, headers=(("Retry-After", seconds),))
            if not self._pin_thread.submit(verify_pin, pin, self._pin_hash).result():
                self._throttle.failed(request.client, now)
                return Response(401, page.login(words, words(w.WRONG_PIN)).encode())
            self._throttle.succeeded(request.client)
            token = self._sessions.open(now)
        cookie = (
            f"{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={int(self._sessions.lifetime_s)}"
        )
        return Response(303, b"", headers=(("Location", "/"), ("Set-Cookie", cookie)))

    def _logout(self, request: Request) -> Response:
        with self._lock:
            self._sessions.close(_cookie(request.headers.get("cookie", ""), SESSION_COOKIE))
        expired = f"{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
        return Response(303, b"", headers=(("Location", "/login"), ("Set-Cookie", expired)))

    # -- the console -----------------------------------------------------------------------------------------

    def _console(self, _request: Request) -> Response:
        snapshot, problem = self._snapshot()
        words = self._words_for(snapshot)
        why = self._why_stopped(problem, words)
        return Response(200, page.console(snapshot, problem, self._forecourt, words, why).encode())

    def _live(self, _request: Request) -> Response:
        snapshot, problem = self._snapshot()
        words = self._words_for(snapshot)
        why = self._why_stopped(problem, words)
        return Response(200, page.live(snapshot, problem, self._forecourt, words, why).encode())

    def _why_stopped(self, problem: str | None, words: Words) -> str:
        """With the agent not running, when and why its last start failed (the note beside its status socket, as
        `station-agent status` reads it), in the page's language; else nothing."""
        failure = start_failure.read(self._socket.parent) if problem == w.AGENT_NOT_RUNNING else None
        return "" if failure is None else stopped_because(words.locale, failure)

    def _to_login(self, request: Request) -> Response:
        """A browser asking for a page is sent to the login form; the page's script asking for `/live` gets 401."""
        if request.method == "GET" and urllib.parse.urlsplit(request.path).path != "/live":
            return Response(303, b"", headers=(("Location", "/login"),))
        return plain(401, self.words(w.LOG_IN_FIRST))

    def _words_for(self, snapshot: Mapping[str, Any] | None) -> Words:
        """The station's language as the agent says it (`locale` in the snapshot), else the config's; a language
        without a catalogue (a newer agent's, or a damaged snapshot's) is the config's too, never a broken page."""
        return w.spoken(snapshot.get("locale") if snapshot is not None else None, self.words)

    def _snapshot(self) -> tuple[dict[str, Any] | None, str | None]:
        """The agent's latest snapshot, or None and the message that says why there is none."""
        try:
            document = ask(self._socket, STATUS_TIMEOUT_S)
        except OSError:
            return None, w.AGENT_NOT_RUNNING
        if not document:
            return None, w.AGENT_STARTING
        try:
            snapshot = json.loads(document)
        except ValueError:
            return None, w.AGENT_UNREADABLE
        return (snapshot, None) if isinstance(snapshot, dict) else (None, w.AGENT_UNREADABLE)

    # -- installer's pages -----------------------------------------------------------------------------------

    def _sheet(self, _request: Request) -> Response:
        """The commissioning sheet as `provision` prints it, from the config as it is on disk now."""
        title = self.words(w.SHEET)
        try:
            loaded = load_config(self._config_path)
        except ConfigError as exc:
            return Response(200, page.preformatted(title, (), str(exc), self.words).encode())
        config = loaded.config
        if config.uplink.tls is not None:
            return Response(
                200, page.preformatted(title, [self.words(w.SHEET_TLS)], summary(loaded), self.words).encode()
            )
        try:
            key = load_key_file(config.keys.device_key)
        except (KeyFileError, OSError):
            text = page.preformatted(title, [self.words(w.SHEET_NO_KEY)], summary(loaded), self.words)
            return Response(200, text.encode())
        sheet = CommissioningSheet(
            loaded=loaded,
            key=key,
            key_created=False,
            tls=None,
            layout=Layout(loaded.source, config.keys.device_key.parent.parent, config.status.socket.parent),
            provisioned_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            owner=_owner(config.keys.device_key),
        )
        return Response(200, page.preformatted(title, (), sheet.text(), self.words).encode())

    def _selftest_page(self, _request: Request) -> Response:
        title = self.words(w.SELFTEST)
        return Response(
            200, page.preformatted(title, (), "", self.words, action=page.selftest_form(self.words)).encode()
        )

    def _selftest_run(self, _request: Request) -> Response:
        outcome = self._selftest.run()
        if outcome is None:
            note = self.words(w.SELFTEST_BUSY)
        elif outcome.exit_code is None:
            note = self.words(w.SELFTEST_TIMEOUT, seconds=int(self._selftest.timeout_s))
        elif outcome.exit_code == 0:
            note = self.words(w.SELFTEST_PASSED)
        else:
            note = self.words(w.SELFTEST_FAILED, code=outcome.exit_code)
        output = "" if outcome is None else outcome.output
        html = page.preformatted(
            self.words(w.SELFTEST), [note], output, self.words, action=page.selftest_form(self.words)
        )
        return Response(200 if outcome is not None else 429, html.encode())


@dataclass(frozen=True, slots=True)
class _HostCheck:
    """The Host headers the page answers: its listen address with its port (a browser's `host:port`). Another
    name is refused (421), so that a site whose name is rebound to the box's address (DNS rebinding) cannot
    reach the page from a staff browser. On an unspecified address (0.0.0.0, ::) any address literal with the
    port passes, since the page cannot know which of the box's addresses was dialled; a name still does not."""

    listen: str

    def __call__(self, host: str) -> bool:
        wanted_host, _, wanted_port = self.listen.rpartition(":")
        host = host.strip().lower()
        if host.endswith("]") or ":" not in host:
            host += ":80"  # a browser leaves out the default port
        given_host, _, given_port = host.rpartition(":")
        if given_port != wanted_port or given_host.endswith("]") != wanted_host.endswith("]"):
            return False
        if wanted_host.strip("[]") not in ("0.0.0.0", "::"):
            return given_host == wanted_host.lower()
        try:
            ipaddress.ip_address(given_host.strip("[]"))
        except ValueError:
            return False
        return True


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


def _same_origin(request: Request) -> bool:
    """A form posted from another site is refused: browsers say where it comes from in Sec-Fetch-Site, older
    ones in Origin. Origin is `null` from our own pages (Referrer-Policy no-referrer makes it so), which the
    SameSite=Strict cookie covers; a client that sends neither (a script at the box) is let through."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    return origin in (None, "null") or origin == f"http://{request.headers.get('host', '')}"


def _owner(path: Path) -> str:
    try:
        return pwd.getpwuid(path.stat().st_uid).pw_name
    except (OSError, KeyError):
        return "?"
