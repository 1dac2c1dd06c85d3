"""Issue 12: one test per row of its table of faults (the CSV-parser rows are tests/test_data_csv.py's).

Each test reproduces the fault and asserts the new behaviour: errors before Ray with exit
status 2 naming the culprit, exit status 3 when a unit has no finished seed runs, deterministic
errors not retried, the experiment lock, the counts and times after an interruption, comma
lists, absolute data paths for the trials, and argparse messages without helper names.

Ray-backed tests share two experiments (module fixtures) on the session's Ray and the fake
trainer; the rest never start a trial.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from deca_tune.search import main
from deca_tune.search.config import build_parser, parse_args
from deca_tune.search.lock import ExperimentLock, LockError
from deca_tune.search.plan import build_plan

TINY = ["--datasets", "synthetic", "--backbones", "gmf",
        "--set", "dataset_options.n_users=100", "--set", "dataset_options.n_items=80",
        "--set", "batch_size=256"]
FAKE = ["--set", "trainer_factory=tests.search_fakes:FakeTrainer"]


def run(argv: list[str], capsys=None, callbacks=()) -> tuple[int, str]:
    """``main(argv)`` -> (exit status, stdout + stderr)."""
    if capsys is None:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = _call(argv, callbacks)
        return code, out.getvalue() + err.getvalue()
    code = _call(argv, callbacks)
    out, err = capsys.readouterr()
    return code, out + err


def _call(argv, callbacks) -> int:
    try:
        return main(argv, callbacks=callbacks)
    except SystemExit as exc:
        return int(exc.code)


def results(trial_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lock(folder: Path, pid: int, host: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".lock"
    path.write_text(json.dumps({"host": host or socket.gethostname(), "pid": pid, "pid_start": None,
                                "started": "2026-01-01T00:00:00", "command": "python -m deca_tune.search"}))
    return path


@pytest.fixture()
def live_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


# ------------------------------------------------------------------------------ shared experiments
@pytest.fixture(scope="module")
def faults(ray_session, tmp_path_factory):
    """The paper grid over l2 with the fake trainer: l2 = 1000 crashes at epoch 2 every time
    (retried once from its checkpoint, then an error), l2 = 0.01 has a NaN loss at epoch 2
    (deterministic: not retried); the others finish. The experiment folder holds a stale lock
    (a dead driver's) when it starts. Default verbosity."""
    storage = tmp_path_factory.mktemp("faults")
    stale = dead_pid()
    write_lock(storage / "grid", stale)
    argv = [*TINY, *FAKE, "--methods", "normal", "--search", "grid", "--set", "lr=0.001",
            "--set", "fail_if_l2_above=100", "--set", "nan_if_l2_below=0.05", "--max-epochs", "3",
            "--seeds", "0", "--max-failures", "1", "--storage-path", str(storage), "--name", "grid"]
    code, out = run(argv)
    return code, out, storage / "grid", stale


class InterruptAfter:
    """A Tune callback sending SIGINT to the driver once ``n`` trials completed."""

    def __init__(self, n: int) -> None:
        from ray import tune

        self.n, self.done, self.fired = n, 0, False
        self.__class__ = type("InterruptAfterTrials", (InterruptAfter, tune.Callback), {})

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.done += 1
        if self.done >= self.n and not self.fired:
            self.fired = True
            os.kill(os.getpid(), signal.SIGINT)


@pytest.fixture(scope="module")
def interrupted(ray_session, tmp_path_factory):
    """6 Optuna trials, 2 at a time, SIGINT after 2 completed; then --resume."""
    storage = tmp_path_factory.mktemp("sigint")
    argv = [*TINY, *FAKE, "--methods", "normal", "--num-samples", "6", "--max-epochs", "3",
            "--scheduler", "fifo", "--max-concurrent", "2", "--set", "sleep=0.3", "--seeds", "0",
            "--storage-path", str(storage), "--name", "int", "--verbose", "0"]
    first = run(argv, callbacks=[InterruptAfter(2)])
    exp = storage / "int"
    search = exp / "search" / "synthetic__gmf__normal"
    finished_before = sum(1 for d in search.iterdir() if (d / "result.json").exists()
                          and results(d) and results(d)[-1].get("trainer_finished"))
    manifest_before = json.loads((exp / "manifest.json").read_text())
    second = run(["--resume", "--name", "int", "--storage-path", str(storage)])
    return first, second, exp, finished_before, manifest_before


# ------------------------------------------------------------------------------ the table's rows
def test_row_bad_data_root_offline_data_and_malformed_csv_exit_2_before_ray(tmp_path, capsys):
    """Row 1: malformed csv, missing --data-root, offline data set. Was: every trial failed
    (and was retried), exit 0, the message hidden in the trial errors, the mistyped root created."""
    storage = tmp_path / "results"
    missing = tmp_path / "no-such-root"
    code, out = run([*TINY, "--data-root", str(missing), "--storage-path", str(storage)], capsys)
    assert code == 2 and f"--data-root {missing}: no such folder" in out
    assert not missing.exists() and not storage.exists()
    # offline: an empty data root and no download
    empty = tmp_path / "empty-root"
    empty.mkdir()
    code, out = run(["--datasets", "ml-100k", "--data-root", str(empty), "--set", "download=false",
                     "--storage-path", str(storage)], capsys)
    assert code == 2 and "data set 'ml-100k'" in out and "cannot be loaded" in out
    assert str(empty) in out  # the cause names where the files were expected
    assert not storage.exists()
    # a malformed ratings file: the loader's message (file, line) reaches the console, exit 2
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item\n1,2\n3,4\n")
    code, out = run(["--datasets", "csv", "--option", f"path={bad}", "--option", "rating_col=stars",
                     "--storage-path", str(storage)], capsys)
    assert code == 2 and "data set 'csv'" in out and "cannot be loaded" in out and "stars" in out
    assert not storage.exists()


def test_row_invalid_spec_values_exit_2_and_nan_trials_exit_3(ray_session, tmp_path, capsys):
    """Row 2: --set lr=-1 (command line or config file) and --set lr=1e20 (every trial NaN).
    Was: Ray started, every trial failed, exit 0 with "(no finished seed runs)"."""
    code, out = run([*TINY, "--set", "lr=-1", "--storage-path", str(tmp_path)], capsys)
    assert code == 2 and "spec key 'lr': must be > 0, got -1 (from --set lr=-1)" in out
    path = tmp_path / "exp.yaml"
    path.write_text("datasets: [synthetic]\nset:\n  lr: -1\n")
    code, out = run(["--config", str(path), "--storage-path", str(tmp_path)], capsys)
    assert code == 2 and "spec key 'lr': must be > 0" in out
    code, out = run([*TINY, "--set", "C2=1", "--storage-path", str(tmp_path)], capsys)  # a key no rec method has
    assert code == 2 and "--set C2" in out and "image deca_p" in out
    assert not any(tmp_path.glob("search-*"))
    # lr = 1e20 is a valid number, but every epoch is NaN: not retried, no seed runs, exit 3
    code, out = run([*TINY, "--methods", "normal", "--search", "grid", "--set", "lr=1e20", "--set", "l2=1",
                     "--max-epochs", "2", "--seeds", "0", "--max-failures", "2",
                     "--storage-path", str(tmp_path), "--name", "nan"], capsys)
    assert code == 3, out
    assert "synthetic__gmf__normal: NO RESULTS: 1 trials (0 finished, 0 stopped by ASHA, 1 failed)" in out
    assert "FloatingPointError: non-finite loss" in out and "exit status 3" in out
    trials = pd.read_csv(tmp_path / "nan/summary/search_trials.csv")
    assert list(trials["status"]) == ["error"] and "non-finite loss" in trials["error"].iloc[0]
    assert not list((tmp_path / "nan/search/synthetic__gmf__normal").glob("*/error.txt")), "retried"


def test_row_storage_path_that_is_a_file_exits_2_before_ray(tmp_path, capsys):
    """Row 3: --storage-path pointing at a file. Was: NotADirectoryError after Ray started."""
    target = tmp_path / "results.txt"
    target.write_text("not a folder")
    for extra in ([], ["--dry-run"]):
        code, out = run([*TINY, "--storage-path", str(target), *extra], capsys)
        assert code == 2 and f"--storage-path {target}: is a file, not a folder" in out
        assert "Traceback" not in out
    code, out = run([*TINY, "--storage-path", str(target / "sub")], capsys)
    assert code == 2 and "is a file, so the folder cannot be created" in out
    assert target.read_text() == "not a folder"


def test_row_a_second_driver_or_resume_while_one_runs_exits_2(faults, tmp_path, live_process, capsys):
    """Row 4: two drivers on one --name, --resume while the first runs. Was: both ran and wrote
    the same trial folders. Now the lock names the holder; a stale lock is taken over."""
    code, out, exp, stale = faults
    assert code == 0, out
    assert f"took over the stale lock of the driver pid {stale} on host {socket.gethostname()}" in out
    assert not (exp / ".lock").exists(), "the lock is released when the driver exits"
    # a live driver holds a new experiment: a second driver exits 2 naming it, writes nothing
    write_lock(tmp_path / "busy", live_process.pid)
    code, out = run([*TINY, *FAKE, "--storage-path", str(tmp_path), "--name", "busy"], capsys)
    assert code == 2 and f"in use by the driver pid {live_process.pid} on host {socket.gethostname()}" in out
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == [".lock", ".lock.guard"]
    # --resume while it is held
    lock = write_lock(exp, live_process.pid)
    try:
        code, out = run(["--resume", "--name", exp.name, "--storage-path", str(exp.parent)], capsys)
        assert code == 2 and f"in use by the driver pid {live_process.pid}" in out
    finally:
        lock.unlink()
    # a lock from another host is never taken over
    write_lock(tmp_path / "remote", 12345, host="some-other-host")
    with pytest.raises(LockError, match="on another host"):
        ExperimentLock(tmp_path / "remote").acquire()


def test_lock_is_taken_by_exactly_one_of_two_racing_drivers(tmp_path):
    folder, got, errors = tmp_path / "race", [], []
    barrier = threading.Barrier(2)

    def take():
        lock = ExperimentLock(folder, "racer")
        barrier.wait()
        try:
            got.append(lock.acquire())
        except LockError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=take) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(got) == 1 and len(errors) == 1 and "in use by the driver pid" in errors[0]
    got[0].release()
    assert not (folder / ".lock").exists()


def test_row_sigint_counts_the_trials_that_did_not_finish(interrupted):
    """Row 5: SIGINT after 2 of 6 trials. Was: "2 of 6 trial(s) did not finish" when 4 had not."""
    (code, out), (code2, out2), exp, finished, _ = interrupted
    assert code == 130 and "--resume" in out
    match = re.search(r"(\d+) of 6 trials did not finish", out)
    assert match, out
    assert finished >= 2 and int(match.group(1)) == 6 - finished
    assert code2 == 0, out2
    trials = pd.read_csv(exp / "summary/search_trials.csv")
    assert len(trials) == 6 and set(trials["status"]) == {"completed"}


def test_row_resume_keeps_cumulative_wall_and_search_seconds(interrupted):
    """Row 6: after a resume, wall_seconds and search_seconds covered only the last run."""
    _, (code2, _), exp, _, before = interrupted
    assert code2 == 0
    manifest = json.loads((exp / "manifest.json").read_text())
    runs = manifest["runs"]
    assert [r["outcome"] for r in runs] == ["interrupted", "finished"]
    assert [r["exit_code"] for r in runs] == [130, 0]
    assert all(len(r["git"]["commit"]) == 40 for r in runs if r["git"].get("commit"))  # each run's code
    assert {"commit"} <= set(runs[1]["git"])
    assert manifest["wall_seconds"] == pytest.approx(sum(r["wall_seconds"] for r in runs))
    assert runs[0]["wall_seconds"] == pytest.approx(before["runs"][0]["wall_seconds"])
    unit = manifest["timing"]["synthetic__gmf__normal"]
    per_run = unit["runs"]
    assert [r["run"] for r in per_run] == [1, 2]
    assert per_run[0]["search_seconds"] > 0 and per_run[1]["search_seconds"] > 0
    assert unit["search_seconds"] == pytest.approx(sum(r["search_seconds"] for r in per_run))
    assert per_run[0]["search_seconds"] == pytest.approx(
        before["timing"]["synthetic__gmf__normal"]["search_seconds"])
    summary = pd.read_csv(exp / "summary/summary.csv").iloc[0]
    assert summary["search_seconds"] == pytest.approx(unit["search_seconds"])
    assert summary["seed_seconds"] == pytest.approx(unit["seed_seconds"])
    timing = pd.read_csv(exp / "summary/timing.csv")
    assert list(timing["run"].astype(str)) == ["1", "2", "total"]


def test_optuna_study_is_stored_in_the_experiment_folder(interrupted):
    optuna = pytest.importorskip("optuna")
    _, (code2, _), exp, _, _ = interrupted
    assert code2 == 0
    db = exp / "optuna" / "synthetic__gmf__normal.db"
    study = optuna.load_study(study_name="synthetic__gmf__normal", storage=f"sqlite:///{db}")
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == 6 and "RUNNING" not in states, states
    trials = pd.read_csv(exp / "summary/search_trials.csv")
    assert study.best_value == pytest.approx(trials["score"].max())


def test_row_deterministic_failures_are_not_retried_but_crashes_are(faults):
    """Row 7: a non-finite loss (and an invalid configuration, tests/test_trainables.py) was
    retried --max-failures times. Now: not retried; a crash is still retried from its checkpoint."""
    code, out, exp, _ = faults
    trials = pd.read_csv(exp / "summary/search_trials.csv").set_index("config/l2")
    folder = {l2: exp / trials.loc[l2, "path"] for l2 in trials.index}
    nan = folder[0.01]
    assert trials.loc[0.01, "status"] == "error" and "non-finite loss" in trials.loc[0.01, "error"]
    assert not (nan / "error.txt").exists(), "a deterministic error must not be retried"
    rows = results(nan)
    assert [r.get("epoch") for r in rows] == [1, None] and rows[-1]["trial_error"].startswith(
        "FloatingPointError")
    assert all(r.get("restored_from", 0) == 0 for r in rows)
    crash = (folder[1000] / "error.txt").read_text()
    assert "Failure # 1" in crash and "Failure # 2" in crash, "a crash is retried (--max-failures 1)"
    assert trials.loc[1000, "status"] == "error" and "fake failure" in trials.loc[1000, "error"]
    assert "FloatingPointError: epoch 2: non-finite loss (deterministic: not retried)" in out
    assert "crashed (" in out and "retrying from its last checkpoint" in out
    assert "failed after 2 attempt(s): RuntimeError: fake failure" in out


def test_row_comma_lists_are_accepted(tmp_path, capsys):
    """Row 8: --methods normal,deca was "unknown method 'normal,deca'"."""
    cfg = parse_args(["--methods", "normal,deca", "tce", "--seeds", "0,1", "2", "--backbones", "gmf,",
                      "--storage-path", str(tmp_path)])
    assert cfg.methods == ["normal", "deca", "tce"] and cfg.seeds == [0, 1, 2] and cfg.backbones == ["gmf"]
    assert [u.method for u in build_plan(cfg).units] == ["normal", "deca", "tce"]
    path = tmp_path / "exp.yaml"
    path.write_text("methods: normal,deca_p\nseeds: 3,4\ndatasets: [synthetic]\n")
    cfg = parse_args(["--config", str(path)])
    assert cfg.methods == ["normal", "deca_p"] and cfg.seeds == [3, 4]
    code, out = run(["--methods", "normal,deca", "--dry-run", "--storage-path", str(tmp_path)], capsys)
    assert code == 0 and "ml-100k__gmf__deca (rec)" in out
    code, out = run(["--seeds", "0,x", "--dry-run"], capsys)
    assert code == 2 and "argument --seeds: expected integers" in out


def test_row_csv_with_a_relative_path_reaches_the_trials_as_an_absolute_path(tmp_path, monkeypatch):
    """Row 10 (the driver's part): a relative ``path`` worked in ``describe`` but every trial
    failed ("not found"): Ray runs the trials in other working directories."""
    from deca_tune.data import custom_csv

    if not hasattr(custom_csv, "resolve_options"):
        pytest.skip("deca_tune.data.custom_csv.resolve_options is not there yet")
    (tmp_path / "ratings.csv").write_text("user,item,rating\n1,1,5\n")
    monkeypatch.chdir(tmp_path)
    cfg = parse_args(["--datasets", "csv", "--option", "path=ratings.csv", "--storage-path", "out"])
    assert cfg.set["dataset_options"] == {"path": "ratings.csv"}  # --option = --set dataset_options.
    for unit in build_plan(cfg).units:
        assert unit.spec["dataset_options"]["path"] == str(tmp_path / "ratings.csv")
    cfg = parse_args(["--datasets", "csv", "--set", "dataset_options.path=nope.csv"])
    with pytest.raises(ValueError, match="nope.csv"):
        build_plan(cfg)


def _typed_options():
    parser = build_parser()
    return [a for a in parser._actions if a.option_strings and a.type is not None
            and not isinstance(a.type, type)]


@pytest.mark.parametrize("flag", [a.option_strings[0] for a in _typed_options()])
def test_row_argument_errors_never_name_internal_helpers(flag, capsys):
    """Row 11: "invalid _positive_int value: 'abc'" named an internal helper."""
    code, out = run([flag, "abc", "--dry-run"], capsys)
    assert code == 2 and f"argument {flag}:" in out
    message = out.split(f"argument {flag}:")[1].splitlines()[0]
    assert "expected" in message or "invalid choice" in message, message
    assert not re.search(r"invalid \S+ value", message), message  # argparse's "invalid <type name> value"
    assert "_int" not in out and "_float" not in out and "positive_" not in out


# ============================================================================== issue 20
# One test per row of issue 20's table (and its smaller items); every check that happens before
# Ray is run with Ray forbidden (``no_ray``).
@pytest.fixture()
def no_ray(monkeypatch):
    """Fail the test if the driver tries to start or join Ray."""
    from deca_tune.search import run as search_run

    def refuse(*args, **kwargs):
        raise AssertionError("Ray must not start for this input")

    monkeypatch.setattr(search_run, "connect", refuse)


@pytest.mark.parametrize("method, key, value, message", [
    ("deca", "alpha", "2", "must be <= 1, got 2"),
    ("deca", "C0", "-1", "must be >= 0, got -1"),
    ("deca", "C0", "nan", "must be a finite number, got nan"),
    ("tce", "drop_rate", "1.5", "must be < 1, got 1.5"),
])
@pytest.mark.parametrize("dry", [False, True])
def test_row20_set_values_get_the_methods_check_before_ray(method, key, value, message, dry, tmp_path,
                                                           capsys, no_ray):
    """Rows 1-2: was Ray + every trial failing (exit 3), and "checked ... nothing was run" (exit 0)
    in --dry-run. Now the method's own check runs in the driver: exit 2 naming the key."""
    argv = [*TINY, "--methods", method, "--set", f"{key}={value}", "--storage-path", str(tmp_path)]
    code, out = run([*argv, *(["--dry-run"] if dry else [])], capsys)
    assert code == 2
    assert f"synthetic__gmf__{method}: spec key '{key}': {message} (from --set {key}=" in out
    assert "usage:" not in out, "a value that fails a check gets no usage block"
    assert not any(tmp_path.iterdir())


def test_row20_negative_seeds_exit_2_at_parse_time(tmp_path, capsys, no_ray):
    """Row 3: --seeds -1 ran the whole search, then every seed run failed (exit 3)."""
    for argv in (["--seeds", "-1"], ["--seeds", "0,-2"], ["--search-seed", "-1"]):
        code, out = run([*TINY, *argv, "--storage-path", str(tmp_path)], capsys)
        assert code == 2 and f"argument {argv[0]}:" in out and ">= 0" in out, out
    with pytest.raises(SystemExit):
        parse_args(["--seeds", "-1"])
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("content, message", [
    ('{"created": "2026-01-01", "config": {"datasets": ["synth', "is not valid JSON (line 1"),
    ("{}", "no 'config' entry (the file is an empty JSON object)"),
    ("", "is empty"),
    ('{"config": {"datasets": ["synthetic"]}}', "'config' lacks 'backbones'"),
    ('{"config": {}, "runs": {}}', "'runs' must be a JSON array, got dict"),
])
def test_row20_resume_with_a_damaged_manifest_names_the_file(content, message, tmp_path, capsys, no_ray):
    """Rows 4-5: a truncated manifest.json was a JSONDecodeError traceback, `{}` a KeyError
    traceback (exit 1)."""
    (tmp_path / "exp").mkdir()
    path = tmp_path / "exp" / "manifest.json"
    path.write_text(content)
    code, out = run(["--resume", "--name", "exp", "--storage-path", str(tmp_path)], capsys)
    assert code == 2 and f"--resume: {path}" in out and message in out, out
    assert "Traceback" not in out and "usage:" not in out
    code, out = run(["--resume", "--storage-path", str(tmp_path)], capsys)  # the latest experiment
    assert code == 2 and str(path) in out and message in out


def test_row20_report_on_a_seed_runs_csv_cut_mid_row(faults, tmp_path, capsys):
    """Row 6: pandas' "TypeError: Invalid value '' for dtype 'Int64'" (exit 1). Now the report is
    made from the intact rows, with a warning naming the file and the line."""
    import shutil

    from deca_tune.report import main as report_main

    _, _, exp, _ = faults
    copy = tmp_path / "exp"
    shutil.copytree(exp, copy, ignore=shutil.ignore_patterns("search", "seeds", "optuna"))
    path = copy / "summary" / "seed_runs.csv"
    header, row = path.read_text().splitlines(keepends=True)  # the experiment's one seed run
    path.write_text(header + row + row[: len(row) // 2])  # a second row, cut mid-row
    assert report_main([str(copy), "--no-dataset-table", "--formats", "md"]) == 0
    err = capsys.readouterr().err
    assert f"{path}:3: the last row is cut short" in err and "the report uses the 1 rows before it" in err
    md = (copy / "report" / "report.md").read_text()
    assert re.search(r"\| synthetic / gmf / normal \| \d+ \| \d+ \| 1/1 \| complete \|", md), md
    # a damaged row that is not the last: an error naming the file and the line, exit 2
    path.write_text(header + row[:10] + "\n" + row)
    assert report_main([str(copy), "--no-dataset-table", "--formats", "md"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2: " in err and "a damaged row" in err and "Traceback" not in err


def test_row20_data_describe_with_a_non_number_option_names_it(capsys):
    """Row 8: "invalid literal for int() with base 10: 'abc'" (exit 1)."""
    from deca_tune.data.__main__ import main as data_main

    assert data_main(["describe", "synthetic", "--option", "n_users=abc"]) == 2
    err = capsys.readouterr().err
    assert "data set 'synthetic': option n_users must be an integer (default 500), got 'abc'" in err
    assert data_main(["describe", "synthetic", "--option", "noise_rate=[1]"]) == 2
    assert "option noise_rate must be a finite number" in capsys.readouterr().err


def test_row20_search_names_a_non_number_option_before_ray(tmp_path, capsys, no_ray):
    code, out = run([*TINY, "--option", "n_items=many", "--storage-path", str(tmp_path)], capsys)
    assert code == 2 and "option n_items must be an integer" in out


@pytest.mark.slow
def test_row20_sigterm_is_handled_like_ctrl_c_and_resume_works(ray_session, tmp_path):
    """Row 7: SIGTERM (timeout, systemd, SLURM) to a real driver was Ray's signal dump, outcome
    `error`, exit 1. Now: the "interrupted ... continue with" lines, outcome `interrupted`, exit
    143; then --resume finishes. The same experiment then shows a SIGKILLed run (left `running`
    in the manifest) closed as `killed` on resume, with its time up to its last checkpoint."""
    argv = [*TINY, *FAKE, "--methods", "normal", "--num-samples", "4", "--max-epochs", "3",
            "--scheduler", "fifo", "--max-concurrent", "1", "--set", "sleep=1", "--seeds", "0",
            "--storage-path", str(tmp_path), "--name", "term"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "deca_tune.search", *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in proc.stdout:  # wait for the first trial to start, then SIGTERM the driver
            lines.append(line)
            if " started: " in line:
                proc.send_signal(signal.SIGTERM)
                break
        lines += proc.stdout.readlines()
        code = proc.wait(timeout=120)
    finally:
        proc.kill()
    out = "".join(lines)
    assert code == 143, out
    assert "interrupted by SIGTERM" in out and "continue with: python -m deca_tune.search --resume" in out
    assert "Traceback" not in out
    exp = tmp_path / "term"
    manifest = json.loads((exp / "manifest.json").read_text())
    assert [(r["outcome"], r["exit_code"]) for r in manifest["runs"]] == [("interrupted", 143)]
    # a second driver run killed with SIGKILL: its entry stays "running"; its last checkpoint
    # was written 7 s after it started
    import time as _time
    from datetime import datetime

    started = _time.time() + 5
    manifest["runs"].append({"run": 2, "started": datetime.fromtimestamp(started).astimezone().isoformat(),
                             "finished": None, "command": "killed", "wall_seconds": None,
                             "outcome": "running", "exit_code": None})
    (exp / "manifest.json").write_text(json.dumps(manifest))
    newest = max((f for f in (exp / "search").rglob("*") if f.is_file()), key=lambda f: f.stat().st_mtime)
    os.utime(newest, (started + 7, started + 7))
    code, out = run(["--resume", "--name", "term", "--storage-path", str(tmp_path)])
    assert code == 0, out
    assert "run 2 (started" in out and "closed as 'killed' with 7.0 s" in out
    manifest = json.loads((exp / "manifest.json").read_text())
    runs = manifest["runs"]
    assert [(r["outcome"], r["exit_code"]) for r in runs] == [("interrupted", 143), ("killed", None),
                                                              ("finished", 0)]
    assert runs[1]["wall_seconds"] == pytest.approx(7, abs=1.0)
    assert manifest["wall_seconds"] == pytest.approx(sum(r["wall_seconds"] for r in runs))
    trials = pd.read_csv(exp / "summary/search_trials.csv")
    assert len(trials) == 4 and set(trials["status"]) == {"completed"}


# ------------------------------------------------------------------ issue 20: the smaller items
def test_csv_path_that_is_a_directory_says_so(tmp_path, capsys):
    from deca_tune.data.__main__ import main as data_main

    assert data_main(["describe", "csv", "--option", f"path={tmp_path}"]) == 1
    assert f"{tmp_path} is a directory, not a ratings file" in capsys.readouterr().err
    code, out = run(["--datasets", "csv", "--option", f"path={tmp_path}", "--dry-run",
                     "--storage-path", str(tmp_path / "r")], capsys)
    assert code == 2 and "is a directory" in out


def test_a_start_failing_on_resources_leaves_no_experiment_folder(ray_session, tmp_path, capsys):
    """--cpus-per-trial 4 on a 2-CPU cluster left a folder with only search.log."""
    code, out = run([*TINY, *FAKE, "--methods", "normal", "--cpus-per-trial", "4",
                     "--storage-path", str(tmp_path), "--name", "big"], capsys)
    assert code == 2 and "--cpus-per-trial 4: no node of the cluster has that" in out
    assert not (tmp_path / "big").exists()


def test_close_killed_runs_counts_time_up_to_the_last_checkpoint(tmp_path):
    from datetime import datetime

    from deca_tune.search.manifest import close_killed_runs

    started = 1_700_000_000.0
    ckpt = tmp_path / "search" / "u" / "t1" / "checkpoint_000002" / "trainer.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x")
    os.utime(ckpt, (started + 42, started + 42))
    iso = datetime.fromtimestamp(started).astimezone().isoformat()
    manifest = {"runs": [{"run": 1, "started": iso, "wall_seconds": 10.0, "outcome": "interrupted"},
                         {"run": 2, "started": iso, "wall_seconds": None, "outcome": "running"}]}
    closed = close_killed_runs(manifest, tmp_path)
    assert [r["run"] for r in closed] == [2]
    assert manifest["runs"][1]["outcome"] == "killed" and manifest["runs"][1]["wall_seconds"] == 42
    assert manifest["wall_seconds"] == 52
    assert close_killed_runs(manifest, tmp_path) == []


def test_a_method_typo_suggests_the_closest_choice(tmp_path, capsys, no_ray):
    code, out = run(["--methods", "decca", "--dry-run", "--storage-path", str(tmp_path)], capsys)
    assert code == 2 and "unknown method 'decca'" in out and "(did you mean 'deca'?)" in out
    assert "choose one of: deca, " in out and "usage:" not in out
    code, out = run(["--datasets", "fashion-mnst", "--dry-run"], capsys)
    assert code == 2 and "(did you mean 'fashion-mnist'?)" in out


def test_defaults_follow_the_data_sets_family(tmp_path, capsys, no_ray):
    """`--datasets fashion-mnist` stopped with "unknown backbone 'gmf' for image data sets"
    after 22 lines of usage."""
    code, out = run(["--datasets", "fashion-mnist", "--dry-run", "--storage-path", str(tmp_path)], capsys)
    assert code == 0, out
    units = re.findall(r"^\[\d+\] (\S+) ", out, flags=re.M)
    assert units == [f"fashion-mnist__resnet32__{m}" for m in ("normal", "itlm", "mwnet", "deca_p")]
    code, out = run(["--datasets", "fashion-mnist", "ml-100k", "--methods", "normal", "--dry-run",
                     "--storage-path", str(tmp_path)], capsys)
    assert code == 0
    assert re.findall(r"^\[\d+\] (\S+) ", out, flags=re.M) == ["fashion-mnist__resnet32__normal",
                                                               "ml-100k__gmf__normal"]
    cfg = parse_args(["--datasets", "fashion-mnist", "--backbones", "convnet"])
    assert [u.key for u in build_plan(cfg).units][0] == "fashion-mnist__convnet__normal"


def test_usage_block_only_for_syntax_errors(tmp_path, capsys):
    code, out = run(["--no-such-option", "--dry-run"], capsys)
    assert code == 2 and "usage:" in out
    code, out = run(["--num-samples", "--dry-run"], capsys)  # a missing value: syntax
    assert code == 2 and "usage:" in out
    for argv in (["--methods", "dekka"], ["--num-samples", "0"], ["--reduction-factor", "1"],
                 ["--seeds", "1", "1"]):
        code, out = run([*argv, "--dry-run", "--storage-path", str(tmp_path)], capsys)
        assert code == 2 and "python -m deca_tune.search: error:" in out and "usage:" not in out, argv


def test_console_entry_point_dispatches_to_the_commands(tmp_path, capsys):
    import tomllib

    from deca_tune.entry import COMMANDS, main as deca_tune_main

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["deca-tune"] == "deca_tune.entry:main"
    assert set(COMMANDS) == {"search", "report", "recommend", "data", "bench", "motivation"}
    assert deca_tune_main(["search", "--dry-run", "--storage-path", str(tmp_path)]) == 0
    assert "dry run: nothing was run" in capsys.readouterr().out
    assert deca_tune_main(["data", "describe", "synthetic", "--option", "n_users=abc"]) == 2
    assert "option n_users" in capsys.readouterr().err
    assert deca_tune_main(["report", "--help"]) == 0
    assert "python -m deca_tune.report" in capsys.readouterr().out
    assert deca_tune_main(["serch"]) == 2
    assert "(did you mean 'search'?)" in capsys.readouterr().err


@pytest.mark.parametrize("task, method, key, value", [
    ("rec", "deca_p", "alpha", -0.5), ("rec", "deca-dp", "C1", float("inf")), ("rec", "deca", "h_backbone", "mlp"),
    ("rec", "tce", "num_gradual", 0), ("rec", "tce", "exponent", 0), ("rec", "wbpr", "wbpr_form", "x"),
    ("image", "deca_p", "C1", -1), ("image", "deca_p", "T1", 1.5), ("image", "mwnet", "meta_lr", 0),
    ("image", "itlm", "trim_ratio", 1.0),
])
def test_every_methods_hyperparameters_are_checked_by_validate_spec(task, method, key, value):
    """What the driver runs before Ray (``Task.validate_spec`` ends with the method's
    ``check_spec``); the method's constructor runs the same check."""
    from deca_tune.tasks import SpecError, get_task

    family = get_task(task)
    spec = family.make_spec(method=method, **{key: value})
    with pytest.raises(SpecError, match=f"spec key '{key}'"):
        family.validate_spec(spec)
    family.validate_spec(family.make_spec(method=method))  # the defaults pass
