"""``python -m deca_tune.search`` argument handling, experiment files and the dry-run plan (no Ray)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from deca_tune.search import main
from deca_tune.search.config import parse_args
from deca_tune.search.plan import build_plan, grid_trial_count


def run_main(argv, capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, expected", [
    (["--methods", "normal", "dekka"], "unknown method 'dekka'"),
    (["--datasets", "ml-1m"], "unknown data set 'ml-1m'"),
    (["--backbones", "resnet"], "unknown backbone 'resnet' for rec"),
    (["--num-samples", "0"], "--num-samples"),
    (["--reduction-factor", "1"], "--reduction-factor: must be > 1"),
    (["--max-epochs", "2", "--grace-period", "3"], "--grace-period: 3 exceeds --max-epochs 2"),
    (["--search", "random"], "invalid choice: 'random'"),
    (["--seeds", "0", "0"], "repeated seeds"),
    (["--gpus-per-trial", "-1"], "--gpus-per-trial"),
    (["--set", "lr"], "expected KEY=VALUE"),
    (["--no-such-option"], "unrecognized arguments"),
])
def test_bad_arguments_exit_2(argv, expected, capsys, tmp_path):
    code, _, err = run_main([*argv, "--storage-path", str(tmp_path), "--dry-run"], capsys)
    assert code == 2
    assert expected in err


def test_unknown_name_lists_the_choices(capsys, tmp_path):
    code, _, err = run_main(["--methods", "dekka", "--dry-run", "--storage-path", str(tmp_path)], capsys)
    assert code == 2
    for name in ("normal", "deca", "deca_p", "tce"):
        assert name in err.split("choose one of:")[1]


def test_default_plan_is_the_small_default_experiment(capsys, tmp_path):
    code, out, _ = run_main(["--dry-run", "--storage-path", str(tmp_path)], capsys)
    assert code == 0
    assert "ml-100k__gmf__normal" in out and "ml-100k__gmf__deca (rec)" in out
    assert "ml-100k__gmf__deca_p" in out
    assert "Optuna TPE" in out and "ASHA (time attr epoch" in out
    assert "seeds 0 1 2" in out
    assert "dry run: nothing was run" in out
    assert not any(tmp_path.iterdir()), "a dry run must not create the experiment folder"


def test_grid_dry_run_counts_trials_with_tunes_variant_generator(capsys, tmp_path):
    code, out, _ = run_main(["--search", "grid", "--methods", "normal", "deca", "--dry-run",
                             "--storage-path", str(tmp_path)], capsys)
    assert code == 0
    assert "ml-100k__gmf__normal: 6, ml-100k__gmf__deca: 288" in out
    assert "FIFO" in out and "budgets differ" in out


def test_fixed_entries_leave_the_space_and_reach_the_spec(tmp_path):
    cfg = parse_args(["--methods", "deca", "--search", "grid", "--set", "l2=1", "--set", "lr=0.001",
                      "--set", "dataset_options.n_users=50", "--storage-path", str(tmp_path)])
    plan = build_plan(cfg)
    (unit,) = plan.units
    assert set(unit.space.params) == {"C0", "C1", "alpha"}
    assert unit.spec["l2"] == 1 and unit.spec["dataset_options"] == {"n_users": 50}
    assert grid_trial_count(unit) == unit.n_trials(cfg) == 48
    assert unit.spec["max_epochs"] == cfg.max_epochs and unit.spec["seed"] == cfg.search_seed


def test_config_file_with_command_line_override(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("datasets: [synthetic]\nmethods: [normal, tce]\nnum-samples: 3\n"
                    "max_epochs: 4\nseeds: [5, 6]\nset:\n  batch_size: 64\n")
    cfg = parse_args(["--config", str(path), "--num-samples", "7", "--set", "l2=2"])
    assert cfg.datasets == ["synthetic"] and cfg.methods == ["normal", "tce"]
    assert cfg.num_samples == 7 and cfg.max_epochs == 4 and cfg.seeds == [5, 6]
    assert cfg.set == {"batch_size": 64, "l2": 2}


@pytest.mark.parametrize("text, expected", [
    ("datasets: [synthetic]\nnum_samplez: 3\n", "exp.yaml:2: num_samplez: unknown option"),
    ("max-epochs: zero\n", "exp.yaml:1: max-epochs: argument --max-epochs: expected an integer, got 'zero'"),
    ("search: random\n", "exp.yaml:1: search: argument --search: invalid choice"),
    ("dry-run: maybe\n", "exp.yaml:1: dry-run: must be true or false"),
    ("set: [1, 2]\n", "exp.yaml:1: set: must be a mapping"),
    ("- a\n- b\n", "must be a mapping"),
])
def test_bad_config_file_names_file_line_and_key(text, expected, tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    code, _, err = run_main(["--config", str(path), "--dry-run"], capsys)
    assert code == 2
    assert expected in err


def test_resume_refuses_to_change_the_plan(tmp_path, capsys):
    exp = tmp_path / "old"
    exp.mkdir()
    cfg = parse_args(["--num-samples", "3", "--storage-path", str(tmp_path), "--name", "old"])
    (exp / "manifest.json").write_text(json.dumps({"config": cfg.to_dict(), "resumes": []}))
    code, _, err = run_main(["--resume", "--name", "old", "--storage-path", str(tmp_path),
                             "--num-samples", "5", "--dry-run"], capsys)
    assert code == 2 and "--num-samples (was 3)" in err
    # without options it takes the original plan back, allowed overrides included
    code, out, _ = run_main(["--resume", "--storage-path", str(tmp_path), "--max-concurrent", "1",
                             "--dry-run"], capsys)
    assert code == 0 and "3 trials per unit" in out and "max concurrent 1" in out and "(resume)" in out


def test_resume_without_experiment_exits_2(tmp_path, capsys):
    code, _, err = run_main(["--resume", "--storage-path", str(tmp_path)], capsys)
    assert code == 2 and "no experiment" in err
    code, _, err = run_main(["--resume", "--name", "nope", "--storage-path", str(tmp_path)], capsys)
    assert code == 2 and "does not exist" in err


def test_existing_experiment_needs_resume(tmp_path, capsys):
    exp = tmp_path / "taken"
    exp.mkdir()
    (exp / "manifest.json").write_text("{}")
    code, _, err = run_main(["--name", "taken", "--storage-path", str(tmp_path)], capsys)
    assert code == 2 and "exists; add --resume" in err
