"""The report's ``run_cost`` table: wall time per run of the driver, slot use and disk, read from
a manifest written by the search's own functions (``deca_tune/search/manifest.py``)."""
from __future__ import annotations

import pandas as pd
import pytest

from analysis.experiment import load_experiment
from analysis.report import build_report
from analysis.run_cost import run_cost_table
from deca_tune.search import manifest as mf
from helpers_analysis import rec_metrics, rec_runs, write_experiment


def _two_session_manifest() -> tuple[dict, dict]:
    """Run 1 interrupted by SIGTERM after unit a's search; run 2 (a resume) finishes a and b.
    Returns the manifest and the slot use recorded at the end of run 1."""
    m = {"created": "2026-12-04T23:19:50+00:00", "git": {"commit": "a" * 40, "dirty": False},
         "resources": {"concurrency": 2}, "runs": [], "timing": {}, "wall_seconds": 0.0, "finished": None}
    first = mf.start_run(m, ["--config", "experiments/table2.yaml"])
    mf.add_seconds(m, "a", 1, "search", 60.0)
    m["timing"]["a"]["search_trial_seconds"] = 110.0  # set when a unit's phase ends
    mf.finish_run(m, first, 100.0, "interrupted", 143)
    interrupted = dict(m["slot_use"])
    second = mf.start_run(m, ["--resume", "--name", "x"])
    mf.add_seconds(m, "a", 2, "seed", 40.0)
    mf.add_seconds(m, "b", 2, "search", 30.0)
    mf.add_seconds(m, "b", 2, "seed", 20.0)
    m["timing"]["a"]["seed_trial_seconds"] = 70.0
    m["timing"]["b"].update(search_trial_seconds=50.0, seed_trial_seconds=30.0)
    m["finished"] = "2026-12-05T09:00:00+00:00"
    mf.finish_run(m, second, 160.0, "finished", 0)
    m["disk"] = {"peak_bytes": 3_840_000_000, "final_bytes": 2_880_000_000, "freed_bytes": 27_100_000_000,
                 "keep_checkpoints": "best"}
    return m, interrupted


def test_an_interrupted_run_records_its_slot_use() -> None:
    """A record resumed across sessions has slot use after every run, not only the last one."""
    m, first = _two_session_manifest()
    assert first["slots"] == 2 and first["wall_seconds"] == pytest.approx(100.0)
    assert first["trial_seconds"] == pytest.approx(110.0)
    assert first["ratio"] == pytest.approx(100.0 / 55.0)
    use = m["slot_use"]
    assert use["trial_seconds"] == pytest.approx(110 + 70 + 50 + 30)
    assert use["wall_seconds"] == pytest.approx(260.0)
    assert use["ratio"] == pytest.approx(260.0 / (260.0 / 2))


def test_run_cost_table_per_run_and_whole(tmp_path) -> None:
    m, _ = _two_session_manifest()
    runs = rec_runs({("gmf", "normal"): rec_metrics(0.06, 0.18, 0.04, 0.08)})
    exp = load_experiment(write_experiment(tmp_path / "exp", runs=runs, manifest=m))
    table = run_cost_table(exp)
    assert table is not None and table.rows == ["run 1", "run 2", "all runs"]
    cell = table.data.set_index(["row", "column"])["value"]
    assert cell[("run 1", "outcome")] == "interrupted (143)"
    assert cell[("run 2", "outcome")] == "finished"
    assert cell[("run 1", "wall (s)")] == "100" and cell[("run 2", "wall (s)")] == "160"
    assert cell[("run 1", "units worked on")] == "1" and cell[("run 2", "units worked on")] == "2"
    assert cell[("all runs", "wall (s)")] == "260"
    assert cell[("all runs", "trial seconds")] == "260"
    assert cell[("all runs", "wall / packed")].startswith("2.00 ")
    assert cell[("all runs", "outcome")] == "complete"
    assert cell[("all runs", "disk peak")] == "3.84 GB" and cell[("all runs", "disk final")] == "2.88 GB"
    assert cell[("all runs", "code")] == "aaaaaaa (created)"
    assert any("27.10 GB" in n for n in table.notes)
    md = table.to_markdown()
    started = m["runs"][0]["started"][:16].replace("T", " ")
    assert f"| all runs | {started} | 2026-12-05 09:00 | complete | 260 | 2 | aaaaaaa (created) | 260 | 2 |" in md


def test_run_cost_without_slot_use_or_runs(tmp_path) -> None:
    """An older record: runs without slot use say so; a folder without runs gets no table."""
    runs = rec_runs({("gmf", "normal"): rec_metrics(0.06, 0.18, 0.04, 0.08)})
    old = {"runs": [{"run": 1, "started": "2026-12-04T23:19:50+00:00", "finished": None,
                     "wall_seconds": None, "outcome": "running", "exit_code": None}]}
    exp = load_experiment(write_experiment(tmp_path / "old", runs=runs, manifest=old))
    table = run_cost_table(exp)
    assert table is not None
    cell = table.data.set_index(["row", "column"])["value"]
    assert cell[("run 1", "finished")] == "(not ended)" and cell[("run 1", "code")] == "not recorded"
    assert cell[("all runs", "outcome")] == "incomplete" and cell[("all runs", "wall / packed")] == ""
    assert any("slot use not recorded" in n for n in table.notes)
    bare = load_experiment(write_experiment(tmp_path / "bare", runs=runs, manifest={}))
    assert run_cost_table(bare) is None


def test_report_writes_the_run_cost_table(tmp_path) -> None:
    runs = rec_runs({("gmf", "normal"): rec_metrics(0.06, 0.18, 0.04, 0.08)})
    root = write_experiment(tmp_path / "exp", runs=runs, manifest=_two_session_manifest()[0])
    report = build_report(root, tmp_path / "report", formats=("md", "csv"), dataset_table=False,
                          published=False)
    csv = pd.read_csv(tmp_path / "report" / "tables" / "run_cost.csv")
    assert set(csv["row"]) == {"run 1", "run 2", "all runs"}
    assert "**run_cost**" in report.markdown.read_text()
