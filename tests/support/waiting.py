"""Waiting for something that happens on another thread or in another process, without guessing how long it takes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout_s: float, what: str, *, every_s: float = 0.05) -> T:
    """Poll `condition` until it returns something true and return that; after `timeout_s` fail the test
    naming `what` was awaited. A condition is asked once more after the deadline, so a slow machine that
    got there just in time still passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(every_s)
