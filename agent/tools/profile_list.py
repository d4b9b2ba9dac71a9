"""`station-agent profile list`: the device profiles the agent would find, in the order it looks for them.

A name in two folders is listed where the agent takes it from (the first) and marked as hiding the later
one, since an installer's copy of a shipped profile silently replaces it. A file that does not load is listed
with its first problem rather than ending the listing: the installer is usually looking for exactly that.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.profile_validation import load_profile
from drivers.profiles import ProfileError


@dataclass(frozen=True, slots=True)
class ListedProfile:
    name: str
    path: Path
    kind: str = ""
    vendor: str = ""
    model: str = ""
    description: str = ""
    hides: tuple[Path, ...] = ()
    problem: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "kind": self.kind,
            "vendor": self.vendor,
            "model": self.model,
            "description": self.description,
            "hides": [str(path) for path in self.hides],
            "problem": self.problem,
        }


def list_profiles(directories: Sequence[Path]) -> list[ListedProfile]:
    """Every `*.toml` in the folders that exist, by name; a later folder's file of the same name is hidden."""
    taken: dict[str, ListedProfile] = {}
    for directory in dict.fromkeys(directories):
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.toml")):
            name = path.stem
            if name in taken:
                first = taken[name]
                taken[name] = dataclasses.replace(first, hides=(*first.hides, path))
                continue
            taken[name] = _listed(path)
    return sorted(taken.values(), key=lambda entry: entry.name)


def _listed(path: Path) -> ListedProfile:
    try:
        profile = load_profile(path)
    except ProfileError as exc:
        return ListedProfile(path.stem, path, problem=str(exc).splitlines()[-1].strip())
    header = profile.document.profile
    return ListedProfile(header.name, path, header.kind.value, header.vendor, header.model, header.description)


def profile_listing_text(listing: Sequence[ListedProfile]) -> str:
    """Three lines a profile: name, kind and maker; what it covers (or why it does not load); its file."""
    if not listing:
        return "no profiles found"
    out: list[str] = []
    for entry in listing:
        maker = " ".join(part for part in (entry.vendor, entry.model) if part)
        out.append(f"{entry.name:<28} {entry.kind or 'BROKEN':<16} {maker}")
        out.append(f"{'':<28} {entry.problem or entry.description}")
        out.append(f"{'':<28} {entry.path}" + "".join(f" (hides {hidden})" for hidden in entry.hides))
    return "\n".join(out)
