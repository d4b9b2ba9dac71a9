"""A nozzle's phases, as a table: idle → lifted → fuelling → finished → idle.

Theory of operation: the agent sees a nozzle only at its polls, so it may miss a phase (a short lift, a quick
fuelling between two polls). The table therefore has a row for every pair of phases, and says what each pair
means for the fuelling: it STARTED (the nozzle left rest), it ENDED (it came back to rest), or nothing. The
controller's own states map onto the four phases; a state this agent does not know changes nothing.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    IDLE = "idle"
    LIFTED = "lifted"
    FUELLING = "fuelling"
    FINISHED = "finished"


class Step(StrEnum):
    NONE = "none"
    STARTED = "started"
    ENDED = "ended"


#: Controller states (profile vocabulary) to phases; "fault" and unknown states leave the phase as it was.
OBSERVED: dict[str, Phase] = {
    "idle": Phase.IDLE,
    "authorised": Phase.LIFTED,
    "lifted": Phase.LIFTED,
    "fuelling": Phase.FUELLING,
    "finished": Phase.FINISHED,
}

AT_REST = frozenset({Phase.IDLE, Phase.FINISHED})

_I, _L, _F, _D = Phase.IDLE, Phase.LIFTED, Phase.FUELLING, Phase.FINISHED
TRANSITIONS: dict[tuple[Phase, Phase], Step] = {
    (_I, _I): Step.NONE,
    (_I, _L): Step.STARTED,
    (_I, _F): Step.STARTED,  # the lift fell between two polls
    (_I, _D): Step.NONE,  # a whole fuelling between two polls: only the booking shows it
    (_L, _I): Step.ENDED,  # lifted and hung up without fuelling
    (_L, _L): Step.NONE,
    (_L, _F): Step.NONE,
    (_L, _D): Step.ENDED,
    (_F, _I): Step.ENDED,
    (_F, _L): Step.NONE,  # paused
    (_F, _F): Step.NONE,
    (_F, _D): Step.ENDED,
    (_D, _I): Step.NONE,
    (_D, _L): Step.STARTED,
    (_D, _F): Step.STARTED,
    (_D, _D): Step.NONE,
}


class NozzleFsm:
    """The phase of one nozzle as last seen, and whether fuel flowed since it last left rest."""

    def __init__(self) -> None:
        self.phase: Phase | None = None
        self.flowed = False

    def observe(self, state: str) -> Step:
        seen = OBSERVED.get(state)
        if seen is None:
            return Step.NONE
        previous, self.phase = self.phase, seen
        if previous is None:
            return Step.NONE
        step = TRANSITIONS[(previous, seen)]
        if step == Step.STARTED:
            self.flowed = False
        if seen == Phase.FUELLING:
            self.flowed = True
        return step

    @property
    def at_rest(self) -> bool:
        return self.phase in AT_REST
