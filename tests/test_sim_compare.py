"""`station-sim compare`: the simulator's sales against the platform's transactions, from the two files a CI has
(the simulator's report and the receiver's database, written here through the receiver's own store)."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_platform_signer import ZEROS, TinySigner, canonical, sha256_hex

from simulators import cli
from simulators.compare import LISTED_AT_MOST, compare_sales
from simulators.platform.store import Store
from simulators.platform.verify import verify_message

STATION = "ST-0001"


def transaction(nozzle: str, txn_no: int, volume_ml: int) -> tuple[str, dict[str, Any]]:
    return "transaction", {"nozzle": nozzle, "txn_no": txn_no, "volume_ml": volume_ml}


def platform_db(path: Path, signer: TinySigner, records: list[tuple[str, dict[str, Any]]]) -> Path:
    """A platform database holding `records` (type, body) as seq 1..N, stored by the receiver's store."""
    chain: list[dict[str, Any]] = []
    prev = ZEROS
    for seq, (type_, body) in enumerate(records, start=1):
        chain.append(signer.record(seq, prev, body, type_))
        prev = sha256_hex(canonical(chain[-1]))
    with Store(path) as store:
        store.ingest(STATION, verify_message(signer.message(chain), STATION, {signer.kid: signer.platform_key()}))
    return path


def sim_report(path: Path, sales: dict[str, list[tuple[int, int]]]) -> Path:
    """A report as `station-sim run` writes it: [txn_no, volume_ml, real_volume_ml, vapour_ml] per sale."""
    nozzles = {nozzle: {"sales": [[txn, ml, ml + 3, ml] for txn, ml in rows]} for nozzle, rows in sales.items()}
    path.write_text(json.dumps({"sim_s": 100.0, "nozzles": nozzles, "tanks": {}, "faults": []}))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = cli.main(["compare", *argv])
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1, out
    result: dict[str, Any] = json.loads(out[0])
    return code, result


@pytest.fixture
def signer() -> TinySigner:
    return TinySigner(STATION)


def test_only_sales_within_a_nozzles_recorded_window_count() -> None:
    """Sales before the first and after the last recorded one are not compared; a gap inside is missing; a
    nozzle that sold with nothing recorded is named, not failed."""
    simulated = {"D01-N1": {1: 100, 2: 200, 3: 300, 4: 400, 5: 500}, "D01-N2": {7: 70}}
    recorded = {"D01-N1": {2: 200, 4: 401}}
    result = compare_sales(simulated, recorded)
    assert (result.matched, result.missing, result.wrong_volume) == (
        1,
        ("D01-N1#3",),
        ("D01-N1#4: platform 401 mL, controller 400 mL",),
    )
    assert result.nozzles_without_records == ("D01-N2",)
    assert not result.ok
    assert not compare_sales(simulated, {}).ok, "nothing compared is not a match"


def test_all_sales_there_exits_0_with_counts_by_type(
    tmp_path: Path, signer: TinySigner, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every sale in the window at the platform with the controller's volume: exit 0, records counted by type."""
    db = platform_db(
        tmp_path / "platform.sqlite",
        signer,
        [
            ("heartbeat", {"n": 1}),
            transaction("D01-N1", 11, 10_010),
            transaction("D01-N1", 12, 20_000),
            transaction("D02-N1", 5, 5_550),
            ("heartbeat", {"n": 2}),
        ],
    )
    report = sim_report(
        tmp_path / "sim-report.json", {"D01-N1": [(10, 1), (11, 10_010), (12, 20_000)], "D02-N1": [(5, 5_550)]}
    )
    code, result = run(capsys, "--sim-report", str(report), "--db", str(db), "--station", STATION)
    assert code == 0 and result["ok"] is True
    assert result["sales"]["matched"] == 3 and result["sales"]["missing_count"] == 0
    assert result["platform"]["by_type"] == {"heartbeat": 2, "transaction": 3}
    assert result["simulated"] == {"nozzles": 2, "sales": 4}
    assert "audit" not in result


def test_missing_and_wrong_sales_exit_1_and_the_lists_are_bounded(
    tmp_path: Path, signer: TinySigner, capsys: pytest.CaptureFixture[str]
) -> None:
    """Thirty sales lost between two recorded ones and one volume changed: exit 1, the first LISTED_AT_MOST
    missing named and all thirty counted."""
    db = platform_db(
        tmp_path / "platform.sqlite",
        signer,
        [transaction("D01-N1", 1, 100), transaction("D01-N1", 32, 3200), transaction("D01-N1", 33, 3299)],
    )
    sales = [(txn, txn * 100) for txn in range(1, 34)]
    report = sim_report(tmp_path / "sim-report.json", {"D01-N1": sales})
    code, result = run(capsys, "--sim-report", str(report), "--db", str(db), "--station", STATION)
    assert code == 1 and result["ok"] is False
    assert result["sales"]["missing_count"] == 30
    assert result["sales"]["missing"] == [f"D01-N1#{txn}" for txn in range(2, 2 + LISTED_AT_MOST)]
    assert result["sales"]["wrong_volume"] == ["D01-N1#33: platform 3299 mL, controller 3300 mL"]
    assert result["sales"]["matched"] == 2


def test_with_a_key_a_tampered_database_fails(
    tmp_path: Path, signer: TinySigner, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --key the stored signatures are checked again: a record whose signature was swapped in the
    database makes the comparison fail (exit 1) though every sale matches."""
    key = tmp_path / "st1.pem"
    key.write_bytes(signer.pem())
    db = platform_db(
        tmp_path / "platform.sqlite", signer, [transaction("D01-N1", 1, 100), transaction("D01-N1", 2, 200)]
    )
    report = sim_report(tmp_path / "sim-report.json", {"D01-N1": [(1, 100), (2, 200)]})
    argv = ["--sim-report", str(report), "--db", str(db), "--station", STATION, "--key", f"{STATION}={key}"]
    code, result = run(capsys, *argv)
    assert code == 0 and result["audit"]["ok"] is True
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE records SET sig = (SELECT sig FROM records WHERE seq = 2) WHERE seq = 1")
    raw.close()
    done = subprocess.run(
        [sys.executable, "-m", "simulators.cli", "compare", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and "platform.audit_rejected" in done.stderr, "logs go to stderr, not stdout"
    (line,) = done.stdout.splitlines()
    result = json.loads(line)
    assert result["sales"]["matched"] == 2
    assert result["audit"]["ok"] is False and result["audit"]["bad_signatures"] == 1


def test_unusable_inputs_exit_2_with_a_json_error(
    tmp_path: Path, signer: TinySigner, capsys: pytest.CaptureFixture[str]
) -> None:
    """A report that is not one, a database that does not exist, a key for another station: exit 2, named."""
    db = platform_db(tmp_path / "platform.sqlite", signer, [transaction("D01-N1", 1, 100)])
    report = tmp_path / "sim-report.json"
    report.write_text(json.dumps({"nozzles": {"D01-N1": {"sales": [["1", 100]]}}}))
    code, result = run(capsys, "--sim-report", str(report), "--db", str(db), "--station", STATION)
    assert code == 2 and "nozzles.D01-N1.sales[0]" in result["error"]
    good = sim_report(tmp_path / "good.json", {"D01-N1": [(1, 100)]})
    code, result = run(capsys, "--sim-report", str(good), "--db", str(tmp_path / "none.sqlite"), "--station", STATION)
    assert code == 2 and "none.sqlite" in result["error"]
    key = tmp_path / "other.pem"
    key.write_bytes(TinySigner("ST-0002").pem())
    argv = ["--sim-report", str(good), "--db", str(db), "--station", STATION, "--key", f"ST-0002={key}"]
    code, result = run(capsys, *argv)
    assert code == 2 and f"--key {STATION}=PUB.pem" in result["error"]


def test_platform_readme_documents_every_table_and_column(tmp_path: Path) -> None:
    """simulators/platform/README.md's database table names each table the store creates and all its columns."""
    readme = (Path(__file__).resolve().parent.parent / "lab" / "simulators" / "platform" / "README.md").read_text()
    section = readme.split("## The database", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = {
        re.findall(r"`(\w+)`", cells[1])[0]: set(re.findall(r"`(\w+)`", cells[2] + cells[3]))
        for cells in (row.split("|") for row in rows)
    }
    with Store(tmp_path / "p.sqlite"):
        pass
    with sqlite3.connect(tmp_path / "p.sqlite") as raw:
        tables = [name for (name,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        actual = {table: {row[1] for row in raw.execute(f"PRAGMA table_info({table})")} for table in tables}
        version = raw.execute("PRAGMA user_version").fetchone()[0]
    raw.close()
    assert documented == actual
    assert f"`PRAGMA user_version = {version}`" in section
