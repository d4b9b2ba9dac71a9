"""The commands the platform may send, their arguments, and the one decision that is pure: what a resend can
resend. Carrying the commands out is the desk's (agent.commands.desk), since it touches the other parts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from agent.commands.envelope import Command, Refusal, Refused, quote
from agent.contract.records import JsonScalar


@dataclass(frozen=True, slots=True)
class NoArgs:
    """ping, status and rotate-key take no arguments (an empty `args` object)."""


@dataclass(frozen=True, slots=True)
class ResendArgs:
    """Publish records first..last again, as far as the outbox still holds them."""

    first: int
    last: int


CommandArgs = NoArgs | ResendArgs


def _no_args(args: dict[str, JsonScalar]) -> CommandArgs | str:
    return NoArgs() if not args else f"takes no arguments, got {quote(sorted(args))}"


def _resend_args(args: dict[str, JsonScalar]) -> CommandArgs | str:
    if args.keys() != {"first", "last"}:
        return f'want exactly {{"first": N, "last": M}}, got keys {quote(sorted(args))}'
    first, last = args["first"], args["last"]
    if type(first) is not int or type(last) is not int:
        return "first and last must be integers"
    if not 1 <= first <= last:
        return f"want 1 <= first <= last, got first {first}, last {last}"
    return ResendArgs(first, last)


ARGUMENTS: Final[dict[str, Callable[[dict[str, JsonScalar]], CommandArgs | str]]] = {
    "ping": _no_args,
    "status": _no_args,
    "resend": _resend_args,
    "rotate-key": _no_args,
}


def parse_args(command: Command) -> CommandArgs | Refused:
    """The command's arguments, typed; or why the command is unknown or its arguments wrong."""
    parse = ARGUMENTS.get(command.name)
    if parse is None:
        detail = f"unknown command {command.name}; this agent knows {sorted(ARGUMENTS)}"
        return Refused(Refusal.UNKNOWN_COMMAND, detail, command.id, command.name, authentic=True)
    parsed = parse(command.args)
    if isinstance(parsed, str):
        return Refused(Refusal.BAD_ARGS, f"{command.name}: {parsed}", command.id, command.name, authentic=True)
    return parsed


@dataclass(frozen=True, slots=True)
class LeftOut:
    """Part of a requested range that is not resent, and why: `pruned` (no longer kept), `not_made` (beyond the
    newest record) or `over_limit` (beyond `resend_max_records` in one command)."""

    first: int
    last: int
    why: str


@dataclass(frozen=True, slots=True)
class ResendPlan:
    resend: tuple[int, int] | None
    left_out: tuple[LeftOut, ...]


def plan_resend(wanted: ResendArgs, *, oldest_kept: int | None, head: int, max_records: int) -> ResendPlan:
    """Which part of `wanted` the outbox can send again. Kept records are one contiguous run, oldest_kept..head
    (pruning removes from the bottom), or none at all (oldest_kept None)."""
    left_out: list[LeftOut] = []
    low = max(wanted.first, oldest_kept if oldest_kept is not None else head + 1)
    high = min(wanted.last, head)
    if wanted.first < low:
        left_out.append(LeftOut(wanted.first, min(wanted.last, low - 1), "pruned"))
    resend = None
    if low <= high:
        capped = min(high, low + max_records - 1)
        resend = (low, capped)
        if capped < high:
            left_out.append(LeftOut(capped + 1, high, "over_limit"))
    if wanted.last > head:
        left_out.append(LeftOut(max(wanted.first, head + 1), wanted.last, "not_made"))
    return ResendPlan(resend, tuple(left_out))
