"""``python -m deca_tune.bench speed``: the harness, on a fake authors' checkout (``--quick``)."""
from __future__ import annotations

import json
import sys

import pytest

from deca_tune.bench import speed
from tests.test_bench_authors import PATCHED_LOG, _fake_checkout, _fake_data


def test_authors_epoch_seconds_from_the_markers():
    assert speed.authors_epoch_seconds(PATCHED_LOG) == [3.0, 3.0, 3.0]  # main epochs only
    assert speed.authors_epoch_seconds("no markers") == []


def test_quick_run_side_by_side_with_a_fake_authors_checkout(tmp_path, shared_data):
    src = _fake_checkout(tmp_path / "src")
    data = _fake_data(tmp_path / "data")
    out = tmp_path / "speed.json"
    assert speed.main(["--quick", "--authors", str(src), "--authors-python", sys.executable,
                       "--authors-data", str(data), "--data-root", str(shared_data), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    (row,) = report["rows"]
    assert (row["backbone"], row["method"]) == ("gmf", "normal") and report["dataset"] == "ml-100k-paper"
    # the fake prints epochs at t = 100 and 102 and ends at 106: the first epoch is the warm-up
    assert row["authors_epoch_s"] == pytest.approx(4.0)
    assert row["epoch_s"] > 0 and row["eval_all_s"] > 0 and row["peak_mem_mb"] > 100
    assert report["load_before"] and report["load_after"]
    assert (src / "main.py").read_text().count("deca_tune patch") == 0  # the checkout is untouched
