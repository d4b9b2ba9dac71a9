"""Shared fixtures: a real Mosquitto on a free loopback port, started by the test session, and a station rig."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from station_rig import StationRig

from simulators.broker import MosquittoBroker


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """One broker for the whole session, for tests that never stop it."""
    with MosquittoBroker(tmp_path_factory.mktemp("broker")) as running:
        yield running


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A broker of the test's own, for tests that stop, kill or restart it."""
    with MosquittoBroker(tmp_path / "broker") as running:
        yield running


@pytest.fixture
def rig(tmp_path: Path, private_broker: MosquittoBroker) -> Iterator[StationRig]:
    """Devices on a pty line and Modbus TCP and the reference platform, on a broker of the test's own; the test
    starts the agent."""
    with StationRig(tmp_path, private_broker) as station:
        yield station
