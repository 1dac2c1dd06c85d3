"""``summary/*.csv`` are written whole or not at all: ``--resume`` reads them back to decide which
units are finished, so a driver killed while writing must leave the previous files intact."""
from __future__ import annotations

import pandas as pd
import pytest

from deca_tune.search.summary import write_summary


def _rows(n: int) -> tuple[list[dict], list[dict], list[dict]]:
    unit = {"task": "rec", "dataset": "synthetic", "backbone": "gmf", "method": "normal"}
    search = [{**unit, "trial_id": f"t{i}", "score": 0.1 * i} for i in range(n)]
    runs = [{**unit, "seed": i, "status": "ok", "score": 0.1, "test/recall@20": 0.2} for i in range(n)]
    curves = [{**unit, "seed": 0, "epoch": i, "loss": n + 1.0 / (i + 1)} for i in range(n)]
    return search, runs, curves


def test_a_write_cut_short_leaves_the_previous_summary(tmp_path, monkeypatch):
    write_summary(tmp_path, *_rows(3), expected_seeds=[0, 1, 2])
    before = {p.name: p.read_text() for p in (tmp_path / "summary").glob("*.csv")}
    assert {"search_trials.csv", "seed_runs.csv", "curves.csv", "summary.csv"} <= set(before)

    real = pd.DataFrame.to_csv

    def killed_midway(self, path, *args, **kwargs):
        if "curves" in str(path):  # half of the file reaches the disk, then the process dies
            real(self.iloc[: len(self) // 2], path, *args, **kwargs)
            raise KeyboardInterrupt
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_csv", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        write_summary(tmp_path, *_rows(6), expected_seeds=[0, 1, 2])
    monkeypatch.undo()
    assert (tmp_path / "summary" / "curves.csv").read_text() == before["curves.csv"]
    assert len(pd.read_csv(tmp_path / "summary" / "curves.csv")) == 3
    # the files written before the cut are the new ones, each whole
    assert len(pd.read_csv(tmp_path / "summary" / "search_trials.csv")) == 6
