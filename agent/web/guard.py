"""Who may see the page: login throttling and sessions, as pure logic fed the time (no I/O, no clock reads).

Theory of operation: a client address that got the PIN wrong `FREE_FAILURES` times must wait, and the wait
doubles with each further failure up to `MAX_LOCK_S`; a success forgets its failures. Failures from all
addresses together are counted against `GLOBAL_FAILURES_PER_MIN`, so that many addresses cannot share out the
guessing; but that budget slows only addresses that have failed themselves. An address with no failure on
record is never refused, so a stranger's wrong PINs cannot lock the staff out: at worst each new address gains
one free try. An IPv6 client counts by its /64, the block one host can pick addresses from at will, and the
book remembers `MAX_CLIENTS` of them (the oldest going first), more than a LAN's IPv4 /24 or /22. A session is a
random token with an idle and an absolute end; the book holds at most `MAX_SESSIONS`, the oldest going first.
Both books are bounded, so no request can make them grow without end.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass

FREE_FAILURES = 3
FIRST_LOCK_S = 30.0
MAX_LOCK_S = 15 * 60.0
GLOBAL_FAILURES_PER_MIN = 10
MAX_CLIENTS = 4096
MAX_SESSIONS = 16
IDLE_END_S = 30 * 60.0


@dataclass(slots=True)
class _Failures:
    count: int
    locked_until_s: float


class LoginThrottle:
    """`wait_s(client, now)` before checking a PIN: above 0 the attempt is refused unchecked."""

    def __init__(self) -> None:
        self._clients: OrderedDict[str, _Failures] = OrderedDict()
        self._recent: deque[float] = deque()

    def wait_s(self, client: str, now_s: float) -> float:
        failures = self._clients.get(_key(client))
        if failures is None:
            return 0.0
        while self._recent and self._recent[0] <= now_s - 60.0:
            self._recent.popleft()
        global_wait = 0.0
        if len(self._recent) >= GLOBAL_FAILURES_PER_MIN:
            global_wait = self._recent[0] + 60.0 - now_s
        return max(0.0, global_wait, failures.locked_until_s - now_s)

    def failed(self, client: str, now_s: float) -> None:
        self._recent.append(now_s)
        while len(self._recent) > GLOBAL_FAILURES_PER_MIN:
            self._recent.popleft()
        client = _key(client)
        failures = self._clients.pop(client, None) or _Failures(0, 0.0)
        failures.count += 1
        if failures.count >= FREE_FAILURES:
            lock_s = min(MAX_LOCK_S, FIRST_LOCK_S * 2 ** (failures.count - FREE_FAILURES))
            failures.locked_until_s = now_s + lock_s
        self._clients[client] = failures
        while len(self._clients) > MAX_CLIENTS:
            self._clients.popitem(last=False)

    def succeeded(self, client: str) -> None:
        self._clients.pop(_key(client), None)


def _key(client: str) -> str:
    """The address a client is counted by: an IPv4 address (an IPv4-mapped IPv6 one too) as itself, IPv6 by /64."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass(slots=True)
class _Session:
    started_s: float
    seen_s: float


class SessionBook:
    """Session tokens handed out after a login; only their holders see the page."""

    def __init__(self, lifetime_s: float) -> None:
        self.lifetime_s = lifetime_s
        self._sessions: OrderedDict[str, _Session] = OrderedDict()

    def open(self, now_s: float) -> str:
        token = secrets.token_urlsafe(32)
        self._sessions[token] = _Session(now_s, now_s)
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return token

    def valid(self, token: str | None, now_s: float) -> bool:
        """True for a live session, whose idle end moves on; an ended one is forgotten."""
        session = None if token is None else self._sessions.get(token)
        if token is None or session is None:
            return False
        if now_s - session.seen_s > IDLE_END_S or now_s - session.started_s > self.lifetime_s:
            del self._sessions[token]
            return False
        session.seen_s = now_s
        return True

    def close(self, token: str | None) -> None:
        if token:
            self._sessions.pop(token, None)
