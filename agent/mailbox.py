"""A queue between threads that a loop can wait on without taking from it.

Why not `queue.SimpleQueue`: a loop built as a thin `run()` around `step(now)` waits in `run()` and takes in
`step()`, so that a test can call `step` itself, with a clock of its own and no thread; a queue whose only wait
is a `get` would hand the waited-for item to `run()` instead. `put` never blocks and is safe from any thread;
`take` and `wait` belong to the one thread that owns the mailbox's receiving end.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    """Unbounded, first in first out; the items must not be None (an empty `take` says None)."""

    __slots__ = ("_items", "_ready")

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._ready = threading.Condition(threading.Lock())

    def put(self, item: T) -> None:
        with self._ready:
            self._items.append(item)
            self._ready.notify()

    def put_all(self, items: Iterable[T]) -> None:
        """Several items at once, with one wake-up of the waiting loop rather than one per item."""
        with self._ready:
            self._items.extend(items)
            self._ready.notify()

    def take(self) -> T | None:
        """The oldest item, or None at once if there is none."""
        try:
            return self._items.popleft()
        except IndexError:
            return None

    def wait(self, timeout_s: float) -> bool:
        """Until an item is there or `timeout_s` (real seconds) has passed; whether an item is there."""
        with self._ready:
            return self._ready.wait_for(lambda: bool(self._items), timeout_s)

    def __len__(self) -> int:
        return len(self._items)
