"""The test-only fault hook: off without its environment variable, and a hold that ends with its trigger file."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agent import fault_hook


def test_without_the_variable_the_hook_never_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No STATION_AGENT_FAULT_HOOK: a trigger file naming the loop changes nothing."""
    monkeypatch.setattr(fault_hook, "_trigger", None)
    (tmp_path / "hook").write_text("station")
    done = threading.Event()
    thread = threading.Thread(target=lambda: (fault_hook.hold_if_asked("station"), done.set()), daemon=True)
    thread.start()
    assert done.wait(2.0)


def test_the_named_loop_holds_until_the_trigger_is_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trigger naming `station` holds the station loop (not another) until the file is removed."""
    trigger = tmp_path / "hook"
    trigger.write_text("station\n")
    monkeypatch.setattr(fault_hook, "_trigger", trigger)
    fault_hook.hold_if_asked("recorder")
    done = threading.Event()
    thread = threading.Thread(target=lambda: (fault_hook.hold_if_asked("station"), done.set()), daemon=True)
    thread.start()
    assert not done.wait(1.5)
    trigger.unlink()
    assert done.wait(5.0)
