"""The system test boots a Debian 12 box under systemd; it runs only from `make system-test`.

It needs root, debootstrap and systemd-nspawn, and a few minutes, so `make test` (and a bare `pytest`) leave
this folder out unless STATION_AGENT_SYSTEM_TEST=1, which `make system-test` sets.
"""

from __future__ import annotations

import os

collect_ignore_glob = [] if os.environ.get("STATION_AGENT_SYSTEM_TEST") == "1" else ["*"]
