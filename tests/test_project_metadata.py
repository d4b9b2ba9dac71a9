"""The two distributions' metadata: the gateway's (pyproject.toml) and the lab's (lab/pyproject.toml).

Each licence in the form current setuptools wants (an SPDX expression and the licence file), so that
`make install` builds without setuptools' deprecation warning about a `license` table."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
GATEWAY, LAB = REPOSITORY, REPOSITORY / "lab"


def canonical(name: str) -> str:
    """A distribution's name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject(folder: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))
    return loaded


@pytest.mark.parametrize("folder", [GATEWAY, LAB], ids=["gateway", "lab"])
def test_license_is_an_spdx_expression_with_its_file(folder: Path) -> None:
    """`license` is the string "Apache-2.0", every `license-files` entry exists and is that licence's text, and
    the build asks for a setuptools that reads both (77 or later)."""
    pyproject = _pyproject(folder)
    project = pyproject["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"]
    for name in project["license-files"]:
        text = (folder / name).read_text(encoding="utf-8")
        assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert not any(c.startswith("License ::") for c in project.get("classifiers", [])), "SPDX replaces classifiers"
    (setuptools,) = [r for r in pyproject["build-system"]["requires"] if r.startswith("setuptools")]
    found = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", setuptools)
    assert found is not None and int(found.group(1)) >= 77


def test_the_lab_is_its_own_distribution_and_follows_the_gateway() -> None:
    """The gateway's distribution finds only agent and drivers and has only `station-agent`; the lab's finds the
    simulators, the benchmarks and station_lab, has `station-sim`, requires the gateway and keeps its version."""
    gateway, lab = _pyproject(GATEWAY), _pyproject(LAB)
    assert gateway["tool"]["setuptools"]["packages"]["find"]["include"] == ["agent*", "drivers*"]
    assert set(gateway["project"]["scripts"]) == {"station-agent"}
    assert lab["tool"]["setuptools"]["packages"]["find"]["include"] == ["simulators*", "bench*", "station_lab*"]
    assert set(lab["project"]["scripts"]) == {"station-sim"}
    assert "station-agent" in lab["project"]["dependencies"]
    assert lab["project"]["version"] == gateway["project"]["version"]
    for package in ("simulators", "bench", "station_lab"):
        assert (LAB / package / "__init__.py").is_file()
        assert not (REPOSITORY / package).exists(), (
            f"{package}/ at the top shadows the lab's package for `python -m` run from here: remove it "
            "(after the move to lab/, only an untracked __pycache__ is left there)"
        )


def test_the_lab_imports_no_library_the_gateway_does_not_require() -> None:
    """Every library a lab module imports (outside the standard library and the two distributions' own
    packages) belongs to a distribution the gateway's pyproject requires, as lab/pyproject.toml promises."""
    from importlib.metadata import packages_distributions  # noqa: PLC0415 - this test's only use

    from packaging.requirements import Requirement  # noqa: PLC0415 - pip's own parser, a dev dependency's

    own = {"agent", "drivers", "simulators", "bench", "station_lab"}
    imported: set[str] = set()
    for source in LAB.rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.partition(".")[0])
    libraries = imported - own - set(sys.stdlib_module_names) - {"__future__"}
    assert libraries, "the scan found no library at all: it is not reading the lab"
    required = {canonical(Requirement(d).name) for d in _pyproject(GATEWAY)["project"]["dependencies"]}
    providers = packages_distributions()
    unrequired = {name for name in libraries if not {canonical(d) for d in providers.get(name, [])} & required}
    assert unrequired == set(), f"the lab imports {sorted(unrequired)}: add them to lab/pyproject.toml"
