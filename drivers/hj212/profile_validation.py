"""Reading a city profile with pydantic: the one place HJ 212 profiles meet the validation library."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from drivers.hj212.profile import CityProfile


class CityProfileError(ValueError):
    """The profile file cannot be read or breaks a rule; the message lists every problem with its place."""


def load_city_profile(path: Path) -> CityProfile:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CityProfileError(f"{path}: cannot be read: {exc.strerror}") from exc
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
        raise CityProfileError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return TypeAdapter(CityProfile).validate_python(document)
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(part) for part in error['loc']) or '(top level)'}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors(include_url=False)
        ]
        raise CityProfileError(f"{path}: {len(lines)} problem(s):\n" + "\n".join(lines)) from exc
