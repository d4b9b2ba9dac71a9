"""Shared fixtures: a real Mosquitto on a free loopback port, started by the test session, and a station rig."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from station_rig import StationRig

from simulators.broker import MosquittoBroker

# Property tests have no per-example deadline: a deadline is a timing assertion, which fails on a loaded box and
# proves nothing about behaviour; speed is what the benchmarks measure.
settings.register_profile("no_deadline", deadline=None)
settings.load_profile("no_deadline")


def pytest_configure(config: pytest.Config) -> None:
    """The suite starts a few hundred Python processes (agents, command lines, simulators). Where the environment
    says PYTHONDONTWRITEBYTECODE, each would compile every module it imports from source again (about 0.3 CPU s
    an agent); they share one bytecode cache in a temporary directory instead, so the checkout still gets no
    __pycache__, and it is removed at the end."""
    if not os.environ.get("PYTHONDONTWRITEBYTECODE"):
        return
    cache = tempfile.mkdtemp(prefix="station-agent-tests-bytecode-")
    del os.environ["PYTHONDONTWRITEBYTECODE"]
    os.environ["PYTHONPYCACHEPREFIX"] = cache
    config.add_cleanup(lambda: shutil.rmtree(cache, ignore_errors=True))


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """One broker for the whole session, for tests that never stop it."""
    with MosquittoBroker(tmp_path_factory.mktemp("broker")) as running:
        yield running


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A broker of the test's own, for tests that stop, kill or restart it. It is killed at the end: nothing is
    kept across its runs, and a clean shutdown after clients have been costs a tenth of a second a test."""
    broker = MosquittoBroker(tmp_path / "broker")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop(kill=True)


@pytest.fixture(scope="module")
def module_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """A broker of a module's own, for a run that several of its tests look at; killed at the end, as
    `private_broker` is."""
    broker = MosquittoBroker(tmp_path_factory.mktemp("module-broker"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop(kill=True)


@pytest.fixture
def rig(tmp_path: Path, private_broker: MosquittoBroker) -> Iterator[StationRig]:
    """Devices on a pty line and Modbus TCP and the reference platform, on a broker of the test's own; the test
    starts the agent."""
    with StationRig(tmp_path, private_broker) as station:
        yield station
