"""The chain anchor on the box's worst day: a full disk at start is a fault systemd retries (exit 1), not a
refusal (exit 2); an anchor with wrong types or numbers no record can carry is refused as damaged, naming the field
and `station-agent recover --after-seq`, never "delete it"; recover refuses numbers out of range and refuses to run
while the agent holds the outbox."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from station_rig import StationRig
from support.waiting import wait_until

from agent.cli import main as cli_main
from agent.ledger.anchor import MAX_SEQ, AnchorError, anchor_path, load_anchor
from simulators.broker import MosquittoBroker

SOUND = {
    "format": 1,
    "station": "S-1",
    "seq": 659,
    "digest": "c6cd6a60e8bae92409baa0a8ab030fe439ba152786f232338c66e7aab613e85b",
    "ts_ms": 1796669905336,
    "acked_upto": 659,
    "reserved_upto": 4755,
    "kid": "847917eb531e2105",
    "reset_reason": None,
    "set_aside": None,
}


class TestLoadAnchor:
    def test_a_sound_anchor_loads(self, tmp_path: Path) -> None:
        """The reference anchor (as an agent writes it) loads with its numbers."""
        path = tmp_path / "chain-anchor.json"
        path.write_text(json.dumps(SOUND))
        anchor = load_anchor(path)
        assert anchor is not None and (anchor.seq, anchor.reserved_upto) == (659, 4755)

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"seq": True, "acked_upto": False}, "seq"),
            ({"seq": 1.5}, "seq"),
            ({"seq": 10**29, "reserved_upto": 10**30, "acked_upto": 0}, "seq"),
            ({"reserved_upto": 2**53}, "reserved_upto"),
            ({"acked_upto": -5, "seq": 0}, "acked_upto"),
            ({"digest": ["x"]}, "digest"),
            ({"ts_ms": "now"}, "ts_ms"),
            ({"reset_reason": "whim"}, "reset_reason"),
            ({"kid": 7}, "kid"),
        ],
    )
    def test_wrong_types_and_out_of_range_numbers_are_damage_naming_the_field(
        self, tmp_path: Path, changes: dict[str, object], field: str
    ) -> None:
        """A bool is not a seq, nor a float, nor a number past MAX_SEQ: refused as damaged, naming the field and
        the recover command, never telling the installer to delete the anchor."""
        path = tmp_path / "chain-anchor.json"
        path.write_text(json.dumps({**SOUND, **changes}))
        with pytest.raises(AnchorError, match=field) as refused:
            load_anchor(path)
        assert "recover --after-seq" in str(refused.value)
        assert "delete the anchor" not in str(refused.value)

    def test_the_ceiling_leaves_room_below_the_json_safe_limit(self) -> None:
        """MAX_SEQ keeps 2^32 seqs of headroom below 2^53 - 1, the highest integer a record may carry."""
        assert MAX_SEQ == 9_007_199_254_740_991 - 4_294_967_296


def _recover(rig: StationRig, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "recover", "--config", str(rig.config_path), *extra],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _tmpfs(where: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", size, "tmpfs", str(where)], capture_output=True, check=False)
    return done.returncode == 0


@pytest.mark.slow
class TestAgentProcess:
    def test_a_full_disk_under_the_anchor_exits_1_and_starts_once_space_is_freed(self, rig: StationRig) -> None:
        """The anchor's directory on a full filesystem (a real tmpfs, filled): the start exits 1, which systemd
        retries, saying the disk is full; with space freed the next start runs and stops cleanly."""
        rig.start_agent()
        rig.wait_platform_caught_up()
        assert rig.stop_agent() == 0
        keys = rig.workdir / "keys"
        saved = rig.workdir / "keys-saved"
        shutil.copytree(keys, saved)
        if not _tmpfs(keys, "size=64k"):
            pytest.skip("mounting a tmpfs needs root")
        try:
            for item in saved.iterdir():
                shutil.copy2(item, keys / item.name)
            filler = keys / "filler"
            with filler.open("wb", buffering=0) as handle, pytest.raises(OSError, match="No space left"):
                for _ in range(1000):
                    handle.write(b"\0" * 4096)
            rig.start_agent()
            assert rig.process is not None
            assert rig.process.wait(60) == 1
            log = rig.agent_log()
            assert "chain-anchor.json cannot be written: No space left on device" in log
            assert "full or failing" in log
            filler.unlink()
            rig.start_agent()
            rig.wait_platform_caught_up()
            assert rig.stop_agent() == 0
        finally:
            subprocess.run(["umount", str(keys)], check=True)

    def test_a_damaged_anchor_exits_2_and_recover_after_seq_writes_a_sound_one(self, rig: StationRig) -> None:
        """An anchor whose content is wrong exits 2 naming `recover --after-seq`; recover with the platform's
        highest seq writes a sound anchor, and the next start goes on above it with no fork at the platform."""
        rig.start_agent()
        rig.wait_platform_caught_up()
        assert rig.stop_agent() == 0
        held = rig.platform_report().highest_seq
        anchor_file = anchor_path(rig.workdir / "keys" / "device.key")
        fields = json.loads(anchor_file.read_text())
        anchor_file.write_text(json.dumps({**fields, "seq": True}))
        rig.start_agent()
        assert rig.process is not None
        assert rig.process.wait(60) == 2
        assert "recover --after-seq N" in rig.agent_log()
        assert _recover(rig).returncode == 2, "without --after-seq a damaged anchor is not guessed at"
        recovered = _recover(rig, "--after-seq", str(held))
        assert recovered.returncode == 0, recovered.stderr
        anchor = load_anchor(anchor_file)
        assert anchor is not None and anchor.reserved_upto == held
        rig.start_agent()
        rig.wait_platform_caught_up()
        assert rig.stop_agent() == 0
        report = rig.platform_report()
        assert report.forks == () and report.chain_breaks == ()
        assert [reason for _, reason, _, _ in report.resets] == ["outbox_refused"]

    def test_after_a_reset_status_waits_for_the_platform_to_confirm(
        self, tmp_path: Path, private_broker: MosquittoBroker
    ) -> None:
        """The lost range a chain_reset declares is not a confirmation: with no platform listening after a recover,
        the status never says all well, however long the agent runs (sampled over the whole confirmation window,
        twice ack_timeout_s: 1.5 s here, so 3 s)."""
        ack_timeout_s = 1.5
        with StationRig(tmp_path, private_broker, agent={"uplink": {"ack_timeout_s": ack_timeout_s}}) as rig:
            rig.start_agent()
            rig.wait_platform_caught_up()
            assert rig.stop_agent() == 0
            assert _recover(rig).returncode == 0
            rig.platform.stop()
            rig.start_agent()
            wait_until(lambda: rig.status().get("health") is not None, 30, "the first status")
            seen = set()
            deadline = time.monotonic() + 2 * ack_timeout_s
            while time.monotonic() < deadline:
                seen.add(rig.status().get("health"))
                time.sleep(0.2)  # the behaviour under test: what the status says, sampled over the window
            assert rig.stop_agent() == 0
        assert "ok" not in seen, seen

    def test_recover_refuses_while_the_agent_runs_and_bounds_after_seq(self, rig: StationRig) -> None:
        """While the agent runs, recover moves nothing and says to stop it first; stopped, recover refuses a
        negative --after-seq and one past MAX_SEQ, and a sane one sets the outbox aside."""
        outbox = rig.workdir / "outbox.sqlite"
        rig.start_agent()
        rig.wait_platform_caught_up()
        refused = _recover(rig)
        assert refused.returncode == 2
        assert "systemctl stop station-agent" in refused.stderr
        assert outbox.exists() and not list(rig.workdir.glob("outbox.sqlite.outbox_refused-*"))
        assert rig.stop_agent() == 0
        for wrong in ("-5", str(MAX_SEQ + 1), "9223372036854775000"):
            out_of_range = _recover(rig, "--after-seq", wrong)
            assert out_of_range.returncode == 2 and f"--after-seq {wrong}" in out_of_range.stderr
        assert outbox.exists()
        assert cli_main(["recover", "--config", str(rig.config_path), "--after-seq", "100"]) == 0
        assert not outbox.exists() and list(rig.workdir.glob("outbox.sqlite.outbox_refused-*"))
