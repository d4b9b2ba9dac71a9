"""The control endpoint of a running simulated station: faults in and out while the agent is polling.

A Unix socket (named by `[simulation] control` in the config) takes one JSON object a line and answers one a
line, so a supplier's CI can drive it from any language, or through `station-sim fault`:

    {"op": "inject", "kind": "pulse_injection", "target": "D01-N1", "params": {"percent": 1.0}}
    {"op": "clear", "kind": "pulse_injection", "target": "D01-N1"}
    {"op": "list"}

Every answer has `"ok"`; a refused request has `"error"` naming what is allowed. A Unix socket, not TCP, so
that only users who may open the file can break the station.
"""

from __future__ import annotations

import json
import select
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from simulators.faults import ActiveFault, Fault, FaultError

POLL_S = 0.05
MAX_SOCKET_PATH_BYTES = 107
MAX_REQUEST_BYTES = 65_536

Message = dict[str, Any]


class ControlError(RuntimeError):
    """The control socket cannot be opened, reached or understood."""


class FaultControl(Protocol):
    """What the control endpoint drives: `SimulatedStation` and `Site` both are one."""

    def inject(self, kind: str, target: str, **params: Any) -> Fault: ...

    def clear(self, kind: str, target: str) -> ActiveFault: ...

    def active_faults(self) -> list[ActiveFault]: ...


def handle_request(control: FaultControl, request: Message) -> Message:
    """The answer to one request; never raises for a bad request, it answers ok: false with the reason."""
    op = request.get("op")
    try:
        if op == "inject":
            params = request.get("params") or {}
            if not isinstance(params, dict) or {"kind", "target"} & set(params):
                raise FaultError(f"params must be an object of param name: value, got {params!r}")
            fault = control.inject(_text(request, "kind"), _text(request, "target"), **params)
            return {"ok": True, "fault": fault.to_json()}
        if op == "clear":
            cleared = control.clear(_text(request, "kind"), _text(request, "target"))
            return {"ok": True, "cleared": cleared.to_json()}
        if op == "list":
            return {"ok": True, "active": [active.to_json() for active in control.active_faults()]}
    except FaultError as error:
        return {"ok": False, "error": str(error)}
    return {"ok": False, "error": f"unknown op {op!r}; ops: inject, clear, list"}


def _text(request: Message, key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str) or not value:
        raise FaultError(f"{key} must be a non-empty string, got {value!r}")
    return value


def _check_path(path: Path) -> None:
    if len(bytes(path)) > MAX_SOCKET_PATH_BYTES:
        raise ControlError(
            f"control socket path {path} is {len(bytes(path))} bytes; Unix sockets allow "
            f"{MAX_SOCKET_PATH_BYTES}: choose a shorter path"
        )


class ControlServer:
    """Serves `handle` on a Unix socket at `path`, one thread per connection, until stopped.

    A socket file left behind by a station that was killed is replaced; one that a running station still
    answers on is refused.
    """

    def __init__(self, path: Path, handle: Callable[[Message], Message]) -> None:
        _check_path(path)
        self.path = path
        self._handle = handle
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._remove_stale()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            listener.bind(str(self.path))
        except OSError as error:
            listener.close()
            raise ControlError(f"cannot listen on control socket {self.path}: {error.strerror}") from error
        listener.listen()
        self._listener = listener
        self._stopping.clear()
        self._spawn(self._serve, "control")

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads.clear()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
            self.path.unlink(missing_ok=True)

    def _remove_stale(self) -> None:
        if not self.path.exists():
            return
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(self.path))
        except OSError:
            self.path.unlink()
            return
        finally:
            probe.close()
        raise ControlError(f"control socket {self.path} is in use by a running station: stop it or use another path")

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        self._threads = [thread for thread in self._threads if thread.is_alive()]
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _serve(self) -> None:
        listener = self._listener
        while listener is not None and not self._stopping.is_set():
            readable, _, _ = select.select([listener], [], [], POLL_S)
            if readable:
                connection, _ = listener.accept()
                self._spawn(self._converse, "control-connection", connection)

    def _converse(self, connection: socket.socket) -> None:
        connection.settimeout(POLL_S)
        pending = b""
        with connection:
            while not self._stopping.is_set():
                try:
                    chunk = connection.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    connection.sendall(json.dumps(self._answer(line)).encode() + b"\n")
                if len(pending) > MAX_REQUEST_BYTES:
                    connection.sendall(json.dumps({"ok": False, "error": "request line too long"}).encode() + b"\n")
                    return

    def _answer(self, line: bytes) -> Message:
        try:
            request = json.loads(line)
        except ValueError as error:
            return {"ok": False, "error": f"not a JSON object: {error}"}
        if not isinstance(request, dict):
            return {"ok": False, "error": f"a request is a JSON object, got {type(request).__name__}"}
        return self._handle(request)


def send_request(path: Path, request: Message, timeout_s: float = 5.0) -> Message:
    """Send one request to a station's control socket and return its answer; ControlError if unreachable."""
    _check_path(path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout_s)
        try:
            connection.connect(str(path))
            connection.sendall(json.dumps(request).encode() + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = connection.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except OSError as error:
            reason = error.strerror or str(error) or type(error).__name__
            raise ControlError(f"cannot reach the station's control socket {path}: {reason}; is it running?") from error
    try:
        reply: Message = json.loads(answer)
    except ValueError as error:
        raise ControlError(f"the station at {path} answered something that is not JSON: {answer!r:.80}") from error
    return reply
