"""Where the data files that ship with station-agent are: device profiles and HJ 212 city profiles."""

from __future__ import annotations

import sys
from pathlib import Path


def shipped_dirs(kind: str) -> list[Path]:
    """The directories of shipped `kind` files (`profiles`, `hj212`): a source checkout's `config/<kind>`, then
    the copy a package installs under `<prefix>/share/station-agent/<kind>`."""
    checkout = Path(__file__).resolve().parent.parent / "config" / kind
    installed = Path(sys.prefix) / "share" / "station-agent" / kind
    return [directory for directory in (checkout, installed) if directory.is_dir()]
