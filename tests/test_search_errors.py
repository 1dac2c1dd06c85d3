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
