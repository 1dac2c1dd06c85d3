"""``python -m deca_tune.bench images``: one JSON per finished run, a rerun skips them, the
experiment folders are what the report reads (last and selected epoch), a changed setting is an
error."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from deca_tune.bench import images

ARGS = ["--dataset", "synthetic-images", "--backbone", "mlp", "--epochs", "2", "--rates", "0.4", "0.2",
        "--noise-types", "symmetric", "pair", "--seeds", "0", "1", "--methods", "normal", "deca_p",
        "--valid-size", "40", "--set", "meta_per_class=3", "lr=0.05",
        'dataset_options={"n_train": 200, "n_test": 30, "image_size": 12}']


def test_resumable_runs_and_the_experiment_folders(tmp_path, one_torch_thread, monkeypatch):
    out = tmp_path / "bench"
    assert images.main([*ARGS, "--out", str(out)]) == 0
    runs = sorted(p.relative_to(out).as_posix() for p in (out / "runs").rglob("*.json"))
    assert len(runs) == 2 * 2 * 2 * 2 and "runs/pair/0.2/deca_p__seed1.json" in runs
    rec = json.loads((out / "runs/symmetric/0.4/deca_p__seed0.json").read_text())
    assert len(rec["curve"]) == 2 and rec["row"]["best_epoch"] in (1, 2)

    for kind in ("symmetric", "pair"):
        folder = out / kind
        seed_runs = pd.read_csv(folder / "summary" / "seed_runs.csv")
        curves = pd.read_csv(folder / "summary" / "curves.csv")
        for col in ("task", "dataset", "backbone", "method", "seed", "noise_rate", "noise_type",
                    "test_clean/accuracy", "test_clean_last/accuracy", "train_last/accuracy", "best_epoch"):
            assert col in seed_runs, col
        assert set(seed_runs["noise_type"]) == {kind} and len(seed_runs) == 8
        assert {"epoch", "train/accuracy", "test_clean/accuracy", "noise_type"} <= set(curves.columns)
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["selection_metric"] == {"image": "valid/accuracy"} and manifest["seeds"] == [0, 1]
        # the selected epoch's numbers are those of the epoch chosen on noisy validation
        row = seed_runs[(seed_runs["method"] == "normal") & (seed_runs["seed"] == 0)
                        & (seed_runs["noise_rate"] == 0.4)].iloc[0]
        at = curves[(curves["method"] == "normal") & (curves["seed"] == 0) & (curves["noise_rate"] == 0.4)]
        assert row["test_clean/accuracy"] == pytest.approx(at[at["epoch"] == row["best_epoch"]]["test_clean/accuracy"].iloc[0])
        assert row["test_clean_last/accuracy"] == pytest.approx(at[at["epoch"] == 2]["test_clean/accuracy"].iloc[0])

    from analysis.experiment import load_experiment
    from analysis.tables import image_tables

    for split in ("test_clean", "test_clean_last"):
        (table,) = image_tables(load_experiment(out / "symmetric"), split=split)
        assert table.columns == ["20%", "40%"] and (table.data["n"] == 2).all()
    md = (out / "tables.md").read_text()
    assert "pair noise: clean test accuracy (%) of the last epoch" in md and "DeCA(p) minus each baseline" in md

    # a rerun trains nothing
    monkeypatch.setattr(images, "run_one", lambda spec: pytest.fail(f"retrained {spec['method']}"))
    assert images.main([*ARGS, "--out", str(out)]) == 0
    assert images.main([*ARGS, "--out", str(out), "--tables-only"]) == 0
    # another setting in the same folder is refused, naming the file
    with pytest.raises(SystemExit, match="other settings"):
        images.main([*[a if a != "lr=0.05" else "lr=0.02" for a in ARGS], "--out", str(out)])


def test_the_tuned_column_command_and_reader(tmp_path):
    args = images.resolve_options(images.build_parser().parse_args(
        ["--preset", "memorise", "--out", str(tmp_path), "--data-root", "/data"]))
    base = images._base_spec(args)
    cmd = images.tuned_command(args, tmp_path, base)
    text = " ".join(cmd)
    assert "--methods normal itlm mwnet deca_p --num-samples 12" in text  # the same budget for all
    assert "--set noise_rate=0.4" in text and '--set pretrain_overrides={"lr": 0.01}' in text
    assert "--set lr=" not in text and "--set T1=" not in text  # searched, not fixed
    assert "--resume" not in cmd
    (tmp_path / "tuned").mkdir()
    assert images.tuned_command(args, tmp_path, base)[-1] == "--resume"

    for name, acc in (("tuned", 0.8), ("tuned_other", 0.7)):
        folder = tmp_path / name / "summary"
        folder.mkdir(parents=True)
        pd.DataFrame([{"method": "deca_p", "seed": s, "status": "completed", "test_clean/accuracy": acc,
                       "config/lr": 0.02, "config/C1": 3.0} for s in (0, 1)]).to_csv(folder / "seed_runs.csv")
        pd.DataFrame([{"method": "deca_p", "seed": s, "epoch": e, "test_clean/accuracy": acc - 0.1 * (e == 2)}
                      for s in (0, 1) for e in (1, 2)]).to_csv(folder / "curves.csv")
        pd.DataFrame([{"method": "deca_p", "status": st} for st in ("completed", "error", "error")]).to_csv(
            folder / "search_trials.csv")
    tuned = images.read_tuned(tmp_path)
    assert set(tuned["experiment"]) == {"tuned", "tuned_other"}
    row = tuned[tuned["experiment"] == "tuned"].iloc[0]
    assert row["test_clean_last/accuracy"] == pytest.approx(0.7) and row["n_error"] == 2
    assert row["config_text"] == "lr=0.02, C1=3"
