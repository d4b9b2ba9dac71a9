"""A small state file replaced in one step: written beside, flushed, renamed over the old one, directory flushed.

The commands keep two such files next to each other (the replay memory and the refusal bucket); a power cut at
any moment leaves either the old whole file or the new whole file, never a mix.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` (write, fsync, rename, fsync the directory); OSError if it cannot."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
