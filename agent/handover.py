"""The hand-over from `station-agent run` to the agent process: the checked setup crosses an exec in a memfd.

`station-agent run` validates the config and profiles (loading the validation library), then replaces itself
with `python -m agent.process` (exec, same PID, so systemd sees one service process), which reads the setup
back. This module is both ends and nothing else, so that the command line, which imports it, loads none of the
running agent: whatever it imported before the exec would be imported again after it, for nothing (the
agent's parts, the MQTT client: about a tenth of the CPU of a start).
"""

from __future__ import annotations

import os
import pickle
import sys

from agent.wiring import Setup


def exec_agent(setup: Setup) -> None:
    """Become the agent process (never returns): the setup travels in a memfd inherited across exec. glibc is
    told to keep two malloc arenas instead of one per thread (MALLOC_ARENA_MAX): on a handful of threads that
    each allocate a little, one per thread is a megabyte or two of resident memory for nothing."""
    descriptor = os.memfd_create("station-agent-setup", 0)
    os.write(descriptor, pickle.dumps(setup, protocol=pickle.HIGHEST_PROTOCOL))
    os.lseek(descriptor, 0, os.SEEK_SET)
    os.set_inheritable(descriptor, True)
    sys.stdout.flush()
    sys.stderr.flush()
    environment = {**os.environ, "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")}
    os.execve(sys.executable, [sys.executable, "-m", "agent.process", "--setup-fd", str(descriptor)], environment)


def read_setup(descriptor: int) -> Setup:
    """The setup `exec_agent` handed over in `descriptor`, which is closed after reading."""
    with os.fdopen(descriptor, "rb") as handle:
        setup = pickle.load(handle)
    if not isinstance(setup, Setup):
        raise TypeError(f"fd {descriptor} does not hold an agent setup")
    return setup
