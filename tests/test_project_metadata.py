"""pyproject.toml's licence in the form current setuptools wants (an SPDX expression and the licence file), so
that `make install` builds without setuptools' deprecation warning about a `license` table."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def test_license_is_an_spdx_expression_with_its_file() -> None:
    """`license` is the string "Apache-2.0", every `license-files` entry exists and is that licence's text, and
    the build asks for a setuptools that reads both (77 or later)."""
    pyproject = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))
    project = pyproject["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"]
    for name in project["license-files"]:
        text = (PROJECT / name).read_text(encoding="utf-8")
        assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert not any(c.startswith("License ::") for c in project.get("classifiers", [])), "SPDX replaces classifiers"
    (setuptools,) = [r for r in pyproject["build-system"]["requires"] if r.startswith("setuptools")]
    found = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", setuptools)
    assert found is not None and int(found.group(1)) >= 77
