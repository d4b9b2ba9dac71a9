"""Shared fixtures: a real Mosquitto on a free loopback port, started by the test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
