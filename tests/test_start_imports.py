"""What the agent process loads before it knows its config: only what every station needs.

The long-running process's memory is mostly its imports (docs/design.md, "Memory"), so the optional parts
(the HJ 212 uplink, the command desk, the web page, the SM2 binding) load only when configured, the
validation library stays in the process that checks the config, and the lab (the simulators, the demo, the
benchmarks: lab/, a distribution of its own) never reaches the gateway: not the agent process, and not the
`station-agent` command either, which imports the demo only when asked to run it. The readers of the status
snapshot (`station-agent status`, the web page) load neither uplink nor paho: the snapshot types are modules
of their own.
Each check runs in a fresh interpreter, since this test process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

THE_LAB = ("simulators", "station_lab", "bench")
"""The lab distribution's packages (lab/pyproject.toml)."""
NOT_IN_THE_COMMAND = ("structlog", *THE_LAB)
"""The command line validates configs (pydantic, its edge: docs/design.md, "Configuration"), but never logs
through structlog nor loads the lab."""
NOT_AT_START = (
    "agent.uplink.hj212",
    "agent.commands.desk",
    "agent.web",
    "agent.ledger.sm2",
    "pydantic",
    *NOT_IN_THE_COMMAND,
)

BEFORE_THE_EXEC = ("agent.daemon", "paho", "agent.status", "agent.tools.selftest")
"""What `station-agent run` does not load before it execs into the agent process, where it would be loaded again:
the running agent's parts, the MQTT client, the status readers (`station-agent status`) and the self-test."""

READERS_NEVER_LOAD = ("paho", "agent.uplink.session", "agent.uplink.hj212")
"""What a reader of the status snapshot does without: the MQTT client and both uplinks."""


def loaded_after(statement: str, names: tuple[str, ...]) -> dict[str, bool]:
    """Which of `names` are in sys.modules of a fresh interpreter after running `statement`."""
    probe = f"import json, sys\n{statement}\nprint(json.dumps({{n: n in sys.modules for n in {list(names)!r}}}))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    loaded: dict[str, bool] = json.loads(result.stdout)
    return loaded


def test_the_agent_process_starts_without_optional_parts_validation_or_simulators() -> None:
    """`import agent.process` loads none of HJ 212, commands, web, SM2, pydantic, structlog or the lab."""
    loaded = loaded_after("import agent.process", NOT_AT_START)
    assert [name for name, present in loaded.items() if present] == []


def test_the_command_line_loads_neither_structlog_nor_the_lab() -> None:
    """`import agent.cli` (every `station-agent` command, `run` included) loads no structlog, simulator, demo
    or benchmark module: the demo is imported by its own command only."""
    loaded = loaded_after("import agent.cli", NOT_IN_THE_COMMAND)
    assert [name for name, present in loaded.items() if present] == []


def test_the_command_line_leaves_the_running_agent_to_the_process_it_execs() -> None:
    """`import agent.cli` (the first stage of `station-agent run`) loads none of the agent's running parts, paho,
    the status readers or the self-test: the agent process imports what it runs, once."""
    loaded = loaded_after("import agent.cli", BEFORE_THE_EXEC)
    assert [name for name, present in loaded.items() if present] == []


def test_the_status_readers_load_no_uplink() -> None:
    """`import agent.status, agent.health, agent.status_text, agent.web.app` (what `station-agent status` and the
    web page read the snapshot with) loads neither paho nor the uplinks: the snapshot types are modules of their
    own."""
    loaded = loaded_after("import agent.status, agent.health, agent.status_text, agent.web.app", READERS_NEVER_LOAD)
    assert [name for name, present in loaded.items() if present] == []


@pytest.mark.parametrize(
    "module", ["agent.uplink.hj212", "agent.ledger.sm2", "simulators", "station_lab.demo", "paho.mqtt.client"]
)
def test_the_probe_sees_a_module_once_it_is_imported(module: str) -> None:
    """The probe is not blind: a module imported on purpose shows as loaded."""
    assert loaded_after(f"import agent.process, {module}", (module,)) == {module: True}


def test_an_sm2_key_loads_the_sm2_binding_when_it_is_used() -> None:
    """Making an SM2 key still works from a fresh start: the binding loads on demand, for SM2 only."""
    statement = (
        "from agent.ledger.keys import KeySpec\n"
        "from agent.ledger.suites import Suite\n"
        "ed = KeySpec().generate()\n"
        "assert 'agent.ledger.sm2' not in sys.modules\n"
        "key = KeySpec(Suite.SM2).generate()\n"
        "assert key.verify(key.sign(b'x'), b'x') and key.kid.startswith('sm2-')"
    )
    assert loaded_after(statement, ("agent.ledger.sm2",)) == {"agent.ledger.sm2": True}
