"""The fidelity benchmark (``python -m deca_tune.bench fidelity``): spec mapping, report, resume."""
from __future__ import annotations

import fcntl
import json
import math

import pytest

from deca_tune.bench import fidelity as FB
from deca_tune.bench.authors import AUTHORS_CONFIG

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_spec_maps_the_authors_settings():
    s = FB.our_spec("ml-100k", "neumf", "deca_p", 2, data_root="/d", pretrain_cache="/c")
    cfg = AUTHORS_CONFIG[("ml-100k", "neumf", "deca_p")]
    assert s["dataset"] == "ml-100k-paper" and s["protocol"] == "paper" and s["seed"] == 2
    assert s["max_epochs"] == cfg["epochs"] == 100 and s["l2"] == cfg["lambda0"]
    assert s["C1"] == cfg["C_1"] and s["C0"] == cfg["C_2"] and s["alpha"] == cfg["alpha"]  # C_1 = DP, C_2 = DN
    assert s["early_stop"] == "authors" and s["early_stop_every"] == 500 and s["restore_best"] is False
    assert s["pretrain_overrides"] == {"early_stop": "authors"}  # their f' pre-training always early-stops
    n = FB.our_spec("ml-100k", "cdae", "normal", 0, data_root=None, pretrain_cache="off")
    assert n["early_stop"] is None and n["l2"] == 1.0 and n["max_epochs"] == 200 and "C0" not in n
    # Table 5 ablations take DeCA's / DeCA(p)'s settings of the cell
    a = FB.our_spec("modcloth", "gmf", "deca_p-dn", 0, data_root=None, pretrain_cache="off")
    assert a["method"] == "deca_p-dn" and a["C1"] == AUTHORS_CONFIG[("modcloth", "gmf", "deca_p")]["C_1"]
    v = FB.our_spec("ml-100k", "gmf", "deca_p", 1, data_root=None, pretrain_cache="off",
                    variant="authors-sampler+fprime-init")
    assert v["sampler"] == "uniform-unrejected" and v["pretrain_seed"] == 1


def test_cells_and_variants():
    all_cells = FB.cells([0, 1, 2])
    assert len(all_cells) == (4 * 3 + 2 * 3 + 4) * 3
    assert all_cells[-1][:2] == ("ml-100k", "lightgcn")  # the most expensive group last
    assert FB.cells([0], ["modcloth:gmf:deca-dp"]) == [("modcloth", "gmf", "deca-dp", 0)]
    assert not FB.applies("fix-cdae-eval", ("ml-100k", "gmf", "normal", 0))
    assert FB.applies("fprime-init", ("ml-100k", "gmf", "deca_p-dn", 0))
    assert not FB.applies("fprime-init", ("ml-100k", "gmf", "deca", 0))
    assert not FB.applies("authors-sampler", ("ml-100k", "cdae", "deca", 0))  # CDAE has no sampler


def test_pooled_distance():
    assert FB.pooled_distance([1.0, 3.0], [2.0, 4.0]) == pytest.approx(-1 / math.sqrt(2))
    assert FB.pooled_distance([1.0], [2.0, 3.0]) is None
    assert FB.pooled_distance([1.0, 1.0], [1.0, 1.0]) == 0.0


def _fake_authors(folder, cells, value=0.5):
    folder.mkdir(parents=True, exist_ok=True)
    for i, (d, b, m, s) in enumerate(cells):
        (folder / f"{FB.cell_name(d, b, m, s)}.json").write_text(json.dumps(
            {"recall@20": value + 0.01 * i, "ndcg@20": value / 2 + 0.01 * i, "seconds_per_epoch": 0.5,
             "epochs_run": 20}))


def test_quick_run_report_and_resume(tmp_path, capsys):
    ours, theirs, doc = tmp_path / "ours", tmp_path / "authors", tmp_path / "fidelity.md"
    only = ["ml-100k:gmf", "ml-100k:cdae:deca"]
    _fake_authors(theirs, FB.cells([0, 1], only))
    doc.write_text("# Fidelity\n\nhand-written notes\n\n" + FB.BEGIN + "\nold\n" + FB.END + "\n\ntail notes\n")
    dirs = ["--ours-results", str(ours), "--authors-results", str(theirs), "--doc", str(doc)]
    argv = ["--quick", "--only", *only, "--seeds", "0", "1", *dirs]
    assert FB.main(argv) == 0
    runs = sorted(p.name for p in ours.glob("*.json"))
    assert len(runs) == 8 and "ml-100k__cdae__deca__seed1.json" in runs
    r = json.loads((ours / "ml-100k__cdae__deca__seed0.json").read_text())
    assert r["row_batching"] is True and r["spec"]["restore_best"] is False
    text = doc.read_text()
    assert "hand-written notes" in text and "tail notes" in text and "\nold\n" not in text
    assert "| ml-100k | gmf | deca | 2 / 2 |" in text and "| ml-100k | cdae | deca | 2 / 2 |" in text
    # resumable: a rerun trains nothing
    capsys.readouterr()
    assert FB.main(argv) == 0
    assert "start ours" not in capsys.readouterr().out
    # a variant lands in its own folder and its own table
    assert FB.main(["--quick", "--only", "ml-100k:gmf:deca_p", "--seeds", "0", "--variants", "fprime-init",
                    *dirs]) == 0
    assert (ours / "variants" / "fprime-init" / "ml-100k__gmf__deca_p__seed0.json").exists()
    assert "fprime-init" in doc.read_text()


def test_authors_cells_wait_for_their_driver(tmp_path, capsys):
    theirs = tmp_path / "authors"
    theirs.mkdir()
    held = open(theirs / ".lock", "w")
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as their driver run_all.py does
    try:
        args = FB.parse_args(["--authors", str(tmp_path / "DeCA"), "--authors-results", str(theirs),
                              "--sides", "authors"])
        assert FB._run_authors_side(args, FB.cells([0], ["ml-100k:gmf:normal"]), theirs, [None]) == 0
        assert "is held" in capsys.readouterr().out
        assert not list(theirs.glob("*.json"))
    finally:
        held.close()
