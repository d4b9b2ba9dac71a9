"""Reading a profile file and checking it with pydantic: the only place profiles meet the validation library.

The commands that read profiles (`run`'s first stage, `check-config`, `profile-check`, `scan`) call `load_profile`
or `find_profile` here; the agent process receives the checked `Profile`s and never imports this module
(see drivers/schema.py).
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from drivers.profiles import Profile, ProfileDocument, ProfileError

_ADAPTER: TypeAdapter[ProfileDocument] | None = None


def load_profile(path: Path) -> Profile:
    """Read and validate one profile file; ProfileError lists every problem with its place."""
    return Profile(validate_profile(path), path)


def find_profile(name: str, directories: Sequence[Path]) -> Profile:
    """The profile called `name`, from the first directory that has `<name>.toml`."""
    for directory in directories:
        candidate = directory / f"{name}.toml"
        if candidate.is_file():
            profile = load_profile(candidate)
            if profile.name != name:
                raise ProfileError(f"{candidate}: file is named {name!r} but its [profile] name is {profile.name!r}")
            return profile
    searched = ", ".join(str(d) for d in directories) or "(none)"
    raise ProfileError(f"no profile {name!r}: looked for {name}.toml in {searched}")


def validate_profile(path: Path) -> ProfileDocument:
    global _ADAPTER  # noqa: PLW0603 - built on first use, once per process
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"{path}: cannot be read: {exc.strerror}") from exc
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from exc
    if _ADAPTER is None:
        _ADAPTER = TypeAdapter(ProfileDocument)
    try:
        profile = _ADAPTER.validate_python(document)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False):
            where = ".".join(str(part) for part in error["loc"]) or "(top level)"
            message = error["msg"].removeprefix("Value error, ")
            found = "" if error["type"] == "value_error" else f" (found {error.get('input')!r:.60})"
            lines.append(f"{where}: {message}{found}")
        raise ProfileError(_listing(path, lines)) from exc
    return profile


def _listing(path: Path, lines: list[str]) -> str:
    return f"{path}: {len(lines)} problem(s):\n" + "\n".join(f"  {line}" for line in lines)
