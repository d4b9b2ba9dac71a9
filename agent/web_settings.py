"""The `[web]` section: the local page for staff and installers, which runs as a process of its own.

Kept outside the `agent.web` package so that the config, which the agent process loads, names the section
without loading the page.
"""

from __future__ import annotations

from typing import Annotated

from drivers.schema import TCP_PORT_AFTER_COLON, Ge, Le, Matches, doc, settings

ListenAddress = Annotated[
    str,
    Matches(
        "IPv4:PORT or [IPv6]:PORT of this box, e.g. '192.168.1.10:8080'", r"([0-9.]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}"
    ),
    TCP_PORT_AFTER_COLON,
]
PinHash = Annotated[
    str,
    Matches(
        "a line printed by 'station-agent web-pin' (scrypt$14$8$1$salt$hash)",
        r"scrypt\$[0-9]{2}\$[0-9]{1,2}\$[0-9]\$[A-Za-z0-9+/=]{16,}\$[A-Za-z0-9+/=]{44}",
    ),
]


@settings
class WebSection:
    """The local web page for staff and installers (`station-agent web`, its own process): read-only, off."""

    enabled: bool = doc("serve the page", default=False)
    listen: ListenAddress = doc(
        "the box's LAN address and port to serve on (never 0.0.0.0 on a box with a public link)",
        default="192.168.1.10:8080",
    )
    pin_hash: PinHash | None = doc("the PIN's salted hash, as 'station-agent web-pin' prints it", default=None)
    session_minutes: Annotated[int, Ge(1), Le(24 * 60)] = doc("how long a login lasts, in minutes", default=480)
    request_deadline_s: Annotated[float, Ge(1.0), Le(300.0)] = doc(
        "how long a client has from its connection for its whole request (head and body) before it is cut; "
        "a client trickling bytes holds one of the page's few workers for at most this long",
        default=10.0,
    )

    def __post_init__(self) -> None:
        if self.enabled and self.pin_hash is None:
            raise ValueError(
                "web: the page is enabled without a PIN; run 'station-agent web-pin' and put the line it prints "
                "under [web] as pin_hash"
            )
