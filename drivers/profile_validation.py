"""Checking a profile file with pydantic: the only place profiles meet the validation library (see schema.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from drivers.profiles import ProfileDocument, ProfileError

_ADAPTER: TypeAdapter[ProfileDocument] | None = None


def validate_profile(path: Path) -> ProfileDocument:
    global _ADAPTER  # noqa: PLW0603 - built on first use, once per process
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"{path}: cannot be read: {exc.strerror}") from exc
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
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
