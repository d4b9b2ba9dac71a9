"""The HTTP shell around `agent.web.app`: the standard library's server with a bounded pool and hard limits.

Each connection is one request (HTTP/1.0, no keep-alive), handled by one of `WORKERS` threads; at most
`QUEUED` more wait, and a connection beyond that is closed at once, so a flood costs a bounded number of
threads and buffers, never one thread per connection. A request's head is cut at `MAX_HEAD_BYTES` and
`MAX_HEADERS` (431), its body at `MAX_BODY_BYTES` (413). A client has `[web] request_deadline_s` from the
accept for its whole head and body, not per read: each read waits only for the time left, so a client trickling a
byte every few seconds holds a worker for at most that long (a body shorter than its Content-Length is cut
there, 408; a refused request's drain of what it still sends ends there too), and the answer is written
within `IO_TIMEOUT_S`. A client that goes away before it reads its answer is normal traffic, not an error: no
traceback, at most one debug line a minute.
Errors the standard library answers itself (400, 414, 501) go through the same headers as every response.
docs/design.md ("The web page") says why this server and not another, with the figures.
"""

from __future__ import annotations

import http.server
import io
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agent.clock import SystemClock
from agent.config import LoadedConfig
from agent.containment import Boundary
from agent.contract.records import RecordIntent
from agent.logs import LogTally, get_logger
from agent.logs import configure as configure_logs
from agent.web import words as w
from agent.web.app import Console, Request, Response, plain
from agent.web.selftest_run import SelftestRunner

log = get_logger("agent.web")

WORKERS = 4
QUEUED = 16
MAX_HEAD_BYTES = 8 * 1024
MAX_HEADERS = 32
MAX_BODY_BYTES = 1024
IO_TIMEOUT_S = 10.0
GONE_NOTE_EVERY_S = 60.0
DRAIN_BYTES = 64 * 1024
DRAIN_QUIET_S = 0.2
"""A refusal's drain ends after this long without a byte from the client."""


class _DeadlineReader(io.RawIOBase):
    """The socket's reads, each allowed only the time left before the request's deadline."""

    def __init__(self, sock: socket.socket, deadline_s: float) -> None:
        self._sock = sock
        self._deadline_s = deadline_s

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left_s = self._deadline_s - time.monotonic()
        if left_s <= 0:
            raise TimeoutError("the request's deadline passed")
        self._sock.settimeout(left_s)
        return self._sock.recv_into(buffer)


class _CappedHead:
    """The connection's reader, cut off after `MAX_HEAD_BYTES` of request line and headers."""

    def __init__(self, raw: io.BufferedIOBase) -> None:
        self._raw = raw
        self.remaining = MAX_HEAD_BYTES
        self.exceeded = False

    def readline(self, size: int = -1) -> bytes:
        if self.remaining <= 0:
            self.exceeded = True
            return b""
        line = self._raw.readline(self.remaining if size < 0 else min(size, self.remaining))
        self.remaining -= len(line)
        if self.remaining <= 0 and not line.endswith(b"\n"):
            self.exceeded = True
        return line

    def read(self, size: int) -> bytes:
        return self._raw.read(size)

    def close(self) -> None:
        self._raw.close()


class _Handler(http.server.BaseHTTPRequestHandler):
    console: Console
    server_version = "station-agent-web"
    default_request_version = "HTTP/1.0"
    """Not 0.9: the standard library writes no headers, so no CSP, for a request it takes as HTTP/0.9."""
    timeout = IO_TIMEOUT_S

    def __init__(self, request: Any, client_address: Any, server: Any, deadline_s: float) -> None:
        """`deadline_s` (`time.monotonic()`) is the request's, counted from its accept: a connection that waited
        for a worker has waited part of it already."""
        self.deadline_s = deadline_s
        super().__init__(request, client_address, server)

    def version_string(self) -> str:
        """No Python version in the Server header: it tells an attacker more than it tells staff."""
        return self.server_version

    def setup(self) -> None:
        super().setup()
        self.rfile.close()
        self.head = _CappedHead(io.BufferedReader(_DeadlineReader(self.connection, self.deadline_s)))
        self.rfile = self.head  # type: ignore[assignment]

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if self.head.exceeded or len(self.headers) > MAX_HEADERS:
            self._refuse(431, w.HEAD_TOO_LARGE)
            return False
        return True

    def do_GET(self) -> None:
        self._answer(b"")

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._refuse(411, w.LENGTH_REQUIRED)
            return
        if not 0 <= length <= MAX_BODY_BYTES:
            self._refuse(413, w.BODY_TOO_LARGE)
            return
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            body = b""
        if len(body) < length:
            self._refuse(408, w.BODY_LATE)
            return
        self._answer(body)

    def _answer(self, body: bytes) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        request = Request(self.command, self.path, headers, body, self.client_address[0])
        self._write(self.console.respond(request))

    def handle(self) -> None:
        """One request; a client that vanished or stalled mid-way is its own business, not a fault of ours."""
        try:
            super().handle()
        except (ConnectionError, TimeoutError) as exc:
            _note_gone(self.client_address[0], exc)

    def _write(self, response: Response) -> None:
        self.connection.settimeout(IO_TIMEOUT_S)
        self.send_response(response.status)
        for name, value in response.all_headers():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _refuse(self, status: int, message: str) -> None:
        """Answer (`message` in the station's language) and close without reading what the client still sends,
        after a drain so that the answer is not lost to a reset. The drain ends after `DRAIN_QUIET_S` without a
        byte, after `DRAIN_BYTES`, and at the request's deadline (or `DRAIN_QUIET_S` after the answer, if that is
        later), so a client that keeps sending a byte now and then cannot hold the worker past its deadline."""
        self.close_connection = True
        self._write(plain(status, self.console.words(message)))
        self.wfile.flush()
        drain_until_s = max(self.deadline_s, time.monotonic() + DRAIN_QUIET_S)
        drained = 0
        try:
            while drained < DRAIN_BYTES and (left_s := drain_until_s - time.monotonic()) > 0:
                self.connection.settimeout(min(DRAIN_QUIET_S, left_s))
                if not (chunk := self.connection.recv(8192)):
                    break
                drained += len(chunk)
        except OSError:
            pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own refusals (a bad request line, an unknown method), with our headers and in
        the station's language (the library's `message` is English)."""
        self.close_connection = True
        self._write(plain(code, self.console.words(w.NOT_UNDERSTOOD)))

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("web_request", client=self.client_address[0], line=format % args)


class _GoneNotes:
    """At most one debug line per `GONE_NOTE_EVERY_S` for clients that left early: a flood of them is no log flood."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_s = -GONE_NOTE_EVERY_S

    def __call__(self, client: str, exc: BaseException) -> None:
        now_s = time.monotonic()
        with self._lock:
            if now_s - self._last_s < GONE_NOTE_EVERY_S:
                return
            self._last_s = now_s
        log.debug("web_client_gone", client=client, why=type(exc).__name__)


_note_gone = _GoneNotes()


class BoundedServer(http.server.HTTPServer):
    """An HTTPServer whose requests run on a fixed pool, with a bounded number waiting."""

    def __init__(self, address: tuple[str, int], console: Console, request_deadline_s: float) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._handler = type("ConsoleHandler", (_Handler,), {"console": console})
        self._request_deadline_s = request_deadline_s
        super().__init__(address, self._handler)
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="web")
        self._slots = threading.BoundedSemaphore(WORKERS + QUEUED)
        self._boundary = Boundary("web", _no_record, SystemClock())
        self._busy = LogTally()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            # A crowd is what fills the pool, so one line a minute with its count, not one per connection.
            count = self._busy.note(time.monotonic())
            if count is not None:
                log.warning("web_busy_connection_closed", client=str(client_address), count=count)
            self.shutdown_request(request)
            return
        self._pool.submit(self._work, request, client_address, time.monotonic() + self._request_deadline_s)

    def _work(self, request: Any, client_address: Any, deadline_s: float) -> None:
        try:
            with self._boundary.contain(f"request from {client_address[0]}"):
                self._handler(request, client_address, self, deadline_s)
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=True, cancel_futures=True)


def _no_record(_intent: RecordIntent) -> None:
    """The page makes no records (it has no outbox): a contained error is in its log only."""


def listen_address(listen: str) -> tuple[str, int]:
    """`192.168.1.10:8080` or `[fd00::1]:8080` as (host, port); the config's validation checked the shape."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def serve(loaded: LoadedConfig) -> int:
    """Serve until SIGTERM or SIGINT; returns the exit code. The first line on stdout says where it serves."""
    config = loaded.config
    configure_logs(config.logging.level, config.logging.format)
    console = Console(loaded, selftest=SelftestRunner(loaded.source))
    server = BoundedServer(listen_address(config.web.listen), console, config.web.request_deadline_s)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    stopping = threading.Event()

    def stop(_signum: int, _frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, name="web-stop", daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"station-agent web: serving http://{host}:{port}/ (read-only)", flush=True)
    log.info("web_serving", listen=f"{host}:{port}", station=config.station.id)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
    log.info("web_stopped")
    return 0
