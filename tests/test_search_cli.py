"""``python -m deca_tune.search`` argument handling, experiment files and the dry-run plan (no Ray)."""
from __future__ import annotations

import io
import json

import pytest

from deca_tune.search import main
from deca_tune.search.config import parse_args, resume_config
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
    # no --max-epochs: the unit's budget (the authors' ML-100K GMF configurations: 20 epochs)
    assert cfg.max_epochs is None and unit.max_epochs == unit.spec["max_epochs"] == 20
    assert unit.spec["seed"] == cfg.search_seed


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
    ("datasets: [synthetic]\nquick:\n  num-samplez: 1\n", "exp.yaml:3: quick.num-samplez: unknown option"),
    ("quick:\n  about: x\n", "exp.yaml:2: quick.about: not allowed inside the quick: section"),
    ("vary:\n  h_backbone: gmf\n", "exp.yaml:2: vary.h_backbone: must be a non-empty list"),
    ("vary:\n  l2: [1, 2]\nset:\n  l2: 1\n", "'l2' is both fixed (set) and varied (vary)"),
    ("methods: [normal]\nvary:\n  h_backbone: [mf, gmf]\n", "vary h_backbone: no method of this experiment"),
])
def test_bad_config_file_names_file_line_and_key(text, expected, tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    code, _, err = run_main(["--config", str(path), "--dry-run"], capsys)
    assert code == 2
    assert expected in err


def test_quick_section_about_and_vary_of_an_experiment_file(tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text("about:\n  budget: two trials\ndatasets: [synthetic]\nmethods: [normal, deca]\n"
                    "num-samples: 5\nset:\n  batch_size: 64\n  dataset_options: {n_users: 80}\n"
                    "vary:\n  h_backbone: [mf, gmf]\n"
                    "quick:\n  num-samples: 1\n  set: {dataset_options: {n_items: 30}}\n"
                    "  vary: {h_backbone: [gmf]}\n")
    full = parse_args(["--config", str(path), "--storage-path", str(tmp_path)])
    assert full.num_samples == 5 and full.vary == {"h_backbone": ["mf", "gmf"]} and not full.quick
    assert full.about == {"budget": "two trials"}
    keys = [u.key for u in build_plan(full).units]
    assert keys == ["synthetic__gmf__normal", "synthetic__gmf__deca__h_backbone=mf",
                    "synthetic__gmf__deca__h_backbone=gmf"]
    quick = parse_args(["--config", str(path), "--quick", "--storage-path", str(tmp_path)])
    assert quick.quick and quick.num_samples == 1 and quick.vary == {"h_backbone": ["gmf"]}
    assert quick.set == {"batch_size": 64, "dataset_options": {"n_users": 80, "n_items": 30}}
    deca = build_plan(quick).units[1]
    assert deca.spec["h_backbone"] == "gmf" and "h_backbone" not in deca.space.params
    # the command line still wins over the file and its quick section
    assert parse_args(["--config", str(path), "--quick", "--num-samples", "2"]).num_samples == 2
    code, _, err = run_main(["--quick", "--dry-run"], capsys)
    assert code == 2 and "--quick: needs --config" in err
    bare = tmp_path / "bare.yaml"
    bare.write_text("datasets: [synthetic]\n")
    code, _, err = run_main(["--config", str(bare), "--quick", "--dry-run"], capsys)
    assert code == 2 and "no `quick:` section" in err


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


def test_sampler_is_paired_for_new_experiments_and_tpe_for_older_manifests(tmp_path):
    assert parse_args([]).sampler == "paired" and parse_args(["--sampler", "tpe"]).sampler == "tpe"
    exp = tmp_path / "before"
    exp.mkdir()
    old = parse_args(["--storage-path", str(tmp_path), "--name", "before"]).to_dict()
    del old["sampler"]  # a manifest written before --sampler existed: it was Optuna's own TPE
    (exp / "manifest.json").write_text(json.dumps({"config": old, "resumes": []}))
    cfg, _ = resume_config(parse_args(["--resume", "--name", "before", "--storage-path", str(tmp_path)]))
    assert cfg.sampler == "tpe"


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


def test_set_keys_reach_only_the_methods_that_read_them(tmp_path, capsys):
    """C0 is DeCA's: with normal and deca it is dropped from normal's spec and the plan says so;
    a key no method of the experiment reads is an error naming the methods that have it."""
    cfg = parse_args(["--methods", "normal", "deca", "--set", "C0=10", "--storage-path", str(tmp_path)])
    normal, deca = build_plan(cfg).units
    assert "C0" not in normal.spec and normal.dropped == ("C0",)
    assert deca.spec["C0"] == 10 and deca.dropped == () and "C0" not in deca.space.params
    code, out, _ = run_main(["--methods", "normal", "deca", "--set", "C0=10", "--dry-run",
                             "--storage-path", str(tmp_path)], capsys)
    assert code == 0 and "not used by normal (dropped for this unit): --set C0" in out
    code, _, err = run_main(["--methods", "normal", "--set", "C0=10", "--dry-run",
                             "--storage-path", str(tmp_path)], capsys)
    assert code == 2 and "--set C0: no method of this experiment (rec normal)" in err
    assert "rec deca" in err.split("it is a setting of")[1]
    code, _, err = run_main(["--set", "lr_typo=1", "--dry-run", "--storage-path", str(tmp_path)], capsys)
    assert code == 2 and "--set lr_typo" in err and "setting of" not in err


def test_option_is_a_data_set_option_on_the_command_line_and_in_files(tmp_path, capsys):
    cfg = parse_args(["--datasets", "synthetic", "--option", "n_users=50", "--set", "dataset_options.n_items=40"])
    assert cfg.set == {"dataset_options": {"n_users": 50, "n_items": 40}}
    path = tmp_path / "exp.yaml"
    path.write_text("datasets: [synthetic]\noption:\n  n_users: 30\nset:\n  batch_size: 64\n")
    cfg = parse_args(["--config", str(path), "--option", "n_items=20"])
    assert cfg.set == {"batch_size": 64, "dataset_options": {"n_users": 30, "n_items": 20}}
    # a typo in a data set option fails the dry run (the loader's signature is checked)
    code, _, err = run_main(["--datasets", "synthetic", "--option", "n_userz=5", "--dry-run",
                             "--storage-path", str(tmp_path)], capsys)
    assert code == 2 and "no option(s) n_userz" in err and "n_users" in err


def test_searched_ranges_are_checked_against_the_method(tmp_path, monkeypatch):
    """A searched value outside what the method accepts (here: a space whose lr reaches 0) is
    an error before Ray, naming the parameter and its file."""
    from dataclasses import replace

    from deca_tune.search.checks import CheckError, check_units

    plan = build_plan(parse_args(["--methods", "normal", "--storage-path", str(tmp_path)]))
    (unit,) = plan.units
    unit.space = replace(unit.space, params={**unit.space.params,
                                             "lr": replace(unit.space.params["lr"], low=0.0)})
    with pytest.raises(CheckError, match=r"searched value lr = 0.0 \(.*rec_common.yaml:\d+\).*must be > 0"):
        check_units(plan)


def test_verbosity_and_list_options_are_documented_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the lines
    assert "search.log" in out and "NAME NAME or NAME,NAME" in out and "0 1 2 or 0,1,2" in out
    assert "deterministic errors" in out and "--option KEY=VALUE" in out


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Trial:
    def __init__(self, trial_id, config, last_result=None, checkpoint=None):
        self.trial_id, self.config, self.last_result, self.checkpoint = trial_id, config, last_result, checkpoint


def test_console_lines_and_live_progress_bar(tmp_path):
    """One line per trial event with the progress; on a terminal a live bar redrawn in place;
    every line also in search.log."""
    from deca_tune.search.console import Progress, RunLog

    term = _Terminal()
    log = RunLog(tmp_path / "search.log", verbose=1, stream=term).open()
    progress = Progress(log, total_trials=4, max_epochs=10)
    progress.begin("u", "search", ("lr", "l2"), 2)
    a = _Trial("aaaa", {"lr": 0.0016051911, "l2": 5.0})
    progress.on_start(a)
    progress.on_result(a, {"epoch": 1.0, "score": 0.25})
    a.last_result = {"epoch": 2.0, "score": 0.3, "trainer_finished": 0}
    progress.on_complete(a)
    b = _Trial("bbbb", {"lr": 0.1, "l2": 1.0}, {"score": float("nan"),
                                                  "trial_error": "SpecError: spec key 'lr': bad"})
    progress.on_complete(b)
    progress.begin("u", "seeds", (), 2)
    c = _Trial("cccc", {"seed": 1}, {"epoch": 10.0, "best_epoch": 7.0, "score": 0.4, "trainer_finished": 1})
    progress.on_start(c)
    progress.on_complete(c)
    log.close()
    lines = (tmp_path / "search.log").read_text().splitlines()
    assert lines[0].endswith("aaaa started: lr=0.001605 l2=5")
    assert "[0/4 trials" in lines[0] and "ETA ?" in lines[0]
    assert lines[1].endswith("aaaa stopped by ASHA after epoch 2: score 0.3") and "[1/4 trials  25%" in lines[1]
    assert lines[2].endswith("bbbb failed: SpecError: spec key 'lr': bad (deterministic: not retried)")
    assert lines[3].endswith("cccc started: seed 1")
    assert lines[4].endswith("cccc finished: score 0.4 (best epoch 7 of 10)") and "[3/4 trials  75%" in lines[4]
    shown = term.getvalue()
    assert "\r\x1b[K" in shown and "aaaa epoch 1: score 0.25" in shown  # the bar, redrawn in place
    assert shown.endswith("\r\x1b[K")  # cleared at the end
    # not a terminal, verbosity 0: no per-trial lines on the console, still in the log
    plain = io.StringIO()
    quiet = RunLog(tmp_path / "quiet.log", verbose=0, stream=plain).open()
    Progress(quiet, 1, 10).on_start(_Trial("dddd", {}))
    quiet.close()
    assert plain.getvalue() == "" and "dddd started" in (tmp_path / "quiet.log").read_text()
