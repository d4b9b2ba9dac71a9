"""What the agent process loads before it knows its config: only what every station needs.

The long-running process's memory is mostly its imports (docs/design.md, "Memory"), so the optional parts
(the HJ 212 uplink, the command desk, the web page, the SM2 binding) load only when configured, `cryptography`
(an OpenSSL of its own, about 10 MB) not at all: both suites sign through the system's libcrypto, and only SM4
encryption, for an HJ 212 uplink that uses it, imports it at its first use. The
validation library stays in the process that checks the config, and the lab (the simulators, the demo, the
benchmarks: lab/, a distribution of its own) never reaches the gateway: not the agent process, and not the
`station-agent` command either, which imports the demo only when asked to run it. The readers of the status
snapshot (`station-agent status`, the web page) load neither uplink nor paho: the snapshot types are modules
of their own.
Each check runs in a fresh interpreter, since this test process has imported everything already.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from station_rig import StationRig

from agent.config_validation import load_config
from agent.wiring import Setup
from drivers.hj212.profile_validation import load_city_profile

CONFIG = Path(__file__).resolve().parent.parent / "config"

THE_LAB = ("simulators", "station_lab", "bench")
"""The lab distribution's packages (lab/pyproject.toml)."""
NOT_IN_THE_COMMAND = ("structlog", *THE_LAB)
"""The command line validates configs (pydantic, its edge: docs/design.md, "Configuration"), but never logs
through structlog nor loads the lab."""
NOT_AT_START = (
    "agent.uplink.hj212",
    "drivers.hj212",
    "agent.commands.desk",
    "agent.commands.inbox",
    "agent.web",
    "agent.ledger.sm2",
    "cryptography",
    "pydantic",
    *NOT_IN_THE_COMMAND,
)

BEFORE_THE_EXEC = (
    "agent.daemon",
    "paho",
    "agent.status",
    "agent.tools.selftest",
    "agent.tools.provision",
    "agent.tools.scan",
    "cryptography",
)
"""What `station-agent run` does not load before it execs into the agent process, where it would be loaded again:
the running agent's parts, the MQTT client, the status readers (`station-agent status`) and the self-test; nor
the installer's tools (`provision`, whose TLS request loads `cryptography`, and `scan`), whose commands' flags
are modules of their own."""

THE_STATION_RULES = (
    "agent.station.daybooks",
    "agent.station.leak",
    "agent.station.pressure",
    "agent.station.vapour",
    "agent.station.nozzle",
    "agent.station.tank",
    "agent.lifecycle",
    "agent.contract.records",
    "agent.contract.evidence",
    "agent.tools.recover",
)
"""What checking a config does not load: the rules whose sections (`[daily]`, `[leak]`, `[pressure]`, `[vapour]`,
`[heartbeat]`, `[clock]`) it reads, nor the nozzles and tanks whose bindings the setup carries (the sections and
the bindings are modules of their own), nor the record and evidence types, which `recover` (a module of its own,
loaded with its command) reads through the outbox's opening."""

READERS_NEVER_LOAD = ("paho", "agent.uplink.session", "agent.uplink.hj212")
"""What a reader of the status snapshot does without: the MQTT client and both uplinks."""


def loaded_after(statement: str, names: tuple[str, ...]) -> dict[str, bool]:
    """Which of `names` are in sys.modules of a fresh interpreter after running `statement`."""
    probe = f"import json, sys\n{statement}\nprint(json.dumps({{n: n in sys.modules for n in {list(names)!r}}}))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    loaded: dict[str, bool] = json.loads(result.stdout)
    return loaded


def test_the_agent_process_starts_without_optional_parts_validation_or_simulators() -> None:
    """`import agent.process` loads none of HJ 212, commands, web, SM2, cryptography, pydantic, structlog or the
    lab."""
    loaded = loaded_after("import agent.process", NOT_AT_START)
    assert [name for name, present in loaded.items() if present] == []


def test_a_setup_with_a_city_profile_reads_back_in_a_fresh_agent_process(tmp_path: Path) -> None:
    """A setup holding an HJ 212 city profile, as `station-agent run` hands it over, reads back whole in a fresh
    interpreter that has imported only the agent process: unpickling it loads the profile's module, which the
    process itself does not import."""
    profile = load_city_profile(CONFIG / "hj212" / "chongqing.toml")
    setup = Setup(load_config(CONFIG / "station.example.toml"), {}, "0", (), profile)
    handed_over = tmp_path / "setup.pickle"
    handed_over.write_bytes(pickle.dumps(setup, protocol=pickle.HIGHEST_PROTOCOL))
    statement = (
        "import pickle\n"
        "import agent.process\n"
        "assert 'drivers.hj212.profile' not in sys.modules\n"
        f"setup = pickle.loads(open({str(handed_over)!r}, 'rb').read())\n"
        f"assert setup.hj212_profile.name == {profile.name!r}\n"
        f"assert len(setup.hj212_profile.records) == {len(profile.records)}"
    )
    assert loaded_after(statement, ("drivers.hj212.profile",)) == {"drivers.hj212.profile": True}


def test_the_command_line_loads_neither_structlog_nor_the_lab() -> None:
    """`import agent.cli` (every `station-agent` command, `run` included) loads no structlog, simulator, demo
    or benchmark module: the demo is imported by its own command only."""
    loaded = loaded_after("import agent.cli", NOT_IN_THE_COMMAND)
    assert [name for name, present in loaded.items() if present] == []


def test_the_command_line_leaves_the_running_agent_to_the_process_it_execs() -> None:
    """`import agent.cli` (the first stage of `station-agent run`) loads none of the agent's running parts, paho,
    the status readers, the self-test or the installer's tools: the agent process imports what it runs, once."""
    loaded = loaded_after("import agent.cli", BEFORE_THE_EXEC)
    assert [name for name, present in loaded.items() if present] == []


def test_checking_a_config_loads_none_of_the_station_rules() -> None:
    """`station-agent run`'s check (`import agent.cli`, then `prepare` of the example station, nozzles, tanks and
    every rule section in it) loads none of the rule modules, nozzle or tank trackers it configures, nor the record
    and evidence types."""
    statement = (
        f"import agent.cli\nfrom agent.setup import prepare\nprepare(Path({str(CONFIG / 'station.example.toml')!r}))"
    )
    loaded = loaded_after(f"from pathlib import Path\n{statement}", THE_STATION_RULES)
    assert [name for name, present in loaded.items() if present] == []


def test_the_status_readers_load_no_uplink() -> None:
    """`import agent.status, agent.health, agent.status_text, agent.web.app` (what `station-agent status` and the
    web page read the snapshot with) loads neither paho nor the uplinks: the snapshot types are modules of their
    own."""
    loaded = loaded_after("import agent.status, agent.health, agent.status_text, agent.web.app", READERS_NEVER_LOAD)
    assert [name for name, present in loaded.items() if present] == []


@pytest.mark.parametrize(
    "module",
    [
        "agent.uplink.hj212",
        "agent.ledger.sm2",
        "agent.station.leak",
        "simulators",
        "station_lab.demo",
        "paho.mqtt.client",
        "cryptography",
    ],
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


def test_an_ed25519_key_signs_verifies_and_is_stored_without_cryptography(tmp_path: Path) -> None:
    """Making, writing, loading and using an Ed25519 device key, and reading a platform's public key, from a fresh
    start: none of it loads `cryptography`."""
    statement = (
        "from pathlib import Path\n"
        "from agent.ledger.keys import generate_key_file, load_key_file\n"
        "from agent.ledger.suites import PublicKey, record_digest\n"
        f"made = generate_key_file(Path({str(tmp_path / 'device.key')!r}))\n"
        f"key = load_key_file(Path({str(tmp_path / 'device.key')!r}))\n"
        "assert key.kid == made.kid and key.verify(key.sign(b'x'), b'x')\n"
        "assert PublicKey.from_pem(key.public_pem().encode()) == key.public\n"
        "assert len(record_digest('sm2-0123456789abcdef', b'x')) == 64"
    )
    assert loaded_after(statement, ("cryptography",)) == {"cryptography": False}


def test_an_hj212_uplink_loads_cryptography_only_when_it_encrypts() -> None:
    """The HJ 212 uplink and its frame codec load without `cryptography`; the first SM4 encryption loads it."""
    statement = (
        "import agent.uplink.hj212\n"
        "from drivers.hj212.sm4 import Sm4Key, encrypt_cp\n"
        "assert 'cryptography' not in sys.modules\n"
        "encrypt_cp(b'0' * 16, Sm4Key(bytes(16)))"
    )
    assert loaded_after(statement, ("cryptography",)) == {"cryptography": True}


def test_a_running_station_has_no_file_of_cryptography_mapped(rig: StationRig) -> None:
    """The agent process of a running station (Ed25519 key, MQTT uplink, records signed and delivered) maps no
    file of `cryptography` (its Rust extension and its OpenSSL), while this test process, which imported it,
    does: the probe is not blind."""
    rig.start_agent()
    rig.wait_platform_caught_up(60)
    assert rig.process is not None
    maps = Path(f"/proc/{rig.process.pid}/maps").read_text()
    assert "/cryptography/" not in maps and "libcrypto.so.3" in maps
    assert "/cryptography/" in Path("/proc/self/maps").read_text()
