"""What every simulated device model shares: time that only moves forward, and faults at exact moments.

A model is advanced to a simulated moment (by a read, a ticker or a test) and runs its physics up to it. Its
scheduled faults are changes at their own moments, so the model runs to each one, applies it and runs on:
a fault scheduled at second 600 changes the sale in progress from second 600, however the reads fall.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable

from simulators.faults import ActiveFault, Change, Fault, FaultBoard, ScheduledFault, set_link_faults
from simulators.modbus_slave import SlaveFaults


class SimulatedModel(ABC):
    """A device model in simulated seconds, guarded by one lock, with the faults on its targets.

    `link_faults` holds, per device target, the `SlaveFaults` its slave server reads at every request; the
    model keeps them in step with its `dead`, `slow` and `crc_noise` faults. `has_crc` says whether the
    devices sit on an RTU line, where noise shows as a bad CRC, or on TCP, where it garbles the answer.
    """

    def __init__(self, device_targets: Iterable[str], *, has_crc: bool) -> None:
        self.lock = threading.RLock()
        self.link_faults = {target: SlaveFaults() for target in device_targets}
        self._has_crc = has_crc
        self._board = FaultBoard()
        self._now_s = 0.0

    @property
    def now_s(self) -> float:
        """The simulated moment the model has been run up to."""
        return self._now_s

    def advance_to(self, sim_s: float) -> None:
        """Run the model up to `sim_s`, taking each scheduled fault change at its moment; never backwards."""
        with self.lock:
            while (change := self._board.pop_due(sim_s)) is not None:
                self._run_to(max(self._now_s, change.at_s))
                self._take(change)
            self._run_to(max(self._now_s, sim_s))

    def schedule(self, item: ScheduledFault) -> None:
        """Add a fault change at a simulated moment still to come (or, if past, at the next advance)."""
        with self.lock:
            self._board.schedule(item)

    def inject(self, fault: Fault, sim_s: float) -> None:
        """Put a fault on (or make a one-shot happen) at `sim_s`, after running up to it."""
        with self.lock:
            self.advance_to(sim_s)
            self._take(Change(self._now_s, fault, True))

    def clear(self, kind: str, target: str, sim_s: float) -> ActiveFault:
        """Take a sustained fault off at `sim_s`; raises FaultError if it is not on."""
        with self.lock:
            self.advance_to(sim_s)
            active = self._board.stop(kind, target)
            self._links_changed()
            return active

    def active_faults(self) -> list[ActiveFault]:
        with self.lock:
            return self._board.active()

    def _take(self, change: Change) -> None:
        if change.fault.one_shot:
            self._happen(change.fault)
        elif change.starting:
            self._board.start(change.fault, change.at_s, change.until_s)
        else:
            self._board.discard(change.fault.kind, change.fault.target)
        self._links_changed()

    def _firmware_id(self, target: str, installed: int) -> int:
        """The firmware id a device shows: the installed one, unless a firmware_change fault says otherwise."""
        changed = self._board.value("firmware_change", target, "firmware_id")
        return installed if changed is None else int(changed)

    def _links_changed(self) -> None:
        for target, link in self.link_faults.items():
            set_link_faults(self._board, target, link, has_crc=self._has_crc)

    @abstractmethod
    def _run_to(self, sim_s: float) -> None:
        """Run the physics from `now_s` up to `sim_s` (>= now_s) and set `_now_s`."""

    @abstractmethod
    def _happen(self, fault: Fault) -> None:
        """Carry out a one-shot fault now."""
