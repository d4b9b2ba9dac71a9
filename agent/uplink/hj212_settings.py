"""The `[hj212]` section: the second uplink, to an ecology platform that takes HJ 212 over TCP.

Kept apart from the client so that the config can name it without importing sockets and threads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from drivers.schema import Ge, Gt, Le, Matches, MinLen, doc, settings

_NO_SEPARATORS = r"[^;,=&\s]"


@settings
class Hj212Section:
    enabled: bool = doc("send to the ecology platform over HJ 212", default=False)
    host: Annotated[str, MinLen(1)] = doc("the platform's host name or address", default="127.0.0.1")
    port: Annotated[int, Ge(1), Le(65535)] = doc("the platform's TCP port")
    version: Literal["2017", "2025"] = doc(
        "the edition of HJ 212 the platform speaks: '2017' or '2025' (it sets Flag's version bits)", default="2017"
    )
    st: Annotated[str, Matches("two digits", r"[0-9]{2}")] | None = doc(
        "the system code ST, if the platform wants another than the city profile's", default=None
    )
    pw: Annotated[str, Matches("1-6 characters without ; , = & or spaces", _NO_SEPARATORS + r"{1,6}")] = doc(
        "the access password PW the platform assigned to the station"
    )
    mn: Annotated[str, Matches("1-24 characters without ; , = & or spaces", _NO_SEPARATORS + r"{1,24}")] = doc(
        "the device number MN the platform assigned (HJ 212-2025: 24 hex digits)"
    )
    profile: Path = doc("the city profile (TOML) with the codes, e.g. config/hj212/chongqing.toml")
    ack: bool = doc("ask the platform to answer each frame (Flag's A bit) and resend until it does", default=True)
    ack_timeout_s: Annotated[float, Gt(0), Le(300)] = doc(
        "how long to wait for the platform's answer before sending a frame again, in seconds", default=5.0
    )
    retries: Annotated[int, Ge(0), Le(100)] = doc(
        "how often a frame is sent again without an answer before the connection is dropped and made anew",
        default=3,
    )
    connect_timeout_s: Annotated[float, Gt(0), Le(300)] = doc("how long a TCP connect may take", default=10.0)
    reconnect_min_s: Annotated[float, Gt(0), Le(600)] = doc("the first reconnect backoff, in seconds", default=1.0)
    reconnect_max_s: Annotated[float, Gt(0), Le(3600)] = doc("the longest reconnect backoff, in seconds", default=120.0)
    save_interval_s: Annotated[float, Gt(0), Le(3600)] = doc(
        "how often the progress through the outbox is saved; losing it costs only re-sends", default=30.0
    )
    sm4_key_file: Path | None = doc(
        "HJ 212-2025 encryption: the file with the 128-bit SM4 key the platform issued, as 32 hex digits, mode "
        "0600 (e.g. /var/lib/station-agent/keys/hj212-sm4.key); read at every connection. The data area of "
        "every frame the standard wants encrypted (CN 2000-2999, 1014, 3020) then goes out SM4-encrypted. "
        "None: nothing is encrypted",
        default=None,
    )
    sm4_length_of: Literal["plaintext", "transmitted"] = doc(
        "what an encrypted frame's length field counts: 'plaintext' as the standard's Appendix A.2 examples do, "
        "or 'transmitted' (the segment as sent) if the platform reads Table 2 that way",
        default="plaintext",
    )
    sm4_crc_over: Literal["plaintext", "transmitted"] = doc(
        "what an encrypted frame's CRC covers: 'plaintext' as the standard's Appendix A.2 examples do, or "
        "'transmitted' (the segment as sent)",
        default="plaintext",
    )
    heartbeat_s: Annotated[float, Ge(0), Le(3600)] = doc(
        "send a heartbeat (CN=9015, HJ 212-2025) after this many seconds without sending anything; 0: none",
        default=0.0,
    )
    max_extract_frames: Annotated[int, Ge(1), Le(100_000)] = doc(
        "the most frames one extract request from the platform (a period's data, again) is answered with",
        default=2000,
    )
    max_extract_days: Annotated[int, Ge(1), Le(366)] = doc(
        "the longest period one extract request may ask for, in days; longer requests are refused", default=31
    )

    def __post_init__(self) -> None:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        if self.version == "2025" and (len(self.mn) != 24 or not all(c in "0123456789ABCDEFabcdef" for c in self.mn)):
            raise ValueError(f"HJ 212-2025 wants MN as 24 hex digits; got {self.mn!r}")
