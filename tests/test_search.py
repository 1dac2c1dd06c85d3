"""End-to-end searches through ``deca_tune.search.main`` on the session's Ray (2 CPUs, no GPU).

- a tiny Optuna + ASHA experiment with the real trainer on a tiny ``synthetic`` data set:
  results, checkpoints, TensorBoard files, seed reruns, summary, manifest;
- the paper grid with a failing and a NaN trial, on a cluster without GPUs asked for 0.5 GPU;
- an interrupted experiment resumed without losing or repeating finished work.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pandas as pd
import pytest
import torch

from deca_tune.search import main
from tests.test_trainables import read_hparams
from deca_tune.training.checkpoints import load_trainer

TINY = ["--datasets", "synthetic", "--backbones", "gmf",
        "--set", "dataset_options.n_users=100", "--set", "dataset_options.n_items=80",
        "--set", "batch_size=256", "--verbose", "0"]
FAKE = ["--set", "trainer_factory=tests.search_fakes:FakeTrainer"]


def run(argv: list[str], capsys, callbacks=()) -> tuple[int, str]:
    try:
        code = main(argv, callbacks=callbacks)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out + err


def results(trial_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]


@pytest.fixture(scope="module")
def optuna_experiment(ray_session, tmp_path_factory):
    storage = tmp_path_factory.mktemp("search")
    argv = [*TINY, "--methods", "normal", "deca", "--num-samples", "4", "--max-epochs", "3",
            "--grace-period", "1", "--reduction-factor", "2", "--seeds", "0", "1",
            "--storage-path", str(storage), "--name", "tiny"]
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, storage / "tiny"


def test_optuna_asha_search_writes_the_experiment_folder(optuna_experiment):
    code, exp = optuna_experiment
    assert code == 0
    for name in ("manifest.json", "summary/search_trials.csv", "summary/seed_runs.csv",
                 "summary/curves.csv", "summary/summary.csv"):
        assert (exp / name).is_file(), name
    for unit in ("synthetic__gmf__normal", "synthetic__gmf__deca"):
        assert (exp / "search" / unit).is_dir() and (exp / "seeds" / unit).is_dir()

    trials = pd.read_csv(exp / "summary/search_trials.csv")
    assert len(trials) == 8
    assert set(trials["status"]) <= {"completed", "stopped"}
    assert trials["epochs"].between(1, 3).all()
    assert (trials["selection_metric"] == "valid/ndcg@20").all()
    assert trials["config/lr"].between(1e-4, 1e-2).all() and trials["config/l2"].between(0.01, 1000).all()
    deca = trials[trials["method"] == "deca"]
    assert deca["config/C0"].between(1, 1000).all() and deca["config/alpha"].between(0, 1).all()
    assert trials.loc[trials["method"] == "normal", "config/C0"].isna().all()
    for method, group in trials.groupby("method"):
        assert group["is_best"].sum() == 1
        assert group.loc[group["is_best"], "score"].iloc[0] == group["score"].max()
        assert len(set(group["config/lr"])) == 4, "Optuna should propose distinct configurations"
        # warm start: the first trial evaluates the YAML `start` point (the spec defaults)
        assert ((group["config/lr"] == 1e-3) & (group["config/l2"] == 0.1)).sum() == 1
    # --sampler paired (the default): both units tried the same lr / l2 candidates, though deca
    # also searches C0, C1 and alpha
    pairs = {m: set(zip(g["config/lr"].round(12), g["config/l2"].round(12))) for m, g in trials.groupby("method")}
    assert pairs["normal"] == pairs["deca"]


def test_search_trials_keep_tensorboard_events_but_not_checkpoints(optuna_experiment):
    """--keep-checkpoints best (default): once a unit's search ended its trials' checkpoints are
    removed (the seed runs retrain the best configuration); the curves stay."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, exp = optuna_experiment
    trials = pd.read_csv(exp / "summary/search_trials.csv")
    assert trials["checkpoint"].isna().all()
    manifest = json.loads((exp / "manifest.json").read_text())
    disk = manifest["disk"]
    assert disk["keep_checkpoints"] == "best" and disk["freed_bytes"] > 0
    assert disk["peak_bytes"] > disk["final_bytes"] > 0
    for row in trials.itertuples():
        trial_dir = exp / row.path
        assert not list(trial_dir.glob("checkpoint_*")), row.path
        assert len(results(trial_dir)) == row.epochs
        acc = EventAccumulator(str(trial_dir))
        acc.Reload()
        tags = set(acc.Tags()["scalars"])
        assert {"loss", "valid/ndcg@20", "valid/recall@20"} <= tags
        # a search trial scores only the selection split per epoch (eval_splits: selection); a
        # trial that runs to max_epochs reports every split once, at its last epoch
        test_steps = ([e.step for e in acc.Scalars("test_clean/ndcg@20")]
                      if "test_clean/ndcg@20" in tags else [])
        assert test_steps == ([3] if row.epochs == 3 else []), row.path
        if row.method == "deca":
            assert {"deca/h_mean", "deca/h_prime_mean", "deca/kl", "deca/grad_kl_share",
                    "deca/grad_norm_kl", "deca/grad_norm_likelihood"} <= tags
        assert [e.step for e in acc.Scalars("valid/ndcg@20")] == list(range(1, row.epochs + 1))
        # issue 20: the HParams view: the trial's configuration and its best score
        values, metrics = read_hparams(trial_dir)
        assert values["lr"] == pytest.approx(trials.loc[row.Index, "config/lr"])
        assert values["method"] == row.method and metrics == ["hparams/score"]
        assert acc.Scalars("hparams/score")[-1].value == pytest.approx(row.score)


def test_best_configs_are_rerun_with_every_seed(optuna_experiment):
    _, exp = optuna_experiment
    trials = pd.read_csv(exp / "summary/search_trials.csv")
    runs = pd.read_csv(exp / "summary/seed_runs.csv")
    curves = pd.read_csv(exp / "summary/curves.csv")
    summary = pd.read_csv(exp / "summary/summary.csv")
    assert len(runs) == 4 and set(runs["status"]) == {"completed"}
    assert len(curves) == 4 * 3
    # DeCA's per-epoch agreement share reaches curves.csv (trainer -> trial -> summary)
    share = curves.loc[curves["method"] == "deca", "deca/grad_kl_share"]
    assert len(share) == 2 * 3 and share.between(0, 1).all()
    assert curves.loc[curves["method"] == "normal", "deca/grad_kl_share"].isna().all()
    for method, group in runs.groupby("method"):
        assert sorted(group["seed"]) == [0, 1]
        best = trials[(trials["method"] == method) & trials["is_best"]].iloc[0]
        for key in ("config/lr", "config/l2") + (("config/C0", "config/C1", "config/alpha")
                                                 if method == "deca" else ()):
            assert (group[key] == best[key]).all(), key
        for run in group.itertuples():
            curve = curves[(curves["method"] == method) & (curves["seed"] == run.seed)]
            assert list(curve["epoch"]) == [1, 2, 3]
            # reported metrics are those of the best validation epoch, never a test-picked one
            at_best = curve[curve["epoch"] == run.best_epoch].iloc[0]
            assert at_best["valid/ndcg@20"] == curve["valid/ndcg@20"].max()
            assert getattr(run, "_asdict")()  # row exists
            assert runs.loc[run.Index, "test_clean/ndcg@20"] == pytest.approx(at_best["test_clean/ndcg@20"])
            # the run's last checkpoint (Tune counts from 0: checkpoint_000002 = after epoch 3)
            # holds best_state, the weights of best_epoch that recommend uses
            ckpt = exp / runs.loc[run.Index, "checkpoint"]
            assert ckpt.name == f"checkpoint_{run.epochs - 1:06d}" and ckpt.parent == exp / run.path
            state = torch.load(ckpt / "trainer.pt", weights_only=True)
            assert state["epoch"] == run.epochs and state["best"]["epoch"] == run.best_epoch
            assert state["best_state"] is not None
            # shrunk to what the report and recommend read: no optimiser, no last weights
            assert state["shrunk"] and "optimizer" not in state and "method" not in state
            trainer = load_trainer(ckpt)
            weights = trainer.method.state_dict()
            assert all(torch.equal(weights[k], v) for k, v in state["best_state"].items())
            with pytest.raises(ValueError, match="keep-checkpoints all"):
                load_trainer(ckpt, weights="last")
        row = summary[summary["method"] == method].iloc[0]
        assert row["n_seeds"] == 2 and str(row["seeds"]) == "0 1"
        assert row["search_seconds"] > 0 and row["seed_seconds"] > 0
        assert row["test_clean/ndcg@20/mean"] == pytest.approx(group["test_clean/ndcg@20"].mean())
        assert row["test_clean/ndcg@20/std"] == pytest.approx(group["test_clean/ndcg@20"].std(ddof=1))


def test_seed_rerun_reproduces_the_search_trial(optuna_experiment):
    """The search trials use seed 0, so the seed-0 rerun of the best config repeats its numbers
    (deterministic CPU training) for the epochs the search trial ran."""
    _, exp = optuna_experiment
    trials = pd.read_csv(exp / "summary/search_trials.csv")
    curves = pd.read_csv(exp / "summary/curves.csv")
    for method in ("normal", "deca"):
        best = trials[(trials["method"] == method) & trials["is_best"]].iloc[0]
        searched = [r["valid/ndcg@20"] for r in results(exp / best["path"])]
        rerun = curves[(curves["method"] == method) & (curves["seed"] == 0)]["valid/ndcg@20"]
        assert list(rerun)[:len(searched)] == pytest.approx(searched, abs=1e-6)


def test_manifest_and_worker_reuse(optuna_experiment):
    _, exp = optuna_experiment
    manifest = json.loads((exp / "manifest.json").read_text())
    assert manifest["seeds"] == [0, 1] and manifest["methods"] == ["normal", "deca"]
    assert manifest["packages"]["ray"] and manifest["packages"]["torch"]
    assert "commit" in manifest["git"]
    assert manifest["command"].startswith("python -m deca_tune.search --datasets synthetic")
    assert manifest["data"]["synthetic"]["stats"]["users"] == 100
    assert manifest["data"]["synthetic"]["meta"]["liked_pairs"].startswith("<ndarray (")  # compact
    assert manifest["resources"]["concurrency"] == 2 and manifest["finished"]
    assert set(manifest["timing"]) == {"synthetic__gmf__normal", "synthetic__gmf__deca"}
    for unit in manifest["timing"]:
        pids = {results(d)[-1]["worker_pid"] for d in (exp / "search" / unit).iterdir()
                if (d / "result.json").exists()}
        assert len(pids) <= 2, "reuse_actors: at most one worker per concurrent trial"
        # every trial trained on the split the driver loaded (Ray's object store), not a re-parse
        assert all(results(d)[-1]["data_from_driver"] == 1 for d in (exp / "search" / unit).iterdir()
                   if (d / "result.json").exists())


def test_keep_checkpoints_all_keeps_every_trials_last_checkpoint(ray_session, tmp_path, capsys):
    argv = [*TINY, *FAKE, "--methods", "normal", "--num-samples", "3", "--max-epochs", "2",
            "--seeds", "0", "--keep-checkpoints", "all", "--storage-path", str(tmp_path), "--name", "all"]
    code, out = run(argv, capsys)
    assert code == 0, out
    trials = pd.read_csv(tmp_path / "all/summary/search_trials.csv")
    assert len(trials) == 3
    for row in trials.itertuples():
        assert (tmp_path / "all" / row.checkpoint / "trainer.pt").is_file()
    manifest = json.loads((tmp_path / "all/manifest.json").read_text())
    assert manifest["disk"]["keep_checkpoints"] == "all" and manifest["disk"]["freed_bytes"] == 0
    assert "disk:" in out
    # slot use: the trials' own seconds over the slots against the wall time (issue 22, part 8)
    use = manifest["slot_use"]
    assert use["slots"] == manifest["resources"]["concurrency"] and use["trial_seconds"] > 0
    assert use["ratio"] == pytest.approx(manifest["wall_seconds"] / (use["trial_seconds"] / use["slots"]))
    assert use["ratio"] > 1 and "slots:" in out


def test_grid_with_failing_trials_and_gpus_on_a_gpu_less_cluster(ray_session, tmp_path, capsys):
    """l2 = 1000 raises, l2 = 0.01 gives a NaN loss; the other 4 grid points finish; 0.5 GPU per
    trial on a cluster without GPUs runs on CPUs instead of waiting forever."""
    argv = [*TINY, *FAKE, "--methods", "normal", "--search", "grid", "--set", "lr=0.001",
            "--set", "fail_if_l2_above=100", "--set", "nan_if_l2_below=0.05",
            "--max-epochs", "3", "--seeds", "0", "--gpus-per-trial", "0.5", "--max-failures", "1",
            "--storage-path", str(tmp_path), "--name", "grid"]
    code, out = run(argv, capsys)
    assert code == 0, out
    assert "no GPUs" in out
    trials = pd.read_csv(tmp_path / "grid/summary/search_trials.csv").set_index("config/l2")
    assert sorted(trials.index) == [0.01, 0.1, 1, 10, 100, 1000]
    assert trials.loc[1000, "status"] == "error" and "fake failure" in trials.loc[1000, "error"]
    assert trials.loc[0.01, "status"] == "error" and "non-finite loss" in trials.loc[0.01, "error"]
    assert (trials.drop([1000, 0.01])["status"] == "completed").all()
    assert (trials.drop([1000, 0.01])["device"] == "cpu").all()
    assert trials.loc[1, "is_best"]  # the fake's quality peaks at l2 = 1
    runs = pd.read_csv(tmp_path / "grid/summary/seed_runs.csv")
    assert list(runs["status"]) == ["completed"] and runs["config/l2"].iloc[0] == 1


class InterruptAfter:
    """A Tune callback that sends SIGINT (Ctrl-C) to the driver once ``n`` trials completed."""

    fired = False

    def __init__(self, n: int) -> None:
        from ray import tune

        self.n, self.done = n, 0
        self.__class__ = type("InterruptAfterCallback", (InterruptAfter, tune.Callback), {})

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.done += 1
        if self.done >= self.n and not InterruptAfter.fired:
            InterruptAfter.fired = True
            os.kill(os.getpid(), signal.SIGINT)


def test_interrupted_experiment_resumes_without_losing_finished_trials(ray_session, tmp_path, capsys):
    argv = [*TINY, *FAKE, "--methods", "normal", "--num-samples", "4", "--max-epochs", "3",
            "--scheduler", "fifo", "--max-concurrent", "1", "--set", "sleep=0.4", "--seeds", "0",
            "--protocol", "paper", "--storage-path", str(tmp_path), "--name", "crash"]
    code, out = run(argv, capsys, callbacks=[InterruptAfter(1)])
    assert code == 130 and "--resume" in out
    exp = tmp_path / "crash"
    search = exp / "search" / "synthetic__gmf__normal"
    finished = {d.name: len(results(d)) for d in search.iterdir()
                if (d / "result.json").exists() and results(d)[-1].get("trainer_finished")}
    assert len(finished) == 1 and not (exp / "seeds").exists()

    code, out = run(["--resume", "--name", "crash", "--storage-path", str(tmp_path)], capsys)
    assert code == 0, out
    trials = pd.read_csv(exp / "summary/search_trials.csv")
    assert len(trials) == 4 and set(trials["status"]) == {"completed"}
    # --protocol paper (kept by --resume) selects on the clean validation split
    assert set(trials["selection_metric"]) == {"valid_clean/ndcg@20"}
    for name, n in finished.items():
        assert len(results(search / name)) == n, "a finished trial must not run again"
    seed_dir = next((exp / "seeds" / "synthetic__gmf__normal").glob("seed0_*"))
    before = len(results(seed_dir))

    code, out = run(["--resume", "--name", "crash", "--storage-path", str(tmp_path)], capsys)
    assert code == 0, out
    assert len(results(seed_dir)) == before, "finished seed runs must not be repeated"
    manifest = json.loads((exp / "manifest.json").read_text())
    assert len(manifest["resumes"]) == 2
    assert len(pd.read_csv(exp / "summary/seed_runs.csv")) == 1

    # the experiment's record without its Tune folders (a committed preset): --resume keeps the
    # finished unit from summary/ and runs nothing
    kept = tmp_path / "kept" / "crash"
    shutil.copytree(exp / "summary", kept / "summary")
    shutil.copy(exp / "manifest.json", kept / "manifest.json")
    code, out = run(["--resume", "--name", "crash", "--storage-path", str(tmp_path / "kept"), "--dry-run"], capsys)
    assert code == 0 and "--resume: 1 of 1 units finished in an earlier run" in out, out
    code, out = run(["--resume", "--name", "crash", "--storage-path", str(tmp_path / "kept")], capsys)
    assert code == 0, out
    assert "finished in an earlier run" in out and "4 trials, 1 seed runs" in out, out
    assert not (kept / "search").exists() and not (kept / "seeds").exists(), "nothing may run again"
    for name in ("seed_runs.csv", "search_trials.csv", "curves.csv", "summary.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(kept / "summary" / name), pd.read_csv(exp / "summary" / name),
                                      check_dtype=False)


def test_image_search_with_the_real_trainer(ray_session, tmp_path, capsys):
    """The image family end to end: a tiny synthetic image set, the MLP, the lr grid."""
    argv = ["--datasets", "synthetic-images", "--backbones", "mlp", "--methods", "normal",
            "--search", "grid", "--set", "dataset_options.n_train=600", "--set", "dataset_options.n_test=100",
            "--set", "valid_size=100", "--set", "meta_per_class=5", "--max-epochs", "2", "--seeds", "0",
            "--storage-path", str(tmp_path), "--name", "img", "--verbose", "0"]
    code, out = run(argv, capsys)
    assert code == 0, out
    trials = pd.read_csv(tmp_path / "img/summary/search_trials.csv")
    assert sorted(trials["config/lr"]) == [0.01, 0.1]  # the paper's image lr grid
    assert (trials["selection_metric"] == "valid/accuracy").all() and (trials["task"] == "image").all()
    summary = pd.read_csv(tmp_path / "img/summary/summary.csv")
    assert 0 <= summary["test_clean/accuracy/mean"].iloc[0] <= 1
    assert "accuracy" in out.split("test clean metrics")[1]
