"""The Tune adapter around the trainers: retries from checkpoints, devices, per-process data,
deterministic errors ended without a retry."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from trainables import trainable
from trainables.trial import assigned_device, resolve_factory

FAKE = "tests.search_fakes:FakeTrainer"


def read_results(trial_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]


def test_default_factory_is_build_trainer():
    from deca_tune.training import build_trainer

    assert resolve_factory(None) is build_trainer
    assert resolve_factory(FAKE).__name__ == "FakeTrainer"
    with pytest.raises(ValueError, match="module:function"):
        resolve_factory("tests.search_fakes")


def test_device_without_gpus_is_cpu(ray_session):
    assert assigned_device("auto") == "cpu"
    assert assigned_device("cuda") == "cpu"  # no GPU assigned by Ray: never grab one
    assert assigned_device("cpu") == "cpu"


def test_crashed_trial_resumes_from_its_checkpoint_and_workers_keep_their_data(ray_session, tmp_path):
    """Epoch 2 of the first trial raises once; FailureConfig retries it from the epoch-1
    checkpoint. Four trials run one at a time in reused actors that load data once each."""
    from ray import tune

    marker = tmp_path / "failed-once"
    space = {"trainer_factory": FAKE, "dataset": "synthetic", "load_data": True,
             "dataset_options": {"n_users": 100, "n_items": 80}, "max_epochs": 3, "seed": 0,
             "lr": tune.grid_search([1e-3, 2e-3, 3e-3, 4e-3]),
             "fail_at_epoch": 2, "fail_once_file": str(marker)}
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}), param_space=space,
        tune_config=tune.TuneConfig(metric="score", mode="max", max_concurrent_trials=1,
                                    reuse_actors=True, trial_dirname_creator=lambda t: t.trial_id),
        run_config=tune.RunConfig(name="retry", storage_path=str(tmp_path), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=1),
                                  sync_config=tune.SyncConfig(sync_artifacts=True)))
    grid = tuner.fit()
    assert grid.num_errors == 0 and marker.exists()
    rows = {r.config["lr"]: read_results(Path(r.path)) for r in grid}
    first = rows[1e-3]
    assert [r["epoch"] for r in first][-2:] == [2, 3]
    assert first[-1]["restored_from"] == 1, "the retry must continue from the epoch-1 checkpoint"
    assert all(r[-1]["restored_from"] == 0 for lr, r in rows.items() if lr != 1e-3)
    # every epoch reports the score (best selection metric so far) and the device
    for r in first:
        assert r["selection_metric"] == "valid/ndcg@20" and r["device"] == "cpu"
        assert r["score"] == pytest.approx(max(x["valid/ndcg@20"] for x in first if x["epoch"] <= r["epoch"]))
    # data: one split object per worker process, shared by the trials it runs
    by_pid: dict[int, set[int]] = {}
    for result in rows.values():
        by_pid.setdefault(result[-1]["worker_pid"], set()).add(result[-1]["data_id"])
    assert len(by_pid) < len(rows), "reuse_actors should run several trials in one worker"
    assert all(len(ids) == 1 for ids in by_pid.values()), by_pid
    # the retried trial's TensorBoard log has each epoch once (purge_step drops the crashed one)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trial_dir = next(Path(r.path) for r in grid if r.config["lr"] == 1e-3)
    acc = EventAccumulator(str(trial_dir))
    acc.Reload()
    assert [e.step for e in acc.Scalars("valid/ndcg@20")] == [1, 2, 3]


class FakeTune:
    """Stands in for ``ray.tune`` inside the trainable: records reports, no session needed."""

    def __init__(self, trial_dir: Path) -> None:
        self.reports: list[dict] = []
        self.trial_dir = trial_dir

    def report(self, metrics, checkpoint=None):
        self.reports.append(dict(metrics))

    def get_checkpoint(self):
        return None

    def get_context(self):
        return type("Context", (), {"get_trial_dir": lambda _: str(self.trial_dir)})()

    Checkpoint = type("Checkpoint", (), {"from_directory": staticmethod(lambda folder: folder)})


@pytest.mark.parametrize("spec, error", [
    # invalid configuration: the real trainer's validate_spec rejects it before any data loads
    ({"dataset": "synthetic", "method": "normal", "lr": -1}, "SpecError: spec key 'lr': must be > 0"),
    ({"trainer_factory": "tests.search_fakes"}, "ValueError: trainer_factory must look like"),
    # a non-finite loss at epoch 2 (after one good epoch)
    ({"trainer_factory": FAKE, "max_epochs": 3, "nan_at_epoch": 2}, "FloatingPointError: epoch 2: non-finite loss"),
])
def test_deterministic_errors_end_the_trial_without_raising(spec, error, tmp_path, monkeypatch):
    """Issue 12: Tune retries every exception (--max-failures); a deterministic one would fail
    again, so the trainable reports it as its last result (``trial_error``) and returns."""
    import math

    from trainables import trial

    fake = FakeTune(tmp_path)
    monkeypatch.setattr(trial, "tune", fake)
    monkeypatch.setattr(trial, "gpu_ids", lambda: "")
    monkeypatch.setattr(trial.ray, "get_gpu_ids", lambda: [])
    trial.trainable({"device": "cpu", "dataset_options": {"n_users": 60, "n_items": 50}, **spec})
    last = fake.reports[-1]
    assert last[trial.TRIAL_ERROR].startswith(error), last
    assert "epoch" not in last  # ASHA ignores it; Optuna records a failed trial (search/run.py)
    if "nan_at_epoch" in spec:
        assert [r.get("epoch") for r in fake.reports] == [1, None]
        assert math.isfinite(last["score"])  # the best so far (never selected: it is an error)
    else:
        assert len(fake.reports) == 1 and math.isnan(last["score"])


def test_a_crash_still_raises_so_that_tune_retries_it(tmp_path, monkeypatch):
    from trainables import trial

    monkeypatch.setattr(trial, "tune", FakeTune(tmp_path))
    monkeypatch.setattr(trial.ray, "get_gpu_ids", lambda: [])
    with pytest.raises(RuntimeError, match="fake failure at epoch 2"):
        trial.trainable({"trainer_factory": FAKE, "max_epochs": 3, "fail_at_epoch": 2, "device": "cpu"})


def test_preloaded_data_sets_are_never_parsed_again(monkeypatch):
    """What the driver hands to a worker (``trainable(config, datasets=...)``) fills the worker's
    cache: the loader is not called again."""
    from deca_tune.data import loading
    from deca_tune.data.registry import REC_DATASETS

    options = {"n_users": 30, "n_items": 20}
    split = loading.load_dataset("rec", "synthetic", **options)
    handed = loading.loaded_datasets()
    loading.clear_cache()
    original = REC_DATASETS.get("synthetic")

    @functools.wraps(original)  # the same signature, so the same cache key
    def parse_again(*args, **kwargs):
        pytest.fail("the worker parsed the data set again")

    monkeypatch.setitem(REC_DATASETS._items, "synthetic", parse_again)
    loading.preload(handed)
    assert loading.load_dataset("rec", "synthetic", **options) is split
    loading.clear_cache()


# ------------------------------------------------------------------------ issue 20: HParams
def read_hparams(folder) -> tuple[dict, list[str]]:
    """(the HParams session's values, the experiment's metric tags) of a TensorBoard run folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(folder))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    values = {}
    for key, value in start.session_start_info.hparams.items():
        kind = value.WhichOneof("kind")
        values[key] = getattr(value, kind)
    return values, [m.name.tag for m in experiment.experiment.metric_infos]


def test_hparams_of_a_spec_are_written_and_read_back(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    from trainables.trial import HPARAM_METRIC, write_hparams

    spec = {"method": "deca", "lr": 0.003, "C0": 10, "restore_best": True, "pretrain_cache": None,
            "dataset_options": {"n_users": 50}, "ks": [5, 20]}
    writer = SummaryWriter(log_dir=str(tmp_path))
    write_hparams(writer, spec)
    writer.add_scalar(HPARAM_METRIC, 0.25, 1)
    writer.close()
    values, metrics = read_hparams(tmp_path)
    assert values == {"method": "deca", "lr": 0.003, "C0": 10.0, "restore_best": True,
                      "pretrain_cache": "None", "dataset_options.n_users": 50.0, "ks": "[5, 20]"}
    assert metrics == [HPARAM_METRIC]
